package ledger_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

// day0 is when the "old" events of these tests happen; the shop then
// trades on at day0+100 days, and keeps 90 days.
var day0 = time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)

const later = 100 * 24 * time.Hour

// cutoff is what a node keeping 90 days passes at day0+100 days.
var cutoff = day0.Add(later - 90*24*time.Hour)

// wallClock is a wall clock the test moves.
type wallClock struct{ ns atomic.Int64 }

func (w *wallClock) now() time.Time     { return time.Unix(0, w.ns.Load()).UTC() }
func (w *wallClock) set(t time.Time)    { w.ns.Store(t.UnixNano()) }
func (w *wallClock) clock() *crdt.Clock { return crdt.NewClock(w.now, time.Second) }

func retentionOptions(t *testing.T, dir string) (ledger.Options, *wallClock) {
	w := &wallClock{}
	w.set(day0)
	o := testOptions(dir)
	o.Clock = w.clock()
	return o, w
}

func dated(ev storeline.Event, at time.Time) storeline.Event {
	ev.OccurredAt = at
	ev.BusinessDate = storeline.Date(at.Format("2006-01-02"))
	return ev
}

// remoteAt is a transfer of origin s2 at seq, stamped at.
func remoteAt(seq uint64, at time.Time) storeline.Event {
	ev := transferFrom("s2", seq, int64(seq))
	ev.HLC = uint64(crdt.MakeTimestamp(at.UnixMilli(), 0))
	ev.OccurredAt = at
	return ev
}

// trade appends own receipts eid(1..old) at day0 and eid(old+1..old+young)
// 100 days later (moving the clock), and applies s2's transfers 1..old at
// day0 and the next young ones 99 days later.
func trade(t *testing.T, l *ledger.Ledger, w *wallClock, old, young int) {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= old; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(i)), 2, i), day0))
		if _, err := l.ApplyRemote(ctx, remoteAt(uint64(i), day0)); err != nil {
			t.Fatalf("ApplyRemote: %v", err)
		}
	}
	w.set(day0.Add(later))
	for i := old + 1; i <= old+young; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(i)), 2, i), w.now()))
		if _, err := l.ApplyRemote(ctx, remoteAt(uint64(i), day0.Add(later-24*time.Hour))); err != nil {
			t.Fatalf("ApplyRemote: %v", err)
		}
	}
}

func allBalances(t *testing.T, l *ledger.Ledger) []ledger.Balance {
	t.Helper()
	b, err := l.Balances("")
	if err != nil {
		t.Fatalf("Balances: %v", err)
	}
	return b
}

func sameBalances(t *testing.T, what string, got, want []ledger.Balance) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d balances, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Account != want[i].Account || got[i].Asset != want[i].Asset || !got[i].Amount.Equal(want[i].Amount) {
			t.Fatalf("%s: balance %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func prune(t *testing.T, l *ledger.Ledger, p ledger.PruneJournal) ledger.PruneResult {
	t.Helper()
	res, err := l.PruneJournal(context.Background(), p)
	if err != nil {
		t.Fatalf("PruneJournal(%+v): %v", p, err)
	}
	return res
}

// wantPruned checks which of eid(from..to) of origin are pruned.
func wantPruned(t *testing.T, l *ledger.Ledger, origin storeline.StoreID, base, from, to uint64, pruned bool) {
	t.Helper()
	for i := from; i <= to; i++ {
		_, err := l.Event(origin, eid(base+i))
		if pruned && (!errors.Is(err, ledger.ErrPruned) || !errors.Is(err, storeline.NotFound)) {
			t.Fatalf("Event(%s, %d) = %v, want NotFound ErrPruned", origin, i, err)
		}
		if !pruned && err != nil {
			t.Fatalf("Event(%s, %d) = %v, want it kept", origin, i, err)
		}
	}
}

// TestPruneRespectsAckAndCutoff: own events go only once old and
// acknowledged, other origins' by age alone; balances never change.
func TestPruneRespectsAckAndCutoff(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	trade(t, l, w, 10, 3)
	before := allBalances(t, l)

	res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: ledger.Position{Epoch: 1, Seq: 6}})
	if res.Pruned != 16 || res.Entries != 16 || res.Stubs != 16 || res.More {
		t.Fatalf("prune = %+v, want 16 own and remote events pruned, done", res)
	}
	// Own event 7 is old but not acknowledged: kept, and the oldest left.
	if !res.OldestKept.Before(day0.Add(time.Minute)) {
		t.Fatalf("OldestKept = %v, want the unacknowledged event of %v", res.OldestKept, day0)
	}
	wantPruned(t, l, store, 0, 1, 6, true)
	wantPruned(t, l, store, 0, 7, 13, false)
	wantPruned(t, l, "s2", 1000, 1, 10, true)
	wantPruned(t, l, "s2", 1000, 11, 13, false)
	sameBalances(t, "after the prune", allBalances(t, l), before)
	checkConservation(t, l)

	if res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: ledger.Position{Epoch: 1, Seq: 6}}); res.Pruned != 0 || res.Stubs != 16 {
		t.Fatalf("second prune = %+v, want nothing more", res)
	}
	// Central acknowledges everything: the old rest goes, the young stay.
	res = prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	if res.Pruned != 4 || res.Stubs != 20 || !res.OldestKept.After(cutoff) {
		t.Fatalf("prune after the ack = %+v, want 4 more, the oldest kept after the cutoff", res)
	}
	wantPruned(t, l, store, 0, 7, 10, true)
	wantPruned(t, l, store, 0, 11, 13, false)
	sameBalances(t, "after the second prune", allBalances(t, l), before)
}

// TestPruneRetryNotCountedTwice: a till's retry of a pruned receipt gets
// ErrPruned and changes nothing; central's resend of a pruned remote event
// is a duplicate; both across a reopen.
func TestPruneRetryNotCountedTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, w := retentionOptions(t, dir)
	l := open(t, o)
	trade(t, l, w, 3, 1)
	prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	before := allBalances(t, l)
	pos := l.Position()

	check := func(when string) {
		t.Helper()
		_, created, err := l.Append(ctx, dated(receiptEvent(eid(2), 2, 2), day0))
		if created || !errors.Is(err, ledger.ErrPruned) || !errors.Is(err, storeline.Conflict) {
			t.Fatalf("%s: retry of a pruned receipt = created %v, %v; want Conflict ErrPruned", when, created, err)
		}
		applied, err := l.ApplyRemote(ctx, remoteAt(2, day0))
		if applied || err != nil {
			t.Fatalf("%s: resend of a pruned remote event = %v, %v; want a duplicate", when, applied, err)
		}
		other := remoteAt(2, day0)
		other.Kind, other.Body = storeline.KindShiftOpen, &storeline.ShiftOpen{Terminal: "t1", Shift: "x", Seller: "a", Currency: "EUR", Float: dec("1")}
		other.Postings = nil
		if _, err := l.ApplyRemote(ctx, other); !errors.Is(err, storeline.Conflict) {
			t.Fatalf("%s: another kind under a pruned ID = %v, want Conflict", when, err)
		}
		if got := l.Position(); got != pos {
			t.Fatalf("%s: position %v, want %v: the retry took a sequence number", when, got, pos)
		}
		sameBalances(t, when, allBalances(t, l), before)
		checkConservation(t, l)
	}
	check("after the prune")
	l.Close()
	l = open(t, o)
	check("after a reopen")
}

// TestPruneJournalReads: Journal refuses the pruned range and serves the
// rest; the date and returns indexes lose the pruned events' entries.
func TestPruneJournalReads(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	r1 := mustAppend(t, l, dated(receiptEvent(eid(1), 2, 1), day0))
	r2 := mustAppend(t, l, dated(receiptEvent(eid(2), 2, 2), day0))
	returnOf := func(id uint64, orig storeline.Event, at time.Time) storeline.Event {
		line := orig.Body.(*storeline.Receipt).Lines[0]
		return dated(storeline.Event{ID: eid(id), Kind: storeline.KindReturn,
			Body: &storeline.Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Reason: "faulty",
				Currency: "EUR", Original: &orig.ID, Lines: []storeline.Line{line},
				Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: line.Total}}}}, at)
	}
	mustAppend(t, l, returnOf(3, r1, day0))
	w.set(day0.Add(later))
	mustAppend(t, l, returnOf(4, r2, w.now()))
	mustAppend(t, l, dated(receiptEvent(eid(5), 2, 5), w.now()))

	if d, err := l.PrunedDate(); err != nil || d != "" {
		t.Fatalf("PrunedDate before any prune = %q, %v; want none", d, err)
	}
	if res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()}); res.Pruned != 3 {
		t.Fatalf("prune = %+v, want 3 pruned", res)
	}
	if d, err := l.PrunedDate(); err != nil || d != storeline.Date(day0.Format(time.DateOnly)) {
		t.Fatalf("PrunedDate = %q, %v; want %s, the business date of the events pruned", d, err, day0.Format(time.DateOnly))
	}
	if p, err := l.PrunedThrough(store); err != nil || p != (ledger.Position{Epoch: 1, Seq: 3}) {
		t.Fatalf("PrunedThrough = %v, %v, want 1/3", p, err)
	}
	for _, from := range []ledger.Position{{}, {Epoch: 1, Seq: 1}, {Epoch: 1, Seq: 3}} {
		if evs, err := l.Journal(store, from, 0); !errors.Is(err, ledger.ErrPruned) || len(evs) != 0 {
			t.Fatalf("Journal from %v = %d events, %v; want ErrPruned", from, len(evs), err)
		}
	}
	evs, err := l.Journal(store, ledger.Position{Epoch: 1, Seq: 4}, 0)
	if err != nil || len(evs) != 2 || evs[0].ID != eid(4) || evs[1].ID != eid(5) {
		t.Fatalf("Journal above the pruned range = %d events, %v; want events 4 and 5", len(evs), err)
	}
	var dates []storeline.EventID
	err = l.EventsByDate("2026-01-01", "2026-12-31", func(ev storeline.Event) error {
		dates = append(dates, ev.ID)
		return nil
	})
	if err != nil || !reflect.DeepEqual(dates, []storeline.EventID{eid(4), eid(5)}) {
		t.Fatalf("EventsByDate = %v, %v; want events 4 and 5", dates, err)
	}
	if rets, err := l.ReturnsOf(r2.ID); err != nil || len(rets) != 1 || rets[0].ID != eid(4) {
		t.Fatalf("ReturnsOf(pruned receipt) = %d, %v; want its kept return", len(rets), err)
	}
	if rets, err := l.ReturnsOf(r1.ID); err != nil || len(rets) != 0 {
		t.Fatalf("ReturnsOf(receipt whose return is pruned) = %d, %v; want none", len(rets), err)
	}
}

// TestPruneLimitBoundsOneCall: a call removes at most Limit entries and
// says More; repeated calls finish.
func TestPruneLimitBoundsOneCall(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	trade(t, l, w, 12, 1) // 24 old entries: 12 own, 12 of s2
	p := ledger.PruneJournal{Before: cutoff, Acked: l.Position(), Limit: 10}
	var got []int
	for range 5 {
		res := prune(t, l, p)
		got = append(got, res.Entries)
		if res.Entries > p.Limit {
			t.Fatalf("one call removed %d entries, limit %d", res.Entries, p.Limit)
		}
		if res.More && !res.OldestKept.Before(cutoff) {
			t.Fatalf("More with the oldest kept at %v, after the cutoff", res.OldestKept)
		}
		if !res.More {
			break
		}
	}
	if !reflect.DeepEqual(got, []int{10, 10, 4}) {
		t.Fatalf("entries per call = %v, want [10 10 4]", got)
	}
	wantPruned(t, l, store, 0, 1, 12, true)
	wantPruned(t, l, "s2", 1000, 1, 12, true)
	wantPruned(t, l, store, 0, 13, 13, false)
}

// TestPruneThenRebuildBalances: a rebuild of the balances from the
// journal (Open's, after a value-log loss) counts what pruned events
// posted.
func TestPruneThenRebuildBalances(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	trade(t, l, w, 5, 2)
	before := allBalances(t, l)
	prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	if _, err := l.RebuildBalances(); err != nil {
		t.Fatal(err)
	}
	sameBalances(t, "after a rebuild", allBalances(t, l), before)
	checkConservation(t, l)
}

// TestPruneRebuildShiftsSkipsStubs: Open's rebuild of the views from the
// journal (a database older than them) gets past the stubs.
func TestPruneRebuildShiftsSkipsStubs(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	trade(t, l, w, 3, 1)
	prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	if err := l.DropViews(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, o)
	wantPruned(t, l, store, 0, 4, 4, false)
}

// TestPruneSurvivesPowerLoss: a prune cut by a power loss is there whole
// or not at all after the reopen, and the read-back of the value log
// after a new boot does not bring the pruned events back.
func TestPruneSurvivesPowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tear, halt bool // the prune's WAL write torn, or its Badger apply failed
		pruned     bool
	}{
		{"torn frame", true, false, false},
		{"apply failed", false, true, true},
		{"badger unsynced, new boot", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o, w := retentionOptions(t, dir)
			o.ValueThreshold = 256 // every event in the value log
			cfs := newCrashFS()
			var failAt atomic.Uint64
			boot := 0
			o.Seams = &ledger.Seams{
				FS: cfs,
				Write: func(f ledger.File, p []byte, off int64) error {
					if lsn := binary.BigEndian.Uint64(p[8:16]); tc.tear && failAt.Load() != 0 && lsn >= failAt.Load() {
						_, _ = f.WriteAt(p[:len(p)/2], off)
						return errInjected
					}
					_, err := f.WriteAt(p, off)
					return err
				},
				Apply: func(lsn uint64) error {
					if tc.halt && failAt.Load() != 0 && lsn >= failAt.Load() {
						return errInjected
					}
					return nil
				},
				BootID:            func() string { boot++; return fmt.Sprint("boot ", boot) },
				ValueLogFileBytes: 1 << 20,
			}
			l, err := ledger.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			trade(t, l, w, 20, 2)
			before := allBalances(t, l)
			failAt.Store(l.AppliedLSN() + 1)
			p := ledger.PruneJournal{Before: cutoff, Acked: l.Position()}
			_, err = l.PruneJournal(context.Background(), p)
			if (tc.tear || tc.halt) != (err != nil) {
				t.Fatalf("PruneJournal = %v", err)
			}
			if err := l.CloseAsCrash(); err != nil && !tc.tear && !tc.halt {
				t.Fatal(err)
			}
			cfs.Crash()
			failAt.Store(0)

			l, err = ledger.Open(o)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer l.Close()
			wantPruned(t, l, store, 0, 1, 20, tc.pruned)
			wantPruned(t, l, "s2", 1000, 1, 20, tc.pruned)
			wantPruned(t, l, store, 0, 21, 22, false)
			sameBalances(t, "after the reopen", allBalances(t, l), before)
			checkConservation(t, l)
			if _, err := l.Journal(store, ledger.Position{Epoch: 1, Seq: 21}, 0); err != nil {
				t.Fatalf("Journal of the kept events: %v", err)
			}
			res := prune(t, l, p)
			if want := map[bool]int{true: 0, false: 40}[tc.pruned]; res.Pruned != want || res.Stubs != 40 {
				t.Fatalf("prune after the reopen = %+v, want %d pruned, 40 stubs", res, want)
			}
			if _, _, err := l.Append(context.Background(), dated(receiptEvent(eid(1), 2, 1), day0)); !errors.Is(err, ledger.ErrPruned) {
				t.Fatalf("retry after the reopen: %v, want ErrPruned", err)
			}
		})
	}
}

// TestPruneBackupRestore: a backup taken after a prune restores the
// stubs, the pruned-through positions and the balances.
func TestPruneBackupRestore(t *testing.T) {
	ctx := context.Background()
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	trade(t, l, w, 4, 2)
	prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	before := allBalances(t, l)
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	l.Close()

	dir := filepath.Join(t.TempDir(), "restored")
	const epoch = 1_000_000
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), epoch); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	ro := testOptions(dir)
	ro.Clock = w.clock()
	r := open(t, ro)
	sameBalances(t, "after the restore", allBalances(t, r), before)
	checkConservation(t, r)
	wantPruned(t, r, store, 0, 1, 4, true)
	wantPruned(t, r, store, 0, 5, 6, false)
	if _, _, err := r.Append(ctx, dated(receiptEvent(eid(3), 2, 3), day0)); !errors.Is(err, ledger.ErrPruned) {
		t.Fatalf("retry after the restore: %v, want ErrPruned", err)
	}
	if _, err := r.Journal(store, ledger.Position{}, 0); !errors.Is(err, ledger.ErrPruned) {
		t.Fatalf("Journal of the pruned range after the restore: %v, want ErrPruned", err)
	}
	if evs, err := r.Journal(store, ledger.Position{Epoch: 1, Seq: 5}, 0); err != nil || len(evs) != 2 {
		t.Fatalf("Journal after the restore = %d, %v; want 2", len(evs), err)
	}
	if res := prune(t, r, ledger.PruneJournal{Before: cutoff, Acked: r.Position()}); res.Pruned != 0 || res.Stubs != 8 {
		t.Fatalf("prune after the restore = %+v, want nothing, 8 stubs", res)
	}
}

// TestPruneMetric: storeline_ledger_events_pruned_total counts pruned
// events.
func TestPruneMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	o, w := retentionOptions(t, t.TempDir())
	o.Registerer = reg
	l := open(t, o)
	trade(t, l, w, 3, 1)
	prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "storeline_ledger_events_pruned_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 6 {
				t.Fatalf("pruned events counted %v, want 6", v)
			}
			return
		}
	}
	t.Fatal("no storeline_ledger_events_pruned_total")
}

// TestPruneNeedsCutoff: a prune without a cutoff is refused.
func TestPruneNeedsCutoff(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PruneJournal(context.Background(), ledger.PruneJournal{}); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("PruneJournal without Before = %v, want Invalid", err)
	}
}

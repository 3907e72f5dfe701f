package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
)

// vlogHeaderBytes is the header of a Badger value-log file; values follow.
const vlogHeaderBytes = 20

// valueLogFiles returns the value-log files of the ledger in dir.
func valueLogFiles(t testing.TB, dir string) map[string]bool {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "badger", "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, name := range names {
		files[name] = true
	}
	return files
}

// damageValueLog damages the value-log files of the ledger in dir that
// are not in synced (files Badger created since its last recorded sync), as
// a power loss does to what Badger wrote but had not synced: with rng nil,
// every value zeroed; else each file's values from a random offset zeroed,
// or a random range of them overwritten with random bytes (pages written
// back out of order). It returns how many bytes it damaged.
func damageValueLog(t testing.TB, dir string, synced map[string]bool, rng *rand.Rand) int64 {
	t.Helper()
	var zeroed int64
	for name := range valueLogFiles(t, dir) {
		if synced[name] {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		from := int64(vlogHeaderBytes)
		if fi.Size() <= from {
			continue
		}
		junk := make([]byte, fi.Size()-from)
		if rng != nil {
			from += rng.Int64N(fi.Size() - from)
			junk = junk[:fi.Size()-from]
			if rng.IntN(2) == 0 {
				junk = junk[:rng.IntN(len(junk))+1]
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
			}
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(junk, from); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		zeroed += int64(len(junk))
	}
	return zeroed
}

// ledgerState is everything a reader can see of a ledger, for comparison.
type ledgerState struct {
	Journal  []storeline.Event
	Balances []ledger.Balance
	Shift    storeline.ShiftTotals
	Items    []*storeline.Item
	Meta     string
}

func readState(t *testing.T, l *ledger.Ledger, items []string) ledgerState {
	t.Helper()
	var s ledgerState
	var err error
	if s.Journal, err = l.Journal(store, ledger.Position{}, ledger.MaxJournalLimit); err != nil {
		t.Fatalf("Journal: %v", err)
	}
	if s.Balances, err = l.Balances(""); err != nil {
		t.Fatalf("Balances: %v", err)
	}
	if s.Shift, err = l.ShiftTotals("t1", "sh1"); err != nil {
		t.Fatalf("ShiftTotals: %v", err)
	}
	for _, id := range items {
		it := new(storeline.Item)
		if err := l.GetMaster(storeline.KindItem, id, it); err != nil {
			t.Fatalf("GetMaster(%s): %v", id, err)
		}
		s.Items = append(s.Items, it)
	}
	m, _, err := l.Meta("cursor")
	if err != nil {
		t.Fatalf("Meta: %v", err)
	}
	s.Meta = string(m)
	return s
}

// TestValueLogLossRestoredFromWAL loses every value Badger's value log
// held (the LSM tree keeps its pointers, as after a power loss that kept
// Badger's tables but not its value log) and reopens: every event, master
// record and metadata value comes back from the WAL frames, the shift
// totals (in the value log at this threshold) are rebuilt, and the ledger
// reads as it did (vlog.go, invariants 2 and 3).
func TestValueLogLossRestoredFromWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := testOptions(dir)
	o.ValueThreshold = 256
	boots := 0
	o.Seams = &ledger.Seams{
		BootID:            func() string { boots++; return fmt.Sprint("boot ", boots) },
		ValueLogFileBytes: 1 << 20, // a few files, each damaged
	}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	// A long seller ID puts the shift's totals past the threshold too.
	seller := storeline.SellerID(strings.Repeat("s", 64))
	mustAppend(t, l, shiftEvent(eid(1<<40), &storeline.ShiftOpen{Terminal: "t1", Shift: "sh1", Seller: seller, Currency: "EUR", Float: dec("100")}))
	var items []string
	var wg sync.WaitGroup
	for w := range uint64(16) { // group-committed: the test stays quick
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1 + w; n <= 3000; n += 16 {
				if _, _, err := l.Append(ctx, receiptEvent(eid(n), 1+int(n%8), int(n))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for n := range 10 {
		id := fmt.Sprintf("item%d", n)
		it := item(id, "SKU"+id)
		it.Name = strings.Repeat("long name ", 20) // past the threshold
		if _, err := l.PutMaster(ctx, []storeline.Record{it}); err != nil {
			t.Fatal(err)
		}
		items = append(items, id)
	}
	wg.Wait()
	mustAppend(t, l, shiftEvent(eid(1<<40+1), &storeline.ShiftClose{Terminal: "t1", Shift: "sh1", Seller: seller, Report: storeline.ZReport{Currency: "EUR"}}))
	if err := l.SetMeta(ctx, "cursor", bytes.Repeat([]byte("c"), 300)); err != nil {
		t.Fatal(err)
	}
	want := readState(t, l, items)
	if err := l.CloseAsCrash(); err != nil {
		t.Fatal(err)
	}
	if files := len(valueLogFiles(t, dir)); files < 3 {
		t.Fatalf("%d value-log files, want several", files)
	}
	if n := damageValueLog(t, dir, nil, nil); n < 1_000_000 {
		t.Fatalf("zeroed %d bytes of the value log: events are not stored there", n)
	}

	l = open(t, o)
	if checked, rewritten := l.LastReadBack(); rewritten < 3000 || checked < rewritten {
		t.Fatalf("Open read back %d values and rewrote %d, want every event rewritten", checked, rewritten)
	}
	if got := readState(t, l, items); !reflect.DeepEqual(got, want) {
		t.Fatalf("after losing the value log:\n got %+v\nwant %+v", got.Shift, want.Shift)
	}
	if err := l.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, receiptEvent(eid(100_000), 3, 1))
	if err := verify(l, map[storeline.EventID]bool{eid(1): true, eid(100_000): true}); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildBalances drops every balance and sums them again from the
// stored events, own and remote, with second copies in the journal: the
// same balances come back (vlog.go, invariant 3).
func TestRebuildBalances(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	for n := uint64(1); n <= 50; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 1+int(n%5), int(n)))
	}
	ro := testOptions(t.TempDir())
	ro.Origin = "s2"
	remote := open(t, ro)
	for n := uint64(1); n <= 20; n++ {
		ev := mustAppend(t, remote, receiptEvent(eid(1<<32+n), 2, int(n)))
		for range 2 { // the second is a duplicate: no effect
			if _, err := l.ApplyRemote(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, err := l.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.RebuildBalances()
	if err != nil {
		t.Fatal(err)
	}
	if n != 70 {
		t.Fatalf("RebuildBalances summed %d events, want 70", n)
	}
	got, err := l.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt balances:\n got %v\nwant %v", got, want)
	}
}

// TestReadBackOnlyAfterPowerLoss: Open reads the value log back only when
// the machine restarted since the ledger was last open and Badger may hold
// values it never synced; after a clean Close, or a crash of the process
// within one boot (the page cache kept everything), it reads nothing.
func TestReadBackOnlyAfterPowerLoss(t *testing.T) {
	boot := "boot 1"
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{BootID: func() string { return boot }}
	n := uint64(0)
	session := func(crash bool) {
		t.Helper()
		l, err := ledger.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			n++
			mustAppend(t, l, receiptEvent(eid(n), 6, int(n)))
		}
		if crash {
			err = l.CloseAsCrash()
		} else {
			err = l.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	readBack := func() int {
		t.Helper()
		l := open(t, o)
		checked, rewritten := l.LastReadBack()
		if rewritten != 0 {
			t.Fatalf("Open rewrote %d values of an undamaged value log", rewritten)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return checked
	}

	session(true)
	if got := readBack(); got != 0 {
		t.Fatalf("after a crash within the boot, Open read back %d values, want 0", got)
	}
	session(true)
	boot = "boot 2"
	if got := readBack(); got < 20 {
		t.Fatalf("after a power loss, Open read back %d values, want the 20 events since the last sync at least", got)
	}
	session(false)
	boot = "boot 3"
	if got := readBack(); got != 0 {
		t.Fatalf("after a clean Close and a restart, Open read back %d values, want 0", got)
	}
}

// TestCheckpointSyncFailurePoisons: a checkpoint whose sync of Badger
// fails poisons the ledger (a later sync could succeed over pages the
// kernel dropped) and leaves the marker that makes the next Open read the
// value log back even within the same boot (vlog.go, invariant 2).
func TestCheckpointSyncFailurePoisons(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	var fail atomic.Bool
	o.Seams = &ledger.Seams{
		BootID: func() string { return "one boot" },
		BadgerSync: func() error {
			if fail.Load() {
				return errors.New("writeback failed")
			}
			return nil
		},
	}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	for n := uint64(1); n <= 50; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 6, int(n)))
	}
	_ = l.Position() // the 50 applied
	fail.Store(true)
	l.CheckpointNow()
	if _, _, err := l.Append(context.Background(), receiptEvent(eid(51), 6, 51)); !errors.Is(err, storeline.Unavailable) {
		t.Fatalf("Append after a failed checkpoint sync = %v, want Unavailable", err)
	}
	l.Close()
	fail.Store(false)
	l = reopenAfterMarker(t, o, "a failed sync", 50)
	if err := verify(l, map[storeline.EventID]bool{eid(1): true, eid(50): true}); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildResumedAfterCrash: a crash after Open's rebuild dropped the
// shift totals and balances and before it wrote them again leaves them
// empty; the next Open, even within the same boot, rebuilds them (vlog.go,
// invariant 4).
func TestRebuildResumedAfterCrash(t *testing.T) {
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{BootID: func() string { return "one boot" }}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, shiftEvent(eid(1<<40), &storeline.ShiftOpen{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR", Float: dec("100")}))
	for n := uint64(1); n <= 40; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 1+int(n%5), int(n)))
	}
	wantShift, wantBal := runningSums(t, l)
	if err := l.CrashMidRebuild(); err != nil {
		t.Fatal(err)
	}
	l = open(t, o)
	gotShift, gotBal := runningSums(t, l)
	if !reflect.DeepEqual(gotShift, wantShift) || !reflect.DeepEqual(gotBal, wantBal) {
		t.Fatalf("after a crash in the rebuild:\n shift %+v\n want %+v\n %d balances, want %d", gotShift, wantShift, len(gotBal), len(wantBal))
	}
}

// TestRebuildFailureResumed: Open's repair drops the shift totals to
// rebuild them and fails before writing them again (a crash there); the
// next Open, in the same boot, still rebuilds them (vlog.go, invariant 4).
func TestRebuildFailureResumed(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.ValueThreshold = 256
	boot := "boot 1"
	failRebuild := false
	o.Seams = &ledger.Seams{
		BootID: func() string { return boot },
		Rebuild: func(view string) error {
			if failRebuild {
				return fmt.Errorf("crash while rebuilding %s", view)
			}
			return nil
		},
	}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	// A long seller ID puts the shift's totals in the value log.
	seller := storeline.SellerID(strings.Repeat("s", 64))
	mustAppend(t, l, shiftEvent(eid(1<<40), &storeline.ShiftOpen{Terminal: "t1", Shift: "sh1", Seller: seller, Currency: "EUR", Float: dec("100")}))
	for n := uint64(1); n <= 20; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 6, int(n)))
	}
	mustAppend(t, l, shiftEvent(eid(1<<40+1), &storeline.ShiftClose{Terminal: "t1", Shift: "sh1", Seller: seller, Report: storeline.ZReport{Currency: "EUR"}}))
	want, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CloseAsCrash(); err != nil {
		t.Fatal(err)
	}
	damageValueLog(t, dir, nil, nil)

	boot, failRebuild = "boot 2", true
	if l, err := ledger.Open(o); err == nil {
		l.Close()
		t.Fatal("Open succeeded with its rebuild failing")
	}
	failRebuild = false
	l = open(t, o)
	got, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shift totals after a failed rebuild and a reopen:\n got %+v\nwant %+v", got, want)
	}
}

// TestReadBackRewritesWrongValues: an event whose stored value reads back
// as another's (a value-log file number used again after a power loss
// lost the file) is written again from its frame (vlog.go, invariant 3).
func TestReadBackRewritesWrongValues(t *testing.T) {
	o := testOptions(t.TempDir())
	boot := "boot 1"
	o.Seams = &ledger.Seams{BootID: func() string { return boot }}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	want := mustAppend(t, l, receiptEvent(eid(1), 6, 1))
	mustAppend(t, l, receiptEvent(eid(2), 6, 2))
	if err := l.OverwriteEvent(store, eid(1), eid(2)); err != nil {
		t.Fatal(err)
	}
	if err := l.CloseAsCrash(); err != nil {
		t.Fatal(err)
	}
	boot = "boot 2"
	l = open(t, o)
	got, err := l.Event(store, eid(1))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Seq != want.Seq {
		t.Fatalf("Event(1) after the read-back = %s at %d, want %s at %d", got.ID, got.Seq, want.ID, want.Seq)
	}
}

func TestValueThresholdValidated(t *testing.T) {
	for _, v := range []int64{0, 255, 1<<20 + 1} {
		o := testOptions(t.TempDir())
		o.ValueThreshold = v
		if err := o.Validate(); !errors.Is(err, storeline.Invalid) || !strings.Contains(err.Error(), "ValueThreshold") {
			t.Errorf("Validate with ValueThreshold %d = %v, want Invalid naming ValueThreshold", v, err)
		}
	}
	o := testOptions(t.TempDir())
	o.ValueThreshold = 256
	if err := o.Validate(); err != nil {
		t.Errorf("Validate with ValueThreshold 256 = %v", err)
	}
}

// runningSums returns the totals of shift t1/sh1 and every balance.
func runningSums(t *testing.T, l *ledger.Ledger) (storeline.ShiftTotals, []ledger.Balance) {
	t.Helper()
	sh, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	bs, err := l.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	return sh, bs
}

// TestApplyFailureLeavesMarker: a batch whose write to Badger fails after
// its answer poisons the ledger and leaves the read-back marker, so the
// next Open, in the same boot, reads back; a successful Open removes it
// (vlog.go, invariant 2).
func TestApplyFailureLeavesMarker(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	var fail atomic.Bool
	o.Seams = &ledger.Seams{
		BootID: func() string { return "one boot" },
		Apply: func(uint64) error {
			if fail.Load() {
				return errors.New("badger write failed")
			}
			return nil
		},
	}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	for n := uint64(1); n <= 20; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 6, int(n)))
	}
	_ = l.Position() // the 20 applied
	fail.Store(true)
	_, _, _ = l.Append(context.Background(), receiptEvent(eid(21), 6, 21)) // answered at its sync or refused: either way the apply fails
	testwait.For(t, "the failed apply to poison the ledger", 5*time.Second, func() bool { return l.Poisoned() != nil })
	l.Close()
	fail.Store(false)
	reopenAfterMarker(t, o, "a failed apply", 20)
}

// reopenAfterMarker checks that the closed ledger of o left the read-back
// marker after what happened, and that opening it (in the same boot) reads
// back at least events values and removes the marker.
func reopenAfterMarker(t *testing.T, o ledger.Options, what string, events int) *ledger.Ledger {
	t.Helper()
	marker := filepath.Join(o.Dir, "wal", "READBACK")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no read-back marker after %s: %v", what, err)
	}
	l := open(t, o)
	if checked, _ := l.LastReadBack(); checked < events {
		t.Fatalf("Open read back %d values after %s, want the %d events at least", checked, what, events)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-back marker still there after Open: %v", err)
	}
	return l
}

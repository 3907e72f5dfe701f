package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/storeline/storeline"
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

// damageValueLog zeroes the value-log files of the ledger in dir that are
// not in synced (files Badger created since its last recorded sync) from a
// point on, as a power loss drops what Badger wrote but had not synced:
// from the first value when rng is nil, else from a random offset. It
// returns how many bytes of values it zeroed.
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
		if rng != nil {
			from += rng.Int64N(fi.Size() - from)
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, fi.Size()-from), from); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		zeroed += fi.Size() - from
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
	for _, ev := range s.Journal {
		if _, err := l.Event(ev.Origin, ev.ID); err != nil {
			t.Fatalf("Event(%s): %v", ev.ID, err)
		}
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
	o.ValueThreshold = 128 // shift totals with an opening mark go to the value log too
	boots := 0
	o.Seams = &ledger.Seams{BootID: func() string { boots++; return fmt.Sprint("boot ", boots) }}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, shiftEvent(eid(1<<40), &storeline.ShiftOpen{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR", Float: dec("100")}))
	var items []string
	for n := uint64(1); n <= 300; n++ {
		mustAppend(t, l, receiptEvent(eid(n), 1+int(n%8), int(n)))
		if n%30 == 0 {
			id := fmt.Sprintf("item%d", n)
			it := item(id, "SKU"+id)
			it.Name = strings.Repeat("long name ", 20) // past the threshold
			if _, err := l.PutMaster(ctx, []storeline.Record{it}); err != nil {
				t.Fatal(err)
			}
			items = append(items, id)
		}
	}
	if err := l.SetMeta(ctx, "cursor", bytes.Repeat([]byte("c"), 300)); err != nil {
		t.Fatal(err)
	}
	want := readState(t, l, items)
	if err := l.CloseAsCrash(); err != nil {
		t.Fatal(err)
	}
	if n := damageValueLog(t, dir, nil, nil); n < 100_000 {
		t.Fatalf("zeroed %d bytes of the value log: events are not stored there", n)
	}

	l = open(t, o)
	if checked, rewritten := l.LastReadBack(); rewritten < 300 || checked < rewritten {
		t.Fatalf("Open read back %d values and rewrote %d, want every event rewritten", checked, rewritten)
	}
	if got := readState(t, l, items); !reflect.DeepEqual(got, want) {
		t.Fatalf("after losing the value log:\n got %+v\nwant %+v", got.Shift, want.Shift)
	}
	if err := l.CheckConservation(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, receiptEvent(eid(1000), 3, 1))
	if err := verify(l, map[storeline.EventID]bool{eid(1): true, eid(1000): true}); err != nil {
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

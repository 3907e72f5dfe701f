package ledger_test

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/storeline/storeline/ledger"
)

// dirBytes is the size of every file under dir.
func dirBytes(t testing.TB, dir string) (total int64, vlog int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// Blocks on disk, not the apparent size: Badger sizes a value-log
		// file it writes at twice its file size, sparse.
		n := fi.Sys().(*syscall.Stat_t).Blocks * 512
		total += n
		if filepath.Ext(p) == ".vlog" {
			vlog += n
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return total, vlog
}

var measureRetentionDisk = flag.Bool("ledger.retention-disk", false, "measure what a prune of 100,000 receipts gives back on disk (TestReview19RetentionDiskSpace)")

// TestReview19RetentionDiskSpace measures what a prune of everything gives
// back on disk (-ledger.retention-disk; not part of make test).
func TestReview19RetentionDiskSpace(t *testing.T) {
	if !*measureRetentionDisk {
		t.Skip("needs -ledger.retention-disk")
	}
	dir := t.TempDir()
	o, w := retentionOptions(t, dir)
	l := open(t, o)
	const n, writers = 100000, 8
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += writers {
				if _, _, err := l.Append(context.Background(), dated(receiptEvent(eid(uint64(i+1)), 6, i), day0)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	l.Close()
	l = open(t, o)
	full, fullV := dirBytes(t, dir)
	t.Logf("after %d receipts, reopened: %d bytes (%d in .vlog)", n, full, fullV)
	w.set(day0.Add(later))
	pruned := 0
	for {
		res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position(), Limit: 2000})
		pruned += res.Pruned
		if !res.More {
			break
		}
	}
	a, av := dirBytes(t, dir)
	t.Logf("pruned %d: %d bytes (%d in .vlog)", pruned, a, av)
	l.Close()
	l = open(t, o)
	b, bv := dirBytes(t, dir)
	t.Logf("closed, reopened: %d bytes (%d in .vlog)", b, bv)
	files, err := l.RunValueLogGC()
	gb, gbv := dirBytes(t, dir)
	t.Logf("value-log GC rewrote %d files (%v): %d bytes (%d in .vlog)", files, err, gb, gbv)
	if err := l.FlattenBadger(); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	files, err = l.RunValueLogGC()
	fb, fbv := dirBytes(t, dir)
	ents, _ := filepath.Glob(filepath.Join(dir, "*", "*.vlog"))
	for _, e := range ents {
		fi, _ := os.Stat(e)
		t.Logf("%s %d", e, fi.Size())
	}
	t.Logf("flattened, value-log GC rewrote %d files (%v): %d bytes (%d in .vlog)", files, err, fb, fbv)
	// A shop trades on: another batch at the new day.
	for i := 0; i < 2000; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(n+i+1)), 6, i), w.now()))
	}
	l.Close()
	l = open(t, o)
	c, cv := dirBytes(t, dir)
	t.Logf("2000 more, closed, reopened: %d bytes (%d in .vlog)", c, cv)
	checkConservation(t, l)
	l.Close()
}

// TestReview19PruneGivesValueLogSpaceBack: the bodies of pruned receipts
// live in Badger's value log, which nothing rewrote, so a prune gave no
// disk space back (retention.go, invariant 7). After a prune of every
// receipt and the compaction that records the garbage, the value-log GC
// rewrites files and the value log shrinks; the receipts kept and the
// balances survive it, a crash right after it and a reopen.
func TestReview19PruneGivesValueLogSpaceBack(t *testing.T) {
	dir := t.TempDir()
	o, w := retentionOptions(t, dir)
	o.Seams = &ledger.Seams{ValueLogFileBytes: 1 << 20}
	// Small memtables: many flushed tables, which compactions merge.
	o.MaxBatchBytes = 64 << 10
	o.MemTableBytes = 8 * int64(o.MaxBatchBytes)
	l := open(t, o)
	const old, young = 1500, 20
	for i := 1; i <= old; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(i)), 6, i), day0))
	}
	w.set(day0.Add(later))
	for i := old + 1; i <= old+young; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(i)), 6, i), w.now()))
	}
	want := allBalances(t, l)
	for {
		res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()})
		if !res.More {
			break
		}
	}
	// The garbage is counted by compactions of flushed tables only.
	l.Close()
	l = open(t, o)
	if err := l.FlattenBadger(); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	_, before := dirBytes(t, dir)
	files, err := l.RunValueLogGC()
	if err != nil {
		t.Fatalf("value-log GC: %v", err)
	}
	_, after := dirBytes(t, dir)
	t.Logf("value-log GC rewrote %d files: .vlog %d -> %d bytes", files, before, after)
	if files == 0 || after >= before/2 {
		t.Fatalf("value-log GC rewrote %d files: .vlog %d -> %d bytes, want it at least halved", files, before, after)
	}
	if err := l.CloseAsCrash(); err != nil {
		t.Fatalf("CloseAsCrash: %v", err)
	}
	l = open(t, o)
	defer l.Close()
	wantPruned(t, l, store, 0, 1, old, true)
	wantPruned(t, l, store, 0, old+1, old+young, false)
	sameBalances(t, "after the GC and a crash", allBalances(t, l), want)
	checkConservation(t, l)
}

// TestReview19PruneFitsSmallMemTable: a prune's transaction grew with its
// Limit alone, so at the smallest MemTableBytes Options allow the default
// Limit (and MaxPruneLimit at the test's 8 MiB) was refused whole
// (TooLarge) at every call, and the journal never shrank. A call now stops
// where one transaction is full and says More.
func TestReview19PruneFitsSmallMemTable(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	o.MaxBatchBytes = 64 << 10
	o.MemTableBytes = 8 * int64(o.MaxBatchBytes)
	l := open(t, o)
	defer l.Close()
	const old = 1500
	for i := 1; i <= old; i++ {
		mustAppend(t, l, dated(receiptEvent(eid(uint64(i)), 6, i), day0))
	}
	want := allBalances(t, l)
	w.set(day0.Add(later))
	calls, pruned := 0, 0
	for {
		res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position(), Limit: ledger.MaxPruneLimit})
		calls++
		pruned += res.Pruned
		if !res.More {
			break
		}
		if res.Pruned == 0 {
			t.Fatalf("call %d pruned nothing and says More", calls)
		}
	}
	if pruned != old || calls < 2 {
		t.Fatalf("pruned %d in %d calls, want %d in more than one", pruned, calls, old)
	}
	wantPruned(t, l, store, 0, 1, old, true)
	sameBalances(t, "after the prune", allBalances(t, l), want)
	checkConservation(t, l)
}

// TestReview19PruneUnderLoad: 8 writers append receipts (pipelined
// batches over the same hot balance keys) while prunes of what is
// acknowledged so far run one after another. Every receipt is then whole
// or a stub, once; the stubs count the pruned; balances equal a ledger
// that took the same receipts unpruned, before and after a reopen.
func TestReview19PruneUnderLoad(t *testing.T) {
	dir := t.TempDir()
	o, _ := retentionOptions(t, dir)
	l := open(t, o)
	const writers, each = 8, 150
	stop := make(chan struct{})
	pruned := make(chan int, 1)
	go func() {
		total := 0
		defer func() { pruned <- total }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := l.PruneJournal(context.Background(), ledger.PruneJournal{
				Before: day0.Add(time.Hour), Acked: l.Position(), Limit: 50})
			if err != nil {
				t.Errorf("PruneJournal: %v", err)
				return
			}
			total += res.Pruned
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := g*each + i + 1
				if _, _, err := l.Append(context.Background(), dated(receiptEvent(eid(uint64(n)), 1+n%4, n), day0)); err != nil {
					t.Errorf("Append(%d): %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	total := <-pruned
	if t.Failed() {
		l.Close()
		return
	}
	// The rest, once every append is acknowledged.
	for {
		res := prune(t, l, ledger.PruneJournal{Before: day0.Add(time.Hour), Acked: l.Position(), Limit: 200})
		total += res.Pruned
		if !res.More {
			break
		}
	}
	ref := open(t, testOptions(t.TempDir()))
	defer ref.Close()
	for n := 1; n <= writers*each; n++ {
		mustAppend(t, ref, dated(receiptEvent(eid(uint64(n)), 1+n%4, n), day0))
	}
	want := allBalances(t, ref)
	check := func(what string) {
		t.Helper()
		stubs := 0
		for n := 1; n <= writers*each; n++ {
			_, err := l.Event(store, eid(uint64(n)))
			switch {
			case errors.Is(err, ledger.ErrPruned):
				stubs++
			case err != nil:
				t.Fatalf("%s: Event(%d): %v", what, n, err)
			}
		}
		if stubs != total || stubs != writers*each {
			t.Fatalf("%s: %d stubs, %d pruned, want %d", what, stubs, total, writers*each)
		}
		if res := prune(t, l, ledger.PruneJournal{Before: day0.Add(time.Hour), Acked: l.Position()}); res.Stubs != uint64(total) || res.Pruned != 0 {
			t.Fatalf("%s: prune again = %+v, want %d stubs, nothing pruned", what, res, total)
		}
		sameBalances(t, what, allBalances(t, l), want)
		checkConservation(t, l)
	}
	check("under load")
	if err := l.CloseAsCrash(); err != nil {
		t.Fatalf("CloseAsCrash: %v", err)
	}
	l = open(t, o)
	defer l.Close()
	check("reopened after a crash")
}

package ledger_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestNoAckBeforeSync blocks the WAL sync and checks that no Append
// returns until it is released.
func TestNoAckBeforeSync(t *testing.T) {
	o := testOptions(t.TempDir())
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var released, block atomic.Bool
	var syncs atomic.Int64
	o.Seams = &ledger.Seams{Sync: func(f ledger.File) error {
		if block.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		syncs.Add(1)
		return f.Sync()
	}}
	l := open(t, o)
	mustAppend(t, l, receiptEvent(eid(1), 1, 0))
	block.Store(true)
	const n = 16
	var early atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := l.Append(context.Background(), receiptEvent(eid(uint64(10+i)), 2, i)); err != nil {
				t.Errorf("Append: %v", err)
			}
			if !released.Load() {
				early.Add(1)
			}
		}()
	}
	<-entered
	released.Store(true)
	block.Store(false)
	close(release)
	wg.Wait()
	if e := early.Load(); e != 0 {
		t.Fatalf("%d appends returned while their sync was blocked", e)
	}
	if p := l.Position(); p.Seq != n+1 {
		t.Fatalf("Position = %v, want seq %d", p, n+1)
	}
	if s := syncs.Load(); s > n+1 {
		t.Fatalf("%d syncs for %d appends", s, n+1)
	}
}

// TestFailedSyncPoisons fails a sync: no caller of that batch or later
// gets success, and after a power loss and reopen the batch is absent and
// can be appended afresh.
func TestFailedSyncPoisons(t *testing.T) {
	dir := t.TempDir()
	cfs := newCrashFS()
	o := testOptions(dir)
	var fail atomic.Bool
	o.Seams = &ledger.Seams{FS: cfs, Sync: func(f ledger.File) error {
		if fail.Load() {
			return errInjected
		}
		return f.Sync()
	}}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, receiptEvent(eid(1), 1, 0))
	fail.Store(true)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := l.Append(context.Background(), receiptEvent(eid(uint64(10+i)), 2, i))
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, storeline.Unavailable) {
				t.Errorf("Append after failed sync: %v, want Unavailable", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 0 {
		t.Fatalf("%d appends succeeded after a failed sync", ok.Load())
	}
	fail.Store(false) // even a healthy disk now: the ledger stays poisoned
	if _, _, err := l.Append(context.Background(), receiptEvent(eid(10), 2, 0)); !errors.Is(err, storeline.Unavailable) {
		t.Fatalf("Append on a poisoned ledger: %v, want Unavailable", err)
	}
	if l.Poisoned() == nil {
		t.Fatal("Poisoned() = nil after a failed sync")
	}
	if err := l.SetMeta(context.Background(), "k", []byte("v")); !errors.Is(err, storeline.Unavailable) {
		t.Fatalf("SetMeta on a poisoned ledger: %v, want Unavailable", err)
	}
	l.Close()
	cfs.Crash()
	o.Clock = testClock()
	l2 := open(t, o)
	for i := range 8 {
		if _, err := l2.Event(store, eid(uint64(10+i))); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("Event of the failed batch after reopen: %v, want NotFound", err)
		}
	}
	got, created, err := l2.Append(context.Background(), receiptEvent(eid(10), 2, 0))
	if err != nil || !created || got.Seq != 2 {
		t.Fatalf("Append after reopen = seq %d created %v err %v, want seq 2 created", got.Seq, created, err)
	}
	checkConservation(t, l2)
}

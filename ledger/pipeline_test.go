package ledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline/ledger"
)

// TestPipelinedBatchesSeeEachOther drives many writers whose receipts all
// fold into one shift's totals and the same balances, each also retrying
// the receipt another writer has just sent (it may still be in flight, in
// the batch being applied while the next one is resolved). Every receipt
// must be created exactly once, the shift totals (a read-modify-write of one
// key in every batch) must count each once, the journal must be dense and
// the balances conserved: a batch that read a key without the previous,
// not yet applied batch's write would lose an update or a duplicate.
func TestPipelinedBatchesSeeEachOther(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	const writers, each = 16, 25
	n := writers * each
	created := make([]atomic.Int32, n+1)
	var last atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := uint64(w*each + i + 1)
				if _, ok, err := l.Append(context.Background(), receiptEvent(eid(id), 5, int(id))); err != nil {
					errs <- err
					return
				} else if ok {
					created[id].Add(1)
				}
				other := last.Swap(id)
				if other == 0 {
					continue
				}
				if _, ok, err := l.Append(context.Background(), receiptEvent(eid(other), 5, int(other))); err != nil {
					errs <- err
					return
				} else if ok {
					created[other].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sales := decimal.Zero
	for id := 1; id <= n; id++ {
		if c := created[id].Load(); c != 1 {
			t.Fatalf("receipt %d created %d times, want once", id, c)
		}
		for _, p := range receipt(5, id).Payments {
			sales = sales.Add(p.Amount)
		}
	}
	tot, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if tot.Receipts != n || !tot.Sales.Equal(sales) {
		t.Fatalf("shift totals: %d receipts, sales %s; want %d and %s", tot.Receipts, tot.Sales, n, sales)
	}
	// The drawer's cash: one balance changed by every receipt of every
	// batch.
	if cash, err := l.Balance("cash/s1/t1", "cur:EUR"); err != nil || !cash.Equal(sales) {
		t.Fatalf("cash balance %s (%v), want %s", cash, err, sales)
	}
	if pos := l.Position(); pos.Seq != uint64(n) {
		t.Fatalf("position %s, want seq %d: own sequence numbers are dense", pos, n)
	}
	evs, err := l.Journal(store, ledger.Position{}, ledger.MaxJournalLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("journal holds %d events, want %d", len(evs), n)
	}
	checkConservation(t, l)
}

// TestAppendsDoNotWaitForTheApplier holds the applier in its first batch
// (the Apply seam blocks) and appends more from one writer: each is
// answered at its WAL sync while the batches queue behind the held one, so one writer's receipts do not wait for the applier to wake
// and take them (commit.go, invariant 12). Reads wait for all of them.
func TestAppendsDoNotWaitForTheApplier(t *testing.T) {
	entered := make(chan uint64, 1)
	release := make(chan struct{})
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{Apply: func(lsn uint64) error {
		select {
		case entered <- lsn:
		default:
		}
		<-release
		return nil
	}}
	l := open(t, o)
	released := false
	releaseOnce := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer releaseOnce() // Close waits for the applier
	guard := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			releaseOnce()
			t.Fatalf("%s: still waiting after 10 s", what)
		}
	}
	mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	held := make(chan struct{})
	go func() { <-entered; close(held) }()
	guard("the applier to take the first batch", held)

	n := 3 // batches queued behind the held one (applierQueue holds 4)
	done := make(chan struct{})
	errs := make(chan error, n)
	go func() {
		defer close(done)
		for i := 2; i <= n+1; i++ {
			if _, _, err := l.Append(context.Background(), receiptEvent(eid(uint64(i)), 2, i)); err != nil {
				errs <- err
				return
			}
		}
	}()
	guard("appends answered while the applier is held", done)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	releaseOnce()
	if p := l.Position(); p.Seq != uint64(n+1) { // waits for every answered batch
		t.Fatalf("position %s after %d appends", p, n+1)
	}
	for i := 1; i <= n+1; i++ {
		if _, err := l.Event(store, eid(uint64(i))); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	checkConservation(t, l)
}

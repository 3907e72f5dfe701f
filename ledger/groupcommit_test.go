package ledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
)

// TestGroupCommitWait (commit.go, invariant 14): after a batch of seven
// events, a lone append waits for the queue, and appends that arrive
// while it waits share its sync (seven are sent: six fill the batch up to
// the last one's size and the seventh follows); with GroupCommitWait 0 it
// goes alone. A wait bounded
// by a short last sync ends on its own: the lone append is answered
// alone.
func TestGroupCommitWait(t *testing.T) {
	cases := []struct {
		name      string
		wait      time.Duration // Options.GroupCommitWait
		lastSync  time.Duration // the last sync's time, the wait's other bound
		joiners   int           // appends started once the lone one waits
		wantBatch int           // requests in the lone append's batch
	}{
		{"waits and fills", 10 * time.Second, time.Minute, 7, 7},
		{"never waits", 0, time.Minute, 0, 1},
		{"bounded by the last sync", 10 * time.Second, 20 * time.Millisecond, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var held atomic.Bool
			release, inSync := make(chan struct{}), make(chan struct{}, 1)
			var releaseOnce sync.Once
			unhold := func() { releaseOnce.Do(func() { held.Store(false); close(release) }) }
			var mu sync.Mutex
			var sizes []int
			o := testOptions(t.TempDir())
			o.GroupCommitWait = tc.wait
			o.Seams = &ledger.Seams{
				Sync: func(f ledger.File) error {
					if held.Load() {
						inSync <- struct{}{}
						<-release
					}
					return f.Sync()
				},
				Publish: func(_ uint64, n int) {
					mu.Lock()
					sizes = append(sizes, n)
					mu.Unlock()
				},
			}
			l := open(t, o)
			t.Cleanup(unhold) // before Close, which a held sync would block
			ctx := context.Background()
			next := uint64(0)
			appendAsync := func(wg *sync.WaitGroup) {
				next++
				id := next
				wg.Go(func() {
					if _, _, err := l.Append(ctx, receiptEvent(eid(id), 2, int(id))); err != nil {
						t.Errorf("Append %d: %v", id, err)
					}
				})
			}
			waitUntil := func(what string, cond func() bool) {
				t.Helper()
				testwait.For(t, what, 10*time.Second, cond)
			}
			published := func() []int {
				mu.Lock()
				defer mu.Unlock()
				return append([]int(nil), sizes...)
			}

			// A batch of seven: one append holds its sync while seven queue
			// (the committer goroutine takes one and waits for the token).
			var first sync.WaitGroup
			held.Store(true)
			appendAsync(&first)
			select {
			case <-inSync:
			case <-time.After(10 * time.Second):
				t.Fatal("the first append never synced")
			}
			var seven sync.WaitGroup
			for range 7 {
				appendAsync(&seven)
			}
			waitUntil("seven queued", func() bool { return l.QueueLen() == 6 })
			unhold()
			first.Wait()
			seven.Wait()
			waitUntil("two batches applied", func() bool { return len(published()) == 2 })
			if got := published(); got[1] != 7 {
				t.Fatalf("batches %v, want the seven queued in one", got)
			}

			l.SetLastSync(tc.lastSync)
			waits := l.GroupCommitWaits()
			var lone sync.WaitGroup
			appendAsync(&lone)
			if tc.joiners > 0 {
				waitUntil("the lone append to wait", func() bool { return l.GroupCommitWaits() > waits })
				for range tc.joiners {
					appendAsync(&lone)
				}
			}
			answered := make(chan struct{})
			go func() { lone.Wait(); close(answered) }()
			select {
			case <-answered:
			case <-time.After(5 * time.Second):
				// Far beyond a 20 ms last sync: the wait ignored its bound.
				t.Fatalf("no answer in 5 s (GroupCommitWait %v, last sync %v)", tc.wait, tc.lastSync)
			}
			total := 1 + 7 + 1 + tc.joiners
			sum := func(xs []int) (n int) {
				for _, x := range xs {
					n += x
				}
				return n
			}
			waitUntil("every batch applied", func() bool { return sum(published()) == total })
			if got := published(); got[2] != tc.wantBatch {
				t.Errorf("batches %v, want the lone append's (the third) of %d", got, tc.wantBatch)
			}
			if waited := l.GroupCommitWaits() > waits; waited != (tc.wait > 0) {
				t.Errorf("the lone append waited: %v, want %v", waited, tc.wait > 0)
			}
			checkConservation(t, l)
		})
	}
}

// TestWaitingBatchGetsTheNextRequest (commit.go, invariant 14): a lone
// append waiting for its batch to fill gets the next request, although the
// committer goroutine, parked on the queue since Open, receives it first:
// two tills' receipts share one sync instead of one of them waiting out
// the wait alone while the other sits with a goroutine that wants the
// token.
func TestWaitingBatchGetsTheNextRequest(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	o := testOptions(t.TempDir())
	o.GroupCommitWait = 10 * time.Second
	o.Seams = &ledger.Seams{Publish: func(_ uint64, n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}}
	l := open(t, o)
	for round := range 3 {
		l.SetLastSync(time.Minute) // the wait ends when the batch is full
		l.SetLastBatch(2)
		waits := l.GroupCommitWaits()
		var wg sync.WaitGroup
		for i := range 2 {
			id := uint64(2*round + i + 1)
			wg.Go(func() {
				if _, _, err := l.Append(context.Background(), receiptEvent(eid(id), 2, int(id))); err != nil {
					t.Errorf("Append %d: %v", id, err)
				}
			})
			if i == 0 {
				testwait.For(t, "the first append to wait", 10*time.Second, func() bool { return l.GroupCommitWaits() > waits })
			}
		}
		answered := make(chan struct{})
		go func() { wg.Wait(); close(answered) }()
		select {
		case <-answered:
		case <-time.After(5 * time.Second): // half the wait: it did not end by the batch filling
			t.Fatalf("round %d: the waiting batch never got the second append", round)
		}
		testwait.For(t, "the batch applied", 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(sizes) == round+1
		})
		mu.Lock()
		got := sizes[round]
		mu.Unlock()
		if got != 2 {
			t.Fatalf("round %d: batch of %d, want both appends in one", round, got)
		}
	}
	checkConservation(t, l)
}

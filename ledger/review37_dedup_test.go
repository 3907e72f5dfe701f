package ledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/storeline/storeline/ledger"
)

// TestReview37DedupConcurrentAcrossInstall: writers racing on the same IDs
// (pipelined batches, the overlay, two Appends of one ID in one batch)
// while the filter of own IDs is being filled, installed and then used,
// create each ID exactly once, and every retry afterwards, in this run
// and after a reopen, finds the stored event.
func TestReview37DedupConcurrentAcrossInstall(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const before, ids, writers = 100, 600, 8
	l := open(t, testOptions(dir))
	for i := uint64(1); i <= before; i++ {
		mustAppend(t, l, receiptEvent(eid(i), 1, int(i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	snapshot, release, filled := make(chan struct{}), make(chan struct{}), make(chan struct{})
	o := testOptions(dir)
	o.Seams = &ledger.Seams{
		FillOwnIDs: func() { close(snapshot); <-release },
		Filled:     func() { close(filled) },
	}
	l = open(t, o)
	<-snapshot

	var created [before + ids + 1]atomic.Int32
	var done atomic.Int64
	var releaseOnce sync.Once
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every writer appends every ID (old ones too), each from
			// its own starting point, so the same ID meets itself in a
			// batch, in the overlay and across the filter's install.
			for k := range before + ids {
				n := uint64((k+w*(before+ids)/writers)%(before+ids)) + 1
				_, c, err := l.Append(ctx, receiptEvent(eid(n), 1, int(n)))
				if err != nil {
					t.Error(err)
					return
				}
				if c {
					created[n].Add(1)
				}
				if done.Add(1) == (before+ids)*writers/3 {
					releaseOnce.Do(func() { close(release) })
				}
			}
		}()
	}
	wg.Wait()
	releaseOnce.Do(func() { close(release) })
	<-filled
	for n := 1; n <= before+ids; n++ {
		want := int32(1)
		if n <= before {
			want = 0
		}
		if got := created[n].Load(); got != want {
			t.Fatalf("ID %d created %d times, want %d", n, got, want)
		}
	}
	retry := func(l *ledger.Ledger, when string) {
		t.Helper()
		for n := uint64(1); n <= before+ids; n++ {
			if _, c, err := l.Append(ctx, receiptEvent(eid(n), 1, int(n))); err != nil || c {
				t.Fatalf("%s: retry of %d: created %v, err %v", when, n, c, err)
			}
		}
		if p := l.Position(); p.Seq != before+ids {
			t.Fatalf("%s: position %v, want seq %d", when, p, before+ids)
		}
		checkConservation(t, l)
	}
	retry(l, "installed")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	refilled := make(chan struct{})
	o.Seams = &ledger.Seams{Filled: func() { close(refilled) }}
	l = open(t, o)
	<-refilled
	retry(l, "reopened")
}

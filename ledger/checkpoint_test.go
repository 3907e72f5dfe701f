package ledger_test

import (
	"context"
	"sync"
	"testing"

	"github.com/storeline/storeline/ledger"
)

func TestCheckpointDropsSegments(t *testing.T) {
	cfs := newCrashFS()
	o := testOptions(t.TempDir())
	o.WALSegmentBytes = 1<<20 + 64<<10
	o.MaxBatchBytes = 32 << 10
	o.Seams = &ledger.Seams{FS: cfs}
	l := open(t, o)
	n := uint64(0)
	for l.WALSegments() < 4 {
		var wg sync.WaitGroup
		for range 64 {
			n++
			wg.Add(1)
			go func(id uint64) {
				defer wg.Done()
				if _, _, err := l.Append(context.Background(), receiptEvent(eid(id), 40, int(id))); err != nil {
					t.Errorf("Append: %v", err)
				}
			}(n)
		}
		wg.Wait()
	}
	l.CheckpointNow()
	if s := l.WALSegments(); s != 1 {
		t.Fatalf("WALSegments after checkpoint = %d, want 1 (names %v)", s, cfs.names())
	}
	mustAppend(t, l, receiptEvent(eid(n+1), 3, 0))
	l.Close()
	o.Clock = testClock()
	l2 := open(t, o)
	if p := l2.Position(); p.Seq != n+1 {
		t.Fatalf("Position after checkpoint and reopen = %v, want seq %d", p, n+1)
	}
	checkConservation(t, l2)
}

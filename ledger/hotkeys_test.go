package ledger_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestBalancesFollowPulledPages moves one balance through a remote event,
// a pulled page and another remote event: the pulled page is written
// past the committer's decoded balances (it is not pipelined), so the
// last event must not add to the value the first left there.
func TestBalancesFollowPulledPages(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.ApplyRemote(ctx, transferFrom("hq2", 10, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"),
		Events: []storeline.Event{transferFrom("hq", 1, 5)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyRemote(ctx, transferFrom("hq2", 11, 2)); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Balance("stock/s1/food/i1", "item:i1"); err != nil || !b.Equal(dec("10")) {
		t.Fatalf("Balance(stock/s1/food/i1) = %s (%v), want 3 + 5 + 2 = 10", b, err)
	}
	checkConservation(t, l)
}

// fullFS fails the creation of WAL segments while full is set, as a full
// disk would.
type fullFS struct {
	*crashFS
	full atomic.Bool
}

func (f *fullFS) OpenFile(name string, flag int, perm fs.FileMode) (ledger.File, error) {
	if f.full.Load() && strings.HasSuffix(name, ".tmp") {
		return nil, errors.New("no space left on device (test)")
	}
	return f.crashFS.OpenFile(name, flag, perm)
}

// TestRefusedBatchLeavesShiftTotals fills the WAL while no new segment
// can be made, so an append is refused whole (nothing written), then lets
// the disk free up and appends on: the refused receipt must count
// nowhere, also not in the shift totals the committer keeps decoded
// between batches (a refused batch folded into them in place would).
func TestRefusedBatchLeavesShiftTotals(t *testing.T) {
	ctx := context.Background()
	ffs := &fullFS{crashFS: newCrashFS()}
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{FS: ffs}
	o.MaxBatchBytes = 64 << 10
	o.WALSegmentBytes = 64<<10 + ledger.MaxEventBytes + 64<<10
	l := open(t, o)
	next := uint64(1)
	refused := 0
	ffs.full.Store(true)
	for refused == 0 {
		if next > 5000 {
			t.Fatal("no append refused with the disk full")
		}
		_, _, err := l.Append(ctx, receiptEvent(eid(next), 5, int(next)))
		next++
		switch {
		case err == nil:
		case storeline.KindOf(err) == storeline.InsufficientStorage || storeline.KindOf(err) == storeline.Unavailable:
			if l.Poisoned() != nil {
				t.Fatalf("a refused batch poisoned the ledger: %v", err)
			}
			refused++
		default:
			t.Fatalf("Append: %v", err)
		}
	}
	ffs.full.Store(false)
	// The refusal prepares the segment again in the background: retry
	// until it is there.
	for i := 0; i < 20; {
		if next > 20000 {
			t.Fatal("appends still refused after the disk freed up")
		}
		if _, _, err := l.Append(ctx, receiptEvent(eid(next), 5, int(next))); err == nil {
			i++
		} else if l.Poisoned() != nil {
			t.Fatal(err)
		}
		next++
	}
	if err := checkShiftTotals(l, shiftRefs()); err != nil {
		t.Fatal(err)
	}
	checkConservation(t, l)
}

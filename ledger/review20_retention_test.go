package ledger_test

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview20PrunedDateOfFutureDated: a receipt a till dated years
// ahead (its clock wrong, within the years CheckEventTime takes) marks as
// pruned no later than the day after the ledger took it: its business
// date would have reports refuse every day until then, years of days the
// shop holds whole.
func TestReview20PrunedDateOfFutureDated(t *testing.T) {
	o, w := retentionOptions(t, t.TempDir())
	l := open(t, o)
	mustAppend(t, l, dated(receiptEvent(eid(1), 2, 1), day0))
	mustAppend(t, l, dated(receiptEvent(eid(2), 2, 2), time.Date(2031, 1, 1, 10, 0, 0, 0, time.UTC)))
	w.set(day0.Add(later))
	if res := prune(t, l, ledger.PruneJournal{Before: cutoff, Acked: l.Position()}); res.Pruned != 2 {
		t.Fatalf("prune = %+v, want 2 pruned", res)
	}
	want := storeline.Date(day0.AddDate(0, 0, 1).Format(time.DateOnly))
	if d, err := l.PrunedDate(); err != nil || d != want {
		t.Fatalf("PrunedDate = %q, %v; want %s, the day after the ledger took the receipts", d, err, want)
	}
}

package pricing_test

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestReview11PriceDoesNotRevertInFallBackHour: a price from 02:30 on the
// night Berlin's clocks go back (2026-10-25, 03:00 CEST → 02:00 CET) is
// due at 02:30 CEST, the instant the change feed gives the tills
// (README: a price's from is "the instant the node switches to it"). When
// the clocks read 02:00-02:30 again, an hour later, the node priced the
// old price once more: the shop's price went back for half an hour, and
// every receipt the tills priced at the new one was a discrepancy.
func TestReview11PriceDoesNotRevertInFallBackHour(t *testing.T) {
	recs := append(fixture(),
		&storeline.Price{List: "base", Item: "cola", From: wall("2026-10-25T02:30"), Price: dec("2.50")},
		&storeline.Price{List: "base", Item: "cola", From: wall("2026-10-25T03:00"), Price: dec("3.00")},
	)
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Fatalf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
	}
	eng := pricing.New(pricing.NewMemCatalog(recs))
	for _, tc := range []struct {
		at   time.Time
		what string
		want string
	}{
		{time.Date(2026, 10, 25, 0, 15, 0, 0, time.UTC), "02:15 CEST", "2.00"},
		{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), "02:30 CEST", "2.50"},
		{time.Date(2026, 10, 25, 0, 59, 59, 0, time.UTC), "02:59:59 CEST", "2.50"},
		{time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), "02:00 CET, the clocks gone back", "2.50"},
		{time.Date(2026, 10, 25, 1, 15, 0, 0, time.UTC), "02:15 CET", "2.50"},
		{time.Date(2026, 10, 25, 1, 45, 0, 0, time.UTC), "02:45 CET", "2.50"},
		{time.Date(2026, 10, 25, 1, 59, 59, 0, time.UTC), "02:59:59 CET", "2.50"},
		{time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC), "03:00 CET", "3.00"},
		// Spring forward (2026-03-29, 02:00 CET → 03:00 CEST) needs nothing.
		{time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), "03:00 CEST", "2.00"},
	} {
		res, err := eng.Price(pricing.Basket{Store: store(), At: tc.at, Lines: []pricing.BasketLine{bl("cola", "1")}})
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if got := res.Lines[0].Price.StringFixed(2); got != tc.want {
			t.Errorf("cola at %s (%s) = %s, want %s", tc.what, tc.at.Format(time.RFC3339), got, tc.want)
		}
	}
}

package pricing_test

import (
	"fmt"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestReview2SpendableWithinShare: the points Spendable allows are worth
// (PointsMoney, rounded to the currency) at most MaxShare percent of the
// receipt's total. A point value with more places than the currency made
// floor(limit / value) points round up past the limit: 2 points of 0.0075
// are 0.015, paid as 0.02, on a receipt of 0.03 whose half is 0.015.
func TestReview2SpendableWithinShare(t *testing.T) {
	p := sampleProgramme()
	for _, tc := range []struct {
		pv, share string
	}{
		{"0.0075", "50"}, {"0.0075", "33.33"}, {"0.0125", "10"}, {"0.0005", "1"}, {"0.3333", "50"},
	} {
		p.PointValue, p.MaxShare = dec(tc.pv), dec(tc.share)
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		for cents := 1; cents <= 500; cents++ {
			total := dec(fmt.Sprintf("%d.%02d", cents/100, cents%100))
			limit := total.Mul(p.MaxShare).Div(dec("100"))
			n := pricing.Spendable(p, storeline.MaxPoints, total, -1)
			if worth := pricing.PointsMoney(p, "EUR", n); worth.GreaterThan(limit) {
				t.Fatalf("point value %s, share %s%%: Spendable on %s = %d points, worth %s > %s%% of the total (%s)",
					tc.pv, tc.share, total, n, worth, tc.share, limit)
			}
			// No fewer than need be: one more point is worth more than
			// the limit, exactly or once rounded.
			more := dec(fmt.Sprint(n + 1)).Mul(p.PointValue)
			if worth := pricing.PointsMoney(p, "EUR", n+1); !worth.GreaterThan(limit) && !more.GreaterThan(limit) {
				t.Fatalf("point value %s, share %s%%: Spendable on %s = %d points, but %d are worth %s ≤ %s",
					tc.pv, tc.share, total, n, n+1, worth, limit)
			}
		}
	}
}

// TestReview2AccrueBounded: a receipt's accrual is at most
// storeline.MaxPoints (a receipt earning more is refused as Invalid,
// which would refuse a sale already paid) and never wraps below zero,
// however large the lines the engine accepts.
func TestReview2AccrueBounded(t *testing.T) {
	p := sampleProgramme()
	p.Currency = "JPY"
	p.DefaultRate = dec("1000")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	rules := pricing.NewRules(fixture())
	// 1000 lines of the largest gross the engine prices: 100,000 units at
	// 10^10 yen.
	lines := make([]pricing.AccrualLine, pricing.MaxLines)
	for i := range lines {
		lines[i] = pricing.AccrualLine{Item: "cola", Group: "drinks", Total: dec("1e15")}
	}
	pts, sum := pricing.Accrue(rules, p, "JPY", lines)
	if sum < 0 || sum > storeline.MaxPoints {
		t.Fatalf("accrual %d out of [0, %d]", sum, int64(storeline.MaxPoints))
	}
	for i, n := range pts {
		if n < 0 || n > storeline.MaxPoints {
			t.Fatalf("line %d earns %d, out of [0, %d]", i, n, int64(storeline.MaxPoints))
		}
	}
	if sum != storeline.MaxPoints {
		t.Fatalf("accrual %d, want the bound %d", sum, int64(storeline.MaxPoints))
	}
}

// TestReview2UnknownZoneNamesStore: a store whose time zone is unknown is
// refused naming store.time_zone, as "Local" is: the basket's field is
// the store's.
func TestReview2UnknownZoneNamesStore(t *testing.T) {
	st := store()
	st.TimeZone = "Mars/Olympus_Mons"
	_, err := pricing.New(pricing.NewMemCatalog(fixture())).Price(pricing.Basket{Store: st, At: t0, Lines: []pricing.BasketLine{bl("milk", "1")}})
	if storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != "store.time_zone" {
		t.Fatalf("Price with time zone %q = %v (field %q), want Invalid naming store.time_zone", st.TimeZone, err, storeline.FieldOf(err))
	}
}

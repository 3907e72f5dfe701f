package pricing_test

import (
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline/pricing"
)

// TestReviewRestore: a receipt returned in random parts gives back, over
// all its returns, exactly the points it paid and their worth, and the
// money refunded never runs ahead of the money it took; each return's
// worth is within what it returns.
func TestReviewRestore(t *testing.T) {
	d := decimal.RequireFromString
	if p, w := pricing.Restore("EUR", 700, d("7.00"), d("7.20"), d("0"), d("7.20"), false); p != 700 || !w.Equal(d("7.00")) {
		t.Fatalf("whole: %d worth %s", p, w)
	}
	if p, w := pricing.Restore("EUR", 700, d("7.00"), d("7.20"), d("0"), d("1.00"), false); p != 97 || !w.Equal(d("0.98")) {
		t.Fatalf("1.00 of 7.20: %d worth %s, want 97 worth 0.98 (money 0.02 ≤ 0.20 × 1/7.2)", p, w)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 2000; round++ {
		cents := 1 + rng.Int64N(10000)
		total := decimal.New(cents, -2)
		worthPaid := decimal.New(rng.Int64N(cents+1), -2)
		if worthPaid.IsZero() {
			worthPaid = decimal.New(1, -2)
		}
		paid := 1 + rng.Int64N(5000)
		money := total.Sub(worthPaid)
		before := decimal.Zero
		var sumP int64
		sumW, sumM := decimal.Zero, decimal.Zero
		for before.LessThan(total) {
			step := decimal.New(1+rng.Int64N(cents), -2)
			completes := false
			if before.Add(step).GreaterThanOrEqual(total) {
				step, completes = total.Sub(before), true
			}
			p, w := pricing.Restore("EUR", paid, worthPaid, total, before, step, completes)
			if p < 0 || w.IsNegative() || w.GreaterThan(step) {
				t.Fatalf("round %d: %d points worth %s for %s returned", round, p, w, step)
			}
			sumP, sumW, sumM = sumP+p, sumW.Add(w), sumM.Add(step.Sub(w))
			if sumP > paid || sumM.GreaterThan(money) {
				t.Fatalf("round %d: %d of %d points, %s of %s money", round, sumP, paid, sumM, money)
			}
			before = before.Add(step)
		}
		if sumP != paid || !sumW.Equal(worthPaid) || !sumM.Equal(money) {
			t.Fatalf("round %d: all returned gave back %d points worth %s and %s money; want %d, %s, %s", round, sumP, sumW, sumM, paid, worthPaid, money)
		}
	}
}

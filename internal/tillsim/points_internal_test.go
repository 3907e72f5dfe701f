package tillsim

import (
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestPointsMost: the most points a till offers for a receipt is what the
// node's own rule (pricing.Spendable) takes, for point values that round
// and shares that do not divide evenly; spend offers one point at least
// and at most that, worth what the node converts them to and less than
// the receipt.
func TestPointsMost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	offers := 0
	for _, c := range []struct{ value, share string }{{"0.01", "50"}, {"0.003", "33.3"}, {"0.25", "100"}, {"1.005", "20"}} {
		prog := &storeline.LoyaltyProgramme{ID: "club", Currency: "EUR",
			PointValue: decimal.RequireFromString(c.value), MaxShare: decimal.RequireFromString(c.share)}
		for range 500 {
			total := decimal.New(1+rng.Int64N(20000), -2)
			have := rng.Int64N(3000)
			a := &cardAnswer{}
			a.Points = &struct {
				SpendableNow int64  `json:"spendable_now"`
				PointValue   string `json:"point_value"`
				MaxShare     string `json:"max_share"`
			}{have, c.value, c.share}
			got, _ := a.most(total, 2)
			if want := pricing.Spendable(prog, have, total, -1); got != want {
				t.Fatalf("value %s share %s: %d spendable, total %s: most %d, the node takes %d", c.value, c.share, have, total, got, want)
			}
			n, worth := a.spend(rng, total, 2)
			if n > 0 {
				offers++
			}
			switch {
			case n > got || n < 0:
				t.Fatalf("total %s: spend offered %d of at most %d", total, n, got)
			case n > 0 && (!worth.Equal(pricing.PointsMoney(prog, "EUR", n)) || !worth.LessThan(total)):
				t.Fatalf("total %s: %d points worth %s; the node says %s", total, n, worth, pricing.PointsMoney(prog, "EUR", n))
			}
		}
	}
	if offers < 1000 {
		t.Errorf("spend offered points for %d of 2000 receipts", offers)
	}
	if n, _ := (&cardAnswer{}).spend(rng, decimal.NewFromInt(10), 2); n != 0 {
		t.Errorf("a card without points offered %d", n)
	}
}

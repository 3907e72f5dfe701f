package central

import (
	"math/rand/v2"
	"testing"

	"github.com/storeline/storeline"
)

// TestPlanGrantsProperty: over random balances, central rights, shares
// and shops' rights, the grants sum to at most central's rights (so at
// most the balance), are each positive, and never lift a shop above its
// part of the balance.
func TestPlanGrantsProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 4))
	shops := []storeline.StoreID{"s1", "s2", "s3", "s4"}
	for range 20000 {
		usual := shops[:1+r.IntN(len(shops))]
		rights := map[storeline.StoreID]int64{}
		var balance int64
		for _, s := range shops {
			if r.IntN(3) > 0 {
				rights[s] = r.Int64N(1000)
				balance += rights[s]
			}
		}
		central := r.Int64N(2000)
		balance += central
		share := r.IntN(101)
		plan := planGrants(balance, central, share, usual, rights)
		part := balance * int64(share) / 100 / int64(len(usual))
		var sum int64
		for _, g := range plan {
			if g.Points <= 0 {
				t.Fatalf("a grant of %d: %v", g.Points, plan)
			}
			if rights[g.Store]+g.Points > part {
				t.Fatalf("%s lifted from %d by %d above its part %d (balance %d, share %d, %d shops)",
					g.Store, rights[g.Store], g.Points, part, balance, share, len(usual))
			}
			sum += g.Points
		}
		if sum > central || sum > balance {
			t.Fatalf("grants %d exceed central's %d (balance %d): %v", sum, central, balance, plan)
		}
		// Maximal: a shop below its part is left short only when central
		// ran out.
		if sum < central {
			got := map[storeline.StoreID]int64{}
			for _, g := range plan {
				got[g.Store] = g.Points
			}
			for _, s := range usual {
				if rights[s]+got[s] < part {
					t.Fatalf("%s left at %d below its part %d with central holding %d more", s, rights[s]+got[s], part, central-sum)
				}
			}
		}
	}
}

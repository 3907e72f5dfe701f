package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewCustSweepNetsUsualShopDebtBeforeGranting: customer d shops at
// s1 and s2 (both usual). A return at s2 leaves a debt of 200 there, and
// s1 hands 300 back to central; the sweep reads s1's events first (stores
// are swept in ID order), before it has read s2's return. Debts come
// first (loyalty_auto.go, steps 3 and 4): the sweep must not pre-grant
// rights to s2, where d owes 200, while central holds what pays that debt;
// it nets the debt and grants from the rest.
func TestReviewCustSweepNetsUsualShopDebtBeforeGranting(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	n := c.waitLeader()
	ctx := context.Background()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("d")...)...)
	asset := storeline.PointsAsset("club")
	move := func(from, to string, k int64) {
		t.Helper()
		if _, err := n.Transfer(ctx, storeline.NewEventID(), "test", "", []storeline.Posting{
			{Account: from, Asset: asset, Amount: decimal.NewFromInt(-k)},
			{Account: to, Asset: asset, Amount: decimal.NewFromInt(k)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	today := storeline.Date(time.Now().UTC().Format("2006-01-02"))
	for _, s := range []storeline.StoreID{"s2", "s1"} {
		if _, err := n.SweepSeen(ctx, s, "club", "d", today, "visit", 3, 50); err != nil {
			t.Fatal(err)
		}
	}
	// The return's debt at s2, not yet swept; s1's hand-back.
	move(storeline.PointsDebtAccount("club", "d", "s2"), storeline.IssuedPointsAccount("s2"), 200)
	move(storeline.IssuedPointsAccount("s1"), storeline.PointsAccount("club", "d", storeline.Central), 300)

	ans, err := n.SweepSeen(ctx, "s1", "club", "d", today, "handback", 3, 50)
	if err != nil {
		t.Fatal(err)
	}
	st := pointsAt(t, n, "d")
	if st.Debt != 0 || ans.Netted != 200 || st.Rights["s2"] != 25 || st.Rights["s1"] != 25 || st.Rights["central"] != 50 {
		t.Errorf("after sweeping s1's hand-back: %+v (%+v); want the 200 owed at s2 netted first, "+
			"then 25 granted to each of s1 and s2 from the 100 left", st, ans)
	}
}

// TestReviewCustSweepGrantsNoDeletedStore: a shop the customer used is
// closed (its store deleted at head office) while still within the usual
// window. Central refuses a rights move to an unknown store (loyalty.go);
// its own sweep must not pre-grant there either: rights at a store that
// no longer exists can be spent nowhere, and no shop hands them back.
func TestReviewCustSweepGrantsNoDeletedStore(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	n := c.waitLeader()
	ctx := context.Background()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("g")...)...)
	today := storeline.Date(time.Now().UTC().Format("2006-01-02"))
	for _, s := range []storeline.StoreID{"s2", "s1"} {
		if _, err := n.SweepSeen(ctx, s, "club", "g", today, "visit", 3, 50); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, apiDo(t, "DELETE", n.APIAddr(), "/v1/stores/s2", adminKey, nil, nil))
	if _, err := n.Transfer(ctx, storeline.NewEventID(), "test", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount("s1"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-400)},
		{Account: storeline.PointsAccount("club", "g", storeline.Central), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(400)},
	}); err != nil {
		t.Fatal(err)
	}
	ans, err := n.SweepSeen(ctx, "s1", "club", "g", today, "handback", 3, 50)
	if err != nil {
		t.Fatal(err)
	}
	if st := pointsAt(t, n, "g"); st.Rights["s2"] != 0 || st.Rights["s1"] != 200 {
		t.Errorf("after the sweep: %+v (%+v); want nothing granted to the deleted s2, s1 topped up to its part (200)", st, ans)
	}
}

package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review16Handback moves k of cust's points into central's rights, as a
// shop's hand-back does.
func review16Handback(t *testing.T, n *central.Node, from storeline.StoreID, cust storeline.CustomerID, k int64) {
	t.Helper()
	if _, err := n.Transfer(context.Background(), storeline.NewEventID(), "test hand-back", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount(from), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-k)},
		{Account: storeline.PointsAccount("club", cust, storeline.Central), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(k)},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReview16SameReceiptIDAtTwoShopsReservedApart: receipt IDs are made
// by tills, and nothing stops two shops' tills from naming two receipts
// alike. A reservation is keyed by (calling store, receipt): s2 asking
// for the shortfall of a receipt whose ID s1 already reserved under gets
// a reservation of its own, and s1's answer is not s2's.
func TestReview16SameReceiptIDAtTwoShopsReservedApart(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.Loyalty.SweepInterval = 0
	})
	n := c.waitLeader()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("r")...)...)
	review16Handback(t, n, "s1", "r", 500)
	receipt := storeline.NewEventID()
	deadline := time.Now().Add(30 * time.Second)
	q := central.ReserveRequest{Programme: "club", Customer: "r", Points: 200, Receipt: receipt}
	code, a1, body := reserveRaw(t, n.ReplicationAddr(), testShops[0].token, q, deadline)
	if code != 200 || a1.Granted != 200 || a1.Available != 300 {
		t.Fatalf("s1 reserves 200 for its receipt = %d %+v %s, want 200 granted, 300 left", code, a1, body)
	}
	q.Points = 100
	code, a2, body := reserveRaw(t, n.ReplicationAddr(), testShops[1].token, q, deadline)
	if code != 200 || a2.Granted != 100 || a2.Available != 200 || a2.Seq == a1.Seq {
		t.Fatalf("s2 reserves 100 for a receipt of the same ID = %d %+v %s, want its own 100 granted, 200 left", code, a2, body)
	}
	// Each shop's retry answers its own reservation, and moves nothing.
	q.Points = 200
	if code, again, _ := reserveRaw(t, n.ReplicationAddr(), testShops[0].token, q, deadline); code != 200 || again.Seq != a1.Seq || again.Granted != 200 {
		t.Errorf("s1's retry = %d %+v, want its first answer %+v", code, again, a1)
	}
	if st := pointsAt(t, n, "r"); st.Rights["s1"] != 200 || st.Rights["s2"] != 100 || st.Rights["central"] != 200 {
		t.Errorf("r's rights after both reservations and a retry: %v, want s1 200, s2 100, central 200", st.Rights)
	}
}

// TestReview16PreGrantStrandedAtFormerUsualShop: customer m shops at s1,
// which central tops up to its part of the balance; then m moves to s2,
// and s1 is usual no more. The points pre-granted to s1 stay there for
// good: central takes no rights back from a shop (every debit of an
// account is its holder's, or an offline shop could spend them twice),
// and a shop hands back only what a receipt earned there, so only a
// visit to s1 would free them. Online at s2 the customer can never spend
// more than s2's rights plus central's, half the balance here.
//
// Shown failing, not fixed: the fix is the shop's (posbridge), see the
// review report.
func TestReview16PreGrantStrandedAtFormerUsualShop(t *testing.T) {
	t.Skip("pre-grants at a shop no longer usual are handed back by no one: needs a shop-side hand-back (posbridge), see review16's report")
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	n := c.waitLeader()
	ctx := context.Background()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("m")...)...)
	today := time.Now().UTC()
	day := func(d int) storeline.Date { return storeline.Date(today.AddDate(0, 0, d).Format("2006-01-02")) }
	if _, err := n.SweepSeen(ctx, "s1", "club", "m", day(-10), "visit", 1, 50); err != nil {
		t.Fatal(err)
	}
	review16Handback(t, n, "s1", "m", 600)
	if _, err := n.SweepSeen(ctx, "s1", "club", "m", "", "handback", 1, 50); err != nil {
		t.Fatal(err)
	}
	if st := pointsAt(t, n, "m"); st.Rights["s1"] != 300 || st.Rights["central"] != 300 {
		t.Fatalf("m's rights after the pre-grant to s1: %v, want 300 at s1 and at central", st.Rights)
	}
	// m now shops at s2 only.
	if _, err := n.SweepSeen(ctx, "s2", "club", "m", day(0), "visit", 1, 50); err != nil {
		t.Fatal(err)
	}
	st := pointsAt(t, n, "m")
	if online := st.Rights["s2"] + st.Rights["central"]; online != st.Balance {
		t.Errorf("m's rights once s1 is usual no more: %v (usual %v); spendable online at s2 %d of a balance of %d, "+
			"the rest stranded at s1", st.Rights, st.Usual, online, st.Balance)
	}
}

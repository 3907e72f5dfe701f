package central_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/node"
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
// and once s1's visit is older than the usual-shop window s1 is usual no
// more. Central takes no rights back from a shop (every debit of an
// account is its holder's, or an offline shop could spend them twice),
// so the points pre-granted to s1 stayed there for good and online at s2
// the customer could never spend more than s2's rights plus central's.
// Now s1's sweep hands back the rights above its float of a customer it
// has not seen for longer than the window (plus a day), and central's
// next sweep grants them where m shops now: online at s2, all but s1's
// float. Central and both shops run on one clock, moved on 100 days.
func TestReview16PreGrantStrandedAtFormerUsualShop(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 500 * time.Millisecond
		cfg.ReplicationPageItems = 1000
		cfg.Logger = testLogger()
		cfg.Loyalty.SweepInterval = 50 * time.Millisecond
		cfg.Now = clock
		cfg.ChangeRetention = 3 * 366 * 24 * time.Hour // the feed outlives the jump
	})
	n := c.waitLeader()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("m")...)...)
	urls := []string{"http://" + n.ReplicationAddr()}
	shops := make([]*node.Node, 2)
	for i := range shops {
		s := testShops[i]
		cfg := node.DefaultConfig()
		cfg.StoreID, cfg.DataDir, cfg.TillAddr, cfg.AdminAddr = s.store, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
		cfg.AdminToken = shopAdminToken
		cfg.Terminals = []node.TerminalToken{{ID: "till-1", Token: s.terminal}}
		cfg.Replication = shopReplication(urls, s.token)
		cfg.PointsSweepInterval = 50 * time.Millisecond
		cfg.Clock = clock
		shop, err := node.New(cfg, testLogger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := shop.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shop.Stop() })
		waitFor(t, "the gifts at "+string(s.store), 30*time.Second, func() bool {
			_, ok := tillItem(t, shop, s.terminal, "gift")
			return ok
		})
		waitOnline(t, shop, string(s.store))
		shops[i] = shop
	}
	const float = 100 // node.DefaultConfig's PointsFloat

	// m earns 600 at s1 (hands 500 back): s1 is usual, topped up to 300.
	earn(t, shops[0], testShops[0].terminal, cardOf("m"), 60)
	waitFor(t, "central's pre-grant at s1", 30*time.Second, func() bool { return rightsAt(t, shops[0], "s1", "m") == 300 })
	if st := pointsAt(t, n, "m"); st.Rights["s1"] != 300 || st.Rights["central"] != 300 {
		t.Fatalf("m's rights after the pre-grant to s1: %v, want 300 at s1 and at central", st.Rights)
	}

	// 100 days on, m earns 400 at s2 (hands 300 back), and shops at s2 only.
	skew.Store(int64(100 * 24 * time.Hour))
	body := receiptBody(storeline.NewEventID(), cardOf("m"), "sku0", "1.00", 40, map[string]any{"method": "cash", "amount": "40.00"})
	body["occurred_at"] = clock().UTC().Format(time.RFC3339Nano)
	if code, out := tillPost(t, shops[1], testShops[1].terminal, body); code != 201 || out["points_earned"] != float64(400) {
		t.Fatalf("earning receipt at s2 = %d %v, want 201 earning 400", code, out)
	}
	var st central.PointsStatus
	waitFor(t, "s1's pre-grant handed back and granted to s2", 30*time.Second, func() bool {
		st = pointsAt(t, n, "m")
		return st.Rights["s1"] == float && st.Rights["s2"]+st.Rights["central"] == st.Balance-float && st.Rights["s2"] == 500
	})
	if st.Balance != 1000 {
		t.Errorf("m's balance %d, want 1000", st.Balance)
	}
	waitFor(t, "s1 to catch up", 20*time.Second, func() bool { return caughtUpAt(shops[0]) })
	if r := rightsAt(t, shops[0], "s1", "m"); r != float {
		t.Errorf("s1 holds %d of m's rights, want its float %d", r, float)
	}
	hb := 0
	for _, ev := range centralJournal(t, n, "s1") {
		if h, ok := ev.Body.(*storeline.PointsHandback); ok && h.Customer == "m" {
			hb++
		}
	}
	if hb != 2 { // the receipt's, and the lapse's
		t.Errorf("central holds %d hand-backs of m's rights by s1, want 2", hb)
	}
}

package central_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview14FutureVisitDoesNotRankFirst: a till whose clock is years
// ahead stamps a receipt with a business date in 2099. The sweep notes
// that date as the customer's latest visit at s1, so s1 ranks first of
// the usual shops (and gets the pre-grants) until 2099, though the
// customer now shops at s2 only. A visit's date is believed at most up
// to the sweep entry's date plus one day: once that day has passed, the
// shop the customer really visits last ranks first.
func TestReview14FutureVisitDoesNotRankFirst(t *testing.T) {
	var skew atomic.Int64 // how far the leader's clock is moved ahead, ns
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.Loyalty.SweepInterval = 0
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	n := c.waitLeader()
	ctx := context.Background()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("f")...)...)
	day := func() time.Time { return time.Now().Add(time.Duration(skew.Load())).UTC() }
	date := func(t time.Time) storeline.Date { return storeline.Date(t.Format("2006-01-02")) }

	// s1's till, clock in 2099; then the customer at s2, today.
	if _, err := n.SweepSeen(ctx, "s1", "club", "f", "2099-01-01", "visit", 1, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := n.SweepSeen(ctx, "s2", "club", "f", date(day()), "visit", 1, 50); err != nil {
		t.Fatal(err)
	}
	// Three days later the customer is back at s2, and s2 hands 400
	// points back to central.
	skew.Store(int64(3 * 24 * time.Hour))
	if _, err := n.SweepSeen(ctx, "s2", "club", "f", date(day()), "visit", 1, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Transfer(ctx, storeline.NewEventID(), "test", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount("s2"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-400)},
		{Account: storeline.PointsAccount("club", "f", storeline.Central), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(400)},
	}); err != nil {
		t.Fatal(err)
	}
	ans, err := n.SweepSeen(ctx, "s2", "club", "f", date(day()), "handback", 1, 50)
	if err != nil {
		t.Fatal(err)
	}
	st := pointsAt(t, n, "f")
	if len(st.Usual) == 0 || st.Usual[0] != "s2" || st.Rights["s2"] != 200 || st.Rights["s1"] != 0 {
		t.Errorf("after a visit at s2 three days past s1's visit dated 2099 by its till: usual %v, rights %v (%+v); "+
			"want s2 first and its part, 200, pre-granted there, none at s1", st.Usual, st.Rights, ans)
	}
}

package central_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewGrantRetryOtherBody: a head-office pre-grant is idempotent by
// its id the way every other head-office write keyed by a client's id is:
// the same id with the same body answers the first grant (200) and moves
// nothing; the same id with another body (other points, store or
// customer) is a 409 problem naming id and moves nothing either, rather
// than a 200 that reads as if the second request had been carried out. A
// refused grant (central holds too few) records nothing, so its id may be
// asked again with another body and is decided afresh.
func TestReviewGrantRetryOtherBody(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	waitPaymentLevel(t, c)
	n := c.waitLeader()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("p", "q")...)...)
	if _, err := n.Transfer(context.Background(), storeline.NewEventID(), "test", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount("s1"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-100)},
		{Account: storeline.PointsAccount("club", "p", storeline.Central), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(100)},
	}); err != nil {
		t.Fatal(err)
	}
	addr := n.APIAddr()
	grant := func(id, store, cust string, points int) response {
		return apiRetry(t, "POST", addr, "/v1/loyalty/grants", adminKey,
			map[string]any{"id": id, "programme": "club", "customer": cust, "store": store, "points": points})
	}
	for i := range 2 {
		r := mustOK(t, grant("g-1", "s1", "p", 30))
		if j := r.json(t); j["granted"] != float64(30) || j["available"] != float64(70) {
			t.Fatalf("grant g-1, ask %d = %s, want 30 granted, 70 left", i+1, r.body)
		}
	}
	for name, r := range map[string]response{
		"other points":   grant("g-1", "s1", "p", 40),
		"other store":    grant("g-1", "s2", "p", 30),
		"other customer": grant("g-1", "s1", "q", 30),
	} {
		if j := r.json(t); r.status != 409 || j["field"] != "id" || j["kind"] == nil {
			t.Errorf("g-1 again with %s = %d %s, want a 409 problem naming id", name, r.status, r.body)
		}
	}
	// A refusal records nothing: the same id with a smaller ask is
	// decided afresh, and then holds like any grant.
	problemOf(t, grant("g-2", "s2", "p", 500), 409, "points")
	if r := mustOK(t, grant("g-2", "s2", "p", 20)); r.json(t)["granted"] != float64(20) {
		t.Fatalf("g-2 after its refusal = %s, want 20 granted", r.body)
	}
	problemOf(t, grant("g-2", "s2", "p", 21), 409, "id")

	st, err := n.Points("club", "p")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.Rights["central"], st.Rights["s1"], st.Rights["s2"]); got != "50 30 20" {
		t.Fatalf("p's rights at central, s1, s2 = %s, want 50 30 20 (one grant each)", got)
	}
	if q, err := n.Points("club", "q"); err != nil || q.Balance != 0 {
		t.Fatalf("q's points = %+v (%v), want none", q, err)
	}

	// What a grant granted goes with its answer, after the retention: its
	// id is then decided afresh, like any key whose answer was pruned.
	if k, err := n.PruneLoyaltyAnswers(context.Background(), time.Now().Add(time.Second)); err != nil || k != 2 {
		t.Fatalf("pruning every answer: %d %v, want 2", k, err)
	}
	if r := mustOK(t, grant("g-1", "s2", "p", 5)); r.json(t)["granted"] != float64(5) {
		t.Fatalf("g-1 after its answer was pruned = %s, want 5 granted afresh", r.body)
	}
}

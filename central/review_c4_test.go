package central_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

// TestReviewC4ForwardedCommandCarriesLeaderTime: a document created
// through a follower whose clock is far off carries the leader's time
// (the entry's time is the leader's, fsm.go invariant 5), not the
// follower's.
func TestReviewC4ForwardedCommandCarriesLeaderTime(t *testing.T) {
	t.Parallel()
	const skew = -400 * 24 * time.Hour
	skews := map[string]time.Duration{"c1": 0, "c2": skew}
	c := startClusterWith(t, 2, func(cfg *central.Config) {
		d := skews[cfg.NodeID]
		cfg.Now = func() time.Time { return time.Now().Add(d) }
	})
	l := c.waitLeader()
	f := c.follower()
	if f == nil {
		t.Fatal("no follower")
	}
	seedBackOffice(t, l.APIAddr())
	before := time.Now()
	r := mustOK(t, apiDo(t, "PUT", f.APIAddr(), "/v1/documents/fwd1", adminKey, map[string]any{
		"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
			map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})}, nil))
	after := time.Now()
	var d struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatal(err)
	}
	ls := skews[l.ID()]
	lo, hi := before.Add(ls).Add(-time.Second), after.Add(ls).Add(time.Second)
	if d.CreatedAt.Before(lo) || d.CreatedAt.After(hi) {
		t.Fatalf("document created through follower %s (clock %s off) at %s, want the leader %s's time, within [%s, %s]",
			f.ID(), skews[f.ID()], d.CreatedAt, l.ID(), lo, hi)
	}
}

// TestReviewC4CancelledInvoicesCostsDoNotStack: cancelling invoice inv2
// after inv3 replaced its last purchase cost, then inv3, leaves the cost
// inv1 set: inv2's cost does not come back, inv2 being cancelled.
func TestReviewC4CancelledInvoicesCostsDoNotStack(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for i, price := range []string{"1.10", "2.20", "3.30"} {
		createAndPost(t, a, []string{"inv1", "inv2", "inv3"}[i], map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
			"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": price})})
	}
	cancelDoc(t, a, "inv2")
	cancelDoc(t, a, "inv3")
	wantStock(t, a, "s1", "milk", "10", "10")
	writeOffPastZero(t, a, "10")
	// 10 units at their average 1.00, the 11th, below zero, at the last
	// cost: inv1's 1.00, the only invoice standing.
	if got := balances(t, a)["writeoff/s1/milk cur:EUR"]; !got.Equal(dec("11")) {
		t.Fatalf("writeoff/s1/milk = %s, want 11.00 (the last cost is inv1's 1.00, not cancelled inv2's 2.00)", got)
	}
}

// TestReviewC4CancelKeepsLaterSameCost: cancelling inv2 while inv3 had
// set the same last purchase cost since leaves that cost: it is inv3's
// now, not inv2's to withdraw.
func TestReviewC4CancelKeepsLaterSameCost(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for i, price := range []string{"1.10", "2.20", "2.20"} {
		createAndPost(t, a, []string{"inv1", "inv2", "inv3"}[i], map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
			"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": price})})
	}
	cancelDoc(t, a, "inv2")
	wantStock(t, a, "s1", "milk", "20", "30")
	writeOffPastZero(t, a, "20")
	if got := balances(t, a)["writeoff/s1/milk cur:EUR"]; !got.Equal(dec("32")) {
		t.Fatalf("writeoff/s1/milk = %s, want 32.00 (the last cost is inv3's 2.00)", got)
	}
}

// writeOffPastZero writes off all the milk s1 holds, onHand units
// (wo1), then one more (wo2), which goes below zero at the last purchase
// cost.
func writeOffPastZero(t *testing.T, a, onHand string) {
	t.Helper()
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled", "lines": lines(
		map[string]any{"item": "milk", "qty": onHand})})
	createAndPost(t, a, "wo2", map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled", "lines": lines(
		map[string]any{"item": "milk", "qty": "1"})})
}

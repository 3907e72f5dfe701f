package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewSettlePayablesIndexedOnlyAtLevel2: while the cluster runs FSM
// level 1 (a node of the version before settlements is still a member),
// a document's post must write what that old node writes when it applies
// the same entry: no statement rows, no indexed total. Otherwise the
// replicas' states differ for good (after the upgrade the node that was
// old has no rows of those documents, the others have them, and their
// statements answer different openings and unindexed amounts). Once the
// cluster is at level 2, documents are indexed, and the raise backfilled
// the earlier one (settlements.go, invariant 4), the same on every
// replica.
func TestReviewSettlePayablesIndexedOnlyAtLevel2(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.Now = clock.Now
		*cfg = central.WithFSMLevel(*cfg, -1) // a version before levels: the cluster stays at level 1
	})
	l := c.waitLeader()
	a := l.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	if lv, err := l.ClusterLevel(); err != nil || lv != 1 {
		t.Fatalf("cluster level %d (%v), want 1", lv, err)
	}
	if v, err := l.Replica().Meta("st/tot/p1\x00EUR"); err != nil || v != nil {
		t.Fatalf("a level-1 entry wrote the level-2 index st/tot/p1 = %q (%v): an old replica writes nothing there", v, err)
	}

	// The upgrade: the node restarts at this binary's level.
	c.cfgs[0] = central.WithFSMLevel(c.cfgs[0], 0)
	c.stopNode(0)
	c.startNode(0, nil)
	waitPaymentLevel(t, c)
	l = c.waitLeader()
	a = l.APIAddr()
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "bread", "qty": "5", "purchase_price": "2.00"})})
	s := statement(t, a, "p1", clock.day(0), clock.day(0), "")
	s.wantRows(t, "invoice inv1 "+clock.day(0)+" 11.00 11.00", "invoice inv2 "+clock.day(0)+" 10.00 21.00")
	if s.Opening != "0.00" || s.Closing != "21.00" || s.Unindexed != "0.00" {
		t.Fatalf("opening %s closing %s unindexed %s, want 0.00, 21.00, 0.00", s.Opening, s.Closing, s.Unindexed)
	}
}

// TestReviewSettleCurrencyWithSeparator: a central-authored transfer on a
// supplier's payable in an asset "cur:<not an ISO code>" holding the key
// separator \0 must not write rows that an EUR statement reads as its
// own: the EUR statement would list a movement that is not in EUR and
// open at a balance the books never had.
func TestReviewSettleCurrencyWithSeparator(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Now = clock.Now })
	waitPaymentLevel(t, c)
	l := c.waitLeader()
	a := l.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	odd := storeline.Asset("cur:EUR\x009999-12-31")
	_, err := l.Transfer(context.Background(), storeline.NewEventID(), "adjustment", "", []storeline.Posting{
		{Account: "payable/p1", Asset: odd, Amount: dec("5")},
		{Account: "adjust/p1", Asset: odd, Amount: dec("-5")},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := statement(t, a, "p1", clock.day(0), clock.day(0), "")
	s.wantRows(t, "invoice inv1 "+clock.day(0)+" 11.00 11.00")
	if s.Opening != "0.00" || s.Closing != "11.00" {
		t.Fatalf("opening %s closing %s, want 0.00 and 11.00", s.Opening, s.Closing)
	}
	if got := payableOf(t, a, "p1"); !got.Neg().Equal(dec(s.Closing)) {
		t.Fatalf("payable/p1 = %s, statement closes at %s", got, s.Closing)
	}
}

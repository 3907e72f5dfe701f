package central_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/ledger"
)

// TestReviewBackfillPayablesAtLevelRaise: documents posted (and one
// cancelled) and a head-office transfer on a supplier's payable while the
// cluster ran FSM level 1 write no statement rows (an old node applies
// those entries too). When every node is upgraded and the leader raises
// the cluster to level 2, the index is backfilled from what is already in
// the store, in entries of a bounded number of events: the statement then
// lists every movement with the date it had when it was booked, counts
// nothing as unindexed, closes at the payable balance, indexes what
// follows once, and every replica holds the same index, byte for byte.
func TestReviewBackfillPayablesAtLevelRaise(t *testing.T) {
	central.SetPayablesBackfillChunk(t, 2) // seven events: the raise reads two, three more entries the rest
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		cfg.Now = clock.Now
		*cfg = central.WithFSMLevel(*cfg, -1) // a version before levels: the cluster stays at level 1
	})
	l := c.waitLeader()
	a := l.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))

	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	createAndPost(t, a, "other1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p2",
		"lines": lines(map[string]any{"item": "bread", "qty": "3", "purchase_price": "0.70"})})
	clock.days.Store(1)
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "20", "purchase_price": "0.80"})})
	clock.days.Store(2)
	createAndPost(t, a, "inv3", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "bread", "qty": "5", "purchase_price": "2.00"})})
	createAndPost(t, a, "ret1", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.10"})})
	clock.days.Store(3)
	decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/inv3/cancel", adminKey, nil, nil))
	retryUnavailable(t, func() error {
		_, err := c.waitLeader().Transfer(context.Background(), storeline.DerivedEventID("test/adj-1"), "adjustment", "adj-1", []storeline.Posting{
			{Account: "payable/p1", Asset: "cur:EUR", Amount: dec("-1")},
			{Account: "adjust/p1", Asset: "cur:EUR", Amount: dec("1")},
		})
		return err
	})
	if lv, err := l.ClusterLevel(); err != nil || lv != 1 {
		t.Fatalf("cluster level %d (%v), want 1", lv, err)
	}
	if s := statement(t, a, "p1", clock.day(0), clock.day(3), ""); len(s.Rows) != 0 || s.Unindexed != "25.80" {
		t.Fatalf("at level 1: %d rows, unindexed %s; want none and 25.80", len(s.Rows), s.Unindexed)
	}

	// The upgrade, one node at a time.
	for i := range c.nodes {
		c.cfgs[i] = central.WithFSMLevel(c.cfgs[i], 0)
		c.stopNode(i)
		c.startNode(i, []string{c.nodes[(i+1)%len(c.nodes)].GossipAddr()})
		c.waitVoters(len(c.nodes))
	}
	waitPaymentLevel(t, c)
	waitFor(t, "the backfill finished on every node", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if busy, err := n.PayablesBackfilling(); err != nil || busy {
				return false
			}
		}
		return true
	})
	clock.days.Store(4)
	a = c.waitLeader().APIAddr()
	createAndPost(t, a, "inv4", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.00"})})
	c.waitSettled()

	var states []string
	for _, n := range c.nodes {
		s := statement(t, n.APIAddr(), "p1", clock.day(0), clock.day(4), "")
		s.wantRows(t,
			"invoice inv1 "+clock.day(0)+" 11.00 11.00",
			"invoice inv2 "+clock.day(1)+" 16.00 27.00",
			"invoice inv3 "+clock.day(2)+" 10.00 37.00",
			"return ret1 "+clock.day(2)+" -2.20 34.80",
			"transfer adj-1 "+clock.day(3)+" 1.00 35.80",
			"invoice_cancel inv3 "+clock.day(3)+" -10.00 25.80",
			"invoice inv4 "+clock.day(4)+" 5.00 30.80",
		)
		if s.Opening != "0.00" || s.Closing != "30.80" || s.Unindexed != "0.00" {
			t.Fatalf("%s: opening %s closing %s unindexed %s, want 0.00, 30.80, 0.00", n.ID(), s.Opening, s.Closing, s.Unindexed)
		}
		s.wantTotals(t, map[string]string{"invoice": "42.00", "invoice_cancel": "-10.00", "return": "-2.20",
			"return_cancel": "0.00", "payment": "0.00", "payment_cancel": "0.00", "transfer": "1.00"})
		if got := payableOf(t, n.APIAddr(), "p1"); !got.Neg().Equal(dec(s.Closing)) {
			t.Fatalf("%s: payable/p1 = %s, statement closes at %s", n.ID(), got, s.Closing)
		}
		o := statement(t, n.APIAddr(), "p2", clock.day(0), clock.day(4), "")
		o.wantRows(t, "invoice other1 "+clock.day(0)+" 2.10 2.10")
		if o.Unindexed != "0.00" {
			t.Fatalf("%s: p2 unindexed %s, want 0.00", n.ID(), o.Unindexed)
		}
		var state string
		err := n.Replica().View(func(rt *ledger.ReplicaTxn) error {
			return rt.ScanMeta("st/", func(k string, v []byte) (bool, error) {
				state += fmt.Sprintf("%q=%x\n", k, v)
				return true, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, state)
	}
	for i := 1; i < len(states); i++ {
		if states[i] != states[0] {
			t.Fatalf("%s's settlement state differs from %s's:\n%s\nvs\n%s", c.nodes[i].ID(), c.nodes[0].ID(), states[i], states[0])
		}
	}
}

package central_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview48SettlementGolden runs review43's golden sequence at FSM
// level 9, where a hand-made transfer with a supplier payment's reason
// or naming a missing document is indexed as the buyer side indexes its
// own: testdata/review48_settle.golden differs from review43's only in
// those rows (t1, t3, t5), the pages and totals they shift, and the
// st/ keys (-update rewrites it).
func TestReview48SettlementGolden(t *testing.T) {
	review43SettleGolden(t, 9, "review48_settle.golden")
}

// review48Row is a statement row as a client reads it.
type review48Row struct {
	Type, ID, Date, Amount, Reason, Bank, Reference, Event string
}

type review48Statement struct {
	Opening, Closing, Unindexed string
	Rows                        []review48Row
	Totals                      map[string]string
}

func review48Get(t *testing.T, a, supplier, from, to string) review48Statement {
	t.Helper()
	r := mustOK(t, apiDo(t, "GET", a, fmt.Sprintf("/v1/suppliers/%s/statement?currency=EUR&from=%s&to=%s", supplier, from, to), viewerKey, nil, nil))
	var s review48Statement
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// rows lists the statement's rows as "type id reason amount", sorted
// (rows of a day come by ID, and a bare row's ID is its event's).
func (s review48Statement) rows() []string {
	var out []string
	for _, r := range s.Rows {
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s %s", r.Type, r.ID, r.Reason, r.Amount)), " "))
	}
	slices.Sort(out)
	return out
}

// review48Event is the event ID review48Hand gives transfer name.
func review48Event(name string) string { return storeline.DerivedEventID("review48/" + name).String() }

func review48Want(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// checkBalanced checks that the statement's totals add up to its
// movement, that it opens at zero (it starts before the first row) and
// closes at what payable/<supplier> says is owed, with nothing unindexed.
func (s review48Statement) checkBalanced(t *testing.T, supplier string, payable decimal.Decimal) {
	t.Helper()
	sum := decimal.Zero
	for typ, v := range s.Totals {
		d, err := decimal.NewFromString(v)
		if err != nil {
			t.Fatalf("%s: total %s = %q: %v", supplier, typ, v, err)
		}
		sum = sum.Add(d)
	}
	if !dec(s.Opening).IsZero() || !dec(s.Unindexed).IsZero() {
		t.Fatalf("%s: opening %s unindexed %s, want 0 and 0", supplier, s.Opening, s.Unindexed)
	}
	if !sum.Equal(dec(s.Closing)) || !dec(s.Closing).Equal(payable.Neg()) {
		t.Fatalf("%s: totals sum %s, closing %s, payable %s: want closing = totals = -payable", supplier, sum, s.Closing, payable)
	}
}

// review48Hand books a transfer by hand between payable/<supplier> and
// bank/k1 (amount: what the payable moves), as a shop's or head office's
// Transfer event does, through the node n.
func review48Hand(t *testing.T, n *central.Node, name, reason, ref, supplier, amount string) {
	t.Helper()
	amt := dec(amount)
	retryUnavailable(t, func() error {
		_, err := n.Transfer(context.Background(), storeline.DerivedEventID("review48/"+name), reason, ref, []storeline.Posting{
			{Account: "payable/" + supplier, Asset: "cur:EUR", Amount: amt},
			{Account: "bank/k1", Asset: "cur:EUR", Amount: amt.Neg()},
		})
		return err
	})
}

// review48Seed puts the back office's master data, a second supplier p2
// and a bank k1, and an invoice of p1 (22.00 owed) at a.
func review48Seed(t *testing.T, a string) {
	t.Helper()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Mill"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "in1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "20", "purchase_price": "1.10"})})
}

func review48Pay(t *testing.T, a, id, amount, paidOn string) {
	t.Helper()
	r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, map[string]any{"id": id, "supplier": "p1", "bank": "k1",
		"currency": "EUR", "amount": amount, "paid_on": paidOn, "reference": "PP-" + id}, nil)
	if r.status != 201 {
		t.Fatalf("payment %s: %d %s, want 201", id, r.status, r.body)
	}
}

// TestReview48HandTransfersAtLevel9: at FSM level 9 a transfer by hand
// that takes a supplier payment's reason and names a booked payment is
// a transfer row with its reason (the payment keeps its one payment
// row), and one naming a missing payment or document names its reason
// and reference; the totals and the closing balance still equal the
// payable balance.
func TestReview48HandTransfersAtLevel9(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	cfg := central.WithFSMLevel(testConfig(t, "solo", filepath.Join(t.TempDir(), "solo")), 9)
	cfg.Now = clock.Now
	n := openNode(t, cfg)
	waitFor(t, "leader at FSM level 9", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == 9
	})
	a := n.APIAddr()
	review48Seed(t, a)
	review48Pay(t, a, "sp2", "7.50", clock.day(0))
	review48Hand(t, n, "t1", "supplier.payment", "ghost", "p1", "1")
	review48Hand(t, n, "t3", "supplier.payment", "sp2", "p1", "0.5")
	review48Hand(t, n, "t5", "document.post", "nodoc", "p2", "-3")
	review48Hand(t, n, "t9", "misc", "", "p1", "0.1")

	s := review48Get(t, a, "p1", clock.day(-1), clock.day(1))
	review48Want(t, "p1's rows at level 9", s.rows(), "invoice in1 22.00", "payment sp2 -7.50",
		"transfer ghost supplier.payment -1.00", "transfer sp2 supplier.payment -0.50", "transfer "+review48Event("t9")+" misc -0.10")
	if pays := s.Totals["payment"]; pays != "-7.50" {
		t.Fatalf("p1's payments total %s, want -7.50 (sp2 once)", pays)
	}
	s.checkBalanced(t, "p1", payableOf(t, a, "p1"))

	s2 := review48Get(t, a, "p2", clock.day(-1), clock.day(1))
	review48Want(t, "p2's rows at level 9", s2.rows(), "transfer nodoc document.post 3.00")
	s2.checkBalanced(t, "p2", payableOf(t, a, "p2"))
}

// review48StKeys returns node's st/ keys and values.
func review48StKeys(t *testing.T, node *central.Node) map[string]string {
	t.Helper()
	m, err := node.Review40Meta("st/")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReview48ReplicasAgreeAcrossRaise: three replicas, one of them
// telling FSM level 8, stay at level 8 and index hand-made transfers as
// level 8 does (a second payment row for sp2, bare rows for a missing
// payment or document); once that node is upgraded the cluster is
// raised to 9 and the same transfers are indexed as the buyer side
// indexes them. Every replica holds the same st/ keys and values, and
// the statement's closing balance is the payable balance throughout.
func TestReview48ReplicasAgreeAcrossRaise(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	// The node at level 8 bootstraps: a node below the cluster's level
	// would not be let in.
	i := 0
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		cfg.Now = clock.Now
		level := 9
		if i++; i == 1 {
			level = 8
		}
		*cfg = central.WithFSMLevel(*cfg, level)
	})
	waitFor(t, "the cluster at FSM level 8", 20*time.Second, func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		lv, err := l.ClusterLevel()
		return err == nil && lv == 8
	})
	c.waitVoters(3)
	a := c.waitLeader().APIAddr()
	review48Seed(t, a)
	review48Pay(t, a, "sp2", "7.50", clock.day(0))
	review48Hand(t, c.waitLeader(), "t1", "supplier.payment", "ghost", "p1", "1")
	review48Hand(t, c.waitLeader(), "t3", "supplier.payment", "sp2", "p1", "0.5")
	review48Hand(t, c.waitLeader(), "t5", "document.post", "nodoc", "p2", "-3")
	c.waitSettled()
	for _, n := range c.nodes {
		if l, err := n.ClusterLevel(); err != nil || l != 8 {
			t.Fatalf("%s: cluster level %d (%v), want 8 while c1 tells 8", n.ID(), l, err)
		}
	}
	// Level 8's rows: sp2 twice, bare rows for ghost and nodoc.
	level8 := []string{"invoice in1 22.00", "payment sp2 -7.50", "payment sp2 -0.50", "transfer " + review48Event("t1") + " -1.00"}
	s := review48Get(t, a, "p1", clock.day(-1), clock.day(1))
	review48Want(t, "p1's rows at level 8", s.rows(), level8...)
	s.checkBalanced(t, "p1", payableOf(t, a, "p1"))
	s2 := review48Get(t, a, "p2", clock.day(-1), clock.day(1))
	review48Want(t, "p2's rows at level 8", s2.rows(), "transfer "+review48Event("t5")+" 3.00")
	s2.checkBalanced(t, "p2", payableOf(t, a, "p2"))
	review48Agree(t, c)

	// c1 upgraded: every node tells 9, the leader raises the cluster.
	c.stopNode(0)
	c.cfgs[0] = central.WithFSMLevel(c.cfgs[0], 9)
	c.startNode(0, []string{c.nodes[1].GossipAddr()})
	c.waitVoters(3)
	waitFor(t, "the cluster at FSM level 9 on every node", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if l, err := n.ClusterLevel(); err != nil || l != 9 {
				return false
			}
		}
		return true
	})
	a = c.waitLeader().APIAddr()
	review48Hand(t, c.waitLeader(), "t1b", "supplier.payment", "ghost2", "p1", "1")
	review48Hand(t, c.waitLeader(), "t3b", "supplier.payment", "sp2", "p1", "0.25")
	review48Hand(t, c.waitLeader(), "t5b", "document.post", "nodoc", "p2", "-2")
	c.waitSettled()
	s = review48Get(t, a, "p1", clock.day(-1), clock.day(1))
	// The level-8 rows stay as they were written.
	review48Want(t, "p1's rows after the raise", s.rows(),
		append(level8, "transfer ghost2 supplier.payment -1.00", "transfer sp2 supplier.payment -0.25")...)
	s.checkBalanced(t, "p1", payableOf(t, a, "p1"))
	s2 = review48Get(t, a, "p2", clock.day(-1), clock.day(1))
	review48Want(t, "p2's rows after the raise", s2.rows(), "transfer "+review48Event("t5")+" 3.00", "transfer nodoc document.post 2.00")
	s2.checkBalanced(t, "p2", payableOf(t, a, "p2"))
	review48Agree(t, c)
}

// review48Agree checks that every node of c holds the same st/ keys and
// values.
func review48Agree(t *testing.T, c *cluster) {
	t.Helper()
	c.waitSettled()
	first := review48StKeys(t, c.nodes[0])
	if len(first) == 0 {
		t.Fatalf("%s holds no st/ keys", c.nodes[0].ID())
	}
	for _, node := range c.nodes[1:] {
		got := review48StKeys(t, node)
		if len(got) != len(first) {
			t.Fatalf("node %s holds %d st/ keys, %s %d", node.ID(), len(got), c.nodes[0].ID(), len(first))
		}
		for k, v := range first {
			if got[k] != v {
				t.Fatalf("node %s differs from %s at %q", node.ID(), c.nodes[0].ID(), k)
			}
		}
	}
}

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

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review50Node starts a single node telling FSM level level, seeded with
// the back office, a buyer b1, a bank k1, an incoming invoice in1 of p1
// (22.00 owed to p1) and an outgoing invoice out1 to b1 (8.80 owed by
// b1, due on the clock's day -1).
func review50Node(t *testing.T, clock *testClock, level int) (*central.Node, string) {
	t.Helper()
	cfg := central.WithFSMLevel(testConfig(t, "solo", filepath.Join(t.TempDir(), "solo")), level)
	cfg.Now = clock.Now
	n := openNode(t, cfg)
	waitFor(t, fmt.Sprintf("leader at FSM level %d", level), 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == level
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "in1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "20", "purchase_price": "1.10"})})
	createAndPost(t, a, "out1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-1",
		"due_on": clock.day(-1), "lines": lines(map[string]any{"item": "milk", "qty": "4", "price": "2.20"})})
	return n, a
}

// review50Hand books a transfer by hand through n that moves account
// (receivable/b1 or payable/p1) by amount against bank/k1, with reason
// and ref as a document's own transfer has them.
func review50Hand(t *testing.T, n *central.Node, name, reason, ref, account, amount string) {
	t.Helper()
	amt := dec(amount)
	retryUnavailable(t, func() error {
		_, err := n.Transfer(context.Background(), storeline.DerivedEventID("review50/"+name), reason, ref, []storeline.Posting{
			{Account: account, Asset: "cur:EUR", Amount: amt},
			{Account: "bank/k1", Asset: "cur:EUR", Amount: amt.Neg()},
		})
		return err
	})
}

// review50BuyerRows lists b1's statement rows as "type id reason amount",
// sorted.
func review50BuyerRows(t *testing.T, a, from, to string) []string {
	t.Helper()
	r := mustOK(t, apiDo(t, "GET", a, fmt.Sprintf("/v1/buyers/b1/statement?currency=EUR&from=%s&to=%s", from, to), viewerKey, nil, nil))
	var s struct{ Rows []map[string]string }
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range s.Rows {
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s %s", m["type"], m["id"], m["reason"], m["amount"])), " "))
	}
	slices.Sort(out)
	return out
}

// review50Wholesale lists s1's wholesale rows of the margin report as
// "document kind revenue".
func review50Wholesale(t *testing.T, a, from, to string) []string {
	t.Helper()
	var m r39Margin
	q := fmt.Sprintf("/v1/margin?store=s1&from=%s&to=%s&limit=500", from, to)
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &m); err != nil {
		t.Fatal(err)
	}
	if m.More {
		t.Fatalf("%s: more than one page", q)
	}
	var out []string
	for _, w := range m.Wholesale {
		out = append(out, fmt.Sprintf("%s %s %s", w.Document, w.Kind, w.Revenue.StringFixed(2)))
	}
	return out
}

// TestReview50BuyerDocumentReasonByHand: at FSM level 9 a transfer by
// hand that takes a document's reason and names a posted outgoing
// invoice is a transfer row naming its reason, not a second invoice row
// (or a cancel of an invoice that stands): the margin report counts the
// invoice's wholesale once, and the receivables report ages the invoice
// as open and the transfer as not due.
func TestReview50BuyerDocumentReasonByHand(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	n, a := review50Node(t, clock, 9)
	review50Hand(t, n, "h1", "document.post", "out1", "receivable/b1", "1")
	review50Hand(t, n, "h2", "document.cancel", "out1", "receivable/b1", "-0.5")

	from, to := clock.day(-1), clock.day(1)
	if got, want := review50Wholesale(t, a, from, to), []string{"out1 outgoing_invoice 8.00"}; !slices.Equal(got, want) {
		t.Fatalf("s1's wholesale: got %q, want %q (out1 once)", got, want)
	}
	rc := receivables(t, a, clock.day(0))
	if len(rc.Receivables) != 1 {
		t.Fatalf("receivables: %+v", rc)
	}
	if r := rc.Receivables[0]; r.Balance != "9.30" || r.Overdue != "8.80" || r.NotDue != "0.50" {
		t.Fatalf("b1's receivable: %+v, want balance 9.30, overdue 8.80 (out1), not due 0.50 (by hand)", r)
	}
	review48Want(t, "b1's rows", review50BuyerRows(t, a, from, to),
		"invoice out1 8.80", "transfer out1 document.post 1.00", "transfer out1 document.cancel -0.50")
}

// TestReview50SupplierDocumentReasonByHand: at FSM level 9 a transfer
// by hand that takes a document's reason and names a posted incoming
// invoice is a transfer row naming its reason, as a buyer's is.
func TestReview50SupplierDocumentReasonByHand(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	n, a := review50Node(t, clock, 9)
	review50Hand(t, n, "h1", "document.post", "in1", "payable/p1", "-1")
	review50Hand(t, n, "h2", "document.cancel", "in1", "payable/p1", "0.5")
	s := review48Get(t, a, "p1", clock.day(-1), clock.day(1))
	review48Want(t, "p1's rows", s.rows(),
		"invoice in1 22.00", "transfer in1 document.post 1.00", "transfer in1 document.cancel -0.50")
	s.checkBalanced(t, "p1", payableOf(t, a, "p1"))
}

// TestReview50DocumentReasonByHandAtLevel8: below level 9 both sides
// index such a transfer as nodes of the version before do (a row of the
// document it names), so a mixed cluster's replicas agree.
func TestReview50DocumentReasonByHandAtLevel8(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	n, a := review50Node(t, clock, 8)
	review50Hand(t, n, "h1", "document.post", "out1", "receivable/b1", "1")
	review50Hand(t, n, "h2", "document.post", "in1", "payable/p1", "-1")
	from, to := clock.day(-1), clock.day(1)
	review48Want(t, "b1's rows at level 8", review50BuyerRows(t, a, from, to), "invoice out1 8.80", "invoice out1 1.00")
	s := review48Get(t, a, "p1", from, to)
	review48Want(t, "p1's rows at level 8", s.rows(), "invoice in1 22.00", "invoice in1 1.00")
}

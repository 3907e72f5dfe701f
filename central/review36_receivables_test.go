package central_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview36ReceivablesAsOfIsPointInTime: the receivables report as of
// a past day ages what was owed then: movements dated after it (a
// payment, another invoice, the cancel of the invoice) do not count, and
// an invoice cancelled later is still open as of then.
func TestReview36ReceivablesAsOfIsPointInTime(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
	a := receivablesNode(t, clock)
	createAndPost(t, a, "in1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	createAndPost(t, a, "outA", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "4", "price": "2.20"})}) // 8.80
	// Day 5: outA cancelled, outB invoiced instead, 2.00 paid.
	clock.days.Store(5)
	if c := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/outA/cancel", adminKey, nil, nil)); c.Status != "cancelled" {
		t.Fatalf("outA cancel: %+v", c)
	}
	createAndPost(t, a, "outB", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(20),
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "price": "2.20"})}) // 4.40
	if r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey,
		map[string]any{"id": "bp1", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "2", "paid_on": clock.day(5)}, nil); r.status != http.StatusCreated {
		t.Fatalf("payment: %d %s", r.status, r.body)
	}

	for _, c := range []struct {
		day                              int
		balance, notDue, overdue, bucket string
	}{
		{3, "8.80", "0.00", "8.80", "8.80"}, // outA open, 2 days past due
		{4, "8.80", "0.00", "8.80", "8.80"},
		{5, "2.40", "2.40", "0.00", "0.00"}, // outB not due; outA cancelled
		{40, "2.40", "0.00", "2.40", "2.40"},
	} {
		r := receivables(t, a, clock.day(c.day))
		if len(r.Receivables) != 1 {
			t.Fatalf("receivables as of day %d: %+v", c.day, r)
		}
		got := r.Receivables[0]
		if got.Balance != c.balance || got.NotDue != c.notDue || got.Overdue != c.overdue || got.Aging["0-30"] != c.bucket {
			t.Fatalf("receivables as of day %d = %+v, want balance %s not due %s overdue %s (0-30: %s)",
				c.day, got, c.balance, c.notDue, c.overdue, c.bucket)
		}
		if s := buyerStatement(t, a, "b1", clock.day(0), clock.day(c.day)); s.Closing != got.Balance {
			t.Fatalf("as of day %d the report's balance is %s, the statement closes at %s", c.day, got.Balance, s.Closing)
		}
	}
	// Before anything was owed the buyer owes nothing.
	if r := receivables(t, a, clock.day(-1)); len(r.Receivables) != 1 || r.Receivables[0].Balance != "0.00" || r.Receivables[0].Overdue != "0.00" {
		t.Fatalf("receivables the day before the first invoice: %+v", r)
	}
	// Without as_of: what is owed now.
	var out receivablesOut
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/receivables", viewerKey, nil, nil)).body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Receivables) != 1 || out.Receivables[0].Balance != "2.40" {
		t.Fatalf("receivables now: %+v", out)
	}
}

// TestReview36BuyerDocBelowLevelValidatedFirst: below level 5 a buyer's
// document is checked as every level-gated request is (a buyer payment,
// a document naming a purchase order): an invalid one is answered 422
// naming its field, a valid one 503 naming the level, and neither reaches
// the log.
func TestReview36BuyerDocBelowLevelValidatedFirst(t *testing.T) {
	cfg := testConfig(t, "solo", filepath.Join(t.TempDir(), "solo"))
	const below = 4
	n := openNode(t, central.WithFSMLevel(cfg, below))
	waitFor(t, "leader at the level below", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == below
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/o1", adminKey, map[string]any{"type": "outgoing_invoice", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})}, nil), http.StatusUnprocessableEntity, "buyer")
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, map[string]any{"id": "p", "buyer": "b1", "bank": "k1",
		"currency": "EUR", "amount": "-1", "paid_on": "2026-01-01"}, nil), http.StatusUnprocessableEntity, "amount")
	status, body := rawDo(t, "PUT", a, "/v1/documents/o1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "level 5") {
		t.Fatalf("a valid outgoing invoice below its level = %d %s, want 503 naming level 5", status, body)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/o1", viewerKey, nil, nil), http.StatusNotFound, "")
}

// TestReview36OutgoingInvoiceSerialLeavesChain: a marked bottle sold
// wholesale (an outgoing invoice naming its serial) has left the chain:
// a till's later sale of the serial is a conflict, as after a write-off;
// a serial the buyer returned, or whose invoice was cancelled, is back
// and sold without one.
func TestReview36OutgoingInvoiceSerialLeavesChain(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true, "marked": true}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "vodka", "qty": "10", "purchase_price": "5"})})
	bottle := func(serial string) map[string]any {
		return map[string]any{"item": "vodka", "qty": "1", "price": "12", "serial": serial}
	}
	createAndPost(t, a, "out1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(bottle("SN-1"), bottle("SN-2"), bottle("SN-3"))})
	createAndPost(t, a, "ret1", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b1", "lines": lines(bottle("SN-2"))})
	createAndPost(t, a, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "lines": lines(bottle("SN-4"))})
	if d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/out2/cancel", adminKey, nil, nil)); d.Status != "cancelled" {
		t.Fatalf("out2 cancel: %+v", d)
	}
	pushOK(t, n.ReplicationAddr(), salesPush(t, "s1", 1,
		storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-1"},
		storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-2"},
		storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-4"}))
	var sc struct {
		Conflicts []struct {
			Serial string
			Net    int
		}
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/serials/conflicts", viewerKey, nil, nil)).body, &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.Conflicts) != 1 || sc.Conflicts[0].Serial != "SN-1" || sc.Conflicts[0].Net != 2 {
		t.Fatalf("serial conflicts = %+v, want SN-1 sold wholesale and at a till", sc.Conflicts)
	}
}

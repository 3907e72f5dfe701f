package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// receivablesNode starts a single node on clock at the FSM level of
// settlements with buyers, seeded with two shops, a buyer b1 and a bank k1.
func receivablesNode(t *testing.T, clock *testClock) string {
	t.Helper()
	cfg := testConfig(t, "solo", filepath.Join(t.TempDir(), "solo"))
	cfg.Now = clock.Now
	n := openNode(t, cfg)
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	return a
}

type buyerStatementOut struct {
	Opening, Closing, Unindexed string
	Rows                        []struct {
		Type, ID, Date, Amount, Balance, DueOn string
	}
	Totals map[string]string
}

func buyerStatement(t *testing.T, a, buyer, from, to string) buyerStatementOut {
	t.Helper()
	r := mustOK(t, apiDo(t, "GET", a, fmt.Sprintf("/v1/buyers/%s/statement?currency=EUR&from=%s&to=%s", buyer, from, to), viewerKey, nil, nil))
	var s struct {
		Opening, Closing, Unindexed string
		Rows                        []map[string]string
		Totals                      map[string]string
	}
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	out := buyerStatementOut{Opening: s.Opening, Closing: s.Closing, Unindexed: s.Unindexed, Totals: s.Totals}
	for _, m := range s.Rows {
		out.Rows = append(out.Rows, struct{ Type, ID, Date, Amount, Balance, DueOn string }{
			m["type"], m["id"], m["date"], m["amount"], m["balance"], m["due_on"]})
	}
	return out
}

func (s buyerStatementOut) rows() []string {
	var got []string
	for _, r := range s.Rows {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", r.Type, r.ID, r.Date, r.Amount, r.Balance))
	}
	return got
}

type receivablesOut struct {
	AsOf        string `json:"as_of"`
	Receivables []struct {
		Buyer, Currency, Balance string
		NotDue                   string `json:"not_due"`
		Overdue                  string
		Aging                    map[string]string
	}
}

func receivables(t *testing.T, a, asOf string) receivablesOut {
	t.Helper()
	var out receivablesOut
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/receivables?as_of="+asOf, viewerKey, nil, nil)).body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReceivablesSettlement: outgoing invoices, a buyer return, a buyer
// payment and cancels over four days. The invoice's postings are the
// sale on account (units to sold at cost, the receivable debited by the
// total, revenue and output VAT credited); every asset is conserved;
// documents and payments are idempotent by id and a Conflict with other
// content; a refused payment moves nothing; a cancel reverses what it
// cancels; the statement's closing balance is the receivable's; the
// receivables report ages the unpaid newest invoices by their due dates.
func TestReceivablesSettlement(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
	a := receivablesNode(t, clock)
	createAndPost(t, a, "in1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})}) // 1.00 a unit net
	out1 := map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "4", "price": "2.20"})}
	d := createAndPost(t, a, "out1", out1)
	for _, p := range []struct{ acct, asset, want string }{
		{"receivable/b1", "cur:EUR", "8.8"}, {"revenue/s1", "cur:EUR", "-8"}, {"vat/s1/10", "cur:EUR", "-0.8"},
		{"cogs/s1/milk", "cur:EUR", "4"}, {"stock/s1/main/milk", "cur:EUR", "-4"},
		{"stock/s1/main/milk", "item:milk", "-4"}, {"sold/s1/milk", "item:milk", "4"},
	} {
		if got := d.posting(p.acct, p.asset); !got.Equal(dec(p.want)) {
			t.Fatalf("out1 posts %s %s = %s, want %s (all: %+v)", p.acct, p.asset, got, p.want, d.Postings)
		}
	}
	// Idempotent by id: the same content answers the document; other
	// content is a Conflict naming id; a second post a Conflict on status.
	if d := decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/out1", adminKey, out1, nil)); !d.Duplicate || d.Status != "posted" {
		t.Fatalf("out1 again: %+v", d)
	}
	other := map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "price": "2.20"})}
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/out1", adminKey, other, nil), http.StatusConflict, "id")
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/out1/post", adminKey, nil, nil), http.StatusConflict, "status")
	// Refused with the field named: no buyer, an unknown one, no price.
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad1", adminKey, map[string]any{"type": "outgoing_invoice", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})}, nil), http.StatusUnprocessableEntity, "buyer")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad2", adminKey, map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "nobody",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})}, nil), http.StatusUnprocessableEntity, "buyer")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad3", adminKey, map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})}, nil), http.StatusUnprocessableEntity, "lines[0].price")

	// Day 1: a payment of 5.00; the same again; other content; refusals.
	clock.days.Store(1)
	pay := map[string]any{"id": "bp1", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "5", "paid_on": clock.day(1), "reference": "PO-7"}
	if r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, pay, nil); r.status != http.StatusCreated {
		t.Fatalf("payment: %d %s", r.status, r.body)
	} else if m := r.json(t); m["amount"] != "5.00" || m["status"] != "booked" || m["buyer"] != "b1" {
		t.Fatalf("payment answered %v", m)
	}
	if r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, pay, nil); r.status != http.StatusOK {
		t.Fatalf("payment again: %d %s", r.status, r.body)
	}
	before := balances(t, a)
	if !before["bank/k1 cur:EUR"].Equal(dec("5")) || !before["receivable/b1 cur:EUR"].Equal(dec("3.8")) {
		t.Fatalf("after the payment: bank %s receivable %s", before["bank/k1 cur:EUR"], before["receivable/b1 cur:EUR"])
	}
	changed := map[string]any{}
	for k, v := range pay {
		changed[k] = v
	}
	changed["amount"] = "6"
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, changed, nil), http.StatusConflict, "id")
	changed["id"], changed["buyer"] = "bp2", "nobody"
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, changed, nil), http.StatusUnprocessableEntity, "buyer")
	changed["buyer"], changed["bank"] = "b1", "nobank"
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, changed, nil), http.StatusUnprocessableEntity, "bank")
	changed["bank"], changed["amount"] = "k1", "1.234"
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, changed, nil), http.StatusUnprocessableEntity, "amount")
	problemOf(t, apiDo(t, "GET", a, "/v1/buyer_payments/bp2", viewerKey, nil, nil), http.StatusNotFound, "id")
	sameBalances(t, "after refused payments", balances(t, a), before)

	// Day 2: another invoice, and a milk returned.
	clock.days.Store(2)
	createAndPost(t, a, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(9),
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "price": "2.20"})})
	createAndPost(t, a, "r1", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	// Day 3: out2 and the payment cancelled; a third invoice, no due date.
	clock.days.Store(3)
	preCancel := balances(t, a)
	c := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/out2/cancel", adminKey, nil, nil))
	if c.Status != "cancelled" {
		t.Fatalf("out2 cancel: %+v", c)
	}
	afterCancel := balances(t, a)
	if got := afterCancel["receivable/b1 cur:EUR"].Sub(preCancel["receivable/b1 cur:EUR"]); !got.Equal(dec("-4.4")) {
		t.Fatalf("out2's cancel moved the receivable by %s, want -4.40", got)
	}
	if got := afterCancel["sold/s1/milk item:milk"].Sub(preCancel["sold/s1/milk item:milk"]); !got.Equal(dec("-2")) {
		t.Fatalf("out2's cancel moved sold milk by %s, want -2", got)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments/nope/cancel", adminKey, map[string]any{"reason": "x"}, nil), http.StatusNotFound, "id")
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments/bp1/cancel", adminKey, map[string]any{}, nil), http.StatusUnprocessableEntity, "reason")
	m := mustOK(t, apiDo(t, "POST", a, "/v1/buyer_payments/bp1/cancel", adminKey, map[string]any{"reason": "bounced"}, nil)).json(t)
	if m["status"] != "cancelled" || m["cancelled_on"] != clock.day(3) {
		t.Fatalf("payment cancel answered %v", m)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/buyer_payments/bp1/cancel", adminKey, map[string]any{"reason": "again"}, nil), http.StatusConflict, "status")
	if b := balances(t, a); !b["bank/k1 cur:EUR"].IsZero() {
		t.Fatalf("bank/k1 = %s after the payment's cancel, want 0", b["bank/k1 cur:EUR"])
	}
	createAndPost(t, a, "out3", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "3", "price": "2.20"})})

	s := buyerStatement(t, a, "b1", clock.day(0), clock.day(3))
	want := []string{
		"invoice out1 " + clock.day(0) + " 8.80 8.80",
		"payment bp1 " + clock.day(1) + " -5.00 3.80",
		"invoice out2 " + clock.day(2) + " 4.40 8.20",
		"return r1 " + clock.day(2) + " -2.20 6.00",
		"payment_cancel bp1 " + clock.day(3) + " 5.00 11.00",
		"invoice_cancel out2 " + clock.day(3) + " -4.40 6.60",
		"invoice out3 " + clock.day(3) + " 6.60 13.20",
	}
	if fmt.Sprint(s.rows()) != fmt.Sprint(want) {
		t.Fatalf("statement rows:\n got %q\nwant %q", s.rows(), want)
	}
	if s.Opening != "0.00" || s.Closing != "13.20" || s.Unindexed != "0.00" || s.Rows[0].DueOn != clock.day(1) {
		t.Fatalf("statement: opening %s closing %s unindexed %s, first due %q", s.Opening, s.Closing, s.Unindexed, s.Rows[0].DueOn)
	}
	b := balances(t, a) // conservation: every asset sums to zero
	if got := b["receivable/b1 cur:EUR"]; !got.Equal(dec(s.Closing)) {
		t.Fatalf("receivable/b1 = %s, statement closes at %s", got, s.Closing)
	}
	mid := buyerStatement(t, a, "b1", clock.day(2), clock.day(2))
	if mid.Opening != "3.80" || mid.Closing != "6.00" || len(mid.Rows) != 2 {
		t.Fatalf("day 2: opening %s closing %s rows %v", mid.Opening, mid.Closing, mid.rows())
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/buyers/nobody/statement?currency=EUR&from="+clock.day(0)+"&to="+clock.day(3), viewerKey, nil, nil), http.StatusNotFound, "id")

	// Aging: as of day 1, what was owed then (out1 less bp1), due that
	// day. Later, out3 (no due date) is the newest, never overdue; the
	// rest of the balance is out1's (out2 is cancelled).
	if r := receivables(t, a, clock.day(1)); len(r.Receivables) != 1 || r.Receivables[0].Balance != "3.80" ||
		r.Receivables[0].NotDue != "3.80" || r.Receivables[0].Overdue != "0.00" {
		t.Fatalf("receivables on day 1: %+v", r)
	}
	r := receivables(t, a, clock.day(1+45))
	got := r.Receivables[0]
	if got.Buyer != "b1" || got.NotDue != "6.60" || got.Overdue != "6.60" || got.Aging["31-60"] != "6.60" || got.Aging["0-30"] != "0.00" {
		t.Fatalf("receivables 45 days past out1's due date: %+v", r)
	}
	if ds := mustOK(t, apiDo(t, "GET", a, "/v1/documents?type=outgoing_invoice&status=posted", viewerKey, nil, nil)).json(t)["documents"].([]any); len(ds) != 2 {
		t.Fatalf("posted outgoing invoices: %v, want out1 and out3", ds)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/receivables?as_of=tomorrow", viewerKey, nil, nil), http.StatusBadRequest, "as_of")
}

// TestOutgoingInvoiceBelowLevel: while the cluster runs a level below
// settlements with buyers, a buyer's document and a buyer payment are
// refused before they reach the log (503 naming the level); entries
// applied all the same are answered as a node of the level below answers
// them: a buyer payment an unknown op, an outgoing invoice an unknown
// document type, and another document's buyer dropped.
func TestOutgoingInvoiceBelowLevel(t *testing.T) {
	cfg := testConfig(t, "solo", filepath.Join(t.TempDir(), "solo"))
	const level = 5 // of settlements with buyers (levels.go)
	below := level - 1
	n := openNode(t, central.WithFSMLevel(cfg, below))
	waitFor(t, "leader at the level below", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == below
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	line := lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/v1/documents/o1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "lines": line}},
		{"POST", "/v1/buyer_payments", map[string]any{"id": "p", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "1", "paid_on": "2026-01-01"}},
	} {
		var status int
		var body string
		waitFor(t, r.path+" refused for its level", 15*time.Second, func() bool {
			status, body = rawDo(t, r.method, a, r.path, r.body)
			return status != http.StatusServiceUnavailable || strings.Contains(body, "level")
		})
		if status != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprintf("level %d", level)) {
			t.Fatalf("%s %s below the level = %d %s, want 503 naming level %d", r.method, r.path, status, body, level)
		}
	}
	submit := func(op string, v any) error {
		t.Helper()
		enc, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var res *central.Result
		retryUnavailable(t, func() error {
			var err error
			res, err = n.SubmitPastLevel(op, enc)
			return err
		})
		return res.Err()
	}
	before := balances(t, a)
	if err := submit(central.OpBuyerPayment, map[string]any{"i": "p", "u": "b1", "b": "k1", "c": "EUR", "a": "1", "d": "2026-01-01"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("a buyer payment applied below its level = %v, want the unknown-op answer", err)
	}
	out := storeline.Document{ID: "o2", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("1"), Price: dec("2")}}}
	if err := submit(central.OpDocCreate, &out); storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != "type" {
		t.Fatalf("an outgoing invoice created below its level = %v, want the unknown type answer", err)
	}
	wo := storeline.Document{ID: "w2", Type: storeline.DocWriteOff, Store: "s1", Buyer: "b1", Reason: "broken",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("1")}}}
	if err := submit(central.OpDocCreate, &wo); err != nil {
		t.Fatalf("a write-off naming a buyer below the level = %v, want it created without the buyer", err)
	}
	if got := getDocField(t, a, "w2", "buyer"); got != nil {
		t.Fatalf("w2 created below the level holds buyer %v, want none", got)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/o2", viewerKey, nil, nil), http.StatusNotFound, "")
	sameBalances(t, "after refused entries", balances(t, a), before)
}

package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// testClock is a node clock the test moves by whole days.
type testClock struct {
	base time.Time
	days atomic.Int64
}

func (c *testClock) Now() time.Time { return c.base.AddDate(0, 0, int(c.days.Load())) }

// day is the date d days after the clock's base (UTC; Riga's date too at
// the base's hour).
func (c *testClock) day(d int) string { return c.base.AddDate(0, 0, d).Format(time.DateOnly) }

type statementOut struct {
	Supplier  string `json:"supplier"`
	Currency  string `json:"currency"`
	From      string `json:"from"`
	To        string `json:"to"`
	Opening   string `json:"opening"`
	Closing   string `json:"closing"`
	Unindexed string `json:"unindexed"`
	Rows      []struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		Date      string `json:"date"`
		Store     string `json:"store"`
		Bank      string `json:"bank"`
		Reference string `json:"reference"`
		Amount    string `json:"amount"`
		Balance   string `json:"balance"`
	} `json:"rows"`
	Totals map[string]string `json:"totals"`
}

func statement(t *testing.T, addr, supplier, from, to, extra string) statementOut {
	t.Helper()
	r := apiDo(t, "GET", addr, fmt.Sprintf("/v1/suppliers/%s/statement?currency=EUR&from=%s&to=%s%s", supplier, from, to, extra), viewerKey, nil, nil)
	var s statementOut
	if err := json.Unmarshal(mustOK(t, r).body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantRows checks a statement's rows: "type id date amount balance" each.
func (s statementOut) wantRows(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for _, r := range s.Rows {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", r.Type, r.ID, r.Date, r.Amount, r.Balance))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statement %s..%s rows:\n got %q\nwant %q", s.From, s.To, got, want)
	}
}

func (s statementOut) wantTotals(t *testing.T, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := s.Totals[k]; !ok || got != v {
			t.Fatalf("total %s = %s, want %s (all: %v)", k, got, v, s.Totals)
		}
	}
	if len(s.Totals) != len(want) {
		t.Fatalf("totals %v, want %v", s.Totals, want)
	}
}

func payableOf(t *testing.T, addr, supplier string) decimal.Decimal {
	t.Helper()
	var body struct {
		Balances []struct {
			Account, Asset string
			Amount         decimal.Decimal
		}
	}
	r := mustOK(t, apiDo(t, "GET", addr, "/v1/balances?prefix=payable/", viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, b := range body.Balances {
		if b.Account == "payable/"+supplier && b.Asset == "cur:EUR" {
			return b.Amount
		}
	}
	return decimal.Zero
}

// TestSettlementsStatement: invoices at two shops, a return, a cancelled
// invoice and two payments for one supplier over four days, on a
// three-node cluster: the statement's rows, running balance and totals are
// exact, its closing balance is the payable balance, a period in the
// middle opens with what was owed before it, every replica answers the
// same, and balances are conserved.
func TestSettlementsStatement(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
	c := startClusterWith(t, 3, func(cfg *central.Config) { cfg.Now = clock.Now })
	waitPaymentLevel(t, c)
	l := c.waitLeader()
	a := l.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"}, nil))
	pay := func(id, amount, paidOn, ref string) map[string]any {
		m := map[string]any{"id": id, "supplier": "p1", "bank": "b1", "currency": "EUR", "amount": amount, "paid_on": paidOn}
		if ref != "" {
			m["reference"] = ref
		}
		return m
	}
	created := func(r response) map[string]any {
		t.Helper()
		if r.status != http.StatusCreated {
			t.Fatalf("payment: status %d, want 201: %s", r.status, r.body)
		}
		return r.json(t)
	}

	// Day 0: an invoice at s1, 10 × 1.10; another supplier's at s1.
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "number": "A-1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	createAndPost(t, a, "other1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p2",
		"lines": lines(map[string]any{"item": "bread", "qty": "3", "purchase_price": "0.70"})})
	// Day 1: an invoice at s2, 20 kg × 0.80; a payment of 10.00.
	clock.days.Store(1)
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "20", "purchase_price": "0.80"})})
	p1 := created(apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, pay("pay1", "10.00", clock.day(1), "PP-1"), nil))
	if p1["amount"] != "10.00" || p1["paid_on"] != clock.day(1) || p1["reference"] != "PP-1" {
		t.Fatalf("payment answered %v", p1)
	}
	// Day 2: an invoice of bread 5 × 2.00, and 2 milk returned at 1.10.
	clock.days.Store(2)
	createAndPost(t, a, "inv3", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "bread", "qty": "5", "purchase_price": "2.00"})})
	createAndPost(t, a, "ret1", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.10"})})
	// Day 3: the bread invoice cancelled; a payment of 5.50 dated day 3,
	// booked on day 4.
	clock.days.Store(3)
	decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/inv3/cancel", adminKey, nil, nil))
	clock.days.Store(4)
	created(apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, pay("pay2", "5.5", clock.day(3), "PP-2"), nil))

	all := statement(t, a, "p1", clock.day(0), clock.day(3), "")
	all.wantRows(t,
		"invoice inv1 "+clock.day(0)+" 11.00 11.00",
		"invoice inv2 "+clock.day(1)+" 16.00 27.00",
		"payment pay1 "+clock.day(1)+" -10.00 17.00",
		"invoice inv3 "+clock.day(2)+" 10.00 27.00",
		"return ret1 "+clock.day(2)+" -2.20 24.80",
		"invoice_cancel inv3 "+clock.day(3)+" -10.00 14.80",
		"payment pay2 "+clock.day(3)+" -5.50 9.30",
	)
	if all.Opening != "0.00" || all.Closing != "9.30" || all.Unindexed != "0.00" {
		t.Fatalf("statement: opening %s closing %s unindexed %s, want 0, 9.30, 0", all.Opening, all.Closing, all.Unindexed)
	}
	all.wantTotals(t, map[string]string{"invoice": "37.00", "invoice_cancel": "-10.00", "return": "-2.20",
		"return_cancel": "0.00", "payment": "-15.50", "payment_cancel": "0.00", "transfer": "0.00"})
	if r := all.Rows[1]; r.Store != "s2" {
		t.Fatalf("inv2's row: store %q, want s2", r.Store)
	}
	if r := all.Rows[2]; r.Bank != "b1" || r.Reference != "PP-1" {
		t.Fatalf("pay1's row: bank %q reference %q", r.Bank, r.Reference)
	}
	// The closing balance is what the books say the chain owes.
	if got := payableOf(t, a, "p1"); !got.Neg().Equal(dec(all.Closing)) {
		t.Fatalf("payable/p1 = %s, statement closes at %s", got, all.Closing)
	}
	b := balances(t, a) // conservation: every asset sums to zero
	if got := b["bank/b1 cur:EUR"]; !got.Equal(dec("-15.50")) {
		t.Fatalf("bank/b1 = %s, want -15.50", got)
	}

	// A period in the middle opens with what was owed at its start.
	mid := statement(t, a, "p1", clock.day(1), clock.day(2), "")
	mid.wantRows(t,
		"invoice inv2 "+clock.day(1)+" 16.00 27.00",
		"payment pay1 "+clock.day(1)+" -10.00 17.00",
		"invoice inv3 "+clock.day(2)+" 10.00 27.00",
		"return ret1 "+clock.day(2)+" -2.20 24.80",
	)
	if mid.Opening != "11.00" || mid.Closing != "24.80" {
		t.Fatalf("days 1-2: opening %s closing %s, want 11.00 and 24.80", mid.Opening, mid.Closing)
	}
	// Before anything, and after everything.
	if s := statement(t, a, "p1", clock.day(-5), clock.day(-1), ""); len(s.Rows) != 0 || s.Opening != "0.00" || s.Closing != "0.00" {
		t.Fatalf("before day 0: %+v", s)
	}
	if s := statement(t, a, "p1", clock.day(4), clock.day(9), ""); len(s.Rows) != 0 || s.Opening != "9.30" || s.Closing != "9.30" {
		t.Fatalf("after day 3: %+v", s)
	}
	// The other supplier's statement has its own invoice only.
	statement(t, a, "p2", clock.day(0), clock.day(9), "").wantRows(t, "invoice other1 "+clock.day(0)+" 2.10 2.10")

	// Every replica holds the rows: a follower answers the same.
	f := c.follower()
	fs := statement(t, f.APIAddr(), "p1", clock.day(2), clock.day(2), "&consistency=linearizable")
	fs.wantRows(t, "invoice inv3 "+clock.day(2)+" 10.00 27.00", "return ret1 "+clock.day(2)+" -2.20 24.80")
	if fs.Opening != "17.00" {
		t.Fatalf("follower: day 2 opens at %s, want 17.00", fs.Opening)
	}
	for _, n := range c.nodes {
		waitFor(t, n.ID()+" applies the payments", 10*time.Second, func() bool {
			v, err := n.Balance("bank/b1", storeline.MoneyAsset("EUR"))
			return err == nil && v.Equal(dec("-15.50"))
		})
	}
}

// TestSupplierPaymentRetryAndRefusals: a payment retried with the same
// content answers the stored payment and moves nothing; with other
// content it is a 409 naming id; bad input is refused naming the field,
// and changes nothing.
func TestSupplierPaymentRetryAndRefusals(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Now = clock.Now })
	waitPaymentLevel(t, c)
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	today := clock.day(0)
	body := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"id": "pay1", "supplier": "p1", "bank": "b1", "currency": "EUR", "amount": "4.00",
			"paid_on": today, "reference": "PP-1", "note": "first instalment"}
		if mod != nil {
			mod(m)
		}
		return m
	}
	r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body(nil), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("payment: %d %s", r.status, r.body)
	}
	first := r.json(t)
	if first["position"] == nil || first["event"] == "" {
		t.Fatalf("payment answered without its position: %s", r.body)
	}
	before := balances(t, a)
	if got := before["payable/p1 cur:EUR"]; !got.Equal(dec("-7.00")) {
		t.Fatalf("payable/p1 = %s, want -7.00 (11.00 invoiced, 4.00 paid)", got)
	}
	if got := before["bank/b1 cur:EUR"]; !got.Equal(dec("-4.00")) {
		t.Fatalf("bank/b1 = %s, want -4.00", got)
	}

	// The same payment again (a new request, "4" is 4.00): the stored one.
	for _, amt := range []string{"4.00", "4"} {
		r = apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body(func(m map[string]any) { m["amount"] = amt }), nil)
		if r.status != http.StatusOK {
			t.Fatalf("retry with amount %s: %d %s, want 200", amt, r.status, r.body)
		}
		again := r.json(t)
		if fmt.Sprint(again["position"]) != fmt.Sprint(first["position"]) || again["event"] != first["event"] {
			t.Fatalf("retry answered %v, first %v", again, first)
		}
		sameBalances(t, "after a retry", balances(t, a), before)
	}
	mustOK(t, apiDo(t, "GET", a, "/v1/supplier_payments/pay1", viewerKey, nil, nil))

	// The same id with other content.
	for name, mod := range map[string]func(map[string]any){
		"amount":    func(m map[string]any) { m["amount"] = "4.01" },
		"reference": func(m map[string]any) { m["reference"] = "PP-9" },
		"paid_on":   func(m map[string]any) { m["paid_on"] = "2020-01-01" },
		"no note":   func(m map[string]any) { delete(m, "note") },
		"currency":  func(m map[string]any) { m["currency"] = "USD" },
	} {
		r = apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body(mod), nil)
		if r.status != http.StatusConflict {
			t.Fatalf("changed retry (%s): %d %s, want 409", name, r.status, r.body)
		}
		problemOf(t, r, http.StatusConflict, "id")
		sameBalances(t, "after a changed retry ("+name+")", balances(t, a), before)
	}

	// Bad input: refused naming the field; nothing written.
	for i, tc := range []struct {
		name   string
		mod    func(map[string]any)
		status int
		field  string
	}{
		{"unknown supplier", func(m map[string]any) { m["supplier"] = "nobody" }, 422, "supplier"},
		{"unknown bank", func(m map[string]any) { m["bank"] = "nobank" }, 422, "bank"},
		{"amount 0", func(m map[string]any) { m["amount"] = "0" }, 422, "amount"},
		{"negative amount", func(m map[string]any) { m["amount"] = "-5.00" }, 422, "amount"},
		{"too many decimals", func(m map[string]any) { m["amount"] = "1.005" }, 422, "amount"},
		{"too many decimals for JPY", func(m map[string]any) { m["currency"] = "JPY"; m["amount"] = "1.5" }, 422, "amount"},
		{"not a decimal", func(m map[string]any) { m["amount"] = "ten" }, 400, "amount"},
		{"an exponent", func(m map[string]any) { m["amount"] = "1e3" }, 400, "amount"},
		{"amount as a number", func(m map[string]any) { m["amount"] = 5 }, 400, "amount"},
		{"no amount", func(m map[string]any) { delete(m, "amount") }, 422, "amount"},
		{"bad date", func(m map[string]any) { m["paid_on"] = "2026-02-30" }, 422, "paid_on"},
		{"not a date", func(m map[string]any) { m["paid_on"] = "yesterday" }, 422, "paid_on"},
		{"bad currency", func(m map[string]any) { m["currency"] = "eur" }, 422, "currency"},
		{"bad id", func(m map[string]any) { m["id"] = "a/b" }, 422, "id"},
		{"control in reference", func(m map[string]any) { m["reference"] = "a\x01b" }, 422, "reference"},
	} {
		b := body(tc.mod)
		if tc.name != "bad id" {
			b["id"] = fmt.Sprintf("bad-%d", i)
		}
		r = apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, b, nil)
		if r.status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
		problemOf(t, r, tc.status, tc.field)
		sameBalances(t, "after "+tc.name, balances(t, a), before)
		if id, ok := b["id"].(string); ok && storeline.ValidID(id) {
			problemOf(t, apiDo(t, "GET", a, "/v1/supplier_payments/"+id, viewerKey, nil, nil), http.StatusNotFound, "id")
		}
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, `{"id":"x","extra":1}`, nil), 400, "")
	if r = apiDo(t, "POST", a, "/v1/supplier_payments", viewerKey, body(nil), nil); r.status != http.StatusForbidden {
		t.Fatalf("a viewer pays: %d %s, want 403", r.status, r.body)
	}

	// The statement's own refusals.
	q := "/v1/suppliers/%s/statement?currency=%s&from=%s&to=%s"
	problemOf(t, apiDo(t, "GET", a, fmt.Sprintf(q, "nobody", "EUR", today, today), viewerKey, nil, nil), 404, "id")
	problemOf(t, apiDo(t, "GET", a, fmt.Sprintf(q, "p1", "", today, today), viewerKey, nil, nil), 400, "currency")
	problemOf(t, apiDo(t, "GET", a, fmt.Sprintf(q, "p1", "EUR", "soon", today), viewerKey, nil, nil), 400, "from")
	problemOf(t, apiDo(t, "GET", a, fmt.Sprintf(q, "p1", "EUR", today, "2000-01-01"), viewerKey, nil, nil), 400, "to")
	s := statement(t, a, "p1", today, today, "")
	if s.Closing != "7.00" || len(s.Rows) != 2 {
		t.Fatalf("statement after the refusals: %+v", s)
	}
	if got := payableOf(t, a, "p1"); !got.Neg().Equal(dec(s.Closing)) {
		t.Fatalf("payable/p1 = %s, statement closes at %s", got, s.Closing)
	}
}

// waitPaymentLevel waits until every node has applied the cluster FSM
// level that supplier payments need (levels.go): the leader raises it once
// gossip tells it every member's level, shortly after the cluster forms.
func waitPaymentLevel(t *testing.T, c *cluster) {
	t.Helper()
	waitFor(t, "every node at the FSM level of supplier payments", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if l, err := n.ClusterLevel(); err != nil || l < central.FSMLevel {
				return false
			}
		}
		return true
	})
}

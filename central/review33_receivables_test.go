package central_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

func review33Clock() *testClock {
	now := time.Now().UTC()
	return &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
}

// A buyer owing in two currencies gets one aged row per currency, never
// their sum; a statement in one currency lists that currency's rows.
func TestReview33ReceivablesTwoCurrencies(t *testing.T) {
	clock := review33Clock()
	a := receivablesNode(t, clock)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/usd", adminKey, map[string]any{"name": "USD", "currency": "USD"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s3", adminKey, map[string]any{
		"name": "Shop 3", "time_zone": "UTC", "currency": "USD",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"usd"},
	}, nil))
	createAndPost(t, a, "oe", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "10"})})
	createAndPost(t, a, "ou", map[string]any{"type": "outgoing_invoice", "store": "s3", "buyer": "b1", "due_on": clock.day(2),
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "3"})})
	r := receivables(t, a, clock.day(40))
	if len(r.Receivables) != 2 {
		t.Fatalf("receivables: %+v, want one row per currency", r)
	}
	for _, rc := range r.Receivables {
		want := map[string]string{"EUR": "10.00", "USD": "3.00"}[rc.Currency]
		if rc.Balance != want || rc.Overdue != want || rc.Aging["31-60"] != want {
			t.Errorf("%s: %+v, want balance and 31-60 overdue %s", rc.Currency, rc, want)
		}
	}
	s := buyerStatement(t, a, "b1", clock.day(0), clock.day(0))
	if len(s.Rows) != 1 || s.Closing != "10.00" {
		t.Fatalf("EUR statement: %+v", s)
	}
}

// A buyer in credit (paid more than invoiced, or returned more) owes
// nothing overdue; its balance is negative and not due.
func TestReview33ReceivablesCredit(t *testing.T) {
	clock := review33Clock()
	a := receivablesNode(t, clock)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b2", adminKey, map[string]any{"name": "Bar"}, nil))
	createAndPost(t, a, "o1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "10"})})
	review33Pay(t, a, map[string]any{"id": "p1", "buyer": "b1", "bank": "k1",
		"currency": "EUR", "amount": "25", "paid_on": clock.day(0)})
	createAndPost(t, a, "r2", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b2",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "price": "3"})})
	r := receivables(t, a, clock.day(100))
	if len(r.Receivables) != 2 {
		t.Fatalf("receivables: %+v", r)
	}
	for _, rc := range r.Receivables {
		want := map[string]string{"b1": "-15.00", "b2": "-6.00"}[rc.Buyer]
		if rc.Balance != want || rc.NotDue != want || rc.Overdue != "0.00" {
			t.Errorf("%s: %+v, want balance %s not due, nothing overdue", rc.Buyer, rc, want)
		}
	}
}

type review33Page struct {
	Opening, Closing string
	Next             string
	Rows             []map[string]string
}

// A statement from the middle opens at what was owed before it, pages
// keep the period's opening and closing, and the closing is the
// receivable's balance as of the period's end.
func TestReview33StatementMiddleAndPages(t *testing.T) {
	clock := review33Clock()
	a := receivablesNode(t, clock)
	createAndPost(t, a, "o1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "10"})})
	clock.days.Store(1)
	createAndPost(t, a, "o2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "7"})})
	review33Pay(t, a, map[string]any{"id": "p1", "buyer": "b1", "bank": "k1",
		"currency": "EUR", "amount": "4", "paid_on": clock.day(1)})
	// A payment dated ahead, cancelled today: its cancel is dated with it.
	review33Pay(t, a, map[string]any{"id": "p2", "buyer": "b1", "bank": "k1",
		"currency": "EUR", "amount": "1", "paid_on": clock.day(3)})
	clock.days.Store(2)
	m := mustOK(t, apiDo(t, "POST", a, "/v1/buyer_payments/p2/cancel", adminKey, map[string]any{"reason": "typo"}, nil)).json(t)
	if m["cancelled_on"] != clock.day(3) {
		t.Fatalf("cancel of a payment dated day 3 dated %v", m["cancelled_on"])
	}
	createAndPost(t, a, "o3", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})})
	var pages []review33Page
	after := ""
	for i := 0; i < 5; i++ {
		path := "/v1/buyers/b1/statement?currency=EUR&limit=1&from=" + clock.day(1) + "&to=" + clock.day(1)
		if after != "" {
			path += "&after=" + after
		}
		var p review33Page
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, path, viewerKey, nil, nil)).body, &p); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
		if after = p.Next; after == "" {
			break
		}
	}
	if len(pages) != 2 {
		t.Fatalf("pages: %+v, want 2", pages)
	}
	for _, p := range pages {
		if p.Opening != "10.00" || p.Closing != "13.00" || len(p.Rows) != 1 {
			t.Fatalf("page %+v: want opening 10.00, closing 13.00, one row", p)
		}
	}
	s := buyerStatement(t, a, "b1", clock.day(3), clock.day(3))
	if s.Opening != "15.00" || s.Closing != "15.00" || len(s.Rows) != 2 {
		t.Fatalf("day 3: %+v", s)
	}
}

// Refused inputs name their field and store nothing.
func TestReview33ReceivablesValidation(t *testing.T) {
	clock := review33Clock()
	a := receivablesNode(t, clock)
	before := balances(t, a)
	pay := func(k, v string) map[string]any {
		m := map[string]any{"id": "px", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "1", "paid_on": clock.day(0)}
		m[k] = v
		return m
	}
	for _, c := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{pay("buyer", "bad id"), http.StatusUnprocessableEntity, "buyer"},
		{pay("buyer", "nobody"), http.StatusUnprocessableEntity, "buyer"},
		{pay("amount", "0"), http.StatusUnprocessableEntity, "amount"},
		{pay("amount", "-1"), http.StatusUnprocessableEntity, "amount"},
		{pay("amount", "1.001"), http.StatusUnprocessableEntity, "amount"},
		{pay("paid_on", "2026-02-30"), http.StatusUnprocessableEntity, "paid_on"},
		{pay("currency", "eur"), http.StatusUnprocessableEntity, "currency"},
	} {
		r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, c.body, nil)
		if r.status/100 != 4 {
			t.Fatalf("%v: %d %s", c.body, r.status, r.body)
		}
		problemOf(t, r, r.status, c.field)
	}
	doc := func(typ, k string, v any) map[string]any {
		m := map[string]any{"type": typ, "store": "s1", "buyer": "b1",
			"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2"})}
		if typ == "write_off" {
			m["reason"] = "broken"
			delete(m, "buyer")
		}
		if k != "" {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{doc("outgoing_invoice", "buyer", "bad id"), "buyer"},
		{doc("outgoing_invoice", "lines", lines(map[string]any{"item": "milk", "qty": "1", "price": "-1"})), "lines[0].price"},
		{doc("outgoing_invoice", "lines", lines(map[string]any{"item": "milk", "qty": "1", "price": "0"})), "lines[0].price"},
		{doc("outgoing_invoice", "lines", lines(map[string]any{"item": "milk", "qty": "1", "price": "1.00001"})), "lines[0].price"},
		{doc("outgoing_invoice", "due_on", "2026-02-30"), "due_on"},
		{doc("buyer_return", "due_on", clock.day(1)), "due_on"},
		{doc("write_off", "due_on", clock.day(1)), "due_on"},
		{doc("write_off", "buyer", "b1"), "buyer"},
	} {
		r := apiDo(t, "PUT", a, "/v1/documents/dx", adminKey, c.body, nil)
		if r.status/100 != 4 {
			t.Fatalf("%v: %d %s", c.body, r.status, r.body)
		}
		problemOf(t, r, r.status, c.field)
	}
	if r := apiDo(t, "GET", a, "/v1/documents/dx", viewerKey, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("refused document stored: %d %s", r.status, r.body)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/buyer_payments/px", viewerKey, nil, nil), http.StatusNotFound, "id")
	sameBalances(t, "after refusals", balances(t, a), before)
}

func review33Pay(t *testing.T, a string, body map[string]any) {
	t.Helper()
	if r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, body, nil); r.status != http.StatusCreated {
		t.Fatalf("payment %v: %d %s", body["id"], r.status, r.body)
	}
}

// A buyer's receivable belongs to no shop, even a buyer whose ID is also
// a shop's (a franchise shop buying wholesale): head office's transfers
// that move it are not fed to that shop.
func TestReview33ReceivableOfNoShop(t *testing.T) {
	clock := review33Clock()
	cfg := testConfig(t, "solo", filepath.Join(t.TempDir(), "solo"))
	cfg.Now, cfg.ReplicationTokens = clock.Now, replTokens()
	n := openNode(t, cfg)
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a := n.APIAddr()
	seedBackOffice(t, a) // stores s1 and s2
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/s2", adminKey, map[string]any{"name": "Franchise shop 2"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "o1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "s2",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "10"})})
	review33Pay(t, a, map[string]any{"id": "p1", "buyer": "s2", "bank": "k1", "currency": "EUR", "amount": "4", "paid_on": clock.day(0)})
	got := map[storeline.EventID]int{}
	origins := map[storeline.EventID]string{}
	riDrain(t, n.ReplicationAddr(), testShops[1].token, "s2", 0, 100, got, origins, nil)
	for id := range got {
		t.Errorf("shop s2 was fed head office's event %s, which moves only receivable/s2 (a buyer's) and s1's or a bank's accounts", id)
	}
}

// Oldest first is the order invoices were posted in, not their IDs': of
// two invoices of a day, the one posted first is paid first.
func TestReview33ReceivablesOldestByPosting(t *testing.T) {
	clock := review33Clock()
	a := receivablesNode(t, clock)
	createAndPost(t, a, "z1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "due_on": clock.day(1),
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "10"})})
	createAndPost(t, a, "a1", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "7"})})
	review33Pay(t, a, map[string]any{"id": "p1", "buyer": "b1", "bank": "k1", "currency": "EUR", "amount": "10", "paid_on": clock.day(0)})
	r := receivables(t, a, clock.day(40))
	if len(r.Receivables) != 1 || r.Receivables[0].Balance != "7.00" || r.Receivables[0].NotDue != "7.00" || r.Receivables[0].Overdue != "0.00" {
		t.Fatalf("z1 (posted first, due day 1) paid, a1 (no due date) open: %+v, want 7.00 not due", r)
	}
}

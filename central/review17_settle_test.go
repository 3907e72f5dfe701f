package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

// review17Settle starts a one-node cluster at the FSM level of supplier
// payments with the back office's master data, a bank b1, and an
// invoice of 11.00 EUR from p1 at s1 on the clock's day 0.
func review17Settle(t *testing.T) (string, *testClock) {
	t.Helper()
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Now = clock.Now })
	waitPaymentLevel(t, c)
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	return a, clock
}

// TestReview17SettleReferenceCountsCharacters: openapi.yaml bounds a
// payment's reference at 128 and its note at 1,024 characters
// (maxLength); a reference of 100 Cyrillic letters (200 bytes in UTF-8)
// and a note of 600 are within them and must be booked, not refused as
// too long.
func TestReview17SettleReferenceCountsCharacters(t *testing.T) {
	a, clock := review17Settle(t)
	body := map[string]any{"id": "pay-ru", "supplier": "p1", "bank": "b1", "currency": "EUR", "amount": "5.00",
		"paid_on": clock.day(0), "reference": strings.Repeat("ё", 100), "note": strings.Repeat("ж", 600)}
	r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("a payment with a 100-letter Cyrillic reference: %d %s, want 201", r.status, r.body)
	}
	if got := r.json(t)["reference"]; got != body["reference"] {
		t.Fatalf("reference answered %q", got)
	}
	// Over the bound in characters is still refused, naming the field.
	body["id"], body["reference"] = "pay-long", strings.Repeat("ё", 129)
	problemOf(t, apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body, nil), 422, "reference")
	body["reference"], body["note"] = "ok", strings.Repeat("ж", 1025)
	problemOf(t, apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body, nil), 422, "note")
}

// TestReview17SettleStatementPages: the README says the back-office
// reports page (limit 1-5000, after = the previous page's next, empty
// next at the end, a bad one a 400 naming the field), and the statement
// is one of them. Its pages list the period's rows in order with their
// running balances; the opening, closing and totals stay the period's.
func TestReview17SettleStatementPages(t *testing.T) {
	a, clock := review17Settle(t)
	for i, amt := range []string{"1.00", "2.00", "3.00"} {
		r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, map[string]any{"id": fmt.Sprintf("pay%d", i),
			"supplier": "p1", "bank": "b1", "currency": "EUR", "amount": amt, "paid_on": clock.day(0)}, nil)
		if r.status != http.StatusCreated {
			t.Fatalf("payment %d: %d %s", i, r.status, r.body)
		}
	}
	type page struct {
		statementOut
		Next string `json:"next"`
	}
	get := func(extra string) page {
		t.Helper()
		r := apiDo(t, "GET", a, fmt.Sprintf("/v1/suppliers/p1/statement?currency=EUR&from=%s&to=%s%s", clock.day(0), clock.day(0), extra), viewerKey, nil, nil)
		var p page
		if err := json.Unmarshal(mustOK(t, r).body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := get("")
	all.wantRows(t, "invoice inv1 "+clock.day(0)+" 11.00 11.00", "payment pay0 "+clock.day(0)+" -1.00 10.00",
		"payment pay1 "+clock.day(0)+" -2.00 8.00", "payment pay2 "+clock.day(0)+" -3.00 5.00")
	if all.Next != "" {
		t.Fatalf("one page holds the statement, but next = %q", all.Next)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 2 {
			t.Fatalf("limit=2 over 4 rows: more than 2 pages (%v)", got)
		}
		p := get("&limit=2" + after)
		if len(p.Rows) > 2 {
			t.Fatalf("limit=2: %d rows", len(p.Rows))
		}
		if p.Opening != "0.00" || p.Closing != "5.00" || p.Totals["payment"] != "-6.00" {
			t.Fatalf("page %d: opening %s closing %s totals %v, want the period's 0.00, 5.00, payment -6.00", pages, p.Opening, p.Closing, p.Totals)
		}
		for _, r := range p.Rows {
			got = append(got, fmt.Sprintf("%s %s %s %s %s", r.Type, r.ID, r.Date, r.Amount, r.Balance))
		}
		if p.Next == "" {
			break
		}
		after = "&after=" + p.Next
	}
	var want []string
	for _, r := range all.Rows {
		want = append(want, fmt.Sprintf("%s %s %s %s %s", r.Type, r.ID, r.Date, r.Amount, r.Balance))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages of 2:\n got %q\nwant %q", got, want)
	}
	q := fmt.Sprintf("/v1/suppliers/p1/statement?currency=EUR&from=%s&to=%s", clock.day(0), clock.day(0))
	for _, bad := range []struct{ q, field string }{{"&limit=0", "limit"}, {"&limit=5001", "limit"}, {"&limit=x", "limit"},
		{"&after=nonsense", "after"}, {"&after=2026-01-01/a/b", "after"}} {
		problemOf(t, apiDo(t, "GET", a, q+bad.q, viewerKey, nil, nil), http.StatusBadRequest, bad.field)
	}
}

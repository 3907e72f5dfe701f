package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// r19Margin is one page of GET /v1/margin.
type r19Margin struct {
	Sales []struct {
		Event, Kind, Date string
		Cost              *decimal.Decimal
	}
	Recosts []struct {
		Date, Document, Kind, Item string
		Cost                       decimal.Decimal
	}
	Revenue, Cost, Recost decimal.Decimal
	Uncosted              int
	More                  bool
	Next                  string
}

// r19MarginRecost is a re-cost row as read over every page.
type r19MarginRecost struct {
	date, document, kind string
	cost                 decimal.Decimal
}

// r19MarginCost reads s1's margin report for from..to in pages of limit
// rows, checks each page's totals against its rows, and returns the
// pages' cost and their re-cost rows.
func r19MarginCost(t *testing.T, a string, from, to storeline.Date, limit int) (decimal.Decimal, []r19MarginRecost) {
	t.Helper()
	var cost decimal.Decimal
	var recosts []r19MarginRecost
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("margin: no end")
		}
		q := fmt.Sprintf("/v1/margin?store=s1&from=%s&to=%s&limit=%d", from, to, limit)
		if after != "" {
			q += "&after=" + after
		}
		var m r19Margin
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &m); err != nil {
			t.Fatal(err)
		}
		if m.Uncosted != 0 || len(m.Sales)+len(m.Recosts) > limit || m.More != (m.Next != "") {
			t.Fatalf("%s: %+v", q, m)
		}
		var sales, rec decimal.Decimal
		for _, s := range m.Sales {
			if s.Cost == nil || seen[s.Event] {
				t.Fatalf("%s: sale %+v (uncosted, or again)", q, s)
			}
			seen[s.Event] = true
			sales = sales.Add(*s.Cost)
		}
		for _, r := range m.Recosts {
			key := r.Document + "/" + r.Kind + "/" + r.Item
			if seen[key] || storeline.Date(r.Date) < from || storeline.Date(r.Date) > to || r.Item != "milk" {
				t.Fatalf("%s: re-cost %+v (again, out of the period, or not milk)", q, r)
			}
			seen[key] = true
			rec = rec.Add(r.Cost)
			recosts = append(recosts, r19MarginRecost{r.Date, r.Document, r.Kind, r.Cost})
		}
		if !m.Recost.Equal(rec) || !m.Cost.Equal(sales.Add(rec)) {
			t.Fatalf("%s: cost %s recost %s, rows: sales %s re-costs %s", q, m.Cost, m.Recost, sales, rec)
		}
		cost = cost.Add(m.Cost)
		if !m.More {
			return cost, recosts
		}
		after = m.Next
	}
}

// s1COGS is the balance of s1's cost of sales over its items.
func s1COGS(t *testing.T, a string) decimal.Decimal {
	t.Helper()
	var sum decimal.Decimal
	for k, v := range balances(t, a) {
		if strings.HasPrefix(k, "cogs/s1/") && strings.HasSuffix(k, " cur:EUR") {
			sum = sum.Add(v)
		}
	}
	return sum
}

// rigaToday is today's business date of s1 (Europe/Riga).
func rigaToday(t *testing.T) storeline.Date {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	return storeline.DateOf(time.Now(), loc)
}

// milkSale is a receipt (or return) of n milk from main at 1.50, 10% VAT.
func milkSale(ret bool, date storeline.Date, n string) rrSale {
	return rrSale{ret: ret, date: date, lines: []storeline.Line{{Item: "milk", Qty: dec(n), Price: dec("1.50"), VATRate: dec("10")}}}
}

// marginPeriod is a period of the report and what s1's cogs accounts
// moved by in it.
type marginPeriod struct {
	from, to storeline.Date
	want     decimal.Decimal
}

// checkMarginPeriods reads every period whole and a row a page: its
// cost is what moved into cogs in it.
func checkMarginPeriods(t *testing.T, a string, ps []marginPeriod) {
	t.Helper()
	for _, p := range ps {
		for _, limit := range []int{1, 2, 100} {
			if got, _ := r19MarginCost(t, a, p.from, p.to, limit); !got.Equal(p.want) {
				t.Errorf("margin %s..%s (limit %d): cost %s, cogs moved %s in it", p.from, p.to, limit, got, p.want)
			}
		}
	}
}

// TestReview19MarginRecostByInvoice: s1 bought 1 milk at 1.00 and sold 3
// on 2020-01-10 (3.00 at cost: 2 short worth -2.00). An invoice of 2 at
// 3.00 covers the shortfall and re-costs the sales by 4.00 into cogs; its
// cancel takes them back. The margin report's cost over a period is what
// moved into cogs/s1/ in it: 3.00 on the sales' date, the invoice's 4.00
// and its cancel's -4.00 on the day they were posted, each a re-cost row
// dated so and naming the document; 3.00 over all. Before, the report
// gave 3.00 for the sales and nothing else while cogs held 7.00.
func TestReview19MarginRecostByInvoice(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv-a", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})})
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, "2020-01-10", "1"), milkSale(false, "2020-01-10", "2")))
	wantStock(t, a, "s1", "milk", "-2", "-2")
	afterSales := s1COGS(t, a)
	if !afterSales.Equal(dec("3")) {
		t.Fatalf("cogs after the sales %s, want 3", afterSales)
	}
	day0 := rigaToday(t)
	createAndPost(t, a, "inv-b", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "purchase_price": "3.30"})})
	afterInvoice := s1COGS(t, a)
	if !afterInvoice.Equal(dec("7")) {
		t.Fatalf("cogs after the invoice %s, want 7 (3.00 + re-cost 4.00)", afterInvoice)
	}
	checkMarginPeriods(t, a, []marginPeriod{
		{"2000-01-01", "2099-12-31", afterInvoice},
		{"2020-01-01", "2020-12-31", afterSales},
		{"2021-01-01", "2099-12-31", afterInvoice.Sub(afterSales)},
	})
	_, rows := r19MarginCost(t, a, "2021-01-01", "2099-12-31", 100)
	day1 := rigaToday(t)
	if len(rows) != 1 || rows[0].document != "inv-b" || rows[0].kind != "incoming_invoice" || !rows[0].cost.Equal(dec("4")) ||
		(rows[0].date != string(day0) && rows[0].date != string(day1)) {
		t.Fatalf("re-costs %+v, want inv-b's 4.00 dated %s", rows, day0)
	}

	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv-b/cancel", adminKey, nil, nil))
	end := s1COGS(t, a)
	if !end.Equal(afterSales) {
		t.Fatalf("cogs after cancelling the invoice %s, want %s", end, afterSales)
	}
	checkMarginPeriods(t, a, []marginPeriod{
		{"2000-01-01", "2099-12-31", end},
		{"2020-01-01", "2020-12-31", afterSales},
		{"2021-01-01", "2099-12-31", end.Sub(afterSales)},
	})
	if _, rows := r19MarginCost(t, a, "2021-01-01", "2099-12-31", 100); len(rows) != 2 || rows[1].kind != "incoming_invoice.cancel" || !rows[1].cost.Equal(dec("-4")) {
		t.Fatalf("re-costs after the cancel %+v, want inv-b's 4.00 and its cancel's -4.00", rows)
	}
}

// TestReview19MarginRecostByTransferReceipt: s1 bought 1 milk at 3.00
// and sold 3 on 2020-01-10 (9.00: 2 short worth -6.00); a transfer from
// s2 of 2 at 1.00 received at s1 re-costs them by -4.00. The report's
// cost per period is what cogs/s1/ moved by in it (5.00 over all).
func TestReview19MarginRecostByTransferReceipt(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv-s1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30"})})
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, "2020-01-10", "3")))
	afterSales := s1COGS(t, a)
	createAndPost(t, a, "inv-s2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	createAndPost(t, a, "tr", map[string]any{"type": "transfer", "store": "s2", "to_store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2"})})
	createAndPost(t, a, "rc", map[string]any{"type": "transfer_receipt", "store": "s1", "shipment": "tr",
		"lines": lines(map[string]any{"item": "milk", "qty": "2"})})
	end := s1COGS(t, a)
	if !afterSales.Equal(dec("9")) || !end.Equal(dec("5")) {
		t.Fatalf("cogs %s after the sales, %s after the receipt; want 9 and 5", afterSales, end)
	}
	checkMarginPeriods(t, a, []marginPeriod{
		{"2000-01-01", "2099-12-31", end},
		{"2020-01-01", "2020-12-31", afterSales},
		{"2021-01-01", "2099-12-31", end.Sub(afterSales)},
	})
	if _, rows := r19MarginCost(t, a, "2021-01-01", "2099-12-31", 100); len(rows) != 1 || rows[0].document != "rc" || rows[0].kind != "transfer_receipt" {
		t.Fatalf("re-costs %+v, want rc's", rows)
	}
}

// TestReview19MarginReturnWhileShort: s1 bought 1 milk at 3.00 and sold
// 3 on 2020-01-10 (9.00: 2 short worth -6.00); an invoice of 1 at 1.00
// covers 1 of them (re-cost -2.00, the shortfall now 1 worth -3.00); a
// return of 1 dated 2020-01-12 comes back at what the shortfall is
// worth, 3.00. The report's cost per period is what cogs/s1/ moved by in
// it: the sales' 9.00, the return's -3.00, the invoice's -2.00, each on
// its own date.
func TestReview19MarginReturnWhileShort(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv-1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30"})})
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, "2020-01-10", "3")))
	afterSales := s1COGS(t, a)
	createAndPost(t, a, "inv-2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})})
	afterInvoice := s1COGS(t, a)
	wantStock(t, a, "s1", "milk", "-1", "-3")
	pushOK(t, repl, rrPush(t, "s1", 2, milkSale(true, "2020-01-12", "1")))
	end := s1COGS(t, a)
	wantStock(t, a, "s1", "milk", "0", "0")
	if !afterSales.Equal(dec("9")) || !afterInvoice.Equal(dec("7")) || !end.Equal(dec("4")) {
		t.Fatalf("cogs %s after the sales, %s after the invoice, %s after the return; want 9, 7, 4", afterSales, afterInvoice, end)
	}
	checkMarginPeriods(t, a, []marginPeriod{
		{"2000-01-01", "2099-12-31", end},
		{"2020-01-10", "2020-01-11", afterSales},
		{"2020-01-12", "2020-01-12", end.Sub(afterInvoice)},
		{"2020-01-01", "2020-12-31", afterSales.Add(end.Sub(afterInvoice))},
		{"2021-01-01", "2099-12-31", afterInvoice.Sub(afterSales)},
	})
}

// TestReview19MarginCursor: a re-cost cursor that is not one a page gave
// is refused naming after.
func TestReview19MarginCursor(t *testing.T) {
	a, _ := review19World(t)
	for _, after := range []string{"2020-01-01/x", "2019-12-31/d/incoming_invoice/milk", "2020-13-01/d/incoming_invoice/milk", "2020-01-01/d/Bad_Kind/milk"} {
		problemOf(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2020-01-01&to=2020-12-31&after="+after, viewerKey, nil, nil), http.StatusBadRequest, "after")
	}
}

// TestReview19DraftsUnknownStore: the drafts of a store head office does
// not know (not in the master data, never pushed) are a 404 naming store,
// as the margin, excise and stock reports answer, not an empty list; a
// known store without drafts is an empty list.
func TestReview19DraftsUnknownStore(t *testing.T) {
	a, _ := review19World(t)
	problemOf(t, apiDo(t, "GET", a, "/v1/drafts?store=nope", viewerKey, nil, nil), http.StatusNotFound, "store")
	var body struct{ Drafts []any }
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s2", viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Drafts) != 0 {
		t.Fatalf("drafts of s2: %v, want none", body.Drafts)
	}
}

// TestReview19PagesSeekToCursor: the stock (one item, two departments)
// and balances pages seek to their cursor rather than re-reading the
// keys before it; paged by 1 they are the report in one page, and a
// balances cursor outside the prefix is before all its keys or after all
// of them.
func TestReview19PagesSeekToCursor(t *testing.T) {
	a, _ := review19World(t)
	createAndPost(t, a, "inv", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.10", "dept": "main"},
		map[string]any{"item": "milk", "qty": "3", "purchase_price": "1.10", "dept": "deli"},
		map[string]any{"item": "bread", "qty": "1", "purchase_price": "0.50"})})
	for _, r := range []struct {
		path, key string
		rows      int
	}{
		{"/v1/stock?store=s1&item=milk", "stock", 2},
		{"/v1/stock?store=s1", "stock", 3},
		{"/v1/balances?prefix=stock/s1/", "balances", 6},
	} {
		all := pages(t, a, r.path, r.key, 5000)
		if got := pages(t, a, r.path, r.key, 1); len(all) != r.rows || strings.Join(got, "\n") != strings.Join(all, "\n") {
			t.Errorf("%s by 1:\n%s\nwhole (want %d rows):\n%s", r.path, strings.Join(got, "\n"), r.rows, strings.Join(all, "\n"))
		}
	}
	count := func(after string) int {
		var body struct{ Balances []any }
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/balances?prefix=stock/s1/&after="+after, viewerKey, nil, nil)).body, &body); err != nil {
			t.Fatal(err)
		}
		return len(body.Balances)
	}
	if before, beyond := count("stock/a%20cur:EUR"), count("stock/z%20cur:EUR"); before != 6 || beyond != 0 {
		t.Fatalf("balances after a cursor before the prefix: %d rows (want 6), after it: %d (want 0)", before, beyond)
	}
}

// TestReview19MarginRecostTwoLinesOfOneItem: an invoice covering a
// shortfall with two lines of one item (two batches) re-costs twice into
// one cogs account; the report's one row for the item holds both (a row
// per posting, keyed by item, kept the second only: cost 5.00 against
// cogs 7.00).
func TestReview19MarginRecostTwoLinesOfOneItem(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv-a", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})})
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, "2020-01-10", "3")))
	createAndPost(t, a, "inv-b", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30", "batch": "b1"},
			map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30", "batch": "b2"})})
	total := s1COGS(t, a)
	if !total.Equal(dec("7")) {
		t.Fatalf("cogs %s, want 7 (3.00 + two re-costs of 2.00)", total)
	}
	checkMarginPeriods(t, a, []marginPeriod{{"2000-01-01", "2099-12-31", total}})
}

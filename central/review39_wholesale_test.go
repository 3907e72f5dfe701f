package central_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// r39Margin is one page of GET /v1/margin with its wholesale part.
type r39Margin struct {
	Sales []struct {
		Event   string
		Revenue decimal.Decimal
		Cost    *decimal.Decimal
	}
	Recosts []struct {
		Date, Document, Kind, Item string
		Cost                       decimal.Decimal
	}
	Wholesale []struct {
		Date, Document, Kind, Buyer string
		Revenue, Cost, Margin       decimal.Decimal
	}
	Revenue, Cost, Recost decimal.Decimal
	WholesaleRevenue      decimal.Decimal `json:"wholesale_revenue"`
	WholesaleCost         decimal.Decimal `json:"wholesale_cost"`
	Uncosted              int
	More                  bool
	Next                  string
}

// r39Books is what s1's revenue and cost of sales accounts moved by:
// revenue as the shop earned it (the credit negated).
type r39Books struct{ revenue, cost decimal.Decimal }

func (b r39Books) sub(o r39Books) r39Books {
	return r39Books{b.revenue.Sub(o.revenue), b.cost.Sub(o.cost)}
}

func r39S1Books(t *testing.T, a string) r39Books {
	t.Helper()
	var b r39Books
	for k, v := range balances(t, a) {
		switch {
		case k == "revenue/s1 cur:EUR":
			b.revenue = b.revenue.Sub(v)
		case strings.HasPrefix(k, "cogs/s1/") && strings.HasSuffix(k, " cur:EUR"):
			b.cost = b.cost.Add(v)
		}
	}
	return b
}

// r39MarginBooks reads s1's margin report for from..to in pages of limit
// rows, checks each page's totals against its rows and no row comes
// twice, and returns the pages' revenue and cost and the wholesale rows
// ("document kind revenue cost").
func r39MarginBooks(t *testing.T, a string, from, to string, limit int) (r39Books, []string) {
	t.Helper()
	var got r39Books
	var wholesale []string
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
		var m r39Margin
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &m); err != nil {
			t.Fatal(err)
		}
		if m.Uncosted != 0 || len(m.Sales)+len(m.Recosts)+len(m.Wholesale) > limit || m.More != (m.Next != "") {
			t.Fatalf("%s: %+v", q, m)
		}
		var rev, cost, recost, wRev, wCost decimal.Decimal
		for _, s := range m.Sales {
			if s.Cost == nil || seen[s.Event] {
				t.Fatalf("%s: sale %+v (uncosted, or again)", q, s)
			}
			seen[s.Event] = true
			rev, cost = rev.Add(s.Revenue), cost.Add(*s.Cost)
		}
		for _, r := range m.Recosts {
			key := "r/" + r.Document + "/" + r.Kind + "/" + r.Item
			if seen[key] || r.Date < from || r.Date > to {
				t.Fatalf("%s: re-cost %+v (again, or out of the period)", q, r)
			}
			seen[key] = true
			recost = recost.Add(r.Cost)
		}
		for _, w := range m.Wholesale {
			key := "w/" + w.Document + "/" + w.Kind
			if seen[key] || w.Date < from || w.Date > to || w.Buyer != "b1" || !w.Margin.Equal(w.Revenue.Sub(w.Cost)) {
				t.Fatalf("%s: wholesale %+v (again, out of the period, not b1's, or its margin wrong)", q, w)
			}
			seen[key] = true
			wRev, wCost = wRev.Add(w.Revenue), wCost.Add(w.Cost)
			wholesale = append(wholesale, fmt.Sprintf("%s %s %s %s", w.Document, w.Kind, w.Revenue.StringFixed(2), w.Cost.StringFixed(2)))
		}
		if !m.Recost.Equal(recost) || !m.WholesaleRevenue.Equal(wRev) || !m.WholesaleCost.Equal(wCost) ||
			!m.Revenue.Equal(rev.Add(wRev)) || !m.Cost.Equal(cost.Add(recost).Add(wCost)) {
			t.Fatalf("%s: totals revenue %s cost %s recost %s wholesale %s/%s; rows: sales %s/%s re-costs %s wholesale %s/%s",
				q, m.Revenue, m.Cost, m.Recost, m.WholesaleRevenue, m.WholesaleCost, rev, cost, recost, wRev, wCost)
		}
		got.revenue, got.cost = got.revenue.Add(m.Revenue), got.cost.Add(m.Cost)
		if !m.More {
			return got, wholesale
		}
		after = m.Next
	}
}

// r39Period is a period of the report and what s1's books moved by in it.
type r39Period struct {
	from, to string
	want     r39Books
}

func r39CheckPeriods(t *testing.T, a string, ps []r39Period) {
	t.Helper()
	for _, p := range ps {
		for _, limit := range []int{1, 2, 100} {
			if got, _ := r39MarginBooks(t, a, p.from, p.to, limit); !got.revenue.Equal(p.want.revenue) || !got.cost.Equal(p.want.cost) {
				t.Errorf("margin %s..%s (limit %d): revenue %s cost %s; the books moved revenue %s cost %s in it",
					p.from, p.to, limit, got.revenue, got.cost, p.want.revenue, p.want.cost)
			}
		}
	}
}

// TestReview39MarginWholesale: s1 sells at the till (2020-01-10: 3 milk
// and 2 flour it has no cost for, a return of 1 milk), then wholesale to
// b1 over three days: day 1 an invoice of 4 milk at 2.20 and one of a
// bread never bought (no cost: it has no re-cost row), and an incoming
// invoice of flour that re-costs the flour sold short; day 2 b1 returns 1
// milk and the bread invoice is cancelled; day 3 the milk invoice is
// cancelled. Over every period, whole and a row a page, the margin
// report's revenue and cost are what moved into revenue/s1 and cogs/s1/
// in it: till sales, re-costs and wholesale. Before, the report left the
// wholesale revenue out (and listed its cost as re-costs).
func TestReview39MarginWholesale(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, -10)}
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.Now = clock.Now
	})
	n := c.nodes[0]
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a, repl := n.APIAddr(), n.ReplicationAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))

	// Day 0: 10 milk at 1.00 a unit net; the till sales of 2020-01-10.
	createAndPost(t, a, "in-milk", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	flour := rrSale{date: "2020-01-10", lines: []storeline.Line{{Item: "flour", Qty: dec("2"), Price: dec("2.20"), VATRate: dec("10")}}}
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, "2020-01-10", "3"), flour, milkSale(true, "2020-01-10", "1")))
	tills := r39S1Books(t, a)
	if !tills.cost.Equal(dec("2")) {
		t.Fatalf("cogs after the till sales %s, want 2 (2 milk at 1.00, the flour at no cost)", tills.cost)
	}

	clock.days.Store(1)
	createAndPost(t, a, "out-milk", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-1",
		"lines": lines(map[string]any{"item": "milk", "qty": "4", "price": "2.20"})})
	createAndPost(t, a, "out-bread", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "number": "W-2",
		"lines": lines(map[string]any{"item": "bread", "qty": "1", "price": "3.30"})})
	createAndPost(t, a, "in-flour", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "2", "purchase_price": "2.20"})})
	day1 := r39S1Books(t, a)
	if want := (r39Books{dec("11"), dec("8")}); !day1.sub(tills).revenue.Equal(want.revenue) || !day1.sub(tills).cost.Equal(want.cost) {
		t.Fatalf("day 1 moved %+v, want revenue 11.00 (8.00 + 3.00) and cost 8.00 (milk 4.00, flour re-cost 4.00)", day1.sub(tills))
	}

	clock.days.Store(2)
	createAndPost(t, a, "ret-milk", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/out-bread/cancel", adminKey, nil, nil))
	day2 := r39S1Books(t, a)

	clock.days.Store(3)
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/out-milk/cancel", adminKey, nil, nil))
	day3 := r39S1Books(t, a)

	d1, d2, d3 := clock.day(1), clock.day(2), clock.day(3)
	r39CheckPeriods(t, a, []r39Period{
		{"2000-01-01", "2099-12-31", day3},
		{"2020-01-01", "2020-12-31", tills},
		{d1, d1, day1.sub(tills)},
		{d2, d2, day2.sub(day1)},
		{d3, d3, day3.sub(day2)},
		{d1, d3, day3.sub(tills)},
		{d2, "2099-12-31", day3.sub(day1)},
	})
	_, rows := r39MarginBooks(t, a, d1, d3, 100)
	want := []string{
		"out-bread outgoing_invoice 3.00 0.00", "out-milk outgoing_invoice 8.00 4.00",
		"out-bread outgoing_invoice.cancel -3.00 0.00", "ret-milk buyer_return -2.00 -1.00",
		"out-milk outgoing_invoice.cancel -8.00 -4.00",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("wholesale rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

// TestReview39MarginCursorRefused: a wholesale cursor that is not one a
// page gives is refused naming after.
func TestReview39MarginCursorRefused(t *testing.T) {
	a, _ := review19World(t)
	for _, after := range []string{"w/b1", "w/b1/EUR/2020-01-10/x", "w/b1/EURO/2020-01-10/x/1", "w/b1/EUR/2019-12-31/x/1", "w/b1/EUR/2020-01-10/x/-1"} {
		problemOf(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2020-01-01&to=2020-12-31&after="+after, viewerKey, nil, nil), 400, "after")
	}
	for _, after := range []string{"w/", "w/b1/EUR", "w/b1/EUR/2020-01-10/x/1"} {
		mustOK(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2020-01-01&to=2020-12-31&after="+after, viewerKey, nil, nil))
	}
}

// TestReview39MarginWholesaleWithoutReceivable: an outgoing invoice of
// 0.004 kg of flour at 1.00 (flour bought at 1000.00 a kg net) totals
// 0.00, so it moves no receivable and has no statement row; what it moved
// into cogs (4.00) stays a re-cost row, so the report's cost is still
// what moved into cogs/s1/.
func TestReview39MarginWholesaleWithoutReceivable(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	createAndPost(t, a, "in-flour", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "1", "purchase_price": "1100"})})
	d := createAndPost(t, a, "out-crumb", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "flour", "qty": "0.004", "price": "1"})})
	if got := d.posting("receivable/b1", "cur:EUR"); !got.IsZero() {
		t.Fatalf("out-crumb moved receivable/b1 by %s, want nothing", got)
	}
	books := r39S1Books(t, a)
	if !books.cost.Equal(dec("4")) || !books.revenue.IsZero() {
		t.Fatalf("s1's books moved %+v, want cost 4.00 and no revenue", books)
	}
	for _, limit := range []int{1, 100} {
		if got, rows := r39MarginBooks(t, a, "2000-01-01", "2099-12-31", limit); !got.cost.Equal(books.cost) || !got.revenue.IsZero() || len(rows) != 0 {
			t.Errorf("margin (limit %d): revenue %s cost %s wholesale %q; the books moved cost %s", limit, got.revenue, got.cost, rows, books.cost)
		}
	}
}

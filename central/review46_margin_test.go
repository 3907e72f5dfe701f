package central_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// r46Page is one page of GET /v1/margin: its rows as "part key revenue
// cost" strings, and its totals.
type r46Page struct {
	rows          []string
	revenue, cost decimal.Decimal
	more          bool
	next          string
}

func r46Get(t *testing.T, a, store, from, to string, limit int, after string) r46Page {
	t.Helper()
	q := fmt.Sprintf("/v1/margin?store=%s&from=%s&to=%s&limit=%d", store, from, to, limit)
	if after != "" {
		q += "&after=" + url.QueryEscape(after)
	}
	var m r39Margin
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Sales)+len(m.Recosts)+len(m.Wholesale) > limit || m.More != (m.Next != "") || m.Uncosted != 0 {
		t.Fatalf("%s: %+v", q, m)
	}
	p := r46Page{revenue: m.Revenue, cost: m.Cost, more: m.More, next: m.Next}
	var rev, cost, recost, wRev, wCost decimal.Decimal
	for _, s := range m.Sales {
		p.rows = append(p.rows, fmt.Sprintf("sale %s %s %s", s.Event, s.Revenue.StringFixed(2), s.Cost.StringFixed(2)))
		rev, cost = rev.Add(s.Revenue), cost.Add(*s.Cost)
	}
	for _, r := range m.Recosts {
		if r.Date < from || r.Date > to {
			t.Fatalf("%s: re-cost %+v out of the period", q, r)
		}
		p.rows = append(p.rows, fmt.Sprintf("recost %s/%s/%s 0.00 %s", r.Document, r.Kind, r.Item, r.Cost.StringFixed(2)))
		recost = recost.Add(r.Cost)
	}
	for _, w := range m.Wholesale {
		if w.Date < from || w.Date > to || !w.Margin.Equal(w.Revenue.Sub(w.Cost)) {
			t.Fatalf("%s: wholesale %+v out of the period or its margin wrong", q, w)
		}
		p.rows = append(p.rows, fmt.Sprintf("wholesale %s/%s/%s/%s %s %s", w.Buyer, w.Document, w.Kind, w.Date, w.Revenue.StringFixed(2), w.Cost.StringFixed(2)))
		wRev, wCost = wRev.Add(w.Revenue), wCost.Add(w.Cost)
	}
	if !m.Recost.Equal(recost) || !m.WholesaleRevenue.Equal(wRev) || !m.WholesaleCost.Equal(wCost) ||
		!m.Revenue.Equal(rev.Add(wRev)) || !m.Cost.Equal(cost.Add(recost).Add(wCost)) {
		t.Fatalf("%s: totals revenue %s cost %s recost %s wholesale %s/%s; rows: sales %s/%s re-costs %s wholesale %s/%s",
			q, m.Revenue, m.Cost, m.Recost, m.WholesaleRevenue, m.WholesaleCost, rev, cost, recost, wRev, wCost)
	}
	return p
}

// r46Report reads a whole period in pages of limit and returns every
// row in order and the summed revenue and cost; no row may come twice.
func r46Report(t *testing.T, a, store, from, to string, limit int) ([]string, r39Books) {
	t.Helper()
	var rows []string
	var sum r39Books
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 2000 {
			t.Fatalf("margin %s %s..%s limit %d: no end (after %q)", store, from, to, limit, after)
		}
		p := r46Get(t, a, store, from, to, limit, after)
		for _, r := range p.rows {
			if seen[r] {
				t.Fatalf("margin %s %s..%s limit %d after %q: row %q again", store, from, to, limit, after, r)
			}
			seen[r] = true
		}
		rows = append(rows, p.rows...)
		sum.revenue, sum.cost = sum.revenue.Add(p.revenue), sum.cost.Add(p.cost)
		if !p.more {
			return rows, sum
		}
		if p.next == after {
			t.Fatalf("margin %s %s..%s limit %d: next %q is where the page started", store, from, to, limit, after)
		}
		after = p.next
	}
}

// r46Books is what store's revenue and cost of sales accounts moved by
// in currency cur.
func r46Books(t *testing.T, a, store, cur string) r39Books {
	t.Helper()
	var b r39Books
	for k, v := range balances(t, a) {
		switch {
		case k == "revenue/"+store+" cur:"+cur:
			b.revenue = b.revenue.Sub(v)
		case strings.HasPrefix(k, "cogs/"+store+"/") && strings.HasSuffix(k, " cur:"+cur):
			b.cost = b.cost.Add(v)
		}
	}
	return b
}

// r46World is a chain where s1 (Riga, EUR), s2 (Riga, EUR) and s3 (UTC,
// USD) sell wholesale to buyers b0, b1 (in EUR and USD) and b2 over
// three days, with till sales and a re-cost at s1, documents of several
// items at mixed VAT rates, partial returns, a payment and cancels on
// later days; snaps are s1's and s3's books at the end of each day.
type r46World struct {
	a, repl    string
	clock      *testClock
	s1, s3     [4]r39Books
	s1Docs     map[string]bool
	d1, d2, d3 string
}

func r46NewWorld(t *testing.T, hour, minute int) *r46World {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), hour, minute, 0, 0, time.UTC).AddDate(0, 0, -10)}
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	rigaDay := func(d int) string { return clock.base.AddDate(0, 0, d).In(riga).Format(time.DateOnly) }
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
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/usd", adminKey, map[string]any{"name": "USD", "currency": "USD"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s3", adminKey, map[string]any{
		"name": "Shop 3", "time_zone": "UTC", "currency": "USD",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"usd"},
	}, nil))
	for _, b := range []string{"b0", "b1", "b2"} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/"+b, adminKey, map[string]any{"name": "Buyer " + b}, nil))
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/k1", adminKey, map[string]any{"name": "First Bank"}, nil))
	w := &r46World{a: a, repl: repl, clock: clock, s1Docs: map[string]bool{}, d1: rigaDay(1), d2: rigaDay(2), d3: rigaDay(3)}
	doc := func(id, typ, store, buyer string, ls ...map[string]any) {
		d := map[string]any{"type": typ, "store": store, "lines": lines(ls...)}
		if buyer != "" {
			d["buyer"] = buyer
		}
		if typ == "incoming_invoice" {
			d["supplier"] = "p1"
		}
		createAndPost(t, a, id, d)
		if store == "s1" && buyer != "" {
			w.s1Docs[id] = true
		}
	}
	cancel := func(id string) {
		mustOK(t, apiDo(t, "POST", a, "/v1/documents/"+id+"/cancel", adminKey, nil, nil))
	}
	line := func(item, qty, price string, more ...string) map[string]any {
		l := map[string]any{"item": item, "qty": qty}
		if strings.HasPrefix(price, "p") {
			l["purchase_price"] = price[1:]
		} else {
			l["price"] = price
		}
		if len(more) > 0 {
			l["vat_rate"] = more[0]
		}
		return l
	}
	snap := func(d int) {
		w.s1[d], w.s3[d] = r46Books(t, a, "s1", "EUR"), r46Books(t, a, "s3", "USD")
	}

	// Day 0: stock in.
	doc("in-s1", "incoming_invoice", "s1", "", line("milk", "20", "p1.10"), line("flour", "10", "p2.20"))
	doc("in-s2", "incoming_invoice", "s2", "", line("milk", "10", "p1.10"))
	doc("in-s3", "incoming_invoice", "s3", "", line("milk", "10", "p1.10"))
	snap(0)

	// Day 1: the tills of s1 sell milk and bread it has none of; an
	// invoice of bread re-costs it; wholesale of every shop.
	clock.days.Store(1)
	bread := rrSale{date: storeline.Date(w.d1), lines: []storeline.Line{{Item: "bread", Qty: dec("2"), Price: dec("3.00"), VATRate: dec("10")}}}
	pushOK(t, repl, rrPush(t, "s1", 1, milkSale(false, storeline.Date(w.d1), "2"), bread))
	doc("W1", "outgoing_invoice", "s1", "b1", line("milk", "3", "2.20"), line("flour", "2", "5.00", "21"), line("milk", "1", "2.35", "0"))
	doc("X0", "outgoing_invoice", "s2", "b0", line("milk", "1", "2.00"))
	doc("X1", "outgoing_invoice", "s2", "b1", line("milk", "2", "2.00"))
	doc("U1", "outgoing_invoice", "s3", "b1", line("milk", "1", "3.00"))
	doc("W2", "outgoing_invoice", "s1", "b2", line("flour", "1", "5.00"))
	doc("W3", "outgoing_invoice", "s1", "b1", line("bread", "1", "3.30"))
	doc("in-bread", "incoming_invoice", "s1", "", line("bread", "5", "p1.65"))
	if r := apiDo(t, "POST", a, "/v1/buyer_payments", adminKey, map[string]any{"id": "bp1", "buyer": "b1", "bank": "k1",
		"currency": "EUR", "amount": "5", "paid_on": clock.day(1)}, nil); r.status != 201 {
		t.Fatalf("buyer payment: %d %s", r.status, r.body)
	}
	snap(1)

	// Day 2: partial returns, cancels of day 1's invoices.
	clock.days.Store(2)
	doc("R1", "buyer_return", "s1", "b1", line("milk", "1", "2.20"), line("flour", "1", "5.00", "21"))
	doc("R2", "buyer_return", "s2", "b1", line("milk", "1", "2.00"))
	cancel("X1")
	cancel("W2")
	doc("U2", "buyer_return", "s3", "b1", line("milk", "1", "3.00"))
	snap(2)

	// Day 3: the return at s1 cancelled, another invoice.
	clock.days.Store(3)
	cancel("R1")
	doc("W4", "outgoing_invoice", "s1", "b0", line("milk", "2", "2.50"))
	cancel("U2")
	snap(3)
	return w
}

func (w *r46World) periods() []r39Period {
	return []r39Period{
		{"2000-01-01", "2099-12-31", w.s1[3]},
		{w.d1, w.d1, w.s1[1].sub(w.s1[0])},
		{w.d2, w.d2, w.s1[2].sub(w.s1[1])},
		{w.d3, w.d3, w.s1[3].sub(w.s1[2])},
		{w.d1, w.d2, w.s1[2].sub(w.s1[0])},
		{w.d2, w.d3, w.s1[3].sub(w.s1[1])},
	}
}

// TestReview46MarginWholesalePaging: for every period, the rows of s1's
// margin report read in pages of 1, 2, 3 and 100 rows, and under scan
// budgets of 2 to 7 keys a page, are the same rows in the same order as
// the report in one page; no page repeats a row; each page's totals
// are its rows'; the pages add up to what moved into revenue/s1 and
// cogs/s1/; no wholesale row is another shop's; and s3's (in USD) add up
// to its books too.
func TestReview46MarginWholesalePaging(t *testing.T) {
	r46CheckWorld(t, r46NewWorld(t, 10, 0))
}

// TestReview46MarginWholesaleNearMidnight: the same chain made at 22:30
// UTC, the next day in Riga (s1's zone) but not in s3's (UTC): s1's
// periods are its own days.
func TestReview46MarginWholesaleNearMidnight(t *testing.T) {
	r46CheckWorld(t, r46NewWorld(t, 22, 30))
}

func r46CheckWorld(t *testing.T, w *r46World) {
	t.Helper()
	for _, p := range w.periods() {
		whole, sum := r46Report(t, w.a, "s1", p.from, p.to, 100)
		if !sum.revenue.Equal(p.want.revenue) || !sum.cost.Equal(p.want.cost) {
			t.Errorf("margin %s..%s: revenue %s cost %s; the books moved revenue %s cost %s\n%s",
				p.from, p.to, sum.revenue, sum.cost, p.want.revenue, p.want.cost, strings.Join(whole, "\n"))
		}
		for _, r := range whole {
			if rest, ok := strings.CutPrefix(r, "wholesale "); ok {
				parts := strings.Split(rest, "/")
				if !w.s1Docs[parts[1]] {
					t.Errorf("margin s1 %s..%s lists %q, not s1's", p.from, p.to, r)
				}
			}
		}
		for _, budget := range []int{0, 2, 3, 4, 7} {
			if budget > 0 {
				central.SetMarginScanBound(t, budget)
			}
			for _, limit := range []int{1, 2, 3, 100} {
				got, gsum := r46Report(t, w.a, "s1", p.from, p.to, limit)
				if strings.Join(got, "\n") != strings.Join(whole, "\n") || !gsum.revenue.Equal(sum.revenue) || !gsum.cost.Equal(sum.cost) {
					t.Errorf("margin %s..%s limit %d budget %d: revenue %s cost %s rows\n%s\nwant revenue %s cost %s rows\n%s",
						p.from, p.to, limit, budget, gsum.revenue, gsum.cost, strings.Join(got, "\n"), sum.revenue, sum.cost, strings.Join(whole, "\n"))
				}
			}
		}
		central.SetMarginScanBound(t, 10*central.MaxFeedLimit)
	}
	if _, sum := r46Report(t, w.a, "s3", "2000-01-01", "2099-12-31", 1); !sum.revenue.Equal(w.s3[3].revenue) || !sum.cost.Equal(w.s3[3].cost) {
		t.Errorf("margin s3: revenue %s cost %s; the books moved %+v", sum.revenue, sum.cost, w.s3[3])
	}
}

// TestReview46MarginWholesaleManyBuyers: forty wholesale documents of
// three shops to six buyers over four days (a fixed pseudo-random
// chain: invoices of one to three items, partial returns, cancels on
// the day or later, zero-receivable crumbs) after two till sales, read over every period of
// those days at page sizes 1, 2, 5 and 100 and scan budgets 2, 3 and 11:
// always the rows of one whole page, and the books' revenue and cost.
func TestReview46MarginWholesaleManyBuyers(t *testing.T) {
	w := r46NewWorld(t, 10, 0)
	a, clock := w.a, w.clock
	buyers := []string{"b0", "b1", "b2", "b3", "b4", "b5"}
	for _, b := range buyers[3:] {
		mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/"+b, adminKey, map[string]any{"name": "Buyer " + b}, nil))
	}
	for _, s := range []string{"s1", "s2"} {
		createAndPost(t, a, "more-"+s, map[string]any{"type": "incoming_invoice", "store": s, "supplier": "p1",
			"lines": lines(map[string]any{"item": "milk", "qty": "500", "purchase_price": "1.21"},
				map[string]any{"item": "flour", "qty": "500", "purchase_price": "2.53"})})
	}
	var books [5]r39Books
	books[0] = r46Books(t, a, "s1", "EUR")
	// Till sales of milk in stock (no re-cost) on the first day: the
	// sales end, the re-costs are none, the wholesale follows.
	clock.days.Store(4)
	pushOK(t, w.repl, rrPush(t, "s1", 3, milkSale(false, storeline.Date(clock.day(4)), "1"), milkSale(false, storeline.Date(clock.day(4)), "2")))
	seed := uint64(46)
	rnd := func(n int) int {
		seed = seed*6364136223846793005 + 1442695040888963407
		return int((seed >> 33) % uint64(n))
	}
	items := []string{"milk", "flour", "bread"}
	var posted []string
	for day := 4; day <= 7; day++ {
		clock.days.Store(int64(day))
		for i := 0; i < 10; i++ {
			id := fmt.Sprintf("m%d-%d", day, i)
			store := []string{"s1", "s1", "s2"}[rnd(3)]
			typ := "outgoing_invoice"
			if rnd(4) == 0 {
				typ = "buyer_return"
			}
			var ls []map[string]any
			for j, n := 0, 1+rnd(3); j < n; j++ {
				l := map[string]any{"item": items[(j+rnd(3))%3], "qty": fmt.Sprint(1 + rnd(4)), "price": fmt.Sprintf("%d.%02d", 1+rnd(5), rnd(100))}
				if rnd(3) == 0 {
					l["vat_rate"] = []string{"0", "21"}[rnd(2)]
				}
				if rnd(10) == 0 {
					l["item"], l["qty"], l["price"] = "flour", "0.004", "1"
				}
				ls = append(ls, l)
			}
			createAndPost(t, a, id, map[string]any{"type": typ, "store": store, "buyer": buyers[rnd(len(buyers))], "lines": lines(ls...)})
			posted = append(posted, id)
			if rnd(5) == 0 {
				k := rnd(len(posted))
				if posted[k] != "" {
					mustOK(t, apiDo(t, "POST", a, "/v1/documents/"+posted[k]+"/cancel", adminKey, nil, nil))
					posted[k] = ""
				}
			}
		}
		books[day-3] = r46Books(t, a, "s1", "EUR")
	}
	day := func(d int) string { return clock.day(d) }
	var periods []r39Period
	for i := 4; i <= 7; i++ {
		for j := i; j <= 7; j++ {
			periods = append(periods, r39Period{day(i), day(j), books[j-3].sub(books[i-4])})
		}
	}
	for _, p := range periods {
		whole, sum := r46Report(t, a, "s1", p.from, p.to, 100)
		if !sum.revenue.Equal(p.want.revenue) || !sum.cost.Equal(p.want.cost) {
			t.Errorf("margin %s..%s: revenue %s cost %s; the books moved revenue %s cost %s", p.from, p.to, sum.revenue, sum.cost, p.want.revenue, p.want.cost)
		}
		for _, budget := range []int{0, 2, 3, 11} {
			if budget > 0 {
				central.SetMarginScanBound(t, budget)
			}
			for _, limit := range []int{1, 2, 5, 100} {
				got, gsum := r46Report(t, a, "s1", p.from, p.to, limit)
				if strings.Join(got, "\n") != strings.Join(whole, "\n") || !gsum.revenue.Equal(sum.revenue) || !gsum.cost.Equal(sum.cost) {
					t.Errorf("margin %s..%s limit %d budget %d: rows\n%s\nwant\n%s", p.from, p.to, limit, budget, strings.Join(got, "\n"), strings.Join(whole, "\n"))
				}
			}
		}
		central.SetMarginScanBound(t, 10*central.MaxFeedLimit)
	}
}

// TestReview46MarginRemovedStoreWholesale: a shop that only ever sold
// wholesale, of bread it never bought (no cost, so no re-cost row), and
// was then removed from the master data is still known to the margin
// report, as one that pushed or re-costed is: its invoice moved 3.00
// into revenue/s9, which the report lists. Before, it answered 404.
func TestReview46MarginRemovedStoreWholesale(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "leader at the FSM level of receivables", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l >= central.FSMLevel
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s9", adminKey, map[string]any{
		"name": "Shop 9", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail"},
	}, nil))
	createAndPost(t, a, "o9", map[string]any{"type": "outgoing_invoice", "store": "s9", "buyer": "b1",
		"lines": lines(map[string]any{"item": "bread", "qty": "1", "price": "3.30"})})
	mustOK(t, apiDo(t, "DELETE", a, "/v1/stores/s9", adminKey, nil, nil))
	books := r46Books(t, a, "s9", "EUR")
	rows, sum := r46Report(t, a, "s9", "2000-01-01", "2099-12-31", 100)
	if len(rows) != 1 || !sum.revenue.Equal(books.revenue) || !sum.cost.Equal(books.cost) || !books.revenue.Equal(dec("3")) {
		t.Errorf("margin of removed s9: rows %q revenue %s cost %s; the books moved %+v", rows, sum.revenue, sum.cost, books)
	}
	// A store head office never knew is still not found.
	problemOf(t, apiDo(t, "GET", a, "/v1/margin?store=s8&from=2000-01-01&to=2099-12-31", viewerKey, nil, nil), 404, "store")
}

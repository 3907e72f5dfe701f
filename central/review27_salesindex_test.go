package central_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// r27Sales are n sales of s1 a day over days days from 2024-03-01: every
// fifth a return, sellers and items alternating.
func r27Sales(days, n int, start time.Time) []t25Sale {
	var out []t25Sale
	for d := range days {
		date := storeline.Date(start.AddDate(0, 0, d).Format(time.DateOnly))
		for i := range n {
			item, seller := "milk", "alice"
			if i%2 == 1 {
				item, seller = "cheese", "bob"
			}
			out = append(out, t25Sale{ret: i%5 == 4, date: date, seller: seller, terminal: "till-1",
				lines: []storeline.Line{t25Line(item, "main", fmt.Sprint(1+i%3), "1.50")}})
		}
	}
	return out
}

// r27Push is a push of s1's sales in epoch from seq on (t25Push's, in
// any epoch); it computes the sales' lines as the shop stores them.
func r27Push(t *testing.T, epoch, seq uint64, sales []t25Sale) []byte {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: "s1", Epoch: epoch}
	for i := range sales {
		s := &sales[i]
		ls := append([]storeline.Line(nil), s.lines...)
		tot := computeTotal(ls)
		var body storeline.Body
		if s.ret {
			r := &storeline.Return{Terminal: storeline.TerminalID(s.terminal), Shift: "sh1", Seller: storeline.SellerID(s.seller), Manager: "alice",
				Currency: "EUR", Reason: "x", Lines: ls, Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: tot}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body, s.lines = r, r.Lines
		} else {
			r := &storeline.Receipt{Terminal: storeline.TerminalID(s.terminal), Shift: "sh1", Seller: storeline.SellerID(s.seller),
				Currency: "EUR", Lines: ls, Payments: []storeline.Payment{{Method: storeline.Cash, Amount: tot}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body, s.lines = r, r.Lines
		}
		ev := storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: epoch, Seq: seq + uint64(i), SchemaVersion: storeline.SchemaVersion,
			Kind: body.EventKind(), Body: body, OccurredAt: time.Now().UTC(), BusinessDate: s.date}
		ps, err := storeline.DerivePostings("s1", body)
		if err != nil {
			t.Fatal(err)
		}
		ev.Postings = ps
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, w)
	}
	b, err := replication.Encode(&req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func r27Key(s t25Sale, l storeline.Line, dim string) string {
	switch dim {
	case "date":
		return string(s.date)
	case "seller":
		return s.seller
	case "item":
		return string(l.Item)
	}
	panic("dimension " + dim)
}

// r27Want is the report of sales dated from..to by by, as text.
func r27Want(sales []t25Sale, from, to, by string) string {
	var in []t25Sale
	for _, s := range sales {
		if string(s.date) >= from && string(s.date) <= to {
			in = append(in, s)
		}
	}
	dims := []string{}
	if by != "" {
		dims = strings.Split(by, ",")
	}
	return t25Model(in, dims, r27Key).String()
}

// r27World is a one-node cluster that knows OpUnindexSales, with s1
// (items milk and cheese) taking pushes.
func r27World(t *testing.T) (n *central.Node, a, repl string) {
	t.Helper()
	cfg := testConfig(t, "c1", t.TempDir())
	cfg.ReplicationTokens = replTokens()
	n, err := central.Open(cfg, central.UnindexSalesOp())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	waitFor(t, "a leader", 20*time.Second, n.IsLeader)
	a = n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}},
		"price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/cheese", adminKey, map[string]any{"id": "cheese", "sku": "CHEESE", "name": "Cheese",
		"group": "food", "dept": "main", "unit": "pcs", "vat_rate": "10"}, nil))
	return n, a, n.ReplicationAddr()
}

// r27Unindex drops the sales index, as a build before it left the state.
func r27Unindex(t *testing.T, n *central.Node) {
	t.Helper()
	retryUnavailable(t, func() error {
		res, err := n.SubmitPastLevel(central.OpUnindexSales, nil)
		if err == nil {
			err = res.Err()
		}
		return err
	})
	if ix, err := n.SalesIndex(); err != nil || len(ix) != 0 {
		t.Fatalf("sales index after dropping it: %d keys, %v", len(ix), err)
	}
}

// r27Check reads s1's turnover of from..to by by in pages of limit rows
// and compares it with the model; it returns the pages it took.
func r27Check(t *testing.T, a string, sales []t25Sale, from, to, by string, limit int) int {
	t.Helper()
	got, pages := t25Read(t, a, from, to, by, limit)
	if want := r27Want(sales, from, to, by); got.String() != want {
		t.Fatalf("%s..%s by %q, limit %d (%d pages):\n%s\nwant\n%s", from, to, by, limit, pages, got, want)
	}
	return pages
}

// TestReview27TurnoverReadsTheDatesIndex: a one-day turnover over a long
// history reads only that day's sales (one page of a budget the walk of
// the whole history needs many of); pages cut by the budget or by limit
// sum to the report read whole; state written before the index is
// reported the same by the walk, and a history partly before the index
// (its low mark) and partly after sums right, also from a cursor of the
// walk's old form.
func TestReview27TurnoverReadsTheDatesIndex(t *testing.T) {
	n, a, repl := r27World(t)
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	sales := r27Sales(30, 10, start) // 300 events, 60 of them returns
	pushOK(t, repl, r27Push(t, 1, 1, sales))

	whole := r27Check(t, a, sales, "2024-03-01", "2024-12-31", "date,seller,item", 500)
	if whole != 1 {
		t.Fatalf("the whole period unbounded in %d pages", whole)
	}
	central.SetTurnoverScanBound(t, 20)
	if pages := r27Check(t, a, sales, "2024-03-15", "2024-03-15", "seller,item", 500); pages != 1 {
		t.Errorf("one day of 10 sales in %d pages of 20 keys, want 1", pages)
	} else {
		t.Logf("one day of 300 events, indexed: %d page of 20 keys", pages)
	}
	// Cut by the budget (7 keys), by limit (1 row), or both.
	for _, c := range []struct {
		bound, limit int
	}{{7, 500}, {500, 1}, {7, 1}, {1, 2}} {
		central.SetTurnoverScanBound(t, c.bound)
		r27Check(t, a, sales, "2024-03-10", "2024-03-12", "date,seller,item", c.limit)
		r27Check(t, a, sales, "2024-03-10", "2024-03-12", "", c.limit)
	}

	// Before the index: the walk of every event, the same figures.
	r27Unindex(t, n)
	central.SetTurnoverScanBound(t, 20)
	if pages := r27Check(t, a, sales, "2024-03-15", "2024-03-15", "seller,item", 500); pages < 300/20 {
		t.Errorf("one day unindexed in %d pages of 20 events, want the walk's %d at least", pages, 300/20)
	} else {
		t.Logf("one day of 300 events, unindexed: %d pages of 20 events", pages)
	}
	central.SetTurnoverScanBound(t, 7)
	r27Check(t, a, sales, "2024-03-10", "2024-03-12", "date,seller,item", 2)

	// After the index again: the old events walked, the new read from it.
	later := r27Sales(12, 5, start.AddDate(0, 0, 25)) // 03-26..04-06: dates of both parts
	pushOK(t, repl, r27Push(t, 1, 301, later))
	ix, err := n.SalesIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(ix) != len(later)+1 {
		t.Fatalf("the index after %d sales: %d keys, want them and a low mark", len(later), len(ix))
	}
	all := append(append([]t25Sale(nil), sales...), later...)
	for _, c := range []struct {
		bound, limit int
	}{{500, 500}, {9, 500}, {9, 3}} {
		central.SetTurnoverScanBound(t, c.bound)
		r27Check(t, a, all, "2024-03-20", "2024-04-30", "date,seller,item", c.limit)
		r27Check(t, a, all, "2024-03-28", "2024-03-28", "seller", c.limit)
	}

	// An old-style cursor (the walk's epoch/seq) goes on through both.
	central.SetTurnoverScanBound(t, 500)
	got, _ := t25Read2Page(t, a, "2024-03-01", "2024-12-31", "seller,item", "1/150")
	if want := r27Want(all[150:], "2024-03-01", "2024-12-31", "seller,item"); got != want {
		t.Errorf("after 1/150:\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"d/2024-03-01", "d/2024-13-01/1/1", "d/2024-03-01/1/x", "d//1/1"} {
		r := apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2024-03-01&to=2024-03-31&after="+bad, viewerKey, nil, nil)
		if r.status != 400 || !strings.Contains(string(r.body), `"after"`) {
			t.Errorf("after=%s: %d %s, want 400 naming after", bad, r.status, r.body)
		}
	}
}

// t25Read2Page is t25Read from the cursor after on, as text.
func t25Read2Page(t *testing.T, a, from, to, by, after string) (string, int) {
	t.Helper()
	sum := t25Sum{}
	dims := strings.Split(by, ",")
	pages := 0
	for ; ; pages++ {
		if pages > 100 {
			t.Fatal("turnover: no end")
		}
		var p t25Page
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, fmt.Sprintf("/v1/turnover?store=s1&from=%s&to=%s&by=%s&after=%s", from, to, by, after),
			viewerKey, nil, nil)).body, &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			sum.add(dims, r)
		}
		if !p.More {
			return sum.String(), pages + 1
		}
		after = p.Next
	}
}

// TestReview27SalesIndexPerEpoch: a shop restored from a backup pushes a
// new epoch, and the old epoch's tail after it. The low marks are per
// epoch, so the old epoch's events of before the index are walked and
// its tail, like the new epoch, is read from the index: each once.
func TestReview27SalesIndexPerEpoch(t *testing.T) {
	n, a, repl := r27World(t)
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	old := r27Sales(3, 4, start)
	pushOK(t, repl, r27Push(t, 1, 1, old))
	r27Unindex(t, n)
	restored := r27Sales(3, 3, start.AddDate(0, 0, 1))
	pushOK(t, repl, r27Push(t, 2, 1, restored))
	tail := r27Sales(2, 2, start.AddDate(0, 0, 2))
	pushOK(t, repl, r27Push(t, 1, uint64(len(old)+1), tail))
	all := append(append(append([]t25Sale(nil), old...), restored...), tail...)
	for _, bound := range []int{500, 3, 1} {
		central.SetTurnoverScanBound(t, bound)
		r27Check(t, a, all, "2024-03-01", "2024-03-31", "date,seller,item", 500)
		r27Check(t, a, all, "2024-03-03", "2024-03-03", "", 2)
	}
}

// TestReview27SalesIndexOnEveryReplica: every replica of a three-node
// cluster writes the same index keys and low mark, one key per receipt
// and per return.
func TestReview27SalesIndexOnEveryReplica(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 3, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	l := c.waitLeader()
	a := l.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}},
		"price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/cheese", adminKey, map[string]any{"id": "cheese", "sku": "CHEESE", "name": "Cheese",
		"group": "food", "dept": "main", "unit": "pcs", "vat_rate": "10"}, nil))
	sales := r27Sales(4, 5, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	pushOK(t, l.ReplicationAddr(), r27Push(t, 1, 1, sales))
	want, err := l.SalesIndex()
	if err != nil {
		t.Fatal(err)
	}
	returns := 0
	for k := range want {
		if strings.HasPrefix(k, central.SalesIndexKey) {
			if ev := sales[int(k[len(k)-1])-1]; ev.ret {
				returns++
			}
		}
	}
	if len(want) != len(sales)+1 || returns != len(sales)/5 {
		t.Fatalf("leader's index: %d keys (%d of returns), want %d sales (%d returns) and a low mark", len(want), returns, len(sales), len(sales)/5)
	}
	for _, n := range c.nodes {
		// A follower applies the entry a moment after the leader.
		waitFor(t, "the same sales index on "+n.APIAddr(), 10*time.Second, func() bool {
			got, err := n.SalesIndex()
			return err == nil && maps.Equal(got, want)
		})
		r27Check(t, n.APIAddr(), sales, "2024-03-02", "2024-03-03", "date,seller", 500)
	}
}

// r27Margin reads s1's margin report for from..to in pages of limit
// sales, and returns its sales (event, date, revenue, cost) sorted by
// event, its totals, and the pages it took.
func r27Margin(t *testing.T, a, from, to string, limit int) (sales []string, totals string, pages int) {
	t.Helper()
	var revenue, cost, recost decimal.Decimal
	uncosted := 0
	after := ""
	for pages = 1; ; pages++ {
		if pages > 200 {
			t.Fatal("margin: no end")
		}
		var p struct {
			Sales                 []map[string]any
			Revenue, Cost, Recost decimal.Decimal
			Uncosted              int
			More                  bool
			Next                  string
		}
		q := url.Values{"store": {"s1"}, "from": {from}, "to": {to}, "limit": {fmt.Sprint(limit)}, "after": {after}}
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/margin?"+q.Encode(), viewerKey, nil, nil)).body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Sales) > limit {
			t.Fatalf("margin page of %d sales, limit %d", len(p.Sales), limit)
		}
		for _, s := range p.Sales {
			sales = append(sales, fmt.Sprint(s["event"], " ", s["date"], " ", s["revenue"], " ", s["cost"]))
		}
		revenue, cost, recost, uncosted = revenue.Add(p.Revenue), cost.Add(p.Cost), recost.Add(p.Recost), uncosted+p.Uncosted
		if !p.More {
			break
		}
		after = p.Next
	}
	sort.Strings(sales)
	return sales, fmt.Sprintf("revenue %s cost %s recost %s uncosted %d", revenue, cost, recost, uncosted), pages
}

// TestReview27MarginReadsTheDatesIndex: the margin report reads its
// sales as the turnover report does; indexed, before the index, or
// partly each, it lists every sale of the period once with the same
// totals, in pages of any size.
func TestReview27MarginReadsTheDatesIndex(t *testing.T) {
	n, a, repl := r27World(t)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "500", "purchase_price": "1.10"})})
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	sales := r27Sales(10, 6, start)
	pushOK(t, repl, r27Push(t, 1, 1, sales))
	inPeriod := func(all []t25Sale, from, to string) int {
		k := 0
		for _, s := range all {
			if string(s.date) >= from && string(s.date) <= to {
				k++
			}
		}
		return k
	}
	read := func(all []t25Sale, from, to string) (string, string) {
		t.Helper()
		want, totals, _ := r27Margin(t, a, from, to, 500)
		if len(want) != inPeriod(all, from, to) {
			t.Fatalf("margin %s..%s: %d sales, want %d", from, to, len(want), inPeriod(all, from, to))
		}
		for _, limit := range []int{1, 7} {
			got, gotTotals, _ := r27Margin(t, a, from, to, limit)
			if strings.Join(got, "\n") != strings.Join(want, "\n") || gotTotals != totals {
				t.Fatalf("margin %s..%s in pages of %d:\n%s\n%s\nwant\n%s\n%s", from, to, limit, strings.Join(got, "\n"), gotTotals, strings.Join(want, "\n"), totals)
			}
		}
		return strings.Join(want, "\n"), totals
	}
	indexed, indexedTotals := read(sales, "2024-03-03", "2024-03-05")
	r27Unindex(t, n)
	if walked, walkedTotals := read(sales, "2024-03-03", "2024-03-05"); walked != indexed || walkedTotals != indexedTotals {
		t.Fatalf("margin before the index:\n%s\n%s\nwant\n%s\n%s", walked, walkedTotals, indexed, indexedTotals)
	}
	later := r27Sales(6, 4, start.AddDate(0, 0, 7))
	pushOK(t, repl, r27Push(t, 1, uint64(len(sales)+1), later))
	read(append(append([]t25Sale(nil), sales...), later...), "2024-03-05", "2024-03-12")
}

package central_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// rrSale is one receipt (or return) for rrPush: its lines (unit, price
// and VAT rate filled in where empty) and business date.
type rrSale struct {
	ret   bool
	date  storeline.Date
	lines []storeline.Line
}

// rrPush builds a push of store's sales at seq from on.
func rrPush(t *testing.T, store storeline.StoreID, from uint64, sales ...rrSale) []byte {
	t.Helper()
	bodies := make([]datedBody, len(sales))
	for i, s := range sales {
		ls := append([]storeline.Line(nil), s.lines...)
		for j := range ls {
			if ls[j].Unit == "" {
				ls[j].Unit = storeline.Piece
			}
			if ls[j].Qty.IsZero() {
				ls[j].Qty = dec("1")
			}
			if ls[j].Price.IsZero() {
				ls[j].Price = dec("1.50")
			}
			if ls[j].VATRate.IsZero() {
				ls[j].VATRate = dec("21")
			}
			if ls[j].Dept == "" {
				ls[j].Dept = "main"
			}
		}
		var body storeline.Body
		if s.ret {
			r := &storeline.Return{Terminal: "till-1", Shift: "sh1", Seller: "alice", Manager: "alice", Currency: "EUR", Reason: "x", Lines: ls}
			tot := computeTotal(r.Lines)
			r.Refunds = []storeline.Payment{{Method: storeline.Cash, Amount: tot}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body = r
		} else {
			r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR", Lines: ls}
			tot := computeTotal(r.Lines)
			r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: tot}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body = r
		}
		bodies[i] = datedBody{s.date, body}
	}
	return datedPush(t, store, from, bodies...)
}

// computeTotal is what a receipt of lines totals (a throwaway receipt's
// Compute, which computes the lines before it refuses the payment).
func computeTotal(ls []storeline.Line) decimal.Decimal {
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR", Lines: append([]storeline.Line(nil), ls...),
		Payments: []storeline.Payment{{Method: storeline.Card, Amount: dec("0.01")}}}
	_ = r.Compute() // computes the lines, then refuses the payment
	var tot decimal.Decimal
	for _, l := range r.Lines {
		tot = tot.Add(l.Total)
	}
	return tot
}

func rrPushOK(t *testing.T, n *central.Node, shop int, body []byte) {
	t.Helper()
	status, prob, resp := pushRaw(t, n.ReplicationAddr(), testShops[shop].token, body)
	if status != http.StatusOK || resp.Gap != nil || len(resp.Rejections) != 0 {
		t.Fatalf("push: status %d %v %+v", status, prob, resp)
	}
}

type rrExcise struct {
	Movements []struct {
		Date, Source, Ref, Kind, Item, Serial string
		Qty                                   decimal.Decimal
	}
	Totals map[string]map[string]decimal.Decimal
	More   bool
	Next   string
}

// TestReviewExciseSerialsOfOneReceipt: a receipt selling two marked
// bottles of the same excise item (one line per serial, as marked goods
// are sold) must show both serials in the excise journal.
func TestReviewExciseSerialsOfOneReceipt(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true, "marked": true}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "10", "purchase_price": "6.05"})})
	riga, _ := time.LoadLocation("Europe/Riga")
	day := string(storeline.DateOf(time.Now(), riga))
	rrPushOK(t, n, 0, rrPush(t, "s1", 1,
		rrSale{date: storeline.Date(day), lines: []storeline.Line{{Item: "vodka", Serial: "SN-1"}, {Item: "vodka", Serial: "SN-2"}}},
		rrSale{ret: true, date: storeline.Date(day), lines: []storeline.Line{{Item: "vodka", Serial: "SN-1"}, {Item: "vodka", Serial: "SN-2"}}}))
	var ex rrExcise
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from="+day+"&to="+day, viewerKey, nil, nil)).body, &ex); err != nil {
		t.Fatal(err)
	}
	serials := map[string]decimal.Decimal{}
	for _, m := range ex.Movements {
		if m.Source == "event" {
			serials[m.Kind+" "+m.Serial] = serials[m.Kind+" "+m.Serial].Add(m.Qty)
		}
	}
	var got []string
	for k, q := range serials {
		got = append(got, k+" "+q.String())
	}
	sort.Strings(got)
	want := []string{"receipt SN-1 -1", "receipt SN-2 -1", "return SN-1 1", "return SN-2 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("excise journal's sales by serial:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tot := ex.Totals["vodka"]; !tot["in"].Equal(dec("12")) || !tot["out"].Equal(dec("2")) {
		t.Fatalf("excise totals = %v, want vodka in 12 out 2", ex.Totals)
	}
}

type rrMargin struct {
	Sales []struct {
		Event, Kind, Date     string
		Revenue, Cost, Margin *decimal.Decimal
	}
	Revenue, Cost decimal.Decimal
	Uncosted      int
	More          bool
	Next          string
}

// TestReviewMarginModel pushes random receipts and returns over a few
// business dates and compares the margin report, read in pages of random
// sizes over random date ranges, with a naive recomputation; over every
// date its cost is the cogs/ accounts' balance.
func TestReviewMarginModel(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "500", "purchase_price": "0.77"},
		map[string]any{"item": "bread", "qty": "300", "purchase_price": "0.33"},
		map[string]any{"item": "flour", "qty": "100.5", "purchase_price": "0.91"})})
	rnd := rand.New(rand.NewPCG(7, 11))
	dates := []storeline.Date{"2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"}
	type sale struct {
		ret  bool
		date storeline.Date
		rev  decimal.Decimal
	}
	var model []sale
	seq := uint64(1)
	for batch := 0; batch < 6; batch++ {
		var ss []rrSale
		for i := 0; i < 15; i++ {
			s := rrSale{ret: rnd.IntN(5) == 0, date: dates[rnd.IntN(len(dates))]}
			for j := 0; j <= rnd.IntN(3); j++ {
				l := storeline.Line{Item: []storeline.ItemID{"milk", "bread", "flour"}[rnd.IntN(3)], VATRate: dec("10"),
					Price: decimal.New(int64(50+rnd.IntN(400)), -2), Qty: decimal.NewFromInt(int64(1 + rnd.IntN(3)))}
				if l.Item == "flour" {
					l.Unit, l.Qty = storeline.Kg, decimal.New(int64(100+rnd.IntN(2000)), -3)
				}
				if rnd.IntN(4) == 0 {
					l.Discount = dec("0.07")
				}
				s.lines = append(s.lines, l)
			}
			ss = append(ss, s)
		}
		body := rrPush(t, "s1", seq, ss...)
		rrPushOK(t, n, 0, body)
		// What the shop sent, as computed.
		var req replication.PushRequest
		if err := replication.Decode(body, &req); err != nil {
			t.Fatal(err)
		}
		for i, w := range req.Events {
			ev, err := replication.EventFromWire(w)
			if err != nil {
				t.Fatal(err)
			}
			var ls []storeline.Line
			switch b := ev.Body.(type) {
			case *storeline.Receipt:
				ls = b.Lines
			case *storeline.Return:
				ls = b.Lines
			}
			var rev decimal.Decimal
			for _, l := range ls {
				rev = rev.Add(l.Total).Sub(l.VAT)
			}
			if ss[i].ret {
				rev = rev.Neg()
			}
			model = append(model, sale{ss[i].ret, ss[i].date, rev})
		}
		seq += uint64(len(ss))
	}
	read := func(from, to storeline.Date, limit int) (rows int, revenue, cost decimal.Decimal) {
		after := ""
		seen := map[string]bool{}
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatal("margin: no end")
			}
			q := fmt.Sprintf("/v1/margin?store=s1&from=%s&to=%s&limit=%d", from, to, limit)
			if after != "" {
				q += "&after=" + after
			}
			var m rrMargin
			if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Sales) > limit || m.Uncosted != 0 {
				t.Fatalf("%s: %d rows, %d uncosted", q, len(m.Sales), m.Uncosted)
			}
			var pr, pc decimal.Decimal
			for _, s := range m.Sales {
				if seen[s.Event] {
					t.Fatalf("%s: event %s again", q, s.Event)
				}
				seen[s.Event] = true
				if storeline.Date(s.Date) < from || storeline.Date(s.Date) > to {
					t.Fatalf("%s: row dated %s", q, s.Date)
				}
				if s.Cost == nil || s.Margin == nil || !s.Revenue.Sub(*s.Cost).Equal(*s.Margin) {
					t.Fatalf("%s: row %+v", q, s)
				}
				if (s.Kind == "return") != s.Revenue.IsNegative() && !s.Revenue.IsZero() {
					t.Fatalf("%s: %s with revenue %s", q, s.Kind, s.Revenue)
				}
				pr, pc = pr.Add(*s.Revenue), pc.Add(*s.Cost)
			}
			if !pr.Equal(m.Revenue) || !pc.Equal(m.Cost) {
				t.Fatalf("%s: totals %s/%s, rows sum to %s/%s", q, m.Revenue, m.Cost, pr, pc)
			}
			rows, revenue, cost = rows+len(m.Sales), revenue.Add(pr), cost.Add(pc)
			if m.More != (m.Next != "") {
				t.Fatalf("%s: more %v next %q", q, m.More, m.Next)
			}
			if !m.More {
				return rows, revenue, cost
			}
			after = m.Next
		}
	}
	for k := 0; k < 25; k++ {
		i, j := rnd.IntN(len(dates)), rnd.IntN(len(dates))
		if i > j {
			i, j = j, i
		}
		from, to := dates[i], dates[j]
		limit := 1 + rnd.IntN(20)
		wantRows := 0
		var wantRev decimal.Decimal
		for _, s := range model {
			if s.date >= from && s.date <= to {
				wantRows++
				wantRev = wantRev.Add(s.rev)
			}
		}
		rows, rev, _ := read(from, to, limit)
		if rows != wantRows || !rev.Equal(wantRev) {
			t.Fatalf("margin %s..%s limit %d: %d rows revenue %s, want %d rows revenue %s", from, to, limit, rows, rev, wantRows, wantRev)
		}
	}
	_, rev, cost := read("2000-01-01", "2099-12-31", 7)
	bal := balances(t, a)
	var cogs, revAcct decimal.Decimal
	for k, v := range bal {
		if strings.HasPrefix(k, "cogs/s1/") && strings.HasSuffix(k, " cur:EUR") {
			cogs = cogs.Add(v)
		}
		if strings.HasPrefix(k, "revenue/s1") && strings.HasSuffix(k, " cur:EUR") {
			revAcct = revAcct.Add(v)
		}
	}
	if !cost.Equal(cogs) {
		t.Fatalf("margin's cost %s, cogs/s1/ accounts %s", cost, cogs)
	}
	if !rev.Equal(revAcct.Neg()) && !rev.Equal(revAcct) {
		t.Fatalf("margin's revenue %s, revenue account %s", rev, revAcct)
	}
}

// TestReviewExcisePaging reads the excise journal over random ranges in
// pages of random sizes: the pages together are the journal read at once
// and what a naive recomputation over the pushed sales gives.
func TestReviewExcisePaging(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/wine", adminKey, map[string]any{"sku": "WINE", "name": "Wine", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "500", "purchase_price": "6.05"}, map[string]any{"item": "wine", "qty": "500", "purchase_price": "3"})})
	rnd := rand.New(rand.NewPCG(3, 5))
	dates := []storeline.Date{"2026-10-30", "2026-10-31", "2026-11-01", "2026-11-03", "2026-11-04"}
	type mv struct {
		date storeline.Date
		item string
		qty  decimal.Decimal
	}
	var model []mv
	var ss []rrSale
	for i := 0; i < 80; i++ {
		s := rrSale{ret: rnd.IntN(6) == 0, date: dates[rnd.IntN(len(dates))]}
		for j := 0; j <= rnd.IntN(2); j++ {
			it := []storeline.ItemID{"vodka", "wine", "milk"}[rnd.IntN(3)]
			s.lines = append(s.lines, storeline.Line{Item: it, Qty: decimal.NewFromInt(int64(1 + rnd.IntN(3)))})
		}
		sum := map[storeline.ItemID]decimal.Decimal{}
		for _, l := range s.lines {
			sum[l.Item] = sum[l.Item].Add(l.Qty)
		}
		for it, q := range sum {
			if it == "milk" {
				continue
			}
			if !s.ret {
				q = q.Neg()
			}
			model = append(model, mv{s.date, string(it), q})
		}
		ss = append(ss, s)
	}
	rrPushOK(t, n, 0, rrPush(t, "s1", 1, ss[:40]...))
	rrPushOK(t, n, 0, rrPush(t, "s1", 41, ss[40:]...))
	key := func(date, item string, q decimal.Decimal) string { return date + " " + item + " " + q.String() }
	for k := 0; k < 30; k++ {
		i, j := rnd.IntN(len(dates)), rnd.IntN(len(dates))
		if i > j {
			i, j = j, i
		}
		from, to := dates[i], dates[j]
		limit := 1 + rnd.IntN(9)
		var want []string
		for _, m := range model {
			if m.date >= from && m.date <= to {
				want = append(want, key(string(m.date), m.item, m.qty))
			}
		}
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 500 {
				t.Fatal("excise: no end")
			}
			q := fmt.Sprintf("/v1/excise?store=s1&from=%s&to=%s&limit=%d", from, to, limit)
			if after != "" {
				q += "&after=" + after
			}
			var ex rrExcise
			if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &ex); err != nil {
				t.Fatal(err)
			}
			if len(ex.Movements) > limit {
				t.Fatalf("%s: %d rows", q, len(ex.Movements))
			}
			for _, m := range ex.Movements {
				if m.Source != "event" {
					continue
				}
				got = append(got, key(m.Date, m.Item, m.Qty))
			}
			if ex.More != (ex.Next != "") {
				t.Fatalf("%s: more %v next %q", q, ex.More, ex.Next)
			}
			if !ex.More {
				break
			}
			after = ex.Next
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("excise %s..%s limit %d:\n%s\nwant\n%s", from, to, limit, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestReviewMarginUnknownStore: the margin report of a store head office
// has never heard of (not in the master data, never pushed) is a 404, as
// the stock, batches and excise reports answer, not an empty 200 that
// reads as "no sales".
func TestReviewMarginUnknownStore(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seed(t, a, 1)
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=nope&from=2026-11-01&to=2026-11-02", viewerKey, nil, nil), 404, "store")
	r := apiDo(t, "GET", a, "/v1/margin?store=nope&from=2026-11-01&to=2026-11-02", viewerKey, nil, nil)
	if r.status != http.StatusNotFound {
		t.Fatalf("margin of an unknown store: %d %s, want 404", r.status, r.body)
	}
	// A shop that pushed before it was in the master data has its sales
	// listed (not costed).
	mustOK(t, apiDo(t, "DELETE", a, "/v1/stores/s1", adminKey, nil, nil))
	rrPushOK(t, n, 0, rrPush(t, "s1", 1, rrSale{date: "2026-11-01", lines: []storeline.Line{{Item: "i0"}}}))
	var m rrMargin
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2026-11-01&to=2026-11-02", viewerKey, nil, nil)).body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Sales) != 1 || m.Uncosted != 1 {
		t.Fatalf("margin of a shop not in the master data: %+v", m)
	}
}

package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// t25Sale is a receipt (or return) of s1 by seller at terminal.
type t25Sale struct {
	ret              bool
	date             storeline.Date
	seller, terminal string
	lines            []storeline.Line
}

// t25Line is a line of qty of item at price (10% VAT) sold from dept.
func t25Line(item, dept, qty, price string) storeline.Line {
	return storeline.Line{Item: storeline.ItemID(item), Dept: storeline.DeptID(dept), Unit: storeline.Piece, Qty: dec(qty), Price: dec(price), VATRate: dec("10")}
}

// t25Push builds a push of s1's sales from seq 1 on, returning the sales
// with their lines computed as the shop stored them.
func t25Push(t *testing.T, sales []t25Sale) []byte {
	t.Helper()
	bodies := make([]datedBody, len(sales))
	for i, s := range sales {
		ls := append([]storeline.Line(nil), s.lines...)
		tot := computeTotal(ls)
		var body storeline.Body
		if s.ret {
			r := &storeline.Return{Terminal: storeline.TerminalID(s.terminal), Shift: "sh1", Seller: storeline.SellerID(s.seller), Manager: "alice",
				Currency: "EUR", Reason: "x", Lines: ls, Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: tot}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body, sales[i].lines = r, r.Lines
		} else {
			r := &storeline.Receipt{Terminal: storeline.TerminalID(s.terminal), Shift: "sh1", Seller: storeline.SellerID(s.seller),
				Currency: "EUR", Lines: ls, Payments: []storeline.Payment{{Method: storeline.Cash, Amount: tot}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			body, sales[i].lines = r, r.Lines
		}
		bodies[i] = datedBody{s.date, body}
	}
	return datedPush(t, "s1", 1, bodies...)
}

// t25Row is a turnover row: its key's values in the order of by, and
// its measures.
type t25Row struct {
	Key               map[string]string `json:"key"`
	Receipts, Returns int
	Qty               decimal.Decimal
	Revenue, Net, VAT decimal.Decimal
}

type t25Page struct {
	Store, From, To string
	By              []string
	Rows            []t25Row
	More            bool
	Next            string
}

// t25Sum is a turnover report summed over pages, by its key's values
// joined with "|".
type t25Sum map[string]*t25Row

func (s t25Sum) add(by []string, r t25Row) {
	vals := make([]string, len(by))
	for i, d := range by {
		vals[i] = r.Key[d]
	}
	k := strings.Join(vals, "|")
	got, ok := s[k]
	if !ok {
		got = &t25Row{}
		s[k] = got
	}
	got.Receipts += r.Receipts
	got.Returns += r.Returns
	got.Qty, got.Revenue, got.Net, got.VAT = got.Qty.Add(r.Qty), got.Revenue.Add(r.Revenue), got.Net.Add(r.Net), got.VAT.Add(r.VAT)
}

func (s t25Sum) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		r := s[k]
		fmt.Fprintf(&b, "%s: receipts %d returns %d qty %s revenue %s net %s vat %s\n", k, r.Receipts, r.Returns, r.Qty, r.Revenue, r.Net, r.VAT)
	}
	return b.String()
}

// t25Read reads s1's turnover for from..to by by over every page (limit
// rows each), checking each page's rows are sorted by key and within
// limit, and returns their sum and the number of pages.
func t25Read(t *testing.T, a, from, to, by string, limit int) (t25Sum, int) {
	t.Helper()
	sum := t25Sum{}
	dims := []string{}
	if by != "" {
		dims = strings.Split(by, ",")
	}
	after := ""
	for pages := 1; ; pages++ {
		if pages > 100 {
			t.Fatal("turnover: no end")
		}
		q := url.Values{"store": {"s1"}, "from": {from}, "to": {to}, "limit": {fmt.Sprint(limit)}}
		if by != "" {
			q.Set("by", by)
		}
		if after != "" {
			q.Set("after", after)
		}
		var p t25Page
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/turnover?"+q.Encode(), viewerKey, nil, nil)).body, &p); err != nil {
			t.Fatal(err)
		}
		if p.More != (p.Next != "") || p.Store != "s1" || strings.Join(p.By, ",") != by {
			t.Fatalf("%s: page %+v", q.Encode(), p)
		}
		keys := make([]string, len(p.Rows))
		for i, r := range p.Rows {
			vals := make([]string, len(dims))
			for j, d := range dims {
				vals[j] = r.Key[d]
			}
			if len(r.Key) != len(dims) {
				t.Fatalf("%s: row key %v, want the dimensions %v", q.Encode(), r.Key, dims)
			}
			keys[i] = strings.Join(vals, "\x00")
			if i > 0 && keys[i-1] >= keys[i] {
				t.Fatalf("%s: rows not sorted by key: %q then %q", q.Encode(), keys[i-1], keys[i])
			}
			if !r.Net.Add(r.VAT).Equal(r.Revenue) {
				t.Fatalf("%s: row %+v: net + vat is not revenue", q.Encode(), r)
			}
			sum.add(dims, r)
		}
		if !p.More {
			return sum, pages
		}
		after = p.Next
	}
}

// t25Model is what the report should say of sales by dims: each line's
// key from keyOf, receipts and returns counted once per row they touch.
func t25Model(sales []t25Sale, dims []string, keyOf func(s t25Sale, l storeline.Line, dim string) string) t25Sum {
	sum := t25Sum{}
	for _, s := range sales {
		touched := map[string]bool{}
		for _, l := range s.lines {
			key := map[string]string{}
			for _, d := range dims {
				key[d] = keyOf(s, l, d)
			}
			r := t25Row{Key: key, Qty: l.Qty, Revenue: l.Total, Net: l.Total.Sub(l.VAT), VAT: l.VAT}
			if s.ret {
				r.Qty, r.Revenue, r.Net, r.VAT = r.Qty.Neg(), r.Revenue.Neg(), r.Net.Neg(), r.VAT.Neg()
			}
			vals := make([]string, len(dims))
			for i, d := range dims {
				vals[i] = key[d]
			}
			k := strings.Join(vals, "|")
			if !touched[k] {
				touched[k] = true
				if s.ret {
					r.Returns = 1
				} else {
					r.Receipts = 1
				}
			}
			sum.add(dims, r)
		}
	}
	return sum
}

// TestReview25Turnover: head office's turnover report sums a shop's
// receipts less its returns over business dates, grouped as the user
// asks: by date, month, item, group, top group (a group nested two deep
// rolls up to its root), department (the line's, not the item's), seller
// and terminal, or any combination; no grouping is one total. Returns
// subtract; pages cut short by the scan bound, or by limit, sum to the
// same report; bad inputs are 4xx naming the field.
func TestReview25Turnover(t *testing.T) {
	a, repl := review19World(t)
	for _, g := range []map[string]any{
		{"id": "dairy", "name": "Dairy", "parent": "food"},
		{"id": "cheese", "name": "Cheese", "parent": "dairy"},
		{"id": "fruit", "name": "Fruit"},
	} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/groups/"+g["id"].(string), adminKey, g, nil))
	}
	for _, it := range []map[string]any{
		{"id": "brie", "sku": "BRIE", "name": "Brie", "group": "cheese", "dept": "deli", "unit": "pcs", "vat_rate": "10"},
		{"id": "apple", "sku": "APPLE", "name": "Apple", "group": "fruit", "dept": "main", "unit": "pcs", "vat_rate": "10"},
	} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/items/"+it["id"].(string), adminKey, it, nil))
	}
	sales := []t25Sale{
		{date: "2020-01-10", seller: "alice", terminal: "till-1", lines: []storeline.Line{t25Line("milk", "main", "2", "1.50"), t25Line("brie", "deli", "1", "4.00"), t25Line("milk", "main", "1", "1.50")}},
		// milk's own department is main: the line's is what counts.
		{date: "2020-01-10", seller: "bob", terminal: "till-2", lines: []storeline.Line{t25Line("milk", "deli", "1", "1.50")}},
		{date: "2020-02-03", seller: "alice", terminal: "till-1", lines: []storeline.Line{t25Line("brie", "deli", "2", "4.00")}},
		{ret: true, date: "2020-02-03", seller: "alice", terminal: "till-1", lines: []storeline.Line{t25Line("milk", "main", "1", "1.50")}},
		{date: "2020-02-03", seller: "bob", terminal: "till-2", lines: []storeline.Line{t25Line("apple", "main", "3", "0.50")}},
		// Out of the period asked for below.
		{date: "2021-03-01", seller: "carol", terminal: "till-1", lines: []storeline.Line{t25Line("apple", "main", "5", "0.50")}},
	}
	pushOK(t, repl, t25Push(t, sales))
	inPeriod := sales[:5]
	groupOf := map[string]string{"milk": "food", "brie": "cheese", "apple": "fruit"}
	topOf := map[string]string{"milk": "food", "brie": "food", "apple": "fruit"}
	keyOf := func(s t25Sale, l storeline.Line, dim string) string {
		switch dim {
		case "date":
			return string(s.date)
		case "month":
			return string(s.date[:7])
		case "item":
			return string(l.Item)
		case "group":
			return groupOf[string(l.Item)]
		case "top_group":
			return topOf[string(l.Item)]
		case "dept":
			return string(l.Dept)
		case "seller":
			return s.seller
		case "terminal":
			return s.terminal
		}
		t.Fatalf("dimension %q", dim)
		return ""
	}

	// Figures worked by hand: returns subtract, a receipt counts once
	// in a row however many of its lines fall there, a nested group rolls
	// up to its root.
	bySeller, _ := t25Read(t, a, "2020-01-01", "2020-12-31", "seller", 500)
	if got := bySeller.String(); got != "alice: receipts 2 returns 1 qty 5 revenue 15 net 13.64 vat 1.36\n"+
		"bob: receipts 2 returns 0 qty 4 revenue 3 net 2.72 vat 0.28\n" {
		t.Errorf("by seller:\n%s", got)
	}
	byTop, _ := t25Read(t, a, "2020-01-01", "2020-12-31", "top_group", 500)
	if got := byTop.String(); got != "food: receipts 3 returns 1 qty 6 revenue 16.5 net 15 vat 1.5\n"+
		"fruit: receipts 1 returns 0 qty 3 revenue 1.5 net 1.36 vat 0.14\n" {
		t.Errorf("by top group:\n%s", got)
	}

	for _, by := range []string{"", "date", "month", "item", "group", "top_group", "dept", "seller", "terminal",
		"seller,item", "month,top_group,dept", "terminal,date,group,seller"} {
		dims := []string{}
		if by != "" {
			dims = strings.Split(by, ",")
		}
		want := t25Model(inPeriod, dims, keyOf).String()
		if got, _ := t25Read(t, a, "2020-01-01", "2020-12-31", by, 500); got.String() != want {
			t.Errorf("by %q:\n%s\nwant\n%s", by, got, want)
		}
		// A row a page: the same sums.
		if got, pages := t25Read(t, a, "2020-01-01", "2020-12-31", by, 1); got.String() != want || (len(dims) > 0 && pages < 2) {
			t.Errorf("by %q a row a page (%d pages):\n%s\nwant\n%s", by, pages, got, want)
		}
	}
	if got := t25Read2(t, a, "2021-01-01", "2021-12-31", "seller"); got != "carol: receipts 1 returns 0 qty 5 revenue 2.5 net 2.27 vat 0.23\n" {
		t.Errorf("2021 by seller:\n%s", got)
	}

	// Pages cut short by the scan bound (2 events a page) sum to the
	// report read whole.
	bys := []string{"", "seller,item", "month,top_group,dept"}
	whole := map[string]string{}
	for _, by := range bys {
		sum, pages := t25Read(t, a, "2020-01-01", "2020-12-31", by, 500)
		if pages != 1 {
			t.Fatalf("by %q: %d pages unbounded", by, pages)
		}
		whole[by] = sum.String()
	}
	central.SetTurnoverScanBound(t, 2)
	for _, by := range bys {
		if paged, pages := t25Read(t, a, "2020-01-01", "2020-12-31", by, 500); pages != 3 || paged.String() != whole[by] {
			t.Errorf("by %q in %d pages of 2 events (want 3):\n%s\nwant\n%s", by, pages, paged, whole[by])
		}
	}

	for _, c := range []struct {
		query  string
		status int
		field  string
	}{
		{"store=s1&from=2020-01-01&to=2020-12-31&by=colour", http.StatusBadRequest, "by"},
		{"store=s1&from=2020-01-01&to=2020-12-31&by=seller,seller", http.StatusBadRequest, "by"},
		{"store=s1&from=2020-01-01&to=2020-12-31&by=seller,", http.StatusBadRequest, "by"},
		{"store=s1&from=2020-13-01&to=2020-12-31", http.StatusBadRequest, "from"},
		{"store=s1&from=2020-01-01", http.StatusBadRequest, "to"},
		{"store=s1&from=2020-02-01&to=2020-01-31", http.StatusBadRequest, "to"},
		{"store=s1&from=2020-01-01&to=2021-01-01", http.StatusBadRequest, "to"}, // 367 days
		{"store=s1&from=2020-01-01&to=2020-12-31&limit=0", http.StatusBadRequest, "limit"},
		{"store=s1&from=2020-01-01&to=2020-12-31&after=x", http.StatusBadRequest, "after"},
		{"store=s1&from=2020-01-01&to=2020-12-31&consistency=maybe", http.StatusBadRequest, "consistency"},
		{"from=2020-01-01&to=2020-12-31", http.StatusBadRequest, "store"},
		{"store=nowhere&from=2020-01-01&to=2020-12-31", http.StatusNotFound, "store"},
	} {
		r := apiDo(t, "GET", a, "/v1/turnover?"+c.query, viewerKey, nil, nil)
		var p struct{ Field string }
		_ = json.Unmarshal(r.body, &p)
		if r.status != c.status || p.Field != c.field {
			t.Errorf("%s: %d %s, want %d naming %s", c.query, r.status, r.body, c.status, c.field)
		}
	}
	// No grouping is one total row, zero when nothing was sold.
	if got := t25Read2(t, a, "2030-01-01", "2030-12-31", ""); got != ": receipts 0 returns 0 qty 0 revenue 0 net 0 vat 0\n" {
		t.Errorf("2030 total:\n%s", got)
	}
	if got := t25Read2(t, a, "2030-01-01", "2030-12-31", "seller"); got != "" {
		t.Errorf("2030 by seller:\n%s", got)
	}
}

// t25Read2 is t25Read's sum as text.
func t25Read2(t *testing.T, a, from, to, by string) string {
	t.Helper()
	s, _ := t25Read(t, a, from, to, by, 500)
	return s.String()
}

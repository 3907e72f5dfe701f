package posbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

var posbridgeLong = flag.Bool("posbridge.long", false, "run posbridge's property tests at full size")

// setRapidChecks bounds rapid's checks for this package's slow (HTTP and
// disk) properties unless -rapid.checks was given.
func setRapidChecks(n int) {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	if !given {
		_ = flag.Set("rapid.checks", fmt.Sprint(n))
	}
}

// propItem is an item the histories sell, at a fixed till price.
type propItem struct {
	id, sku, group string
	dept           storeline.DeptID
	price          decimal.Decimal
	weighed        bool
}

var propItems = []propItem{
	{id: "milk", sku: "MILK", group: "g-food", dept: "food", price: dec("1.19")},
	{id: "cola", sku: "COLA", group: "g-drinks", dept: "drinks", price: dec("2.00")},
	{id: "wine", sku: "WINE", group: "g-drinks", dept: "drinks", price: dec("7.99")},
	{id: "cheese", sku: "CHS", group: "g-food", dept: "food", price: dec("15.90"), weighed: true},
}

func propItemByID(id string) propItem {
	for _, it := range propItems {
		if it.id == id {
			return it
		}
	}
	panic("no item " + id)
}

// ---- the node: a real ledger in a directory, posbridge over real HTTP ----

type propNode struct {
	dir    string
	led    *ledger.Ledger
	http   *httptest.Server
	clock  *clock
	router routers.Router
	seq    uint64 // deliveries from head office applied so far
}

func (n *propNode) open(t *rapid.T, first bool) {
	led, err := ledger.Open(testLedgerOptions(n.dir))
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	n.led = led
	if first {
		if _, err := led.PutMaster(context.Background(), fixture()); err != nil {
			t.Fatalf("PutMaster: %v", err)
		}
	}
	cfg := posbridge.DefaultConfig()
	cfg.Store = "s1"
	wireLedger(&cfg, led)
	cfg.Now = n.clock.Now
	cfg.Registerer = prometheus.NewRegistry()
	cfg.MaxBodyBytes = 64 << 10
	cfg.Version = "test"
	srv, err := posbridge.New(cfg)
	if err != nil {
		t.Fatalf("posbridge.New: %v", err)
	}
	n.http = httptest.NewServer(srv.Handler())
}

func (n *propNode) close(t *rapid.T) {
	if n.http != nil {
		n.http.Close()
		n.http = nil
	}
	if n.led != nil {
		if err := n.led.Close(); err != nil {
			t.Fatalf("ledger.Close: %v", err)
		}
		n.led = nil
	}
}

// deliver applies head office's delivery of qty of item to the shop's
// stock, as a pulled transfer does.
func (n *propNode) deliver(t *rapid.T, it propItem, qty decimal.Decimal) {
	n.seq++
	at := n.clock.Now()
	_, err := n.led.ApplyRemote(context.Background(), storeline.Event{
		ID: storeline.NewEventID(), Origin: "hq", Epoch: 1, Seq: n.seq, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery"},
		OccurredAt: at, BusinessDate: storeline.Date(at.Format(time.DateOnly)),
		Postings: []storeline.Posting{
			{Account: storeline.StockAccount("s1", it.dept, storeline.ItemID(it.id)), Asset: storeline.ItemAsset(storeline.ItemID(it.id)), Amount: qty},
			{Account: "supplier/sup1", Asset: storeline.ItemAsset(storeline.ItemID(it.id)), Amount: qty.Neg()},
		},
	})
	if err != nil {
		t.Fatalf("deliver %s %s: %v", qty, it.id, err)
	}
}

// do sends one request over real HTTP, checking it (unless invalid) and
// always the answer against openapi.yaml.
func (n *propNode) do(t *rapid.T, method, path, token, session string, body any) (int, []byte) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	}
	newReq := func() *http.Request {
		r, err := http.NewRequest(method, n.http.URL+path, bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		r.Header.Set("Authorization", "Bearer "+token)
		if session != "" {
			r.Header.Set("X-Session", session)
		}
		return r
	}
	vr := newReq()
	vr.URL.Host, vr.URL.Scheme, vr.Host = "", "", ""
	route, params, err := n.router.FindRoute(vr)
	if err != nil {
		t.Fatalf("%s %s: not in openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		t.Fatalf("%s %s: request breaks openapi.yaml: %v", method, path, err)
	}
	hr, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer hr.Body.Close()
	rb, err := io.ReadAll(hr.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: hr.StatusCode, Header: hr.Header, Body: io.NopCloser(bytes.NewReader(rb)),
	}); err != nil {
		t.Fatalf("%s %s: answer %d breaks openapi.yaml: %v\n%s", method, path, hr.StatusCode, err, rb)
	}
	return hr.StatusCode, rb
}

func (n *propNode) must(t *rapid.T, status int, method, path, token, session string, body any) map[string]any {
	got, rb := n.do(t, method, path, token, session, body)
	if got != status {
		t.Fatalf("%s %s: status %d, want %d: %s\nbody: %v", method, path, got, status, rb, body)
	}
	var m map[string]any
	if err := json.Unmarshal(rb, &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, rb)
	}
	return m
}

// ---- the model ----

type propTill struct {
	term       storeline.TerminalID
	token      string
	alice, bob string // session tokens
	shifts     int    // shifts opened so far
	open       *mShift
}

func (tl *propTill) session(seller string) string {
	if seller == "bob" {
		return tl.bob
	}
	return tl.alice
}

type mTender struct {
	count  int
	amount decimal.Decimal
}

type mShift struct {
	term                            storeline.TerminalID
	id                              string
	date                            string
	openID                          string
	float                           decimal.Decimal
	receipts, returns               int
	sales, refunds, cashIn, cashOut decimal.Decimal
	tenders                         map[string]*mTender
}

func (s *mShift) tender(m string) *mTender {
	if s.tenders[m] == nil {
		s.tenders[m] = &mTender{}
	}
	return s.tenders[m]
}

// mReceipt is what is left to return of a stored receipt, by item.
type mReceipt struct {
	id       string
	left     map[string]decimal.Decimal // units
	paidLeft map[string]decimal.Decimal // money, line discounts netted
}

type mStat struct {
	receipts, returns int
	sales, refunds    decimal.Decimal
}

func (a *mStat) add(sign int, amt decimal.Decimal, count bool) {
	if sign > 0 {
		a.sales = a.sales.Add(amt)
		if count {
			a.receipts++
		}
		return
	}
	a.refunds = a.refunds.Add(amt)
	if count {
		a.returns++
	}
}

// mDay is a business date's sales by seller, terminal and group.
type mDay struct {
	total                    mStat
	seller, terminal, groups map[string]*mStat
}

// sentReq is an accepted request, kept to be retried.
type sentReq struct {
	path, seller string
	till         *propTill
	body         map[string]any
	answer       map[string]any
}

type propModel struct {
	tills    []*propTill
	receipts []*mReceipt
	stock    map[string]decimal.Decimal
	days     map[string]*mDay
	sent     []sentReq
	day      int
}

func (m *propModel) dayOf(date string) *mDay {
	d := m.days[date]
	if d == nil {
		d = &mDay{seller: map[string]*mStat{}, terminal: map[string]*mStat{}, groups: map[string]*mStat{}}
		m.days[date] = d
	}
	return d
}

func statOf(mm map[string]*mStat, k string) *mStat {
	if mm[k] == nil {
		mm[k] = &mStat{}
	}
	return mm[k]
}

// mLine is a line as the model prices it.
type mLine struct {
	item  propItem
	qty   decimal.Decimal
	total decimal.Decimal
}

// addSale books a receipt (sign 1) or return (sign -1) into the day's
// statistics.
func (m *propModel) addSale(date, seller string, term storeline.TerminalID, sign int, total decimal.Decimal, lines []mLine) {
	d := m.dayOf(date)
	d.total.add(sign, total, true)
	statOf(d.seller, seller).add(sign, total, true)
	statOf(d.terminal, string(term)).add(sign, total, true)
	seen := map[string]bool{}
	for _, l := range lines {
		statOf(d.groups, l.item.group).add(sign, l.total, !seen[l.item.group])
		seen[l.item.group] = true
	}
}

func cents(t *rapid.T, lo, hi int, label string) decimal.Decimal {
	return decimal.New(int64(rapid.IntRange(lo, hi).Draw(t, label)), -2)
}

func (h *propHistory) now() string { return h.node.clock.Now().Format(time.RFC3339) }

type propHistory struct {
	node  *propNode
	model *propModel
}

// ---- actions ----

func (h *propHistory) login(t *rapid.T, tl *propTill) {
	n := h.node
	tl.alice = n.must(t, 201, "POST", "/v1/sessions", tl.token, "", map[string]any{"seller": "alice", "pin": "1234"})["token"].(string)
	tl.bob = n.must(t, 201, "POST", "/v1/sessions", tl.token, "", map[string]any{"seller": "bob", "pin": "9999"})["token"].(string)
}

func (h *propHistory) openShift(t *rapid.T, tl *propTill) {
	m := h.model
	tl.shifts++
	sh := &mShift{
		term: tl.term, id: fmt.Sprintf("sh%d", tl.shifts), date: h.node.clock.Now().In(berlin).Format(time.DateOnly),
		openID: newID(), float: cents(t, 0, 20000, "float"), tenders: map[string]*mTender{},
	}
	seller := rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "opener")
	body := map[string]any{"id": sh.openID, "terminal": tl.term, "shift": sh.id, "seller": seller,
		"occurred_at": h.now(), "float": sh.float.StringFixed(2)}
	ans := h.node.must(t, 201, "POST", "/v1/shifts", tl.token, tl.session(seller), body)
	if ans["float"] != sh.float.StringFixed(2) || ans["business_date"] != sh.date {
		t.Fatalf("opening of %s/%s = %v, want float %s on %s", tl.term, sh.id, ans, sh.float.StringFixed(2), sh.date)
	}
	tl.open = sh
	m.sent = append(m.sent, sentReq{path: "/v1/shifts", seller: seller, till: tl, body: body, answer: ans})
}

// pays draws tenders for total: cash (with change), card, or card and
// cash. refund: exact amounts only.
func pays(t *rapid.T, total decimal.Decimal, refund bool) (out []map[string]any, cash, card, change decimal.Decimal) {
	kind := rapid.IntRange(0, 2).Draw(t, "tenders")
	if total.IsZero() {
		kind = 0
	}
	switch kind {
	case 1:
		card = total
	case 2:
		card = decimal.New(int64(rapid.IntRange(1, int(total.Shift(2).IntPart())).Draw(t, "card part")), -2)
	}
	cash = total.Sub(card)
	if !refund && (kind == 0 || kind == 2) && rapid.Bool().Draw(t, "change") {
		change = cents(t, 1, 5000, "change")
		cash = cash.Add(change)
	}
	if card.IsPositive() {
		out = append(out, map[string]any{"method": "card", "amount": card.StringFixed(2)})
	}
	if cash.IsPositive() || len(out) == 0 {
		out = append(out, map[string]any{"method": "cash", "amount": cash.StringFixed(2)})
	}
	return out, cash, card, change
}

// book adds the tenders of a receipt (sign 1) or return (sign -1) to the
// shift.
func (sh *mShift) book(sign int, cash, card, change decimal.Decimal) {
	s := decimal.NewFromInt(int64(sign))
	if card.IsPositive() {
		c := sh.tender("card")
		c.count++
		c.amount = c.amount.Add(card.Mul(s))
	}
	if cash.IsPositive() || !card.IsPositive() {
		c := sh.tender("cash")
		c.count++
		c.amount = c.amount.Add(cash.Mul(s))
	}
	if !change.IsZero() {
		c := sh.tender("cash")
		c.amount = c.amount.Sub(change)
	}
}

func (h *propHistory) receipt(t *rapid.T, tl *propTill) {
	m, sh := h.model, tl.open
	var lines []map[string]any
	var mls []mLine
	total := decimal.Zero
	for k := rapid.IntRange(1, 4).Draw(t, "lines"); k > 0; k-- {
		it := rapid.SampledFrom(propItems).Draw(t, "item")
		l := map[string]any{"price": it.price.StringFixed(2)}
		var qty decimal.Decimal
		switch {
		case it.weighed:
			grams := rapid.IntRange(1, 2500).Draw(t, "grams")
			qty = decimal.New(int64(grams), -3)
			if rapid.Bool().Draw(t, "scale barcode") {
				l["barcode"] = gtin(fmt.Sprintf("2012345%05d", grams))
			} else {
				l["sku"], l["qty"] = it.sku, qty.String()
			}
		case it.id == "milk" && rapid.IntRange(0, 3).Draw(t, "box") == 0:
			l["barcode"], l["qty"] = milkBox, "1"
			qty = decimal.NewFromInt(12)
		default:
			qty = decimal.NewFromInt(int64(rapid.IntRange(1, 5).Draw(t, "qty")))
			l["sku"], l["qty"] = it.sku, qty.String()
		}
		gross := qty.Mul(it.price).Round(2)
		disc := decimal.Zero
		// A line keeps a cent at least: a receipt of nothing to pay has
		// no payment to record (amounts are positive).
		if rapid.IntRange(0, 3).Draw(t, "discounted") == 0 {
			disc = decimal.New(int64(rapid.IntRange(0, int(gross.Shift(2).IntPart())-1).Draw(t, "discount")), -2)
			l["discount"] = disc.StringFixed(2)
		}
		lines = append(lines, l)
		mls = append(mls, mLine{item: it, qty: qty, total: gross.Sub(disc)})
		total = total.Add(gross.Sub(disc))
	}
	ps, cash, card, change := pays(t, total, false)
	seller := rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "seller")
	id := newID()
	body := map[string]any{"id": id, "terminal": tl.term, "shift": sh.id, "seller": seller, "occurred_at": h.now(),
		"catalog_version": 1, "lines": lines, "payments": ps}
	ans := h.node.must(t, 201, "POST", "/v1/receipts", tl.token, tl.session(seller), body)
	if ans["total"] != total.StringFixed(2) || ans["change"] != change.StringFixed(2) || ans["business_date"] != sh.date {
		t.Fatalf("receipt = total %v change %v date %v, want %s %s %s", ans["total"], ans["change"], ans["business_date"], total.StringFixed(2), change.StringFixed(2), sh.date)
	}
	sh.receipts++
	sh.sales = sh.sales.Add(total)
	sh.book(1, cash, card, change)
	rc := &mReceipt{id: id, left: map[string]decimal.Decimal{}, paidLeft: map[string]decimal.Decimal{}}
	for _, l := range mls {
		rc.left[l.item.id] = rc.left[l.item.id].Add(l.qty)
		rc.paidLeft[l.item.id] = rc.paidLeft[l.item.id].Add(l.total)
		m.stock[l.item.id] = m.stock[l.item.id].Sub(l.qty)
	}
	m.receipts = append(m.receipts, rc)
	m.addSale(sh.date, seller, tl.term, 1, total, mls)
	m.sent = append(m.sent, sentReq{path: "/v1/receipts", seller: seller, till: tl, body: body, answer: ans})
}

func (h *propHistory) ret(t *rapid.T, tl *propTill) {
	m, sh := h.model, tl.open
	var open []*mReceipt
	for _, rc := range m.receipts {
		for id, q := range rc.left {
			if q.IsPositive() && rc.paidLeft[id].IsPositive() {
				open = append(open, rc)
				break
			}
		}
	}
	if len(open) == 0 {
		return
	}
	rc := rapid.SampledFrom(open).Draw(t, "original")
	whole := rapid.Bool().Draw(t, "whole")
	var items []string
	for id, q := range rc.left {
		// An item with units left but no money left to refund cannot
		// come back: a refund is a positive amount.
		if q.IsPositive() && rc.paidLeft[id].IsPositive() {
			items = append(items, id)
		}
	}
	sort.Strings(items)
	var lines []map[string]any
	var mls []mLine
	total := decimal.Zero
	for _, id := range items {
		it := propItemByID(id)
		left := rc.left[id]
		qty := left
		if !whole {
			if !rapid.Bool().Draw(t, "return item") {
				continue
			}
			if it.weighed {
				qty = decimal.New(int64(rapid.IntRange(1, int(left.Shift(3).IntPart())).Draw(t, "return grams")), -3)
			} else {
				qty = decimal.NewFromInt(int64(rapid.IntRange(1, int(left.IntPart())).Draw(t, "return qty")))
			}
		}
		gross := qty.Mul(it.price).Round(2)
		// Never above what the receipt took for the item: the rest is a
		// discount on the return's line.
		disc := decimal.Max(decimal.Zero, gross.Sub(rc.paidLeft[id]))
		l := map[string]any{"sku": it.sku, "qty": qty.String(), "price": it.price.StringFixed(2)}
		if disc.IsPositive() {
			l["discount"] = disc.StringFixed(2)
		}
		lines = append(lines, l)
		mls = append(mls, mLine{item: it, qty: qty, total: gross.Sub(disc)})
		total = total.Add(gross.Sub(disc))
	}
	if len(lines) == 0 {
		return
	}
	base := func() map[string]any {
		return map[string]any{"id": newID(), "terminal": tl.term, "shift": sh.id, "occurred_at": h.now(), "original": rc.id, "reason": "customer"}
	}
	// Now and then first one unit more than is left, refused whole.
	if it := mls[0].item; !it.weighed && rapid.IntRange(0, 4).Draw(t, "over-return") == 0 {
		bad := base()
		over := rc.left[it.id].Add(decimal.NewFromInt(1))
		bad["seller"], bad["lines"] = "alice", []map[string]any{{"sku": it.sku, "qty": over.String(), "price": it.price.StringFixed(2)}}
		bad["refunds"] = []map[string]any{{"method": "cash", "amount": over.Mul(it.price).Round(2).StringFixed(2)}}
		if st, rb := h.node.do(t, "POST", "/v1/returns", tl.token, tl.bob, bad); st != 422 || !strings.Contains(string(rb), `"lines[0].qty"`) {
			t.Fatalf("returning %s of %s of %s left: %d %s, want 422 naming lines[0].qty", over, it.id, rc.left[it.id], st, rb)
		}
	}
	ps, cash, card, _ := pays(t, total, true)
	seller := rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "return seller")
	body := base()
	body["seller"], body["lines"], body["refunds"] = seller, lines, ps
	ans := h.node.must(t, 201, "POST", "/v1/returns", tl.token, tl.bob, body)
	if ans["total"] != total.StringFixed(2) || ans["business_date"] != sh.date {
		t.Fatalf("return = total %v date %v, want %s %s", ans["total"], ans["business_date"], total.StringFixed(2), sh.date)
	}
	sh.returns++
	sh.refunds = sh.refunds.Add(total)
	sh.book(-1, cash, card, decimal.Zero)
	for _, l := range mls {
		rc.left[l.item.id] = rc.left[l.item.id].Sub(l.qty)
		rc.paidLeft[l.item.id] = rc.paidLeft[l.item.id].Sub(l.total)
		m.stock[l.item.id] = m.stock[l.item.id].Add(l.qty)
	}
	m.addSale(sh.date, seller, tl.term, -1, total, mls)
	m.sent = append(m.sent, sentReq{path: "/v1/returns", seller: "bob", till: tl, body: body, answer: ans})
}

func (h *propHistory) cash(t *rapid.T, tl *propTill) {
	sh := tl.open
	dir := rapid.SampledFrom([]string{"in", "out"}).Draw(t, "direction")
	amt := cents(t, 1, 10000, "cash amount")
	session, seller := "alice", rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "cash seller")
	if dir == "out" || seller == "bob" {
		session = "bob"
	}
	body := map[string]any{"id": newID(), "terminal": tl.term, "shift": sh.id, "seller": seller, "occurred_at": h.now(),
		"direction": dir, "amount": amt.StringFixed(2), "reason": "float"}
	ans := h.node.must(t, 201, "POST", "/v1/cash", tl.token, tl.session(session), body)
	if dir == "in" {
		sh.cashIn = sh.cashIn.Add(amt)
	} else {
		sh.cashOut = sh.cashOut.Add(amt)
	}
	h.model.sent = append(h.model.sent, sentReq{path: "/v1/cash", seller: session, till: tl, body: body, answer: ans})
}

func (h *propHistory) closeShift(t *rapid.T, tl *propTill) {
	sh := tl.open
	body := map[string]any{"id": newID()}
	expected := sh.float.Add(sh.tender("cash").amount).Add(sh.cashIn).Sub(sh.cashOut)
	var counted decimal.Decimal
	if rapid.Bool().Draw(t, "counted") {
		counted = decimal.Max(decimal.Zero, expected.Add(cents(t, -500, 500, "miscount")))
		body["counted_cash"] = counted.StringFixed(2)
	}
	seller := rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "closer")
	path := "/v1/shifts/" + sh.id + "/close"
	ans := h.node.must(t, 201, "POST", path, tl.token, tl.session(seller), body)
	rep, _ := ans["report"].(map[string]any)
	want := map[string]any{
		"currency": "EUR", "receipts": float64(sh.receipts), "returns": float64(sh.returns),
		"sales": sh.sales.StringFixed(2), "refunds": sh.refunds.StringFixed(2), "float": sh.float.StringFixed(2),
		"cash_in": sh.cashIn.StringFixed(2), "cash_out": sh.cashOut.StringFixed(2), "expected_cash": expected.StringFixed(2),
	}
	tenders := []any{}
	for _, method := range []string{"cash", "card"} {
		if tt := sh.tenders[method]; tt != nil || method == "cash" {
			tt = sh.tender(method)
			tenders = append(tenders, map[string]any{"method": method, "count": float64(tt.count), "amount": tt.amount.StringFixed(2)})
		}
	}
	want["tenders"] = tenders
	if _, ok := body["counted_cash"]; ok {
		want["counted_cash"], want["difference"] = counted.StringFixed(2), counted.Sub(expected).StringFixed(2)
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("Z report of %s/%s:\n got %v\nwant %v", tl.term, sh.id, rep, want)
	}
	if ans["business_date"] != sh.date {
		t.Fatalf("close of %s/%s on %v, want the opening's %s", tl.term, sh.id, ans["business_date"], sh.date)
	}
	tl.open = nil
	h.model.sent = append(h.model.sent, sentReq{path: path, seller: seller, till: tl, body: body, answer: ans})
	// Opening the closed shift again under a new id is refused.
	again := map[string]any{"id": newID(), "terminal": tl.term, "shift": sh.id, "seller": "alice", "occurred_at": h.now(), "float": "1.00"}
	if st, rb := h.node.do(t, "POST", "/v1/shifts", tl.token, tl.alice, again); st != 409 || !strings.Contains(string(rb), `"shift"`) {
		t.Fatalf("reopening closed shift %s/%s: %d %s, want 409 naming the shift", tl.term, sh.id, st, rb)
	}
}

// retry sends an accepted request again, same id and body: the answer is
// the first one, as a retry (200), and nothing is counted twice.
func (h *propHistory) retry(t *rapid.T) {
	if len(h.model.sent) == 0 {
		return
	}
	s := rapid.SampledFrom(h.model.sent).Draw(t, "retried")
	if rapid.IntRange(0, 3).Draw(t, "changed retry") == 0 {
		// The same id with another body is a conflict, and changes
		// nothing (the checks at the end see no trace of it).
		other := map[string]any{}
		for k, v := range s.body {
			other[k] = v
		}
		switch {
		case s.path == "/v1/shifts":
			other["float"] = decimal.RequireFromString(s.body["float"].(string)).Add(decimal.NewFromInt(1)).StringFixed(2)
		case s.path == "/v1/receipts":
			other["payments"] = []map[string]any{{"method": "cash", "amount": "99999.00"}}
		case s.path == "/v1/returns":
			other["reason"] = "another reason"
			other["refunds"] = []map[string]any{{"method": "card", "amount": s.answer["total"]}}
			if fmt.Sprint(s.body["refunds"]) == fmt.Sprint(other["refunds"]) {
				other["refunds"] = []map[string]any{{"method": "cash", "amount": s.answer["total"]}}
			}
		case s.path == "/v1/cash":
			other["amount"] = decimal.RequireFromString(s.body["amount"].(string)).Add(decimal.NewFromInt(1)).StringFixed(2)
		default: // a close
			if _, ok := s.body["counted_cash"]; ok {
				delete(other, "counted_cash")
			} else {
				other["counted_cash"] = "1.00"
			}
		}
		if st, rb := h.node.do(t, "POST", s.path, s.till.token, s.till.session(s.seller), other); st != 409 {
			t.Fatalf("%s under the id of %v with another body: %d %s, want 409", s.path, s.body["id"], st, rb)
		}
	}
	session := s.till.session(s.seller)
	if s.path == "/v1/receipts" && rapid.Bool().Draw(t, "stale session") {
		// A receipt needs only the terminal: a retry after the seller's
		// session is gone (a restart) still lands.
		session = "a-session-long-gone"
	}
	got := h.node.must(t, 200, "POST", s.path, s.till.token, session, s.body)
	if !reflect.DeepEqual(got, s.answer) {
		t.Fatalf("retry of %s %v:\n got %v\nwant %v", s.path, s.body["id"], got, s.answer)
	}
}

func (h *propHistory) reopen(t *rapid.T) {
	h.node.close(t)
	h.node.open(t, false)
	for _, tl := range h.model.tills {
		h.login(t, tl)
	}
}

// nextDay moves the clock to the next day; the tills log in again.
func (h *propHistory) nextDay(t *rapid.T) {
	h.model.day++
	h.node.clock.Add(24 * time.Hour)
	for _, tl := range h.model.tills {
		h.login(t, tl)
	}
}

// ---- the checks ----

func statRows(mm map[string]*mStat) []any {
	keys := make([]string, 0, len(mm))
	for k := range mm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{}
	for _, k := range keys {
		out = append(out, statRow(k, mm[k]))
	}
	return out
}

func statRow(k string, a *mStat) map[string]any {
	return map[string]any{"key": k, "receipts": float64(a.receipts), "returns": float64(a.returns),
		"sales": a.sales.StringFixed(2), "refunds": a.refunds.StringFixed(2), "net": a.sales.Sub(a.refunds).StringFixed(2)}
}

func (h *propHistory) checkStats(t *rapid.T, from, to string) {
	sum := &mDay{seller: map[string]*mStat{}, terminal: map[string]*mStat{}, groups: map[string]*mStat{}}
	merge := func(dst map[string]*mStat, src map[string]*mStat) {
		for k, a := range src {
			b := statOf(dst, k)
			b.receipts += a.receipts
			b.returns += a.returns
			b.sales, b.refunds = b.sales.Add(a.sales), b.refunds.Add(a.refunds)
		}
	}
	for date, d := range h.model.days {
		if date < from || date > to {
			continue
		}
		merge(map[string]*mStat{"": &sum.total}, map[string]*mStat{"": &d.total})
		merge(sum.seller, d.seller)
		merge(sum.terminal, d.terminal)
		merge(sum.groups, d.groups)
	}
	tl := h.model.tills[0]
	got := h.node.must(t, 200, "GET", "/v1/stats/sales?from="+from+"&to="+to, tl.token, tl.alice, nil)
	want := map[string]any{"from": from, "to": to, "currency": "EUR", "total": statRow("", &sum.total),
		"by_seller": statRows(sum.seller), "by_terminal": statRows(sum.terminal), "by_group": statRows(sum.groups)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats %s..%s:\n got %v\nwant %v", from, to, got, want)
	}
}

func (h *propHistory) check(t *rapid.T) {
	first := t0.In(berlin)
	var dates []string
	for d := 0; d <= h.model.day; d++ {
		dates = append(dates, first.AddDate(0, 0, d).Format(time.DateOnly))
	}
	for _, d := range dates {
		h.checkStats(t, d, d)
	}
	h.checkStats(t, dates[0], dates[len(dates)-1])
	tl := h.model.tills[0]
	for _, it := range propItems {
		got := h.node.must(t, 200, "GET", "/v1/stock/"+it.sku, tl.token, "", nil)
		on, err := decimal.NewFromString(fmt.Sprint(got["on_hand"]))
		if err != nil || !on.Equal(h.model.stock[it.id]) {
			t.Fatalf("stock of %s = %v, want %s (received − sold + returned)", it.sku, got["on_hand"], h.model.stock[it.id])
		}
	}
	if err := h.node.led.CheckConservation(); err != nil {
		t.Fatalf("conservation: %v", err)
	}
}

var berlin = func() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}()

// TestTillHistoriesMatchModel runs random histories of two tills through
// the real HTTP API on a real ledger (shifts, receipts in cash and card
// with discounts, weighed items and change, returns of their receipts,
// cash in and out, closes, retries of earlier requests, deliveries, a
// reopen of the ledger and server, the next business day) against a
// naive decimal model: every Z report, the sales statistics by seller,
// terminal and group for each business date, stock per item, and the
// ledger's conservation.
func TestTillHistoriesMatchModel(t *testing.T) {
	// A new seed each run: 5 histories in make test (each a ledger and
	// server of its own, a few seconds under -race), 100 longer ones with
	// -posbridge.long.
	checks, maxSteps := 5, 40
	if *posbridgeLong {
		checks, maxSteps = 100, 80
	}
	setRapidChecks(checks)
	router := specRouter(t)
	base := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp(base, "h")
		if err != nil {
			t.Fatal(err)
		}
		h := &propHistory{
			node: &propNode{dir: dir, clock: &clock{t: t0}, router: router},
			model: &propModel{
				tills: []*propTill{{term: "t1", token: tokenT1}, {term: "t2", token: tokenT2}},
				stock: map[string]decimal.Decimal{}, days: map[string]*mDay{},
			},
		}
		h.node.open(t, true)
		defer h.node.close(t)
		for _, tl := range h.model.tills {
			h.login(t, tl)
		}
		deliver := func() {
			it := rapid.SampledFrom(propItems).Draw(t, "delivered item")
			qty := decimal.NewFromInt(int64(rapid.IntRange(1, 50).Draw(t, "delivered")))
			if it.weighed {
				qty = decimal.New(int64(rapid.IntRange(1, 20000).Draw(t, "delivered grams")), -3)
			}
			h.node.deliver(t, it, qty)
			h.model.stock[it.id] = h.model.stock[it.id].Add(qty)
		}
		for range rapid.IntRange(0, 3).Draw(t, "deliveries") {
			deliver()
		}
		steps := rapid.IntRange(1, maxSteps).Draw(t, "steps")
		for range steps {
			h.node.clock.Add(time.Minute)
			tl := rapid.SampledFrom(h.model.tills).Draw(t, "till")
			k := rapid.IntRange(0, 99).Draw(t, "action")
			switch {
			case tl.open == nil && k < 85:
				h.openShift(t, tl)
			case k < 40:
				h.receipt(t, tl)
			case k < 55:
				h.ret(t, tl)
			case k < 65:
				h.cash(t, tl)
			case k < 75:
				h.closeShift(t, tl)
			case k < 88:
				h.retry(t)
			case k < 92:
				deliver()
			case k < 96:
				h.reopen(t)
			default:
				if h.model.day < 2 {
					h.nextDay(t)
				}
			}
		}
		// Close what is open, then check every view.
		for _, tl := range h.model.tills {
			if tl.open != nil {
				h.closeShift(t, tl)
			}
		}
		h.check(t)
	})
}

package posbridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// pricingRules are added to the fixture by the pricing tests: a VIP policy
// on drinks, 20% off milk, 3 colas for 2, a threshold discount, a bread
// roll with no price, and a price of cheese due at midnight, Berlin wall
// clock.
func pricingRules() []storeline.Record {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	return []storeline.Record{
		&storeline.PricePolicy{ID: "vip-drinks", Name: "VIP drinks", CustomerGroup: "vip", Percent: dec("10"), Groups: []storeline.GroupID{"g-drinks"}},
		&storeline.Promotion{ID: "milk-20", Name: "Milk week", Kind: storeline.PromoPercent, From: from, Items: []storeline.ItemID{"milk"}, Percent: dec("20")},
		&storeline.Promotion{ID: "cola-3for2", Name: "Cola 3 for 2", Kind: storeline.PromoNForM, From: from, Items: []storeline.ItemID{"cola"}, N: 3, M: 2},
		&storeline.Promotion{ID: "over-50", Name: "5 off 50", Kind: storeline.PromoThreshold, From: from, Threshold: dec("50"), Amount: dec("5")},
		&storeline.Item{ID: "roll", SKU: "ROLL", Name: "roll", Group: "g-food", Dept: "food", Unit: storeline.Piece, VATRate: dec("7")},
		// Midnight of 11 March in Berlin is 23:00 UTC on the 10th.
		&storeline.Price{List: "base", Item: "cheese", From: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), Price: dec("12.00")},
	}
}

func (e *env) addPricing() {
	e.t.Helper()
	if _, err := e.led.PutMaster(context.Background(), pricingRules()); err != nil {
		e.t.Fatalf("PutMaster: %v", err)
	}
}

func TestPriceBasket(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	before := e.led.Position()
	body := map[string]any{
		"card": "CARD0001",
		"lines": []map[string]any{
			line("sku", "MILK", "qty", "2"),
			line("barcode", colaUPC, "qty", "4"),
			line("barcode", wineEAN8, "qty", "5"),
			line("sku", "CHS", "qty", "0.5", "price", "10.00"), // a manual price
		},
	}
	m := e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: body}), 200)
	if m["customer_group"] != "vip" || m["currency"] != "EUR" {
		t.Fatalf("answer = %v", m)
	}
	ls := m["lines"].([]any)
	type want struct{ price, disc, total, rule, promos string }
	wants := []want{
		{"1.19", "0.48", "1.90", "price_list:base", "[milk-20 0.48]"},                      // 20% of 2.38 = 0.476, + threshold share 0
		{"1.80", "1.80", "5.40", "price_list:base policy:vip-drinks", "[cola-3for2 1.80]"}, // 2.00 -10%; one free
		{"7.19", "0.00", "35.95", "price_list:promo policy:vip-drinks", "[]"},              // promo list first, -10%
		{"10.00", "0.00", "5.00", "manual", "[]"},
	}
	for i, w := range wants {
		l := ls[i].(map[string]any)
		got := want{l["price"].(string), l["discount"].(string), l["total"].(string), l["rule"].(string), promos(l)}
		if got != w {
			t.Errorf("line %d = %+v, want %+v", i, got, w)
		}
	}
	// 1.90 + 5.40 + 35.95 = 43.25 of eligible lines: below the threshold.
	if m["total"] != "48.25" || m["discount"] != "2.28" || m["threshold_promotion"] != nil {
		t.Errorf("totals: %v %v %v", m["total"], m["discount"], m["threshold_promotion"])
	}
	if e.led.Position() != before {
		t.Errorf("pricing a basket moved the journal from %v to %v", before, e.led.Position())
	}

	// More wine reaches the threshold, and the same engine over the same
	// records in memory gives the same answer.
	body["lines"] = append(body["lines"].([]map[string]any), line("sku", "WINE", "qty", "1"))
	m = e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: body}), 200)
	if m["threshold_promotion"] != "over-50" || m["total"] != "50.44" {
		t.Errorf("with a sixth wine: total %v threshold %v, want 50.44 over-50", m["total"], m["threshold_promotion"])
	}
	mem := pricing.New(pricing.NewMemCatalog(append(fixture(), pricingRules()...)))
	var st storeline.Store
	if err := e.led.GetMaster(storeline.KindStore, "s1", &st); err != nil {
		t.Fatal(err)
	}
	res, err := mem.Price(pricing.Basket{Store: &st, At: t0, CustomerGroup: "vip", Lines: []pricing.BasketLine{
		{Item: "milk", Qty: dec("2")}, {Item: "cola", Qty: dec("4")}, {Item: "wine", Qty: dec("5")},
		{Item: "cheese", Qty: dec("0.5"), Manual: true, ManualPrice: dec("10")}, {Item: "wine", Qty: dec("1")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Total.StringFixed(2); got != m["total"] {
		t.Errorf("in memory total %s, over the ledger %v", got, m["total"])
	}
	for i, l := range res.Lines {
		if api := m["lines"].([]any)[i].(map[string]any); api["discount"] != l.Discount.StringFixed(2) || api["rule"] != l.Rule {
			t.Errorf("line %d: in memory %s %s, over the ledger %v %v", i, l.Discount, l.Rule, api["discount"], api["rule"])
		}
	}
}

func promos(l map[string]any) string {
	s := "["
	for i, p := range l["promotions"].([]any) {
		a := p.(map[string]any)
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s %s", a["promotion"], a["amount"])
	}
	return s + "]"
}

func TestPriceBasketWallClock(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	at := func(ts string) string {
		m := e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: map[string]any{
			"occurred_at": ts, "lines": []map[string]any{line("sku", "CHS", "qty", "1")},
		}}), 200)
		return m["lines"].([]any)[0].(map[string]any)["price"].(string)
	}
	// The new cheese price is due at midnight Berlin time: 23:00 UTC.
	if p := at("2026-03-10T22:59:59Z"); p != "15.90" {
		t.Errorf("at 23:59:59 Berlin: %s, want 15.90", p)
	}
	if p := at("2026-03-10T23:00:00Z"); p != "12.00" {
		t.Errorf("at midnight Berlin: %s, want 12.00", p)
	}
	// Without occurred_at, now (the server's clock, t0) is used.
	m := e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1")}}}), 200)
	if m["priced_at"] != "2026-03-10T09:00:00Z" {
		t.Errorf("priced_at = %v", m["priced_at"])
	}
}

func TestPriceBasketBadInput(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	before := e.led.Position()
	for _, tc := range []struct {
		body    any
		raw     string
		invalid bool
		status  int
		field   string
	}{
		{body: map[string]any{"lines": []map[string]any{}}, invalid: true, status: 422, field: "lines"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "NOPE", "qty", "1")}}, status: 422, field: "lines[0].sku"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1.5")}}, status: 422, field: "lines[0].qty"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "MILK")}}, status: 422, field: "lines[0].qty"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1", "price", "-1")}}, invalid: true, status: 422, field: "lines[0].price"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.001")}}, status: 422, field: "lines[0].price"},
		{body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1"), line("sku", "ROLL", "qty", "1")}}, status: 422, field: "lines[1].price"},
		{body: map[string]any{"card": "x", "lines": []map[string]any{line("sku", "MILK", "qty", "1")}}, status: 422, field: "card"},
		{raw: `{"lines":[{"sku":"MILK","qty":"1"}],"occurred_at":"yesterday"}`, invalid: true, status: 422, field: "occurred_at"},
		{raw: `{"lines":[{"sku":"MILK","qty":"1","discount":"1"}]}`, invalid: true, status: 400, field: "lines[0].discount"},
	} {
		r := e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: tc.body, raw: tc.raw, invalid: tc.invalid})
		e.problem(r, tc.status, tc.field)
	}
	e.problem(e.do(req{method: "POST", path: "/v1/baskets/price", body: map[string]any{"lines": []map[string]any{line("sku", "MILK", "qty", "1")}}, invalid: true}), 401, "")
	if e.led.Position() != before {
		t.Errorf("refused baskets moved the journal")
	}
}

// TestReceiptBeyondEngineBounds: a sale the engine will not price (more
// units than its bounds) is still recorded, unchecked: it has been paid.
func TestReceiptBeyondEngineBounds(t *testing.T) {
	e := newEnv(t)
	b := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "200000", "price", "1.19")}, []map[string]any{line("method", "cash", "amount", "238000.00")})
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)
	if ds := m["discrepancies"].([]any); len(ds) != 0 {
		t.Errorf("discrepancies %v, want none", ds)
	}
}

// TestReceiptDiscrepancyUsesEngine: the receipt check prices with the same
// engine as /v1/baskets/price, so a VIP's wine at the list price is a
// discrepancy (the policy takes 10% off) and an anonymous buyer's is not.
func TestReceiptDiscrepancyUsesEngine(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	for _, tc := range []struct {
		card  string
		price string
		want  int
	}{
		{"", "7.99", 0},
		{"CARD0001", "7.99", 1},
		{"CARD0001", "7.19", 0},
	} {
		b := sale(newID(), []map[string]any{line("sku", "WINE", "qty", "1", "price", tc.price)}, []map[string]any{line("method", "cash", "amount", "10.00")})
		if tc.card != "" {
			b["card"] = tc.card
		}
		m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)
		ds := m["discrepancies"].([]any)
		if len(ds) != tc.want {
			t.Errorf("card %q at %s: discrepancies %v, want %d", tc.card, tc.price, ds, tc.want)
		}
		if tc.want == 1 && len(ds) == 1 && ds[0].(map[string]any)["node_price"] != "7.19" {
			t.Errorf("node price %v, want 7.19", ds[0])
		}
	}
}

// TestReceiptDiscountDiscrepancy: a till that misses the milk promotion
// (or invents a discount) has its line recorded with both discounts; one
// that applies it has none.
func TestReceiptDiscountDiscrepancy(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	for _, tc := range []struct {
		disc string
		want int
	}{
		{"0.48", 0}, // 20% of 2 × 1.19
		{"0.00", 1}, // the promotion missed
		{"1.00", 1}, // too much taken off
	} {
		b := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19", "discount", tc.disc)}, []map[string]any{line("method", "cash", "amount", "10.00")})
		m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)
		ds := m["discrepancies"].([]any)
		if len(ds) != tc.want {
			t.Fatalf("discount %s: discrepancies %v, want %d", tc.disc, ds, tc.want)
		}
		if tc.want == 1 {
			d := ds[0].(map[string]any)
			if d["till_discount"] != tc.disc || d["node_discount"] != "0.48" || d["till_price"] != "1.19" || d["node_price"] != "1.19" {
				t.Errorf("discount %s: discrepancy %v", tc.disc, d)
			}
		}
	}
}

// TestCatalogFeedCarriesPricingRules: the tills' changes feed carries
// price policies, promotions and loyalty programmes with their fields.
func TestCatalogFeedCarriesPricingRules(t *testing.T) {
	e := newEnv(t)
	since := e.led.MasterVersion()
	e.addPricing()
	prog := &storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("1"),
		Rates: []storeline.AccrualRate{{Group: "g-drinks", Rate: dec("2")}}, PointValue: dec("0.01"), MaxShare: dec("50"), DailyOfflineCap: 500}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{prog}); err != nil {
		t.Fatal(err)
	}
	m := e.must(e.do(req{method: "GET", path: fmt.Sprintf("/v1/catalog/changes?since=%d&limit=100", since), token: tokenT1}), 200)
	got := map[string]map[string]any{}
	for _, c := range m["changes"].([]any) {
		c := c.(map[string]any)
		got[c["kind"].(string)+"/"+c["id"].(string)] = c["record"].(map[string]any)
	}
	pol, promo, cola, club := got["price_policy/vip-drinks"], got["promotion/milk-20"], got["promotion/cola-3for2"], got["loyalty_programme/club"]
	if pol == nil || promo == nil || cola == nil || club == nil {
		t.Fatalf("feed lacks a pricing rule: %v", got)
	}
	if pol["customer_group"] != "vip" || pol["percent"] != "10" {
		t.Errorf("policy = %v", pol)
	}
	if promo["kind"] != "percent" || promo["percent"] != "20" || promo["from"] != "2026-03-01T00:00:00" {
		t.Errorf("promotion = %v", promo)
	}
	if cola["n"] != float64(3) || cola["m"] != float64(2) {
		t.Errorf("n for m = %v", cola)
	}
	if club["point_value"] != "0.01" || club["max_share"] != "50" || club["daily_offline_cap"] != float64(500) || len(club["rates"].([]any)) != 1 {
		t.Errorf("programme = %v", club)
	}
}

// TestStaffCardPricing: a staff card at the till takes the programme's
// staff discount (shown as the line's rule), and the node's discrepancy
// check on a receipt with that card expects the staff price.
func TestStaffCardPricing(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	recs := []storeline.Record{
		&storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("1"), PointValue: dec("0.01"),
			MaxShare: dec("50"), StaffDiscount: dec("20")},
		&storeline.CardRecord{ID: "staff-alice", Code: "STAFF0001", Kind: storeline.StaffCard, Seller: "alice"},
	}
	if _, err := e.led.PutMaster(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"card": "STAFF0001", "lines": []map[string]any{line("sku", "WINE", "qty", "2"), line("sku", "MILK", "qty", "1")}}
	m := e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: body}), 200)
	if m["staff_card"] != true || m["customer_group"] != nil {
		t.Fatalf("answer = %v", m)
	}
	ls := m["lines"].([]any)
	wine, milk := ls[0].(map[string]any), ls[1].(map[string]any)
	// 7.99 × 0.8 = 6.392; the VIP policy on drinks is not a staff card's.
	if wine["price"] != "6.39" || wine["staff"] != "club" || wine["rule"] != "price_list:promo staff:club" || wine["policy"] != nil {
		t.Fatalf("wine line = %v", wine)
	}
	if milk["price"] != "0.95" || promos(milk) != "[milk-20 0.19]" { // 1.19 × 0.8, then 20% off
		t.Fatalf("milk line = %v", milk)
	}
	for _, tc := range []struct {
		price string
		want  int
	}{{"7.99", 1}, {"6.39", 0}} {
		b := sale(newID(), []map[string]any{line("sku", "WINE", "qty", "1", "price", tc.price)}, []map[string]any{line("method", "cash", "amount", "10.00")})
		b["card"] = "STAFF0001"
		ds := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)["discrepancies"].([]any)
		if len(ds) != tc.want {
			t.Errorf("staff receipt at %s: discrepancies %v, want %d", tc.price, ds, tc.want)
		}
	}
}

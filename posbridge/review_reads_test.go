package posbridge_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

func barcodePath(code string) string { return "/v1/barcodes/" + url.PathEscape(code) }

func TestReviewReadsBarcodes(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, code, gtin, qty, weight, serial string
	}{
		{"upc", colaUPC, "00" + colaUPC, "1", "", ""},
		{"upc as ean13", "0" + colaUPC, "00" + colaUPC, "1", "", ""},
		{"ean8", wineEAN8, "000000" + wineEAN8, "1", "", ""},
		{"pack", milkBox, "0" + milkBox, "12", "", ""},
		{"weighed", gtin("201234501250"), "0" + cheeseKey, "1.25", "1.25", ""},
		{"gs1 raw", "01" + shoeGTIN + "21ABC123\x1d91EE06\x1d92abc", shoeGTIN, "1", "", "ABC123"},
		{"gs1 serial first", "21ABC123\x1d01" + shoeGTIN, shoeGTIN, "1", "", "ABC123"},
		{"gs1 text GS", "]d2" + "21ABC123<GS>01" + shoeGTIN, shoeGTIN, "1", "", "ABC123"},
		{"gs1 trailing GS", "\x1d01" + shoeGTIN + "21ABC123\x1d", shoeGTIN, "1", "", "ABC123"},
		{"gs1 with batch and expiry", "]d2\x1d01" + shoeGTIN + "17261231" + "10LOT7\x1d21ABC123", shoeGTIN, "1", "", "ABC123"},
	}
	for _, c := range cases {
		m := e.must(e.do(req{method: "GET", path: barcodePath(c.code), token: tokenT1}), 200)
		if m["gtin"] != c.gtin || m["qty"] != c.qty || c.serial != "" && m["serial"] != c.serial || c.weight != "" && m["weight"] != c.weight {
			t.Errorf("%s: %v", c.name, m)
		}
	}
	for _, bad := range []string{gtin("201234501250")[:12] + "0", "20123450125", colaUPC[:11] + "0"} {
		if bad == gtin("201234501250") {
			continue
		}
		e.problem(e.do(req{method: "GET", path: barcodePath(bad), token: tokenT1}), 422, "code")
	}
}

func TestReviewReadsDeletedAndMovedBarcode(t *testing.T) {
	e := newEnv(t)
	e.must(e.do(req{method: "GET", path: barcodePath(milkBox), token: tokenT1}), 200)
	// milk loses its box barcode
	milk := &storeline.Item{ID: "milk", SKU: "MILK", Name: "milk", Group: "g-food", Dept: "food", Unit: storeline.Piece, VATRate: dec("10"),
		Barcodes: []storeline.ItemBarcode{{Code: milkEAN, Factor: decimal.NewFromInt(1)}}}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{milk}); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "GET", path: barcodePath(milkBox), token: tokenT1}), 404, "code")
	if _, err := e.led.DeleteMaster(context.Background(), storeline.KindItem, "milk"); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "GET", path: barcodePath(milkEAN), token: tokenT1}), 404, "code")
	e.problem(e.do(req{method: "GET", path: "/v1/items/MILK", token: tokenT1}), 404, "sku")
}

func TestReviewReadsPriceTimeZone(t *testing.T) {
	e := newEnv(t)
	// 23:30 UTC on the 10th is 00:30 on the 11th in Berlin.
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Price{List: "base", Item: "cola", From: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), Price: dec("2.50")},
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(23*time.Hour + 30*time.Minute - 9*time.Hour) // 2026-03-10T23:30Z
	m := e.must(e.do(req{method: "GET", path: "/v1/items/COLA", token: tokenT1}), 200)
	if m["price"] != "2.50" {
		t.Fatalf("price %v, want 2.50 (from midnight shop time)", m["price"])
	}
}

func TestReviewReadsMisc(t *testing.T) {
	e := newEnv(t)
	m := e.must(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT1}), 200)
	if ss := m["sellers"].([]any); len(ss) != 2 { // alice (s1), bob (every shop); not carol (s2)
		t.Errorf("sellers %v", m)
	}
	m = e.must(e.do(req{method: "GET", path: "/v1/messages", token: tokenT1}), 200)
	if ms := m["messages"].([]any); len(ms) != 1 || ms[0].(map[string]any)["id"] != "m1" {
		t.Errorf("messages %v", m)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/items/MILK", token: tokenX}), 401, "")
}

// The item's price is what the node charges for one base unit: a list
// price finer than the currency's cents is charged rounded (the basket
// pricing and a receipt's discrepancy check do), so that is what a till
// must be shown; a receipt carrying the finer price is refused.
func TestReviewReadsItemPriceIsChargedPrice(t *testing.T) {
	e := newEnv(t)
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Price{List: "base", Item: "cola", From: t0.Add(-time.Hour), Price: dec("1.195")},
	}); err != nil {
		t.Fatal(err)
	}
	b := e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1,
		body: map[string]any{"lines": []map[string]any{line("sku", "COLA", "qty", "1")}}}), 200)
	charged := b["lines"].([]any)[0].(map[string]any)["price"]
	m := e.must(e.do(req{method: "GET", path: "/v1/items/COLA", token: tokenT1}), 200)
	if m["price"] != charged {
		t.Fatalf("GET /v1/items/COLA shows price %v, the node charges %v", m["price"], charged)
	}
	s := e.must(e.do(req{method: "GET", path: barcodePath(colaUPC), token: tokenT1}), 200)
	if p := s["item"].(map[string]any)["price"]; p != charged {
		t.Fatalf("GET /v1/barcodes shows price %v, the node charges %v", p, charged)
	}
}

func TestReviewReadsWeighedLayouts(t *testing.T) {
	for _, c := range []struct {
		pattern string
		dec     int32
		item    string // the item's code with the weight zeroed
		scan    string
		weight  string
	}{
		{"PPWWWWWIIIIIC", 3, gtin("220000012345"), gtin("220125012345"), "1.25"},
		{"PPIIIIWWWWWWC", 3, gtin("231234000000"), gtin("231234001250"), "1.25"},
		{"PPIIIIIIWWWWC", 2, gtin("241234560000"), gtin("241234560125"), "1.25"},
	} {
		e := newEnvConfig(t, nil, func(cfg *posbridge.Config) {
			cfg.WeighedLayout = storeline.WeighedLayout{Prefixes: []string{"22", "23", "24"}, Pattern: c.pattern, WeightDecimals: c.dec}
		})
		it := &storeline.Item{ID: "ham", SKU: "HAM", Name: "ham", Group: "g-food", Dept: "food", Unit: storeline.Kg, VATRate: dec("10"), Weighed: true,
			Barcodes: []storeline.ItemBarcode{{Code: "0" + c.item, Factor: decimal.NewFromInt(1)}}}
		if _, err := e.led.PutMaster(context.Background(), []storeline.Record{it}); err != nil {
			t.Fatal(err)
		}
		m := e.must(e.do(req{method: "GET", path: barcodePath(c.scan), token: tokenT1}), 200)
		if m["kind"] != "weighed" || m["weight"] != c.weight || m["qty"] != c.weight || m["gtin"] != "0"+c.item {
			t.Errorf("%s: %v", c.pattern, m)
		}
		bad := c.scan[:12] + string('0'+(c.scan[12]-'0'+1)%10)
		e.problem(e.do(req{method: "GET", path: barcodePath(bad), token: tokenT1}), 422, "code")
	}
}

func TestReviewReadsStatsAndStock(t *testing.T) {
	e := newEnv(t)
	sess := e.login(tokenT1, "alice", "1234")
	id := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1,
		body: sale(id, []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19"), line("sku", "WINE", "qty", "1", "price", "7.99")},
			[]map[string]any{{"method": "cash", "amount": "10.37"}})}), 201)
	st := e.must(e.do(req{method: "GET", path: "/v1/stock/MILK", token: tokenT1}), 200)
	if st["on_hand"] != "-2" {
		t.Errorf("stock %v", st)
	}
	m := e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: sess}), 200)
	if m["total"].(map[string]any)["net"] != "10.37" {
		t.Errorf("stats %v", m)
	}
	m = e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-09&to=2026-03-09", token: tokenT1, session: sess}), 200)
	if m["total"].(map[string]any)["receipts"] != float64(0) {
		t.Errorf("stats of the 9th %v", m)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-09", token: tokenT1, session: sess}), 422, "to")
	e.problem(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-13-10&to=2026-03-09", token: tokenT1, session: sess, invalid: true}), 422, "from")
	e.problem(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10", token: tokenT1, session: sess, invalid: true}), 422, "to")
	e.problem(e.do(req{method: "GET", path: "/v1/receipts/" + id, token: tokenX}), 401, "")
}

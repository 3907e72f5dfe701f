package central_test

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
)

// TestStockReportOfOneItem: GET /v1/stock?item= reads the item's rows
// department by department, in the report's order, and no other item's
// (one whose ID the item's extends); an item that is no ID is a 400.
func TestStockReportOfOneItem(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s3", adminKey, map[string]any{
		"name": "Shop 3", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "a", "name": "A"}, map[string]any{"id": "a-b", "name": "A-B"}}, "price_lists": []string{"retail"},
	}, nil))
	for _, id := range []string{"m", "m2"} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/items/"+id, adminKey, map[string]any{
			"sku": "SKU-" + id, "name": id, "group": "food", "dept": "a", "unit": "pcs", "vat_rate": "10"}, nil))
	}
	createAndPost(t, a, "inv-m", map[string]any{"type": "incoming_invoice", "store": "s3", "supplier": "p1", "number": "M-1", "lines": lines(
		map[string]any{"item": "m", "qty": "10", "purchase_price": "1.00"},
		map[string]any{"item": "m2", "qty": "7", "purchase_price": "2.00"},
	)})
	createAndPost(t, a, "tr-m", map[string]any{"type": "transfer", "store": "s3", "from_dept": "a", "to_dept": "a-b", "lines": lines(
		map[string]any{"item": "m", "qty": "4"},
	)})
	type row struct {
		Dept, Item string
		Qty, Value decimal.Decimal
	}
	report := func(q string) []row {
		t.Helper()
		var body struct {
			Stock []row
			Next  string
		}
		r := mustOK(t, apiDo(t, "GET", a, "/v1/stock?store=s3"+q, viewerKey, nil, nil))
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		return body.Stock
	}
	got := report("&item=m")
	if len(got) != 2 || got[0].Dept != "a-b" || got[1].Dept != "a" || got[0].Item != "m" || got[1].Item != "m" ||
		!got[0].Qty.Equal(dec("4")) || !got[1].Qty.Equal(dec("6")) || !got[0].Value.IsPositive() || !got[1].Value.IsPositive() {
		t.Fatalf("stock of m = %+v, want a-b 4 then a 6, the whole report's order", got)
	}
	all := report("")
	var ofM []row
	for _, r := range all {
		if r.Item == "m" {
			ofM = append(ofM, r)
		}
	}
	same := func(x, y row) bool { return x.Dept == y.Dept && x.Qty.Equal(y.Qty) && x.Value.Equal(y.Value) }
	if len(ofM) != 2 || !same(ofM[0], got[0]) || !same(ofM[1], got[1]) {
		t.Fatalf("the whole report has m as %+v, the item's as %+v", ofM, got)
	}
	if got := report("&item=m&limit=1"); len(got) != 1 || got[0].Dept != "a-b" {
		t.Fatalf("first page of m = %+v", got)
	}
	if got := report("&item=m&after=a-b/m"); len(got) != 1 || got[0].Dept != "a" {
		t.Fatalf("page of m after a-b/m = %+v", got)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/stock?store=s3&item=bad/id", viewerKey, nil, nil), 400, "item")
}

package central_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview11ZeroRatedLineKeepsItsRate: a line whose VAT rate is an
// explicit 0% (a zero-rated supplier line) is booked at 0%, not at the
// item's own rate, whether head office typed the document or a till
// drafted it; a draft line without a rate still takes the item's.
func TestReview11ZeroRatedLineKeepsItsRate(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a) // milk and bread at 10%

	// Head office: 10 milk at 1.10 on a zero-rated line: 11.00 of stock,
	// no input VAT.
	d := createAndPost(t, a, "inv0", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10", "vat_rate": "0"})})
	if got := d.posting("vatin/s1/10", "cur:EUR"); !got.IsZero() {
		t.Fatalf("zero-rated line booked input VAT at 10%%: %s", got)
	}
	wantStock(t, a, "s1", "milk", "10", "11")
	doc := mustOK(t, apiDo(t, "GET", a, "/v1/documents/inv0", viewerKey, nil, nil)).json(t)
	if l := doc["lines"].([]any)[0].(map[string]any); l["vat_rate"] != "0" {
		t.Fatalf("document line's vat_rate = %v, want 0", l["vat_rate"])
	}

	// A till's draft: a zero-rated line of bread, and a line of milk with
	// no rate (the item's, 10%).
	zero := decimal.Zero
	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1",
		Lines: []storeline.DocLine{
			{Item: "bread", Unit: storeline.Piece, Qty: dec("10"), PurchasePrice: dec("1.10"), VATRate: &zero},
			{Item: "milk", Unit: storeline.Piece, Qty: dec("10"), PurchasePrice: dec("1.10")},
		}}
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)
	d = decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/invd", adminKey, map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}}, nil))
	if d.Status != "draft" {
		t.Fatalf("document from draft: %+v", d)
	}
	d = decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/invd/post", adminKey, nil, nil))
	if got := d.posting("vatin/s1/10", "cur:EUR"); !got.Equal(dec("1")) {
		t.Fatalf("input VAT at 10%% = %s, want 1.00 (the milk line's alone)", got)
	}
	wantStock(t, a, "s1", "bread", "10", "11")
	wantStock(t, a, "s1", "milk", "20", "21")
}

// TestReview11FromDeptTakesTheStock: a write-off, a stocktake and a
// supplier return naming from_dept move the stock of that department,
// not of the item's own; a line's own dept still wins.
func TestReview11FromDeptTakesTheStock(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "bakery", "name": "Bakery"}}, "price_lists": []string{"retail"},
	}, nil))
	// 10 milk in main, 10 in the bakery, at 1.00 each (1.10 with VAT).
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"},
			map[string]any{"item": "milk", "dept": "bakery", "qty": "10", "purchase_price": "1.10"})})
	want := func(what, dept, qty string) {
		t.Helper()
		if got := balances(t, a)["stock/s1/"+dept+"/milk item:milk"]; !got.Equal(dec(qty)) {
			t.Fatalf("after %s: milk in %s = %s, want %s", what, dept, got, qty)
		}
	}
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoilt", "from_dept": "bakery",
		"lines": lines(map[string]any{"item": "milk", "qty": "2"})})
	want("the write-off", "bakery", "8")
	want("the write-off", "main", "10")
	createAndPost(t, a, "st1", map[string]any{"type": "stocktake", "store": "s1", "from_dept": "bakery",
		"lines": lines(map[string]any{"item": "milk", "qty": "5"})})
	want("the stocktake", "bakery", "5")
	want("the stocktake", "main", "10")
	createAndPost(t, a, "sr1", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1", "from_dept": "bakery",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"}, map[string]any{"item": "milk", "dept": "main", "qty": "3"})})
	want("the supplier return", "bakery", "4")
	want("the supplier return", "main", "7")
}

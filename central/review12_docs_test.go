package central_test

import (
	"net/http"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview12DocsUnusedDeptFieldRefused: a from_dept or to_dept on a kind of
// document that has no use for it (an invoice lands in the line's or the
// item's department; production makes into the line's or the item's; a
// receipt lands by to_dept) is a 422 naming the field, and nothing is
// created, rather than dropped without a word.
func TestReview12DocsUnusedDeptFieldRefused(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "bakery", "name": "Bakery"}}, "price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/recipes/bread", adminKey, map[string]any{"yield": "1",
		"components": []any{map[string]any{"item": "flour", "qty": "1"}}}, nil))
	milk := lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})
	for _, c := range []struct {
		id, field string
		doc       map[string]any
	}{
		{"u1", "from_dept", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "from_dept": "bakery", "lines": milk}},
		{"u2", "to_dept", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "to_dept": "bakery", "lines": milk}},
		{"u3", "from_dept", map[string]any{"type": "production", "store": "s1", "from_dept": "bakery",
			"lines": lines(map[string]any{"item": "bread", "qty": "1"})}},
		{"u4", "to_dept", map[string]any{"type": "production", "store": "s1", "to_dept": "bakery",
			"lines": lines(map[string]any{"item": "bread", "qty": "1"})}},
		{"u5", "from_dept", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1", "from_dept": "main", "lines": milk}},
		{"u6", "to_dept", map[string]any{"type": "write_off", "store": "s1", "reason": "spoilt", "to_dept": "bakery", "lines": milk}},
		{"u7", "to_dept", map[string]any{"type": "stocktake", "store": "s1", "to_dept": "bakery", "lines": milk}},
		{"u8", "to_dept", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1", "to_dept": "bakery", "lines": milk}},
	} {
		problemOf(t, apiDo(t, "PUT", a, "/v1/documents/"+c.id, adminKey, c.doc, nil), http.StatusUnprocessableEntity, c.field)
		problemOf(t, apiDo(t, "GET", a, "/v1/documents/"+c.id, viewerKey, nil, nil), http.StatusNotFound, "")
	}
	// The kinds that use them still take them.
	createAndPost(t, a, "ok1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.10", "dept": "bakery"})})
	createAndPost(t, a, "ok2", map[string]any{"type": "transfer", "store": "s1", "from_dept": "bakery", "to_dept": "main",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})})
	createAndPost(t, a, "ok3", map[string]any{"type": "write_off", "store": "s1", "reason": "spoilt", "from_dept": "bakery",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})})
}

// TestReview12DocsDraftInOtherCurrencyRefused: a till's draft priced in a
// currency other than the one its shop keeps its books in (a draft made
// before the shop changed currency) is not made into a document whose
// prices are booked as if they were the shop's currency: 422, nothing made.
func TestReview12DocsDraftInOtherCurrencyRefused(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a) // s1 keeps EUR
	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Terminal: "till-1", Seller: "alice", Currency: "SEK", Supplier: "p1",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("10"), PurchasePrice: dec("11.00")}}}
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-sek", adminKey,
		map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}}, nil), http.StatusUnprocessableEntity, "draft.event")
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/inv-sek", viewerKey, nil, nil), http.StatusNotFound, "")
}

// TestReview12DocsDraftWithUnusedDeptRefused: a till's invoice draft that
// names a to_dept (the tills' API takes one) is not made into a document
// that drops it: 422 naming to_dept, nothing made.
func TestReview12DocsDraftWithUnusedDeptRefused(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1", ToDept: "main",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("10"), PurchasePrice: dec("1.10")}}}
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-td", adminKey,
		map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}}, nil), http.StatusUnprocessableEntity, "to_dept")
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/inv-td", viewerKey, nil, nil), http.StatusNotFound, "")
}

// TestReview12DocsWholeUnitsCheckedAtCreate: a document line of 1.5 pieces
// is refused when the document is typed (422 naming the line's qty,
// nothing made), not accepted as a draft that every post then refuses.
func TestReview12DocsWholeUnitsCheckedAtCreate(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/w1", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "flour", "qty": "0.5"}, map[string]any{"item": "milk", "qty": "1.5"})}, nil), http.StatusUnprocessableEntity, "lines[1].qty")
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/w1", viewerKey, nil, nil), http.StatusNotFound, "")
	createAndPost(t, a, "w2", map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "flour", "qty": "0.5"}, map[string]any{"item": "milk", "qty": "1"})})
}

package central_test

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewBO2CursorPastEnd: a journal cursor at the largest sequence
// number is past every event; a page after it is empty, not the epoch's
// first events again (seq+1 wrapped around to 0).
func TestReviewBO2CursorPastEnd(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 1, 3))
	var mg struct {
		Sales []map[string]any
		Next  string
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2026-11-29&to=2026-11-29", viewerKey, nil, nil)).body, &mg); err != nil {
		t.Fatal(err)
	}
	if len(mg.Sales) != 3 {
		t.Fatalf("margin: %d sales, want 3", len(mg.Sales))
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2026-11-29&to=2026-11-29&after=1/18446744073709551615", viewerKey, nil, nil)).body, &mg); err != nil {
		t.Fatal(err)
	}
	if len(mg.Sales) != 0 || mg.Next != "" {
		t.Fatalf("margin after 1/max: %d sales (next %q), want none", len(mg.Sales), mg.Next)
	}
}

// TestReviewBO2SaleFromTwoDepartments: one receipt sells an item from two
// departments of a shop; its cost is the moving average of all the units
// it takes, so selling the whole stock costs its whole value and leaves
// no value without units.
func TestReviewBO2SaleFromTwoDepartments(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "kiosk", "name": "Kiosk"}},
		"price_lists": []string{"retail"},
	}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"},
		map[string]any{"item": "milk", "dept": "kiosk", "qty": "5", "purchase_price": "1.10"})})
	wantStock(t, a, "s1", "milk", "10", "10")
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{
			{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec("5"), Price: dec("1.50"), VATRate: dec("10")},
			{Item: "milk", Dept: "kiosk", Unit: storeline.Piece, Qty: dec("5"), Price: dec("1.50"), VATRate: dec("10")},
		},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("15")}}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	pushOK(t, n.ReplicationAddr(), eventsPush(t, "s1", 1, r))
	if got := balances(t, a)["cogs/s1/milk cur:EUR"]; !got.Equal(decimal.RequireFromString("10")) {
		t.Fatalf("cogs/s1/milk = %s, want 10.00 (all 10 units at 1.00)", got)
	}
	wantStock(t, a, "s1", "milk", "0", "0")
}

// TestReviewBO2CancelledInvoiceLastCost: cancelling an invoice withdraws
// the last purchase cost it set, so goods sold or written off below zero
// stock are not priced at a purchase that never happened.
func TestReviewBO2CancelledInvoiceLastCost(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	// Entered at ten times the price by mistake, then cancelled.
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "11.00"})})
	cancelDoc(t, a, "inv2")
	wantStock(t, a, "s1", "milk", "10", "10")
	writeOffPastZero(t, a, "10")
	// 10 units at their average 1.00, the 11th, below zero, at the last
	// cost: 1.00.
	if got := balances(t, a)["writeoff/s1/milk cur:EUR"]; !got.Equal(dec("11")) {
		t.Fatalf("writeoff/s1/milk = %s, want 11.00 (the cancelled invoice's cost 10.00 is not the last cost)", got)
	}
}

// TestReviewBO2DocumentListFilters: a type or status the API does not
// know is a 400 naming the parameter, not an empty page that reads as
// "no such documents".
func TestReviewBO2DocumentListFilters(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})})
	problemOf(t, apiDo(t, "GET", a, "/v1/documents?status=Posted", viewerKey, nil, nil), 400, "status")
	problemOf(t, apiDo(t, "GET", a, "/v1/documents?type=invoice", viewerKey, nil, nil), 400, "type")
	if ds := mustOK(t, apiDo(t, "GET", a, "/v1/documents?status=posted&type=incoming_invoice", viewerKey, nil, nil)).json(t)["documents"].([]any); len(ds) != 1 {
		t.Fatalf("documents = %v, want inv1", ds)
	}
}

// TestReviewBO2BatchNameWithControl: a batch (or certificate) is part of
// the batch's key and of GET /v1/batches' cursor, whose separators are
// NUL and "/": a name holding a control character is refused (422), naming
// the line's field.
func TestReviewBO2BatchNameWithControl(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10", "batch": "L\x001"})}, nil), 422, "lines[0].batch")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv2", adminKey, map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10", "batch": "L1", "certificate": "C\n1"})}, nil), 422, "lines[0].certificate")
}

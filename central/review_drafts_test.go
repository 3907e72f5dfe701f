package central_test

import (
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewTransferToShopWithoutDept: a transfer to a shop that keeps
// neither the item's department nor the department it names is refused
// before the goods leave for transit, where no default receipt could take
// them.
func TestReviewTransferToShopWithoutDept(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "bakery", "name": "Bakery"}}, "price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/cake", adminKey, map[string]any{"id": "cake", "sku": "CAKE", "name": "Cake", "group": "food", "dept": "bakery", "unit": "pcs", "vat_rate": "10"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "cake", "qty": "5", "purchase_price": "1.10"}, map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"})})

	// s2 has no bakery: the cake would sit in transit/s1/s2 for good.
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/tr1", adminKey, map[string]any{"type": "transfer", "store": "s1", "to_store": "s2",
		"lines": lines(map[string]any{"item": "cake", "qty": "2"})}, nil), 422, "lines[0].item")
	// A department the receiving shop does not have.
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/tr2", adminKey, map[string]any{"type": "transfer", "store": "s1", "to_store": "s2", "to_dept": "nope",
		"lines": lines(map[string]any{"item": "milk", "qty": "2"})}, nil), 422, "to_dept")
	// Into a department it has: allowed, and received there.
	createAndPost(t, a, "tr3", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2", "to_dept": "main",
		"lines": lines(map[string]any{"item": "cake", "qty": "2"})})
	createAndPost(t, a, "rc3", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr3", "to_dept": "main",
		"lines": lines(map[string]any{"item": "cake", "qty": "2"})})
	// The same check from a till's draft.
	dr := &storeline.DocumentDraft{Type: storeline.DocTransfer, ToStore: "s2", Terminal: "till-1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.DocLine{{Item: "cake", Unit: storeline.Piece, Qty: dec("1")}}}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/trd", adminKey, map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}}, nil), 422, "lines[0].item")
}

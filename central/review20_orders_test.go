package central_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview20OrderCancelAfterInvoiceOfOtherItems: an invoice naming an
// order but bringing none of its items leaves the order having received
// nothing (status open), so the order may still be cancelled, as the
// spec says ("only while it received nothing"); it was a 409 naming the
// invoice as goods received.
func TestReview20OrderCancelAfterInvoiceOfOtherItems(t *testing.T) {
	a := ordersNode(t)
	createOrder(t, a, orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "10"}))
	createAndPost(t, a, "inv1", invoice("s1", "p1", "o1",
		map[string]any{"item": "bread", "qty": "3", "purchase_price": "0.50"})) // not on the order
	getOrder(t, a, "o1").wantLines(t, "open", "milk 10/0/10")

	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o1/cancel", adminKey, map[string]any{"reason": "ordered by mistake"}, nil),
		http.StatusOK).wantLines(t, "cancelled", "milk 10/0/0")

	// An order that did receive goods is still not cancelled.
	createOrder(t, a, orderBody("o2", "s1", "p1", map[string]any{"item": "milk", "qty": "10"}))
	createAndPost(t, a, "inv2", invoice("s1", "p1", "o2",
		map[string]any{"item": "bread", "qty": "1", "purchase_price": "0.50"}))
	createAndPost(t, a, "inv3", invoice("s1", "p1", "o2",
		map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.00"}))
	problemOf(t, apiDo(t, "POST", a, "/v1/orders/o2/cancel", adminKey, map[string]any{"reason": "x"}, nil), http.StatusConflict, "status")
	getOrder(t, a, "o2").wantLines(t, "partial", "milk 10/1/9")
}

// TestReview20OrderOnDocumentFromTillDraft: the shop that receives the
// goods drafts the invoice at its till; head office makes the document
// of the draft and names the order it fulfils. The order was dropped
// without a word (the document is the draft's copy), so the invoice
// posted and the order never received anything.
func TestReview20OrderOnDocumentFromTillDraft(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l >= 4
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))
	createOrder(t, a, orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "24"}))

	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Number: "D-8", Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Packs: dec("3"), PackFactor: dec("6"), PurchasePrice: dec("0.55")}}}
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)
	ref := map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}, "order": "o1"}
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv-d8", adminKey, ref, nil))
	if got := getDocField(t, a, "inv-d8", "order"); got != "o1" {
		t.Fatalf("document made of the draft names order %v, want o1", got)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv-d8/post", adminKey, nil, nil))
	getOrder(t, a, "o1").wantLines(t, "partial", "milk 24/18/6")

	// An order the draft's invoice may not fulfil is refused naming order.
	createOrder(t, a, orderBody("o2", "s1", "p2", map[string]any{"item": "milk", "qty": "1"}))
	dr.Number = "D-9"
	id = pushDraft(t, n.ReplicationAddr(), "s1", 2, dr)
	ref = map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}, "order": "o2"}
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-d9", adminKey, ref, nil), http.StatusUnprocessableEntity, "order")
}

package central_test

import (
	"testing"

	"github.com/storeline/storeline/central"
)

// TestReview25ShopOrdersPageBoundedByLines: a page of a shop's orders
// stops before the order that would take it past the bound on order
// lines (whatever the limit), so a page of many long orders never grows
// past what a node takes in one answer; the rest follow from its next.
// A single order longer than the bound still makes a page of its own.
func TestReview25ShopOrdersPageBoundedByLines(t *testing.T) {
	central.SetShopOrderLines(t, 2)
	n := shopOrdersNode(t)
	a, repl := n.APIAddr(), n.ReplicationAddr()
	for _, id := range []string{"b1", "b2", "b3"} {
		createOrder(t, a, milkOrder(id, "s1", "2"))
	}
	createOrder(t, a, orderBody("b4", "s1", "p1",
		map[string]any{"item": "milk", "qty": "1"}, map[string]any{"item": "bread", "qty": "1"},
		map[string]any{"item": "flour", "qty": "1"}))
	wantPage(t, shopOrders(t, repl, "s1", "", 10), "b1 open p1/Dairy [milk 2/0/2]", "b2 open p1/Dairy [milk 2/0/2]", "next=b2")
	wantPage(t, shopOrders(t, repl, "s1", "b2", 10), "b3 open p1/Dairy [milk 2/0/2]", "next=b3")
	p := shopOrders(t, repl, "s1", "b3", 10)
	if len(p.Orders) != 1 || p.Orders[0].ID != "b4" || len(p.Orders[0].Lines) != 3 || p.Next != "" {
		t.Fatalf("after b3: %+v, want b4 alone with its 3 lines and no next", p)
	}
}

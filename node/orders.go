package node

import (
	"context"

	"github.com/storeline/storeline/posbridge"
	"github.com/storeline/storeline/replication"
)

// The node's side of the shop's expected deliveries
// (posbridge.OrderSource): head office's purchase orders for the shop,
// asked of central's replication listener (replication.PathShopOrders)
// with the shop's credentials whenever a till lists them. Nothing is
// kept: offline the tills are told head office cannot be reached.
//
// The call is made while a till waits, as a loyalty call is: the same
// centralCaller, bounded by Replication.LoyaltyTimeout.

// maxOrdersAnswer bounds a page from central: up to
// replication.MaxShopOrders orders, each with its lines.
const maxOrdersAnswer = 32 << 20

// ordersClient implements posbridge.OrderSource over central's
// replication listener.
type ordersClient struct{ central *centralCaller }

var _ posbridge.OrderSource = (*ordersClient)(nil)

func (n *Node) ordersClient() (*ordersClient, error) {
	c, err := n.newCentralCaller("node.orders", maxOrdersAnswer)
	if err != nil {
		return nil, err
	}
	return &ordersClient{central: c}, nil
}

// ShopOrders asks central for a page of the shop's expected deliveries;
// failing to reach it is Unavailable.
func (c *ordersClient) ShopOrders(ctx context.Context, after string, limit int) (posbridge.ShopOrdersPage, error) {
	var page replication.ShopOrdersPage
	if err := c.central.call(ctx, replication.PathShopOrders, replication.ShopOrdersRequest{After: after, Limit: limit}, &page); err != nil {
		return posbridge.ShopOrdersPage{}, err
	}
	return pageOf(page), nil
}

// pageOf is central's page as posbridge declares it.
func pageOf(p replication.ShopOrdersPage) posbridge.ShopOrdersPage {
	out := posbridge.ShopOrdersPage{Orders: make([]posbridge.ShopOrder, 0, len(p.Orders)), Next: p.Next}
	for _, o := range p.Orders {
		po := posbridge.ShopOrder{ID: o.ID, Supplier: o.Supplier, SupplierName: o.SupplierName, ExpectedOn: o.ExpectedOn,
			Note: o.Note, Status: o.Status, Lines: make([]posbridge.ShopOrderLine, len(o.Lines))}
		for i, l := range o.Lines {
			po.Lines[i] = posbridge.ShopOrderLine(l)
		}
		out.Orders = append(out.Orders, po)
	}
	return out
}

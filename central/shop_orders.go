package central

// A shop's expected deliveries: the purchase orders head office placed
// for it (orders.go) that still expect goods, as the shop asks for them
// on the replication listener (replication.PathShopOrders), so its tills
// draft the incoming invoice naming its order (storeline.DocumentDraft's
// Order; putDocument carries it into the document made of the draft).
//
//  1. A shop sees its own store's orders only (the store its token or
//     certificate authenticates), and of them the open and partial ones:
//     a received, closed or cancelled order expects nothing more.
//  2. The read is this node's state, as the loyalty points read is: a
//     follower may answer an order a moment late, never a wrong one, and
//     the shop's call never waits on the leader.
//  3. A page reads the store's open orders from their index (orders.go
//     invariant 7: poOpen), so it examines none of other stores' orders
//     nor the store's finished ones. Before the index is complete (state
//     of an older build, until order writes have indexed it all) it scans from
//     After at most maxReportScan orders of every store, as it did, and,
//     when that bound stops it, answers what it found with Next where it
//     stopped: one call costs a bounded read however many orders the
//     chain holds.

import (
	"fmt"
	"net/http"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// serveShopOrders answers POST replication.PathShopOrders for the
// calling store (the loyalty handler's serve gives it the caller).
func (n *Node) serveShopOrders(_ *http.Request, caller storeline.StoreID, body []byte) (any, error) {
	var q replication.ShopOrdersRequest
	if err := replication.Decode(body, &q); err != nil {
		return nil, err
	}
	return n.ShopOrders(caller, q)
}

// ShopOrders returns a page of store's orders that still expect goods,
// in ID order after q.After, from this node's state (invariants 1-3).
func (n *Node) ShopOrders(store storeline.StoreID, q replication.ShopOrdersRequest) (replication.ShopOrdersPage, error) {
	page := replication.ShopOrdersPage{Orders: []replication.ShopOrder{}}
	if q.Limit < 1 || q.Limit > replication.MaxShopOrders {
		return page, storeline.Invalidf("limit", "%d: want 1 to %d orders a page", q.Limit, replication.MaxShopOrders)
	}
	if q.After != "" {
		if err := storeline.CheckID("after", q.After); err != nil {
			return page, err
		}
	}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		rows, next, err := storeOrderPage(rt, store, true, q.After, q.Limit, expectsGoods, func(o *purchaseOrder) (any, bool) {
			status := o.status()
			if !expectsGoods(status) {
				return nil, false
			}
			return shopOrderOf(o, status), true
		})
		if err != nil {
			return err
		}
		// Names from the same snapshot as the orders, each supplier's
		// read once a page.
		names := map[storeline.SupplierID]string{}
		lines := 0
		for i, row := range rows {
			so := row.(replication.ShopOrder)
			// A page of many long orders stops at maxShopOrderLines, so
			// it stays well within what a node takes in one answer; the
			// rest follow from its last order.
			if lines += len(so.Lines); i > 0 && lines > maxShopOrderLines {
				next = page.Orders[i-1].ID
				break
			}
			name, ok := names[so.Supplier]
			if !ok {
				if name, err = supplierName(rt, so.Supplier); err != nil {
					return err
				}
				names[so.Supplier] = name
			}
			so.SupplierName = name
			page.Orders = append(page.Orders, so)
		}
		page.Next = next
		return nil
	})
	if err != nil {
		return replication.ShopOrdersPage{}, fmt.Errorf("central: orders of store %s: %w", store, err)
	}
	return page, nil
}

// maxShopOrderLines bounds the order lines of one page of a shop's
// orders: about 2 MB on the wire.
var maxShopOrderLines = 20000

// supplierName returns the supplier's name in the master data, "" for a
// supplier it no longer holds: the order is still expected.
func supplierName(rt *ledger.ReplicaTxn, id storeline.SupplierID) (string, error) {
	var s storeline.Supplier
	ok, err := rt.GetMaster(storeline.KindSupplier, string(id), &s)
	if err != nil || !ok {
		return "", err
	}
	return s.Name, nil
}

// shopOrderOf is order o as the shop is told of it (status is o's), but
// for its supplier's name.
func shopOrderOf(o *purchaseOrder, status string) replication.ShopOrder {
	so := replication.ShopOrder{ID: o.ID, Supplier: o.Supplier, ExpectedOn: o.ExpectedOn,
		Note: o.Note, Status: status, Lines: make([]replication.ShopOrderLine, len(o.Lines))}
	for i, l := range o.Lines {
		received := o.received(i)
		// More delivered than ordered leaves nothing outstanding, never
		// a negative amount.
		outstanding := decimal.Max(l.Qty.Sub(received), decimal.Zero)
		so.Lines[i] = replication.ShopOrderLine{Item: l.Item, Ordered: l.Qty, Received: received, Outstanding: outstanding}
	}
	return so
}

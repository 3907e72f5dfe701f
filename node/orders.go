package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
	"github.com/storeline/storeline/replication"
)

// The node's side of the shop's expected deliveries
// (posbridge.OrderSource): head office's purchase orders for the shop,
// asked of central's replication listener (replication.PathShopOrders)
// with the shop's credentials whenever a till lists them.
//
// The call is made while a till waits, as a loyalty call is: the same
// centralCaller, bounded by Replication.LoyaltyTimeout.
//
// The shop also keeps a copy, so a receiving clerk still sees what is
// coming while head office cannot be reached: every
// Config.OrdersCopyInterval (and once at start) the node reads the whole
// list from central and stores it in the ledger's metadata, durable and
// whole (it replaces the previous copy in one write, never merges with
// it). Only when head office cannot be reached do the tills get the copy,
// marked with the time it was taken; a list too big to copy is not
// copied (the previous copy stays, with its own time). Orders are head
// office's: the copy is never changed at the shop.

// maxOrdersAnswer bounds a page from central: up to
// replication.MaxShopOrders orders, each with its lines.
const maxOrdersAnswer = 32 << 20

const (
	// DefaultOrdersCopyInterval is how often the node refreshes its copy
	// of the shop's orders when the configuration leaves it zero.
	DefaultOrdersCopyInterval = 5 * time.Minute
	// orderCopyKey is the copy's ledger metadata key.
	orderCopyKey = "orders.copy"
	// maxOrderCopyBytes bounds the copy: one metadata write, whose key
	// and value the ledger bounds together (some ten thousand order
	// lines).
	maxOrderCopyBytes = ledger.MaxEventBytes - len(orderCopyKey)
	// maxOrderCopyPages bounds the pages one refresh reads.
	maxOrderCopyPages = 64
)

// orderCopy is the shop's copy of its orders as central last listed them.
type orderCopy struct {
	AsOf   time.Time               `msgpack:"t"`
	Orders []replication.ShopOrder `msgpack:"o"` // in ID order
}

// ordersClient implements posbridge.OrderSource over central's
// replication listener, falling back on the shop's copy.
type ordersClient struct {
	central *centralCaller
	led     *ledger.Ledger
	now     func() time.Time
}

var _ posbridge.OrderSource = (*ordersClient)(nil)

func (n *Node) ordersClient() (*ordersClient, error) {
	c, err := n.newCentralCaller("node.orders", maxOrdersAnswer)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if n.cfg.Clock != nil {
		now = n.cfg.Clock
	}
	return &ordersClient{central: c, led: n.ledger, now: now}, nil
}

// ShopOrders asks central for a page of the shop's expected deliveries.
// When central cannot be reached it answers the page from the shop's copy
// (AsOf set); with no copy, the failure (Unavailable) stands.
func (c *ordersClient) ShopOrders(ctx context.Context, after string, limit int) (posbridge.ShopOrdersPage, error) {
	var page replication.ShopOrdersPage
	err := c.central.call(ctx, replication.PathShopOrders, replication.ShopOrdersRequest{After: after, Limit: limit}, &page)
	if err == nil {
		return pageOf(page), nil
	}
	if storeline.KindOf(err) != storeline.Unavailable {
		return posbridge.ShopOrdersPage{}, err
	}
	cp, ok, cerr := c.copy()
	if cerr != nil {
		return posbridge.ShopOrdersPage{}, fmt.Errorf("%w (and the shop's copy of its orders: %v)", err, cerr)
	}
	if !ok {
		return posbridge.ShopOrdersPage{}, err
	}
	return cp.page(after, limit), nil
}

// copy returns the shop's copy of its orders, if it has one.
func (c *ordersClient) copy() (orderCopy, bool, error) {
	v, ok, err := c.led.Meta(orderCopyKey)
	if err != nil || !ok {
		return orderCopy{}, false, err
	}
	var cp orderCopy
	if err := msgpack.Unmarshal(v, &cp); err != nil {
		return orderCopy{}, false, fmt.Errorf("node: decode the copy of the shop's orders: %w", err)
	}
	return cp, true, nil
}

// page is the copy's page of up to limit orders after after, in ID order
// as central pages them.
func (cp orderCopy) page(after string, limit int) posbridge.ShopOrdersPage {
	limit = max(limit, 1)
	i := 0
	if after != "" {
		i, _ = slices.BinarySearchFunc(cp.Orders, after, func(o replication.ShopOrder, id string) int {
			return strings.Compare(o.ID, id)
		})
		if i < len(cp.Orders) && cp.Orders[i].ID == after {
			i++
		}
	}
	end := min(i+limit, len(cp.Orders))
	p := replication.ShopOrdersPage{Orders: cp.Orders[i:end]}
	if end < len(cp.Orders) {
		p.Next = cp.Orders[end-1].ID
	}
	out := pageOf(p)
	out.AsOf = cp.AsOf
	return out
}

// refresh reads every page of the shop's orders from central and replaces
// the copy with them in one durable write. A failure leaves the previous
// copy as it was.
func (c *ordersClient) refresh(ctx context.Context) error {
	taken := c.now().UTC()
	var all []replication.ShopOrder
	after := ""
	for pages := 0; ; pages++ {
		if pages == maxOrderCopyPages {
			return fmt.Errorf("node: copy of the shop's orders: more than %d pages; the previous copy is kept", maxOrderCopyPages)
		}
		var p replication.ShopOrdersPage
		if err := c.central.call(ctx, replication.PathShopOrders, replication.ShopOrdersRequest{After: after, Limit: replication.MaxShopOrders}, &p); err != nil {
			return err
		}
		all = append(all, p.Orders...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	slices.SortFunc(all, func(a, b replication.ShopOrder) int { return strings.Compare(a.ID, b.ID) })
	all = slices.CompactFunc(all, func(a, b replication.ShopOrder) bool { return a.ID == b.ID })
	enc, err := msgpack.Marshal(orderCopy{AsOf: taken, Orders: all})
	if err != nil {
		return fmt.Errorf("node: encode the copy of the shop's orders: %w", err)
	}
	if len(enc) > maxOrderCopyBytes {
		return fmt.Errorf("node: copy of the shop's orders: %d orders take %d bytes, over %d; the previous copy is kept", len(all), len(enc), maxOrderCopyBytes)
	}
	return c.led.SetMeta(ctx, orderCopyKey, enc)
}

func (c Config) ordersCopyInterval() time.Duration {
	if c.OrdersCopyInterval == 0 {
		return DefaultOrdersCopyInterval
	}
	return c.OrdersCopyInterval
}

// startOrdersCopy starts the refresh of the shop's copy of its orders: at
// once, then every Config.OrdersCopyInterval; not for a standalone node.
func (n *Node) startOrdersCopy() {
	if n.orders == nil {
		return
	}
	every := n.cfg.ordersCopyInterval()
	n.ordersCopy = n.startPeriodicFrom("orders: copy", 0, every, max(every, time.Minute), n.orders.refresh)
}

func (n *Node) stopOrdersCopy() {
	n.ordersCopy.end()
	n.ordersCopy = nil
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

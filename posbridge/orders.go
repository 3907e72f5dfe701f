package posbridge

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Purchase orders as the shop is told of them (GET /v1/orders): head
// office's orders for this shop that still expect goods, so a till knows
// what is coming and drafts the incoming invoice naming its order. They
// are head office's alone: the node asks on each request (Config.Orders).
// When head office cannot be reached, the node answers from the copy it
// keeps (refreshed every few minutes), and the answer says so: source
// "copy" and the time the copy was taken (as_of); with no copy it is a
// 503 saying so, never a guessed list. A draft naming an
// order (drafts.go) asks nothing: the shop drafts offline, and head
// office checks the order when it makes the document.

const (
	// Default and largest page of GET /v1/orders; the largest is head
	// office's (replication.MaxShopOrders).
	defaultOrderPage = 100
	maxOrderPage     = 500
)

// OrderSource is head office's purchase orders for this shop as the node
// reaches them; nil for a standalone node.
type OrderSource interface {
	// ShopOrders returns up to limit of the shop's orders still
	// expecting goods, in ID order after after, and the cursor of the
	// next page ("" on the last; head office bounds its work per page,
	// so a short or empty page may still have one). While head office
	// cannot be reached it may answer from the shop's copy (AsOf set);
	// an error of kind Unavailable means it has neither.
	ShopOrders(ctx context.Context, after string, limit int) (ShopOrdersPage, error)
}

// ShopOrdersPage is one page of a shop's orders; the fields of
// replication.ShopOrdersPage, which node converts.
type ShopOrdersPage struct {
	Orders []ShopOrder
	Next   string
	// AsOf is when the shop's copy the page comes from was taken; zero
	// when head office answered.
	AsOf time.Time
}

// ShopOrder is one purchase order for the shop; Status is "open" or
// "partial".
type ShopOrder struct {
	ID           string
	Supplier     storeline.SupplierID
	SupplierName string
	ExpectedOn   storeline.Date
	Note         string
	Status       string
	Lines        []ShopOrderLine
}

// ShopOrderLine is an item of an order, in base units.
type ShopOrderLine struct {
	Item                           storeline.ItemID
	Ordered, Received, Outstanding decimal.Decimal
}

// errNoHeadOffice answers a standalone shop: a 404, not a 503, since
// asking again cannot help.
var errNoHeadOffice = storeline.Errorf(storeline.NotFound, "", "this shop has no head office: nobody orders goods for it")

// errHeadOfficeUnreachable replaces the link's own error (logged) in the
// answer: the till's operator can act on the first, not the second.
var errHeadOfficeUnreachable = storeline.Errorf(storeline.Unavailable, "", "head office cannot be reached now and the shop has no copy of its orders yet: try again later")

type orderLineOut struct {
	Item        storeline.ItemID `json:"item"`
	SKU         string           `json:"sku,omitempty"` // none while the catalogue lacks the item
	Ordered     string           `json:"ordered"`
	Received    string           `json:"received"`
	Outstanding string           `json:"outstanding"`
}

type orderOut struct {
	ID           string               `json:"id"`
	Supplier     storeline.SupplierID `json:"supplier"`
	SupplierName string               `json:"supplier_name,omitempty"`
	ExpectedOn   storeline.Date       `json:"expected_on,omitempty"`
	Note         string               `json:"note,omitempty"`
	Status       string               `json:"status"`
	Lines        []orderLineOut       `json:"lines"`
}

type ordersOut struct {
	Orders []orderOut `json:"orders"`
	Next   string     `json:"next,omitempty"`
	// Source is "head_office", or "copy" when head office could not be
	// reached and the shop's copy taken at AsOf answered.
	Source string `json:"source"`
	AsOf   string `json:"as_of,omitempty"`
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	limit := defaultOrderPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxOrderPage {
			return storeline.Invalidf("limit", "limit %q is not a number from 1 to %d", v, maxOrderPage)
		}
		limit = n
	}
	after := q.Get("after")
	if after != "" {
		if err := storeline.CheckID("after", after); err != nil {
			return err
		}
	}
	if s.cfg.Orders == nil {
		return errNoHeadOffice
	}
	page, err := s.cfg.Orders.ShopOrders(r.Context(), after, limit)
	if storeline.KindOf(err) == storeline.Unavailable {
		s.log.Warn("posbridge: head office's orders", "err", err)
		return errHeadOfficeUnreachable
	}
	if err != nil {
		return err
	}
	out := ordersOut{Orders: make([]orderOut, 0, len(page.Orders)), Next: page.Next, Source: "head_office"}
	if !page.AsOf.IsZero() {
		out.Source, out.AsOf = "copy", page.AsOf.UTC().Format(time.RFC3339)
	}
	skus := map[storeline.ItemID]string{}
	for _, o := range page.Orders {
		oo := orderOut{ID: o.ID, Supplier: o.Supplier, SupplierName: o.SupplierName, ExpectedOn: o.ExpectedOn,
			Note: o.Note, Status: o.Status, Lines: make([]orderLineOut, 0, len(o.Lines))}
		for _, l := range o.Lines {
			sku, ok := skus[l.Item]
			if !ok {
				if sku, err = s.skuOf(l.Item); err != nil {
					return err
				}
				skus[l.Item] = sku
			}
			oo.Lines = append(oo.Lines, orderLineOut{Item: l.Item, SKU: sku,
				Ordered: qtyStr(l.Ordered), Received: qtyStr(l.Received), Outstanding: qtyStr(l.Outstanding)})
		}
		out.Orders = append(out.Orders, oo)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// skuOf is the item's SKU in the shop's catalogue, "" while it holds no
// such item (head office ordered one not yet replicated here).
func (s *Server) skuOf(id storeline.ItemID) (string, error) {
	var it storeline.Item
	err := s.led.GetMaster(storeline.KindItem, string(id), &it)
	if errors.Is(err, storeline.NotFound) {
		return "", nil
	}
	return it.SKU, err
}

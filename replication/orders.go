package replication

import (
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Purchase orders as a shop is told of them: head office's orders for the
// shop that still expect goods (open or partly received), so the shop
// knows what is coming and drafts the incoming invoice naming its order.
// Orders are head office's (central's orders.go); the shop asks for them
// on the replication listener, authenticated as it pushes, and keeps
// nothing: offline it has no answer.

// PathShopOrders is the shop's call for its expected deliveries (POST, a
// ShopOrdersRequest, answered with a ShopOrdersPage).
const PathShopOrders = "/v1/shop/orders"

// MaxShopOrders bounds one page of ShopOrdersPage.
const MaxShopOrders = 500

// ShopOrdersRequest asks for the calling shop's orders that still expect
// goods, in ID order after After, at most Limit (1..MaxShopOrders).
type ShopOrdersRequest struct {
	After string `msgpack:"a,omitempty"`
	Limit int    `msgpack:"l"`
}

// ShopOrdersPage is one page of them; Next is the cursor of the next
// page, empty on the last.
type ShopOrdersPage struct {
	Orders []ShopOrder `msgpack:"o"`
	Next   string      `msgpack:"n,omitempty"`
}

// ShopOrder is one purchase order for the shop: its status is "open" or
// "partial".
type ShopOrder struct {
	ID           string               `msgpack:"i"`
	Supplier     storeline.SupplierID `msgpack:"s"`
	SupplierName string               `msgpack:"sn,omitempty"`
	ExpectedOn   storeline.Date       `msgpack:"e,omitempty"`
	Note         string               `msgpack:"no,omitempty"`
	Status       string               `msgpack:"st"`
	Lines        []ShopOrderLine      `msgpack:"ls"`
}

// ShopOrderLine is an item of the order, in base units.
type ShopOrderLine struct {
	Item        storeline.ItemID `msgpack:"i"`
	Ordered     decimal.Decimal  `msgpack:"o"`
	Received    decimal.Decimal  `msgpack:"r"`
	Outstanding decimal.Decimal  `msgpack:"u"`
}

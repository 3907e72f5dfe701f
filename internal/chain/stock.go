package chain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// The demo's goods come with a purchase cost: before the tills start, head
// office orders each shop's opening stock from the supplier (a purchase
// order, POST /v1/orders) and receives it on incoming invoices naming the
// order (central's back-office API: PUT /v1/documents/{id}, then POST
// .../post), one line per item of the catalogue, which leave every order
// received in full, so every shop's stock has a value at cost and
// central costs every sale the tills make at the moving average. A posted
// document is one central-authored event; replication carries it down to
// the shop whose accounts it touches, and the closing check expects each
// shop's stock to be what the invoices brought less the wholesale
// (wholesale.go) and what the tills sold.

// Supplier is the demo's supplier of every item.
const Supplier = "demo-wholesale"

// invoiceQty is the units of each item an opening invoice brings (kilos
// of goods sold by weight): enough that most items never run out in a
// demo's minute. An item that does goes below zero and its sales are
// costed at its last purchase cost, as central does for any shop.
var invoiceQty = map[bool]decimal.Decimal{false: decimal.NewFromInt(1000), true: decimal.NewFromInt(500)}

// purchaseShare is the purchase price as a share of the base list price
// (VAT included in both).
var purchaseShare = decimal.RequireFromString("0.6")

// openingLines returns the lines of the opening invoices, the same for
// every shop: each item with a base price, bought at purchaseShare of it.
func (c *Chain) openingLines() []map[string]any {
	base := map[storeline.ItemID]decimal.Decimal{}
	for _, p := range c.data.Prices {
		if p.List == "base" && p.Price.IsPositive() {
			base[p.Item] = p.Price
		}
	}
	var lines []map[string]any
	for _, it := range c.data.Items {
		price, ok := base[it.ID]
		if !ok {
			continue
		}
		cost := price.Mul(purchaseShare).Round(2)
		if !cost.IsPositive() {
			cost = decimal.New(1, -2)
		}
		lines = append(lines, map[string]any{
			"item": string(it.ID), "qty": invoiceQty[it.Unit.Fractional()].String(), "purchase_price": cost.StringFixed(2),
		})
	}
	return lines
}

// receiveGoods posts the opening invoices of every shop (at most
// storeline.MaxDocumentLines lines each), waits until every shop has
// pulled them, and records what each shop received, by item.
func (c *Chain) receiveGoods(ctx context.Context) error {
	t0 := time.Now()
	if err := c.ho.do(ctx, "PUT", "/v1/suppliers/"+Supplier, "demo-supplier",
		map[string]any{"name": "Demo Wholesale Ltd"}, nil); err != nil {
		return fmt.Errorf("chain: supplier: %w", err)
	}
	lines := c.openingLines()
	c.received = make([]map[storeline.ItemID]decimal.Decimal, len(c.shops))
	docs := 0
	value := decimal.Zero
	for i, s := range c.shops {
		got := map[storeline.ItemID]decimal.Decimal{}
		for n, start := 1, 0; start < len(lines); n, start = n+1, start+storeline.MaxDocumentLines {
			part := lines[start:min(start+storeline.MaxDocumentLines, len(lines))]
			id := fmt.Sprintf("opening-%s-%d", s.ID, n)
			order := "po-" + id
			if err := c.ho.do(ctx, "POST", "/v1/orders", "demo-"+order, orderOf(order, s.ID, part), nil); err != nil {
				return fmt.Errorf("chain: purchase order %s: %w", order, err)
			}
			doc := map[string]any{"type": "incoming_invoice", "store": string(s.ID), "supplier": Supplier, "order": order,
				"number": fmt.Sprintf("OS-%s-%d", s.ID, n), "note": "opening stock of the demo", "lines": part}
			if err := c.ho.do(ctx, "PUT", "/v1/documents/"+id, "demo-"+id, doc, nil); err != nil {
				return fmt.Errorf("chain: invoice %s: %w", id, err)
			}
			var posted struct {
				Postings []struct {
					Account string          `json:"account"`
					Asset   string          `json:"asset"`
					Amount  decimal.Decimal `json:"amount"`
				} `json:"postings"`
			}
			if err := c.ho.do(ctx, "POST", "/v1/documents/"+id+"/post", "demo-"+id+"-post", nil, &posted); err != nil {
				return fmt.Errorf("chain: post invoice %s: %w", id, err)
			}
			// What the shop will hold is what central booked: the units
			// on the shop's stock accounts.
			prefix := "stock/" + string(s.ID) + "/"
			for _, p := range posted.Postings {
				item, ok := stockItem(prefix, p.Account, p.Asset)
				switch {
				case ok:
					got[item] = got[item].Add(p.Amount)
				case strings.HasPrefix(p.Account, prefix):
					value = value.Add(p.Amount)
				}
			}
			var po struct {
				Status string `json:"status"`
			}
			if err := c.ho.do(ctx, "GET", "/v1/orders/"+order, "", nil, &po); err != nil {
				return fmt.Errorf("chain: purchase order %s: %w", order, err)
			}
			if po.Status != "received" {
				return fmt.Errorf("chain: purchase order %s is %q after its invoice %s was posted, want received", order, po.Status, id)
			}
			docs++
		}
		c.received[i] = got
	}
	c.say("head office: %d purchase orders to %s received in full on as many incoming invoices of opening stock (%d items per shop, %s at cost in all) (%s)",
		docs, Supplier, len(lines), value.StringFixed(2), time.Since(t0).Round(time.Millisecond))
	if err := c.orderRestock(ctx, lines); err != nil {
		return err
	}
	// The tills start from the invoices' stock: every shop has pulled
	// them before they sell.
	if _, err := c.settle(); err != nil {
		return fmt.Errorf("chain: the opening invoices did not reach the shops: %w", err)
	}
	return nil
}

// stockItem returns the item of a stock posting of a shop (account
// prefix + "<dept>/<item>", asset the item's units).
func stockItem(prefix, account, asset string) (storeline.ItemID, bool) {
	rest, ok := strings.CutPrefix(account, prefix)
	if !ok {
		return "", false
	}
	_, item, ok := strings.Cut(rest, "/")
	return storeline.ItemID(item), ok && asset == string(storeline.ItemAsset(storeline.ItemID(item)))
}

// orderOf is the purchase order of an opening invoice's lines: the same
// items and quantities, at their purchase prices.
func orderOf(id string, store storeline.StoreID, lines []map[string]any) map[string]any {
	ls := make([]map[string]any, len(lines))
	for i, l := range lines {
		ls[i] = map[string]any{"item": l["item"], "qty": l["qty"], "price": l["purchase_price"]}
	}
	return map[string]any{"id": id, "supplier": Supplier, "store": string(store), "note": "opening stock of the demo", "lines": ls}
}

// restockLines is how many of the catalogue's first items a restock order
// asks for.
const restockLines = 3

// orderRestock places, for each shop, a purchase order of a few items
// expected tomorrow, which stays open, and checks that the shop's tills
// see it as an expected delivery (GET /v1/orders: the node asks central's
// replication listener), its every line outstanding.
func (c *Chain) orderRestock(ctx context.Context, lines []map[string]any) error {
	part := lines[:min(restockLines, len(lines))]
	for _, s := range c.shops {
		id := "po-restock-" + string(s.ID)
		po := orderOf(id, s.ID, part)
		po["note"] = "restock, expected tomorrow"
		po["expected_on"] = time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
		if err := c.ho.do(ctx, "POST", "/v1/orders", "demo-"+id, po, nil); err != nil {
			return fmt.Errorf("chain: purchase order %s: %w", id, err)
		}
		var seen struct {
			Orders []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Lines  []struct {
					Outstanding decimal.Decimal `json:"outstanding"`
				} `json:"lines"`
			} `json:"orders"`
		}
		if err := c.call(ctx, "GET", s.Node.TillURL()+"/v1/orders", s.CheckToken, nil, &seen); err != nil {
			return fmt.Errorf("chain: %s's tills' expected deliveries: %w", s.ID, err)
		}
		found := false
		for _, o := range seen.Orders {
			if o.ID != id {
				continue
			}
			found = o.Status == "open" && len(o.Lines) == len(part)
			for _, l := range o.Lines {
				found = found && l.Outstanding.IsPositive()
			}
		}
		if !found {
			return fmt.Errorf("chain: %s's tills do not see purchase order %s open with its %d lines outstanding: %+v", s.ID, id, len(part), seen.Orders)
		}
	}
	c.say("head office: a restock order per shop, open; each shop's tills see it among their expected deliveries (GET /v1/orders)")
	return nil
}

package chain

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
)

// TestOpeningLines: the opening invoices bring every item with a base
// price, whole units of goods sold by the piece, at a positive purchase
// price below the list price; stockItem reads a shop's stock postings
// back by item.
func TestOpeningLines(t *testing.T) {
	c := &Chain{data: sample.Generate(sample.Size{Stores: 2, Items: 40, Customers: 5})}
	base := map[string]decimal.Decimal{}
	for _, p := range c.data.Prices {
		if p.List == "base" {
			base[string(p.Item)] = p.Price
		}
	}
	lines := c.openingLines()
	if len(lines) != len(base) || len(lines) == 0 {
		t.Fatalf("%d lines for %d items with a base price", len(lines), len(base))
	}
	for i, l := range lines {
		cost := decimal.RequireFromString(l["purchase_price"].(string))
		qty := decimal.RequireFromString(l["qty"].(string))
		if p := base[l["item"].(string)]; !cost.IsPositive() || !cost.LessThan(p) || !qty.IsPositive() || !qty.IsInteger() {
			t.Errorf("line %d: %v (base price %s)", i, l, p)
		}
	}
	for _, k := range []struct {
		account, asset string
		item           storeline.ItemID
		ok             bool
	}{
		{"stock/shop-1/grocery/item-7", "item:item-7", "item-7", true},
		{"stock/shop-1/grocery/item-7", "cur:EUR", "item-7", false},
		{"stock/shop-2/grocery/item-7", "item:item-7", "", false},
		{"payable/demo-wholesale", "cur:EUR", "", false},
	} {
		item, ok := stockItem("stock/shop-1/", k.account, k.asset)
		if ok != k.ok || ok && item != k.item {
			t.Errorf("stockItem(%s, %s) = %s %v, want %s %v", k.account, k.asset, item, ok, k.item, k.ok)
		}
	}
}

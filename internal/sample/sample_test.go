package sample_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/pricing"
)

func TestChainValid(t *testing.T) {
	c := sample.New("shop-1")
	recs := c.Records(func(s sample.SellerPIN) *storeline.Seller {
		return &storeline.Seller{ID: s.ID, Name: s.Name, Role: s.Role, PINHash: storeline.HashPIN(s.PIN, []byte(rand.Text()[:16]))}
	})
	if got := len(c.Items); got != 200 {
		t.Errorf("len(Items) = %d, want 200", got)
	}
	codes := map[string]storeline.ItemID{}
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Errorf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
		if it, ok := r.(*storeline.Item); ok {
			for _, b := range it.Barcodes {
				if prev, dup := codes[b.Code]; dup {
					t.Errorf("barcode %s on %s and %s", b.Code, prev, it.ID)
				}
				codes[b.Code] = it.ID
			}
		}
	}
	scan, err := storeline.DefaultWeighedLayout().ParseScan(sample.WeighedCode(1250))
	if err != nil {
		t.Fatalf("ParseScan(weighed) = %v", err)
	}
	if scan.Kind != storeline.ScanWeighed || codes[scan.GTIN] != sample.ApplesItem || scan.Weight.String() != "1.25" {
		t.Errorf("ParseScan(weighed) = %+v (item %q), want apples 1.25 kg", scan, codes[scan.GTIN])
	}
	water := c.Item(sample.WaterItem)
	if len(water.Barcodes) != 2 || water.Barcodes[1].Factor.String() != "6" {
		t.Errorf("water barcodes = %+v, want a single and a pack of 6", water.Barcodes)
	}
}

// TestChainPrices prices a basket of the sample chain with the pricing
// engine: the dairy promotion, the water 3 for 2, the VIP policy and the
// loyalty programme all take effect.
func TestChainPrices(t *testing.T) {
	c := sample.New("shop-1")
	eng := pricing.New(pricing.NewMemCatalog(c.Records(nil)))
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	res, err := eng.Price(pricing.Basket{Store: c.Store, At: at, CustomerGroup: sample.VIPGroup, Lines: []pricing.BasketLine{
		{Item: sample.MilkItem, Qty: decimal.NewFromInt(2)},
		{Item: sample.WaterItem, Qty: decimal.NewFromInt(3)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	milk, water := res.Lines[0], res.Lines[1]
	// Milk 1.19 - 5% = 1.13 (1.1305); 2 × 1.13 = 2.26, 10% off = 0.23.
	if milk.Price.String() != "1.13" || milk.Discount.String() != "0.23" || len(milk.Promotions) != 1 || milk.Promotions[0].Promotion != sample.DairyPromo {
		t.Errorf("milk = %+v", milk)
	}
	// Water 0.99 - 5% = 0.94; one of three free.
	if water.Price.String() != "0.94" || water.Discount.String() != "0.94" {
		t.Errorf("water = %+v", water)
	}
	rules, _ := pricing.NewMemCatalog(c.Records(nil)).Rules()
	_, pts := pricing.Accrue(rules, c.Programme, c.Store.Currency, pricing.AccrualLines(res))
	if pts != 2+1 { // floor(2.03) + floor(1.88)
		t.Errorf("points = %d, want 3", pts)
	}
}

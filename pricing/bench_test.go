package pricing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// benchCatalog is 2,000 items in 40 groups (two levels) with list prices
// and promos active promotions of every kind, spread over the items.
func benchCatalog(b *testing.B, promos int) ([]storeline.Record, []*storeline.Item) {
	var recs []storeline.Record
	var items []*storeline.Item
	for g := 0; g < 40; g++ {
		grp := &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("g%02d", g))}
		if g >= 8 {
			grp.Parent = storeline.GroupID(fmt.Sprintf("g%02d", g%8))
		}
		recs = append(recs, grp)
	}
	from := wall("2026-01-01T00:00")
	for i := 0; i < 2000; i++ {
		it := &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%04d", i)), SKU: fmt.Sprintf("S%04d", i), Name: "x",
			Group: storeline.GroupID(fmt.Sprintf("g%02d", 8+i%32)), Dept: "d", Unit: storeline.Piece, VATRate: dec("7")}
		items = append(items, it)
		recs = append(recs, it, &storeline.Price{List: "base", Item: it.ID, From: from, Price: decimal.New(int64(99+i%500), -2)})
	}
	kinds := []storeline.PromoKind{storeline.PromoPercent, storeline.PromoFixed, storeline.PromoNForM, storeline.PromoBundle, storeline.PromoPercent}
	for p := 0; p < promos; p++ {
		pr := &storeline.Promotion{ID: storeline.PromotionID(fmt.Sprintf("p%05d", p)), Name: "p", Kind: kinds[p%len(kinds)], From: from, Priority: p % 3}
		target := items[(p*37)%len(items)].ID
		switch pr.Kind {
		case storeline.PromoPercent:
			pr.Items, pr.Percent = []storeline.ItemID{target}, dec("10")
			if p%10 == 0 {
				pr.Items, pr.Groups = nil, []storeline.GroupID{storeline.GroupID(fmt.Sprintf("g%02d", p%40))}
			}
		case storeline.PromoFixed:
			pr.Items, pr.Amount = []storeline.ItemID{target}, dec("0.25")
		case storeline.PromoNForM:
			pr.Items, pr.N, pr.M = []storeline.ItemID{target}, 3, 2
		case storeline.PromoBundle:
			pr.Bundle = []storeline.BundlePart{{Item: target, Qty: 1}, {Item: items[(p*37+1)%len(items)].ID, Qty: 1}}
			pr.Amount = dec("1.50")
		}
		recs = append(recs, pr)
	}
	recs = append(recs, &storeline.CustomerGroup{ID: "vip"}, &storeline.PricePolicy{ID: "vip", CustomerGroup: "vip", Percent: dec("3")},
		&storeline.Promotion{ID: "thr", Name: "thr", Kind: storeline.PromoThreshold, From: from, Threshold: dec("20"), Percent: dec("2")})
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	return recs, items
}

func benchPrice(b *testing.B, lines, promos int) {
	recs, items := benchCatalog(b, promos)
	eng := pricing.New(pricing.NewMemCatalog(recs))
	basket := pricing.Basket{Store: store(), At: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), CustomerGroup: "vip"}
	basket.Store.PriceLists = []storeline.PriceListID{"base"}
	for i := 0; i < lines; i++ {
		// Items the promotions target, so the basket meets many of them.
		basket.Lines = append(basket.Lines, pricing.BasketLine{Item: items[(i*37)%len(items)].ID, Qty: decimal.NewFromInt(int64(1 + i%4))})
	}
	res, err := eng.Price(basket)
	if err != nil {
		b.Fatal(err)
	}
	promoted := 0
	for _, l := range res.Lines {
		if len(l.Promotions) > 0 {
			promoted++
		}
	}
	b.ReportMetric(float64(promoted), "promoted-lines")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := eng.Price(basket); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "baskets/s")
}

func BenchmarkPrice5Lines100Promos(b *testing.B)   { benchPrice(b, 5, 100) }
func BenchmarkPrice50Lines100Promos(b *testing.B)  { benchPrice(b, 50, 100) }
func BenchmarkPrice30Lines1000Promos(b *testing.B) { benchPrice(b, 30, 1000) }

package pricing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// genBig draws a non-negative decimal with up to places decimals and a
// magnitude spread over many orders up to maxUnits units.
func genBig(t *rapid.T, label string, places int32, maxUnits int64) decimal.Decimal {
	digits := rapid.IntRange(0, 18).Draw(t, label+"Digits")
	hi := int64(1)
	for i := 0; i < digits; i++ {
		hi *= 10
	}
	limit := decimal.NewFromInt(maxUnits).Shift(places).IntPart()
	hi = min(hi, limit)
	return decimal.New(rapid.Int64Range(0, hi).Draw(t, label), -places)
}

// TestReview17StressInvariants prices random baskets of extreme values
// (quantities up to 100,000 base units, weighed to the gram, list prices
// up to the engine's bound, large fixed, bundle and threshold amounts),
// at instants around DST changes in several zones, in currencies of 0, 2
// and 3 places, and checks the result's arithmetic, that no line goes
// below zero, and that reordering the lines permutes the result.
func TestReview17StressInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cur := rapid.SampledFrom([]storeline.Currency{"EUR", "JPY", "KWD"}).Draw(t, "cur")
		zone := rapid.SampledFrom([]string{"Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "America/New_York"}).Draw(t, "zone")
		st := &storeline.Store{ID: "s1", TimeZone: zone, Currency: cur, Departments: []storeline.Department{{ID: "d"}}, PriceLists: []storeline.PriceListID{"base"}}
		// The largest price the engine takes: 10^10 minor units.
		maxPrice := decimal.New(1, 10-int32(cur.Scale())).IntPart()
		at := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC).Add(time.Duration(rapid.IntRange(-6*60, 6*60).Draw(t, "minute")) * time.Minute)
		if rapid.Bool().Draw(t, "april") {
			at = time.Date(2026, 4, 5, 3, 0, 0, 0, time.UTC).Add(time.Duration(rapid.IntRange(-6*60, 6*60).Draw(t, "aminute")) * time.Minute)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		around := storeline.WallClock(at, loc).Truncate(time.Hour)
		recs := []storeline.Record{&storeline.Group{ID: "g0"}, &storeline.Group{ID: "g1", Parent: "g0"}, &storeline.CustomerGroup{ID: "cg"}}
		var items []*storeline.Item
		for i := 0; i < 4; i++ {
			it := &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%d", i)), SKU: fmt.Sprintf("S%d", i), Name: "x", Group: storeline.GroupID(fmt.Sprintf("g%d", i%2)), Dept: "d", Unit: storeline.Piece, VATRate: dec("20")}
			if rapid.IntRange(0, 2).Draw(t, "kg") == 0 {
				it.Unit = storeline.Kg
			}
			items = append(items, it)
			recs = append(recs, it)
			for k := rapid.IntRange(1, 2).Draw(t, "prices"); k > 0; k-- {
				recs = append(recs, &storeline.Price{List: "base", Item: it.ID, From: around.Add(time.Duration(rapid.IntRange(-120, 120).Draw(t, "pfrom")) * time.Minute),
					Price: genBig(t, "price", 4, maxPrice)})
			}
		}
		ids := func() []storeline.ItemID {
			return []storeline.ItemID{rapid.SampledFrom(items).Draw(t, "target").ID}
		}
		for i := rapid.IntRange(0, 6).Draw(t, "promos"); i > 0; i-- {
			p := &storeline.Promotion{ID: storeline.PromotionID(fmt.Sprintf("p%d", i)), Name: "p",
				From:     around.Add(time.Duration(rapid.IntRange(-120, 120).Draw(t, "from")) * time.Minute),
				Priority: rapid.IntRange(0, 1).Draw(t, "prio")}
			if rapid.Bool().Draw(t, "until") {
				p.Until = p.From.Add(time.Duration(rapid.IntRange(1, 240).Draw(t, "len")) * time.Minute)
			}
			p.Kind = rapid.SampledFrom([]storeline.PromoKind{storeline.PromoPercent, storeline.PromoFixed, storeline.PromoNForM, storeline.PromoBundle, storeline.PromoThreshold}).Draw(t, "kind")
			switch p.Kind {
			case storeline.PromoPercent:
				p.Items, p.Percent = ids(), decimal.New(rapid.Int64Range(1, 10000).Draw(t, "pct"), -2)
				if rapid.Bool().Draw(t, "bygroup") {
					p.Items, p.Groups = nil, []storeline.GroupID{"g0"}
				}
			case storeline.PromoFixed:
				p.Items, p.Amount = ids(), genBig(t, "off", 4, 1_000_000_000_000)
				if p.Amount.IsZero() {
					p.Amount = dec("0.0001")
				}
			case storeline.PromoNForM:
				p.Groups = []storeline.GroupID{"g0"}
				p.N = rapid.IntRange(2, 100).Draw(t, "n")
				p.M = rapid.IntRange(1, p.N-1).Draw(t, "m")
			case storeline.PromoBundle:
				a, b := rapid.SampledFrom(items).Draw(t, "a"), rapid.SampledFrom(items).Draw(t, "b")
				p.Bundle = []storeline.BundlePart{{Item: a.ID, Qty: rapid.IntRange(1, 1000).Draw(t, "aq")}}
				if b.ID != a.ID {
					p.Bundle = append(p.Bundle, storeline.BundlePart{Item: b.ID, Qty: rapid.IntRange(1, 1000).Draw(t, "bq")})
				} else if p.Bundle[0].Qty == 1 {
					p.Bundle[0].Qty = 2
				}
				p.Amount = genBig(t, "bundle", 4, 1_000_000_000_000)
			case storeline.PromoThreshold:
				p.Threshold = genBig(t, "thr", 4, 1_000_000_000_000)
				if p.Threshold.IsZero() {
					p.Threshold = dec("0.0001")
				}
				if rapid.Bool().Draw(t, "thrpct") {
					p.Percent = decimal.New(rapid.Int64Range(1, 10000).Draw(t, "tpct"), -2)
				} else {
					p.Amount = decimal.New(rapid.Int64Range(1, p.Threshold.Shift(4).IntPart()).Draw(t, "tamt"), -4)
				}
			}
			recs = append(recs, p)
		}
		if rapid.Bool().Draw(t, "policy") {
			recs = append(recs, &storeline.PricePolicy{ID: "pol", CustomerGroup: "cg", Percent: decimal.New(rapid.Int64Range(1, 10000).Draw(t, "polpct"), -2)})
		}
		for _, r := range recs {
			if err := r.Validate(); err != nil {
				t.Fatalf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
			}
		}
		b := pricing.Basket{Store: st, At: at, CustomerGroup: "cg"}
		for n := rapid.IntRange(1, 8).Draw(t, "lines"); n > 0; n-- {
			it := rapid.SampledFrom(items).Draw(t, "item")
			l := pricing.BasketLine{Item: it.ID, Qty: decimal.NewFromInt(rapid.Int64Range(1, 100_000).Draw(t, "qty"))}
			if it.Unit == storeline.Kg {
				l.Qty = decimal.New(rapid.Int64Range(1, 100_000_000).Draw(t, "grams"), -3)
			}
			b.Lines = append(b.Lines, l)
		}
		cat := pricing.NewMemCatalog(recs)
		res := mustPrice(t, cat, b)
		perm := rapid.Permutation(b.Lines).Draw(t, "perm")
		b2 := b
		b2.Lines = perm
		res2 := mustPrice(t, cat, b2)
		if a, c := sortedLines(res), sortedLines(res2); a != c || !res.Total.Equal(res2.Total) || res.Threshold != res2.Threshold {
			t.Fatalf("reordered lines priced differently:\n%s\n%s", a, c)
		}
	})
}

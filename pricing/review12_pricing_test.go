package pricing_test

import (
	"testing"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestReview12FixedOffEachUnitNotRoundedFirst: a fixed promotion takes
// Amount off each base unit (storeline.PromoFixed), and amounts may carry
// 4 places (the engine rounds to the currency). The engine rounded the
// per-unit amount to the currency before multiplying by the quantity: 0.005
// off each of 1,000 bottles took 10.00 off (twice the offer), 0.004 off
// each took nothing. The discount is round(qty × amount).
func TestReview12FixedOffEachUnitNotRoundedFirst(t *testing.T) {
	fixed := func(id, amount string) *storeline.Promotion {
		return promo(id, storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"water"}; p.Amount = dec(amount) })
	}
	for _, tc := range []struct {
		amount, qty string
		want        want
	}{
		{"0.005", "1000", want{"0.50", "5.00", "495.00", "price_list:base", "w"}},
		{"0.004", "1000", want{"0.50", "4.00", "496.00", "price_list:base", "w"}},
		{"0.0049", "3", want{"0.50", "0.01", "1.49", "price_list:base", "w"}}, // 0.0147
		{"0.6", "3", want{"0.50", "1.50", "0.00", "price_list:base", "w"}},    // never below zero
	} {
		res := price(t, []storeline.Record{fixed("w", tc.amount)}, "", t0, bl("water", tc.qty))
		check(t, res, tc.want)
	}
	// A weighed item: 0.0125 off each kg of 0.400 kg of brie is 0.005,
	// 0.01 rounded half away from zero (0.01 a kg rounded first gave 0.004,
	// 0.00).
	res := price(t, []storeline.Record{promo("b", storeline.PromoFixed, func(p *storeline.Promotion) {
		p.Items = []storeline.ItemID{"brie"}
		p.Amount = dec("0.0125")
	})}, "", t0, bl("brie", "0.4"))
	check(t, res, want{"19.90", "0.01", "7.95", "price_list:base", "b"})
	// A currency without minor units: 0.5 yen off each of 100 units is 50.
	st := store()
	st.Currency = "JPY"
	recs := append(fixture(), promo("y", storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Amount = dec("0.5") }))
	r, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: st, At: t0, Lines: []pricing.BasketLine{bl("cola", "100")}})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	if got := r.Lines[0].Discount.String(); got != "50" {
		t.Errorf("JPY: 0.5 off each of 100 = %s, want 50", got)
	}
}

// TestReview12NForMLeftoverUnitNotFree: 3 for 2 over 4 units frees one,
// whether on one line or four (lead: is the leftover 4th unit discounted?).
func TestReview12NForMLeftoverUnitNotFree(t *testing.T) {
	recs := []storeline.Record{promo("w3", storeline.PromoNForM, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"water"}; p.N, p.M = 3, 2 })}
	check(t, price(t, recs, "", t0, bl("water", "4")), want{"0.50", "0.50", "1.50", "price_list:base", "w3"})
	res := price(t, recs, "", t0, bl("water", "1"), bl("water", "1"), bl("water", "1"), bl("water", "1"))
	if res.Discount.StringFixed(2) != "0.50" {
		t.Errorf("four lines of one: discount %s, want 0.50", res.Discount)
	}
}

// TestReview12EngineMatchesDecimalModel prices one line through the real
// engine (its integer fast paths and general paths) and checks each
// figure against DESIGN.md's receipt arithmetic worked in decimals: a
// list price with up to 4 places, a policy, a percent or fixed promotion,
// piece and weighed quantities, in currencies of 0, 2 and 3 places; and
// that a receipt line carrying the engine's price and discount computes
// the engine's total (storeline.Receipt.Compute).
func TestReview12EngineMatchesDecimalModel(t *testing.T) {
	hundred := decimal.NewFromInt(100)
	rapid.Check(t, func(t *rapid.T) {
		cur := rapid.SampledFrom([]storeline.Currency{"EUR", "JPY", "KWD"}).Draw(t, "cur")
		sc := cur.Scale()
		unit := rapid.SampledFrom([]storeline.Unit{storeline.Piece, storeline.Kg}).Draw(t, "unit")
		base := decimal.New(rapid.Int64Range(0, 10_000_000).Draw(t, "base"), -rapid.Int32Range(0, 4).Draw(t, "baseExp"))
		var qty decimal.Decimal
		if unit == storeline.Piece {
			qty = decimal.NewFromInt(rapid.Int64Range(1, 100_000).Draw(t, "qty"))
		} else {
			qty = decimal.New(rapid.Int64Range(1, 100_000_000).Draw(t, "qty"), -3)
		}
		item := &storeline.Item{ID: "x", SKU: "X", Name: "x", Group: "g", Dept: "d", Unit: unit, VATRate: dec("19")}
		recs := []storeline.Record{&storeline.Group{ID: "g"}, &storeline.CustomerGroup{ID: "cg"}, item,
			&storeline.Price{List: "base", Item: "x", From: wall("2026-01-01T00:00"), Price: base}}
		price := cur.Round(base)
		if rapid.Bool().Draw(t, "policy") {
			pct := decimal.New(rapid.Int64Range(1, 10_000).Draw(t, "policyPct"), -2)
			recs = append(recs, &storeline.PricePolicy{ID: "pol", CustomerGroup: "cg", Percent: pct})
			price = cur.Round(base.Mul(hundred.Sub(pct)).Div(hundred))
		}
		gross := cur.Round(qty.Mul(price))
		disc := cur.Round(decimal.Zero)
		switch rapid.IntRange(0, 2).Draw(t, "promo") {
		case 1:
			pct := decimal.New(rapid.Int64Range(1, 10_000).Draw(t, "promoPct"), -2)
			recs = append(recs, promo("p", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"x"}; p.Percent = pct }))
			disc = cur.Round(gross.Mul(pct).Div(hundred))
		case 2:
			amt := decimal.New(rapid.Int64Range(1, 10_000_000).Draw(t, "promoAmt"), -4)
			recs = append(recs, promo("p", storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"x"}; p.Amount = amt }))
			disc = decimal.Min(cur.Round(qty.Mul(decimal.Min(amt, price))), gross)
		}
		for _, r := range recs {
			if err := r.Validate(); err != nil {
				t.Fatalf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
			}
		}
		st := &storeline.Store{ID: "s1", TimeZone: "Europe/Berlin", Currency: cur, Departments: []storeline.Department{{ID: "d"}}, PriceLists: []storeline.PriceListID{"base"}}
		res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: st, At: t0, CustomerGroup: "cg", Lines: []pricing.BasketLine{{Item: "x", Qty: qty}}})
		if err != nil {
			t.Fatalf("Price: %v", err)
		}
		checkResult(t, res)
		l := res.Lines[0]
		if !l.Price.Equal(price) || !l.Gross.Equal(gross) || !l.Discount.Equal(disc) || l.Price.Exponent() != -sc {
			t.Fatalf("engine %s; model price %s gross %s discount %s", renderLine(l), price, gross, disc)
		}
		r := storeline.Receipt{Terminal: "t", Shift: "s", Seller: "u", Currency: cur,
			Lines:    []storeline.Line{{Item: "x", Dept: "d", Unit: unit, Qty: qty, Price: l.Price, Discount: l.Discount, VATRate: dec("19")}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: l.Total.Add(decimal.NewFromInt(1))}}}
		if err := r.Compute(); err != nil {
			t.Fatalf("Compute: %v", err)
		}
		if !r.Total.Equal(l.Total) || !r.Lines[0].VAT.Equal(storeline.VATIncluded(cur, l.Total, dec("19"))) {
			t.Fatalf("receipt total %s VAT %s, engine total %s", r.Total, r.Lines[0].VAT, l.Total)
		}
	})
}

// TestReview12ThresholdNotReachedBelowIt: a threshold promotion applies to
// a receipt whose subtotal is at least Threshold (storeline.PromoThreshold),
// which may carry 4 places. The engine compared the subtotal with the
// threshold rounded to the currency: a basket of 10.00 took the discount of
// a promotion "over 10.004".
func TestReview12ThresholdNotReachedBelowIt(t *testing.T) {
	recs := []storeline.Record{promo("over", storeline.PromoThreshold, func(p *storeline.Promotion) { p.Threshold = dec("10.004"); p.Amount = dec("1.00") })}
	check(t, price(t, recs, "", t0, bl("water", "20")), want{"0.50", "0.00", "10.00", "price_list:base", ""})
	check(t, price(t, recs, "", t0, bl("water", "21")), want{"0.50", "1.00", "9.50", "price_list:base", "over"})
}

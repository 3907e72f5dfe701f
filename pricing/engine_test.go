package pricing_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// t0 is 10:00 in Berlin (winter time, UTC+1).
var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// wall is a wall-clock time as rules store it.
func wall(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// fixture: store s1 (Berlin, EUR) priced by "promo" then "base"; groups
// food > dairy > cheese and drinks; customer groups vip > gold.
func fixture() []storeline.Record {
	item := func(id, group string, unit storeline.Unit) *storeline.Item {
		return &storeline.Item{ID: storeline.ItemID(id), SKU: strings.ToUpper(id), Name: id, Group: storeline.GroupID(group), Dept: "d", Unit: unit, VATRate: dec("7")}
	}
	price := func(list, item, from, p string) *storeline.Price {
		return &storeline.Price{List: storeline.PriceListID(list), Item: storeline.ItemID(item), From: wall(from), Price: dec(p)}
	}
	return []storeline.Record{
		&storeline.Group{ID: "food"}, &storeline.Group{ID: "dairy", Parent: "food"}, &storeline.Group{ID: "cheese", Parent: "dairy"},
		&storeline.Group{ID: "drinks"},
		&storeline.CustomerGroup{ID: "vip"}, &storeline.CustomerGroup{ID: "gold", Parent: "vip"}, &storeline.CustomerGroup{ID: "staff"},
		item("milk", "dairy", storeline.Piece), item("brie", "cheese", storeline.Kg), item("bread", "food", storeline.Piece),
		item("cola", "drinks", storeline.Piece), item("water", "drinks", storeline.Piece), item("juice", "drinks", storeline.Piece),
		item("nolist", "food", storeline.Piece),
		price("base", "milk", "2026-01-01T00:00", "1.29"),
		price("base", "milk", "2026-03-10T10:00", "1.19"), // from 10:00 Berlin wall clock
		price("base", "milk", "2026-03-11T00:00", "1.49"),
		price("promo", "bread", "2026-03-01T00:00", "1.99"),
		price("base", "bread", "2026-01-01T00:00", "2.49"),
		price("base", "brie", "2026-01-01T00:00", "19.9"),
		price("base", "cola", "2026-01-01T00:00", "2.00"),
		price("base", "water", "2026-01-01T00:00", "0.50"),
		price("base", "juice", "2026-01-01T00:00", "1.2345"),
	}
}

func store() *storeline.Store {
	return &storeline.Store{ID: "s1", TimeZone: "Europe/Berlin", Currency: "EUR", Departments: []storeline.Department{{ID: "d"}}, PriceLists: []storeline.PriceListID{"promo", "base"}}
}

func bl(item, qty string) pricing.BasketLine {
	return pricing.BasketLine{Item: storeline.ItemID(item), Qty: dec(qty)}
}

func promo(id string, kind storeline.PromoKind, mod func(p *storeline.Promotion)) *storeline.Promotion {
	p := &storeline.Promotion{ID: storeline.PromotionID(id), Name: id, Kind: kind, From: wall("2026-03-01T00:00")}
	mod(p)
	return p
}

// price prices lines at t0 with the fixture plus extra records; every
// record is validated first, as head office would.
func price(t *testing.T, extra []storeline.Record, cg storeline.CustGroupID, at time.Time, lines ...pricing.BasketLine) *pricing.Result {
	t.Helper()
	recs := append(fixture(), extra...)
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Fatalf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
	}
	res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: store(), At: at, CustomerGroup: cg, Lines: lines})
	if err != nil {
		t.Fatalf("Price: %v", err)
	}
	checkResult(t, res)
	return res
}

// checkResult checks the arithmetic every result must satisfy.
func checkResult(t tb, res *pricing.Result) {
	t.Helper()
	sub, disc, tot := decimal.Zero, decimal.Zero, decimal.Zero
	for i, l := range res.Lines {
		var sum decimal.Decimal
		for _, a := range l.Promotions {
			if a.Amount.IsNegative() {
				t.Fatalf("line %d: promotion %s gives %s", i, a.Promotion, a.Amount)
			}
			sum = sum.Add(a.Amount)
		}
		if !sum.Equal(l.Discount) {
			t.Fatalf("line %d: discount %s, promotions sum to %s", i, l.Discount, sum)
		}
		if l.Total.IsNegative() || !l.Total.Equal(l.Gross.Sub(l.Discount)) {
			t.Fatalf("line %d: total %s, gross %s, discount %s", i, l.Total, l.Gross, l.Discount)
		}
		if !l.Gross.Equal(res.Currency.Round(l.Qty.Mul(l.Price))) {
			t.Fatalf("line %d: gross %s != round(%s × %s)", i, l.Gross, l.Qty, l.Price)
		}
		for _, d := range []decimal.Decimal{l.Price, l.Gross, l.Discount, l.Total} {
			if d.Exponent() != -res.Currency.Scale() {
				t.Fatalf("line %d: %s not normalised to %s's scale", i, d.String(), res.Currency)
			}
		}
		sub, disc, tot = sub.Add(l.Gross), disc.Add(l.Discount), tot.Add(l.Total)
	}
	if !sub.Equal(res.Subtotal) || !disc.Equal(res.Discount) || !tot.Equal(res.Total) {
		t.Fatalf("totals %s/%s/%s, lines sum to %s/%s/%s", res.Subtotal, res.Discount, res.Total, sub, disc, tot)
	}
	if res.Discount.GreaterThan(res.Subtotal) {
		t.Fatalf("discount %s above subtotal %s", res.Discount, res.Subtotal)
	}
}

type want struct {
	price, discount, total string
	rule                   string
	promos                 string // comma-separated promotion IDs
}

func check(t *testing.T, res *pricing.Result, wants ...want) {
	t.Helper()
	if len(res.Lines) != len(wants) {
		t.Fatalf("%d lines, want %d", len(res.Lines), len(wants))
	}
	for i, w := range wants {
		l := res.Lines[i]
		var ids []string
		for _, a := range l.Promotions {
			ids = append(ids, string(a.Promotion))
		}
		sc := res.Currency.Scale()
		got := want{l.Price.StringFixed(sc), l.Discount.StringFixed(sc), l.Total.StringFixed(sc), l.Rule, strings.Join(ids, ",")}
		if got != w {
			t.Errorf("line %d (%s) = %+v, want %+v", i, l.Item, got, w)
		}
	}
}

func TestBasePrice(t *testing.T) {
	// 09:30 in Berlin: milk's 1.19 from 10:00 wall clock is not yet due.
	res := price(t, nil, "", t0.Add(-30*time.Minute), bl("milk", "2"), bl("bread", "1"), bl("brie", "0.25"), bl("juice", "3"))
	check(t, res,
		want{"1.29", "0.00", "2.58", "price_list:base", ""},
		want{"1.99", "0.00", "1.99", "price_list:promo", ""}, // the first list with a price wins
		want{"19.90", "0.00", "4.98", "price_list:base", ""}, // round(0.25 × 19.90 = 4.975)
		want{"1.23", "0.00", "3.69", "price_list:base", ""},  // a 4-place list price rounds per unit
	)
	if !res.Lines[3].BasePrice.Equal(dec("1.2345")) {
		t.Errorf("base price %s, want the list's 1.2345", res.Lines[3].BasePrice)
	}
	// At 10:00 Berlin (09:00 UTC) the new price is due.
	check(t, price(t, nil, "", t0, bl("milk", "1")), want{"1.19", "0.00", "1.19", "price_list:base", ""})
	// In Lisbon (UTC+0) 10:00 wall clock comes an hour later.
	lis := store()
	lis.TimeZone = "Europe/Lisbon"
	res, err := pricing.New(pricing.NewMemCatalog(fixture())).Price(pricing.Basket{Store: lis, At: t0, Lines: []pricing.BasketLine{bl("milk", "1")}})
	if err != nil || !res.Lines[0].Price.Equal(dec("1.29")) {
		t.Errorf("Lisbon at 09:00 = %v, %v; want 1.29", res, err)
	}
}

func TestManualAndUnpriced(t *testing.T) {
	pct := promo("all-food", storeline.PromoPercent, func(p *storeline.Promotion) { p.Groups = []storeline.GroupID{"food"}; p.Percent = dec("50") })
	m := bl("milk", "2")
	m.Manual, m.ManualPrice = true, dec("0.99")
	res := price(t, []storeline.Record{pct}, "vip", t0, m, bl("nolist", "1"), bl("bread", "1"))
	check(t, res,
		want{"0.99", "0.00", "1.98", "manual", ""}, // no policy, no promotion on a manual price
		want{"0.00", "0.00", "0.00", "none", ""},
		want{"1.99", "1.00", "0.99", "price_list:promo", "all-food"},
	)
	if res.Lines[1].Priced() {
		t.Error("a line without any price says it is priced")
	}
}

func TestPolicy(t *testing.T) {
	pols := []storeline.Record{
		&storeline.PricePolicy{ID: "vip-5", CustomerGroup: "vip", Percent: dec("5")},
		&storeline.PricePolicy{ID: "vip-dairy-10", CustomerGroup: "vip", Percent: dec("10"), Groups: []storeline.GroupID{"dairy"}},
		&storeline.PricePolicy{ID: "a-vip-dairy-10", CustomerGroup: "vip", Percent: dec("10"), Groups: []storeline.GroupID{"dairy"}, Stores: []storeline.StoreID{"s1"}},
		&storeline.PricePolicy{ID: "other-shop", CustomerGroup: "vip", Percent: dec("50"), Stores: []storeline.StoreID{"s2"}},
		&storeline.PricePolicy{ID: "staff", CustomerGroup: "staff", Percent: dec("30")},
	}
	lines := []pricing.BasketLine{bl("milk", "3"), bl("brie", "0.5"), bl("cola", "1")}
	// gold is nested in vip; brie's cheese is nested in dairy. Of equal
	// percents the smaller ID wins.
	check(t, price(t, pols, "gold", t0, lines...),
		want{"1.07", "0.00", "3.21", "price_list:base policy:a-vip-dairy-10", ""}, // round(1.19 × 0.9 = 1.071)
		want{"17.91", "0.00", "8.96", "price_list:base policy:a-vip-dairy-10", ""},
		want{"1.90", "0.00", "1.90", "price_list:base policy:vip-5", ""},
	)
	check(t, price(t, pols, "", t0, lines[2]), want{"2.00", "0.00", "2.00", "price_list:base", ""})
	check(t, price(t, pols, "staff", t0, lines[2]), want{"1.40", "0.00", "1.40", "price_list:base policy:staff", ""})
}

func TestSingleLinePromotions(t *testing.T) {
	recs := []storeline.Record{
		promo("dairy-10", storeline.PromoPercent, func(p *storeline.Promotion) { p.Groups = []storeline.GroupID{"dairy"}; p.Percent = dec("10") }),
		promo("milk-20c", storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"milk"}; p.Amount = dec("0.20") }),
		promo("cola-9", storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Amount = dec("9") }),
		promo("bread-later", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"bread"}
			p.Percent = dec("50")
			p.From = wall("2026-03-10T10:01") // a minute after t0 in Berlin
		}),
		promo("water-ended", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"water"}
			p.Percent = dec("50")
			p.Until = wall("2026-03-10T10:00") // Until is exclusive
		}),
		promo("juice-s2", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"juice"}
			p.Percent = dec("50")
			p.Stores = []storeline.StoreID{"s2"}
		}),
	}
	check(t, price(t, recs, "", t0, bl("milk", "3"), bl("brie", "0.333"), bl("cola", "2"), bl("bread", "1"), bl("water", "1"), bl("juice", "1")),
		want{"1.19", "0.60", "2.97", "price_list:base", "milk-20c"},  // 0.60 beats 10% of 3.57
		want{"19.90", "0.66", "5.97", "price_list:base", "dairy-10"}, // round(6.6267 × 10%)
		want{"2.00", "4.00", "0.00", "price_list:base", "cola-9"},    // never below zero
		want{"1.99", "0.00", "1.99", "price_list:promo", ""},
		want{"0.50", "0.00", "0.50", "price_list:base", ""},
		want{"1.23", "0.00", "1.23", "price_list:base", ""},
	)
}

func TestNForM(t *testing.T) {
	recs := []storeline.Record{
		promo("drinks-3for2", storeline.PromoNForM, func(p *storeline.Promotion) { p.Groups = []storeline.GroupID{"drinks"}; p.N, p.M = 3, 2 }),
		promo("cola-50", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Percent = dec("50") }),
	}
	// 7 units: 2 free, the cheapest (water at 0.50). The multi-line
	// promotion takes its lines first, so cola gets no 50%.
	check(t, price(t, recs, "", t0, bl("cola", "4"), bl("water", "2"), bl("juice", "1")),
		want{"2.00", "0.00", "8.00", "price_list:base", "drinks-3for2"},
		want{"0.50", "1.00", "0.00", "price_list:base", "drinks-3for2"},
		want{"1.23", "0.00", "1.23", "price_list:base", "drinks-3for2"},
	)
	// 2 units: no free unit, so the lines stay free for the percent.
	check(t, price(t, recs, "", t0, bl("cola", "1"), bl("water", "1")),
		want{"2.00", "1.00", "1.00", "price_list:base", "cola-50"},
		want{"0.50", "0.00", "0.50", "price_list:base", ""},
	)
	// A higher priority percent promotion takes cola before the 3-for-2.
	recs[1].(*storeline.Promotion).Priority = 1
	check(t, price(t, recs, "", t0, bl("cola", "4"), bl("water", "2"), bl("juice", "1")),
		want{"2.00", "4.00", "4.00", "price_list:base", "cola-50"},
		want{"0.50", "0.50", "0.50", "price_list:base", "drinks-3for2"},
		want{"1.23", "0.00", "1.23", "price_list:base", "drinks-3for2"},
	)
}

func TestBundle(t *testing.T) {
	recs := []storeline.Record{
		promo("breakfast", storeline.PromoBundle, func(p *storeline.Promotion) {
			p.Bundle = []storeline.BundlePart{{Item: "milk", Qty: 2}, {Item: "bread", Qty: 1}}
			p.Amount = dec("3.00")
		}),
	}
	// Two bundles (4 milk, 2 bread of 5 and 2): regular 2 × (2×1.19 +
	// 1.99) = 8.74, bundle 6.00, saving 2.74 spread by gross 5.95 : 3.98.
	res := price(t, recs, "", t0, bl("milk", "5"), bl("bread", "2"), bl("cola", "1"))
	check(t, res,
		want{"1.19", "1.64", "4.31", "price_list:base", "breakfast"},
		want{"1.99", "1.10", "2.88", "price_list:promo", "breakfast"},
		want{"2.00", "0.00", "2.00", "price_list:base", ""},
	)
	// Not a complete bundle: nothing.
	check(t, price(t, recs, "", t0, bl("milk", "1"), bl("bread", "3")),
		want{"1.19", "0.00", "1.19", "price_list:base", ""},
		want{"1.99", "0.00", "5.97", "price_list:promo", ""},
	)
}

func TestThreshold(t *testing.T) {
	recs := []storeline.Record{
		promo("over-10", storeline.PromoThreshold, func(p *storeline.Promotion) { p.Threshold = dec("10"); p.Amount = dec("1.00") }),
		promo("over-20", storeline.PromoThreshold, func(p *storeline.Promotion) { p.Threshold = dec("20"); p.Percent = dec("10") }),
		promo("cola-50", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Percent = dec("50") }),
	}
	man := bl("bread", "1")
	man.Manual, man.ManualPrice = true, dec("50")
	// Eligible lines after cola's 50%: 3.57 + 2.00 + 5.00 = 10.57 (the
	// manual line does not count): over-10 applies, spread 0.34/0.19/0.47.
	check(t, price(t, recs, "", t0, bl("milk", "3"), bl("cola", "2"), bl("water", "10"), man),
		want{"1.19", "0.34", "3.23", "price_list:base", "over-10"},
		want{"2.00", "2.19", "1.81", "price_list:base", "cola-50,over-10"},
		want{"0.50", "0.47", "4.53", "price_list:base", "over-10"},
		want{"50.00", "0.00", "50.00", "manual", ""},
	)
	// 23.80 reaches over-20: 10% = 2.38 beats 1.00.
	res := price(t, recs, "", t0, bl("milk", "20"))
	check(t, res, want{"1.19", "2.38", "21.42", "price_list:base", "over-20"})
	if res.Threshold != "over-20" {
		t.Errorf("threshold = %q", res.Threshold)
	}
	// Below both: nothing.
	check(t, price(t, recs, "", t0, bl("milk", "8")), want{"1.19", "0.00", "9.52", "price_list:base", ""})
}

func TestCurrencyScale(t *testing.T) {
	// brie is 19.9 a kg in the list; 0.25 kg with 15% off.
	for _, tc := range []struct {
		cur                storeline.Currency
		price, gross, disc string
	}{
		{"JPY", "20", "5", "1"},             // the unit price rounds to 20; 15% of 5 = 0.75 -> 1
		{"KWD", "19.900", "4.975", "0.746"}, // 0.74625
		{"EUR", "19.90", "4.98", "0.75"},    // 4.975 rounds half away from zero
	} {
		st := store()
		st.Currency = tc.cur
		recs := append(fixture(), promo("brie-15", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"brie"}; p.Percent = dec("15") }))
		res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: st, At: t0, Lines: []pricing.BasketLine{bl("brie", "0.25")}})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res)
		sc := tc.cur.Scale()
		if l := res.Lines[0]; l.Price.StringFixed(sc) != tc.price || l.Gross.StringFixed(sc) != tc.gross || l.Discount.StringFixed(sc) != tc.disc {
			t.Errorf("%s: price %s gross %s discount %s, want %s %s %s", tc.cur, l.Price, l.Gross, l.Discount, tc.price, tc.gross, tc.disc)
		}
	}
}

func TestBadInput(t *testing.T) {
	eng := pricing.New(pricing.NewMemCatalog(fixture()))
	neg := bl("milk", "1")
	neg.Manual, neg.ManualPrice = true, dec("-1")
	frac := bl("milk", "1")
	frac.Manual, frac.ManualPrice = true, dec("1.234")
	for _, tc := range []struct {
		b     pricing.Basket
		field string
	}{
		{pricing.Basket{At: t0, Lines: []pricing.BasketLine{bl("milk", "1")}}, "store"},
		{pricing.Basket{Store: store(), Lines: []pricing.BasketLine{bl("milk", "1")}}, "at"},
		{pricing.Basket{Store: store(), At: t0}, "lines"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{bl("milk", "1"), bl("ghost", "1")}}, "lines[1].item"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{bl("milk", "1.5")}}, "lines[0].qty"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{bl("milk", "0")}}, "lines[0].qty"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{neg}}, "lines[0].price"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{bl("milk", "100001")}}, "lines[0].qty"},
		{pricing.Basket{Store: store(), At: t0, Lines: []pricing.BasketLine{frac}}, "lines[0].price"},
	} {
		_, err := eng.Price(tc.b)
		if storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != tc.field {
			t.Errorf("Price(%s) = %v, want Invalid naming %s", tc.field, err, tc.field)
		}
	}
}

func TestValidateRules(t *testing.T) {
	ok := func() *storeline.Promotion {
		return promo("p", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"milk"}; p.Percent = dec("10") })
	}
	for _, tc := range []struct {
		mod   func(p *storeline.Promotion)
		field string
	}{
		{func(p *storeline.Promotion) { p.ID = "a/b" }, "id"},
		{func(p *storeline.Promotion) { p.Name = "" }, "name"},
		{func(p *storeline.Promotion) { p.Kind = "bogo" }, "kind"},
		{func(p *storeline.Promotion) { p.Until = p.From }, "until"},
		{func(p *storeline.Promotion) { p.From = time.Time{} }, "from"},
		{func(p *storeline.Promotion) { p.Percent = dec("100.5") }, "percent"},
		{func(p *storeline.Promotion) { p.Items = nil }, "items"},
		{func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"milk", "milk"} }, "items[1]"},
		{func(p *storeline.Promotion) { p.Groups = []storeline.GroupID{"bad group"} }, "groups[0]"},
		{func(p *storeline.Promotion) { p.Stores = []storeline.StoreID{""} }, "stores[0]"},
		{func(p *storeline.Promotion) { p.Kind, p.Amount = storeline.PromoFixed, dec("-1") }, "amount"},
		{func(p *storeline.Promotion) { p.Kind, p.N, p.M = storeline.PromoNForM, 3, 3 }, "m"},
		{func(p *storeline.Promotion) { p.Kind, p.N, p.M = storeline.PromoNForM, 1, 1 }, "n"},
		{func(p *storeline.Promotion) {
			p.Kind, p.Items, p.Bundle = storeline.PromoBundle, nil, []storeline.BundlePart{{Item: "milk", Qty: 0}}
		}, "bundle[0].qty"},
		{func(p *storeline.Promotion) {
			p.Kind, p.Items, p.Bundle = storeline.PromoBundle, nil, []storeline.BundlePart{{Item: "milk", Qty: 1}}
		}, "bundle"},
		{func(p *storeline.Promotion) { p.Kind = storeline.PromoThreshold }, "items"},
		{func(p *storeline.Promotion) {
			p.Kind, p.Items, p.Threshold, p.Amount = storeline.PromoThreshold, nil, dec("10"), dec("1")
		}, "percent"}, // both a percent and an amount
		{func(p *storeline.Promotion) {
			p.Kind, p.Items, p.Threshold, p.Percent, p.Amount = storeline.PromoThreshold, nil, dec("10"), decimal.Zero, dec("11")
		}, "amount"},
	} {
		p := ok()
		tc.mod(p)
		if err := p.Validate(); storeline.FieldOf(err) != tc.field {
			t.Errorf("Validate = %v, want an error naming %q", err, tc.field)
		}
	}
	if err := ok().Validate(); err != nil {
		t.Errorf("a good promotion: %v", err)
	}
	pol := &storeline.PricePolicy{ID: "p", CustomerGroup: "vip", Percent: dec("0")}
	if err := pol.Validate(); storeline.FieldOf(err) != "percent" {
		t.Errorf("policy with 0%%: %v", err)
	}
	prog := sampleProgramme()
	if err := prog.Validate(); err != nil {
		t.Fatalf("programme: %v", err)
	}
	for _, tc := range []struct {
		mod   func(p *storeline.LoyaltyProgramme)
		field string
	}{
		{func(p *storeline.LoyaltyProgramme) { p.Currency = "eur" }, "currency"},
		{func(p *storeline.LoyaltyProgramme) { p.PointValue = decimal.Zero }, "point_value"},
		{func(p *storeline.LoyaltyProgramme) { p.MaxShare = dec("101") }, "max_share"},
		{func(p *storeline.LoyaltyProgramme) { p.DailyOfflineCap = -1 }, "daily_offline_cap"},
		{func(p *storeline.LoyaltyProgramme) { p.Rates[0].Rate = dec("-1") }, "rates[0].rate"},
		{func(p *storeline.LoyaltyProgramme) { p.Rates = append(p.Rates, p.Rates[0]) }, "rates[2].group"},
		{func(p *storeline.LoyaltyProgramme) { p.ExcludeItems = []storeline.ItemID{"x y"} }, "exclude_items[0]"},
	} {
		p := sampleProgramme()
		tc.mod(p)
		if err := p.Validate(); storeline.FieldOf(err) != tc.field {
			t.Errorf("programme Validate = %v, want an error naming %q", err, tc.field)
		}
	}
}

// tb is what the checks need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// TestStaffDiscount: a staff card takes the currency's programme's staff
// discount off list prices (a policy's place: customer groups' policies do
// not apply), promotions still apply after it, manual prices take none,
// and without a staff discount (or a programme) a staff card prices as
// anyone.
func TestStaffDiscount(t *testing.T) {
	prog := &storeline.LoyaltyProgramme{ID: "eur", Name: "Points", Currency: "EUR", DefaultRate: dec("1"), PointValue: dec("0.01"),
		MaxShare: dec("50"), StaffDiscount: dec("12.5")}
	usd := &storeline.LoyaltyProgramme{ID: "a-usd", Name: "Dollars", Currency: "USD", DefaultRate: dec("1"), PointValue: dec("0.01"),
		MaxShare: dec("50"), StaffDiscount: dec("90")}
	extra := []storeline.Record{prog, usd,
		&storeline.PricePolicy{ID: "all-50", CustomerGroup: "vip", Percent: dec("50")},
		promo("cola-10", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Percent = dec("10") }),
	}
	manual := bl("water", "1")
	manual.Manual, manual.ManualPrice = true, dec("0.80")
	staff := func(extra []storeline.Record, cg storeline.CustGroupID, lines ...pricing.BasketLine) *pricing.Result {
		t.Helper()
		recs := append(fixture(), extra...)
		for _, r := range recs {
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
		}
		res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: store(), At: t0, CustomerGroup: cg, Staff: true, Lines: lines})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res)
		return res
	}
	res := staff(extra, "vip", bl("milk", "2"), bl("cola", "1"), manual)
	check(t, res,
		want{"1.04", "0.00", "2.08", "price_list:base staff:eur", ""},        // round(1.19 × 0.875 = 1.04125)
		want{"1.75", "0.18", "1.57", "price_list:base staff:eur", "cola-10"}, // 2.00 × 0.875, then 10%
		want{"0.80", "0.00", "0.80", "manual", ""},
	)
	if res.Lines[0].Staff != "eur" || res.Lines[0].Policy != "" || res.Lines[2].Staff != "" {
		t.Fatalf("staff/policy fields: %+v", res.Lines)
	}
	prog0 := *prog
	prog0.StaffDiscount = decimal.Zero
	check(t, staff([]storeline.Record{&prog0}, "", bl("milk", "1")), want{"1.19", "0.00", "1.19", "price_list:base", ""})
	check(t, staff(nil, "", bl("milk", "1")), want{"1.19", "0.00", "1.19", "price_list:base", ""})
}

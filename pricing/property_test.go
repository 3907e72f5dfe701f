package pricing_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// render writes a result in a canonical form that shows every decimal's
// coefficient and exponent, so equal renderings mean equal bytes.
func render(res *pricing.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sub=%s disc=%s total=%s thr=%s\n", res.Currency, exact(res.Subtotal), exact(res.Discount), exact(res.Total), res.Threshold)
	for _, l := range res.Lines {
		b.WriteString(renderLine(l))
		b.WriteByte('\n')
	}
	return b.String()
}

func renderLine(l pricing.LineResult) string {
	s := fmt.Sprintf("%s/%s qty=%s src=%s list=%s base=%s pol=%s price=%s gross=%s disc=%s total=%s rule=%q",
		l.Item, l.Group, exact(l.Qty), l.Source, l.PriceList, exact(l.BasePrice), l.Policy, exact(l.Price), exact(l.Gross), exact(l.Discount), exact(l.Total), l.Rule)
	for _, a := range l.Promotions {
		s += fmt.Sprintf(" [%s %s %s]", a.Promotion, a.Kind, exact(a.Amount))
	}
	return s
}

func exact(d decimal.Decimal) string { return fmt.Sprintf("%se%d", d.Coefficient(), d.Exponent()) }

// world is a random chain: groups, items, prices, customer groups,
// policies and promotions, all valid by Validate.
type world struct {
	recs  []storeline.Record
	items []*storeline.Item
	store *storeline.Store
	cgs   []storeline.CustGroupID
	at    time.Time
}

func genMoney(t *rapid.T, label string, maxCents int64) decimal.Decimal {
	return decimal.New(rapid.Int64Range(0, maxCents).Draw(t, label), -2)
}

func genWorld(t *rapid.T, simple bool) *world {
	w := &world{at: t0.Add(time.Duration(rapid.IntRange(-48, 48).Draw(t, "hour")) * time.Hour)}
	w.store = store()
	w.store.PriceLists = []storeline.PriceListID{"promo", "base"}
	if simple {
		w.store.PriceLists = []storeline.PriceListID{"base"}
	}
	ngroups := rapid.IntRange(1, 6).Draw(t, "groups")
	groups := make([]storeline.GroupID, ngroups)
	for i := range groups {
		groups[i] = storeline.GroupID(fmt.Sprintf("g%d", i))
		g := &storeline.Group{ID: groups[i]}
		if i > 0 && rapid.Bool().Draw(t, "nested") {
			g.Parent = groups[rapid.IntRange(0, i-1).Draw(t, "parent")]
		}
		w.recs = append(w.recs, g)
	}
	nitems := rapid.IntRange(1, 10).Draw(t, "items")
	from := func() time.Time {
		return storeline.WallClock(t0, time.UTC).Add(time.Duration(rapid.IntRange(-72, 72).Draw(t, "from")) * time.Hour)
	}
	for i := 0; i < nitems; i++ {
		it := &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%d", i)), SKU: fmt.Sprintf("S%d", i), Name: "x",
			Group: rapid.SampledFrom(groups).Draw(t, "group"), Dept: "d", Unit: storeline.Piece, VATRate: dec("7")}
		if !simple && rapid.IntRange(0, 4).Draw(t, "kg") == 0 {
			it.Unit = storeline.Kg
		}
		w.items = append(w.items, it)
		w.recs = append(w.recs, it)
		for _, list := range w.store.PriceLists {
			seen := map[time.Time]bool{}
			for k := rapid.IntRange(0, 2).Draw(t, "prices"); k > 0; k-- {
				f := from()
				if seen[f] {
					continue // one price per (list, item, From), as the store keeps
				}
				seen[f] = true
				w.recs = append(w.recs, &storeline.Price{List: list, Item: it.ID, From: f,
					Price: decimal.New(rapid.Int64Range(0, 500000).Draw(t, "price"), -4)})
			}
		}
	}
	itemIDs := func(label string) []storeline.ItemID {
		var out []storeline.ItemID
		seen := map[storeline.ItemID]bool{}
		for k := rapid.IntRange(1, 3).Draw(t, label); k > 0; k-- {
			id := rapid.SampledFrom(w.items).Draw(t, label).ID
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		return out
	}
	npromos := rapid.IntRange(0, 12).Draw(t, "promos")
	for i := 0; i < npromos; i++ {
		p := &storeline.Promotion{ID: storeline.PromotionID(fmt.Sprintf("p%02d", i)), Name: "p", From: from()}
		if rapid.Bool().Draw(t, "until") {
			p.Until = p.From.Add(time.Duration(rapid.IntRange(1, 96).Draw(t, "len")) * time.Hour)
		}
		kinds := []storeline.PromoKind{storeline.PromoPercent}
		if !simple {
			kinds = []storeline.PromoKind{storeline.PromoPercent, storeline.PromoFixed, storeline.PromoNForM, storeline.PromoBundle, storeline.PromoThreshold}
			p.Priority = rapid.IntRange(-1, 1).Draw(t, "priority")
			if rapid.IntRange(0, 3).Draw(t, "scoped") == 0 {
				p.Stores = []storeline.StoreID{rapid.SampledFrom([]storeline.StoreID{"s1", "s2"}).Draw(t, "store")}
			}
		}
		p.Kind = rapid.SampledFrom(kinds).Draw(t, "kind")
		targetItems := func() {
			p.Items = itemIDs("targets")
			if !simple && rapid.Bool().Draw(t, "bygroup") {
				p.Items = nil
				p.Groups = []storeline.GroupID{rapid.SampledFrom(groups).Draw(t, "tgroup")}
			}
		}
		switch p.Kind {
		case storeline.PromoPercent:
			targetItems()
			p.Percent = decimal.New(rapid.Int64Range(1, 10000).Draw(t, "pct"), -2)
		case storeline.PromoFixed:
			targetItems()
			p.Amount = decimal.New(rapid.Int64Range(1, 2000).Draw(t, "off"), -2)
		case storeline.PromoNForM:
			targetItems()
			p.N = rapid.IntRange(2, 5).Draw(t, "n")
			p.M = rapid.IntRange(1, p.N-1).Draw(t, "m")
		case storeline.PromoBundle:
			for _, id := range itemIDs("parts") {
				p.Bundle = append(p.Bundle, storeline.BundlePart{Item: id, Qty: rapid.IntRange(1, 3).Draw(t, "partqty")})
			}
			if len(p.Bundle) == 1 && p.Bundle[0].Qty == 1 {
				p.Bundle[0].Qty = 2
			}
			p.Amount = genMoney(t, "bundleprice", 5000)
		case storeline.PromoThreshold:
			p.Threshold = decimal.New(rapid.Int64Range(1, 10000).Draw(t, "thr"), -2)
			if rapid.Bool().Draw(t, "thrpct") {
				p.Percent = decimal.New(rapid.Int64Range(1, 5000).Draw(t, "thrpctv"), -2)
			} else {
				p.Amount = decimal.New(rapid.Int64Range(1, p.Threshold.Shift(2).IntPart()).Draw(t, "thramt"), -2)
			}
		}
		w.recs = append(w.recs, p)
	}
	if !simple {
		w.cgs = []storeline.CustGroupID{"c0", "c1"}
		w.recs = append(w.recs, &storeline.CustomerGroup{ID: "c0"}, &storeline.CustomerGroup{ID: "c1", Parent: "c0"})
		for i := rapid.IntRange(0, 3).Draw(t, "policies"); i > 0; i-- {
			pol := &storeline.PricePolicy{ID: storeline.PolicyID(fmt.Sprintf("pol%d", i)), CustomerGroup: rapid.SampledFrom(w.cgs).Draw(t, "polcg"),
				Percent: decimal.New(rapid.Int64Range(1, 5000).Draw(t, "polpct"), -2)}
			if rapid.Bool().Draw(t, "polgroups") {
				pol.Groups = []storeline.GroupID{rapid.SampledFrom(groups).Draw(t, "polgroup")}
			}
			w.recs = append(w.recs, pol)
		}
		// Staff cards' discount (0: none).
		w.recs = append(w.recs, &storeline.LoyaltyProgramme{ID: "prog", Name: "Points", Currency: w.store.Currency,
			DefaultRate: decimal.NewFromInt(1), PointValue: decimal.New(1, -2), MaxShare: decimal.NewFromInt(50),
			StaffDiscount: decimal.New(rapid.Int64Range(0, 5000).Draw(t, "staffpct"), -2)})
	}
	for _, r := range w.recs {
		if err := r.Validate(); err != nil {
			t.Fatalf("generated %s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
	}
	return w
}

func genBasket(t *rapid.T, w *world) pricing.Basket {
	b := pricing.Basket{Store: w.store, At: w.at}
	if len(w.cgs) > 0 && rapid.Bool().Draw(t, "customer") {
		b.CustomerGroup = rapid.SampledFrom(w.cgs).Draw(t, "cg")
	}
	if len(w.cgs) > 0 {
		b.Staff = rapid.IntRange(0, 3).Draw(t, "staff") == 0
	}
	for n := rapid.IntRange(1, 15).Draw(t, "lines"); n > 0; n-- {
		it := rapid.SampledFrom(w.items).Draw(t, "item")
		l := pricing.BasketLine{Item: it.ID, Qty: decimal.NewFromInt(int64(rapid.IntRange(1, 12).Draw(t, "qty")))}
		if it.Unit == storeline.Kg {
			l.Qty = decimal.New(int64(rapid.IntRange(1, 5000).Draw(t, "grams")), -3)
		}
		if len(w.cgs) > 0 && rapid.IntRange(0, 9).Draw(t, "manual") == 0 {
			l.Manual, l.ManualPrice = true, genMoney(t, "manualprice", 10000)
		}
		b.Lines = append(b.Lines, l)
	}
	return b
}

func mustPrice(t tb, cat pricing.Catalog, b pricing.Basket) *pricing.Result {
	t.Helper()
	res, err := pricing.New(cat).Price(b)
	if err != nil {
		t.Fatalf("Price: %v", err)
	}
	checkResult(t, res)
	return res
}

// TestPropertyDeterministic: the same basket, data and time give the same
// bytes, whatever order the catalog's records came in and whichever engine
// prices it.
func TestPropertyDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, false)
		b := genBasket(t, w)
		first := render(mustPrice(t, pricing.NewMemCatalog(w.recs), b))
		shuffled := rapid.Permutation(w.recs).Draw(t, "shuffled")
		if again := render(mustPrice(t, pricing.NewMemCatalog(shuffled), b)); again != first {
			t.Fatalf("priced twice:\n%s\n%s", first, again)
		}
	})
}

// TestPropertyLineOrder: reordering a basket's lines permutes the result's
// lines and changes neither them nor the totals.
func TestPropertyLineOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, false)
		b := genBasket(t, w)
		cat := pricing.NewMemCatalog(w.recs)
		res := mustPrice(t, cat, b)
		idx := make([]int, len(b.Lines))
		for i := range idx {
			idx[i] = i
		}
		idx = rapid.Permutation(idx).Draw(t, "perm")
		b2 := b
		b2.Lines = make([]pricing.BasketLine, len(idx))
		for i, j := range idx {
			b2.Lines[i] = b.Lines[j]
		}
		res2 := mustPrice(t, cat, b2)
		for i, j := range idx {
			if a, c := renderLine(res.Lines[j]), renderLine(res2.Lines[i]); a != c && !identical(b.Lines, j) {
				t.Fatalf("line %d moved to %d:\n%s\n%s", j, i, a, c)
			}
		}
		if !res.Total.Equal(res2.Total) || !res.Discount.Equal(res2.Discount) || res.Threshold != res2.Threshold {
			t.Fatalf("totals %s/%s, after reordering %s/%s", res.Total, res.Discount, res2.Total, res2.Discount)
		}
		if a, c := sortedLines(res), sortedLines(res2); a != c {
			t.Fatalf("lines differ as a multiset:\n%s\n%s", a, c)
		}
	})
}

// identical reports whether line j has a twin in the basket: between twins
// the engine may swap what it gives.
func identical(lines []pricing.BasketLine, j int) bool {
	for i, l := range lines {
		if i != j && l.Item == lines[j].Item && l.Qty.Equal(lines[j].Qty) && l.Manual == lines[j].Manual && l.ManualPrice.Equal(lines[j].ManualPrice) {
			return true
		}
	}
	return false
}

func sortedLines(res *pricing.Result) string {
	var ls []string
	for _, l := range res.Lines {
		ls = append(ls, renderLine(l))
	}
	sort.Strings(ls)
	return strings.Join(ls, "\n")
}

// TestPropertyReference checks the engine against a naive model on simple
// data: one price list, percent promotions on items, no policies.
func TestPropertyReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, true)
		b := genBasket(t, w)
		res := mustPrice(t, pricing.NewMemCatalog(w.recs), b)
		wall := storeline.WallClock(b.At, mustLoc(t, "Europe/Berlin"))
		for i, bl := range b.Lines {
			// The latest price at or before wall.
			var best *storeline.Price
			for _, r := range w.recs {
				if p, ok := r.(*storeline.Price); ok && p.Item == bl.Item && !p.From.After(wall) && (best == nil || !p.From.Before(best.From)) {
					best = p
				}
			}
			got := res.Lines[i]
			if best == nil {
				if got.Priced() || !got.Total.IsZero() {
					t.Fatalf("line %d: no price in the data, engine says %s", i, renderLine(got))
				}
				continue
			}
			price := best.Price.Round(2)
			gross := bl.Qty.Mul(price).Round(2)
			disc := decimal.Zero
			for _, r := range w.recs {
				p, ok := r.(*storeline.Promotion)
				if !ok || wall.Before(p.From) || (!p.Until.IsZero() && !wall.Before(p.Until)) {
					continue
				}
				for _, it := range p.Items {
					if it == bl.Item {
						if d := gross.Mul(p.Percent).Div(decimal.NewFromInt(100)).Round(2); d.GreaterThan(disc) {
							disc = d
						}
					}
				}
			}
			if !got.Price.Equal(price) || !got.Gross.Equal(gross) || !got.Discount.Equal(disc) {
				t.Fatalf("line %d: engine %s; model price %s gross %s discount %s", i, renderLine(got), price, gross, disc)
			}
		}
	})
}

func mustLoc(t *rapid.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestPropertyReverse: however a line is returned in parts, the reversals
// sum to what it earned, and never more at any point.
func TestPropertyReverse(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		earned := rapid.Int64Range(0, 1_000_000).Draw(t, "earned")
		sold := decimal.New(rapid.Int64Range(1, 100_000).Draw(t, "sold"), -3)
		returned, back := decimal.Zero, int64(0)
		for returned.LessThan(sold) {
			part := decimal.New(rapid.Int64Range(1, 100_000).Draw(t, "part"), -3)
			back += pricing.Reverse(earned, sold, returned, part)
			returned = decimal.Min(sold, returned.Add(part))
			if back > earned {
				t.Fatalf("took back %d of %d", back, earned)
			}
		}
		if back != earned {
			t.Fatalf("all returned, took back %d of %d", back, earned)
		}
	})
}

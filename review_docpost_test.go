package storeline_test

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// reviewBook is a memBook with raw goods, semi-finished goods made of
// them (sub-recipes) and finished goods made of both, in kg and pieces.
func reviewBook(rng *rand.Rand) (*memBook, []storeline.ItemID, []storeline.ItemID) {
	b := newMemBook()
	var all, made []storeline.ItemID
	for i := 0; i < 4; i++ {
		id := storeline.ItemID(fmt.Sprintf("raw%d", i))
		u := storeline.Kg
		if i%2 == 1 {
			u = storeline.Piece
		}
		b.items[id] = &storeline.Item{ID: id, Dept: []storeline.DeptID{"main", "bar"}[i%2], Unit: u, VATRate: dec("21")}
		all = append(all, id)
	}
	known := func(id storeline.ItemID) bool { _, ok := b.items[id]; return ok }
	for lvl, n := range []int{3, 2} {
		var next []storeline.ItemID
		for i := 0; i < n; i++ {
			id := storeline.ItemID(fmt.Sprintf("m%d_%d", lvl, i))
			u := storeline.Kg
			if rng.Intn(2) == 0 {
				u = storeline.Piece
			}
			b.items[id] = &storeline.Item{ID: id, Dept: "bar", Unit: u, VATRate: dec("10")}
			r := &storeline.Recipe{Item: id, Yield: decimal.NewFromInt(int64(1 + rng.Intn(4)))}
			if u == storeline.Kg && rng.Intn(2) == 0 {
				r.Yield = decimal.New(int64(500+rng.Intn(2000)), -3)
			}
			perm := rng.Perm(len(all))
			for _, j := range perm[:1+rng.Intn(3)] {
				c := all[j]
				q := decimal.NewFromInt(int64(1 + rng.Intn(3)))
				if b.items[c].Unit.Fractional() {
					q = decimal.New(int64(1+rng.Intn(3000)), -3)
				}
				r.Components = append(r.Components, storeline.Component{Item: c, Qty: q})
			}
			if err := r.Validate(); err != nil {
				panic(err)
			}
			if err := storeline.CheckRecipe(r, known, b.Recipe); err != nil {
				panic(err)
			}
			b.recipes[id] = r
			next = append(next, id)
			made = append(made, id)
		}
		all = append(all, next...)
	}
	return b, all, made
}

func stockMoneyOf(ps []storeline.Posting, prefix string) map[storeline.Asset]decimal.Decimal {
	out := map[storeline.Asset]decimal.Decimal{}
	for _, p := range ps {
		if strings.HasPrefix(p.Account, prefix) {
			out[p.Asset] = out[p.Asset].Add(p.Amount)
		}
	}
	return out
}

// TestReviewDocumentsRandom posts random documents over random recipes
// with sub-recipes and checks, after every step: every asset sums to zero;
// a production keeps the store's stock value, but for what it re-costs of a
// shortfall of its product (the product is worth exactly
// what its components cost) and moves the units its recipes say; a
// cancel restores every balance (but a sweep of value without units);
// and an item whose units never went below zero holds no value without
// units.
func TestReviewDocumentsRandom(t *testing.T) {
	for seed := int64(1); seed <= 500; seed++ {
		rng := rand.New(rand.NewSource(seed))
		b, all, made := reviewBook(rng)
		stores := []storeline.StoreID{"s1", "s2"}
		depts := []storeline.DeptID{"main", "bar"}
		wentNegative := map[string]bool{}
		var posted []string
		qty := func(it storeline.ItemID) decimal.Decimal {
			if b.items[it].Unit.Fractional() {
				return decimal.New(int64(1+rng.Intn(20000)), -3)
			}
			return decimal.NewFromInt(int64(1 + rng.Intn(20)))
		}
		for step := 0; step < 60; step++ {
			id := fmt.Sprintf("d%d", step)
			s := stores[rng.Intn(2)]
			var d *storeline.Document
			switch k := rng.Intn(13); {
			case k == 10:
				it := all[rng.Intn(len(all))]
				from := depts[rng.Intn(2)]
				d = &storeline.Document{ID: id, Type: storeline.DocTransfer, Store: s, ToDept: depts[0],
					Lines: []storeline.DocumentLine{{Item: it, Dept: from, Qty: qty(it)}}}
				if from == depts[0] {
					d.ToDept = depts[1]
				}
			case k == 11:
				it := all[rng.Intn(len(all))]
				to := stores[0]
				if s == to {
					to = stores[1]
				}
				d = &storeline.Document{ID: id, Type: storeline.DocTransfer, Store: s, ToStore: to,
					Lines: []storeline.DocumentLine{{Item: it, Dept: depts[rng.Intn(2)], Qty: qty(it)}}}
			case k == 12:
				var open []*storeline.PostedDocument
				for _, pd := range b.docs {
					if pd.Doc.Type == storeline.DocTransfer && pd.Doc.ToStore != "" && pd.Status == storeline.DocPosted && pd.ReceivedBy == "" {
						open = append(open, pd)
					}
				}
				if len(open) == 0 {
					continue
				}
				sort.Slice(open, func(i, j int) bool { return open[i].Doc.ID < open[j].Doc.ID })
				sh := open[rng.Intn(len(open))]
				sl := sh.Doc.Lines[0]
				recv := sl.Qty
				if rng.Intn(2) == 0 {
					recv = qty(sl.Item)
				}
				d = &storeline.Document{ID: id, Type: storeline.DocTransferReceipt, Store: sh.Doc.ToStore, Shipment: sh.Doc.ID,
					Lines: []storeline.DocumentLine{{Item: sl.Item, Dept: depts[rng.Intn(2)], Qty: recv}}}
			case k < 3:
				d = &storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: s, Supplier: "sup1"}
				for n := 1 + rng.Intn(4); n > 0; n-- {
					it := all[rng.Intn(len(all))]
					l := storeline.DocumentLine{Item: it, Dept: depts[rng.Intn(2)], Qty: qty(it), PurchasePrice: decimal.New(int64(1+rng.Intn(99999)), -4)}
					d.Lines = append(d.Lines, l)
				}
			case k < 6:
				d = &storeline.Document{ID: id, Type: storeline.DocProduction, Store: s}
				for n := 1 + rng.Intn(3); n > 0; n-- {
					it := made[rng.Intn(len(made))]
					r := b.recipes[it]
					q := r.Yield.Mul(decimal.NewFromInt(int64(1 + rng.Intn(3))))
					if !b.items[it].Unit.Fractional() && !q.IsInteger() {
						continue
					}
					d.Lines = append(d.Lines, storeline.DocumentLine{Item: it, Qty: q})
				}
				if len(d.Lines) == 0 {
					continue
				}
			case k == 6:
				d = &storeline.Document{ID: id, Type: storeline.DocWriteOff, Store: s, Reason: "x"}
				it := all[rng.Intn(len(all))]
				d.Lines = append(d.Lines, storeline.DocumentLine{Item: it, Dept: depts[rng.Intn(2)], Qty: qty(it)})
			case k == 7:
				d = &storeline.Document{ID: id, Type: storeline.DocStocktake, Store: s}
				it := all[rng.Intn(len(all))]
				d.Lines = append(d.Lines, storeline.DocumentLine{Item: it, Dept: depts[rng.Intn(2)], Qty: qty(it)})
			case k == 8:
				it := all[rng.Intn(len(all))]
				d = &storeline.Document{ID: id, Type: storeline.DocSupplierReturn, Store: s, Supplier: "sup1",
					Lines: []storeline.DocumentLine{{Item: it, Dept: depts[rng.Intn(2)], Qty: qty(it)}}}
				if rng.Intn(2) == 0 {
					d.Lines[0].PurchasePrice = decimal.New(int64(1+rng.Intn(99999)), -4)
				}
			default:
				if len(posted) == 0 {
					continue
				}
				victim := posted[rng.Intn(len(posted))]
				pd := b.docs[victim]
				before := map[string]decimal.Decimal{}
				for k, v := range b.bal {
					before[k] = v
				}
				ps, err := b.cancel(victim)
				if storeline.KindOf(err) == storeline.Conflict {
					continue
				}
				if err != nil {
					t.Fatalf("seed %d: cancel %s: %v", seed, victim, err)
				}
				for i, p := range posted {
					if p == victim {
						posted = append(posted[:i], posted[i+1:]...)
						break
					}
				}
				sweep := storeline.MergePostings(append(append([]storeline.Posting(nil), ps...), pd.Postings...))
				for _, p := range sweep {
					if !(strings.HasPrefix(p.Account, "stock/") && p.Asset.IsMoney()) && !strings.HasPrefix(p.Account, "variance/") {
						t.Fatalf("seed %d: cancelling %s: %s is not the original negated", seed, victim, p)
					}
				}
				checkConservation(t, b)
				reviewCheckStock(t, seed, b, all, wentNegative, "cancel "+victim)
				continue
			}
			if err := d.Validate(); err != nil {
				t.Fatalf("seed %d: %+v: %v", seed, d, err)
			}
			der, err := b.post(d)
			if err != nil {
				if d.Type == storeline.DocProduction && storeline.KindOf(err) == storeline.Invalid {
					continue // a component counted in whole pieces the batch splits
				}
				t.Fatalf("seed %d: post %+v: %v", seed, d, err)
			}
			posted = append(posted, id)
			checkConservation(t, b)
			if d.Type == storeline.DocProduction {
				// The store's stock value is unchanged but for what a
				// product made while short re-costed its sales by: the
				// products took exactly what their components cost.
				money := stockMoneyOf(der.Postings, "stock/"+string(s)+"/")["cur:EUR"].Add(stockMoneyOf(der.Postings, "cogs/"+string(s)+"/")["cur:EUR"])
				if !money.IsZero() {
					t.Fatalf("seed %d: production %s changed the stock value by %s:\n%s", seed, id, money, formatPostings(der.Postings))
				}
				// Units: each product +qty, each component −qty×c/yield.
				want := map[storeline.Asset]decimal.Decimal{}
				for _, l := range d.Lines {
					want[storeline.ItemAsset(l.Item)] = want[storeline.ItemAsset(l.Item)].Add(l.Qty)
					r := b.recipes[l.Item]
					for _, c := range r.Components {
						cq := c.Qty.Mul(l.Qty).DivRound(r.Yield, storeline.QtyScale)
						want[storeline.ItemAsset(c.Item)] = want[storeline.ItemAsset(c.Item)].Sub(cq)
					}
				}
				got := stockMoneyOf(der.Postings, "stock/"+string(s)+"/")
				for a, q := range want {
					if !got[a].Equal(q) {
						t.Fatalf("seed %d: production %s moved %s of %s on stock, want %s", seed, id, got[a], a, q)
					}
				}
			}
			reviewCheckStock(t, seed, b, all, wentNegative, id)
		}
	}
}

func reviewCheckStock(t *testing.T, seed int64, b *memBook, all []storeline.ItemID, wentNegative map[string]bool, after string) {
	t.Helper()
	for _, st := range b.stores {
		for _, it := range all {
			k := string(st.ID) + "/" + string(it)
			for _, dp := range st.Departments {
				if b.Balance(storeline.StockAccount(st.ID, dp.ID, it), storeline.ItemAsset(it)).IsNegative() {
					wentNegative[k] = true
				}
			}
			q, v := storeline.StockOf(b, st, it)
			if q.IsNegative() {
				wentNegative[k] = true
			}
			if !wentNegative[k] && q.IsZero() && !v.IsZero() {
				t.Fatalf("seed %d: after %s: %s holds %s of value on no units (never below zero)", seed, after, k, v)
			}
		}
	}
}

// TestReviewProductionOrderOfLines: a production that makes a
// semi-finished good and, on an earlier line, a product of it costs the
// product at what the semi-finished good cost to make, whatever the order
// of its lines. Listed product first, the dough was taken off an empty
// shelf at its last cost (nothing: never bought), the bread was worth
// nothing, and the flour's value stayed on the dough's shelf with no
// dough on it.
func TestReviewProductionOrderOfLines(t *testing.T) {
	post := func(lines ...storeline.DocumentLine) (*memBook, []storeline.Posting) {
		b := newMemBook()
		b.items["dough"] = &storeline.Item{ID: "dough", Dept: "main", Unit: storeline.Kg, VATRate: dec("10")}
		b.recipes["dough"] = &storeline.Recipe{Item: "dough", Yield: dec("1"), Components: []storeline.Component{{Item: "flour", Qty: dec("0.8")}}}
		b.recipes["bread"] = &storeline.Recipe{Item: "bread", Yield: dec("10"), Components: []storeline.Component{{Item: "dough", Qty: dec("5")}}}
		inv := line("flour", "50")
		inv.PurchasePrice = dec("0.88") // 0.80 a kg net of 10% VAT
		if _, err := b.post(&storeline.Document{ID: "inv", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1", Lines: []storeline.DocumentLine{inv}}); err != nil {
			t.Fatal(err)
		}
		der, err := b.post(&storeline.Document{ID: "pr", Type: storeline.DocProduction, Store: "s1", Lines: lines})
		if err != nil {
			t.Fatal(err)
		}
		return b, der.Postings
	}
	// 10 bread need 5 kg of dough, which need 4 kg of flour: 3.20.
	_, first := post(line("dough", "5"), line("bread", "10"))
	b, last := post(line("bread", "10"), line("dough", "5"))
	if formatPostings(first) != formatPostings(last) {
		t.Errorf("the order of a production's lines changes its postings:\n--- semi-finished first\n%s--- product first\n%s", formatPostings(first), formatPostings(last))
	}
	if q, v := storeline.StockOf(b, b.stores["s1"], "bread"); !q.Equal(dec("10")) || !v.Equal(dec("3.2")) {
		t.Errorf("bread: %s worth %s, want 10 worth 3.20 (the flour of its dough)", q, v)
	}
	if q, v := storeline.StockOf(b, b.stores["s1"], "dough"); !q.IsZero() || !v.IsZero() {
		t.Errorf("dough: %s worth %s, want none (all of it went into the bread)", q, v)
	}
}

// TestReviewRecipeDepthWhateverTheOrder: MaxRecipeDepth bounds how deep
// sub-recipes nest, along every path. A chain reached first by a short
// path was remembered as clean and not walked again when a longer path
// reached it, so a recipe nesting deeper than the bound was accepted with
// its components in one order and refused in the other.
func TestReviewRecipeDepthWhateverTheOrder(t *testing.T) {
	recipes := map[storeline.ItemID]*storeline.Recipe{}
	chain := func(prefix string, n int, end storeline.ItemID) storeline.ItemID {
		next := end
		for i := n - 1; i >= 0; i-- {
			id := storeline.ItemID(fmt.Sprintf("%s%d", prefix, i))
			if next != "" {
				recipes[id] = &storeline.Recipe{Item: id, Yield: dec("1"), Components: []storeline.Component{{Item: next, Qty: dec("1")}}}
			}
			next = id
		}
		return next
	}
	// a0 → … → a31: 32 levels, as deep as a recipe's component may go.
	a := chain("a", storeline.MaxRecipeDepth, "")
	// b0 → … → b9 → a0: 42 levels.
	b := chain("b", 10, a)
	known := func(storeline.ItemID) bool { return true }
	lookup := func(id storeline.ItemID) (*storeline.Recipe, bool) { r, ok := recipes[id]; return r, ok }
	only := &storeline.Recipe{Item: "top", Yield: dec("1"), Components: []storeline.Component{{Item: a, Qty: dec("1")}}}
	if err := storeline.CheckRecipe(only, known, lookup); err != nil {
		t.Errorf("CheckRecipe(top of %s, %d deep) = %v, want nil", a, storeline.MaxRecipeDepth, err)
	}
	for _, comps := range [][]storeline.ItemID{{b, a}, {a, b}} {
		r := &storeline.Recipe{Item: "top", Yield: dec("1")}
		for _, c := range comps {
			r.Components = append(r.Components, storeline.Component{Item: c, Qty: dec("1")})
		}
		err := storeline.CheckRecipe(r, known, lookup)
		if storeline.KindOf(err) != storeline.Invalid {
			t.Errorf("CheckRecipe(top of %v) = %v, want Invalid: it nests %d deep through %s", comps, err, storeline.MaxRecipeDepth+10, b)
		}
	}
}

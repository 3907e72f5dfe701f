package storeline_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// memBook is a StockBook over maps, with the documents' lifecycle as
// central keeps it: a naive reference for the property test and the
// books of the golden transcripts.
type memBook struct {
	stores    map[storeline.StoreID]*storeline.Store
	items     map[storeline.ItemID]*storeline.Item
	suppliers map[storeline.SupplierID]bool
	lists     map[storeline.PriceListID]bool
	recipes   map[storeline.ItemID]*storeline.Recipe
	bal       map[string]decimal.Decimal
	last      map[string]decimal.Decimal
	docs      map[string]*storeline.PostedDocument
}

func newMemBook() *memBook {
	b := &memBook{
		stores:    map[storeline.StoreID]*storeline.Store{},
		items:     map[storeline.ItemID]*storeline.Item{},
		suppliers: map[storeline.SupplierID]bool{"sup1": true, "sup2": true},
		lists:     map[storeline.PriceListID]bool{"retail": true},
		recipes:   map[storeline.ItemID]*storeline.Recipe{},
		bal:       map[string]decimal.Decimal{},
		last:      map[string]decimal.Decimal{},
		docs:      map[string]*storeline.PostedDocument{},
	}
	for _, s := range []string{"s1", "s2"} {
		b.stores[storeline.StoreID(s)] = &storeline.Store{ID: storeline.StoreID(s), Name: s, TimeZone: "Europe/Riga", Currency: "EUR",
			Departments: []storeline.Department{{ID: "main"}, {ID: "bar"}}}
	}
	for _, it := range []storeline.Item{
		{ID: "milk", Dept: "main", Unit: storeline.Piece, VATRate: dec("10")},
		{ID: "cheese", Dept: "main", Unit: storeline.Kg, VATRate: dec("21")},
		{ID: "flour", Dept: "main", Unit: storeline.Kg, VATRate: dec("10")},
		{ID: "bread", Dept: "bar", Unit: storeline.Piece, VATRate: dec("10")},
	} {
		b.items[it.ID] = &it
	}
	b.recipes["bread"] = &storeline.Recipe{Item: "bread", Yield: dec("10"),
		Components: []storeline.Component{{Item: "flour", Qty: dec("5")}, {Item: "milk", Qty: dec("2")}}}
	return b
}

func (b *memBook) Store(id storeline.StoreID) (*storeline.Store, bool) {
	s, ok := b.stores[id]
	return s, ok
}
func (b *memBook) Item(id storeline.ItemID) (*storeline.Item, bool) {
	i, ok := b.items[id]
	return i, ok
}
func (b *memBook) Supplier(id storeline.SupplierID) bool   { return b.suppliers[id] }
func (b *memBook) PriceList(id storeline.PriceListID) bool { return b.lists[id] }
func (b *memBook) Recipe(id storeline.ItemID) (*storeline.Recipe, bool) {
	r, ok := b.recipes[id]
	return r, ok
}
func (b *memBook) Balance(acct string, a storeline.Asset) decimal.Decimal {
	return b.bal[acct+" "+string(a)]
}
func (b *memBook) LastCost(s storeline.StoreID, i storeline.ItemID) decimal.Decimal {
	return b.last[string(s)+"/"+string(i)]
}
func (b *memBook) Document(id string) (*storeline.PostedDocument, bool) {
	d, ok := b.docs[id]
	return d, ok
}

func (b *memBook) apply(ps []storeline.Posting) {
	for _, p := range ps {
		k := p.Account + " " + string(p.Asset)
		b.bal[k] = b.bal[k].Add(p.Amount)
	}
}

func (b *memBook) post(d *storeline.Document) (*storeline.Derived, error) {
	if _, ok := b.docs[d.ID]; ok {
		return nil, storeline.Errorf(storeline.Conflict, "post", "document %s exists", d.ID)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	der, err := storeline.PostDocument(b, d)
	if err != nil {
		return nil, err
	}
	b.apply(der.Postings)
	for _, c := range der.Costs {
		b.last[string(c.Store)+"/"+string(c.Item)] = c.UnitCost
	}
	b.docs[d.ID] = &storeline.PostedDocument{Doc: *d, Status: storeline.DocPosted, Postings: der.Postings}
	if d.Type == storeline.DocTransferReceipt {
		b.docs[d.Shipment].ReceivedBy = d.ID
	}
	return der, nil
}

func (b *memBook) cancel(id string) ([]storeline.Posting, error) {
	pd, ok := b.docs[id]
	if !ok || pd.Status != storeline.DocPosted {
		return nil, storeline.Errorf(storeline.Conflict, "cancel", "document %s is not posted", id)
	}
	if pd.ReceivedBy != "" {
		return nil, storeline.Errorf(storeline.Conflict, "cancel", "transfer %s was received by %s", id, pd.ReceivedBy)
	}
	ps := storeline.CancelDocument(b, pd)
	b.apply(ps)
	pd.Status = storeline.DocCancelled
	if pd.Doc.Type == storeline.DocTransferReceipt {
		b.docs[pd.Doc.Shipment].ReceivedBy = ""
	}
	return ps, nil
}

// sale posts what a shop's receipt posts for units (and its money), then
// what central derives: the cost of sales.
func (b *memBook) sale(store storeline.StoreID, dept storeline.DeptID, item storeline.ItemID, qty, total decimal.Decimal) []storeline.Posting {
	shop := storeline.MergePostings([]storeline.Posting{
		{Account: storeline.StockAccount(store, dept, item), Asset: storeline.ItemAsset(item), Amount: qty.Neg()},
		{Account: storeline.SoldAccount(store, item), Asset: storeline.ItemAsset(item), Amount: qty},
		{Account: storeline.RevenueAccount(store), Asset: "cur:EUR", Amount: total.Neg()},
		{Account: storeline.CashAccount(store, "t1"), Asset: "cur:EUR", Amount: total},
	})
	cost, err := storeline.CostOfSales(b, store, shop)
	if err != nil {
		panic(err)
	}
	b.apply(shop)
	b.apply(cost)
	return cost
}

func formatPostings(ps []storeline.Posting) string {
	var sb strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&sb, "%-34s %-12s %12s\n", p.Account, p.Asset, p.Amount.String())
	}
	return sb.String()
}

func (b *memBook) formatBalances() string {
	keys := make([]string, 0, len(b.bal))
	for k, v := range b.bal {
		if !v.IsZero() {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		acct, asset, _ := strings.Cut(k, " ")
		fmt.Fprintf(&sb, "%-34s %-12s %12s\n", acct, asset, b.bal[k].String())
	}
	return sb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "postings", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func checkConservation(t interface{ Fatalf(string, ...any) }, b *memBook) {
	sums := map[string]decimal.Decimal{}
	for k, v := range b.bal {
		_, asset, _ := strings.Cut(k, " ")
		sums[asset] = sums[asset].Add(v)
	}
	for a, s := range sums {
		if !s.IsZero() {
			t.Fatalf("asset %s sums to %s over all accounts, want 0", a, s)
		}
	}
}

func line(item string, qty string) storeline.DocumentLine {
	return storeline.DocumentLine{Item: storeline.ItemID(item), Qty: dec(qty)}
}

// TestDocumentPostingsGolden posts one document of every kind, in an order
// where each depends on the ones before, and compares each document's
// postings (and the final balances) with testdata/postings.
func TestDocumentPostingsGolden(t *testing.T) {
	b := newMemBook()
	milk := storeline.DocumentLine{Item: "milk", Packs: dec("2"), PackFactor: dec("12"), PurchasePrice: dec("1.10"),
		Batch: "B1", Expiry: "2026-12-10", Certificate: "C-1"}
	cheese := line("cheese", "10.5")
	cheese.PurchasePrice = dec("8.47")
	flour := line("flour", "50")
	flour.PurchasePrice = dec("0.80")
	ret := line("milk", "4")
	ret.PurchasePrice = dec("1.10")
	docs := []*storeline.Document{
		{ID: "inv1", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1", Lines: []storeline.DocumentLine{milk, cheese, flour}},
		{ID: "ret1", Type: storeline.DocSupplierReturn, Store: "s1", Supplier: "sup1", Lines: []storeline.DocumentLine{ret}},
		{ID: "tr1", Type: storeline.DocTransfer, Store: "s1", ToStore: "s2", Lines: []storeline.DocumentLine{line("milk", "6"), line("cheese", "2")}},
		{ID: "rc1", Type: storeline.DocTransferReceipt, Store: "s2", Shipment: "tr1", Lines: []storeline.DocumentLine{line("milk", "5")}},
		{ID: "dt1", Type: storeline.DocTransfer, Store: "s1", ToDept: "bar", Lines: []storeline.DocumentLine{line("cheese", "1.5")}},
		{ID: "st1", Type: storeline.DocStocktake, Store: "s1", Lines: []storeline.DocumentLine{line("milk", "13"), line("cheese", "7")}},
		{ID: "wo1", Type: storeline.DocWriteOff, Store: "s1", Reason: "spoiled", Lines: []storeline.DocumentLine{line("cheese", "0.5")}},
		{ID: "pr1", Type: storeline.DocProduction, Store: "s1", Lines: []storeline.DocumentLine{line("bread", "10")}},
		{ID: "rp1", Type: storeline.DocRepricing, Store: "s1", PriceList: "retail", From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			Lines: []storeline.DocumentLine{{Item: "milk", Price: dec("1.49")}}},
	}
	for i, d := range docs {
		der, err := b.post(d)
		if err != nil {
			t.Fatalf("post %s: %v", d.ID, err)
		}
		if err := storeline.CheckPostings(der.Postings); err != nil {
			t.Fatalf("%s: %v", d.ID, err)
		}
		out := formatPostings(der.Postings)
		for _, bi := range der.Batches {
			out += fmt.Sprintf("batch %s/%s %s expires %s cert %s qty %s\n", bi.Store, bi.Item, bi.Batch, bi.Expiry, bi.Certificate, bi.Qty)
		}
		for _, c := range der.Costs {
			out += fmt.Sprintf("last cost %s/%s %s\n", c.Store, c.Item, c.UnitCost)
		}
		for _, p := range der.Prices {
			out += fmt.Sprintf("price %s/%s from %s %s\n", p.List, p.Item, p.From.Format(time.RFC3339), p.Price)
		}
		golden(t, fmt.Sprintf("%02d-%s-%s", i+1, d.Type, d.ID), out)
	}
	cost := b.sale("s1", "bar", "bread", dec("4"), dec("6.00"))
	golden(t, "10-cost_of_sales", formatPostings(cost))
	ps, err := b.cancel("wo1")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "11-cancel-wo1", formatPostings(ps))
	checkConservation(t, b)
	golden(t, "12-balances", b.formatBalances())

	// Cheese bought at two costs, half of it sold at their average;
	// cancelling the cheaper invoice takes back its own 10 kg at its own
	// 100.00, and the 50.00 left without units is the cost difference,
	// for variance.
	v := newMemBook()
	c1, c2 := line("cheese", "10"), line("cheese", "10")
	c1.PurchasePrice, c2.PurchasePrice = dec("12.10"), dec("24.20") // 10.00 and 20.00 a kg net of 21% VAT
	for _, d := range []*storeline.Document{
		{ID: "a", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1", Lines: []storeline.DocumentLine{c1}},
		{ID: "b", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup2", Lines: []storeline.DocumentLine{c2}},
	} {
		if _, err := v.post(d); err != nil {
			t.Fatal(err)
		}
	}
	v.sale("s1", "main", "cheese", dec("10"), dec("350"))
	vps, err := v.cancel("a")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "13-cancel-with-variance", formatPostings(vps))
	if got := v.Balance("variance/s1", "cur:EUR"); !got.Equal(dec("50")) {
		t.Errorf("variance/s1 = %s, want 50 (10 kg left worth 150.00 at the average, a's own 100.00 taken back)", got)
	}
	if q, val := storeline.StockOf(v, v.stores["s1"], "cheese"); !q.IsZero() || !val.IsZero() {
		t.Errorf("cheese left: %s units worth %s, want none", q, val)
	}
	checkConservation(t, v)

	// Hand-checked figures, so the golden files are not their own proof.
	// milk: 24 × 1.10 = 26.40 incl. 10% VAT: 2.40, net 24.00, 1.00 each.
	if got := b.Balance("payable/sup1", "cur:EUR"); !got.Equal(dec("-150.94")) {
		// 26.40 + 10.5×8.47 = 88.935 → 88.94 + 50×0.80 = 40.00 = 155.34, less 4.40 returned.
		t.Errorf("payable/sup1 = %s, want -150.94", got)
	}
	// The stocktake found one milk missing (book 24 − 4 − 6 = 14, counted 13).
	if got := b.Balance("shrinkage/s1/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Errorf("shrinkage/s1/milk = %s units, want 1", got)
	}
	// One milk of six shipped never arrived.
	if got := b.Balance("discrepancy/s2/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Errorf("discrepancy/s2/milk = %s, want 1", got)
	}
	if got := b.Balance("transit/s1/s2/milk", "item:milk"); !got.IsZero() {
		t.Errorf("transit/s1/s2/milk = %s after the receipt, want 0", got)
	}
}

func TestDocumentErrorsNameTheField(t *testing.T) {
	b := newMemBook()
	neg := line("milk", "-1")
	cases := []struct {
		doc   storeline.Document
		field string
	}{
		{storeline.Document{ID: "d", Type: storeline.DocWriteOff, Store: "s1", Reason: "x", Lines: []storeline.DocumentLine{neg}}, "lines[0].qty"},
		{storeline.Document{ID: "d", Type: storeline.DocWriteOff, Store: "s1", Reason: "x", Lines: []storeline.DocumentLine{line("nope", "1")}}, "lines[0].item"},
		{storeline.Document{ID: "d", Type: storeline.DocWriteOff, Store: "s1", Lines: []storeline.DocumentLine{line("milk", "1")}}, "reason"},
		{storeline.Document{ID: "d", Type: storeline.DocWriteOff, Store: "s9", Reason: "x", Lines: []storeline.DocumentLine{line("milk", "1")}}, "store"},
		{storeline.Document{ID: "d", Type: storeline.DocWriteOff, Store: "s1", Reason: "x", Lines: []storeline.DocumentLine{line("milk", "1.5")}}, "lines[0].qty"},
		{storeline.Document{ID: "d", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "zzz", Lines: []storeline.DocumentLine{line("milk", "1")}}, "supplier"},
		{storeline.Document{ID: "d", Type: storeline.DocProduction, Store: "s1", Lines: []storeline.DocumentLine{line("milk", "1")}}, "lines[0].item"},
		{storeline.Document{ID: "d", Type: storeline.DocTransferReceipt, Store: "s2", Shipment: "none", Lines: []storeline.DocumentLine{line("milk", "1")}}, "shipment"},
		{storeline.Document{ID: "d", Type: storeline.DocTransfer, Store: "s1", ToDept: "main", Lines: []storeline.DocumentLine{line("milk", "1")}}, "lines[0].dept"},
		{storeline.Document{ID: "d", Type: storeline.DocRepricing, Store: "s1", PriceList: "retail", Lines: []storeline.DocumentLine{{Item: "milk", Price: dec("1")}}}, "from"},
	}
	for _, c := range cases {
		before := b.formatBalances()
		_, err := b.post(&c.doc)
		if storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != c.field {
			t.Errorf("post %+v: err %v (field %q), want Invalid naming %q", c.doc, err, storeline.FieldOf(err), c.field)
		}
		if b.formatBalances() != before {
			t.Errorf("a refused document changed the books")
		}
	}
}

func TestRecipeCyclesRefused(t *testing.T) {
	b := newMemBook()
	known := func(id storeline.ItemID) bool { _, ok := b.items[id]; return ok }
	// flour made of bread, while bread is made of flour: a cycle through a sub-recipe.
	r := &storeline.Recipe{Item: "flour", Yield: dec("1"), Components: []storeline.Component{{Item: "bread", Qty: dec("1")}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	err := storeline.CheckRecipe(r, known, b.Recipe)
	if storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != "components[0].item" {
		t.Fatalf("CheckRecipe(cycle) = %v, want Invalid at components[0].item", err)
	}
	self := &storeline.Recipe{Item: "milk", Yield: dec("1"), Components: []storeline.Component{{Item: "milk", Qty: dec("1")}}}
	if err := self.Validate(); storeline.FieldOf(err) != "components[0].item" {
		t.Fatalf("Validate(self) = %v", err)
	}
	// A diamond (two paths to one ingredient) is not a cycle.
	b.recipes["cheese"] = &storeline.Recipe{Item: "cheese", Yield: dec("1"), Components: []storeline.Component{{Item: "milk", Qty: dec("10")}}}
	ok := &storeline.Recipe{Item: "flour", Yield: dec("1"), Components: []storeline.Component{{Item: "cheese", Qty: dec("1")}, {Item: "milk", Qty: dec("1")}}}
	if err := storeline.CheckRecipe(ok, known, b.Recipe); err != nil {
		t.Fatalf("CheckRecipe(diamond) = %v", err)
	}
}

func TestConsumeFEFO(t *testing.T) {
	bs := []storeline.Batch{
		{Batch: "late", Expiry: "2027-01-01", Qty: dec("5")},
		{Batch: "none", Qty: dec("5")},
		{Batch: "early", Expiry: "2026-12-01", Qty: dec("3")},
	}
	takes, short := storeline.ConsumeFEFO(bs, dec("10"))
	got := fmt.Sprint(takes)
	if want := "[{early 2026-12-01 3} {late 2027-01-01 5} {none  2}]"; got != want || !short.IsZero() {
		t.Fatalf("ConsumeFEFO = %s short %s, want %s short 0", got, short, want)
	}
	if _, short := storeline.ConsumeFEFO(bs, dec("20")); !short.Equal(dec("7")) {
		t.Fatalf("short = %s, want 7", short)
	}
}

// TestDocumentConservationProperty posts, cancels and sells at random and
// checks, after every step: every asset sums to zero over all accounts;
// stock quantities equal a naive reference that knows only what each
// document says; and a cancel moves every account by exactly minus the
// cancelled document's postings.
func TestDocumentConservationProperty(t *testing.T) {
	items := []storeline.ItemID{"milk", "cheese", "flour", "bread"}
	stores := []storeline.StoreID{"s1", "s2"}
	depts := []storeline.DeptID{"main", "bar"}
	rapid.Check(t, func(rt *rapid.T) {
		b := newMemBook()
		ref := map[string]decimal.Decimal{}               // stock account → units
		effect := map[string]map[string]decimal.Decimal{} // doc → its units on stock accounts
		refMove := func(doc string, acct string, q decimal.Decimal) {
			ref[acct] = ref[acct].Add(q)
			if effect[doc] == nil {
				effect[doc] = map[string]decimal.Decimal{}
			}
			effect[doc][acct] = effect[doc][acct].Add(q)
		}
		qtyGen := func(it storeline.ItemID) decimal.Decimal {
			n := rapid.IntRange(1, 40).Draw(rt, "n")
			if b.items[it].Unit.Fractional() {
				return decimal.New(int64(n)*125, -3) // 0.125 steps
			}
			return decimal.NewFromInt(int64(n))
		}
		var posted []string
		var shipments []string
		for step := 0; step < 40; step++ {
			id := fmt.Sprintf("d%d", step)
			s := rapid.SampledFrom(stores).Draw(rt, "store")
			it := rapid.SampledFrom(items).Draw(rt, "item")
			dp := rapid.SampledFrom(depts).Draw(rt, "dept")
			q := qtyGen(it)
			l := storeline.DocumentLine{Item: it, Dept: dp, Qty: q}
			stock := storeline.StockAccount(s, dp, it)
			var d *storeline.Document
			switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); kind {
			case 0, 1:
				l.PurchasePrice = decimal.New(int64(rapid.IntRange(1, 999).Draw(rt, "price")), -2)
				d = &storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: s, Supplier: "sup1", Lines: []storeline.DocumentLine{l}}
				refMove(id, stock, q)
				if rapid.Bool().Draw(rt, "second line") { // one item twice, at another price
					l2 := l
					l2.PurchasePrice = decimal.New(int64(rapid.IntRange(1, 999).Draw(rt, "price2")), -2)
					d.Lines = append(d.Lines, l2)
					refMove(id, stock, q)
				}
			case 2:
				if rapid.Bool().Draw(rt, "priced") {
					l.PurchasePrice = decimal.New(int64(rapid.IntRange(1, 999).Draw(rt, "price")), -2)
				}
				d = &storeline.Document{ID: id, Type: storeline.DocSupplierReturn, Store: s, Supplier: "sup1", Lines: []storeline.DocumentLine{l}}
				refMove(id, stock, q.Neg())
			case 3:
				d = &storeline.Document{ID: id, Type: storeline.DocWriteOff, Store: s, Reason: "broken", Lines: []storeline.DocumentLine{l, l}}
				refMove(id, stock, q.Neg().Mul(decimal.NewFromInt(2)))
			case 4:
				to := depts[0]
				if dp == to {
					to = depts[1]
				}
				d = &storeline.Document{ID: id, Type: storeline.DocTransfer, Store: s, ToDept: to, Lines: []storeline.DocumentLine{l}}
				refMove(id, stock, q.Neg())
				refMove(id, storeline.StockAccount(s, to, it), q)
			case 5:
				to := stores[0]
				if s == to {
					to = stores[1]
				}
				d = &storeline.Document{ID: id, Type: storeline.DocTransfer, Store: s, ToStore: to, Lines: []storeline.DocumentLine{l}}
				refMove(id, stock, q.Neg())
				shipments = append(shipments, id)
			case 6:
				var open []string
				for _, id := range shipments {
					if pd := b.docs[id]; pd.Status == storeline.DocPosted && pd.ReceivedBy == "" {
						open = append(open, id)
					}
				}
				if len(open) == 0 {
					continue
				}
				sh := b.docs[rapid.SampledFrom(open).Draw(rt, "shipment")]
				sl := sh.Doc.Lines[0]
				recv := sl.Qty.Sub(decimal.NewFromInt(int64(rapid.IntRange(0, 1).Draw(rt, "lost"))))
				if recv.IsNegative() {
					recv = decimal.Zero
				}
				d = &storeline.Document{ID: id, Type: storeline.DocTransferReceipt, Store: sh.Doc.ToStore, Shipment: sh.Doc.ID,
					Lines: []storeline.DocumentLine{{Item: sl.Item, Dept: dp, Qty: recv}}}
				refMove(id, storeline.StockAccount(sh.Doc.ToStore, dp, sl.Item), recv)
			case 7:
				l.Qty = qtyGen(it).Sub(qtyGen(it)).Abs()
				d = &storeline.Document{ID: id, Type: storeline.DocStocktake, Store: s, Lines: []storeline.DocumentLine{l}}
				refMove(id, stock, l.Qty.Sub(ref[stock]))
			case 8:
				n := decimal.NewFromInt(int64(rapid.IntRange(1, 5).Draw(rt, "batches")) * 10)
				d = &storeline.Document{ID: id, Type: storeline.DocProduction, Store: s, Lines: []storeline.DocumentLine{{Item: "bread", Qty: n}}}
				refMove(id, storeline.StockAccount(s, "bar", "bread"), n)
				r := b.recipes["bread"]
				for _, c := range r.Components {
					refMove(id, storeline.StockAccount(s, b.items[c.Item].Dept, c.Item), c.Qty.Mul(n).Div(r.Yield).Neg())
				}
			case 9:
				if len(posted) > 0 && rapid.Bool().Draw(rt, "cancel") {
					victim := rapid.SampledFrom(posted).Draw(rt, "victim")
					before := map[string]decimal.Decimal{}
					for k, v := range b.bal {
						before[k] = v
					}
					orig := b.docs[victim].Postings
					cps, err := b.cancel(victim)
					if err != nil {
						if storeline.KindOf(err) != storeline.Conflict {
							rt.Fatalf("cancel %s: %v", victim, err)
						}
						continue
					}
					// The cancel is the original negated, plus a sweep of
					// value left without units from stock to variance.
					sweep := storeline.MergePostings(append(append([]storeline.Posting(nil), cps...), orig...))
					for _, p := range sweep {
						onStock := strings.HasPrefix(p.Account, "stock/") && p.Asset.IsMoney()
						if !onStock && !strings.HasPrefix(p.Account, "variance/") {
							rt.Fatalf("cancelling %s: %s is neither the original negated nor a variance sweep", victim, p)
						}
						if onStock {
							parts := strings.Split(p.Account, "/")
							st := b.stores[storeline.StoreID(parts[1])]
							if q, v := storeline.StockOf(b, st, storeline.ItemID(parts[3])); !q.IsZero() || !v.IsZero() {
								rt.Fatalf("cancelling %s swept %s while %s holds %s units worth %s", victim, p, parts[3], q, v)
							}
						}
					}
					want := map[string]decimal.Decimal{}
					for k, v := range before {
						want[k] = v
					}
					for _, p := range orig {
						k := p.Account + " " + string(p.Asset)
						want[k] = want[k].Sub(p.Amount)
					}
					for _, p := range sweep {
						k := p.Account + " " + string(p.Asset)
						want[k] = want[k].Add(p.Amount)
					}
					for k := range mergeKeys(want, b.bal) {
						if !want[k].Equal(b.bal[k]) {
							rt.Fatalf("after cancelling %s: %s = %s, want %s", victim, k, b.bal[k], want[k])
						}
					}
					for acct, q := range effect[victim] {
						ref[acct] = ref[acct].Sub(q)
					}
					for i, p := range posted {
						if p == victim {
							posted = append(posted[:i], posted[i+1:]...)
							break
						}
					}
				} else {
					b.sale(s, dp, it, q, decimal.New(int64(rapid.IntRange(1, 5000).Draw(rt, "total")), -2))
					ref[stock] = ref[stock].Sub(q)
				}
				checkConservation(rt, b)
				continue
			}
			if _, err := b.post(d); err != nil {
				rt.Fatalf("post %+v: %v", d, err)
			}
			posted = append(posted, id)
			checkConservation(rt, b)
			for acct, q := range ref {
				_, item, _ := strings.Cut(acct[strings.LastIndex(acct, "/"):], "/")
				if got := b.Balance(acct, storeline.ItemAsset(storeline.ItemID(item))); !got.Equal(q) {
					rt.Fatalf("after %s: %s = %s units, reference says %s", id, acct, got, q)
				}
			}
		}
	})
}

func mergeKeys(a, b map[string]decimal.Decimal) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// countBook is a memBook whose movements after a journal position are
// given: what the shop sold while the count went on.
type countBook struct {
	*memBook
	moved map[string]decimal.Decimal
}

func (c countBook) MovedSince(_ storeline.StoreID, _ storeline.JournalPosition, acct string, a storeline.Asset) decimal.Decimal {
	return c.moved[acct+" "+string(a)]
}

func TestStocktakeCountsAsOfItsPosition(t *testing.T) {
	b := newMemBook()
	inv := line("milk", "14")
	inv.PurchasePrice = dec("1.10")
	if _, err := b.post(&storeline.Document{ID: "inv", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1", Lines: []storeline.DocumentLine{inv}}); err != nil {
		t.Fatal(err)
	}
	// Counting starts with 14 on the books; 3 are sold while it goes on
	// (the books say 11 when head office posts); 13 are counted.
	b.sale("s1", "main", "milk", dec("3"), dec("3.30"))
	cb := countBook{b, map[string]decimal.Decimal{"stock/s1/main/milk item:milk": dec("-3")}}
	d := &storeline.Document{ID: "st", Type: storeline.DocStocktake, Store: "s1", Position: &storeline.JournalPosition{Epoch: 1, Seq: 7},
		Lines: []storeline.DocumentLine{line("milk", "13")}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	der, err := storeline.PostDocument(cb, d)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]decimal.Decimal{}
	for _, p := range der.Postings {
		got[p.Account+" "+string(p.Asset)] = p.Amount
	}
	// One missing (14 − 13), not three more found (11 → 13).
	if s := got["shrinkage/s1/milk item:milk"]; !s.Equal(dec("1")) {
		t.Fatalf("shrinkage = %s, want 1: %v", s, der.Postings)
	}
	// Without a book that can count from a position, it is refused, not guessed.
	if _, err := storeline.PostDocument(b, d); storeline.KindOf(err) != storeline.Internal {
		t.Fatalf("PostDocument without a CountBook = %v, want an Internal error", err)
	}
}

// BenchmarkPostDocument derives the postings of a 100-line incoming
// invoice and of a 100-line stocktake against books holding those items.
func BenchmarkPostDocument(b *testing.B) {
	book := newMemBook()
	inv := &storeline.Document{ID: "inv", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1"}
	st := &storeline.Document{ID: "st", Type: storeline.DocStocktake, Store: "s1"}
	for i := 0; i < 100; i++ {
		id := storeline.ItemID(fmt.Sprintf("x%d", i))
		book.items[id] = &storeline.Item{ID: id, Dept: "main", Unit: storeline.Piece, VATRate: dec("21")}
		inv.Lines = append(inv.Lines, storeline.DocumentLine{Item: id, Qty: dec("12"), PurchasePrice: dec("3.17")})
		st.Lines = append(st.Lines, storeline.DocumentLine{Item: id, Qty: dec("11")})
	}
	if err := inv.Validate(); err != nil {
		b.Fatal(err)
	}
	if err := st.Validate(); err != nil {
		b.Fatal(err)
	}
	if _, err := book.post(inv); err != nil {
		b.Fatal(err)
	}
	for _, d := range []*storeline.Document{inv, st} {
		b.Run(string(d.Type), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := storeline.PostDocument(book, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCostOfSalesAcrossDepartments: a sale taking one item from two
// departments costs every unit at the moving average, the second line at
// what the first left (units and value): all 10 units sold, 5 from each
// department, cost what the stock was worth and leave no value behind.
// Costing the second line against units the first had already taken
// costed it at half the average and left a quarter of the value on no
// units.
func TestCostOfSalesAcrossDepartments(t *testing.T) {
	b := newMemBook()
	for _, dp := range []storeline.DeptID{"main", "bar"} {
		l := line("milk", "5")
		l.Dept, l.PurchasePrice = dp, dec("1.00")
		if _, err := b.post(&storeline.Document{ID: "inv-" + string(dp), Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1",
			Lines: []storeline.DocumentLine{l}}); err != nil {
			t.Fatal(err)
		}
	}
	worth := b.bal[storeline.StockAccount("s1", "main", "milk")+" cur:EUR"].Add(b.bal[storeline.StockAccount("s1", "bar", "milk")+" cur:EUR"])
	if !worth.IsPositive() {
		t.Fatalf("the stock is worth %s", worth)
	}
	shop := storeline.MergePostings([]storeline.Posting{
		{Account: storeline.StockAccount("s1", "main", "milk"), Asset: storeline.ItemAsset("milk"), Amount: dec("-5")},
		{Account: storeline.StockAccount("s1", "bar", "milk"), Asset: storeline.ItemAsset("milk"), Amount: dec("-5")},
		{Account: storeline.SoldAccount("s1", "milk"), Asset: storeline.ItemAsset("milk"), Amount: dec("10")},
		{Account: storeline.RevenueAccount("s1"), Asset: "cur:EUR", Amount: dec("-15.00")},
		{Account: storeline.CashAccount("s1", "t1"), Asset: "cur:EUR", Amount: dec("15.00")},
	})
	cost, err := storeline.CostOfSales(b, "s1", shop)
	if err != nil {
		t.Fatal(err)
	}
	b.apply(shop)
	b.apply(cost)
	if got := b.bal[storeline.COGSAccount("s1", "milk")+" cur:EUR"]; !got.Equal(worth) {
		t.Errorf("cost of sales = %s, want the stock's worth %s:\n%s", got, worth, formatPostings(cost))
	}
	for _, dp := range []storeline.DeptID{"main", "bar"} {
		if v := b.bal[storeline.StockAccount("s1", dp, "milk")+" cur:EUR"]; !v.IsZero() {
			t.Errorf("%s keeps %s of value on no units", dp, v)
		}
	}
}

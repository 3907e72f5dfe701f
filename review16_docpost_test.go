package storeline_test

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// review16Invoice is an incoming invoice of s1 from sup1; each line is
// item, department, qty and purchase price with VAT (milk: 10%, so 1.10
// is 1.00 net).
func review16Invoice(id string, lines ...[4]string) *storeline.Document {
	d := &storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1"}
	for _, l := range lines {
		d.Lines = append(d.Lines, storeline.DocumentLine{Item: storeline.ItemID(l[0]), Dept: storeline.DeptID(l[1]),
			Qty: dec(l[2]), PurchasePrice: dec(l[3])})
	}
	return d
}

func review16Want(t *testing.T, b *memBook, what, acct, asset, want string) {
	t.Helper()
	if got := b.Balance(acct, storeline.Asset(asset)); !got.Equal(dec(want)) {
		t.Errorf("%s: %s %s = %s, want %s\n%s", what, acct, asset, got, want, b.formatBalances())
	}
}

func review16Stock(t *testing.T, b *memBook, what, qty, value string) {
	t.Helper()
	q, v := storeline.StockOf(b, b.stores["s1"], "milk")
	if !q.Equal(dec(qty)) || !v.Equal(dec(value)) {
		t.Errorf("%s: milk at s1 = %s units worth %s, want %s worth %s\n%s", what, q, v, qty, value, b.formatBalances())
	}
}

// TestReview16InvoiceCoversNegativeStock: units sold before any cost was
// known (or at an older cost) are re-costed at the invoice that covers
// them: the difference goes from stock to cogs, so no value is left on
// units the shop does not hold; cancelling the invoice takes it all back.
func TestReview16InvoiceCoversNegativeStock(t *testing.T) {
	type step struct {
		sell    [][2]string // dept, qty
		inv     [][4]string
		qty     string // milk at s1 after the invoice
		value   string
		cogs    string
		perDept map[string][2]string // dept → qty, value after the invoice
	}
	cases := map[string]step{
		"all five": {sell: [][2]string{{"main", "5"}}, inv: [][4]string{{"milk", "main", "5", "1.10"}},
			qty: "0", value: "0", cogs: "5"},
		"three of five": {sell: [][2]string{{"main", "5"}}, inv: [][4]string{{"milk", "main", "3", "1.10"}},
			qty: "-2", value: "0", cogs: "3"},
		"eight for five": {sell: [][2]string{{"main", "5"}}, inv: [][4]string{{"milk", "main", "8", "1.10"}},
			qty: "3", value: "3", cogs: "5"},
		// A free bonus line lowers the invoice's cost of milk: 4.00 over
		// 5 units, whichever line comes first.
		"bonus line first": {sell: [][2]string{{"main", "5"}}, inv: [][4]string{{"milk", "main", "1", "0"}, {"milk", "main", "4", "1.10"}},
			qty: "0", value: "0", cogs: "4"},
		"bonus line last": {sell: [][2]string{{"main", "5"}}, inv: [][4]string{{"milk", "main", "4", "1.10"}, {"milk", "main", "1", "0"}},
			qty: "0", value: "0", cogs: "4"},
		// Sold from the bar, bought into main: the shortfall was the
		// bar's, so its value is, and main holds its 5 at 1.00.
		"another department": {sell: [][2]string{{"bar", "5"}}, inv: [][4]string{{"milk", "main", "5", "1.10"}},
			qty: "0", value: "0", cogs: "5", perDept: map[string][2]string{"main": {"5", "5"}, "bar": {"-5", "-5"}}},
		"two departments short": {sell: [][2]string{{"bar", "2"}, {"main", "3"}}, inv: [][4]string{{"milk", "main", "8", "1.10"}},
			qty: "3", value: "3", cogs: "5", perDept: map[string][2]string{"main": {"5", "5"}, "bar": {"-2", "-2"}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := newMemBook()
			for _, s := range c.sell {
				b.sale("s1", storeline.DeptID(s[0]), "milk", dec(s[1]), dec("9.99"))
			}
			before := map[string]decimal.Decimal{}
			for k, v := range b.bal {
				before[k] = v
			}
			if _, err := b.post(review16Invoice("inv", c.inv...)); err != nil {
				t.Fatal(err)
			}
			checkConservation(t, b)
			review16Stock(t, b, "after the invoice", c.qty, c.value)
			review16Want(t, b, "after the invoice", "cogs/s1/milk", "cur:EUR", c.cogs)
			for dp, w := range c.perDept {
				acct := storeline.StockAccount("s1", storeline.DeptID(dp), "milk")
				review16Want(t, b, "after the invoice", acct, "item:milk", w[0])
				review16Want(t, b, "after the invoice", acct, "cur:EUR", w[1])
			}
			// The cancel restores exactly what the post changed.
			if _, err := b.cancel("inv"); err != nil {
				t.Fatal(err)
			}
			checkConservation(t, b)
			for k := range mergeKeys(before, b.bal) {
				if !before[k].Equal(b.bal[k]) {
					t.Errorf("after the cancel %s = %s, before the invoice %s", k, b.bal[k], before[k])
				}
			}
		})
	}
}

// TestReview16InvoiceRecostsAtTheProvisionalCost: 6 milk sold with one
// bought at 0.80, so 5 short valued at 0.80 each (-4.00); an invoice of 3
// at 1.00 re-costs 3 of them (2.40 provisionally, 3.00 now): 0.60 more
// cost of sales, and the 2 still short keep 0.80 each.
func TestReview16InvoiceRecostsAtTheProvisionalCost(t *testing.T) {
	b := newMemBook()
	if _, err := b.post(review16Invoice("inv0", [4]string{"milk", "main", "1", "0.88"})); err != nil {
		t.Fatal(err)
	}
	b.sale("s1", "main", "milk", dec("6"), dec("9.99"))
	review16Stock(t, b, "after the sale", "-5", "-4")
	review16Want(t, b, "after the sale", "cogs/s1/milk", "cur:EUR", "4.8")
	if _, err := b.post(review16Invoice("inv1", [4]string{"milk", "main", "3", "1.10"})); err != nil {
		t.Fatal(err)
	}
	review16Stock(t, b, "after the invoice", "-2", "-1.6")
	review16Want(t, b, "after the invoice", "cogs/s1/milk", "cur:EUR", "5.4")
	// A return of one sold unit, while short, covers a unit sold short
	// and comes back at what the shortfall is worth a unit (0.80).
	b.sale("s1", "main", "milk", dec("-1"), dec("-1.00"))
	review16Stock(t, b, "after a return", "-1", "-0.8")
	review16Want(t, b, "after a return", "cogs/s1/milk", "cur:EUR", "4.6")
	// The last one covered at 2.00: the shop holds nothing worth
	// nothing, and the 5 units it sold net cost what was bought:
	// 0.80 + 3×1.00 + 2.00.
	if _, err := b.post(review16Invoice("inv2", [4]string{"milk", "main", "1", "2.20"})); err != nil {
		t.Fatal(err)
	}
	review16Stock(t, b, "after the last invoice", "0", "0")
	review16Want(t, b, "after the last invoice", "cogs/s1/milk", "cur:EUR", "5.8")
	checkConservation(t, b)
}

// deptsBook is a memBook that also lists every department of a store
// holding balances of an item, the store record's or not.
type deptsBook struct{ *memBook }

func (b deptsBook) StockDepts(st storeline.StoreID, item storeline.ItemID) ([]storeline.DeptID, bool) {
	var out []storeline.DeptID
	seen := map[storeline.DeptID]bool{}
	for k := range b.bal {
		acct, _, _ := strings.Cut(k, " ")
		parts := strings.Split(acct, "/")
		if len(parts) == 4 && parts[0] == "stock" && parts[1] == string(st) && parts[3] == string(item) && !seen[storeline.DeptID(parts[2])] {
			seen[storeline.DeptID(parts[2])] = true
			out = append(out, storeline.DeptID(parts[2]))
		}
	}
	return out, true
}

// TestReview16DroppedDepartmentStaysInTheAverage: a department dropped
// from the store record keeps its stock until it is moved (the shop's
// stock report counts it); the item's moving average is over all of the
// shop's stock, so it counts too. 10 milk at 1.00 in the bar, dropped,
// and 10 at 3.00 in main: 5 sold from main cost 2.00 each, not 3.00.
func TestReview16DroppedDepartmentStaysInTheAverage(t *testing.T) {
	m := newMemBook()
	for _, d := range []*storeline.Document{
		review16Invoice("inv1", [4]string{"milk", "bar", "10", "1.10"}),
		review16Invoice("inv2", [4]string{"milk", "main", "10", "3.30"}),
	} {
		if _, err := m.post(d); err != nil {
			t.Fatal(err)
		}
	}
	m.stores["s1"].Departments = []storeline.Department{{ID: "main"}} // bar dropped
	b := deptsBook{m}
	if q, v := storeline.StockOf(b, m.stores["s1"], "milk"); !q.Equal(dec("20")) || !v.Equal(dec("40")) {
		t.Errorf("milk at s1 = %s units worth %s, want 20 worth 40.00 (the bar's 10 at 1.00 with main's)", q, v)
	}
	sale := []storeline.Posting{
		{Account: storeline.StockAccount("s1", "main", "milk"), Asset: "item:milk", Amount: dec("-5")},
		{Account: storeline.SoldAccount("s1", "milk"), Asset: "item:milk", Amount: dec("5")},
	}
	ps, err := storeline.CostOfSales(b, "s1", sale)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Account == "cogs/s1/milk" && !p.Amount.Equal(dec("10")) {
			t.Errorf("5 milk sold from main cost %s, want 10.00 (2.00 each over the shop's 20)", p.Amount)
		}
	}
}

package storeline

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// mapBook is a StockBook over a map of balances (account \x00 asset).
type mapBook struct {
	stores map[StoreID]*Store
	bal    map[string]decimal.Decimal
	last   map[string]decimal.Decimal
}

func (b *mapBook) Store(id StoreID) (*Store, bool) {
	s, ok := b.stores[id]
	return s, ok
}
func (b *mapBook) Item(id ItemID) (*Item, bool)            { return &Item{ID: id}, true }
func (b *mapBook) Supplier(SupplierID) bool                { return true }
func (b *mapBook) PriceList(PriceListID) bool              { return true }
func (b *mapBook) Recipe(ItemID) (*Recipe, bool)           { return nil, false }
func (b *mapBook) Document(string) (*PostedDocument, bool) { return nil, false }
func (b *mapBook) Balance(acct string, a Asset) decimal.Decimal {
	return b.bal[acct+"\x00"+string(a)]
}
func (b *mapBook) LastCost(s StoreID, i ItemID) decimal.Decimal {
	return b.last[string(s)+"/"+string(i)]
}

// oneCallBook is a mapBook that answers ItemStock as central's book does:
// by summing, in whatever order the map gives, the balances it holds on
// the item's stock accounts in the store's departments.
type oneCallBook struct {
	*mapBook
	calls *int
}

func (b oneCallBook) ItemStock(st *Store, item ItemID) (qty, value decimal.Decimal, ok bool) {
	*b.calls++
	qty, value = decimal.New(0, 0), decimal.New(0, 0)
	for k, d := range b.bal {
		acct, asset, _ := strings.Cut(k, "\x00")
		parts := strings.Split(acct, "/")
		if len(parts) != 4 || parts[0] != "stock" || parts[1] != string(st.ID) || parts[3] != string(item) || !st.HasDept(DeptID(parts[2])) {
			continue
		}
		switch Asset(asset) {
		case ItemAsset(item):
			qty = qty.Add(d)
		case MoneyAsset(st.Currency):
			value = value.Add(d)
		}
	}
	return qty, value, true
}

// randAmount is a decimal of any sign and exponent, zero at times (a
// zero's exponent is part of a sum's), and now and then too large for an
// int64.
func randAmount(rng *rand.Rand) decimal.Decimal {
	exp := int32(rng.IntN(9)) - 6
	switch rng.IntN(12) {
	case 0:
		return decimal.New(0, exp)
	case 1:
		return decimal.New(rng.Int64(), exp).Mul(decimal.New(rng.Int64N(1000)+1, 0))
	case 2:
		return decimal.New(rng.Int64N(20)-10, exp)
	}
	return decimal.New(rng.Int64N(2_000_000)-1_000_000, exp)
}

// stockOfBothWays returns StockOf by the one-call path and by the
// per-department reads.
func stockOfBothWays(b StockBook, st *Store, item ItemID) (fast, slow [2]decimal.Decimal) {
	fast[0], fast[1] = StockOf(b, st, item)
	slowStock.Store(true)
	defer slowStock.Store(false)
	slow[0], slow[1] = StockOf(b, st, item)
	return fast, slow
}

func decBytes(t *testing.T, d decimal.Decimal) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postingBytes(t *testing.T, ps []Posting) string {
	t.Helper()
	var sb strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&sb, "%s %s %x\n", p.Account, p.Asset, decBytes(t, p.Amount))
	}
	return sb.String()
}

// TestStockOfOneCallMatchesDepartments: on random books (balances of any
// exponent, zeros among them, in departments the store has and has not,
// of other stores, currencies and items) and random postings on top (an
// overlay, as a document's or a sale's derivation has), StockOf's one-call
// path (ItemStockBook) gives what the per-department reads give, value and
// exponent, and so do CostOfSales and CancelDocument, posting for posting.
func TestStockOfOneCallMatchesDepartments(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 29))
	items := []ItemID{"i1", "i2", "i3"}
	allDepts := []DeptID{"a", "b", "c", "d"}
	curs := []Currency{"EUR", "JPY", "BHD"}
	calls, compared := 0, 0
	for round := 0; round < 2000; round++ {
		st := &Store{ID: "s1", Currency: curs[rng.IntN(len(curs))]}
		for _, i := range rng.Perm(len(allDepts))[:1+rng.IntN(len(allDepts))] {
			st.Departments = append(st.Departments, Department{ID: allDepts[i]})
		}
		mb := &mapBook{stores: map[StoreID]*Store{"s1": st}, bal: map[string]decimal.Decimal{}, last: map[string]decimal.Decimal{}}
		stockAcct := func() string {
			store := StoreID("s1")
			if rng.IntN(6) == 0 {
				store = "s2"
			}
			dept := DeptID("x") // not the store's
			if rng.IntN(6) != 0 {
				dept = allDepts[rng.IntN(len(allDepts))]
			}
			return StockAccount(store, dept, items[rng.IntN(len(items))])
		}
		asset := func(acct string) Asset {
			item := ItemID(acct[strings.LastIndexByte(acct, '/')+1:])
			switch rng.IntN(8) {
			case 0:
				return MoneyAsset("USD")
			case 1:
				return ItemAsset(items[rng.IntN(len(items))])
			case 2, 3, 4:
				return MoneyAsset(st.Currency)
			}
			return ItemAsset(item)
		}
		for range rng.IntN(24) {
			acct := stockAcct()
			mb.bal[acct+"\x00"+string(asset(acct))] = randAmount(rng)
		}
		for _, it := range items {
			if rng.IntN(2) == 0 {
				mb.last["s1/"+string(it)] = decimal.New(rng.Int64N(10000), -int32(rng.IntN(4)))
			}
		}
		one := oneCallBook{mb, &calls}
		// An overlay over either book, with postings of its own.
		ovs := []*overlay{{StockBook: one, delta: map[string]decimal.Decimal{}}, {StockBook: mb, delta: map[string]decimal.Decimal{}}}
		for range rng.IntN(8) {
			acct := stockAcct()
			if rng.IntN(5) == 0 {
				acct = COGSAccount("s1", items[rng.IntN(len(items))])
			}
			a, amt := asset(acct), randAmount(rng)
			for _, o := range ovs {
				o.post(acct, a, amt)
			}
		}
		for _, it := range items {
			for _, b := range []StockBook{one, mb, ovs[0], ovs[1]} {
				fast, slow := stockOfBothWays(b, st, it)
				for i := range fast {
					if !bytes.Equal(decBytes(t, fast[i]), decBytes(t, slow[i])) {
						t.Fatalf("round %d, %T, %s: one call gives %s [exp %d], the departments %s [exp %d]\nbalances %v\noverlay %v",
							round, b, it, fast[i], fast[i].Exponent(), slow[i], slow[i].Exponent(), mb.bal, ovs[0].delta)
					}
					compared++
				}
			}
		}
		// A sale (and returns) of the store's stock, costed both ways.
		var sale []Posting
		for range 1 + rng.IntN(5) {
			it := items[rng.IntN(len(items))]
			acct := StockAccount("s1", st.Departments[rng.IntN(len(st.Departments))].ID, it)
			q := decimal.New(rng.Int64N(7)+1, -int32(rng.IntN(4)))
			if rng.IntN(4) != 0 {
				q = q.Neg()
			}
			sale = append(sale, Posting{Account: acct, Asset: ItemAsset(it), Amount: q},
				Posting{Account: SoldAccount("s1", it), Asset: ItemAsset(it), Amount: q.Neg()})
		}
		sale = MergePostings(sale)
		fast, err := CostOfSales(one, "s1", sale)
		if err != nil {
			t.Fatal(err)
		}
		slowStock.Store(true)
		slow, err := CostOfSales(one, "s1", sale)
		slowStock.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		if f, s := postingBytes(t, fast), postingBytes(t, slow); f != s {
			t.Fatalf("round %d: cost of sales %v\none call:\n%s\ndepartments:\n%s", round, sale, f, s)
		}
		// A document's postings cancelled: the stock positions it empties
		// of units have their value moved to variance, per department.
		var posted []Posting
		for range 1 + rng.IntN(4) {
			acct := stockAcct()
			a, amt := asset(acct), randAmount(rng)
			posted = append(posted, Posting{Account: acct, Asset: a, Amount: amt}, Posting{Account: "supplier/x", Asset: a, Amount: amt.Neg()})
		}
		pd := &PostedDocument{Doc: Document{ID: "d1"}, Postings: MergePostings(posted)}
		fastC := CancelDocument(one, pd)
		slowStock.Store(true)
		slowC := CancelDocument(one, pd)
		slowStock.Store(false)
		if f, s := postingBytes(t, fastC), postingBytes(t, slowC); f != s {
			t.Fatalf("round %d: cancelling %v\none call:\n%s\ndepartments:\n%s", round, pd.Postings, f, s)
		}
	}
	if calls < 1000 || compared < 5000 {
		t.Fatalf("%d one-call answers, %d comparisons: the one-call path went unexercised", calls, compared)
	}
}

// TestCostAtMatchesDecimal: costAt, on int64s where it can, gives what
// the decimal arithmetic gives, exponent included.
func TestCostAtMatchesDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := 0; i < 100000; i++ {
		cur := []Currency{"EUR", "JPY", "BHD"}[rng.IntN(3)]
		value, q, qty := randAmount(rng), randAmount(rng), randAmount(rng).Abs()
		if qty.IsZero() {
			continue
		}
		want := cur.Round(value.Mul(q).DivRound(qty, cur.Scale()+8))
		if got := costAt(value, q, qty, cur); !bytes.Equal(decBytes(t, got), decBytes(t, want)) {
			t.Fatalf("costAt(%s, %s, %s, %s) = %s [exp %d], decimal gives %s [exp %d]",
				value, q, qty, cur, got, got.Exponent(), want, want.Exponent())
		}
	}
}

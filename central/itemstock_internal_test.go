package central

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestMain has every push of every test in this package that takes a
// store's stock balances from the FSM's stock cache compare them with a
// scan of the state: a write of a balance the cache missed fails the push
// (and the test) where it happens.
func TestMain(m *testing.M) {
	checkPushCache.Store(true)
	os.Exit(m.Run())
}

// TestItemStockMatchesBalances: a cost pass's book (the store's stock
// scanned, balances pending, units added back) answers storeline.StockOf
// in one call (txBook.ItemStock) with what the per-department Balance
// reads give, value and exponent: on random stock balances of any
// exponent (zeros among them, stored and pending), in departments the
// store has and has not, of another store, currency and item, some
// written in the entry before the scan.
func TestItemStockMatchesBalances(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	rng := rand.New(rand.NewPCG(4, 17))
	items := []storeline.ItemID{"i1", "i2", "i3", "i10"}
	depts := []storeline.DeptID{"a", "b", "c"}
	amount := func() decimal.Decimal {
		exp := -int32(rng.IntN(6))
		switch rng.IntN(8) {
		case 0:
			return decimal.New(0, exp)
		case 1:
			return decimal.New(rng.Int64(), exp).Mul(decimal.New(rng.Int64N(999)+1, 0)) // beyond an int64
		}
		return decimal.New(rng.Int64N(200_000)-100_000, exp)
	}
	key := func() string {
		store, dept := storeline.StoreID("s1"), depts[rng.IntN(len(depts))]
		switch rng.IntN(8) {
		case 0:
			store = "s10" // shares the prefix "stock/s1"
		case 1:
			dept = "z" // not the store's
		}
		item := items[rng.IntN(len(items))]
		asset := storeline.ItemAsset(item)
		switch rng.IntN(6) {
		case 0, 1, 2:
			asset = "cur:EUR"
		case 3:
			asset = "cur:USD"
		case 4:
			asset = storeline.ItemAsset(items[rng.IntN(len(items))])
		}
		return balKey(storeline.StockAccount(store, dept, item), asset)
	}
	compared, fast := 0, 0
	for round := range 150 {
		st := &storeline.Store{ID: "s1", Currency: "EUR"}
		for _, i := range rng.Perm(len(depts))[:1+rng.IntN(len(depts))] {
			st.Departments = append(st.Departments, storeline.Department{ID: depts[i]})
		}
		_, err := rep.Apply(uint64(2*round+1), func(rt *ledger.ReplicaTxn) error {
			if err := rt.ScanMeta(rpBal, func(k string, _ []byte) (bool, error) {
				return true, rt.SetMeta(k, nil)
			}); err != nil {
				return err
			}
			for range rng.IntN(30) {
				if err := rt.SetMeta(key(), []byte(amount().String())); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = rep.Apply(uint64(2*round+2), func(rt *ledger.ReplicaTxn) error {
			for range rng.IntN(4) { // written in this entry, before the scan
				if err := rt.SetMeta(key(), []byte(amount().String())); err != nil {
					return err
				}
			}
			pending, back := map[string]decimal.Decimal{}, &addBack{store: "s1", delta: map[string]decimal.Decimal{}}
			b := &txBook{rt: rt, reads: map[string]decimal.Decimal{}, pending: pending, back: back}
			if err := b.prefetch(rpBal+"stock/s1/", 1000); err != nil {
				return err
			}
			// As planCosts does: the batch's balances on top (a zero
			// among them, deleted from the state), then the pass's
			// pending costs and add-back sums, each key noted.
			for range rng.IntN(6) {
				k, v := key(), amount()
				b.reads[k] = v
				b.stock.note(k)
			}
			for range rng.IntN(10) {
				k, v := key(), amount()
				pending[k] = pending[k].Add(v)
				b.stock.note(k)
			}
			for range rng.IntN(10) {
				k, v := key(), amount()
				back.delta[k] = back.delta[k].Add(v)
				b.stock.note(k)
			}
			for _, it := range items {
				if _, _, ok := b.ItemStock(st, it); ok {
					fast++
				}
				q1, v1 := storeline.StockOf(b, st, it)
				slowBooks.Store(true)
				q2, v2 := storeline.StockOf(b, st, it)
				slowBooks.Store(false)
				for _, p := range [][2]decimal.Decimal{{q1, q2}, {v1, v2}} {
					x, _ := p[0].MarshalBinary()
					y, _ := p[1].MarshalBinary()
					if !bytes.Equal(x, y) {
						return fmt.Errorf("round %d, %s: one call gives %s [exp %d], the departments %s [exp %d]\nreads %v\npending %v\nadded back %v",
							round, it, p[0], p[0].Exponent(), p[1], p[1].Exponent(), b.reads, pending, back.delta)
					}
					compared++
				}
			}
			// Stored add-back sums are read by key: no one-call answer.
			back.stored, back.rt, back.base = true, rt, map[string]decimal.Decimal{}
			if _, _, ok := b.ItemStock(st, items[0]); ok {
				return fmt.Errorf("ItemStock answered with stored add-back sums")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fast < 500 || compared < 1000 {
		t.Fatalf("%d one-call answers, %d comparisons", fast, compared)
	}
}

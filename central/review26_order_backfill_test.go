package central

import (
	"fmt"
	"maps"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview26OrderBackfillFitsAnEntry: state of a build before the
// store indexes holding more orders than one Badger transaction can
// index (two keys each) is indexed all the same. The first order write
// used to index every order in its own entry: Badger refused the
// transaction (ErrTxnTooBig), and an entry that fails to apply stops
// every replica (FSM.ApplyBatch panics). Each order write now indexes a
// bounded part, and the listings scan until the last part is done.
func TestReview26OrderBackfillFitsAnEntry(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	order := func(i int) *purchaseOrder {
		store := storeline.StoreID(fmt.Sprintf("s%d", i%3))
		return &purchaseOrder{ID: fmt.Sprintf("o%05d", i), Supplier: "p1", Store: store,
			Lines: []orderLine{{Item: "milk", Qty: decimal.NewFromInt(2)}}}
	}
	// The records alone, as the build before the index wrote them.
	const orders, perEntry = 12000, 2000
	index := uint64(0)
	for start := 0; start < orders; start += perEntry {
		index++
		if _, err := rep.Apply(index, func(rt *ledger.ReplicaTxn) error {
			for i := start; i < start+perEntry; i++ {
				o := order(i)
				if err := putMetaRecord(rt, poOrder+o.ID, "purchase order "+o.ID, o); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("the older build's orders: %v", err)
		}
	}
	indexed := func() bool {
		t.Helper()
		var done bool
		if err := rep.View(func(rt *ledger.ReplicaTxn) error {
			done, err = orderIndexed(rt)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return done
	}
	for w := 0; !indexed(); w++ {
		if w > orders/orderBackfillChunk+1 {
			t.Fatalf("%d order writes and the index is not complete", w)
		}
		o := order(w)
		o.Final = orderClosed
		index++
		if _, err := rep.Apply(index, func(rt *ledger.ReplicaTxn) error { return putOrder(rt, o) }); err != nil {
			t.Fatalf("order write %d: %v", w, err)
		}
	}
	// The index is what the records make.
	if err := rep.View(func(rt *ledger.ReplicaTxn) error {
		live, err := orderIndexState(rt)
		if err != nil {
			return err
		}
		want := map[string]string{poIndexed: "1"}
		if err := rt.ScanMeta(poOrder, func(k string, _ []byte) (bool, error) {
			o, _, err := getOrder(rt, k[len(poOrder):])
			if err != nil {
				return false, err
			}
			want[storeOrderKey(poByStore, o.Store, o.ID)] = o.status()
			if expectsGoods(o.status()) {
				want[storeOrderKey(poOpen, o.Store, o.ID)] = o.status()
			}
			return true, nil
		}); err != nil {
			return err
		}
		if !maps.Equal(live, want) {
			t.Errorf("index of %d keys, the records make %d", len(live), len(want))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

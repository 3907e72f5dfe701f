package central

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestConsumeBatchesWithoutMarkers sells from batches written before the
// per-(store, item) batch markers existed: the first entry that sells
// builds the markers from the batches, so those batches are consumed
// rather than skipped as "no batches"; a batch created later is marked
// at once; an item without batches consumes nothing.
func TestConsumeBatchesWithoutMarkers(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	// Old state: a batch stored as addBatch wrote it before markers.
	_, err = rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		b := storeline.Batch{Store: "s1", Item: "milk", Batch: "b1", Expiry: "2026-12-01", Qty: d("4")}
		enc, err := msgpack.Marshal(&b)
		if err != nil {
			return err
		}
		return rt.SetMeta(batchKey(b), enc)
	})
	if err != nil {
		t.Fatal(err)
	}
	left := func(rt *ledger.ReplicaTxn, item storeline.ItemID) decimal.Decimal {
		t.Helper()
		bs, err := batchesOf(rt, "s1", item)
		if err != nil {
			t.Fatal(err)
		}
		q := decimal.Zero
		for _, b := range bs {
			q = q.Add(b.Qty)
		}
		return q
	}
	_, err = rep.Apply(2, func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, Index: 2, At: time.Now()}
		if err := consumeBatches(tx, "s1", map[storeline.ItemID]decimal.Decimal{"milk": d("3"), "bread": d("1")}); err != nil {
			return err
		}
		if got := left(rt, "milk"); !got.Equal(d("1")) {
			t.Errorf("milk left in batches after selling 3 of 4: %s, want 1", got)
		}
		// A batch of a new item after the markers were built.
		if err := addBatch(tx, storeline.Batch{Store: "s1", Item: "eggs", Batch: "e1", Expiry: "2026-12-05"}, d("10")); err != nil {
			return err
		}
		return consumeBatches(tx, "s1", map[storeline.ItemID]decimal.Decimal{"eggs": d("4"), "milk": d("1")})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rep.Apply(3, func(rt *ledger.ReplicaTxn) error {
		if got := left(rt, "eggs"); !got.Equal(d("6")) {
			t.Errorf("eggs left: %s, want 6", got)
		}
		if got := left(rt, "milk"); !got.IsZero() {
			t.Errorf("milk left: %s, want 0", got)
		}
		if got := left(rt, "bread"); !got.IsZero() {
			t.Errorf("bread has batches: %s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestItemPeekReadsExcise reads the excise flag of stored items the way
// the push applier does (itemPeek), against the full decoding the back
// office's index used: the same flag, and a deleted item does not exist.
func TestItemPeekReadsExcise(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	items := []*storeline.Item{
		{ID: "vodka", SKU: "V", Name: "Vodka", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("20"), Excise: true,
			Barcodes: []storeline.ItemBarcode{{Code: "04006381333931", Factor: d("1")}}},
		{ID: "bread", SKU: "B", Name: "Bread", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("7"), Marked: true},
	}
	_, err = rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		var ws []ledger.MasterWrite
		for i, it := range items {
			ws = append(ws, ledger.MasterWrite{Version: Version{1, uint16(i + 1)}.Pack(), Record: it})
		}
		return rt.PutMasters(ws)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rep.Apply(2, func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, Index: 2, At: time.Now()}
		a := newApplier(tx)
		for _, id := range []storeline.ItemID{"vodka", "bread", "ghost"} {
			ok, err := a.itemExists(id)
			if err != nil {
				return err
			}
			var full storeline.Item
			want, err := rt.GetMaster(storeline.KindItem, string(id), &full)
			if err != nil {
				return err
			}
			if ok != want || a.excise[id] != (want && full.Excise) {
				t.Errorf("%s: exists %v excise %v, want %v %v", id, ok, a.excise[id], want, want && full.Excise)
			}
		}
		if !a.excise["vodka"] {
			t.Error("vodka is an excise item")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBookPrefetch reads balances through a stock book that prefetched a
// prefix: every key under it is known, absent ones are zero; a prefetch
// cut short by its limit knows only what it read, so the rest is read
// from the state, not taken as zero.
func TestBookPrefetch(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	keys := []string{
		balKey(storeline.StockAccount("s1", "a", "milk"), storeline.ItemAsset("milk")),
		balKey(storeline.StockAccount("s1", "b", "milk"), storeline.ItemAsset("milk")),
		balKey(storeline.StockAccount("s1", "b", "tea"), storeline.ItemAsset("tea")),
	}
	other := balKey(storeline.StockAccount("s10", "a", "milk"), storeline.ItemAsset("milk"))
	_, err = rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		for i, k := range append(keys, other) {
			if err := rt.SetMeta(k, []byte(fmt.Sprint(i+1))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	prefix := rpBal + "stock/s1/"
	_, err = rep.Apply(2, func(rt *ledger.ReplicaTxn) error {
		// A pending write of the entry is seen too.
		if err := rt.SetMeta(keys[0], []byte("7")); err != nil {
			return err
		}
		for _, limit := range []int{2, 3} {
			b := &txBook{rt: rt, reads: map[string]decimal.Decimal{}}
			if err := b.prefetch(prefix, limit); err != nil {
				return err
			}
			if got := b.whole != ""; got != (limit == 3) {
				t.Errorf("limit %d: whole %q", limit, b.whole)
			}
			for i, want := range []string{"7", "2", "3"} {
				if got := b.decimal(keys[i]); !got.Equal(d(want)) {
					t.Errorf("limit %d: %s = %s, want %s", limit, keys[i], got, want)
				}
			}
			if got := b.decimal(other); !got.Equal(d("4")) {
				t.Errorf("limit %d: another store's %s = %s, want 4", limit, other, got)
			}
			missing := balKey(storeline.StockAccount("s1", "c", "milk"), storeline.ItemAsset("milk"))
			if got := b.decimal(missing); !got.IsZero() || b.err != nil {
				t.Errorf("limit %d: missing balance = %s (%v)", limit, got, b.err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

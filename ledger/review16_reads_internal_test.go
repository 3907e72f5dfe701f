package ledger

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

func review16Item(id, sku string) *storeline.Item {
	return &storeline.Item{ID: storeline.ItemID(id), SKU: sku, Name: id + "/" + sku, Group: "g", Dept: "food",
		Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}
}

// review16Race makes change run inside the second view a read makes,
// before that view takes its snapshot: the change lands between the two
// reads of a LookupMaster that reads the key's holder and the holder's
// record in two transactions. The returned func, called after the read,
// unhooks and runs change if no second view ran it.
func review16Race(v *versions, change func()) (after func()) {
	n := 0
	v.beforeView = func() {
		if n++; n == 2 {
			change()
		}
	}
	return func() {
		v.beforeView = nil
		if n < 2 {
			change()
		}
	}
}

// TestReview16LookupMasterOneSnapshot: a barcode (here a SKU) moves from
// item a to item b while a till looks it up. The answer is a's record as
// it held the key, or b's: never a's new record, which no longer holds
// the key (the till sells a for b's barcode), nor NotFound for a key
// that is held before and after the change.
func TestReview16LookupMasterOneSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change []storeline.Record // applied with DeleteMaster(a) first when deleteA
		delA   bool
	}{
		{name: "moved", change: []storeline.Record{review16Item("a", "A2"), review16Item("b", "K")}},
		{name: "holder deleted", change: []storeline.Record{review16Item("b", "K")}, delA: true},
	} {
		t.Run("ledger/"+tc.name, func(t *testing.T) {
			l, err := Open(DefaultOptions(t.TempDir(), "s1"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := l.PutMaster(ctx, []storeline.Record{review16Item("a", "K"), review16Item("b", "B")}); err != nil {
				t.Fatal(err)
			}
			after := review16Race(l.ver, func() {
				if tc.delA {
					if _, err := l.DeleteMaster(ctx, storeline.KindItem, "a"); err != nil {
						t.Error(err)
					}
				}
				if _, err := l.PutMaster(ctx, tc.change); err != nil {
					t.Error(err)
				}
			})
			var got storeline.Item
			err = l.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &got)
			after()
			if err != nil || got.SKU != "K" {
				t.Fatalf("LookupMaster(sku K) during the change = %s %q, %v; want a record holding K", got.ID, got.SKU, err)
			}
			got = storeline.Item{}
			if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &got); err != nil || got.ID != "b" {
				t.Fatalf("LookupMaster(sku K) after the change = %s %q, %v; want b", got.ID, got.SKU, err)
			}
		})
		t.Run("replica/"+tc.name, func(t *testing.T) {
			r, err := OpenReplica(t.TempDir(), ReplicaOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Apply(1, func(tx *ReplicaTxn) error {
				return tx.PutMasters([]MasterWrite{{Version: 1, Record: review16Item("a", "K")}, {Version: 2, Record: review16Item("b", "B")}})
			}); err != nil {
				t.Fatal(err)
			}
			after := review16Race(r.l.ver, func() {
				var ws []MasterWrite
				if tc.delA {
					ws = append(ws, MasterWrite{Version: 3, Kind: storeline.KindItem, ID: "a"})
				}
				for i, rec := range tc.change {
					ws = append(ws, MasterWrite{Version: uint64(4 + i), Record: rec})
				}
				if _, err := r.Apply(2, func(tx *ReplicaTxn) error { return tx.PutMasters(ws) }); err != nil {
					t.Error(err)
				}
			})
			var got storeline.Item
			err = r.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &got)
			after()
			if err != nil || got.SKU != "K" {
				t.Fatalf("LookupMaster(sku K) during the change = %s %q, %v; want a record holding K", got.ID, got.SKU, err)
			}
			got = storeline.Item{}
			if err := r.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &got); err != nil || got.ID != "b" {
				t.Fatalf("LookupMaster(sku K) after the change = %s %q, %v; want b", got.ID, got.SKU, err)
			}
		})
	}
}

// TestReview16ReplicaCloseWaitsForReads: a read of central's replica in
// progress (Replica.View, as every back-office handler reads) holds
// Close back until it ends, as the node ledger's reads do (versions.go,
// invariant 4); Close must not close Badger under its iterator.
func TestReview16ReplicaCloseWaitsForReads(t *testing.T) {
	r, err := OpenReplica(t.TempDir(), ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(1, func(tx *ReplicaTxn) error { return tx.SetMeta("cursor", []byte("c1")) }); err != nil {
		t.Fatal(err)
	}
	inRead, release := make(chan struct{}), make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		readErr <- r.View(func(tx *ReplicaTxn) error {
			close(inRead)
			<-release
			n := 0
			err := tx.ScanMeta("", func(string, []byte) (bool, error) { n++; return true, nil })
			if err == nil && n == 0 {
				t.Error("the read in progress found nothing")
			}
			return err
		})
	}()
	<-inRead
	waiting := make(chan struct{})
	r.l.ver.shutWait = func() { close(waiting) }
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-waiting:
	case err := <-closed:
		// release stays open: the read would run over a closed Badger.
		t.Fatalf("Close returned (%v) while a read was in progress", err)
	}
	close(release)
	if err := <-readErr; err != nil {
		t.Fatalf("the read in progress: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.View(func(*ReplicaTxn) error { return nil }); storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("View after Close: %v, want Unavailable", err)
	}
}

// TestReview16RecordCacheAfterPut pins the order the record cache rests
// on (masterCache): a master change is committed to Badger before its
// version is published. A till reading an item while the change is
// being applied (here: in the apply seam, between the WAL sync and the
// Badger commit) caches the old record under the old version only; once
// PutMaster returned, every read, by ID or by unique key, sees the new
// record. Published first, the version's cache would take the old record
// and serve it until the next master change: a price change the tills
// never see.
func TestReview16RecordCacheAfterPut(t *testing.T) {
	ctx := context.Background()
	var l *Ledger
	var during atomic.Bool
	var sawVersion atomic.Uint64
	var sawName atomic.Value
	o := DefaultOptions(t.TempDir(), "s1")
	o.Seams = &Seams{Apply: func(uint64) error {
		if during.CompareAndSwap(true, false) {
			var it storeline.Item
			if err := l.GetMaster(storeline.KindItem, "a", &it); err != nil {
				t.Error(err)
			}
			if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &it); err != nil {
				t.Error(err)
			}
			sawVersion.Store(l.MasterVersion())
			sawName.Store(it.Name)
		}
		return nil
	}}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v1, err := l.PutMaster(ctx, []storeline.Record{review16Item("a", "K")})
	if err != nil {
		t.Fatal(err)
	}
	next := review16Item("a", "K")
	next.Name = "new price"
	during.Store(true)
	v2, err := l.PutMaster(ctx, []storeline.Record{next})
	if err != nil {
		t.Fatal(err)
	}
	if during.Load() {
		t.Fatal("the apply seam did not run")
	}
	if sawVersion.Load() != v1 || sawName.Load() != "a/K" {
		t.Fatalf("during the apply of version %d: MasterVersion %d, record %q; want %d, %q", v2, sawVersion.Load(), sawName.Load(), v1, "a/K")
	}
	var got storeline.Item
	if err := l.GetMaster(storeline.KindItem, "a", &got); err != nil || got.Name != "new price" {
		t.Fatalf("GetMaster after PutMaster = %q, %v; want the new record", got.Name, err)
	}
	got = storeline.Item{}
	if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("K"), &got); err != nil || got.Name != "new price" {
		t.Fatalf("LookupMaster after PutMaster = %q, %v; want the new record", got.Name, err)
	}
}

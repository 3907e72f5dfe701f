package ledger_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func item(id, sku string, barcodes ...string) *storeline.Item {
	it := &storeline.Item{ID: storeline.ItemID(id), SKU: sku, Name: "n " + id, Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: dec("10")}
	for _, b := range barcodes {
		it.Barcodes = append(it.Barcodes, storeline.ItemBarcode{Code: b})
	}
	return it
}

func TestMasterStore(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	l := open(t, o)
	v1, err := l.PutMaster(ctx, []storeline.Record{item("a", "A1", "4601234567893"), item("b", "B1")})
	if err != nil || v1 != 2 {
		t.Fatalf("PutMaster = %d, %v, want 2", v1, err)
	}
	var got storeline.Item
	if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("A1"), &got); err != nil || got.ID != "a" {
		t.Fatalf("LookupMaster(sku A1) = %q, %v", got.ID, err)
	}
	if err := l.LookupMaster(storeline.KindItem, storeline.BarcodeKey("04601234567893"), &got); err != nil || got.ID != "a" {
		t.Fatalf("LookupMaster(barcode) = %q, %v", got.ID, err)
	}
	// A key held by another record is a Conflict, and nothing of the call
	// is stored.
	_, err = l.PutMaster(ctx, []storeline.Record{item("c", "C1"), item("b", "A1")})
	if !errors.Is(err, storeline.Conflict) {
		t.Fatalf("PutMaster taking another's SKU: %v, want Conflict", err)
	}
	if err := l.GetMaster(storeline.KindItem, "c", &got); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("GetMaster(c) after a refused call: %v, want NotFound", err)
	}
	if l.MasterVersion() != 2 {
		t.Fatalf("MasterVersion = %d after a refused call, want 2", l.MasterVersion())
	}
	// Renaming a SKU frees the old key for another record, in one call.
	v, err := l.PutMaster(ctx, []storeline.Record{item("a", "A2", "4601234567893"), item("b", "A1")})
	if err != nil || v != 4 {
		t.Fatalf("PutMaster(rename) = %d, %v, want 4", v, err)
	}
	if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("A1"), &got); err != nil || got.ID != "b" {
		t.Fatalf("LookupMaster(A1) = %q, %v, want b", got.ID, err)
	}
	// Tombstones: gone from reads, present in changes, keys released.
	dv, err := l.DeleteMaster(ctx, storeline.KindItem, "a")
	if err != nil || dv != 5 {
		t.Fatalf("DeleteMaster = %d, %v, want 5", dv, err)
	}
	if _, err := l.DeleteMaster(ctx, storeline.KindItem, "a"); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("DeleteMaster twice: %v, want NotFound", err)
	}
	if err := l.GetMaster(storeline.KindItem, "a", &got); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("GetMaster(deleted) = %v, want NotFound", err)
	}
	if _, err := l.PutMaster(ctx, []storeline.Record{item("d", "A2")}); err != nil {
		t.Fatalf("PutMaster taking a deleted record's SKU: %v", err)
	}
	chs, err := l.MasterChanges(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"b@4", "a@5 deleted", "d@6"}
	if len(chs) != len(want) {
		t.Fatalf("MasterChanges(0) = %d changes, want %d", len(chs), len(want))
	}
	for i, c := range chs {
		s := c.ID + "@" + itoa(c.Version)
		if c.Deleted {
			s += " deleted"
		}
		if s != want[i] || (c.Record == nil) != c.Deleted {
			t.Fatalf("MasterChanges[%d] = %s, want %s", i, s, want[i])
		}
	}
	if chs, _ := l.MasterChanges(5, 10); len(chs) != 1 || chs[0].ID != "d" {
		t.Fatalf("MasterChanges(5) = %v, want d", chs)
	}
	var ids []string
	err = l.ScanMaster(storeline.KindItem, "", func(r storeline.Record) error {
		ids = append(ids, r.MasterID())
		return nil
	})
	if err != nil || len(ids) != 2 || ids[0] != "b" || ids[1] != "d" {
		t.Fatalf("ScanMaster = %v, %v, want [b d]", ids, err)
	}
	if _, err := l.PutMaster(ctx, []storeline.Record{item("bad id/", "X")}); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("PutMaster(invalid) = %v, want Invalid", err)
	}
	// Meta, and everything survives a reopen with versions still growing.
	if err := l.SetMeta(ctx, "cursor/central", []byte("42")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	o.Clock = testClock()
	l2 := open(t, o)
	if v, ok, err := l2.Meta("cursor/central"); err != nil || !ok || string(v) != "42" {
		t.Fatalf("Meta = %q, %v, %v", v, ok, err)
	}
	if l2.MasterVersion() != 6 {
		t.Fatalf("MasterVersion after reopen = %d, want 6", l2.MasterVersion())
	}
	if v, err := l2.PutMaster(ctx, []storeline.Record{item("e", "E1")}); err != nil || v != 7 {
		t.Fatalf("PutMaster after reopen = %d, %v, want 7", v, err)
	}
	_ = ledger.MasterChange{}
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

// TestMasterChangesAtMaxVersion: nothing is above the largest version
// (after+1 must not wrap to everything).
func TestMasterChangesAtMaxVersion(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PutMaster(context.Background(), []storeline.Record{item("a", "A1"), item("b", "B1")}); err != nil {
		t.Fatal(err)
	}
	for _, after := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 2} {
		if cs, err := l.MasterChanges(after, 0); err != nil || len(cs) != 0 {
			t.Errorf("MasterChanges(%d) = %d changes, %v, want none", after, len(cs), err)
		}
	}
	if cs, err := l.MasterChanges(1, 0); err != nil || len(cs) != 1 || cs[0].Version != 2 {
		t.Errorf("MasterChanges(1) = %v, %v, want version 2", cs, err)
	}
}

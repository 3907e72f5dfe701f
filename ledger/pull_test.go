package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func pulledItem(id, sku string) *storeline.Item {
	return &storeline.Item{ID: storeline.ItemID(id), SKU: sku, Name: id, Group: "g", Dept: "food",
		Unit: storeline.Piece, VATRate: dec("10")}
}

func transferFrom(origin storeline.StoreID, seq uint64, qty int64) storeline.Event {
	q := decimal.NewFromInt(qty)
	return storeline.Event{ID: eid(1000 + seq), Origin: origin, Epoch: 1, Seq: seq, SchemaVersion: 1,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery"},
		OccurredAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), BusinessDate: "2026-11-28",
		Postings: []storeline.Posting{
			{Account: "stock/s1/food/i1", Asset: "item:i1", Amount: q},
			{Account: "warehouse/i1", Asset: "item:i1", Amount: q.Neg()},
		}}
}

// TestApplyPulled: a page's records, events, meta and cursor apply
// together; a page following another cursor changes nothing; central's
// records move unique keys; all of it survives a reopen (WAL replay).
func TestApplyPulled(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, testOptions(dir))
	v0 := l.MasterVersion()
	res, err := l.ApplyPulled(ctx, ledger.PulledPage{
		CursorKey: "cur", To: []byte("c1"),
		Records: []ledger.PulledRecord{
			{Kind: storeline.KindItem, ID: "i1", Record: pulledItem("i1", "A")},
			{Kind: storeline.KindItem, ID: "i2", Record: pulledItem("i2", "B")},
		},
		Events: []storeline.Event{transferFrom("hq", 1, 5)},
		Meta:   map[string][]byte{"rej.x": []byte("r")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.MasterVersion != v0+2 || l.MasterVersion() != v0+2 {
		t.Fatalf("result %+v, MasterVersion %d, want 1 applied and version %d", res, l.MasterVersion(), v0+2)
	}
	// The same page again (its From is no longer the cursor): refused whole.
	_, err = l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"),
		Events: []storeline.Event{transferFrom("hq", 2, 7)}})
	if !errors.Is(err, storeline.Conflict) {
		t.Fatalf("page on a stale cursor: %v, want Conflict", err)
	}
	// The next page: i2 takes SKU "A" from i1 (central's order), i1 gone.
	_, err = l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c1"), To: []byte("c2"),
		Records: []ledger.PulledRecord{
			{Kind: storeline.KindItem, ID: "i2", Record: pulledItem("i2", "A")},
			{Kind: storeline.KindItem, ID: "i1"},
		},
		Events: []storeline.Event{transferFrom("hq", 1, 5)}, // delivered twice: known
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(l *ledger.Ledger) {
		t.Helper()
		var it storeline.Item
		if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey("A"), &it); err != nil || it.ID != "i2" {
			t.Errorf("sku A held by %q (%v), want i2", it.ID, err)
		}
		if err := l.GetMaster(storeline.KindItem, "i1", &it); !errors.Is(err, storeline.NotFound) {
			t.Errorf("i1 after its tombstone: %v, want NotFound", err)
		}
		if b, _ := l.Balance("stock/s1/food/i1", "item:i1"); !b.Equal(dec("5")) {
			t.Errorf("Balance(stock/s1/food/i1) = %s, want 5", b)
		}
		if v, _, _ := l.Meta("cur"); string(v) != "c2" {
			t.Errorf("cursor %q, want c2", v)
		}
		if v, _, _ := l.Meta("rej.x"); string(v) != "r" {
			t.Errorf("meta rej.x %q, want r", v)
		}
		checkConservation(t, l)
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, testOptions(dir)))
}

// TestOwnEpochs: the last own position of each epoch, across a restore.
func TestOwnEpochs(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	for i := uint64(1); i <= 3; i++ {
		mustAppend(t, l, receiptEvent(eid(i), 1, int(i)))
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &buf, 7); err != nil {
		t.Fatal(err)
	}
	r := open(t, testOptions(dir))
	mustAppend(t, r, receiptEvent(eid(4), 1, 4))
	ps, err := r.OwnEpochs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []ledger.Position{{Epoch: 1, Seq: 3}, {Epoch: 7, Seq: 1}}; len(ps) != 2 || ps[0] != want[0] || ps[1] != want[1] {
		t.Fatalf("OwnEpochs = %v, want %v", ps, want)
	}
}

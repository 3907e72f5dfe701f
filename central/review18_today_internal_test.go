package central

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// review18Submit submits op with payload and fails the test on any error.
func review18Submit(t *testing.T, n *Node, op string, payload any) {
	t.Helper()
	enc, err := msgpack.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Submit(context.Background(), op, "", enc)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// TestReview18DocPostTakesBatchesAfterSalesCosted: a write-off posted
// while a sale waits for its cost: the post costs the sale first, which
// takes its units from the early batch; the write-off must then take
// from what is left (the late batch), not again from the early one as
// it stood before the sale (the early batch then owed what the late one
// still showed: 5 units in batches where the books held 1).
func TestReview18DocPostTakesBatchesAfterSalesCosted(t *testing.T) {
	SetCostPassLimit(t, 1) // a push costs one sale: the second waits
	n := openSingle(t)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"}, &storeline.Supplier{ID: "p1", Name: "P"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")}); err != nil {
		t.Fatal(err)
	}
	review18Submit(t, n, OpDocCreate, &storeline.Document{ID: "inv", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1",
		Lines: []storeline.DocumentLine{
			{Item: "milk", Qty: d("5"), PurchasePrice: d("1"), Batch: "early", Expiry: "2026-12-05"},
			{Item: "milk", Qty: d("5"), PurchasePrice: d("1"), Batch: "late", Expiry: "2027-03-01"}}})
	review18Submit(t, n, OpDocPost, &docIDPayload{ID: "inv"})

	var evs []storeline.Event
	for i, q := range []string{"1", "4"} {
		r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
			Lines:    []storeline.Line{{Item: "milk", Dept: "food", Unit: storeline.Piece, Qty: d(q), Price: d("4"), VATRate: d("10")}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d("4").Mul(d(q))}}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		ps, err := storeline.DerivePostings("s1", r)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: uint64(i + 1), SchemaVersion: storeline.SchemaVersion,
			Kind: storeline.KindReceipt, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29", Body: r, Postings: ps})
	}
	if res, err := (backend{n}).Push(ctx, replication.Batch{Store: "s1", Epoch: 1, Events: evs}); err != nil || len(res.Rejections) != 0 {
		t.Fatalf("push: %+v, %v", res, err)
	}
	// Early 4, late 5; the sale of 4 waits. The write-off of 4 costs it
	// (early 0), then takes 4 first-expiring first: from late.
	review18Submit(t, n, OpDocCreate, &storeline.Document{ID: "wo", Type: storeline.DocWriteOff, Store: "s1", Reason: "spoiled",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: d("4")}}})
	review18Submit(t, n, OpDocPost, &docIDPayload{ID: "wo"})

	got := map[string]string{}
	if err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(boBatch+"s1\x00milk\x00", func(_ string, v []byte) (bool, error) {
			var b storedBatch
			if err := msgpack.Unmarshal(v, &b); err != nil {
				return false, err
			}
			got[b.Batch] = b.Qty.String() + " owed " + b.Owed.String()
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"early": "0 owed 0", "late": "1 owed 0"}
	if got["early"] != want["early"] || got["late"] != want["late"] {
		t.Fatalf("batches after the sales and the write-off: %v, want %v (1 unit left on the books)", got, want)
	}
}

package central

import (
	"bytes"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReviewBO3OldRepricingCancelsAsBefore: a repricing posted before
// posts recorded what its prices replaced (no PriceSets) still cancels as
// it did: its prices that hold their value are withdrawn.
func TestReviewBO3OldRepricingCancelsAsBefore(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	manual := storeline.Price{List: "retail", Item: "milk", From: from, Price: d("1.29")}
	index := uint64(0)
	apply := func(what string, fn func(tx *Tx) error) {
		t.Helper()
		index++
		if _, err := rep.Apply(index, func(rt *ledger.ReplicaTxn) error {
			return fn(&Tx{ReplicaTxn: rt, Index: index, At: time.Now()})
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	apply("master data", func(tx *Tx) error {
		return tx.PutMasters([]ledger.MasterWrite{
			{Version: Version{index, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}, PriceLists: []storeline.PriceListID{"retail"}}},
			{Version: Version{index, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
			{Version: Version{index, 3}.Pack(), Record: &storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("10")}},
			{Version: Version{index, 4}.Pack(), Record: &storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"}},
			{Version: Version{index, 5}.Pack(), Record: &manual},
		})
	})
	doc, _ := msgpack.Marshal(&storeline.Document{ID: "rp1", Type: storeline.DocRepricing, Store: "s1", PriceList: "retail", From: from,
		Lines: []storeline.DocumentLine{{Item: "milk", Price: d("1.49")}}})
	id, _ := msgpack.Marshal(&docIDPayload{ID: "rp1"})
	apply("create and post rp1", func(tx *Tx) error {
		if _, err := applyDocCreate(tx, doc); err != nil {
			return err
		}
		_, err := applyDocPost(tx, id)
		return err
	})
	// As a post before PriceSets left it: no record, no marker.
	apply("make rp1 old", func(tx *Tx) error {
		rec, _, err := getDoc(tx.ReplicaTxn, "rp1")
		if err != nil {
			return err
		}
		if len(rec.PriceSets) != 1 || !rec.PriceSets[0].Had || !rec.PriceSets[0].Was.Equal(d("1.29")) {
			t.Errorf("rp1's post recorded %+v, want milk's 1.29 replaced", rec.PriceSets)
		}
		rec.PriceSets = nil
		if err := putDoc(tx.ReplicaTxn, rec); err != nil {
			return err
		}
		return tx.SetMeta(boPriceBy+manual.MasterID(), nil)
	})
	apply("cancel rp1", func(tx *Tx) error {
		_, err := applyDocCancel(tx, id)
		return err
	})
	if err := rep.View(func(rt *ledger.ReplicaTxn) error {
		ok, err := rt.GetMaster(storeline.KindPrice, manual.MasterID(), nil)
		if err == nil && ok {
			t.Errorf("the old repricing's cancel left a price of milk; it withdrew it before")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReviewBO3StoredBatchEncoding: a batch that owes nothing is stored
// byte for byte as before (a storeline.Batch), older state decodes, and
// what a batch owes survives a round trip.
func TestReviewBO3StoredBatchEncoding(t *testing.T) {
	b := storeline.Batch{Store: "s1", Item: "milk", Batch: "B1", Expiry: "2027-01-01", Certificate: "C-1", Qty: decimal.RequireFromString("4")}
	old, err := msgpack.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	now, err := msgpack.Marshal(&storedBatch{batchFields: batchFields(b)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, now) {
		t.Fatalf("a batch owing nothing encodes as %x, was %x", now, old)
	}
	var sb storedBatch
	if err := msgpack.Unmarshal(old, &sb); err != nil || sb.Batch != b.Batch || sb.Certificate != b.Certificate || !sb.Qty.Equal(b.Qty) || !sb.Owed.IsZero() {
		t.Fatalf("old batch decodes as %+v (%v)", sb, err)
	}
	sb.Qty, sb.Owed = decimal.Zero, decimal.RequireFromString("3")
	enc, err := msgpack.Marshal(&sb)
	if err != nil {
		t.Fatal(err)
	}
	var back storedBatch
	if err := msgpack.Unmarshal(enc, &back); err != nil || !back.Owed.Equal(sb.Owed) || back.Batch != "B1" {
		t.Fatalf("owing batch decodes as %+v (%v)", back, err)
	}
	var plain storeline.Batch
	if err := msgpack.Unmarshal(enc, &plain); err != nil || plain.Batch != "B1" || !plain.Qty.IsZero() {
		t.Fatalf("owing batch read as a storeline.Batch: %+v (%v)", plain, err)
	}
}

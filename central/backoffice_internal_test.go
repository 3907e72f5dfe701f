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

// TestCostOfSalesInEntry derives a sale's cost inside a replica entry:
// from the stored balances plus the entry's pending changes, consuming
// batches first-expiring first.
func TestCostOfSalesInEntry(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	stock := storeline.StockAccount("s1", "main", "milk")
	var got []storeline.Posting
	var left []storeline.Batch
	_, err = rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, Index: 1, At: time.Now()}
		if err := rt.PutMasters([]ledger.MasterWrite{
			{Version: Version{1, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}}},
			{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
			{Version: Version{1, 3}.Pack(), Record: &storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("10")}},
		}); err != nil {
			return err
		}
		// 10 on the books worth 25.00, in two batches.
		if err := rt.SetMeta(balKey(stock, storeline.ItemAsset("milk")), []byte("10")); err != nil {
			return err
		}
		if err := rt.SetMeta(balKey(stock, storeline.MoneyAsset("EUR")), []byte("25")); err != nil {
			return err
		}
		for _, b := range []storeline.Batch{{Batch: "late", Expiry: "2027-03-01", Qty: d("6")}, {Batch: "early", Expiry: "2026-12-01", Qty: d("4")}} {
			b.Store, b.Item = "s1", "milk"
			if err := addBatch(tx, b, b.Qty); err != nil {
				return err
			}
		}
		// An earlier sale of 2 in the same entry is pending: 8 left, worth 25.
		pending := map[string]decimal.Decimal{balKey(stock, storeline.ItemAsset("milk")): d("-2")}
		sale := &storeline.Event{Origin: "s1", Postings: []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset("milk"), Amount: d("-5")},
			{Account: storeline.SoldAccount("s1", "milk"), Asset: storeline.ItemAsset("milk"), Amount: d("5")},
		}}
		var err error
		if got, err = CostOfSales(tx, sale, pending); err != nil {
			return err
		}
		sold := map[storeline.ItemID]decimal.Decimal{}
		soldUnits(sale, sold)
		if err := consumeBatches(tx, "s1", sold); err != nil {
			return err
		}
		left, err = batchesOf(rt, "s1", "milk")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// 25.00 × 5 / 8 = 15.625 → 15.63.
	want := []storeline.Posting{
		{Account: storeline.COGSAccount("s1", "milk"), Asset: "cur:EUR", Amount: d("15.63")},
		{Account: stock, Asset: "cur:EUR", Amount: d("-15.63")},
	}
	if len(got) != 2 || got[0].String() != want[0].String() || got[1].String() != want[1].String() {
		t.Fatalf("CostOfSales = %v, want %v", got, want)
	}
	// FEFO: the early batch (4) first, then 1 of the late one.
	if len(left) != 2 || left[0].Batch != "early" || !left[0].Qty.IsZero() || left[1].Batch != "late" || !left[1].Qty.Equal(d("5")) {
		t.Fatalf("batches after the sale = %+v, want early 0, late 5", left)
	}
}

// FuzzDocumentDecode feeds the head-office API's document decoder and
// validator arbitrary bodies: they may refuse, never panic, and what they
// accept encodes for the FSM and validates again unchanged.
func FuzzDocumentDecode(f *testing.F) {
	f.Add([]byte(`{"type":"incoming_invoice","store":"s1","supplier":"p1","lines":[{"item":"milk","packs":"2","pack_factor":"12","purchase_price":"1.10","expiry":"2026-12-01"}]}`))
	f.Add([]byte(`{"type":"stocktake","store":"s1","position":{"epoch":1,"seq":5},"lines":[{"item":"milk","qty":"0"}]}`))
	f.Add([]byte(`{"type":"repricing","store":"s1","price_list":"retail","from":"2027-01-01T00:00:00Z","lines":[{"item":"milk","price":"1.49"}]}`))
	f.Add([]byte(`{"type":"write_off","store":"s1","reason":"x","lines":[{"item":"milk","qty":"-1e9999"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var d storeline.Document
		if err := decodeWire(body, &d); err != nil {
			return
		}
		d.ID = "doc"
		if err := d.Validate(); err != nil {
			return
		}
		enc, err := msgpack.Marshal(&d)
		if err != nil {
			t.Fatalf("encode %+v: %v", d, err)
		}
		var back storeline.Document
		if err := msgpack.Unmarshal(enc, &back); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid document is invalid after the round trip: %v", err)
		}
	})
}

// TestCostPlanIsBounded plans cost-of-sales passes over a shop's pushed
// receipts: a pass reads at most its limit and says it is not done; a full
// pass costs every sale at the average before it.
func TestCostPlanIsBounded(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")}); err != nil {
		t.Fatal(err)
	}
	stock := storeline.StockAccount("s1", "food", "milk")
	if _, err := n.Transfer(ctx, storeline.NewEventID(), "delivery", "", []storeline.Posting{
		{Account: stock, Asset: storeline.ItemAsset("milk"), Amount: d("10")},
		{Account: "warehouse/milk", Asset: storeline.ItemAsset("milk"), Amount: d("-10")},
		{Account: stock, Asset: "cur:EUR", Amount: d("25")},
		{Account: "warehouse/milk", Asset: "cur:EUR", Amount: d("-25")},
	}); err != nil {
		t.Fatal(err)
	}
	var evs []storeline.Event
	for i := 0; i < 5; i++ {
		r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
			Lines:    []storeline.Line{{Item: "milk", Dept: "food", Unit: storeline.Piece, Qty: d("1"), Price: d("4"), VATRate: d("10")}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d("4")}}}
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
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, At: time.Now()}
		part, err := planCosts(tx, "s1", 2)
		if err != nil {
			return err
		}
		if part.answer.Done || part.answer.Costed != 2 || part.answer.Seq != 2 {
			t.Errorf("pass of 2 = %+v, want 2 costed, not done, at seq 2", part.answer)
		}
		full, err := planCosts(tx, "s1", MaxCostedPerEntry)
		if err != nil {
			return err
		}
		// 10 worth 25.00 before the first sale: 2.50 each, whatever the
		// balances say after all five (5 units worth 25.00).
		if !full.answer.Done || len(full.costs) != 5 {
			t.Fatalf("full pass = %+v", full.answer)
		}
		for _, c := range full.costs {
			if !c.cost.Equal(d("2.5")) {
				t.Errorf("sale %v cost %s, want 2.50", c.pos, c.cost)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview13SwapRefusedWhole: two items swapping SKUs in one PutMaster
// is refused in either order (unique keys are checked record by record,
// as central's import checks them), and the refusal changes nothing.
func TestReview13SwapRefusedWhole(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PutMaster(ctx, []storeline.Record{pulledItem("a", "X"), pulledItem("b", "Y")}); err != nil {
		t.Fatal(err)
	}
	v0 := l.MasterVersion()
	for _, recs := range [][]storeline.Record{
		{pulledItem("a", "Y"), pulledItem("b", "X")},
		{pulledItem("b", "X"), pulledItem("a", "Y")},
	} {
		if _, err := l.PutMaster(ctx, recs); !errors.Is(err, storeline.Conflict) {
			t.Fatalf("swap %s/%s: %v, want Conflict", recs[0].MasterID(), recs[1].MasterID(), err)
		}
	}
	if v := l.MasterVersion(); v != v0 {
		t.Fatalf("version after refused swaps %d, want %d", v, v0)
	}
	for sku, want := range map[string]storeline.ItemID{"X": "a", "Y": "b"} {
		var it storeline.Item
		if err := l.LookupMaster(storeline.KindItem, storeline.SKUKey(sku), &it); err != nil || it.ID != want {
			t.Fatalf("SKU %s held by %q (%v), want %s", sku, it.ID, err, want)
		}
	}
}

// TestReview13MultiKeyTombstone: a pulled page moves one barcode of an
// item to another; the item's tombstone then frees its other keys, never
// the moved one, and the freed keys can be taken again.
func TestReview13MultiKeyTombstone(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	a := pulledItem("a", "A")
	a.Barcodes = []storeline.ItemBarcode{{Code: "04006381333931", Factor: dec("1")}, {Code: "05012345678900", Factor: dec("12")}}
	page := func(from, to string, recs ...ledger.PulledRecord) {
		t.Helper()
		var f []byte
		if from != "" {
			f = []byte(from)
		}
		if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: f, To: []byte(to), Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	page("", "1", ledger.PulledRecord{Kind: storeline.KindItem, ID: "a", Record: a})
	b := pulledItem("b", "B")
	b.Barcodes = []storeline.ItemBarcode{{Code: "05012345678900", Factor: dec("1")}}
	page("1", "2", ledger.PulledRecord{Kind: storeline.KindItem, ID: "b", Record: b})
	page("2", "3", ledger.PulledRecord{Kind: storeline.KindItem, ID: "a"})
	lookup := func(key string) (storeline.ItemID, error) {
		var it storeline.Item
		err := l.LookupMaster(storeline.KindItem, key, &it)
		return it.ID, err
	}
	if id, err := lookup(storeline.BarcodeKey("05012345678900")); err != nil || id != "b" {
		t.Fatalf("moved barcode held by %q (%v), want b", id, err)
	}
	for _, k := range []string{storeline.SKUKey("A"), storeline.BarcodeKey("04006381333931")} {
		if id, err := lookup(k); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("%s after its holder's tombstone: %q %v, want NotFound", k, id, err)
		}
	}
	c := pulledItem("c", "A")
	c.Barcodes = []storeline.ItemBarcode{{Code: "04006381333931", Factor: dec("1")}}
	if _, err := l.PutMaster(ctx, []storeline.Record{c}); err != nil {
		t.Fatalf("taking the freed keys: %v", err)
	}
	d := pulledItem("d", "D")
	d.Barcodes = []storeline.ItemBarcode{{Code: "05012345678900", Factor: dec("1")}}
	if _, err := l.PutMaster(ctx, []storeline.Record{d}); !errors.Is(err, storeline.Conflict) {
		t.Fatalf("taking b's barcode: %v, want Conflict", err)
	}
}

// TestReview13RestoredEpochPersists: the epoch a restore moves to is the
// one every later event takes, across reopens, and sequence numbers go on
// in it.
func TestReview13RestoredEpochPersists(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	mustAppend(t, l, receiptEvent(eid(1), 1, 1))
	mustAppend(t, l, receiptEvent(eid(2), 1, 2))
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	epoch := uint64(testClock().Now())
	if err := ledger.Restore(dir, &buf, epoch); err != nil {
		t.Fatal(err)
	}
	for i, id := range []uint64{3, 4, 5} {
		r, err := ledger.Open(testOptions(dir))
		if err != nil {
			t.Fatal(err)
		}
		ev := mustAppend(t, r, receiptEvent(eid(id), 1, int(id)))
		if ev.Epoch != epoch || ev.Seq != uint64(i+1) {
			r.Close()
			t.Fatalf("event %d after restore at %d/%d, want %d/%d", id, ev.Epoch, ev.Seq, epoch, i+1)
		}
		if i == 1 {
			err = r.CloseAsCrash()
		} else {
			err = r.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestReview13ShiftAcrossMidnight: a shift opened one day and closed the
// next keeps one record; its totals are the same after a crash and
// reopen and after a rebuild from the journal.
func TestReview13ShiftAcrossMidnight(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id uint64, date string, body storeline.Body) storeline.Event {
		return storeline.Event{ID: eid(id), Body: body, BusinessDate: storeline.Date(date),
			OccurredAt: time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)}
	}
	mustAppend(t, l, ev(1, "2026-11-28", &storeline.ShiftOpen{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR", Float: dec("50")}))
	mustAppend(t, l, ev(2, "2026-11-28", receipt(2, 1)))
	mustAppend(t, l, ev(3, "2026-11-29", receipt(3, 2)))
	mustAppend(t, l, ev(4, "2026-11-29", &storeline.CashOp{Terminal: "t1", Shift: "sh1", Seller: "alice", Direction: storeline.CashOut, Currency: "EUR", Amount: dec("10"), Reason: "bank"}))
	mustAppend(t, l, ev(5, "2026-11-29", &storeline.ShiftClose{Terminal: "t1", Shift: "sh1", Seller: "alice"}))
	want, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if want.Events != 5 || want.Receipts != 2 || want.Opening == nil || want.Close == nil {
		t.Fatalf("totals %s", shiftString(want))
	}
	if err := l.CloseAsCrash(); err != nil {
		t.Fatal(err)
	}
	l = open(t, testOptions(dir))
	got, err := l.ShiftTotals("t1", "sh1")
	if err != nil || shiftString(got) != shiftString(want) {
		t.Fatalf("after reopen %s (%v), want %s", shiftString(got), err, shiftString(want))
	}
	if err := l.DropViews(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, testOptions(dir))
	got, err = l.ShiftTotals("t1", "sh1")
	if err != nil || shiftString(got) != shiftString(want) {
		t.Fatalf("after rebuild %s (%v), want %s", shiftString(got), err, shiftString(want))
	}
	n := 0
	if err := l.EventsByDate("2026-11-28", "2026-11-29", func(storeline.Event) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("EventsByDate across midnight: %d events (%v), want 5", n, err)
	}
}

// TestReview13ReplicaSwapRefusedWhole: central's replica refuses a swap
// of SKUs in one entry in either order, as the node does, and writes
// none of it; the entry's other writes still commit.
func TestReview13ReplicaSwapRefusedWhole(t *testing.T) {
	r, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Apply(1, func(tx *ledger.ReplicaTxn) error {
		return tx.PutMasters([]ledger.MasterWrite{{Version: 1, Record: pulledItem("a", "X")}, {Version: 2, Record: pulledItem("b", "Y")}})
	}); err != nil {
		t.Fatal(err)
	}
	for i, order := range [][2]string{{"a", "b"}, {"b", "a"}} {
		sku := map[string]string{"a": "Y", "b": "X"}
		var perr error
		if _, err := r.Apply(uint64(2+i), func(tx *ledger.ReplicaTxn) error {
			perr = tx.PutMasters([]ledger.MasterWrite{
				{Version: uint64(10 * (i + 1)), Record: pulledItem(order[0], sku[order[0]])},
				{Version: uint64(10*(i+1) + 1), Record: pulledItem(order[1], sku[order[1]])},
			})
			return tx.SetMeta("after", []byte{byte(i)})
		}); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(perr, storeline.Conflict) {
			t.Fatalf("swap %v: %v, want Conflict", order, perr)
		}
	}
	cs, err := r.MasterChanges(0, 10)
	if err != nil || len(cs) != 2 || cs[0].Version != 1 || cs[1].Version != 2 {
		t.Fatalf("changes after refused swaps: %+v (%v)", cs, err)
	}
	if v, err := r.Meta("after"); err != nil || !bytes.Equal(v, []byte{1}) {
		t.Fatalf("meta after refused swaps: %v (%v)", v, err)
	}
}

package ledger_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func TestAppendIdempotentAndConflict(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	l := open(t, o)
	ev := receiptEvent(eid(1), 3, 0)
	got, created, err := l.Append(ctx, ev)
	if err != nil || !created {
		t.Fatalf("Append = %v, %v, want created", created, err)
	}
	if got.Seq != 1 || got.Epoch != 1 || got.Origin != store || got.HLC == 0 || len(got.Postings) == 0 {
		t.Fatalf("stored event = %+v", got)
	}
	again, created, err := l.Append(ctx, receiptEvent(eid(1), 3, 0))
	if err != nil || created {
		t.Fatalf("second Append = %v, %v, want not created", created, err)
	}
	if again.Seq != got.Seq || again.HLC != got.HLC {
		t.Fatalf("second Append returned %d/%d, want the original %d/%d", again.Seq, again.HLC, got.Seq, got.HLC)
	}
	_, _, err = l.Append(ctx, receiptEvent(eid(1), 4, 0))
	if !errors.Is(err, storeline.Conflict) {
		t.Fatalf("Append with another body: %v, want Conflict", err)
	}
	mustAppend(t, l, receiptEvent(eid(2), 2, 1))
	if p := l.Position(); p != (ledger.Position{Epoch: 1, Seq: 2}) {
		t.Fatalf("Position = %v, want 1/2", p)
	}
	bal, err := l.Balance(storeline.SoldAccount(store, "i0"), storeline.ItemAsset("i0"))
	if err != nil || !bal.Equal(dec("2")) {
		t.Fatalf("Balance(sold i0) = %s, %v, want 2", bal, err)
	}
	checkConservation(t, l)
	j, err := l.Journal(store, ledger.Position{}, 0)
	if err != nil || len(j) != 2 || j[0].ID != eid(1) || j[1].ID != eid(2) {
		t.Fatalf("Journal = %d events, %v", len(j), err)
	}
	bs, err := l.Balances("stock/" + string(store) + "/")
	if err != nil || len(bs) != 3 {
		t.Fatalf("Balances(stock) = %v, %v, want 3", bs, err)
	}

	// Reopen: everything is still there, the clock does not go back, and
	// seqs go on.
	hlc := got.HLC
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	o.Clock = testClock()
	l2 := open(t, o)
	if p := l2.Position(); p.Seq != 2 {
		t.Fatalf("Position after reopen = %v", p)
	}
	if o.Clock.Last() < crdtTS(hlc) {
		t.Fatalf("clock %d after reopen below stored HLC %d", o.Clock.Last(), hlc)
	}
	ev3 := mustAppend(t, l2, receiptEvent(eid(3), 1, 0))
	if ev3.Seq != 3 || ev3.HLC <= hlc {
		t.Fatalf("after reopen: seq %d hlc %d", ev3.Seq, ev3.HLC)
	}
	e, err := l2.Event(store, eid(1))
	if err != nil || e.Seq != 1 {
		t.Fatalf("Event after reopen = %v, %v", e.Seq, err)
	}
	if _, err := l2.Event(store, eid(99)); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("Event(missing) = %v, want NotFound", err)
	}
	checkConservation(t, l2)
}

// TestReadsAfterCloseAreUnavailable: a read that comes after Close (a
// request the node's drain gave up on) is Unavailable, neither a panic of
// an iterator over a closed Badger nor an Internal error.
func TestReadsAfterCloseAreUnavailable(t *testing.T) {
	l, err := ledger.Open(testOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ev := mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var item storeline.Item
	reads := map[string]func() error{
		"Event":    func() error { _, err := l.Event(store, ev.ID); return err },
		"Journal":  func() error { _, err := l.Journal(store, ledger.Position{Epoch: ev.Epoch, Seq: 1}, 10); return err },
		"Balance":  func() error { _, err := l.Balance("cash/s1/t1", "cur:EUR"); return err },
		"Balances": func() error { _, err := l.Balances("stock/"); return err },
		"EventsByDate": func() error {
			return l.EventsByDate(ev.BusinessDate, ev.BusinessDate, func(storeline.Event) error { return nil })
		},
		"ReturnsOf":   func() error { _, err := l.ReturnsOf(ev.ID); return err },
		"ShiftTotals": func() error { _, err := l.ShiftTotals("t1", "sh1"); return err },
		"Meta":        func() error { _, _, err := l.Meta("cursor"); return err },
		"GetMaster":   func() error { return l.GetMaster(storeline.KindItem, "i0", &item) },
		"ScanMaster": func() error {
			return l.ScanMaster(storeline.KindItem, "", func(storeline.Record) error { return nil })
		},
		"MasterChanges": func() error { _, err := l.MasterChanges(0, 10); return err },
		"Backup":        func() error { return l.Backup(io.Discard) },
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			if err := read(); storeline.KindOf(err) != storeline.Unavailable {
				t.Fatalf("after Close: %v (kind %v), want Unavailable", err, storeline.KindOf(err))
			}
		})
	}
}

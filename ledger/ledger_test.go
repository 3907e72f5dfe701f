package ledger_test

import (
	"context"
	"errors"
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

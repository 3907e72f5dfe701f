package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t.TempDir())
	l := open(t, o)
	for i := uint64(1); i <= 3; i++ {
		mustAppend(t, l, receiptEvent(eid(i), 2, int(i)))
	}
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	lost := mustAppend(t, l, receiptEvent(eid(4), 2, 4)) // after the backup
	l.Close()

	dir := filepath.Join(t.TempDir(), "restored")
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), 1); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Restore to a smaller epoch: %v, want Invalid", err)
	}
	const epoch = 1_000_000
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), epoch); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := ledger.Restore(dir, bytes.NewReader(buf.Bytes()), epoch+1); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Restore into a non-empty dir: %v, want Invalid", err)
	}
	ro := testOptions(dir)
	r := open(t, ro)
	if p := r.Position(); p != (ledger.Position{Epoch: epoch, Seq: 0}) {
		t.Fatalf("Position after restore = %v, want %d/0", p, epoch)
	}
	// A till retries an event the backup holds: counted once.
	got, created, err := r.Append(ctx, receiptEvent(eid(2), 2, 2))
	if err != nil || created || got.Epoch != 1 || got.Seq != 2 {
		t.Fatalf("retry of a backed-up event = %d/%d created %v err %v, want 1/2 not created", got.Epoch, got.Seq, created, err)
	}
	// A till retries the event the backup lacks: appended anew, seq 1 of
	// the new epoch.
	again, created, err := r.Append(ctx, receiptEvent(eid(4), 2, 4))
	if err != nil || !created || again.Epoch != epoch || again.Seq != 1 {
		t.Fatalf("retry of a lost event = %d/%d created %v err %v, want %d/1 created", again.Epoch, again.Seq, created, err, epoch)
	}
	// Central later sends back the old copy: it keeps its old position and
	// has no effect.
	before, _ := r.Balance(storeline.SoldAccount(store, "i0"), storeline.ItemAsset("i0"))
	applied, err := r.ApplyRemote(ctx, lost)
	if err != nil || applied {
		t.Fatalf("ApplyRemote(old copy) = %v, %v, want not applied", applied, err)
	}
	after, _ := r.Balance(storeline.SoldAccount(store, "i0"), storeline.ItemAsset("i0"))
	if !before.Equal(after) || !after.Equal(dec("4")) {
		t.Fatalf("Balance(sold i0) = %s then %s, want 4", before, after)
	}
	j, err := r.Journal(store, ledger.Position{}, 0)
	if err != nil || len(j) != 5 {
		t.Fatalf("Journal = %d, %v, want 5 (3 old, the old copy at 1/4, the new at %d/1)", len(j), err, epoch)
	}
	if j[3].Epoch != 1 || j[3].Seq != 4 || j[4].Epoch != epoch || j[3].ID != j[4].ID {
		t.Fatalf("Journal tail = %v/%v %v/%v", j[3].Epoch, j[3].Seq, j[4].Epoch, j[4].Seq)
	}
	checkConservation(t, r)
	// HLC never goes back: the restored node's clock is above the backup's.
	if ro.Clock.Last() < crdtTS(got.HLC) {
		t.Fatalf("clock %d below restored HLC %d", ro.Clock.Last(), got.HLC)
	}
}

func TestApplyRemoteRefusesUnbalanced(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	ev := storeline.Event{
		ID: eid(1), Origin: "o1", Epoch: 1, Seq: 1, Kind: storeline.KindTransfer,
		Body:     &storeline.Transfer{Reason: "x"},
		Postings: []storeline.Posting{{Account: "a", Asset: "cur:EUR", Amount: dec("1")}},
	}
	if _, err := l.ApplyRemote(context.Background(), ev); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("ApplyRemote(unbalanced) = %v, want Invalid", err)
	}
	ev.Postings = append(ev.Postings, storeline.Posting{Account: "b", Asset: "cur:EUR", Amount: dec("-1")})
	if ok, err := l.ApplyRemote(context.Background(), ev); err != nil || !ok {
		t.Fatalf("ApplyRemote = %v, %v", ok, err)
	}
	other := ev
	other.ID = eid(2)
	if _, err := l.ApplyRemote(context.Background(), other); !errors.Is(err, storeline.Conflict) {
		t.Fatalf("ApplyRemote at a taken position = %v, want Conflict", err)
	}
	checkConservation(t, l)
}

func TestEventsByDateAndReturnsOf(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	sale := mustAppend(t, l, receiptEvent(eid(1), 2, 0))
	r := sale.Body.(*storeline.Receipt)
	orig := sale.ID
	ret := storeline.Event{
		ID: eid(2), Kind: storeline.KindReturn, BusinessDate: "2026-11-29",
		Body: &storeline.Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR",
			Original: &orig, Reason: "broken", Lines: []storeline.Line{r.Lines[0]},
			Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: r.Lines[0].Total}}},
	}
	if _, _, err := l.Append(ctx, ret); err != nil {
		t.Fatalf("Append(return): %v", err)
	}
	rs, err := l.ReturnsOf(orig)
	if err != nil || len(rs) != 1 || rs[0].ID != eid(2) {
		t.Fatalf("ReturnsOf = %v, %v", len(rs), err)
	}
	var days []storeline.Date
	err = l.EventsByDate("2026-11-28", "2026-11-29", func(ev storeline.Event) error {
		days = append(days, ev.BusinessDate)
		return nil
	})
	if err != nil || len(days) != 2 || days[0] != "2026-11-28" || days[1] != "2026-11-29" {
		t.Fatalf("EventsByDate = %v, %v", days, err)
	}
	days = nil
	_ = l.EventsByDate("2026-11-29", "2026-11-29", func(ev storeline.Event) error {
		days = append(days, ev.BusinessDate)
		return nil
	})
	if len(days) != 1 {
		t.Fatalf("EventsByDate(29th) = %v", days)
	}
	checkConservation(t, l)
}

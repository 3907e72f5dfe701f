package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReadsSeeAnsweredWrites holds the Badger apply of each append (the
// Apply seam blocks) after the append was answered at its WAL sync, then
// runs one kind of read: it must return the appended event's effects,
// waiting for the apply, never a state from before the answer. The apply
// is released only once the read waits (or has returned, which a read
// that does not wait does at once, stale).
func TestReadsSeeAnsweredWrites(t *testing.T) {
	var block atomic.Pointer[chan struct{}]
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{Apply: func(uint64) error {
		if ch := block.Load(); ch != nil {
			<-*ch
		}
		return nil
	}}
	l := open(t, o)
	ctx := context.Background()

	n, cash := 0, decimal.Zero
	type check func(ev storeline.Event) error
	// event is what a read's case appends (a receipt unless it says).
	reads := []struct {
		name  string
		read  check
		event func(i int) storeline.Event
	}{
		{"Event", func(ev storeline.Event) error {
			_, err := l.Event(store, ev.ID)
			return err
		}, nil},
		{"Journal", func(ev storeline.Event) error {
			j, err := l.Journal(store, ledger.Position{Epoch: ev.Epoch, Seq: ev.Seq}, 1)
			if err != nil {
				return err
			}
			if len(j) != 1 || j[0].ID != ev.ID {
				return fmt.Errorf("journal at %d/%d holds %d events, not %s", ev.Epoch, ev.Seq, len(j), ev.ID)
			}
			return nil
		}, nil},
		{"Balance", func(storeline.Event) error {
			b, err := l.Balance("cash/s1/t1", "cur:EUR")
			if err == nil && !b.Equal(cash) {
				err = fmt.Errorf("cash balance %s, want %s", b, cash)
			}
			return err
		}, nil},
		{"Balances", func(storeline.Event) error {
			bs, err := l.Balances("cash/")
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(bs, func(b ledger.Balance) bool { return b.Amount.Equal(cash) }) {
				return fmt.Errorf("cash balances %v lack %s", bs, cash)
			}
			return nil
		}, nil},
		{"ShiftTotals", func(storeline.Event) error {
			tot, err := l.ShiftTotals("t1", "sh1")
			if err == nil && tot.Receipts != n {
				err = fmt.Errorf("shift totals count %d receipts, want %d", tot.Receipts, n)
			}
			return err
		}, nil},
		{"EventsByDate", func(ev storeline.Event) error {
			found := false
			err := l.EventsByDate(ev.BusinessDate, ev.BusinessDate, func(e storeline.Event) error {
				found = found || e.ID == ev.ID
				return nil
			})
			if err == nil && !found {
				err = fmt.Errorf("event %s not listed under %s", ev.ID, ev.BusinessDate)
			}
			return err
		}, nil},
		{"Position", func(ev storeline.Event) error {
			if p := l.Position(); p.Seq < ev.Seq {
				return fmt.Errorf("position %s behind the answered %d/%d", p, ev.Epoch, ev.Seq)
			}
			return nil
		}, nil},
		// Last, as they append a return and read no cash or counts.
		{"ReturnsOf", func(ev storeline.Event) error {
			rs, err := l.ReturnsOf(eid(1))
			if err == nil && !slices.ContainsFunc(rs, func(r storeline.Event) bool { return r.ID == ev.ID }) {
				err = fmt.Errorf("returns of %s (%d) lack the answered return %s", eid(1), len(rs), ev.ID)
			}
			return err
		}, func(i int) storeline.Event {
			sale := receipt(3, 0) // eid(1), the first case's receipt
			orig := eid(1)
			return storeline.Event{ID: eid(uint64(i + 1)), Kind: storeline.KindReturn, BusinessDate: "2026-11-28",
				Body: &storeline.Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR",
					Original: &orig, Reason: "broken", Lines: sale.Lines[:1],
					Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: sale.Lines[0].Price}}}}
		}},
		{"Backup", func(ev storeline.Event) error {
			var buf bytes.Buffer
			if err := l.Backup(&buf); err != nil {
				return err
			}
			dir := filepath.Join(t.TempDir(), "restored")
			if err := ledger.Restore(dir, &buf, ev.Epoch+1); err != nil {
				return err
			}
			r, err := ledger.Open(testOptions(dir))
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = r.Event(store, ev.ID)
			return err
		}, nil},
	}
	for i, rd := range reads {
		ch := make(chan struct{})
		block.Store(&ch)
		ev := receiptEvent(eid(uint64(i+1)), 3, i)
		if rd.event != nil {
			ev = rd.event(i)
		} else {
			n++
			for _, p := range receipt(3, i).Payments {
				cash = cash.Add(p.Amount)
			}
		}
		stored, created, err := l.Append(ctx, ev)
		if err != nil || !created {
			t.Fatalf("%s: Append = created %v, %v", rd.name, created, err)
		}
		got := make(chan error, 1)
		go func() { got <- rd.read(stored) }()
		// Release the apply once the read waits for it, or has answered.
		deadline := time.Now().Add(10 * time.Second)
		var res error
		answered := false
		for !answered && !l.ReadersWaiting() {
			select {
			case res = <-got:
				answered = true
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the read neither waited nor answered", rd.name)
			}
		}
		block.Store(nil)
		close(ch)
		if !answered {
			res = <-got
		}
		if res != nil {
			t.Fatalf("%s after an answered Append whose apply was pending: %v", rd.name, res)
		}
	}
	checkConservation(t, l)
}

// TestMasterReadsDoNotWaitForSales: while an answered append's apply is
// held, master data put before it is read at once (a till pricing its
// next sale does not queue behind the last one), and master data put
// after it is read once its put is answered (the put waits for the
// applier to drain, so it is answered only after its own apply).
func TestMasterReadsDoNotWaitForSales(t *testing.T) {
	var held atomic.Bool
	release := make(chan struct{})
	o := testOptions(t.TempDir())
	o.Seams = &ledger.Seams{Apply: func(uint64) error {
		if held.Load() {
			<-release
		}
		return nil
	}}
	l := open(t, o)
	var once sync.Once
	unhold := func() { once.Do(func() { held.Store(false); close(release) }) }
	t.Cleanup(unhold) // before Close, which a held apply would block
	ctx := context.Background()
	milk := &storeline.Item{ID: "milk", SKU: "MILK", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: dec("10")}
	if _, err := l.PutMaster(ctx, []storeline.Record{milk}); err != nil {
		t.Fatal(err)
	}
	held.Store(true)
	if _, _, err := l.Append(ctx, receiptEvent(eid(1), 2, 1)); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		var it storeline.Item
		err := l.GetMaster(storeline.KindItem, "milk", &it)
		if err == nil && it.Name != "Milk" {
			err = fmt.Errorf("item %+v", it)
		}
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatalf("GetMaster while a sale's apply is held: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GetMaster waited for a held sale's apply")
	}
	bread := &storeline.Item{ID: "bread", SKU: "BREAD", Name: "Bread", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: dec("10")}
	put := make(chan error, 1)
	go func() {
		_, err := l.PutMaster(ctx, []storeline.Record{bread})
		put <- err
	}()
	unhold()
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	var it storeline.Item
	if err := l.GetMaster(storeline.KindItem, "bread", &it); err != nil || it.Name != "Bread" {
		t.Fatalf("GetMaster after an answered put = %+v, %v", it, err)
	}
	if p := l.Position(); p.Seq != 1 {
		t.Fatalf("position %v, want the sale's", p)
	}
}

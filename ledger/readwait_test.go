package ledger_test

import (
	"context"
	"fmt"
	"slices"
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
	reads := []struct {
		name string
		read check
	}{
		{"Event", func(ev storeline.Event) error {
			_, err := l.Event(store, ev.ID)
			return err
		}},
		{"Journal", func(ev storeline.Event) error {
			j, err := l.Journal(store, ledger.Position{Epoch: ev.Epoch, Seq: ev.Seq}, 1)
			if err != nil {
				return err
			}
			if len(j) != 1 || j[0].ID != ev.ID {
				return fmt.Errorf("journal at %d/%d holds %d events, not %s", ev.Epoch, ev.Seq, len(j), ev.ID)
			}
			return nil
		}},
		{"Balance", func(storeline.Event) error {
			b, err := l.Balance("cash/s1/t1", "cur:EUR")
			if err == nil && !b.Equal(cash) {
				err = fmt.Errorf("cash balance %s, want %s", b, cash)
			}
			return err
		}},
		{"Balances", func(storeline.Event) error {
			bs, err := l.Balances("cash/")
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(bs, func(b ledger.Balance) bool { return b.Amount.Equal(cash) }) {
				return fmt.Errorf("cash balances %v lack %s", bs, cash)
			}
			return nil
		}},
		{"ShiftTotals", func(storeline.Event) error {
			tot, err := l.ShiftTotals("t1", "sh1")
			if err == nil && tot.Receipts != n {
				err = fmt.Errorf("shift totals count %d receipts, want %d", tot.Receipts, n)
			}
			return err
		}},
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
		}},
		{"Position", func(ev storeline.Event) error {
			if p := l.Position(); p.Seq < ev.Seq {
				return fmt.Errorf("position %s behind the answered %d/%d", p, ev.Epoch, ev.Seq)
			}
			return nil
		}},
	}
	for i, rd := range reads {
		ch := make(chan struct{})
		block.Store(&ch)
		ev := receiptEvent(eid(uint64(i+1)), 3, i)
		stored, created, err := l.Append(ctx, ev)
		if err != nil || !created {
			t.Fatalf("%s: Append = created %v, %v", rd.name, created, err)
		}
		n++
		for _, p := range receipt(3, i).Payments {
			cash = cash.Add(p.Amount)
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

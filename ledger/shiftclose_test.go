package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestShiftClosedOnce appends closes of one shift from racing writers, so
// that they share batches: exactly one is created, the others are a
// Conflict naming the shift (ErrShiftClosed), a retry of the winner is
// deduplicated, and the totals hold one close.
func TestShiftClosedOnce(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	mustAppend(t, l, shiftEvent(eid(1), &storeline.ShiftOpen{Terminal: "t1", Shift: "sh", Seller: "alice", Currency: "EUR", Float: dec("10")}))
	const closers = 16
	var wg sync.WaitGroup
	errs := make([]error, closers)
	created := make([]bool, closers)
	for i := range closers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created[i], errs[i] = l.Append(context.Background(), shiftEvent(eid(uint64(100+i)),
				&storeline.ShiftClose{Terminal: "t1", Shift: "sh", Seller: "alice", Report: storeline.ZReport{Currency: "EUR"}}))
		}()
	}
	wg.Wait()
	winner := -1
	for i := range closers {
		var se *storeline.Error
		switch {
		case errs[i] == nil && created[i]:
			if winner >= 0 {
				t.Fatalf("closes %d and %d both created", winner, i)
			}
			winner = i
		case errors.Is(errs[i], ledger.ErrShiftClosed) && errors.Is(errs[i], storeline.Conflict) && errors.As(errs[i], &se) && se.Field == "shift":
		default:
			t.Fatalf("close %d: created %v, err %v; want created or a Conflict naming the shift", i, created[i], errs[i])
		}
	}
	if winner < 0 {
		t.Fatal("no close created")
	}
	again, ok, err := l.Append(context.Background(), shiftEvent(eid(uint64(100+winner)),
		&storeline.ShiftClose{Terminal: "t1", Shift: "sh", Seller: "alice", Report: storeline.ZReport{Currency: "EUR"}}))
	if err != nil || ok || again.ID != eid(uint64(100+winner)) {
		t.Fatalf("retry of the winning close: created %v, err %v", ok, err)
	}
	tot, err := l.ShiftTotals("t1", "sh")
	if err != nil {
		t.Fatal(err)
	}
	if tot.Close == nil || storeline.EventID(tot.Close.Event) != eid(uint64(100+winner)) || tot.Events != 2 {
		t.Fatalf("totals: close %v, %d events; want the winner's close and 2 events", tot.Close, tot.Events)
	}
}

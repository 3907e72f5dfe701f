package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

const store = storeline.StoreID("s1")

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// fixedClock is a wall clock for tests that only moves forward when told.
func testClock() *crdt.Clock {
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	return crdt.NewClock(func() time.Time { return base }, time.Second)
}

func testOptions(dir string) ledger.Options {
	o := ledger.DefaultOptions(dir, store)
	o.Clock = testClock()
	o.WALSegmentBytes = 4 << 20
	o.MaxBatchBytes = 1 << 20
	o.CheckpointBytes = 1 << 30
	o.MemTableBytes = 8 << 20
	return o
}

func open(t testing.TB, o ledger.Options) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// receipt returns a sale of n lines (items i0..i(n-1), qty 1 at price 1.00
// + line), paid in cash.
// Values every receipt() shares: decimal.Decimal is immutable, and building
// them per line (a Sprintf, a parse) was a tenth of the CPU per receipt of
// the 64-writer benchmarks, none of it the ledger's.
var (
	lineItems = func() []storeline.ItemID {
		ids := make([]storeline.ItemID, 16)
		for i := range ids {
			ids[i] = storeline.ItemID(fmt.Sprintf("i%d", i))
		}
		return ids
	}()
	oneUnit = decimal.NewFromInt(1)
	vat10   = decimal.NewFromInt(10)
)

func receipt(n int, salt int) *storeline.Receipt {
	r := &storeline.Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: make([]storeline.Line, 0, n)}
	var cents int64
	for i := 0; i < n; i++ {
		item := storeline.ItemID(fmt.Sprintf("i%d", i))
		if i < len(lineItems) {
			item = lineItems[i]
		}
		c := int64(100 + i + salt%7)
		r.Lines = append(r.Lines, storeline.Line{
			Item: item, Dept: "food", Unit: storeline.Piece,
			Qty: oneUnit, Price: decimal.New(c, -2), VATRate: vat10,
		})
		cents += c
	}
	r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: decimal.New(cents, -2)}}
	return r
}

func receiptEvent(id storeline.EventID, lines, salt int) storeline.Event {
	return storeline.Event{
		ID: id, Kind: storeline.KindReceipt, Body: receipt(lines, salt),
		OccurredAt:   time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		BusinessDate: "2026-11-28",
	}
}

// eid makes a deterministic event ID from n.
func eid(n uint64) storeline.EventID {
	var id storeline.EventID
	id[0] = 0x01
	for i := 0; i < 8; i++ {
		id[15-i] = byte(n >> (8 * i))
	}
	return id
}

func mustAppend(t testing.TB, l *ledger.Ledger, ev storeline.Event) storeline.Event {
	t.Helper()
	got, _, err := l.Append(context.Background(), ev)
	if err != nil {
		t.Fatalf("Append(%s): %v", ev.ID, err)
	}
	return got
}

func checkConservation(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	if err := l.CheckConservation(); err != nil {
		t.Fatalf("CheckConservation: %v", err)
	}
}

func crdtTS(v uint64) crdt.Timestamp { return crdt.Timestamp(v) }

package ledger

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestIDFilterHasNoFalseNegatives: every ID added is reported, across the
// growth of the filter's layers, and IDs never added are mostly not.
func TestIDFilterHasNoFalseNegatives(t *testing.T) {
	f := newIDFilter()
	id := func(n uint64, salt byte) storeline.EventID {
		var e storeline.EventID
		binary.BigEndian.PutUint64(e[8:], n)
		e[0] = salt
		return e
	}
	const n = 5 * filterFirstCap // four layers
	for i := range uint64(n) {
		f.add(id(i, 1))
	}
	if len(f.layers) < 3 {
		t.Fatalf("%d layers after %d IDs, want the filter grown", len(f.layers), n)
	}
	for i := range uint64(n) {
		if !f.mayHave(id(i, 1)) {
			t.Fatalf("ID %d added but not reported", i)
		}
	}
	const probes = 100000
	fp := 0
	for i := range uint64(probes) {
		if f.mayHave(id(i, 2)) {
			fp++
		}
	}
	if rate := float64(fp) / probes; rate > 0.03 {
		t.Fatalf("false-positive rate %.3f, want below 0.03", rate)
	}
}

// BenchmarkFillOwnIDs is what the filter adds to Open: reading every own
// event key of a ledger of 100,000 own events, ns/op per 100,000 (go
// test -run '^$' -bench FillOwnIDs ./ledger/).
func BenchmarkFillOwnIDs(b *testing.B) {
	o := DefaultOptions(b.TempDir(), "s1")
	l, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const events = 100000
	var wg sync.WaitGroup
	var next atomic.Uint64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= events; n = next.Add(1) {
				var id storeline.EventID
				binary.BigEndian.PutUint64(id[8:], n)
				ev := storeline.Event{ID: id, Body: &storeline.CashOp{Terminal: "t1", Shift: "s1", Seller: "a", Direction: storeline.CashIn,
					Currency: "EUR", Amount: decimal.NewFromInt(1)}, BusinessDate: "2026-11-28", OccurredAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
				if _, _, err := l.Append(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		if _, err := l.fillOwnIDs(); err != nil {
			b.Fatal(err)
		}
	}
}

package node_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestLedgerCatalogNeverStaler: MasterCatalog's cache never answers
// staler than the ledger at the master version read before the call,
// while a writer renames an item and adds a price to it again and again
// and readers race it (Item, ItemByKey, Price, on the real ledger). A
// catalog over a master version that moved only every eighth change
// failed it.
func TestLedgerCatalogNeverStaler(t *testing.T) {
	led, chain := sampleLedger(t)
	ctx := context.Background()
	cat := pricing.NewMasterCatalog(led)
	it := *chain.Items[0]
	t0 := time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Change k (k >= 1) renames the item "gen k" and adds a price of k
	// from t0+k seconds, both in one PutMaster: two versions, base+2k-1
	// and base+2k. At version v >= base the state holds change
	// (v-base)/2 at least.
	base := led.MasterVersion()
	const changes = 100
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	var reads atomic.Int64
	report := func(format string, args ...any) {
		if bad.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	gen := func(name string) int64 {
		n, _ := strconv.ParseInt(strings.TrimPrefix(name, "gen "), 10, 64)
		return n
	}
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				v := led.MasterVersion()
				want := int64(v-base) / 2
				switch r % 3 {
				case 0:
					got, err := cat.Item(it.ID)
					if err != nil {
						report("item: %v", err)
						return
					}
					if g := gen(got.Name); g < want {
						report("item at version %d: %q, want gen %d at least", v, got.Name, want)
					}
				case 1:
					got, err := cat.ItemByKey(storeline.SKUKey(it.SKU))
					if err != nil {
						report("item by SKU: %v", err)
						return
					}
					if g := gen(got.Name); g < want {
						report("item by SKU at version %d: %q, want gen %d at least", v, got.Name, want)
					}
				case 2:
					p, ok, err := cat.Price(chain.List.ID, it.ID, wall)
					if err != nil || !ok {
						report("price: %v, found %v", err, ok)
						return
					}
					if want > 0 && p.LessThan(decimal.NewFromInt(want)) {
						report("price at version %d: %s, want %d at least", v, p, want)
					}
				}
				reads.Add(1)
			}
		}()
	}
	for k := int64(1); k <= changes && bad.Load() == 0; k++ {
		renamed := it
		renamed.Name = fmt.Sprintf("gen %d", k)
		p := &storeline.Price{List: chain.List.ID, Item: it.ID, From: t0.Add(time.Duration(k) * time.Second), Price: decimal.NewFromInt(k)}
		if _, err := led.PutMaster(ctx, []storeline.Record{&renamed, p}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() < 100 {
		t.Fatalf("only %d reads raced %d changes", reads.Load(), changes)
	}
	t.Logf("%d reads raced %d changes", reads.Load(), changes)
}

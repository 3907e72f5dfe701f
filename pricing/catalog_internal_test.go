package pricing

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/ledger"
)

// lookups is the real ledger with its unique-key lookups counted.
type lookups struct {
	*ledger.Ledger
	n int
}

func (l *lookups) LookupMaster(kind storeline.MasterKind, key string, into storeline.Record) error {
	l.n++
	return l.Ledger.LookupMaster(kind, key, into)
}

// TestCatalogFloodOfMisses: more unknown codes than the cache holds do not
// turn it off until the master version moves: it starts over and caches
// again.
func TestCatalogFloodOfMisses(t *testing.T) {
	old := maxCachedEntries
	maxCachedEntries = 8
	t.Cleanup(func() { maxCachedEntries = old })
	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "shop-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	chain := sample.New("shop-1")
	if _, err := led.PutMaster(context.Background(), chain.Records(nil)); err != nil {
		t.Fatal(err)
	}
	lk := &lookups{Ledger: led}
	cat := NewMasterCatalog(lk)
	for i := range 3 * maxCachedEntries {
		if _, err := cat.ItemByKey(storeline.SKUKey(fmt.Sprintf("NONE-%d", i))); !errors.Is(err, storeline.NotFound) {
			t.Fatalf("unknown SKU %d: %v", i, err)
		}
	}
	sku := storeline.SKUKey(chain.Items[0].SKU)
	before := lk.n
	for range 3 {
		if _, err := cat.ItemByKey(sku); err != nil {
			t.Fatal(err)
		}
	}
	if got := lk.n - before; got != 1 {
		t.Fatalf("three reads of one SKU after a flood of misses went to the store %d times, want 1", got)
	}
}

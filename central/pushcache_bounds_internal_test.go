package central

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// setCacheBounds lowers the FSM read cache's bounds for one test.
func setCacheBounds(t *testing.T, stores, stockKeys, keys int64) {
	old := [3]int64{maxCachedStores.Load(), maxCachedStockKeys.Load(), maxCachedKeys.Load()}
	maxCachedStores.Store(stores)
	maxCachedStockKeys.Store(stockKeys)
	maxCachedKeys.Store(keys)
	t.Cleanup(func() {
		maxCachedStores.Store(old[0])
		maxCachedStockKeys.Store(old[1])
		maxCachedKeys.Store(old[2])
	})
}

// TestPushCacheAtItsBounds: more shops push than the FSM's read cache
// holds, round after round. At its bounds the cache forgets some stores
// and keys, not all (it still holds stores and balances afterwards), every
// answer it gives is the state's (checkPushCache, set in TestMain), and
// the state left is byte for byte the one a replica without the cache
// leaves.
func TestPushCacheAtItsBounds(t *testing.T) {
	const shops, rounds, per = 5, 4, 20
	ws := masterWritesOf(t)
	for i := 2; i <= shops; i++ {
		ws = append(ws, ledger.MasterWrite{Version: Version{2, uint16(i)}.Pack(), Record: &storeline.Store{ID: storeline.StoreID(fmt.Sprintf("s%d", i)),
			Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food"}}}})
	}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	logs := []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(t)}}
	seqs := map[storeline.StoreID]uint64{}
	for range rounds {
		for i := 1; i <= shops; i++ {
			store := storeline.StoreID(fmt.Sprintf("s%d", i))
			var evs [][]byte
			for range per {
				seqs[store]++
				evs = append(evs, wireReceipt(t, store, 1, seqs[store], at))
			}
			logs = append(logs, pushLog(t, uint64(len(logs)+1), at, store, 1, evs))
		}
	}

	setCacheBounds(t, 3, 1<<20, 8)
	f, rep := fullFSM(t, ws)
	applyAll(t, f, logs)
	if n := len(f.cache.stock); n == 0 || n > 3 {
		t.Errorf("the cache holds the stock of %d stores, want 1 to 3", n)
	}
	if n := len(f.cache.bals); n == 0 || n > 8 {
		t.Errorf("the cache holds %d balances, want 1 to 8", n)
	}
	stockKeys := 0
	for _, s := range f.cache.stock {
		stockKeys += len(s.vals)
	}
	if stockKeys != f.cache.stockKeys {
		t.Errorf("the cache counts %d stock balances, holds %d", f.cache.stockKeys, stockKeys)
	}

	noPushCache.Store(true)
	g, plain := fullFSM(t, ws)
	applyAll(t, g, logs)
	noPushCache.Store(false)
	a, b := metaState(t, plain), metaState(t, rep)
	if len(a) < shops*rounds*per {
		t.Fatalf("only %d keys: the log did not apply", len(a))
	}
	balances := 0
	for k := range a {
		if strings.HasPrefix(k, rpBal) {
			balances++
		}
	}
	if balances == 0 {
		t.Fatal("no balance moved: the comparison proves little")
	}
	sameState(t, "a replica whose read cache is at its bounds", a, b)
}

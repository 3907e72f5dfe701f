package replication_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// TestReview19ShopPrunesWhatCentralHolds: a replicating shop, 100 days
// on, prunes the receipts central acknowledged and keeps the rest; a till
// retrying a pruned receipt is refused, never counted twice; central
// still holds each receipt once, with the shop's balances; a standalone
// shop prunes nothing, since nobody else holds its events.
func TestReview19ShopPrunesWhatCentralHolds(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())

	var offset atomic.Int64 // how far the shop's clock runs ahead of real time
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	start := func(t *testing.T, repl node.ReplicationConfig) *node.Node {
		return startShopWith(t, t.TempDir(), repl, func(c *node.Config) { c.Clock = clock })
	}

	n := start(t, fastReplication(srv.URL))
	l := n.Ledger()
	old := sell(t, l, 40)
	waitFor(t, "central to acknowledge the old receipts", 10*time.Second, func() bool { return caughtUp(n) })

	offset.Store(int64(100 * 24 * time.Hour))
	young := sell(t, l, 8)
	waitFor(t, "central to acknowledge the young receipts", 10*time.Second, func() bool { return caughtUp(n) })

	pruned, err := n.PruneJournal(context.Background())
	if err != nil || pruned != len(old) {
		t.Fatalf("PruneJournal = %d, %v; want the %d receipts older than 90 days", pruned, err, len(old))
	}
	for _, ev := range old {
		if _, err := l.Event(shop, ev.ID); !errors.Is(err, storeline.ErrPruned) {
			t.Fatalf("Event(old %s) = %v, want ErrPruned", ev.ID, err)
		}
	}
	for _, ev := range young {
		if _, err := l.Event(shop, ev.ID); err != nil {
			t.Fatalf("Event(young %s) = %v, want it kept", ev.ID, err)
		}
	}
	retry := receipt("i1", 1)
	retry.ID = old[0].ID
	if _, _, err := l.Append(context.Background(), retry); !errors.Is(err, storeline.ErrPruned) || !errors.Is(err, storeline.Conflict) {
		t.Fatalf("a till's retry of a pruned receipt = %v, want a Conflict naming ErrPruned", err)
	}
	if again, err := n.PruneJournal(context.Background()); err != nil || again != 0 {
		t.Fatalf("second PruneJournal = %d, %v; want nothing left to prune", again, err)
	}

	// Replication goes on past the pruned range.
	more := sell(t, l, 8)
	waitFor(t, "central to acknowledge receipts sold after the prune", 10*time.Second, func() bool { return caughtUp(n) })
	checkExactlyOnce(t, c, append(append(old, young...), more...), nil)
	checkBalances(t, l, c.l)

	// A standalone shop keeps everything, however old.
	offset.Store(0)
	alone := start(t, node.ReplicationConfig{})
	sold := sell(t, alone.Ledger(), 5)
	offset.Store(int64(100 * 24 * time.Hour))
	if pruned, err := alone.PruneJournal(context.Background()); err != nil || pruned != 0 {
		t.Fatalf("standalone PruneJournal = %d, %v; want 0", pruned, err)
	}
	if _, err := alone.Ledger().Event(shop, sold[0].ID); err != nil {
		t.Fatalf("standalone Event = %v, want the receipt kept", err)
	}
}

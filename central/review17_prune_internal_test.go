package central

// Review 17: the leader's prune of the change history goes on within its
// round while a prune entry reaches its limit.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
)

// review17PruneNode opens a single node whose clock runs skew ahead of
// the wall clock, with deleted items of its own: their tombstones.
func review17PruneNode(t *testing.T, deleted int) (*Node, *atomic.Int64) {
	t.Helper()
	var skew atomic.Int64
	cfg := DefaultConfig(t.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testwait.For(t, "a leader", 10*time.Second, n.IsLeader)
	testwait.For(t, "the cluster at this binary's FSM level", 10*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l == FSMLevel
	})
	ctx := context.Background()
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < deleted; i++ {
		id := fmt.Sprintf("i%d", i)
		if _, err := n.PutRecords(ctx, "", &storeline.Item{ID: storeline.ItemID(id), SKU: id, Name: id, Group: "g", Dept: "food",
			Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < deleted; i++ {
		p, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindItem, ID: fmt.Sprintf("i%d", i)})
		if res, err := n.Submit(ctx, OpMasterDelete, "", p); err != nil || res.Err() != nil {
			t.Fatalf("delete: %v %v", err, res)
		}
	}
	if got := review17PruneTombstones(t, n); got != deleted {
		t.Fatalf("%d tombstones before the prune, want %d", got, deleted)
	}
	return n, &skew
}

// review17PruneTombstones counts the deletion markers the node holds.
func review17PruneTombstones(t *testing.T, n *Node) int {
	t.Helper()
	cs, err := n.rep.MasterChanges(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, c := range cs {
		if c.Deleted {
			dead++
		}
	}
	return dead
}

// TestReview17PruneRoundGoesOnPastItsLimit: the leader's prune loop sent
// one prune entry per PruneInterval (an hour); an entry removes at most
// its limit of tombstones (MaxChangesPerEntry, 2 here), so after a burst
// of deletes the rest waited an hour per limit, the store and every
// shop's resync carrying them meanwhile. A round goes on while the last
// entry reached its limit.
func TestReview17PruneRoundGoesOnPastItsLimit(t *testing.T) {
	n, skew := review17PruneNode(t, 5)
	skew.Store(int64(n.cfg.ChangeRetention + 2*time.Hour)) // the history window passes
	n.pruneRound(2)
	if got := review17PruneTombstones(t, n); got != 0 {
		t.Fatalf("after one prune round with a limit of 2 per entry: %d of 5 tombstones left, want 0", got)
	}
}

// TestReview17PruneRoundIsBounded: a round submits at most its bound of
// prune entries, so it cannot hold the leader forever; it says that some
// may be left, and the next round goes on.
func TestReview17PruneRoundIsBounded(t *testing.T) {
	n, _ := review17PruneNode(t, 5)
	ctx := context.Background()
	p := prunePayload{Before: time.Now().Add(2 * time.Hour), Limit: 2}
	entries, more, err := n.pruneHistory(ctx, p, 2, false)
	if err != nil || entries != 2 || !more {
		t.Fatalf("pruneHistory bounded to 2 entries = %d entries, more %v, %v; want 2, true, nil", entries, more, err)
	}
	if got := review17PruneTombstones(t, n); got != 1 {
		t.Fatalf("after 2 entries of 2: %d of 5 tombstones left, want 1", got)
	}
	entries, more, err = n.pruneHistory(ctx, p, 2, false)
	if err != nil || entries != 1 || more {
		t.Fatalf("the next pruneHistory = %d entries, more %v, %v; want 1, false, nil", entries, more, err)
	}
	if got := review17PruneTombstones(t, n); got != 0 {
		t.Fatalf("%d tombstones left, want 0", got)
	}
	// Nothing left: one entry, which finds no hour to prune.
	if entries, more, err := n.pruneHistory(ctx, p, 2, false); err != nil || entries != 1 || more {
		t.Fatalf("pruneHistory with nothing left = %d entries, more %v, %v; want 1, false, nil", entries, more, err)
	}
}

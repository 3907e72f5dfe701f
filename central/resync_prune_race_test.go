package central

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// TestFeedPrunedDuringResync: a shop's resync begins at a node that has
// applied the history prune (the floor) but not yet the feed prune that
// follows it in the log, so its records page sends the shop on to the feed
// after its cursor; the feed prune applies before the next page. The
// transfers whose feed entries it dropped still reach the shop, from the
// event store (TestOldCursorAfterFeedPruneConverges lost them so about once
// in ten runs under load).
func TestFeedPrunedDuringResync(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	putShop(t, n)
	cursor, _, _ := drain(t, b, "s1", 0)
	want := deliver(t, n, 3)
	// The history prune alone: the shop's cursor is now below the floor.
	pp, _ := msgpack.Marshal(&prunePayload{Before: time.Now().Add(2 * time.Hour)})
	if res, err := n.Submit(ctx, OpMasterPrune, "", pp); err != nil || res.Err() != nil {
		t.Fatalf("prune: %v %v", err, res.Err())
	}
	p, err := b.Pull(ctx, replication.PullQuery{Store: "s1", Cursor: cursor, Epoch: 1, MaxItems: 100})
	if err != nil {
		t.Fatal(err)
	}
	if p.Resync == nil || p.Resync.Done {
		t.Fatalf("pull below the floor: resync %+v, want a resync under way", p.Resync)
	}
	got := map[storeline.EventID]int{}
	for _, e := range p.Events {
		got[e.ID]++
	}
	// Now the feed prune, between two pages of the resync.
	if dropped, err := n.PruneFeeds(ctx); err != nil || dropped != 3 {
		t.Fatalf("PruneFeeds dropped %d, %v; want the 3 transfers' entries", dropped, err)
	}
	snap := &replication.SnapshotPos{ID: p.Resync.ID, After: p.Resync.Next}
	for pages := 0; snap != nil; pages++ {
		if pages > 100 {
			t.Fatal("the resync does not end")
		}
		p, err := b.Pull(ctx, replication.PullQuery{Store: "s1", Cursor: cursor, Epoch: 1, MaxItems: 100, Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			got[e.ID]++
		}
		if p.Resync == nil {
			t.Fatalf("page %d of the resync is not a resync page", pages)
		}
		snap = &replication.SnapshotPos{ID: p.Resync.ID, After: p.Resync.Next}
		if p.Resync.Done {
			cursor, snap = p.Resync.ID, nil
		}
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("transfer %s lost: its feed entry was pruned during the resync", id)
		}
	}
	// And the shop pulls on from the resync's version with nothing missing.
	if _, more, _ := drain(t, b, "s1", cursor); len(more) != 0 {
		t.Errorf("after the resync the shop pulled %d more events, want none", len(more))
	}
}

// TestWentBackResyncSendsWholeFeed: a shop whose cursor is past central's
// history (central restored from an old backup without a marker, so no new
// incarnation tells it) gets a resync whose pages send the whole feed, not
// the feed after its cursor, which is past all of it.
func TestWentBackResyncSendsWholeFeed(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	putShop(t, n)
	want := deliver(t, n, 3)
	cursor := n.topVersion() + 50 // the shop pulled from the history central lost
	got := map[storeline.EventID]int{}
	var snap *replication.SnapshotPos
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the resync does not end")
		}
		p, err := b.Pull(ctx, replication.PullQuery{Store: "s1", Cursor: cursor, Epoch: 1, MaxItems: 2, Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		if p.Resync == nil {
			t.Fatalf("page %d: a cursor past central's history got no resync", pages)
		}
		for _, e := range p.Events {
			got[e.ID]++
		}
		if p.Resync.Done {
			break
		}
		snap = &replication.SnapshotPos{ID: p.Resync.ID, After: p.Resync.Next}
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("transfer %s not sent by the resync of a cursor past central's history", id)
		}
	}
}

// putShop writes store s1 with one item, i1, in department food.
func putShop(t *testing.T, n *Node) {
	t.Helper()
	if _, err := n.PutRecords(context.Background(), "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Item{ID: "i1", SKU: "i1", Name: "i1", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)},
		&storeline.Store{ID: "s1", Name: "s1", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}}); err != nil {
		t.Fatal(err)
	}
}

// deliver transfers 5 of i1 from the warehouse to s1, k times, and returns
// the transfers' event IDs: central-authored events s1's feed carries.
func deliver(t *testing.T, n *Node, k int) map[storeline.EventID]bool {
	t.Helper()
	ids := map[storeline.EventID]bool{}
	for range k {
		id := storeline.NewEventID()
		if _, err := n.Transfer(context.Background(), id, "delivery", "", []storeline.Posting{
			{Account: storeline.StockAccount("s1", "food", "i1"), Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(5)},
			{Account: "warehouse/i1", Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(-5)},
		}); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

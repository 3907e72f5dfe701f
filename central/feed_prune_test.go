package central

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// drain pulls store's pages from cursor as a shop does, following a
// resync to its end, until nothing is new; it returns the cursor after,
// the events pulled (by ID, counted) and how many resyncs it followed.
func drain(t *testing.T, b backend, store storeline.StoreID, cursor uint64) (uint64, map[storeline.EventID]int, int) {
	t.Helper()
	got := map[storeline.EventID]int{}
	var snap *replication.SnapshotPos
	resyncs := 0
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatal("paging does not end")
		}
		p, err := b.Pull(context.Background(), replication.PullQuery{Store: store, Cursor: cursor, Epoch: 1, MaxItems: 4, Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			got[e.ID]++
		}
		if rs := p.Resync; rs != nil {
			if snap == nil {
				resyncs++
			}
			snap = &replication.SnapshotPos{ID: rs.ID, After: rs.Next}
			if rs.Done {
				cursor, snap = rs.ID, nil
			}
			continue
		}
		cursor = p.Cursor
		if !p.More && len(p.Changes)+len(p.Events)+len(p.Rejections) == 0 {
			return cursor, got, resyncs
		}
	}
}

// TestFeedPruneAndResync: feed entries below the history floor are
// dropped; a shop whose cursor is older resyncs and still gets every
// central event that touched it (from the event store, since its feed
// entries are gone), and nothing of another shop; a shop that was up to
// date pulls on from its cursor without a resync.
func TestFeedPruneAndResync(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Item{ID: "i1", SKU: "i1", Name: "i1", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []storeline.StoreID{"s1", "s2"} {
		if _, err := n.PutRecords(ctx, "", &storeline.Store{ID: s, Name: string(s), TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}}); err != nil {
			t.Fatal(err)
		}
	}
	transfer := func(to storeline.StoreID) storeline.EventID {
		t.Helper()
		id := storeline.NewEventID()
		if _, err := n.Transfer(ctx, id, "delivery", "", []storeline.Posting{
			{Account: storeline.StockAccount(to, "food", "i1"), Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(5)},
			{Account: "warehouse/i1", Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(-5)},
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// s1 goes offline here; s2 keeps pulling.
	c1, _, _ := drain(t, b, "s1", 0)
	want := map[storeline.EventID]bool{}
	for i := 0; i < 9; i++ {
		want[transfer("s1")] = true
	}
	transfer("s2")
	c2, got2, _ := drain(t, b, "s2", 0)
	if len(got2) != 1 {
		t.Fatalf("s2 pulled %d events, want its 1 transfer", len(got2))
	}

	// The history window passes: the floor rises above every entry.
	pp, _ := msgpack.Marshal(&prunePayload{Before: time.Now().Add(2 * time.Hour)})
	if res, err := n.Submit(ctx, OpMasterPrune, "", pp); err != nil || res.Err() != nil {
		t.Fatalf("prune: %v %v", err, res.Err())
	}
	dropped, err := n.PruneFeeds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 10 {
		t.Errorf("PruneFeeds dropped %d entries, want 10 (9 of s1, 1 of s2)", dropped)
	}
	if again, err := n.PruneFeeds(ctx); err != nil || again != 0 {
		t.Errorf("a second PruneFeeds dropped %d, %v; want 0", again, err)
	}
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		for i := uint64(1); i <= 9; i++ {
			if v, err := rt.Meta(feedKey("s1", i)); err != nil || v != nil {
				t.Errorf("feed entry %d of s1 still held (%v)", i, err)
			}
		}
		if lo, err := feedLo(rt, "s1"); err != nil || lo != 10 {
			t.Errorf("feedLo(s1) = %d, %v; want 10", lo, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// s1, with its old cursor, resyncs and gets every transfer to it.
	c1, got1, resyncs := drain(t, b, "s1", c1)
	if resyncs != 1 {
		t.Errorf("s1 followed %d resyncs, want 1", resyncs)
	}
	for id := range want {
		if got1[id] < 1 {
			t.Errorf("transfer %s to s1 lost with its pruned feed entry", id)
		}
	}
	if len(got1) != len(want) {
		t.Errorf("s1 pulled %d events, want its %d transfers only", len(got1), len(want))
	}
	// Both pull on from their cursors: a new transfer comes by the feed.
	late := transfer("s1")
	if _, got, rs := drain(t, b, "s1", c1); rs != 0 || got[late] != 1 || len(got) != 1 {
		t.Errorf("after the resync s1 pulled %v with %d resyncs, want the new transfer once", got, rs)
	}
	if _, got, rs := drain(t, b, "s2", c2); rs != 1 || len(got) != 0 {
		// s2's cursor is below the raised floor too: it resyncs, and its
		// pruned transfer was pulled already (cursor past the cut).
		t.Errorf("s2 after the prune: %v with %d resyncs", got, rs)
	}
}

// TestFeedPruneIsBoundedPerEntry: one prune entry drops at most its
// bound of entries and visits at most its bound of stores; the entries
// that follow resume where it stopped, until every feed is pruned.
func TestFeedPruneIsBoundedPerEntry(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Item{ID: "i1", SKU: "i1", Name: "i1", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}); err != nil {
		t.Fatal(err)
	}
	stores := []storeline.StoreID{"s1", "s2", "s3"}
	for _, s := range stores {
		if _, err := n.PutRecords(ctx, "", &storeline.Store{ID: s, Name: string(s), TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 7; i++ {
			if _, err := n.Transfer(ctx, storeline.NewEventID(), "delivery", "", []storeline.Posting{
				{Account: storeline.StockAccount(s, "food", "i1"), Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(1)},
				{Account: "warehouse/i1", Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(-1)},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pp, _ := msgpack.Marshal(&prunePayload{Before: time.Now().Add(2 * time.Hour)})
	if res, err := n.Submit(ctx, OpMasterPrune, "", pp); err != nil || res.Err() != nil {
		t.Fatalf("prune: %v %v", err, res.Err())
	}
	body, _ := msgpack.Marshal(&feedPrunePayload{Entries: 4, Stores: 2})
	total, entries := 0, 0
	for more := true; more; entries++ {
		if entries > 50 {
			t.Fatal("pruning does not end")
		}
		res, err := n.Submit(ctx, OpFeedPrune, "", body)
		if err != nil || res.Err() != nil {
			t.Fatalf("feed prune: %v %v", err, res.Err())
		}
		var o feedPruneOutcome
		if err := msgpack.Unmarshal(res.Body, &o); err != nil {
			t.Fatal(err)
		}
		if o.Dropped > 4 {
			t.Errorf("entry %d dropped %d feed entries, bound 4", entries, o.Dropped)
		}
		total, more = total+o.Dropped, o.More
	}
	if total != 21 || entries < 6 {
		t.Errorf("dropped %d entries in %d prune entries, want 21 in at least 6", total, entries)
	}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		for _, s := range stores {
			if lo, err := feedLo(rt, s); err != nil || lo != 8 {
				t.Errorf("feedLo(%s) = %d, %v; want 8", s, lo, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

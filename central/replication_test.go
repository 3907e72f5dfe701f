package central

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/replication"
)

func openSingle(t *testing.T) *Node {
	t.Helper()
	cfg := DefaultConfig(t.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	cfg.ReplicationMaxWait = 200 * time.Millisecond
	cfg.ReconcileInterval = 50 * time.Millisecond
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testwait.For(t, "a leader", 10*time.Second, n.IsLeader)
	// The leader raises a new cluster to this binary's FSM level in an
	// entry of its own (levels.go): wait for it, so no entry lands behind
	// a test's back after it read the node's version.
	testwait.For(t, "the cluster at this binary's FSM level", 10*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l == FSMLevel
	})
	return n
}

// TestPullPagesEverythingOnce: master changes and the store's feed
// (head office's transfers, rejections) interleave in version order; a
// shop paging with a small page size gets each item exactly once, in
// version order, with the cursor never moving back, and nothing of
// another shop.
func TestPullPagesEverythingOnce(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	put := func(recs ...storeline.Record) {
		t.Helper()
		if _, err := n.PutRecords(ctx, "", recs...); err != nil {
			t.Fatal(err)
		}
	}
	put(&storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"},
		&storeline.PriceList{ID: "other", Name: "Other", Currency: "EUR"},
		&storeline.Group{ID: "g", Name: "G"})
	for _, s := range []storeline.StoreID{"s1", "s2"} {
		put(&storeline.Store{ID: s, Name: string(s), TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: []storeline.PriceListID{"retail"}})
	}
	wantRecs := map[string]bool{"price_list/retail": true, "group/g": true, "store/s1": true}
	wantEvents := map[storeline.EventID]bool{}
	var wantRej []storeline.EventID
	for i := 0; i < 12; i++ {
		id := storeline.ItemID(fmt.Sprintf("i%02d", i))
		put(&storeline.Item{ID: id, SKU: string(id), Name: string(id), Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)},
			&storeline.Price{List: "other", Item: id, From: time.Unix(0, 0), Price: decimal.NewFromInt(1)}) // not s1's list
		wantRecs["item/"+string(id)] = true
		to := storeline.StoreID("s1")
		if i%3 == 2 {
			to = "s2"
		}
		ev := storeline.NewEventID()
		if _, err := n.Transfer(ctx, ev, "delivery", "", []storeline.Posting{
			{Account: storeline.StockAccount(to, "food", id), Asset: storeline.ItemAsset(id), Amount: decimal.NewFromInt(5)},
			{Account: "warehouse/" + string(id), Asset: storeline.ItemAsset(id), Amount: decimal.NewFromInt(-5)},
		}); err != nil {
			t.Fatal(err)
		}
		if to == "s1" {
			wantEvents[ev] = true
		}
		if i%4 == 0 { // a receipt of an unknown item: a rejection in s1's feed
			e := storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: uint64(len(wantRej) + 1),
				SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindReceipt, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-28",
				Body: &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
					Lines:    []storeline.Line{{Item: "ghost", Dept: "food", Unit: storeline.Piece, Qty: decimal.NewFromInt(1), Price: decimal.NewFromInt(1), VATRate: decimal.NewFromInt(10)}},
					Payments: []storeline.Payment{{Method: storeline.Cash, Amount: decimal.NewFromInt(1)}}}}
			if err := e.Body.(*storeline.Receipt).Compute(); err != nil {
				t.Fatal(err)
			}
			ps, err := storeline.DerivePostings("s1", e.Body)
			if err != nil {
				t.Fatal(err)
			}
			e.Postings = ps
			res, err := b.Push(ctx, replication.Batch{Store: "s1", Epoch: 1, Events: []storeline.Event{e}})
			if err != nil || len(res.Rejections) != 1 {
				t.Fatalf("push: %+v, %v", res, err)
			}
			wantRej = append(wantRej, e.ID)
		}
	}
	gotRecs, gotEvents, gotRej := map[string]int{}, map[storeline.EventID]int{}, map[storeline.EventID]int{}
	var cursor, lastVersion uint64
	for pages := 0; ; pages++ {
		if pages > 200 {
			t.Fatal("paging does not end")
		}
		p, err := b.Pull(ctx, replication.PullQuery{Store: "s1", Cursor: cursor, Epoch: 1, MaxItems: 3})
		if err != nil {
			t.Fatal(err)
		}
		if p.Resync != nil {
			t.Fatalf("unexpected resync: %+v", p.Resync)
		}
		if p.Cursor < cursor {
			t.Fatalf("cursor moved back from %d to %d", cursor, p.Cursor)
		}
		if n := len(p.Changes) + len(p.Events) + len(p.Rejections); n > 3 {
			t.Fatalf("page of %d items, asked 3", n)
		}
		for _, c := range p.Changes {
			if c.Version <= lastVersion && lastVersion != 0 {
				t.Errorf("change %s/%s at %d after %d", c.Kind, c.ID, c.Version, lastVersion)
			}
			lastVersion = c.Version
			gotRecs[string(c.Kind)+"/"+c.ID]++
		}
		for _, e := range p.Events {
			gotEvents[e.ID]++
		}
		for _, r := range p.Rejections {
			gotRej[r.ID]++
		}
		cursor = p.Cursor
		if !p.More && len(p.Changes)+len(p.Events)+len(p.Rejections) == 0 {
			break
		}
	}
	for k := range wantRecs {
		if gotRecs[k] != 1 {
			t.Errorf("record %s pulled %d times, want 1", k, gotRecs[k])
		}
	}
	for k, c := range gotRecs {
		if !wantRecs[k] {
			t.Errorf("record %s (%d times) does not concern s1", k, c)
		}
	}
	for id := range wantEvents {
		if gotEvents[id] != 1 {
			t.Errorf("transfer %s pulled %d times, want 1", id, gotEvents[id])
		}
	}
	if len(gotEvents) != len(wantEvents) {
		t.Errorf("pulled %d events, want %d (s2's transfers are not s1's)", len(gotEvents), len(wantEvents))
	}
	for _, id := range wantRej {
		if gotRej[id] != 1 {
			t.Errorf("rejection of %s pulled %d times, want 1", id, gotRej[id])
		}
	}
	// Long poll: nothing new waits; a new change wakes it.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := b.Wait(wctx, "s1", cursor); err == nil {
		t.Error("Wait returned with nothing new")
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done <- b.Wait(wctx, "s1", cursor)
	}()
	put(&storeline.Group{ID: "g2", Name: "G2"})
	if err := <-done; err != nil {
		t.Errorf("Wait after a change: %v", err)
	}
}

// TestResyncContinuedOnLaggingNodeWaits: a shop continuing a resync that
// began at a node further ahead gets Unavailable (it retries, or fails
// over) instead of a page from older state that would end the resync with
// entries missing.
func TestResyncContinuedOnLaggingNodeWaits(t *testing.T) {
	n := openSingle(t)
	b := backend{n}
	ahead := n.topVersion() + 1
	_, err := b.Pull(context.Background(), replication.PullQuery{Store: "s1", MaxItems: 10,
		Snapshot: &replication.SnapshotPos{ID: ahead, After: "f:0"}})
	if !errors.Is(err, storeline.Unavailable) {
		t.Fatalf("continuing a resync at version %d on a node at %d: err %v, want Unavailable", ahead, n.topVersion(), err)
	}
	if _, err := b.Pull(context.Background(), replication.PullQuery{Store: "s1", MaxItems: 10,
		Snapshot: &replication.SnapshotPos{ID: n.topVersion(), After: "f:0"}}); err != nil {
		t.Fatalf("continuing a resync this node has reached: %v", err)
	}
}

// TestStoreOfAccount: a supplier whose ID equals a store's does not make
// that shop pull other shops' invoices, and points accounts name their
// store last.
func TestStoreOfAccount(t *testing.T) {
	for _, tc := range []struct {
		acct string
		want storeline.StoreID
		ok   bool
	}{
		{"stock/s1/main/milk", "s1", true},
		{"cash/s2/till-1", "s2", true},
		{"transit/s1/s2/milk", "s1", true},
		{"payable/s2", "", false},
		{"supplier/s2", "", false},
		{"points/prog/c1/s2", "s2", true},
		{"points/prog", "", false},
		{"revenue", "", false},
	} {
		got, ok := storeOfAccount(tc.acct)
		if got != tc.want || ok != tc.ok {
			t.Errorf("storeOfAccount(%q) = %q %v, want %q %v", tc.acct, got, ok, tc.want, tc.ok)
		}
	}
}

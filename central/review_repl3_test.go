package central

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/replication"
)

// reviewPair starts a bootstrapped leader and a second node that joins
// it by gossip, each with its config changed by mod, and returns them
// once the second forwards writes to the first.
func reviewPair(t *testing.T, mod func(*Config)) (leader, follower *Node) {
	t.Helper()
	root := t.TempDir()
	cfgOf := func(id string) Config {
		c := DefaultConfig(filepath.Join(root, id))
		c.NodeID = id
		c.ClusterSecret = "review-repl3-cluster-secret"
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		c.CommitTimeout = 2 * time.Millisecond
		c.ApplyTimeout, c.ForwardTimeout = 5*time.Second, 5*time.Second
		c.ProbeInterval, c.ProbeTimeout = 100*time.Millisecond, 50*time.Millisecond
		c.GossipInterval, c.ReconcileInterval = 20*time.Millisecond, 50*time.Millisecond
		c.ReplicationMaxWait = 200 * time.Millisecond
		if mod != nil {
			mod(&c)
		}
		return c
	}
	open := func(c Config) *Node {
		n, err := Open(c)
		if err != nil {
			t.Fatalf("Open(%s): %v", c.NodeID, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	leader = open(cfgOf("c1"))
	testwait.For(t, "a leader", 10*time.Second, leader.IsLeader)
	c2 := cfgOf("c2")
	c2.Bootstrap = false
	c2.Seeds = []string{leader.GossipAddr()}
	follower = open(c2)
	testwait.For(t, "the second node forwarding to the leader", 20*time.Second, func() bool {
		if follower.IsLeader() || !leader.IsLeader() {
			return false
		}
		_, err := follower.PutRecords(context.Background(), "review-repl3-join",
			&storeline.Group{ID: "g", Name: "G"})
		return err == nil
	})
	return leader, follower
}

// TestReviewRepl3PushThroughFollowerOverBodyLimit: a shop's batch, taken
// by a follower's replication listener and split into push entries the
// node itself bounds (maxPushEntryBytes), is forwarded to the leader. The
// head-office API's body limit (MaxBodyBytes) is not the bound of those
// entries: a push accepted at the leader must be accepted through a
// follower too, not refused as an undecodable (truncated) command.
func TestReviewRepl3PushThroughFollowerOverBodyLimit(t *testing.T) {
	leader, follower := reviewPair(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	ctx := context.Background()
	name := strings.Repeat("x", 180)
	var evs []storeline.Event
	for i := range 400 {
		evs = append(evs, storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: uint64(i + 1),
			SchemaVersion: storeline.SchemaVersion, HLC: uint64(crdt.MakeTimestamp(time.Now().UnixMilli(), 0)),
			Kind: storeline.KindCustomerRegistered, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29",
			Body: &storeline.CustomerRegistered{Terminal: "t1", Seller: "ann",
				Customer: storeline.Customer{ID: storeline.CustomerID("cust-" + decimal.NewFromInt(int64(i)).String()), Name: name}}})
	}
	res, err := backend{follower}.Push(ctx, replication.Batch{Store: "s1", Epoch: 1, Events: evs})
	if err != nil {
		t.Fatalf("push of %d events through a follower: %v", len(evs), err)
	}
	if res.Acked.Seq != uint64(len(evs)) || res.Applied != len(evs) {
		t.Fatalf("push through a follower: %+v, want all %d applied", res, len(evs))
	}
	if _, err := leader.Customer("cust-399"); err != nil {
		t.Errorf("customer of the last event at the leader: %v", err)
	}
}

// TestReviewRepl3ChangesAfterPriceListAssigned: a store assigned a price
// list after its cursor needs that list's prices, which are older than
// the cursor: the head-office feed must send them or ask for a resync
// (as a shop's pull does), not just the store record.
func TestReviewRepl3ChangesAfterPriceListAssigned(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	put := func(recs ...storeline.Record) {
		t.Helper()
		if _, err := n.PutRecords(ctx, "", recs...); err != nil {
			t.Fatal(err)
		}
	}
	store := seedPriceLists(t, n)
	var cursor Version
	for {
		p, err := n.Changes("s1", cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Changes {
			if c.Kind == storeline.KindPrice {
				t.Fatalf("s1 got a price of a list it is not assigned: %+v", c)
			}
		}
		cursor = p.Next
		if !p.More {
			break
		}
	}
	put(store("retail", "promo"))
	gotPrice, resync := false, false
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		p, err := n.Changes("s1", cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.Resync {
			resync = true
			break
		}
		for _, c := range p.Changes {
			if c.Kind == storeline.KindPrice {
				gotPrice = true
			}
		}
		cursor = p.Next
		if !p.More {
			break
		}
	}
	if !gotPrice && !resync {
		t.Errorf("s1 was assigned list promo after its cursor: the feed sent neither its price nor a resync")
	}
}

// TestReviewRepl3ChangesPrunedWhileReading: a history prune that applies
// while a reader is between reading the floor and reading the changes
// must not make the reader skip the tombstones it dropped: the page is
// either of the state before the prune (with the tombstone) or a resync.
func TestReviewRepl3ChangesPrunedWhileReading(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	if _, err := n.PutRecords(ctx, "", &storeline.Store{ID: "s1", Name: "s1", TimeZone: "UTC", Currency: "EUR",
		Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Group{ID: "g", Name: "G"},
		&storeline.Item{ID: "gone", SKU: "gone", Name: "gone", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}); err != nil {
		t.Fatal(err)
	}
	cursor := Unpack(n.topVersion())
	dp, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindItem, ID: "gone"})
	if res, err := n.Submit(ctx, OpMasterDelete, "", dp); err != nil || res.Err() != nil {
		t.Fatalf("delete: %v %v", err, res.Err())
	}
	// A later change, so the page has something past the tombstone.
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g2", Name: "G2"}); err != nil {
		t.Fatal(err)
	}
	pruned := false
	changesReadHook = func() {
		if pruned {
			return
		}
		pruned = true
		if _, err := n.PruneHistory(ctx, time.Now().Add(2*time.Hour)); err != nil {
			t.Errorf("prune: %v", err)
		}
	}
	t.Cleanup(func() { changesReadHook = nil })
	p, err := n.Changes("s1", cursor, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !pruned {
		t.Fatal("the hook did not run")
	}
	if p.Resync {
		return
	}
	for _, c := range p.Changes {
		if c.Kind == storeline.KindItem && c.ID == "gone" && c.Deleted {
			return
		}
	}
	t.Errorf("page after %v: %d changes up to %v, no resync, and the deletion of item gone is skipped", cursor, len(p.Changes), p.Next)
}

// TestReviewRepl3SnapshotWhileAssigned: a store's price lists change
// while a snapshot of its records is being read. Following the protocol
// (the snapshot, then the feed from its AsOf, resyncing when told), the
// caller must end up with the newly assigned list's price: the snapshot
// is either of the state before the change (and the feed then asks for a
// resync) or of the state after it, never records filtered by the old
// lists under a version past the change.
func TestReviewRepl3SnapshotWhileAssigned(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	put := func(recs ...storeline.Record) {
		t.Helper()
		if _, err := n.PutRecords(ctx, "", recs...); err != nil {
			t.Error(err)
		}
	}
	store := seedPriceLists(t, n)
	assigned := false
	snapshotReadHook = func() {
		if !assigned {
			assigned = true
			put(store("retail", "promo"))
		}
	}
	t.Cleanup(func() { snapshotReadHook = nil })
	gotPrice := false
	for resyncs := 0; ; resyncs++ {
		if resyncs > 5 {
			t.Fatal("resyncs do not end")
		}
		var asOf Version
		token := ""
		for first := true; first || token != ""; first = false {
			sp, err := n.Snapshot("s1", token, 100)
			if err != nil {
				t.Fatal(err)
			}
			if first {
				asOf = sp.AsOf
			}
			for _, r := range sp.Records {
				if p, ok := r.(*storeline.Price); ok && p.List == "promo" {
					gotPrice = true
				}
			}
			token = sp.Next
		}
		resync := false
		for cursor := asOf; ; {
			p, err := n.Changes("s1", cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			if p.Resync {
				resync = true
				break
			}
			for _, c := range p.Changes {
				if c.Kind == storeline.KindPrice {
					gotPrice = true
				}
			}
			cursor = p.Next
			if !p.More {
				break
			}
		}
		if !resync {
			break
		}
	}
	if !assigned {
		t.Fatal("the hook did not run")
	}
	if !gotPrice {
		t.Error("s1 was assigned list promo during its snapshot and never got its price")
	}
}

// seedPriceLists gives n two price lists (retail, promo), an item with a
// promo price, and store s1 on retail only; it returns s1 on other lists.
func seedPriceLists(t *testing.T, n *Node) func(lists ...storeline.PriceListID) *storeline.Store {
	t.Helper()
	store := func(lists ...storeline.PriceListID) *storeline.Store {
		return &storeline.Store{ID: "s1", Name: "s1", TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: lists}
	}
	for _, recs := range [][]storeline.Record{
		{&storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"},
			&storeline.PriceList{ID: "promo", Name: "Promo", Currency: "EUR"},
			&storeline.Group{ID: "g", Name: "G"},
			&storeline.Item{ID: "i1", SKU: "i1", Name: "i1", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}},
		{&storeline.Price{List: "promo", Item: "i1", From: time.Unix(0, 0), Price: decimal.NewFromInt(3)}},
		{store("retail")},
	} {
		if _, err := n.PutRecords(context.Background(), "", recs...); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

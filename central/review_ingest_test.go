package central_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/replication"
)

// Defect review of ingest and the feed: every test pushes and pulls over
// the replication listener of a real cluster.

// riEvent is a receipt of store at epoch/seq selling one unit of item,
// with its postings derived as the shop derives them.
func riEvent(t testing.TB, store storeline.StoreID, epoch, seq uint64, item storeline.ItemID) storeline.Event {
	t.Helper()
	ev := receiptOf(item, int(seq))
	ev.Origin, ev.Epoch, ev.Seq, ev.SchemaVersion = store, epoch, seq, storeline.SchemaVersion
	if err := ev.Body.(*storeline.Receipt).Compute(); err != nil {
		t.Fatal(err)
	}
	ps, err := storeline.DerivePostings(store, ev.Body)
	if err != nil {
		t.Fatal(err)
	}
	ev.Postings = ps
	return ev
}

// riPush pushes evs (of one store and epoch) through addr and returns the
// answer; anything but 200 fails the test.
func riPush(t testing.TB, addr, token string, store storeline.StoreID, epoch uint64, evs ...storeline.Event) *replication.PushResponse {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: epoch}
	for _, ev := range evs {
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, w)
	}
	body, err := replication.Encode(&req)
	if err != nil {
		t.Fatal(err)
	}
	code, prob, pr := pushRaw(t, addr, token, body)
	if code != http.StatusOK {
		t.Fatalf("push %s/%d: status %d %v", store, epoch, code, prob)
	}
	return pr
}

// riPull pulls one page through addr.
func riPull(t testing.TB, addr, token string, q replication.PullRequest) *replication.PullResponse {
	t.Helper()
	q.V = replication.ProtocolVersion
	body, err := replication.Encode(&q)
	if err != nil {
		t.Fatal(err)
	}
	var status int
	var b []byte
	testwait.Retry(20*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/replication/pull", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/msgpack")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
		status = r.StatusCode
		return status != http.StatusServiceUnavailable // no leader for a moment: again
	})
	if status != http.StatusOK {
		t.Fatalf("pull: status %d: %s", status, b)
	}
	var pr replication.PullResponse
	if err := replication.Decode(b, &pr); err != nil {
		t.Fatal(err)
	}
	return &pr
}

// riDrain pulls store's pages from cursor until there is nothing more and
// returns the cursor, the events (by ID, counted) and the records (by
// kind/id, counted) it got. A resync fails the test.
func riDrain(t testing.TB, addr, token string, store storeline.StoreID, cursor uint64, pageItems int,
	events map[storeline.EventID]int, origins map[storeline.EventID]string, recs map[string]int) uint64 {
	t.Helper()
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		p := riPull(t, addr, token, replication.PullRequest{Store: string(store), Cursor: cursor, Epoch: 1, MaxItems: pageItems})
		if p.Resync != nil {
			t.Fatalf("unexpected resync: %+v", p.Resync)
		}
		if p.Cursor < cursor {
			t.Fatalf("cursor moved back from %d to %d", cursor, p.Cursor)
		}
		for _, e := range p.Events {
			events[e.ID]++
			if origins != nil {
				origins[e.ID] = e.Origin
			}
		}
		for _, r := range p.Records {
			if recs != nil {
				recs[r.Kind+"/"+r.ID]++
			}
		}
		cursor = p.Cursor
		if !p.More && len(p.Records)+len(p.Events)+len(p.Rejections) == 0 {
			return cursor
		}
	}
}

func riBalance(t testing.TB, n *central.Node, account string, asset storeline.Asset) decimal.Decimal {
	t.Helper()
	b, err := n.Balance(account, asset)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReviewIngestForeignAccountsRefused: a shop's event whose postings
// move another shop's accounts (its stock, its rights in a customer's
// points) is refused as a rejection: no balance of the other shop moves,
// the other shop is not fed the event, and the pushing shop's queue moves
// on. Only head office moves stock or rights between holders (DESIGN.md,
// "Safety while offline"; storeline/loyalty.go: every debit of an account
// is authored by its holder alone).
func TestReviewIngestForeignAccountsRefused(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	l := c.waitLeader()
	addr := l.ReplicationAddr()
	s1, s2 := testShops[0], testShops[1]
	i1 := storeline.ItemID("i1")

	// s1 "sells" a unit of s2's shelf: balanced, but s2's stock.
	steal := riEvent(t, "s1", 1, 1, i1)
	for j, p := range steal.Postings {
		if p.Account == storeline.StockAccount("s1", "food", i1) {
			steal.Postings[j].Account = storeline.StockAccount("s2", "food", i1)
		}
	}
	// s1 pays with points from s2's rights in the customer's counter.
	pts := storeline.PointsAsset("club")
	spend := riEvent(t, "s1", 1, 2, i1)
	spend.Postings = append(spend.Postings,
		storeline.Posting{Account: storeline.PointsAccount("club", "cust-1", "s2"), Asset: pts, Amount: decimal.NewFromInt(-500)},
		storeline.Posting{Account: storeline.RedeemedPointsAccount("s1"), Asset: pts, Amount: decimal.NewFromInt(500)})
	spend.Postings = storeline.MergePostings(spend.Postings)
	// s1 takes head office's warehouse stock onto its shelf.
	fromHQ := riEvent(t, "s1", 1, 3, i1)
	fromHQ.Postings = storeline.MergePostings(append(fromHQ.Postings,
		storeline.Posting{Account: "warehouse/i1", Asset: storeline.ItemAsset(i1), Amount: decimal.NewFromInt(-4)},
		storeline.Posting{Account: storeline.StockAccount("s1", "food", i1), Asset: storeline.ItemAsset(i1), Amount: decimal.NewFromInt(4)}))
	// s1 spends head office's rights without a reservation.
	debitHQ := riEvent(t, "s1", 1, 4, i1)
	debitHQ.Postings = storeline.MergePostings(append(debitHQ.Postings,
		storeline.Posting{Account: storeline.PointsAccount("club", "cust-1", storeline.Central), Asset: pts, Amount: decimal.NewFromInt(-300)},
		storeline.Posting{Account: storeline.RedeemedPointsAccount("s1"), Asset: pts, Amount: decimal.NewFromInt(300)}))
	// What a shop may do: sell from its shelf, hand rights back.
	ok := riEvent(t, "s1", 1, 5, i1)
	hb := &storeline.PointsHandback{Programme: "club", Customer: "cust-1", Points: 100}
	hbPs, err := hb.Postings("s1")
	if err != nil {
		t.Fatal(err)
	}
	handback := storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: 6, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindPointsHandback, Body: hb, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-28", Postings: hbPs}

	pr := riPush(t, addr, s1.token, "s1", 1, steal, spend, fromHQ, debitHQ, ok, handback)
	if pr.Acked != (replication.Position{Epoch: 1, Seq: 6}) {
		t.Fatalf("acked %v, want 1/6 (a refused event never wedges the queue)", pr.Acked)
	}
	rejected := map[storeline.EventID]bool{}
	for _, r := range pr.Rejections {
		rejected[r.ID] = true
	}
	for _, ev := range []storeline.Event{steal, spend, fromHQ, debitHQ} {
		if !rejected[ev.ID] {
			t.Errorf("event %d/%d moving accounts not s1's was not refused (rejections %+v)", ev.Epoch, ev.Seq, pr.Rejections)
		}
	}
	for _, ev := range []storeline.Event{ok, handback} {
		if rejected[ev.ID] {
			t.Errorf("s1's own event %d/%d refused: %+v", ev.Epoch, ev.Seq, pr.Rejections)
		}
	}
	c.waitSettled()
	for _, n := range c.nodes {
		if b := riBalance(t, n, storeline.StockAccount("s2", "food", i1), storeline.ItemAsset(i1)); !b.IsZero() {
			t.Errorf("%s: s2's stock of i1 is %s after s1's events, want 0", n.ID(), b)
		}
		if b := riBalance(t, n, storeline.PointsAccount("club", "cust-1", "s2"), pts); !b.IsZero() {
			t.Errorf("%s: s2's rights are %s after s1's events, want 0", n.ID(), b)
		}
		if b := riBalance(t, n, storeline.StockAccount("s1", "food", i1), storeline.ItemAsset(i1)); !b.Equal(decimal.NewFromInt(-1)) {
			t.Errorf("%s: s1's stock of i1 is %s, want -1 (its own receipt)", n.ID(), b)
		}
		if b := riBalance(t, n, "warehouse/i1", storeline.ItemAsset(i1)); !b.IsZero() {
			t.Errorf("%s: head office's warehouse holds %s of i1 after s1's events, want 0", n.ID(), b)
		}
		if b := riBalance(t, n, storeline.PointsAccount("club", "cust-1", storeline.Central), pts); !b.Equal(decimal.NewFromInt(100)) {
			t.Errorf("%s: head office's rights are %s, want 100 (s1's handback only)", n.ID(), b)
		}
	}
	got := map[storeline.EventID]int{}
	origins := map[storeline.EventID]string{}
	riDrain(t, c.follower().ReplicationAddr(), s2.token, "s2", 0, 100, got, origins, nil)
	for id, o := range origins {
		if o == "s1" {
			t.Errorf("s2 was fed s1's event %s", id)
		}
	}
}

// TestReviewIngestEpochsAndDuplicates: a shop restored from a backup
// starts epoch 2 at seq 1; a till's retry appended again in the new epoch
// is counted once; events of epoch 1 arriving late are applied at their
// own epoch's mark (and a retry among them counted once); a gap in either
// epoch is answered with that epoch's next position; a resent batch and
// a batch resent at another node apply nothing.
func TestReviewIngestEpochsAndDuplicates(t *testing.T) {
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	l := c.waitLeader()
	s1 := testShops[0]
	i1 := storeline.ItemID("i1")
	sold := func(n *central.Node) decimal.Decimal {
		return riBalance(t, n, storeline.SoldAccount("s1", i1), storeline.ItemAsset(i1))
	}

	a, b, cc := riEvent(t, "s1", 1, 1, i1), riEvent(t, "s1", 1, 2, i1), riEvent(t, "s1", 1, 3, i1)
	if pr := riPush(t, l.ReplicationAddr(), s1.token, "s1", 1, a, b, cc); pr.Applied != 3 || pr.Acked.Seq != 3 {
		t.Fatalf("epoch 1: %+v", pr)
	}
	// Restored: epoch 2 from seq 1; its first event is b appended again.
	b2 := b
	b2.Epoch, b2.Seq = 2, 1
	d := riEvent(t, "s1", 2, 2, i1)
	if pr := riPush(t, c.follower().ReplicationAddr(), s1.token, "s1", 2, b2, d); pr.Gap != nil || pr.Acked != (replication.Position{Epoch: 2, Seq: 2}) || pr.Applied != 1 || pr.Duplicates != 1 {
		t.Fatalf("epoch 2 from seq 1: %+v, want acked 2/2, 1 applied, 1 duplicate", pr)
	}
	// A gap in epoch 2 names 2/3; one in epoch 1 names 1/4.
	if pr := riPush(t, l.ReplicationAddr(), s1.token, "s1", 2, riEvent(t, "s1", 2, 4, i1)); pr.Gap == nil || *pr.Gap != (replication.Position{Epoch: 2, Seq: 3}) || pr.Applied != 0 {
		t.Fatalf("gap in epoch 2: %+v, want gap 2/3", pr)
	}
	if pr := riPush(t, l.ReplicationAddr(), s1.token, "s1", 1, riEvent(t, "s1", 1, 6, i1)); pr.Gap == nil || *pr.Gap != (replication.Position{Epoch: 1, Seq: 4}) || pr.Applied != 0 {
		t.Fatalf("gap in epoch 1: %+v, want gap 1/4", pr)
	}
	// Epoch 1 late: e new, then d again (a retry the old process appended).
	e := riEvent(t, "s1", 1, 4, i1)
	d1 := d
	d1.Epoch, d1.Seq = 1, 5
	if pr := riPush(t, l.ReplicationAddr(), s1.token, "s1", 1, e, d1); pr.Gap != nil || pr.Acked != (replication.Position{Epoch: 1, Seq: 5}) || pr.Applied != 1 || pr.Duplicates != 1 {
		t.Fatalf("epoch 1 late: %+v, want acked 1/5, 1 applied, 1 duplicate", pr)
	}
	// Everything again, at the other node: nothing applied.
	riPush(t, c.follower().ReplicationAddr(), s1.token, "s1", 1, a, b, cc, e, d1)
	riPush(t, l.ReplicationAddr(), s1.token, "s1", 2, b2, d)
	c.waitSettled()
	for _, n := range c.nodes {
		if got := sold(n); !got.Equal(decimal.NewFromInt(5)) {
			t.Errorf("%s: sold %s units, want 5 (a, b, c, d, e once each)", n.ID(), got)
		}
		ms, err := n.Marks("s1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ms) != "[1/5 2/2]" {
			t.Errorf("%s: marks %v, want [1/5 2/2]", n.ID(), ms)
		}
	}
}

// TestReviewIngestPagingWhileCommitting: a shop paging its pull with a
// small page while head office commits transfers to it (and to another
// shop) and master changes gets each of its transfers and each change
// exactly once, and none of the other shop's.
func TestReviewIngestPagingWhileCommitting(t *testing.T) {
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	// Every node holds the seed before the first pull: one that lagged
	// would answer a cursor below the store's price-list assignment, and a
	// later pull at another node would rightly resync.
	c.waitSettled()
	s1 := testShops[0]
	i1 := storeline.ItemID("i1")
	got := map[storeline.EventID]int{}
	recs := map[string]int{}
	addrs := []string{c.nodes[0].ReplicationAddr(), c.nodes[1].ReplicationAddr(), c.nodes[2].ReplicationAddr()}
	// The seed in one page (a cursor below the store's assignment would
	// resync, rightly: its earlier pages were filtered by other lists).
	cursor := riDrain(t, addrs[0], s1.token, "s1", 0, 1000, got, nil, recs)
	want := map[storeline.EventID]bool{}
	var mu sync.Mutex
	done, stop := make(chan struct{}), make(chan struct{})
	// The writer never outlives the test, which may end early (a Fatal):
	// it stops at the next transfer, and the test waits for it.
	defer func() { close(stop); <-done }()
	// The writer's leader, found without t: FailNow belongs to the test's
	// own goroutine.
	leader := func() (*central.Node, error) {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if l := c.leader(); l != nil {
				return l, nil
			}
			select {
			case <-stop:
				return nil, errTestEnded
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil, errors.New("no leader for 15s")
	}
	go func() {
		defer close(done)
		for k := 0; k < 60; k++ {
			select {
			case <-stop:
				return
			default:
			}
			to := storeline.StoreID("s1")
			if k%3 == 2 {
				to = "s2"
			}
			id := storeline.NewEventID()
			// An answer "outcome unknown" (leadership lost while
			// committing, on a loaded machine) is retried with the same
			// ID, or key, as a client would: applied once either way.
			err := retryUnknown(func() error {
				l, err := leader()
				if err != nil {
					return err
				}
				_, err = l.Transfer(context.Background(), id, "delivery", "", []storeline.Posting{
					{Account: storeline.StockAccount(to, "food", i1), Asset: storeline.ItemAsset(i1), Amount: decimal.NewFromInt(1)},
					{Account: "warehouse/i1", Asset: storeline.ItemAsset(i1), Amount: decimal.NewFromInt(-1)}})
				return err
			})
			if errors.Is(err, errTestEnded) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if to == "s1" {
				mu.Lock()
				want[id] = true
				mu.Unlock()
			}
			if k%5 == 0 {
				if err := retryUnknown(func() error {
					l, err := leader()
					if err != nil {
						return err
					}
					_, err = l.PutRecords(context.Background(), fmt.Sprintf("group-g%d", k), &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("g%d", k)), Name: "G"})
					return err
				}); err != nil {
					if !errors.Is(err, errTestEnded) {
						t.Error(err)
					}
					return
				}
			}
		}
	}()
	for k := 0; ; k++ {
		select {
		case <-done:
			c.waitSettled()
			cursor = riDrain(t, addrs[k%3], s1.token, "s1", cursor, 2, got, nil, recs)
			for id := range want {
				if got[id] != 1 {
					t.Errorf("transfer %s pulled %d times, want 1", id, got[id])
				}
			}
			if len(got) != len(want) {
				t.Errorf("pulled %d transfers, want %d", len(got), len(want))
			}
			for k := 0; k < 60; k += 5 {
				if n := recs[fmt.Sprintf("group/g%d", k)]; n != 1 {
					t.Errorf("group g%d pulled %d times, want 1", k, n)
				}
			}
			return
		default:
		}
		cursor = riDrain(t, addrs[k%3], s1.token, "s1", cursor, 2, got, nil, recs)
	}
}

// TestReviewIngestSlowShopAfterPruneResyncs: a shop whose cursor is older
// than a tombstone pruned since (and than feed entries dropped with it)
// gets a resync on its next pull, at any node, never a page without the
// tombstone; its resync names the deletion by leaving the record out.
func TestReviewIngestSlowShopAfterPruneResyncs(t *testing.T) {
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	s1 := testShops[0]
	got := map[storeline.EventID]int{}
	cursor := riDrain(t, c.nodes[0].ReplicationAddr(), s1.token, "s1", 0, 1000, got, nil, nil)
	l := c.waitLeader()
	if _, err := l.Transfer(context.Background(), storeline.NewEventID(), "delivery", "", []storeline.Posting{
		{Account: storeline.StockAccount("s1", "food", "i1"), Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(1)},
		{Account: "warehouse/i1", Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(-1)}}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, apiDo(t, "DELETE", c.waitLeader().APIAddr(), "/v1/items/i2", adminKey, nil, nil))
	if _, err := c.waitLeader().PruneHistory(context.Background(), time.Now().Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.waitSettled()
	for _, n := range c.nodes {
		p := riPull(t, n.ReplicationAddr(), s1.token, replication.PullRequest{Store: "s1", Cursor: cursor, Epoch: 1, MaxItems: 1000})
		if p.Resync == nil {
			t.Errorf("%s: a cursor below the pruned tombstone got a page without a resync: %d records, %d events", n.ID(), len(p.Records), len(p.Events))
		}
	}
}

// errTestEnded stops a test's helper goroutine once the test has ended.
var errTestEnded = errors.New("the test ended")

// retryUnknown calls submit until it answers other than Unavailable (an
// outcome unknown, or no leader yet), at most 20 times.
func retryUnknown(submit func() error) error {
	var err error
	for range 20 {
		if err = submit(); !errors.Is(err, storeline.Unavailable) {
			return err
		}
	}
	return err
}

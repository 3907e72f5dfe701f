package replication_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

var long = flag.Bool("repl.long", false, "sell 10,000 receipts while cut off (1,000 without it)")

const (
	shop      = storeline.StoreID("s1")
	shopToken = "s1-replication-token-0123456789"
	adminTok  = "admin-token-0123456789"
)

func tokens() map[string]storeline.StoreID { return map[string]storeline.StoreID{shopToken: shop} }

func items(n int) []storeline.Record {
	out := make([]storeline.Record, n)
	for i := range out {
		out[i] = &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%d", i)), SKU: fmt.Sprintf("sku%d", i),
			Name: fmt.Sprintf("Item %d", i), Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}
	}
	return out
}

// receipt sells one unit of item at a price derived from n, in cash.
func receipt(item storeline.ItemID, n int) storeline.Event {
	price := decimal.NewFromInt(int64(100 + n%50)).Shift(-2)
	r := &storeline.Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{{Item: item, Dept: "food", Unit: storeline.Piece, Qty: decimal.NewFromInt(1),
			Price: price, VATRate: decimal.NewFromInt(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: price}}}
	return storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r,
		OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-28"}
}

// sell appends n receipts from 8 goroutines (so the ledger group-commits)
// and returns them.
func sell(t testing.TB, l *ledger.Ledger, n int) []storeline.Event {
	t.Helper()
	out := make([]storeline.Event, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ev, _, err := l.Append(context.Background(), receipt(storeline.ItemID(fmt.Sprintf("i%d", i%10)), i))
				if err != nil {
					errs <- err
					return
				}
				out[i] = ev
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("sell: %v", err)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

func fastReplication(url string) node.ReplicationConfig {
	return node.ReplicationConfig{
		Central: []string{url}, Token: shopToken,
		MaxBatchEvents: 50, MaxBatchBytes: 256 << 10, PageItems: 200,
		PushInterval: 10 * time.Millisecond, PollWait: 300 * time.Millisecond, RequestTimeout: 2 * time.Second,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}
}

func startShop(t testing.TB, dir string, repl node.ReplicationConfig) *node.Node {
	t.Helper()
	return startShopWith(t, dir, repl, nil)
}

// startShopWith is startShop with the config changed by set (nil: none).
func startShopWith(t testing.TB, dir string, repl node.ReplicationConfig, set func(*node.Config)) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID = shop
	c.DataDir = dir
	c.TillAddr = "127.0.0.1:0"
	c.AdminAddr = "127.0.0.1:0"
	c.AdminToken = adminTok
	c.WALSegmentBytes = 8 << 20
	c.MaxBatchBytes = 1 << 20
	c.Replication = repl
	if set != nil {
		set(&c)
	}
	n, err := node.New(c, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

func acked(n *node.Node) replication.Position { return n.Replication().Status().Acked }

func caughtUp(n *node.Node) bool {
	p := n.Ledger().Position()
	return acked(n) == replication.Position{Epoch: p.Epoch, Seq: p.Seq}
}

// checkExactlyOnce checks central holds each sold event once, applied
// once, and nothing else of the shop.
func checkExactlyOnce(t testing.TB, c *refCentral, sold []storeline.Event, rejected map[storeline.EventID]bool) {
	t.Helper()
	ids := c.journalIDs(t, shop)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range sold {
		if rejected[ev.ID] {
			if ids[ev.ID] != 0 || c.created[ev.ID] != 0 {
				t.Errorf("rejected event %s held %d times, applied %d", ev.ID, ids[ev.ID], c.created[ev.ID])
			}
			continue
		}
		if ids[ev.ID] != 1 || c.created[ev.ID] != 1 {
			t.Errorf("event %s held %d times, applied %d times at central, want 1 and 1", ev.ID, ids[ev.ID], c.created[ev.ID])
		}
	}
	if want := len(sold) - len(rejected); len(ids) != want {
		t.Errorf("central holds %d events of %s, want %d", len(ids), shop, want)
	}
}

// checkBalances compares every balance of the shop's accounts, less the
// postings of events central rejected.
func checkBalances(t testing.TB, shopL, central *ledger.Ledger, rejected ...storeline.Event) {
	t.Helper()
	bs, err := shopL.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range rejected {
		for _, p := range ev.Postings {
			for i := range bs {
				if bs[i].Account == p.Account && bs[i].Asset == p.Asset {
					bs[i].Amount = bs[i].Amount.Sub(p.Amount)
				}
			}
		}
	}
	n := 0
	for _, b := range bs {
		if !hasPrefixAny(b.Account, "stock/s1/", "sold/s1/", "revenue/s1", "vat/s1/", "cash/s1/", "card/s1/") {
			continue
		}
		n++
		got, err := central.Balance(b.Account, b.Asset)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(b.Amount) {
			t.Errorf("central Balance(%s, %s) = %s, shop has %s", b.Account, b.Asset, got, b.Amount)
		}
	}
	if n == 0 {
		t.Fatal("the shop has no balances to compare")
	}
	for _, l := range []*ledger.Ledger{shopL, central} {
		if err := l.CheckConservation(); err != nil {
			t.Error(err)
		}
	}
}

// TestOfflineSellingConverges: the shop sells while cut off from central,
// reconnects through a proxy that cuts connections mid-transfer and sends
// every request twice (the copy late, so batches arrive duplicated and
// reordered), and central ends with every event exactly once and equal
// balances; master data, a head-office transfer and a rejection flow down.
func TestOfflineSellingConverges(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	px, err := faultproxy.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	n := startShop(t, t.TempDir(), fastReplication(px.URL()))
	l := n.Ledger()

	// Master data flows down and bumps the node-local version.
	waitFor(t, "items at the shop", 10*time.Second, func() bool {
		var it storeline.Item
		return l.GetMaster(storeline.KindItem, "i9", &it) == nil
	})
	v0 := l.MasterVersion()
	c.putMaster(&storeline.Item{ID: "i0", SKU: "sku0", Name: "Item 0 renamed", Group: "g", Dept: "food",
		Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)})
	waitFor(t, "the renamed item", 10*time.Second, func() bool {
		var it storeline.Item
		return l.GetMaster(storeline.KindItem, "i0", &it) == nil && it.Name == "Item 0 renamed"
	})
	if l.MasterVersion() <= v0 {
		t.Errorf("MasterVersion = %d after a pulled change, want above %d", l.MasterVersion(), v0)
	}
	tr := c.transfer(shop, "i3", 1000)

	// Cut off: sell, including one receipt central will reject.
	px.Cut()
	waitFor(t, "health to report central unreachable", 10*time.Second, func() bool {
		return !n.Replication().Status().Reachable
	})
	count := 1000
	if *long {
		count = 10000
	}
	start := time.Now()
	sold := sell(t, l, count)
	ghost, _, err := l.Append(context.Background(), receipt("ghost", 1))
	if err != nil {
		t.Fatal(err)
	}
	sold = append(sold, ghost)
	t.Logf("sold %d receipts offline in %v", count, time.Since(start))

	// Reconnect through a hostile link.
	px.SeverAfter(96 << 10)
	px.Duplicate(true, 2*time.Millisecond)
	px.Heal()
	waitFor(t, "a third of the backlog acknowledged", 30*time.Second, func() bool {
		return acked(n).Seq > uint64(count/3)
	})
	px.SeverAfter(0)
	waitFor(t, "the backlog acknowledged", 30*time.Second, func() bool { return caughtUp(n) })
	px.Duplicate(false, 0)
	t.Logf("proxy: %d connections, %d severed, %d bytes duplicated", px.Accepted.Load(), px.Severed.Load(), px.Duplicated.Load())

	// The transfer and the rejection came down.
	waitFor(t, "the transfer at the shop", 10*time.Second, func() bool {
		_, err := l.Event("hq", tr.ID)
		return err == nil
	})
	waitFor(t, "the rejection at the shop", 10*time.Second, func() bool {
		_, ok, _ := l.Meta(replication.RejectionPrefix + fmt.Sprintf("%x", ghost.ID[:]))
		return ok
	})
	checkExactlyOnce(t, c, sold, map[storeline.EventID]bool{ghost.ID: true})
	checkBalances(t, l, c.l, ghost)

	// Health reports replication.
	resp, err := http.Get(n.TillURL() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Replication      string     `json:"replication"`
		CentralReachable *bool      `json:"central_reachable"`
		LastSync         *time.Time `json:"last_sync"`
	}
	if err := jsonDecode(resp, &h); err != nil {
		t.Fatal(err)
	}
	if h.Replication != "online" || h.CentralReachable == nil || !*h.CentralReachable || h.LastSync == nil {
		t.Errorf("health = %+v, want online, reachable, with a last sync", h)
	}
}

// TestKilledMidPushResumes: a node stopped while a push is in flight
// restarts and resumes from the position central acknowledged.
func TestKilledMidPushResumes(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	px, err := faultproxy.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	dir := t.TempDir()
	px.Cut()
	rc := fastReplication(px.URL())
	n := startShop(t, dir, rc)
	sold := sell(t, n.Ledger(), 600)
	px.SetDelay(3 * time.Millisecond)
	px.Heal()
	waitFor(t, "some of the backlog acknowledged", 30*time.Second, func() bool { return acked(n).Seq >= 100 })
	if err := n.Stop(); err != nil { // mid-push: the backlog is 600
		t.Fatal(err)
	}
	px.SetDelay(0)

	// What the ledger persisted is where the restarted node resumes.
	n2 := startShop(t, dir, rc)
	raw, ok, err := n2.Ledger().Meta(replication.AckKey)
	if err != nil || !ok {
		t.Fatalf("Meta(ack) = %v, %v", ok, err)
	}
	var persisted replication.Position
	if err := replication.Decode(raw, &persisted); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	before := len(c.pushSeen)
	c.mu.Unlock()
	if persisted.Seq == 0 || persisted.Seq >= 600 {
		t.Fatalf("persisted ack %v, want inside the backlog", persisted)
	}
	waitFor(t, "the backlog acknowledged after restart", 30*time.Second, func() bool { return caughtUp(n2) })
	c.mu.Lock()
	first := c.pushSeen[before]
	c.mu.Unlock()
	if first.Seq > persisted.Seq+1 {
		t.Errorf("first push after restart starts at %v, after the persisted ack %v: events skipped", first, persisted)
	}
	if first.Seq < persisted.Seq+1 {
		t.Errorf("first push after restart starts at %v, before the persisted ack %v", first, persisted)
	}
	checkExactlyOnce(t, c, sold, nil)
	checkBalances(t, n2.Ledger(), c.l)
}

// TestResyncKeepsJournal: a cursor older than central's history gets a
// paged snapshot; the shop's unsent journal is pushed all the same.
func TestResyncKeepsJournal(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(30)...)
	c.mu.Lock()
	c.horizon = 5 // history before 5 is gone: a new shop (cursor 0) resyncs
	c.mu.Unlock()
	srv := c.serve(t, tokens())
	rc := fastReplication(srv.URL)
	rc.PageItems = 7 // several snapshot pages
	dir := t.TempDir()
	n := startShop(t, dir, rc)
	sold := sell(t, n.Ledger(), 50)
	waitFor(t, "the snapshot at the shop", 10*time.Second, func() bool {
		var it storeline.Item
		return n.Ledger().GetMaster(storeline.KindItem, "i29", &it) == nil && n.Replication().Status().Cursor >= 30
	})
	waitFor(t, "the journal acknowledged", 10*time.Second, func() bool { return caughtUp(n) })
	checkExactlyOnce(t, c, sold, nil)
	if got := testutilCounter(t, n, "storeline_replication_resyncs_total"); got != 1 {
		t.Errorf("resyncs_total = %v, want 1", got)
	}
}

// TestRestoredShopGetsItsEventsBack: a shop restored from an old backup
// starts a new epoch, pulls back its acknowledged events the backup lacked,
// and a till's retry of one of them (appended again in the new epoch before
// they came back) is counted once at central and at the shop.
func TestRestoredShopGetsItsEventsBack(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	px, err := faultproxy.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rc := fastReplication(px.URL())
	n := startShop(t, t.TempDir(), rc)
	early := sell(t, n.Ledger(), 100)
	waitFor(t, "the first 100 acknowledged", 20*time.Second, func() bool { return caughtUp(n) })
	var backup bytes.Buffer
	if err := n.Ledger().Backup(&backup); err != nil {
		t.Fatal(err)
	}
	late := sell(t, n.Ledger(), 50) // lost by the restore below
	waitFor(t, "the next 50 acknowledged", 20*time.Second, func() bool { return caughtUp(n) })
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := ledger.Restore(dir, &backup, 1000); err != nil {
		t.Fatal(err)
	}
	px.Cut()
	n2 := startShop(t, dir, rc)
	l := n2.Ledger()
	if l.Epoch() != 1000 {
		t.Fatalf("epoch after restore %d, want 1000", l.Epoch())
	}
	retry := late[20]
	retry.Epoch, retry.Seq, retry.HLC, retry.Postings = 0, 0, 0, nil
	got, created, err := l.Append(context.Background(), retry)
	if err != nil || !created {
		t.Fatalf("till retry after the restore: created %v, %v", created, err)
	}
	px.Heal()
	waitFor(t, "the lost events back at the shop", 20*time.Second, func() bool {
		for _, ev := range late {
			if _, err := l.Event(shop, ev.ID); err != nil {
				return false
			}
		}
		return true
	})
	waitFor(t, "the new epoch acknowledged", 20*time.Second, func() bool { return caughtUp(n2) })
	if got.Epoch != 1000 || got.Seq != 1 {
		t.Errorf("retry stored at %d/%d, want 1000/1", got.Epoch, got.Seq)
	}
	checkExactlyOnce(t, c, append(early, late...), nil)
	checkBalances(t, l, c.l)
}

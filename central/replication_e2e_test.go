package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/testaddr"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

var (
	replLong = flag.Bool("repl.long", false, "shop 1 sells 10,000 receipts while cut off (1,000 without it)")
	replLogs = flag.Bool("repl.logs", false, "print the shops' and central's logs")
)

const shopAdminToken = "shop-admin-token-0123456789"

// shopSpec is one test shop: its store, its replication token and its
// till's terminal token.
type shopSpec struct {
	store    storeline.StoreID
	token    string
	terminal string
}

var testShops = []shopSpec{
	{"s1", "s1-replication-token-0123456789", "s1-till-token-0123456789"},
	{"s2", "s2-replication-token-0123456789", "s2-till-token-0123456789"},
}

func replTokens() map[string]storeline.StoreID {
	m := map[string]storeline.StoreID{}
	for _, s := range testShops {
		m[s.token] = s.store
	}
	return m
}

func testLogger() *slog.Logger {
	if !*replLogs {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// replCluster starts a 3-node central with replication listeners and a
// metrics registry per node.
func replCluster(t testing.TB) (*cluster, map[string]*prometheus.Registry) {
	t.Helper()
	regs := map[string]*prometheus.Registry{}
	var mu sync.Mutex
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationAddr = testaddr.Stable(false) // see testConfig
		cfg.ReplicationMaxWait = 500 * time.Millisecond
		cfg.ReplicationPageItems = 1000
		reg := prometheus.NewRegistry()
		mu.Lock()
		regs[cfg.NodeID] = reg
		mu.Unlock()
		cfg.Registerer = reg
		cfg.Logger = testLogger()
	})
	return c, regs
}

// retryUnavailable runs fn until it succeeds or fails with another error
// than Unavailable (no leader for a moment: the tests' Raft timers are
// short and the machine is shared). Every write it retries is keyed, so
// a retry applies nothing twice.
func retryUnavailable(t testing.TB, fn func() error) {
	t.Helper()
	var err error
	testwait.Retry(30*time.Second, func() bool {
		err = fn()
		return err == nil || storeline.KindOf(err) != storeline.Unavailable
	})
	if err != nil {
		t.Fatal(err)
	}
}

// put writes records through any live node, keyed by key.
func (c *cluster) put(t testing.TB, key string, recs ...storeline.Record) {
	t.Helper()
	retryUnavailable(t, func() error {
		_, err := c.waitLeader().PutRecords(context.Background(), key, recs...)
		return err
	})
}

// masterData is the chain's catalogue: a price list, the two shops, a
// group and n items priced in the list.
func masterData(n int, priceFrom time.Time) []storeline.Record {
	recs := []storeline.Record{
		&storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"},
		&storeline.Group{ID: "g", Name: "Goods"},
	}
	for _, s := range testShops {
		recs = append(recs, &storeline.Store{ID: s.store, Name: "Shop " + string(s.store), TimeZone: "Europe/Riga", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: []storeline.PriceListID{"retail"}})
	}
	for i := 0; i < n; i++ {
		id := storeline.ItemID(fmt.Sprintf("i%d", i))
		recs = append(recs, &storeline.Item{ID: id, SKU: fmt.Sprintf("sku%d", i), Name: fmt.Sprintf("Item %d", i),
			Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)})
		recs = append(recs, &storeline.Price{List: "retail", Item: id, From: priceFrom, Price: decimal.NewFromInt(int64(100 + i)).Shift(-2)})
	}
	return recs
}

func shopReplication(urls []string, token string) node.ReplicationConfig {
	return node.ReplicationConfig{
		Central: urls, Token: token,
		MaxBatchEvents: 100, MaxBatchBytes: 256 << 10, PageItems: 500,
		PushInterval: 10 * time.Millisecond, PollWait: 400 * time.Millisecond, RequestTimeout: 2 * time.Second,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}
}

func startShopNode(t testing.TB, s shopSpec, dir string, repl node.ReplicationConfig) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID = s.store
	c.DataDir = dir
	c.TillAddr = "127.0.0.1:0"
	c.AdminAddr = "127.0.0.1:0"
	c.AdminToken = shopAdminToken
	c.WALSegmentBytes = 8 << 20
	c.MaxBatchBytes = 1 << 20
	// The smallest memtable a 1 MiB batch allows (the simulation's
	// nodes run with small ones too): allocating the default 64 MiB took
	// a good part of each shop's start under -race.
	c.MemTableBytes = 8 << 20
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: s.terminal}}
	c.Replication = repl
	n, err := node.New(c, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

// receiptOf sells one unit of item, paid in cash.
func receiptOf(item storeline.ItemID, n int) storeline.Event {
	price := decimal.NewFromInt(int64(100 + n%50)).Shift(-2)
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{{Item: item, Dept: "food", Unit: storeline.Piece, Qty: decimal.NewFromInt(1),
			Price: price, VATRate: decimal.NewFromInt(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: price}}}
	return storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r,
		OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-28"}
}

// sellAt appends n receipts at l from 8 goroutines (so the ledger
// group-commits), items i0..i9 in turn.
func sellAt(t testing.TB, l *ledger.Ledger, n int) []storeline.Event {
	t.Helper()
	out := make([]storeline.Event, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ev, _, err := l.Append(context.Background(), receiptOf(storeline.ItemID(fmt.Sprintf("i%d", i%10)), i))
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

func ackedAt(n *node.Node) replication.Position { return n.Replication().Status().Acked }

func caughtUpAt(n *node.Node) bool {
	p := n.Ledger().Position()
	return ackedAt(n) == replication.Position{Epoch: p.Epoch, Seq: p.Seq}
}

// tillItem reads an item's price through the shop's till API.
func tillItem(t testing.TB, n *node.Node, token, sku string) (price string, ok bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.TillURL()+"/v1/items/"+sku, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var body struct {
		Price *string `json:"price"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Price == nil {
		return "", false
	}
	return *body.Price, true
}

// shopJournal returns the events of origin a shop holds, in (epoch, seq)
// order; centralJournal what a central node holds.
func shopJournal(t testing.TB, l *ledger.Ledger, origin storeline.StoreID) []storeline.Event {
	t.Helper()
	var out []storeline.Event
	from := ledger.Position{}
	for {
		evs, err := l.Journal(origin, from, ledger.MaxJournalLimit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if len(evs) < ledger.MaxJournalLimit {
			return out
		}
		last := evs[len(evs)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

func centralJournal(t testing.TB, n *central.Node, origin storeline.StoreID) []storeline.Event {
	t.Helper()
	var out []storeline.Event
	if err := n.ScanEvents(origin, func(ev storeline.Event) bool { out = append(out, ev); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameEvent compares what replication must carry exactly.
func sameEvent(a, b storeline.Event) bool {
	if a.ID != b.ID || a.Origin != b.Origin || a.Epoch != b.Epoch || a.Seq != b.Seq || a.Kind != b.Kind ||
		a.HLC != b.HLC || !a.OccurredAt.Equal(b.OccurredAt) || a.BusinessDate != b.BusinessDate || len(a.Postings) != len(b.Postings) {
		return false
	}
	for i := range a.Postings {
		p, q := a.Postings[i], b.Postings[i]
		if p.Account != q.Account || p.Asset != q.Asset || !p.Amount.Equal(q.Amount) {
			return false
		}
	}
	return true
}

// checkAgree checks that every central node holds exactly the shop's
// journal (less the rejected events), event for event, and the same
// balance of every account of the shop.
func checkAgree(t testing.TB, c *cluster, shop *node.Node, store storeline.StoreID, rejected map[storeline.EventID]bool) {
	t.Helper()
	own := shopJournal(t, shop.Ledger(), store)
	var want []storeline.Event
	for _, ev := range own {
		if !rejected[ev.ID] {
			want = append(want, ev)
		}
	}
	shopBal := map[string]decimal.Decimal{}
	bs, err := shop.Ledger().Balances("")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if accountOf(b.Account) == store {
			shopBal[b.Account+" "+string(b.Asset)] = b.Amount
		}
	}
	if len(shopBal) == 0 {
		t.Fatalf("shop %s has no balances", store)
	}
	for _, ev := range own { // a rejected event's postings never reached central
		if rejected[ev.ID] {
			for _, p := range ev.Postings {
				k := p.Account + " " + string(p.Asset)
				shopBal[k] = shopBal[k].Sub(p.Amount)
				if shopBal[k].IsZero() {
					delete(shopBal, k)
				}
			}
		}
	}
	for _, cn := range c.nodes {
		got := centralJournal(t, cn, store)
		if len(got) != len(want) {
			t.Errorf("%s holds %d events of %s, the shop %d (less %d rejected)", cn.ID(), len(got), store, len(want), len(rejected))
		}
		for i := range min(len(got), len(want)) {
			if !sameEvent(got[i], want[i]) {
				t.Errorf("%s: event %d of %s is %s at %d/%d, the shop's %s at %d/%d", cn.ID(), i, store,
					got[i].ID, got[i].Epoch, got[i].Seq, want[i].ID, want[i].Epoch, want[i].Seq)
				break
			}
		}
		cb, err := cn.Balances("")
		if err != nil {
			t.Fatal(err)
		}
		centralBal := map[string]decimal.Decimal{}
		for _, b := range cb {
			if accountOf(b.Account) == store {
				centralBal[b.Account+" "+string(b.Asset)] = b.Amount
			}
		}
		if len(centralBal) != len(shopBal) {
			t.Errorf("%s has %d balances of %s, the shop %d", cn.ID(), len(centralBal), store, len(shopBal))
		}
		for k, v := range shopBal {
			if !centralBal[k].Equal(v) {
				t.Errorf("%s: balance %s = %s, the shop has %s", cn.ID(), k, centralBal[k], v)
			}
		}
	}
}

// accountOf returns the store an account belongs to (kind/store/...).
func accountOf(account string) storeline.StoreID {
	parts := strings.SplitN(account, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return storeline.StoreID(parts[1])
}

// waitSettled waits until every central node has applied as much as the
// leader.
func (c *cluster) waitSettled() {
	c.t.Helper()
	waitFor(c.t, "every central node to apply the leader's entries", 15*time.Second, func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		for _, n := range c.nodes {
			if n.AppliedIndex() < l.AppliedIndex() {
				return false
			}
		}
		return true
	})
}

func gauge(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue(), true
			}
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// TestShopsConvergeWithCentral is the must-show: a 3-node central
// and two shops over loopback TCP, shop 1 behind fault-injecting proxies.
// Shop 1 sells while cut off, reconnects over a link that severs
// connections mid-transfer and sends every request twice (the copy late),
// is killed mid-push and restarted; afterwards every central node and both
// shops agree exactly on every receipt and every balance of the shops,
// head office's transfer and a rejection came down, and a price changed at
// central reaches both shops' till API within 30 s.
func TestShopsConvergeWithCentral(t *testing.T) {
	c, regs := replCluster(t)
	ctx := context.Background()
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	var direct []string
	for _, n := range c.nodes {
		direct = append(direct, "http://"+n.ReplicationAddr())
	}
	pxs, proxied := proxyEach(t, c)
	each := func(fn func(*faultproxy.Proxy)) {
		for _, px := range pxs {
			fn(px)
		}
	}
	dir1 := t.TempDir()
	rc1 := shopReplication(proxied, testShops[0].token)
	s1 := startShopNode(t, testShops[0], dir1, rc1)
	s2 := startShopNode(t, testShops[1], t.TempDir(), shopReplication(direct[1:], testShops[1].token)) // followers only
	for i, s := range []*node.Node{s1, s2} {
		waitFor(t, "the catalogue at "+string(testShops[i].store), 15*time.Second, func() bool {
			_, ok := tillItem(t, s, testShops[i].terminal, "sku9")
			return ok
		})
	}

	// Head office moves stock into shop 2: an event of another origin
	// that touches the shop's accounts flows down to it, not to shop 1.
	trID := storeline.NewEventID()
	retryUnavailable(t, func() error {
		_, err := c.follower().Transfer(ctx, trID, "delivery", "DN-1", []storeline.Posting{
			{Account: storeline.StockAccount("s2", "food", "i3"), Asset: storeline.ItemAsset("i3"), Amount: decimal.NewFromInt(1000)},
			{Account: "warehouse/i3", Asset: storeline.ItemAsset("i3"), Amount: decimal.NewFromInt(-1000)},
		})
		return err
	})
	waitFor(t, "the delivery at shop 2", 15*time.Second, func() bool {
		_, err := s2.Ledger().Event(storeline.Central, trID)
		return err == nil
	})

	// Shop 1 sells while cut off, one receipt of an item central does not
	// know among them; shop 2 sells online meanwhile.
	each((*faultproxy.Proxy).Cut)
	waitFor(t, "shop 1 to see central unreachable", 10*time.Second, func() bool { return !s1.Replication().Status().Reachable })
	count := 1000
	if *replLong {
		count = 10000
	}
	start := time.Now()
	sold1 := sellAt(t, s1.Ledger(), count)
	ghost, _, err := s1.Ledger().Append(ctx, receiptOf("ghost", 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shop 1 sold %d receipts offline in %v", len(sold1), time.Since(start))
	sellAt(t, s2.Ledger(), 100)

	// Reconnect over a hostile link: connections severed mid-transfer,
	// every request sent twice with the copy late.
	each(func(px *faultproxy.Proxy) {
		px.SeverAfter(64 << 10)
		px.Duplicate(true, 2*time.Millisecond)
		px.SetDelay(time.Millisecond)
		px.Heal()
	})
	start = time.Now()
	scale := time.Duration(count / 1000) // -repl.long: ten times the work, under -race
	waitFor(t, "a part of shop 1's backlog acknowledged", 30*time.Second*scale, func() bool { return ackedAt(s1).Seq > uint64(count/4) })
	// Kill shop 1 mid-push and restart it: it resumes from what it
	// persisted as acknowledged.
	if err := s1.Stop(); err != nil {
		t.Fatal(err)
	}
	each(func(px *faultproxy.Proxy) { px.SeverAfter(0); px.SetDelay(0) })
	s1 = startShopNode(t, testShops[0], dir1, rc1)
	raw, ok, err := s1.Ledger().Meta(replication.AckKey)
	if err != nil || !ok {
		t.Fatalf("persisted ack: %v, %v", ok, err)
	}
	var persisted replication.Position
	if err := replication.Decode(raw, &persisted); err != nil {
		t.Fatal(err)
	}
	if persisted.Seq == 0 || int(persisted.Seq) > count {
		t.Fatalf("persisted ack %v, want inside the backlog of %d", persisted, count+1)
	}
	waitFor(t, "shop 1's backlog acknowledged after the restart", 60*time.Second*scale, func() bool { return caughtUpAt(s1) })
	waitFor(t, "shop 2 caught up", 30*time.Second, func() bool { return caughtUpAt(s2) })
	t.Logf("backlog of %d uploaded in %v through the hostile link (restart included); resumed from %v; proxies: %d connections, %d severed, %d bytes duplicated",
		count+1, time.Since(start), persisted, sumOf(pxs, func(p *faultproxy.Proxy) int64 { return p.Accepted.Load() }),
		sumOf(pxs, func(p *faultproxy.Proxy) int64 { return p.Severed.Load() }), sumOf(pxs, func(p *faultproxy.Proxy) int64 { return p.Duplicated.Load() }))
	each(func(px *faultproxy.Proxy) { px.Duplicate(false, 0) })

	// The rejection came down to shop 1.
	waitFor(t, "the rejection at shop 1", 15*time.Second, func() bool {
		_, ok, _ := s1.Ledger().Meta(replication.RejectionPrefix + fmt.Sprintf("%x", ghost.ID[:]))
		return ok
	})
	c.waitSettled()
	rejected := map[storeline.EventID]bool{ghost.ID: true}
	checkAgree(t, c, s1, "s1", rejected)
	checkAgree(t, c, s2, "s2", nil)
	if _, err := s1.Ledger().Event(storeline.Central, trID); err == nil {
		t.Error("shop 1 holds head office's delivery to shop 2")
	}
	for _, cn := range c.nodes {
		got, err := cn.Balance(storeline.StockAccount("s2", "food", "i3"), storeline.ItemAsset("i3"))
		if err != nil {
			t.Fatal(err)
		}
		at2, err := s2.Ledger().Balance(storeline.StockAccount("s2", "food", "i3"), storeline.ItemAsset("i3"))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at2) || got.IntPart() >= 1000 {
			t.Errorf("%s: stock of i3 at s2 = %s, shop 2 has %s (1000 delivered, some sold)", cn.ID(), got, at2)
		}
	}

	// Every central node reports the same per-shop figures (FSM state).
	for _, s := range []string{"s1", "s2"} {
		var first float64
		for i, cn := range c.nodes {
			v, ok := gauge(t, regs[cn.ID()], "storeline_central_replication_events_ingested_total", map[string]string{"store": s})
			if !ok {
				t.Fatalf("%s exports no events_ingested_total for %s", cn.ID(), s)
			}
			if i == 0 {
				first = v
			} else if v != first {
				t.Errorf("%s reports %v events of %s, %s %v", cn.ID(), v, s, c.nodes[0].ID(), first)
			}
		}
	}
	if v, _ := gauge(t, regs[c.nodes[0].ID()], "storeline_central_replication_rejections_total", map[string]string{"store": "s1"}); v != 1 {
		t.Errorf("rejections_total{store=s1} = %v, want 1", v)
	}
	if v, _ := gauge(t, regs[c.nodes[0].ID()], "storeline_central_replication_events_ingested_total", map[string]string{"store": "s1"}); v != float64(count+1) {
		t.Errorf("events_ingested_total{store=s1} = %v, want %d (each receipt once)", v, count+1)
	}

	// A price changed at central reaches both shops' till API.
	start = time.Now()
	c.put(t, "price-change", &storeline.Price{List: "retail", Item: "i0",
		From: time.Now().Add(-time.Minute), Price: decimal.RequireFromString("7.77")})
	for i, s := range []*node.Node{s1, s2} {
		waitFor(t, "the new price at "+string(testShops[i].store), 30*time.Second, func() bool {
			p, ok := tillItem(t, s, testShops[i].terminal, "sku0")
			return ok && p == "7.77"
		})
		t.Logf("price change visible at %s's till API after %v", testShops[i].store, time.Since(start))
	}
}

func sumOf(pxs []*faultproxy.Proxy, f func(*faultproxy.Proxy) int64) int64 {
	var s int64
	for _, p := range pxs {
		s += f(p)
	}
	return s
}

// pushRaw sends a push body to a central node's replication listener.
func pushRaw(t testing.TB, addr, token string, body []byte) (int, map[string]any, *replication.PushResponse) {
	t.Helper()
	var resp *http.Response
	var b []byte
	// 503 is no leader for a moment (short test timers, a shared machine):
	// retry, as a shop does.
	testwait.Retry(20*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/replication/push", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/msgpack")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
		resp = r
		return r.StatusCode != http.StatusServiceUnavailable
	})
	if resp.StatusCode == http.StatusOK {
		var pr replication.PushResponse
		if err := replication.Decode(b, &pr); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, nil, &pr
	}
	var prob map[string]any
	if err := json.Unmarshal(b, &prob); err != nil {
		t.Fatalf("status %d, body not problem+json: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, prob, nil
}

// wireBatch builds a push of receipts of store at positions epoch/from..
func wireBatch(t testing.TB, store storeline.StoreID, epoch, from uint64, n int) replication.PushRequest {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: epoch}
	for i := 0; i < n; i++ {
		ev := receiptOf("i1", i)
		ev.Origin, ev.Epoch, ev.Seq, ev.SchemaVersion = store, epoch, from+uint64(i), storeline.SchemaVersion
		if err := ev.Body.(*storeline.Receipt).Compute(); err != nil {
			t.Fatal(err)
		}
		ps, err := storeline.DerivePostings(store, ev.Body)
		if err != nil {
			t.Fatal(err)
		}
		ev.Postings = ps
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, w)
	}
	return req
}

// centralState is what a bad batch must not change.
type centralState struct {
	marks    []replication.Position
	events   int
	balances string
}

func stateOf(t testing.TB, n *central.Node, store storeline.StoreID) centralState {
	t.Helper()
	ms, err := n.Marks(store)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := n.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, x := range bs {
		fmt.Fprintf(&b, "%s %s %s\n", x.Account, x.Asset, x.Amount)
	}
	return centralState{marks: ms, events: len(centralJournal(t, n, store)), balances: b.String()}
}

// TestBadBatchesChangeNothing: a batch naming another origin (403),
// garbage bytes (400), a batch with a hole inside (400), a batch starting
// past the mark (answered with the gap), a protocol version older than
// N-1 (400) and an unknown token (401) leave central as it was, on the
// node that took them and on every other.
func TestBadBatchesChangeNothing(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	f := c.follower()
	addr := f.ReplicationAddr()
	tok := testShops[0].token

	// A good batch first, so there is a mark to protect.
	good := wireBatch(t, "s1", 1, 1, 5)
	body, _ := replication.Encode(&good)
	code, prob, pr := pushRaw(t, addr, tok, body)
	if code != http.StatusOK || pr.Acked != (replication.Position{Epoch: 1, Seq: 5}) || pr.Applied != 5 {
		t.Fatalf("good batch: %d %v %+v", code, prob, pr)
	}
	c.waitSettled()
	before := map[string]centralState{}
	for _, n := range c.nodes {
		before[n.ID()] = stateOf(t, n, "s1")
	}

	wrongOrigin := wireBatch(t, "s2", 1, 1, 2)
	woBody, _ := replication.Encode(&wrongOrigin)
	sneaky := wireBatch(t, "s1", 1, 6, 2)
	sneaky.Events[1].Origin = "s2"
	snBody, _ := replication.Encode(&sneaky)
	holed := wireBatch(t, "s1", 1, 6, 3)
	holed.Events = append(holed.Events[:1], holed.Events[2]) // 6, 8
	hoBody, _ := replication.Encode(&holed)
	old := wireBatch(t, "s1", 1, 6, 2)
	old.V = replication.MinProtocolVersion - 1
	oldBody, _ := replication.Encode(&old)
	unbalanced := wireBatch(t, "s1", 1, 6, 1)
	unbalanced.Events[0].Postings = unbalanced.Events[0].Postings[1:]
	unBody, _ := replication.Encode(&unbalanced)

	for _, tc := range []struct {
		name  string
		token string
		body  []byte
		code  int
		field string
	}{
		{"another store's batch", tok, woBody, http.StatusForbidden, "st"},
		{"another origin's event", tok, snBody, http.StatusForbidden, "ev[1].origin"},
		{"garbage bytes", tok, []byte("\xc1\xff not msgpack at all"), http.StatusBadRequest, ""},
		{"a hole inside the batch", tok, hoBody, http.StatusBadRequest, "ev[1].seq"},
		{"a protocol older than N-1", tok, oldBody, http.StatusBadRequest, "v"},
		{"postings that do not balance", tok, unBody, http.StatusBadRequest, "ev[0].postings"},
		{"an unknown token", "not-a-shop-token-0123456789", body, http.StatusUnauthorized, ""},
	} {
		code, prob, _ := pushRaw(t, addr, tc.token, tc.body)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, code, tc.code, prob)
			continue
		}
		if tc.field != "" && prob["field"] != tc.field {
			t.Errorf("%s: problem names field %v, want %s (%v)", tc.name, prob["field"], tc.field, prob)
		}
	}
	// A batch that skips positions is answered with the position central
	// needs, and nothing of it is applied.
	skip := wireBatch(t, "s1", 1, 9, 3)
	skBody, _ := replication.Encode(&skip)
	code, prob, pr = pushRaw(t, addr, tok, skBody)
	if code != http.StatusOK || pr.Gap == nil || *pr.Gap != (replication.Position{Epoch: 1, Seq: 6}) || pr.Applied != 0 {
		t.Errorf("skipping batch: %d %v %+v, want a gap at 1/6", code, prob, pr)
	}
	// The good batch again (a resend) applies nothing either.
	code, _, pr = pushRaw(t, c.waitLeader().ReplicationAddr(), tok, body)
	if code != http.StatusOK || pr.Applied != 0 || pr.Acked.Seq != 5 {
		t.Errorf("resent batch: %d %+v, want nothing applied, acked 1/5", code, pr)
	}
	c.waitSettled()
	for _, n := range c.nodes {
		if got := stateOf(t, n, "s1"); fmt.Sprint(got) != fmt.Sprint(before[n.ID()]) {
			t.Errorf("%s changed: %+v, was %+v", n.ID(), got, before[n.ID()])
		}
	}
}

// TestResyncOnNewPriceList: a shop whose price lists change at central
// gets a resync (the new list's prices are older than its cursor) and
// then prices from the new list; its unsent journal is pushed meanwhile.
func TestResyncOnNewPriceList(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	from := time.Now().Add(-time.Hour)
	c.put(t, "seed", masterData(10, from)...)
	c.put(t, "vip", &storeline.PriceList{ID: "vip", Name: "VIP", Currency: "EUR"},
		&storeline.Price{List: "vip", Item: "i0", From: from, Price: decimal.RequireFromString("0.50")})
	s := testShops[0]
	shop := startShopNode(t, s, t.TempDir(), shopReplication([]string{"http://" + c.nodes[2].ReplicationAddr()}, s.token))
	waitFor(t, "the retail price", 15*time.Second, func() bool {
		p, ok := tillItem(t, shop, s.terminal, "sku0")
		return ok && p == "1.00"
	})
	sellAt(t, shop.Ledger(), 50) // unsent when the resync starts
	st := masterData(0, from)[2].(*storeline.Store)
	st.PriceLists = []storeline.PriceListID{"vip", "retail"}
	c.put(t, "assign-vip", st)
	waitFor(t, "the VIP price after a resync", 15*time.Second, func() bool {
		p, ok := tillItem(t, shop, s.terminal, "sku0")
		return ok && p == "0.50"
	})
	waitFor(t, "the journal acknowledged", 15*time.Second, func() bool { return caughtUpAt(shop) })
	if got := shopCounter(t, shop, "storeline_replication_resyncs_total"); got < 1 {
		t.Errorf("resyncs_total = %v, want at least 1", got)
	}
	c.waitSettled()
	checkAgree(t, c, shop, "s1", nil)
}

func shopCounter(t testing.TB, n *node.Node, name string) float64 {
	t.Helper()
	v, ok := gauge(t, n.Registry(), name, nil)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return v
}

// TestRestoredShopGetsItsEventsBack: a shop restored from an old backup
// starts a new epoch, pulls back from central its acknowledged events the
// backup lacked, and a till's retry of one of them (appended again in the
// new epoch before they came back) is counted once at central.
func TestRestoredShopGetsItsEventsBack(t *testing.T) {
	c, _ := replCluster(t)
	ctx := context.Background()
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	s := testShops[0]
	px, err := faultproxy.New(c.nodes[1].ReplicationAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rc := shopReplication([]string{px.URL()}, s.token)
	n := startShopNode(t, s, t.TempDir(), rc)
	early := sellAt(t, n.Ledger(), 60)
	waitFor(t, "the first 60 acknowledged", 20*time.Second, func() bool { return caughtUpAt(n) })
	var backup bytes.Buffer
	if err := n.Ledger().Backup(&backup); err != nil {
		t.Fatal(err)
	}
	late := sellAt(t, n.Ledger(), 40) // lost by the restore below
	waitFor(t, "the next 40 acknowledged", 20*time.Second, func() bool { return caughtUpAt(n) })
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := ledger.Restore(dir, &backup, 1000); err != nil {
		t.Fatal(err)
	}
	px.Cut()
	n2 := startShopNode(t, s, dir, rc)
	l := n2.Ledger()
	retry := late[10]
	retry.Epoch, retry.Seq, retry.HLC, retry.Postings = 0, 0, 0, nil
	if _, created, err := l.Append(ctx, retry); err != nil || !created {
		t.Fatalf("till retry after the restore: created %v, %v", created, err)
	}
	px.Heal()
	waitFor(t, "the lost events back at the shop", 20*time.Second, func() bool {
		for _, ev := range late {
			if _, err := l.Event("s1", ev.ID); err != nil {
				return false
			}
		}
		return true
	})
	waitFor(t, "the new epoch acknowledged", 20*time.Second, func() bool { return caughtUpAt(n2) })
	c.waitSettled()
	for _, cn := range c.nodes {
		count := map[storeline.EventID]int{}
		for _, ev := range centralJournal(t, cn, "s1") {
			count[ev.ID]++
		}
		for _, ev := range append(early, late...) {
			if count[ev.ID] != 1 {
				t.Errorf("%s holds %s %d times, want 1", cn.ID(), ev.ID, count[ev.ID])
			}
		}
		if len(count) != len(early)+len(late) {
			t.Errorf("%s holds %d events of s1, want %d", cn.ID(), len(count), len(early)+len(late))
		}
		st, err := cn.ShopStats("s1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Duplicates != 1 || st.Acked != (replication.Position{Epoch: 1000, Seq: 1}) {
			t.Errorf("%s stats %+v, want the retry counted as 1 duplicate and 1000/1 acknowledged", cn.ID(), st)
		}
	}
	// The retry counted once at the shop too: every balance agrees.
	bs, err := l.Balances("")
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, b := range bs {
		if accountOf(b.Account) != "s1" {
			continue
		}
		compared++
		for _, cn := range c.nodes {
			got, err := cn.Balance(b.Account, b.Asset)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(b.Amount) {
				t.Errorf("%s: balance %s %s = %s, the restored shop has %s", cn.ID(), b.Account, b.Asset, got, b.Amount)
			}
		}
	}
	if compared == 0 {
		t.Fatal("no balances compared")
	}
}

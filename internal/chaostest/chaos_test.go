package chaostest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/proctest"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

var (
	flagShopKills     = flag.Int("chaos.shop-kills", 3, "SIGKILLs of a shop node")
	flagLeaderKills   = flag.Int("chaos.leader-kills", 2, "SIGKILLs of the central leader")
	flagFollowerKills = flag.Int("chaos.follower-kills", 1, "SIGKILLs of a central follower")
	flagSeed          = flag.Uint64("chaos.seed", 0, "seed of the kill schedule and the receipts (0: from the clock)")
	flagTills         = flag.Int("chaos.tills", 2, "tills posting receipts at each shop")
	flagMaxAcks       = flag.Int("chaos.max-acks", 40, "most receipts acknowledged between two kills (the gap is drawn from [1, max])")
)

// member is one central node or shop: its spec and its current process.
type member struct {
	sp   spec
	runs int
	cur  *proctest.Proc
}

func (m *member) restart(t *testing.T) {
	t.Helper()
	m.runs++
	m.cur = start(t, m.sp, m.runs)
}

// ack is the position a till was told its receipt is at.
type ack struct{ epoch, seq uint64 }

type chaos struct {
	t        *testing.T
	client   *http.Client
	centrals []*member
	shops    []*member

	mu     sync.Mutex
	acked  map[storeline.StoreID]map[storeline.EventID]ack
	nAcked atomic.Int64
	// nLate counts receipts first acknowledged by a retry (200, not 201):
	// the shop committed them but was killed before it answered.
	nLate atomic.Int64
	// refused counts 4xx answers other than 429: each is a test failure.
	refused atomic.Int64

	// What check read, for tests that check more of it.
	shopStates, centralStates []replicaState
}

// TestChaos runs a 3-node central cluster and two shops as processes,
// tills posting receipts at both shops, and SIGKILLs shops, the central
// leader and central followers at random moments, restarting each. It
// then checks that every acknowledged receipt is at its shop and at every
// central node exactly once, at the position the till was told, that the
// shops' balances equal central's, that central's nodes agree, and that
// every asset sums to zero everywhere.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the kill schedule with -chaos.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	c := &chaos{t: t, client: &http.Client{Timeout: 10 * time.Second}, acked: map[storeline.StoreID]map[storeline.EventID]ack{}}
	root := t.TempDir()
	// On a failure, every process's log tail (it runs before the
	// directory is removed: cleanups run last registered first).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range append(append([]*member{}, c.centrals...), c.shops...) {
			if m.cur != nil {
				t.Logf("log of %s (run %d):\n%s", m.sp.ID, m.runs, m.cur.LogTail())
			}
		}
	})
	c.startCentrals(root)
	c.startShops(root)

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// On a failure, too, the tills stop before the test ends (they report
	// through t).
	defer func() { stopLoad(); wg.Wait() }()
	for i, s := range c.shops {
		for w := range *flagTills {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.till(ctx, s, rand.New(rand.NewPCG(seed, uint64(100*i+w))))
			}()
		}
	}

	var plan []string
	for range *flagShopKills {
		plan = append(plan, "shop")
	}
	for range *flagLeaderKills {
		plan = append(plan, "leader")
	}
	for range *flagFollowerKills {
		plan = append(plan, "follower")
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	kills := map[string]int{}
	var failover []time.Duration
	for k, what := range plan {
		c.waitAcks(c.nAcked.Load() + 1 + rng.Int64N(int64(*flagMaxAcks)))
		<-time.After(time.Duration(rng.IntN(2000)) * time.Microsecond) // a random moment within commits and pushes
		switch what {
		case "shop":
			s := c.shops[rng.IntN(len(c.shops))]
			s.cur.Kill()
			s.restart(t)
		case "leader":
			l := c.leader()
			l.cur.Kill()
			t0 := time.Now()
			c.waitNewLeader(l)
			failover = append(failover, time.Since(t0))
			l.restart(t)
			c.waitCentralsHealthy()
		case "follower":
			var fs []*member
			l := c.leader()
			for _, m := range c.centrals {
				if m != l {
					fs = append(fs, m)
				}
			}
			f := fs[rng.IntN(len(fs))]
			f.cur.Kill()
			f.restart(t)
			c.waitCentralsHealthy()
		}
		kills[what]++
		t.Logf("kill %d/%d (%s): %d receipts acknowledged so far", k+1, len(plan), what, c.nAcked.Load())
		if t.Failed() {
			break
		}
	}
	// Traffic on the last restarts, then drain.
	c.waitAcks(c.nAcked.Load() + int64(*flagMaxAcks))
	stopLoad()
	wg.Wait()
	if n := c.refused.Load(); n > 0 {
		t.Fatalf("%d receipts refused with a 4xx", n)
	}
	c.waitDrained()
	for _, m := range append(append([]*member{}, c.shops...), c.centrals...) {
		m.cur.Stop(t)
	}
	lost, dups := c.check()
	maxFail := time.Duration(0)
	for _, d := range failover {
		maxFail = max(maxFail, d)
	}
	t.Logf("seed %d: kills shop %d, central leader %d, central follower %d; %d receipts acknowledged (%d first by a retry after a kill), %d lost, %d duplicated; slowest new leader %v",
		seed, kills["shop"], kills["leader"], kills["follower"], c.nAcked.Load(), c.nLate.Load(), lost, dups, maxFail.Round(time.Millisecond))
}

func (c *chaos) startCentrals(root string) {
	t := c.t
	addrs := proctest.FreeAddrs(t, 15)
	for i := range 3 {
		a := addrs[5*i : 5*i+5]
		c.centrals = append(c.centrals, &member{sp: spec{
			Role: "central", ID: fmt.Sprintf("c%d", i+1), Dir: filepath.Join(root, fmt.Sprintf("c%d", i+1), "data"),
			Raft: a[0], API: a[1], Admin: a[2], Gossip: a[3], Repl: a[4],
		}})
	}
	for i, m := range c.centrals {
		if i == 0 {
			m.sp.Bootstrap, m.sp.SeedMaster = true, true
		} else {
			m.sp.Seeds = []string{c.centrals[0].sp.Gossip}
		}
		mkdir(t, filepath.Dir(m.sp.Dir))
		m.cur = start(t, m.sp, 0)
	}
	// Restarts join through whichever other node is up.
	for i, m := range c.centrals {
		m.sp.SeedMaster = false
		m.sp.Seeds = nil
		for j, o := range c.centrals {
			if j != i {
				m.sp.Seeds = append(m.sp.Seeds, o.sp.Gossip)
			}
		}
	}
	proctest.WaitFor(t, "3 healthy central nodes", time.Minute, func() error {
		l := c.leaderOrNil()
		if l == nil {
			return proctest.ErrNotYet
		}
		var cl struct {
			Members []struct {
				Suffrage string `json:"suffrage"`
			} `json:"members"`
		}
		if err := c.get("http://"+l.sp.API+"/v1/cluster", adminKey, &cl); err != nil {
			return err
		}
		v := 0
		for _, m := range cl.Members {
			if m.Suffrage == "Voter" {
				v++
			}
		}
		if v != 3 {
			return fmt.Errorf("%d voters", v)
		}
		return nil
	})
	c.waitCentralsHealthy()
}

func (c *chaos) startShops(root string) {
	var repl []string
	for _, m := range c.centrals {
		repl = append(repl, "http://"+m.sp.Repl)
	}
	c.startShopsWith(root, func(sp *spec) { sp.Central = repl })
}

// startShopsWith starts the shops, each with its spec set by set (its
// replication URLs at least), and waits until each has pulled the master
// data.
func (c *chaos) startShopsWith(root string, set func(*spec)) {
	t := c.t
	addrs := proctest.FreeAddrs(t, 2*len(shopNames))
	for i, s := range shopNames {
		m := &member{sp: spec{Role: "shop", ID: string(s), Dir: filepath.Join(root, string(s), "data"),
			Till: addrs[2*i], ShopAdmin: addrs[2*i+1]}}
		set(&m.sp)
		mkdir(t, filepath.Dir(m.sp.Dir))
		m.cur = start(t, m.sp, 0)
		c.shops = append(c.shops, m)
		c.acked[s] = map[storeline.EventID]ack{}
	}
	// The master data reaches the tills through replication.
	for _, m := range c.shops {
		proctest.WaitFor(t, m.sp.ID+" to pull the master data", time.Minute, func() error {
			var sellers struct {
				Sellers []json.RawMessage `json:"sellers"`
			}
			if err := c.get(fmt.Sprintf("http://%s/v1/items/sku%d", m.sp.Till, items-1), termToken(storeline.StoreID(m.sp.ID)), nil); err != nil {
				return err
			}
			if err := c.get("http://"+m.sp.Till+"/v1/sellers", termToken(storeline.StoreID(m.sp.ID)), &sellers); err != nil {
				return err
			}
			if len(sellers.Sellers) == 0 {
				return fmt.Errorf("no sellers yet")
			}
			return nil
		})
	}
}

// get GETs url with a bearer token and decodes a 200 answer into out.
func (c *chaos) get(url, token string, out any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// health is a central node's /healthz answer (200 once it knows a leader).
type health struct {
	State   string `json:"state"`
	Leader  string `json:"leader"`
	Applied uint64 `json:"applied_index"`
}

func (c *chaos) health(m *member) (health, error) {
	var h health
	if m.cur.Exited() {
		return h, fmt.Errorf("%s is down", m.sp.ID)
	}
	err := c.get("http://"+m.sp.Admin+"/healthz", "", &h)
	return h, err
}

func (c *chaos) leaderOrNil() *member {
	for _, m := range c.centrals {
		if h, err := c.health(m); err == nil && h.State == "Leader" {
			return m
		}
	}
	return nil
}

func (c *chaos) leader() *member {
	c.t.Helper()
	var l *member
	proctest.WaitFor(c.t, "a central leader", time.Minute, func() error {
		if l = c.leaderOrNil(); l == nil {
			return proctest.ErrNotYet
		}
		return nil
	})
	return l
}

// waitNewLeader waits until a node other than old leads.
func (c *chaos) waitNewLeader(old *member) {
	c.t.Helper()
	proctest.WaitFor(c.t, "a new central leader", time.Minute, func() error {
		if l := c.leaderOrNil(); l != nil && l != old {
			return nil
		}
		return proctest.ErrNotYet
	})
}

// waitCentralsHealthy waits until every central node knows the leader
// and has applied what the leader had applied when the wait began, so
// the next kill never takes the cluster below a quorum of caught-up nodes.
func (c *chaos) waitCentralsHealthy() {
	c.t.Helper()
	l := c.leader()
	var target uint64
	proctest.WaitFor(c.t, "the leader's applied index", time.Minute, func() error {
		h, err := c.health(l)
		target = h.Applied
		return err
	})
	proctest.WaitFor(c.t, "every central node healthy and caught up", 2*time.Minute, func() error {
		for _, m := range c.centrals {
			h, err := c.health(m)
			if err != nil {
				return err
			}
			if h.Applied < target {
				return fmt.Errorf("%s applied %d < %d", m.sp.ID, h.Applied, target)
			}
		}
		return nil
	})
}

func (c *chaos) waitAcks(target int64) {
	c.t.Helper()
	proctest.WaitFor(c.t, fmt.Sprintf("%d acknowledged receipts", target), 2*time.Minute, func() error {
		if n := c.nAcked.Load(); n < target {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
}

// receiptJSON is the body of POST /v1/receipts (posbridge/openapi.yaml).
type receiptJSON struct {
	ID         storeline.EventID    `json:"id"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Shift      storeline.ShiftID    `json:"shift"`
	Seller     storeline.SellerID   `json:"seller"`
	OccurredAt time.Time            `json:"occurred_at"`
	Lines      []lineJSON           `json:"lines"`
	Payments   []paymentJSON        `json:"payments"`
}

type lineJSON struct {
	SKU   string `json:"sku"`
	Qty   string `json:"qty"`
	Price string `json:"price"`
}

type paymentJSON struct {
	Method storeline.PayMethod `json:"method"`
	Amount string              `json:"amount"`
}

type eventHead struct {
	ID    storeline.EventID `json:"id"`
	Seq   uint64            `json:"seq"`
	Epoch uint64            `json:"epoch"`
}

// newReceipt draws a receipt of one to three lines paid in cash.
func newReceipt(rng *rand.Rand) []byte { return newReceiptOf(rng, 1+rng.IntN(3)) }

func newReceiptOf(rng *rand.Rand, lines int) []byte {
	r := receiptJSON{ID: storeline.NewEventID(), Terminal: termID, Shift: "shift-1", Seller: sellerID, OccurredAt: time.Now().UTC()}
	total := decimal.Zero
	for range lines {
		i := rng.IntN(items)
		qty := decimal.NewFromInt(int64(1 + rng.IntN(3)))
		r.Lines = append(r.Lines, lineJSON{SKU: fmt.Sprintf("sku%d", i), Qty: qty.String(), Price: itemPrice(i).StringFixed(2)})
		total = total.Add(qty.Mul(itemPrice(i)))
	}
	r.Payments = []paymentJSON{{Method: storeline.Cash, Amount: total.StringFixed(2)}}
	b, _ := json.Marshal(r)
	return b
}

// till posts receipts to shop s until ctx ends, retrying each with the
// same ID until it is acknowledged, as a real till does.
func (c *chaos) till(ctx context.Context, s *member, rng *rand.Rand) {
	for ctx.Err() == nil {
		if !c.postAcked(ctx, s, newReceipt(rng)) {
			return
		}
	}
}

// postAcked posts a receipt to shop s until it is answered 2xx, retrying
// the same body (so the same ID) while the shop is down or restarting,
// and records the acknowledgment. It returns false if ctx ended first or
// the receipt was refused with a 4xx (a test failure).
func (c *chaos) postAcked(ctx context.Context, s *member, body []byte) bool {
	store := storeline.StoreID(s.sp.ID)
	url := "http://" + s.sp.Till + "/v1/receipts" // a restart binds the same address
	for ctx.Err() == nil {
		head, status, err := c.post(ctx, url, termToken(store), body)
		if err == nil && status/100 == 2 {
			c.mu.Lock()
			prev, seen := c.acked[store][head.ID]
			c.acked[store][head.ID] = ack{head.Epoch, head.Seq}
			c.mu.Unlock()
			if seen && prev != (ack{head.Epoch, head.Seq}) {
				c.t.Errorf("%s: receipt %s acknowledged at %d/%d, then at %d/%d", store, head.ID, prev.epoch, prev.seq, head.Epoch, head.Seq)
			}
			c.nAcked.Add(1)
			if status == http.StatusOK && !seen {
				c.nLate.Add(1)
			}
			return true
		}
		if err == nil && status/100 == 4 && status != http.StatusTooManyRequests {
			c.t.Errorf("%s: receipt refused: %d %s", store, status, body)
			c.refused.Add(1)
			return false
		}
		select { // the shop is down or restarting: retry the same receipt
		case <-ctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
	}
	return false
}

func (c *chaos) post(ctx context.Context, url, token string, body []byte) (eventHead, int, error) {
	var head eventHead
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return head, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return head, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return head, resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 {
		err = json.Unmarshal(b, &head)
	}
	return head, resp.StatusCode, err
}

// waitingAt reads a shop's storeline_replication_events_waiting gauge.
func (c *chaos) waitingAt(s *member) (float64, error) {
	resp, err := c.client.Get("http://" + s.sp.ShopAdmin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "storeline_replication_events_waiting "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no storeline_replication_events_waiting", s.sp.ID)
}

// waitDrained waits until no shop has events central has not
// acknowledged (twice in a row, a push interval apart) and every central
// node has applied what the leader has.
func (c *chaos) waitDrained() {
	c.t.Helper()
	zero := 0
	proctest.WaitFor(c.t, "the shops' backlogs acknowledged", 3*time.Minute, func() error {
		for _, s := range c.shops {
			w, err := c.waitingAt(s)
			if err != nil {
				zero = 0
				return err
			}
			if w != 0 {
				zero = 0
				return fmt.Errorf("%s: %v events waiting", s.sp.ID, w)
			}
		}
		if zero++; zero < 10 {
			return proctest.ErrNotYet
		}
		return nil
	})
	c.waitCentralsHealthy()
	proctest.WaitFor(c.t, "every central node at the same applied index", time.Minute, func() error {
		var idx []uint64
		for _, m := range c.centrals {
			h, err := c.health(m)
			if err != nil {
				return err
			}
			idx = append(idx, h.Applied)
		}
		for _, i := range idx[1:] {
			if i != idx[0] {
				return fmt.Errorf("applied indexes %v", idx)
			}
		}
		return nil
	})
}

// replicaState is what one replica holds of the shops: each shop's own
// events in order and every balance.
type replicaState struct {
	name     string
	events   map[storeline.StoreID][]storeline.Event
	balances map[string]decimal.Decimal // "account asset"
	rejected uint64
}

// check reopens every stopped process's data in this process and compares
// them. It returns the acknowledged receipts lost and duplicated (summed
// over every replica).
func (c *chaos) check() (lost, dups int) {
	t := c.t
	log := slog.New(slog.DiscardHandler)
	var shops []replicaState
	for _, m := range c.shops {
		cfg := shopConfig(m.sp)
		cfg.Replication = node.ReplicationConfig{}
		cfg.Terminals = nil
		n, err := node.New(cfg, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		st := replicaState{name: m.sp.ID, events: map[storeline.StoreID][]storeline.Event{}, balances: map[string]decimal.Decimal{}}
		store := storeline.StoreID(m.sp.ID)
		from := ledger.Position{}
		for {
			evs, err := n.Ledger().Journal(store, from, ledger.MaxJournalLimit)
			if err != nil {
				t.Fatal(err)
			}
			st.events[store] = append(st.events[store], evs...)
			if len(evs) < ledger.MaxJournalLimit {
				break
			}
			last := evs[len(evs)-1]
			from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
		}
		bs, err := n.Ledger().Balances("")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			st.balances[b.Account+" "+string(b.Asset)] = b.Amount
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		shops = append(shops, st)
	}
	var centrals []replicaState
	for _, m := range c.centrals {
		sp := m.sp
		sp.Seeds, sp.Bootstrap = nil, false
		n, err := central.Open(centralConfig(sp, log))
		if err != nil {
			t.Fatal(err)
		}
		st := replicaState{name: m.sp.ID, events: map[storeline.StoreID][]storeline.Event{}, balances: map[string]decimal.Decimal{}}
		for _, s := range shopNames {
			if err := n.ScanEvents(s, func(ev storeline.Event) bool { st.events[s] = append(st.events[s], ev); return true }); err != nil {
				t.Fatal(err)
			}
			ss, err := n.ShopStats(s)
			if err != nil {
				t.Fatal(err)
			}
			st.rejected += ss.Rejections
		}
		bs, err := n.Balances("")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			st.balances[b.Account+" "+string(b.Asset)] = b.Amount
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		centrals = append(centrals, st)
	}

	c.shopStates, c.centralStates = shops, centrals
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range shopNames {
		acked := c.acked[s]
		// Every acknowledged receipt at the shop once, where the till was
		// told, and at every central node once.
		for _, st := range append([]replicaState{shops[i]}, centrals...) {
			at := map[storeline.EventID][]ack{}
			for _, ev := range st.events[s] {
				at[ev.ID] = append(at[ev.ID], ack{ev.Epoch, ev.Seq})
			}
			for id, a := range acked {
				switch got := at[id]; {
				case len(got) == 0:
					lost++
					if lost <= 10 {
						t.Errorf("%s: acknowledged receipt %s of %s (at %d/%d) missing", st.name, id, s, a.epoch, a.seq)
					}
				case len(got) > 1:
					dups += len(got) - 1
					t.Errorf("%s: receipt %s of %s held %d times", st.name, id, s, len(got))
				case got[0] != a:
					t.Errorf("%s: receipt %s of %s acknowledged at %d/%d, held at %d/%d", st.name, id, s, a.epoch, a.seq, got[0].epoch, got[0].seq)
				}
			}
			for id, got := range at {
				if len(got) > 1 {
					if _, ok := acked[id]; !ok {
						dups += len(got) - 1
						t.Errorf("%s: event %s of %s held %d times", st.name, id, s, len(got))
					}
				}
			}
		}
		// Central holds exactly the shop's journal, event for event.
		want := shops[i].events[s]
		for _, st := range centrals {
			got := st.events[s]
			if len(got) != len(want) {
				t.Errorf("%s holds %d events of %s, the shop %d", st.name, len(got), s, len(want))
			}
			for k := range min(len(got), len(want)) {
				if got[k].ID != want[k].ID || got[k].Epoch != want[k].Epoch || got[k].Seq != want[k].Seq {
					t.Errorf("%s: event %d of %s is %s at %d/%d, the shop's %s at %d/%d", st.name, k, s,
						got[k].ID, got[k].Epoch, got[k].Seq, want[k].ID, want[k].Epoch, want[k].Seq)
					break
				}
			}
		}
		// The shop's balances of its own accounts equal every central
		// node's.
		compared := 0
		for k, v := range shops[i].balances {
			if accountOf(strings.SplitN(k, " ", 2)[0]) != s {
				continue
			}
			compared++
			for _, st := range centrals {
				if !st.balances[k].Equal(v) {
					t.Errorf("%s: balance %s = %s, shop %s has %s", st.name, k, st.balances[k], s, v)
				}
			}
		}
		if compared == 0 {
			t.Errorf("shop %s has no balances to compare", s)
		}
	}
	for _, st := range centrals {
		if st.rejected != 0 {
			t.Errorf("%s rejected %d events: the checks above assume none", st.name, st.rejected)
		}
		// The central nodes agree on every balance, not only the shops'.
		if len(st.balances) != len(centrals[0].balances) {
			t.Errorf("%s has %d balances, %s %d", st.name, len(st.balances), centrals[0].name, len(centrals[0].balances))
		}
		for k, v := range centrals[0].balances {
			if !st.balances[k].Equal(v) {
				t.Errorf("%s: balance %s = %s, %s has %s", st.name, k, st.balances[k], centrals[0].name, v)
			}
		}
	}
	// Conservation: every asset sums to zero at every replica.
	for _, st := range append(shops, centrals...) {
		sum := map[string]decimal.Decimal{}
		for k, v := range st.balances {
			asset := strings.SplitN(k, " ", 2)[1]
			sum[asset] = sum[asset].Add(v)
		}
		for asset, v := range sum {
			if !v.IsZero() {
				t.Errorf("%s: asset %s sums to %s, not 0", st.name, asset, v)
			}
		}
	}
	return lost, dups
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

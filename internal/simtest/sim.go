package simtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/testaddr"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// Config is one simulated run.
type Config struct {
	Seed uint64
	// Dir holds every node's data. Required.
	Dir string
	// Shops is how many shop nodes run (1 to 5).
	Shops int
	// Steps is how many scheduled actions the seed draws.
	Steps int
	// Items is the catalogue's size.
	Items int
	// Converge bounds the wait for convergence after healing.
	Converge time.Duration
	// Logger receives the nodes' logs (nil: discarded).
	Logger *slog.Logger
}

// Fault kinds, counted per run.
const (
	FaultCut            = "cut"
	FaultHeal           = "heal"
	FaultDelay          = "delay"
	FaultSever          = "sever"
	FaultDuplicate      = "duplicate"
	FaultShopRestart    = "shop-restart"
	FaultLeaderRestart  = "leader-restart"
	FaultFollowerStop   = "follower-restart"
	FaultPriceChange    = "price-change"
	FaultClockSkewShops = "skewed-shops"
	FaultClockJump      = "clock-reset-at-restart"
	FaultTillRetry      = "till-retry"
	FaultRejected       = "rejected-sale"
	FaultResend         = "resent-batch"
	FaultItemChange     = "item-change"
	FaultCustomerChange = "customer-change"
	// FaultHold arms the shop's reorderer: its next request is held until
	// later ones were answered; FaultReorder counts those central saw
	// after later requests, FaultReorderInOrder those released at healing
	// with none after them, FaultReorderLost those the link lost when
	// finally sent, FaultHoldUnused the arms no request came for before
	// the next arm or healing.
	FaultHold           = "held-request"
	FaultReorder        = "reordered"
	FaultReorderInOrder = "held-released-in-order"
	FaultReorderLost    = "held-lost"
	FaultHoldUnused     = "held-none-came"
	FaultPreGrant       = "points-pre-grant"
	FaultLoyaltySweep   = "loyalty-sweep"
	FaultDoubleSale     = "double-sold-serial"
	// The journal's retention's kinds are in retention.go.
)

// Result is what a run did and found.
type Result struct {
	Seed     uint64
	Faults   map[string]int
	Acked    int // events acknowledged by the shops' ledgers
	Checked  int // acknowledged events found exactly once at a replica, summed over replicas
	Losses   int // acknowledged events missing at a replica
	Dups     int // acknowledged events held more than once at a replica
	Converge time.Duration
	// Events counts acknowledged facts per kind (and loyalty-receipt,
	// receipts that carried a loyalty card); ShiftsClosed the Z reports
	// checked against the till's own count.
	Events       map[string]int
	ShiftsClosed int
	// Loyalty: points the tills were told receipts earned, paid with
	// points (PointsSpentCut of them while the simulation had the shop cut
	// off), payments with points the node refused, and rights head office
	// pre-granted to shops.
	PointsEarned, PointsSpent, PointsSpentCut, PointsGranted int64
	// PointsNetted is what the loyalty sweeps netted against debts.
	PointsNetted  int64
	PointsRefused int
	// DoubleSales is the serials central listed as sold twice.
	DoubleSales int
	// Pruned is the own events the shops' journal retention removed.
	Pruned int
	// Spent is the wall time per action kind of the schedule.
	Spent map[string]time.Duration
	// Setup is the time to start the chain, Play the schedule's.
	Setup, Play time.Duration
	Problems    []string
}

// OK reports whether the closing checks found nothing.
func (r Result) OK() bool { return len(r.Problems) == 0 }

// Summary is the run on one line, with the fault counts.
func (r Result) Summary() string {
	kinds := make([]string, 0, len(r.Faults))
	for k, v := range r.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("seed %d: acked %d, checked %d, losses %d, dups %d, Z reports %d, points earned %d spent %d (%d cut off) refused %d, double sales %d, pruned %d, converged in %s (setup %s, schedule %s); faults %s",
		r.Seed, r.Acked, r.Checked, r.Losses, r.Dups, r.ShiftsClosed, r.PointsEarned, r.PointsSpent, r.PointsSpentCut, r.PointsRefused,
		r.DoubleSales, r.Pruned, r.Converge.Round(time.Millisecond), r.Setup.Round(time.Millisecond), r.Play.Round(time.Millisecond), strings.Join(kinds, " "))
}

const (
	clusterSecret = "simtest-cluster-secret-0123456789"
	adminToken    = "simtest-shop-admin-token-0123456789"
	termToken     = "simtest-till-token-0123456789"
)

type centralSlot struct {
	cfg  central.Config
	node *central.Node // nil while stopped
}

type shop struct {
	id      storeline.StoreID
	cfg     node.Config
	node    *node.Node
	proxies []*faultproxy.Proxy
	reorder *reorderer
	cut     bool          // the schedule cut its links and has not healed them
	skew    time.Duration // the shop's clock: its HLC and its till's occurred_at
	till    till
	known   map[storeline.ItemID]bool // items added during the run the shop showed
	// sent is every receipt the till was answered 201 for, as it sent it;
	// archive the harness's copies of the own events the shop's journal
	// retention removed, in journal order (retention.go).
	sent    []sentReceipt
	archive []storeline.Event
}

// now is the shop's (skewed) wall clock, as its till and node read it.
func (sh *shop) now() time.Time { return time.Now().Add(sh.skew).UTC().Truncate(time.Millisecond) }

type acked struct {
	shop int
	kind storeline.EventKind
}

type sim struct {
	cfg      Config
	rng      *rand.Rand
	log      *slog.Logger
	centrals []*centralSlot
	shops    []*shop
	acked    map[storeline.EventID]acked
	// rejected holds the acknowledged events central must refuse (a sale
	// of an item head office does not know), as the shop stored them.
	rejected map[storeline.EventID]storeline.Event
	items    []storeline.ItemID // head office's catalogue, in order of creation
	names    map[storeline.ItemID]string
	prices   map[storeline.ItemID]decimal.Decimal
	// customers holds each loyalty customer's name as head office last set
	// it (customer i has card cardCode(i)).
	customers  []string
	registered int
	// earned and spent are the points receipts earned per customer and
	// paid per shop and customer, as the tills were answered; serials the
	// marked item's sales and returns per serial and shop.
	earned  map[storeline.CustomerID]int64
	spent   map[spendKey]int64
	serials map[string]map[storeline.StoreID]*serialCounts
	serialN int
	// pruned holds the shop (index) of every own event a prune removed.
	pruned  map[storeline.EventID]int
	priceAt time.Time // From of the next price change
	res     Result
	begun   time.Time
}

// Run plays the seed's schedule, heals everything, waits for convergence
// and checks. An error means the harness could not run (a node would not
// start); what the checks found is in Result.Problems.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Dir == "" || cfg.Shops < 1 || cfg.Shops > 5 || cfg.Steps < 1 || cfg.Items < 2 || cfg.Converge <= 0 {
		return Result{}, fmt.Errorf("simtest: bad config %+v", cfg)
	}
	s := &sim{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		log:      cfg.Logger,
		acked:    map[storeline.EventID]acked{},
		rejected: map[storeline.EventID]storeline.Event{},
		prices:   map[storeline.ItemID]decimal.Decimal{},
		names:    map[storeline.ItemID]string{},
		earned:   map[storeline.CustomerID]int64{},
		spent:    map[spendKey]int64{},
		serials:  map[string]map[storeline.StoreID]*serialCounts{},
		pruned:   map[storeline.EventID]int{},
		priceAt:  time.Now().UTC().Add(-time.Hour).Truncate(time.Second),
		res:      Result{Seed: cfg.Seed, Faults: map[string]int{}, Events: map[string]int{}, Spent: map[string]time.Duration{}},
		begun:    time.Now(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer s.close()
	if err := s.startCentrals(ctx); err != nil {
		return s.res, err
	}
	if err := s.loadMaster(ctx); err != nil {
		return s.res, err
	}
	for i := range cfg.Shops {
		if err := s.startShop(i); err != nil {
			return s.res, err
		}
	}
	for _, sh := range s.shops {
		if err := s.waitLogin(ctx, sh); err != nil {
			return s.res, err
		}
	}
	s.res.Setup = time.Since(s.begun)
	for step := range cfg.Steps {
		if err := s.step(ctx, step); err != nil {
			return s.res, err
		}
	}
	// Every till closes its shift, so every run checks Z reports.
	for i := range s.shops {
		if err := s.closeShift(ctx, i); err != nil {
			return s.res, err
		}
	}
	s.res.Play = time.Since(s.begun) - s.res.Setup
	if err := s.healAll(ctx); err != nil {
		return s.res, err
	}
	t0 := time.Now()
	err := waitUntil(ctx, cfg.Converge, s.converged)
	s.res.Converge = time.Since(t0)
	if err != nil {
		s.problem("not converged %s after healing: %s", cfg.Converge, s.lag())
		s.check()
		return s.res, nil
	}
	// Every run ends with each shop's acknowledged journal pushed once
	// more, as a shop that lost central's answer would: it must reach
	// central's apply path and change nothing.
	for i := range s.shops {
		if err := s.resend(ctx, i, true); err != nil {
			return s.res, err
		}
	}
	if err := waitUntil(ctx, cfg.Converge, s.converged); err != nil {
		s.problem("not converged %s after the closing resend: %s", cfg.Converge, s.lag())
	}
	s.check()
	return s.res, nil
}

// waitLogin waits until the shop holds the catalogue and its staff (from
// central) and logs its till's sellers in.
func (s *sim) waitLogin(ctx context.Context, sh *shop) error {
	var last error
	err := waitUntil(ctx, s.cfg.Converge, func() bool {
		if s.priceAtShop(sh, s.items[0]) == nil {
			last = errors.New("no catalogue")
			return false
		}
		last = s.login(ctx, sh)
		return last == nil
	})
	if err != nil {
		return fmt.Errorf("simtest: %s never got ready: %w (%v)", sh.id, err, last)
	}
	return nil
}

func (s *sim) problem(format string, args ...any) {
	s.res.Problems = append(s.res.Problems, fmt.Sprintf(format, args...))
}

func (s *sim) centralConfig(i int) central.Config {
	c := central.DefaultConfig(filepath.Join(s.cfg.Dir, fmt.Sprintf("central-%d", i+1)))
	c.NodeID = fmt.Sprintf("central-%d", i+1)
	c.ClusterSecret = clusterSecret
	c.MaxVoters = 3
	// Short enough for a failover well under a second, long enough that
	// -race on a loaded 2-core machine does not start spurious elections.
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 2 * time.Millisecond
	// Central's loyalty sweep (automatic pre-grants, debts netted against
	// later earnings) writes Raft entries on its own timer, after the
	// events it reads have converged, so the end checks could read the
	// central nodes while one has applied a sweep and another not yet.
	// Its timer is off here; the schedule runs sweeps itself, among the
	// faults (grant in loyalty.go), so none lands after convergence.
	c.Loyalty.SweepInterval = 0
	c.ApplyTimeout = 5 * time.Second
	c.ForwardTimeout = 5 * time.Second
	// Gossip only carries membership (who to join, who left); its probes
	// and compressed packets were a third of a run's CPU at 100/20 ms.
	c.ProbeInterval = 250 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 60 * time.Millisecond
	c.ReconcileInterval = 50 * time.Millisecond
	// A restarted node binds the same addresses again, so they come from
	// below the kernel's ephemeral range: a port picked by :0 elsewhere
	// (another seed's chain, another test) cannot take one meanwhile.
	c.RaftAddr, c.APIAddr, c.AdminAddr = freeAddr(false), freeAddr(false), freeAddr(false)
	c.GossipAddr, c.ReplicationAddr = freeAddr(true), freeAddr(false)
	c.ReplicationMaxWait = 300 * time.Millisecond
	c.APIKeys = []central.APIKey{{Name: "simtest-viewer", Hash: storeline.TokenHash(viewerKey), Role: central.RoleViewer}}
	c.ReplicationTokens = map[string]storeline.StoreID{}
	for j := range s.cfg.Shops {
		c.ReplicationTokens[shopToken(j)] = shopID(j)
	}
	c.Logger = s.log.With("central", c.NodeID)
	return c
}

// freeAddr returns a loopback address no one listens on, below the
// ephemeral range so a restart finds it free (testaddr).
func freeAddr(udp bool) string { return testaddr.Stable(udp) }

func shopID(i int) storeline.StoreID { return storeline.StoreID(fmt.Sprintf("s%d", i+1)) }
func shopToken(i int) string         { return fmt.Sprintf("simtest-replication-token-s%d-0123456789", i+1) }

// openCentral opens slot i and pins its addresses, so a restart binds the
// same ones (the shops' proxies and the peers' Raft configuration stay
// valid).
func (s *sim) openCentral(i int) error {
	sl := s.centrals[i]
	n, err := central.Open(sl.cfg)
	if err != nil {
		return fmt.Errorf("simtest: open %s: %w", sl.cfg.NodeID, err)
	}
	sl.cfg.RaftAddr, sl.cfg.APIAddr, sl.cfg.AdminAddr, sl.cfg.GossipAddr = n.RaftAddr(), n.APIAddr(), n.AdminAddr(), n.GossipAddr()
	sl.cfg.ReplicationAddr = n.ReplicationAddr()
	sl.node = n
	return nil
}

func (s *sim) startCentrals(ctx context.Context) error {
	for i := range 3 {
		cc := s.centralConfig(i)
		if i > 0 {
			cc.Bootstrap = false
			cc.Seeds = []string{s.centrals[0].cfg.GossipAddr}
		}
		s.centrals = append(s.centrals, &centralSlot{cfg: cc})
		if err := s.openCentral(i); err != nil {
			return err
		}
		if i == 0 {
			if err := waitUntil(ctx, s.cfg.Converge, func() bool { return s.centrals[0].node.IsLeader() }); err != nil {
				return fmt.Errorf("simtest: central-1 never became leader: %w", err)
			}
		}
	}
	if err := waitUntil(ctx, s.cfg.Converge, func() bool { return s.voters() == 3 }); err != nil {
		return fmt.Errorf("simtest: 3 voters never joined: %w", err)
	}
	return nil
}

func (s *sim) leader() *central.Node {
	for _, sl := range s.centrals {
		if sl.node != nil && sl.node.IsLeader() {
			return sl.node
		}
	}
	return nil
}

func (s *sim) voters() int {
	l := s.leader()
	if l == nil {
		return 0
	}
	_, members, err := l.Cluster(context.Background())
	if err != nil {
		return 0
	}
	v := 0
	for _, m := range members {
		if m.Suffrage == "Voter" && m.Error == "" {
			v++
		}
	}
	return v
}

// putRecords writes master data through the leader, retrying while there
// is none; the key makes a retry apply nothing twice.
func (s *sim) putRecords(ctx context.Context, key string, recs ...storeline.Record) error {
	deadline := time.Now().Add(s.cfg.Converge)
	for {
		l := s.leader()
		var err error
		if l == nil {
			err = storeline.Errorf(storeline.Unavailable, "simtest.put", "no leader")
		} else {
			_, err = l.PutRecords(ctx, key, recs...)
		}
		if err == nil {
			return nil
		}
		if storeline.KindOf(err) != storeline.Unavailable || time.Now().After(deadline) {
			return fmt.Errorf("simtest: put %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *sim) loadMaster(ctx context.Context) error {
	recs := []storeline.Record{
		&storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"},
		&storeline.Group{ID: "g", Name: "Goods"},
	}
	for i := range s.cfg.Shops {
		recs = append(recs, &storeline.Store{ID: shopID(i), Name: "Shop " + string(shopID(i)), TimeZone: "Europe/Riga", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: []storeline.PriceListID{"retail"}})
	}
	for i := range s.cfg.Items {
		recs = append(recs, s.newItem(i)...)
	}
	for _, st := range []struct {
		id, pin string
		role    storeline.Role
	}{{cashierID, cashierPIN, storeline.Cashier}, {managerID, managerPIN, storeline.Manager}} {
		recs = append(recs, &storeline.Seller{ID: storeline.SellerID(st.id), Name: st.id, Role: st.role, PINHash: pinHash(st.pin)})
	}
	for i := range 4 {
		name := fmt.Sprintf("Customer %d", i)
		s.customers = append(s.customers, name)
		recs = append(recs, &storeline.Customer{ID: customerID(i), Name: name},
			&storeline.CardRecord{ID: storeline.CardID(fmt.Sprintf("card%d", i)), Code: cardCode(i), Kind: storeline.LoyaltyCard, Customer: customerID(i)})
	}
	recs = append(recs, loyaltyRecords()...)
	recs = append(recs, &storeline.Price{List: "retail", Item: markedItem, From: s.priceAt, Price: decimal.NewFromInt(5)})
	s.prices[markedItem] = decimal.NewFromInt(5)
	return s.putRecords(ctx, "simtest-master", recs...)
}

// newItem is item i and its price, added to head office's catalogue.
func (s *sim) newItem(i int) []storeline.Record {
	id := itemID(i)
	price := decimal.NewFromInt(int64(100 + i)).Shift(-2)
	s.items = append(s.items, id)
	s.names[id] = fmt.Sprintf("Item %d", i)
	s.prices[id] = price
	return []storeline.Record{
		&storeline.Item{ID: id, SKU: string(id), Name: s.names[id], Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)},
		&storeline.Price{List: "retail", Item: id, From: s.priceAt, Price: price},
	}
}

func customerID(i int) storeline.CustomerID { return storeline.CustomerID(fmt.Sprintf("c%d", i)) }

// pinHash hashes a PIN once per process: PBKDF2 is slow on purpose.
var pinHash = func() func(string) string {
	var mu sync.Mutex
	memo := map[string]string{}
	return func(pin string) string {
		mu.Lock()
		defer mu.Unlock()
		if h, ok := memo[pin]; ok {
			return h
		}
		memo[pin] = storeline.HashPIN(pin, []byte("simtest-pin-salt"))
		return memo[pin]
	}
}()

func itemID(i int) storeline.ItemID { return storeline.ItemID(fmt.Sprintf("i%d", i)) }

func (s *sim) startShop(i int) error {
	sh := &shop{id: shopID(i), known: map[storeline.ItemID]bool{}, reorder: newReorderer()}
	c := node.DefaultConfig()
	c.StoreID = sh.id
	c.DataDir = filepath.Join(s.cfg.Dir, string(sh.id))
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.AdminToken = adminToken
	c.WALSegmentBytes = 8 << 20
	// Small batches and memtables: a run opens many nodes, and a 64 MB
	// memtable's arena is most of a reopen's time.
	c.MaxBatchBytes = 1 << 20
	c.MemTableBytes = 8 << 20
	c.ShutdownTimeout = 5 * time.Second
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: termToken}}
	for _, sl := range s.centrals {
		p, err := faultproxy.New(sl.cfg.ReplicationAddr)
		if err != nil {
			return fmt.Errorf("simtest: proxy for %s: %w", sh.id, err)
		}
		sh.proxies = append(sh.proxies, p)
		l, err := sh.reorder.link(p.URL())
		if err != nil {
			return fmt.Errorf("simtest: reorderer for %s: %w", sh.id, err)
		}
		c.Replication.Central = append(c.Replication.Central, l.URL())
	}
	c.Replication.Token = shopToken(i)
	c.Replication.MaxBatchEvents = 50
	c.Replication.MaxBatchBytes = 256 << 10
	c.Replication.PageItems = 500
	c.Replication.PushInterval = 20 * time.Millisecond
	c.Replication.PollWait = 300 * time.Millisecond
	c.Replication.RequestTimeout = 2 * time.Second
	c.Replication.BackoffMin = 5 * time.Millisecond
	c.Replication.BackoffMax = 200 * time.Millisecond
	// The seed skews most shops' clocks by minutes, either way: the
	// node's HLC and its till's occurred_at read the skewed clock.
	if s.rng.IntN(4) != 0 {
		sh.skew = time.Duration(s.rng.IntN(600)-300) * time.Second
		s.res.Faults[FaultClockSkewShops]++
	}
	c.Clock = func() time.Time { return time.Now().Add(sh.skew) }
	// The rights a shop keeps per customer: none (every earned point goes
	// back to central, so every spend there reserves), or some to spend
	// while cut off.
	c.PointsFloat = []int64{0, 10, 100}[s.rng.IntN(3)]
	sh.cfg = c
	s.shops = append(s.shops, sh)
	return s.openShop(sh)
}

func (s *sim) openShop(sh *shop) error {
	n, err := node.New(sh.cfg, s.log.With("shop", string(sh.id)), nil)
	if err != nil {
		return fmt.Errorf("simtest: shop %s: %w", sh.id, err)
	}
	if err := n.Start(); err != nil {
		return fmt.Errorf("simtest: start shop %s: %w", sh.id, err)
	}
	sh.node = n
	return nil
}

// step draws and plays one action of the schedule.
func (s *sim) step(ctx context.Context, step int) error {
	r := s.rng.IntN(116)
	i := s.rng.IntN(len(s.shops))
	sh := s.shops[i]
	switch step {
	case s.cfg.Steps / 2:
		// Every run has at least one sale central must reject, so even
		// a short run checks that rejections come back down.
		if err := s.sellUnknown(ctx, i); err != nil {
			return err
		}
	case s.cfg.Steps / 3:
		// And at least one request held back while later ones (the
		// pulls never stop) pass, on a link that is up.
		for k := range s.shops {
			if o := s.shops[(i+k)%len(s.shops)]; !o.cut {
				o.reorder.arm(holdPlan{after: 1 + s.rng.IntN(4), lose: s.rng.IntN(2) == 0})
				s.res.Faults[FaultHold]++
				break
			}
		}
	case s.cfg.Steps * 2 / 3:
		// And points earned and spent, and a serial sold at two shops,
		// one of them cut off.
		if err := s.loyaltyAndDoubleSale(ctx); err != nil {
			return err
		}
	case s.cfg.Steps * 3 / 4:
		// And a shop's journal pruned while it sells cut off: what
		// central has not acknowledged must stay.
		if err := s.pruneCutOff(ctx, i); err != nil {
			return err
		}
	}
	kind := ""
	t0 := time.Now()
	defer func() { s.res.Spent[kind] += time.Since(t0) }()
	switch {
	case r < 2:
		kind = "sell-unknown"
		return s.sellUnknown(ctx, i)
	case r < 34:
		kind = "sell"
		return s.sell(ctx, i)
	case r < 41:
		kind = "return"
		return s.giveBack(ctx, i)
	case r < 46:
		kind = "cash"
		return s.cash(ctx, i)
	case r < 49:
		kind = "draft"
		return s.draft(ctx, i)
	case r < 51:
		kind = "register"
		return s.register(ctx, i)
	case r < 54:
		kind = "shift-close"
		return s.closeShift(ctx, i)
	case r < 62:
		kind = "points-spend"
		return s.spend(ctx, i)
	case r < 66:
		kind = "marked-sale"
		return s.marked(ctx, i)
	case r < 68:
		kind = FaultPreGrant
		return s.grant(ctx, step)
	case r < 72:
		kind = FaultPriceChange
		return s.changePrice(ctx, step)
	case r < 74:
		kind = FaultItemChange
		return s.changeItem(ctx, step)
	case r < 76:
		kind = FaultCustomerChange
		return s.changeCustomer(ctx, step)
	case r < 81:
		kind = FaultCut
		s.cut(i)
		return nil
	case r < 86:
		kind = FaultHeal
		for _, p := range sh.proxies {
			p.Heal()
		}
		sh.cut = false
	case r < 89:
		kind = FaultDelay
		d := time.Duration(s.rng.IntN(30)) * time.Millisecond
		sh.proxies[s.rng.IntN(len(sh.proxies))].SetDelay(d)
	case r < 92:
		kind = FaultSever
		sh.proxies[s.rng.IntN(len(sh.proxies))].SeverAfter(int64(1 + s.rng.IntN(8<<10)))
	case r < 96:
		kind = FaultDuplicate
		sh.proxies[s.rng.IntN(len(sh.proxies))].Duplicate(true, time.Duration(s.rng.IntN(5))*time.Millisecond)
	case r < 101:
		kind = FaultHold
		s.hold(sh)
		return nil
	case r < 105:
		kind = FaultResend
		return s.resend(ctx, i, false)
	case r < 108:
		kind = FaultShopRestart
		s.res.Faults[kind]++
		t1 := time.Now()
		if err := sh.node.Stop(); err != nil {
			return fmt.Errorf("simtest: stop %s: %w", sh.id, err)
		}
		t2 := time.Now()
		s.res.Spent["shop-stop"] += t2.Sub(t1)
		if s.rng.IntN(2) == 0 {
			// The shop's clock was set again while it was down, maybe
			// back by minutes: its HLC must still not go backwards.
			sh.skew = time.Duration(s.rng.IntN(600)-300) * time.Second
			s.res.Faults[FaultClockJump]++
		}
		if err := s.openShop(sh); err != nil {
			return err
		}
		t3 := time.Now()
		s.res.Spent["shop-open"] += t3.Sub(t2)
		defer func() { s.res.Spent["shop-login"] += time.Since(t3) }()
		// The node forgot its sessions; the till logs in again.
		return s.login(ctx, sh)
	case r < 112:
		kind = "central-restart"
		return s.restartCentral(ctx, s.rng.IntN(2) == 0)
	case r < 114:
		kind = FaultPrune
		return s.prune(ctx, i)
	default:
		kind = FaultRetryOld
		return s.retryOld(ctx, i)
	}
	s.res.Faults[kind]++
	return nil
}

// cut cuts shop i off from every central node.
func (s *sim) cut(i int) {
	sh := s.shops[i]
	for _, p := range sh.proxies {
		p.Cut()
	}
	sh.cut = true
	s.res.Faults[FaultCut]++
}

// hold arms the shop's reorderer: its next request (any, a push, a pull
// or a loyalty call, as drawn) is held until 1 to 4 later ones were
// answered, the shop waiting for its answer or (half the time) losing it
// at once.
func (s *sim) hold(sh *shop) {
	paths := []string{"", "/v1/replication/push", "/v1/replication/pull", "/v1/loyalty/"}
	sh.reorder.arm(holdPlan{path: paths[s.rng.IntN(len(paths))], after: 1 + s.rng.IntN(4), lose: s.rng.IntN(2) == 0})
	s.res.Faults[FaultHold]++
}

// appendAt appends an event straight to the shop's ledger: only for the
// sale of an item head office never knew, which no till can ring up
// through the API (the node refuses an unknown SKU) but a shop's own
// local catalogue could have produced.
func (s *sim) appendAt(ctx context.Context, i int, body storeline.Body) error {
	sh := s.shops[i]
	ev := storeline.Event{ID: storeline.NewEventID(), Kind: body.EventKind(), Body: body,
		OccurredAt: sh.now(), BusinessDate: storeline.Date(sh.now().Format("2006-01-02"))}
	stored, _, err := sh.node.Ledger().Append(ctx, ev)
	if err != nil {
		return fmt.Errorf("simtest: append %s at %s: %w", ev.Kind, sh.id, err)
	}
	if ev.Kind == storeline.KindReceipt && s.isGhost(ev) {
		s.rejected[stored.ID] = stored
		s.res.Faults[FaultRejected]++
	}
	s.acked[stored.ID] = acked{shop: i, kind: stored.Kind}
	s.res.Acked++
	s.res.Events[string(stored.Kind)]++
	return nil
}

// sellUnknown sells an item head office does not know: the shop accepts
// it, central rejects it, and the rejection must come back down.
func (s *sim) sellUnknown(ctx context.Context, i int) error {
	price := decimal.NewFromInt(int64(100 + s.rng.IntN(100))).Shift(-2)
	r := &storeline.Receipt{Terminal: tillID, Shift: "local", Seller: cashierID, Currency: "EUR",
		Lines: []storeline.Line{{Item: ghostItem, Dept: "food", Unit: storeline.Piece, Qty: decimal.NewFromInt(1),
			Price: price, VATRate: decimal.NewFromInt(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: price}}}
	return s.appendAt(ctx, i, r)
}

const ghostItem storeline.ItemID = "ghost"

func (s *sim) isGhost(ev storeline.Event) bool {
	r, ok := ev.Body.(*storeline.Receipt)
	return ok && len(r.Lines) == 1 && r.Lines[0].Item == ghostItem
}

func (s *sim) changePrice(ctx context.Context, step int) error {
	id := s.items[s.rng.IntN(len(s.items))]
	price := s.prices[id].Add(decimal.NewFromInt(int64(1 + s.rng.IntN(99))).Shift(-2))
	s.priceAt = s.priceAt.Add(time.Second)
	if err := s.putRecords(ctx, fmt.Sprintf("simtest-price-%d", step),
		&storeline.Price{List: "retail", Item: id, From: s.priceAt, Price: price}); err != nil {
		return err
	}
	s.prices[id] = price
	s.res.Faults[FaultPriceChange]++
	return nil
}

// changeItem renames an item at head office, or adds a new one; the tills
// sell a new item from the next step on (a shop that has not heard of it
// yet refuses the sale: the till sells it only once the shop shows it).
func (s *sim) changeItem(ctx context.Context, step int) error {
	var recs []storeline.Record
	if s.rng.IntN(2) == 0 {
		id := s.items[s.rng.IntN(len(s.items))]
		s.names[id] = fmt.Sprintf("%s renamed at step %d", id, step)
		recs = append(recs, &storeline.Item{ID: id, SKU: string(id), Name: s.names[id], Group: "g", Dept: "food",
			Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)})
	} else {
		recs = s.newItem(len(s.items))
	}
	if err := s.putRecords(ctx, fmt.Sprintf("simtest-item-%d", step), recs...); err != nil {
		return err
	}
	s.res.Faults[FaultItemChange]++
	return nil
}

// changeCustomer renames a loyalty customer at head office.
func (s *sim) changeCustomer(ctx context.Context, step int) error {
	i := s.rng.IntN(len(s.customers))
	s.customers[i] = fmt.Sprintf("Customer %d renamed at step %d", i, step)
	if err := s.putRecords(ctx, fmt.Sprintf("simtest-customer-%d", step),
		&storeline.Customer{ID: customerID(i), Name: s.customers[i]}); err != nil {
		return err
	}
	s.res.Faults[FaultCustomerChange]++
	return nil
}

// restartCentral stops the leader or a follower and opens it again on the
// same directory and addresses, rejoining through the others' gossip.
func (s *sim) restartCentral(ctx context.Context, leader bool) error {
	var victim *centralSlot
	if err := waitUntil(ctx, s.cfg.Converge, func() bool { return s.leader() != nil }); err != nil {
		return fmt.Errorf("simtest: no leader before a restart: %w", err)
	}
	for _, sl := range s.centrals {
		if sl.node.IsLeader() == leader {
			victim = sl
			break
		}
	}
	if victim == nil {
		return nil
	}
	if err := victim.node.Close(); err != nil {
		return fmt.Errorf("simtest: close %s: %w", victim.cfg.NodeID, err)
	}
	victim.node = nil
	if leader {
		s.res.Faults[FaultLeaderRestart]++
	} else {
		s.res.Faults[FaultFollowerStop]++
	}
	victim.cfg.Seeds = nil
	for _, o := range s.centrals {
		if o.node != nil {
			victim.cfg.Seeds = append(victim.cfg.Seeds, o.cfg.GossipAddr)
		}
	}
	for i, sl := range s.centrals {
		if sl == victim {
			if err := s.openCentral(i); err != nil {
				return err
			}
		}
	}
	if err := waitUntil(ctx, s.cfg.Converge, func() bool { return s.voters() == 3 }); err != nil {
		return fmt.Errorf("simtest: %s not back among the voters: %w", victim.cfg.NodeID, err)
	}
	return nil
}

func (s *sim) healAll(ctx context.Context) error {
	for _, sh := range s.shops {
		for _, p := range sh.proxies {
			p.Heal()
			p.SetDelay(0)
			p.SeverAfter(0)
			p.Duplicate(false, 0)
		}
		sh.cut = false
		sh.reorder.release()
		if r := sh.node.Replication(); r != nil {
			r.Nudge()
		}
	}
	return waitUntil(ctx, s.cfg.Converge, func() bool { return s.leader() != nil })
}

func rejectionKey(id storeline.EventID) string {
	return replication.RejectionPrefix + fmt.Sprintf("%x", id[:])
}

func caughtUp(n *node.Node) bool {
	p := n.Ledger().Position()
	return n.Replication().Status().Acked == replication.Position{Epoch: p.Epoch, Seq: p.Seq}
}

// converged holds once central acknowledged every shop's journal, every
// central node applied what the leader has, and every shop shows every
// head-office price.
func (s *sim) converged() bool {
	for _, sh := range s.shops {
		if !caughtUp(sh.node) {
			return false
		}
	}
	for id, ev := range s.rejected {
		if _, ok, _ := s.shops[s.acked[id].shop].node.Ledger().Meta(rejectionKey(ev.ID)); !ok {
			return false
		}
	}
	l := s.leader()
	if l == nil {
		return false
	}
	for _, sl := range s.centrals {
		if sl.node.AppliedIndex() < l.AppliedIndex() {
			return false
		}
	}
	for _, sh := range s.shops {
		if len(s.masterLag(sh)) > 0 || len(s.rightsLag(l, sh)) > 0 {
			return false
		}
	}
	return true
}

// masterLag lists where the shop's tills' API does not show head office's
// master data: an item's name or price, a loyalty card's customer.
func (s *sim) masterLag(sh *shop) []string {
	var out []string
	for _, id := range s.items {
		var it struct {
			Name  string  `json:"name"`
			Price *string `json:"price"`
		}
		ok := s.getJSON(sh, "/v1/items/"+url.PathEscape(string(id)), &it)
		var got decimal.Decimal
		if ok && it.Price != nil {
			got, _ = decimal.NewFromString(*it.Price)
		}
		if !ok || it.Name != s.names[id] || it.Price == nil || !got.Equal(s.prices[id]) {
			out = append(out, fmt.Sprintf("%s shows %s as %q at %v, head office %q at %s", sh.id, id, it.Name, it.Price, s.names[id], s.prices[id]))
			return out // one is enough to wait; the rest once it converged
		}
	}
	for i, want := range s.customers {
		var c struct {
			Customer *struct {
				Name string `json:"name"`
			} `json:"customer"`
		}
		if !s.getJSON(sh, "/v1/cards/"+cardCode(i), &c) || c.Customer == nil || c.Customer.Name != want {
			out = append(out, fmt.Sprintf("%s shows card %s's customer as %+v, head office %q", sh.id, cardCode(i), c.Customer, want))
			return out
		}
	}
	return out
}

// lag names what had not converged.
func (s *sim) lag() string {
	var out []string
	for _, sh := range s.shops {
		if !caughtUp(sh.node) {
			out = append(out, fmt.Sprintf("%s acked %v of %v", sh.id, sh.node.Replication().Status().Acked, sh.node.Ledger().Position()))
		}
		out = append(out, s.masterLag(sh)...)
		if l := s.leader(); l != nil {
			out = append(out, s.rightsLag(l, sh)...)
		}
	}
	for id := range s.rejected {
		sh := s.shops[s.acked[id].shop]
		if _, ok, _ := sh.node.Ledger().Meta(rejectionKey(id)); !ok {
			out = append(out, fmt.Sprintf("%s never learnt central rejected %s", sh.id, id))
		}
	}
	if s.leader() == nil {
		out = append(out, "no central leader")
	}
	return strings.Join(out[:min(len(out), 5)], "; ")
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// priceAtShop reads an item's price through the shop's tills' API.
func (s *sim) priceAtShop(sh *shop, id storeline.ItemID) *decimal.Decimal {
	var body struct {
		Price *string `json:"price"`
	}
	if !s.getJSON(sh, "/v1/items/"+url.PathEscape(string(id)), &body) || body.Price == nil {
		return nil
	}
	d, err := decimal.NewFromString(*body.Price)
	if err != nil {
		return nil
	}
	return &d
}

// check runs the closing checks on the converged chain.
func (s *sim) check() {
	for _, sh := range s.shops {
		sh.reorder.stats(s.res.Faults)
	}
	s.adoptHandbacks()
	s.checkLoyalty()
	s.checkSerials()
	s.checkPruned()
	hlcs := map[storeline.EventID]uint64{}
	for i, sh := range s.shops {
		counts := map[storeline.EventID]int{}
		// A shop's HLC rises with its journal whatever its clock's skew
		// and restarts: the order every replica merges the shop's facts in.
		// Across what its retention pruned too (the harness's copies).
		var prev uint64
		backwards := 0
		if err := scanHistory(sh, func(ev storeline.Event) {
			hlcs[ev.ID] = ev.HLC
			if ev.HLC <= prev {
				backwards++
			}
			prev = ev.HLC
		}); err != nil {
			s.problem("%s: read journal: %v", sh.id, err)
		}
		if backwards > 0 {
			s.problem("%s: %d events with an HLC time not above the one before", sh.id, backwards)
		}
		if err := scanJournal(sh, func(ev storeline.Event) { counts[ev.ID]++ }); err != nil {
			s.problem("%s: read journal: %v", sh.id, err)
		}
		// A pruned event is held once by its stub: its ID stays known.
		for _, ev := range sh.archive {
			if counts[ev.ID] > 0 {
				s.problem("%s: pruned event %s is still in its journal", sh.id, ev.ID)
			}
			if _, err := sh.node.Ledger().Event(sh.id, ev.ID); !errors.Is(err, storeline.ErrPruned) {
				s.problem("%s: pruned event %s reads %v, want its stub (ErrPruned)", sh.id, ev.ID, err)
				continue
			}
			counts[ev.ID]++
		}
		s.compare(string(sh.id), i, counts, false)
		if err := sh.node.Ledger().CheckConservation(); err != nil {
			s.problem("%s: conservation: %v", sh.id, err)
		}
	}
	for _, sl := range s.centrals {
		n := sl.node
		for i, sh := range s.shops {
			counts := map[storeline.EventID]int{}
			moved := 0
			if err := n.ScanEvents(sh.id, func(ev storeline.Event) bool {
				counts[ev.ID]++
				if h, ok := hlcs[ev.ID]; ok && h != ev.HLC {
					moved++
				}
				return true
			}); err != nil {
				s.problem("%s: scan %s: %v", n.ID(), sh.id, err)
			}
			if moved > 0 {
				s.problem("%s: %d events of %s with another HLC time than the shop's", n.ID(), moved, sh.id)
			}
			s.compare(n.ID()+" of "+string(sh.id), i, counts, true)
		}
		bs, err := n.Balances("")
		if err != nil {
			s.problem("%s: balances: %v", n.ID(), err)
			continue
		}
		sums := map[storeline.Asset]decimal.Decimal{}
		byKey := map[string]decimal.Decimal{}
		for _, b := range bs {
			sums[b.Asset] = sums[b.Asset].Add(b.Amount)
			byKey[b.Account+" "+string(b.Asset)] = b.Amount
		}
		for a, v := range sums {
			if !v.IsZero() {
				s.problem("%s: conservation: balances of %s sum to %s", n.ID(), a, v)
			}
		}
		for _, sh := range s.shops {
			own, err := sh.node.Ledger().Balances("")
			if err != nil {
				s.problem("%s: balances: %v", sh.id, err)
				continue
			}
			// Central holds the shop's balances less what it rejected.
			want := map[string]decimal.Decimal{}
			for _, b := range own {
				if accountStore(b.Account) == sh.id {
					want[b.Account+" "+string(b.Asset)] = b.Amount
				}
			}
			for _, ev := range s.rejected {
				if ev.Origin != sh.id {
					continue
				}
				for _, p := range ev.Postings {
					k := p.Account + " " + string(p.Asset)
					want[k] = want[k].Sub(p.Amount)
				}
			}
			bad := 0
			for k, v := range want {
				if !byKey[k].Equal(v) {
					bad++
					if bad <= 3 {
						s.problem("%s: %s is %s, at %s %s", n.ID(), k, byKey[k], sh.id, v)
					}
				}
			}
			for k, v := range byKey {
				if _, ok := want[k]; !ok && accountStore(strings.SplitN(k, " ", 2)[0]) == sh.id && !v.IsZero() {
					bad++
					if bad <= 3 {
						s.problem("%s: %s is %s, at %s 0", n.ID(), k, v, sh.id)
					}
				}
			}
		}
	}
}

// compare checks one replica's copy of shop i's events against what the
// shop acknowledged.
func (s *sim) compare(replica string, i int, counts map[storeline.EventID]int, atCentral bool) {
	lost, dup := 0, 0
	for id, a := range s.acked {
		if a.shop != i {
			continue
		}
		if _, ok := s.rejected[id]; ok && atCentral {
			if counts[id] > 0 {
				s.problem("%s holds %s, which it should have rejected", replica, id)
			}
			continue
		}
		switch counts[id] {
		case 0:
			lost++
		case 1:
			s.res.Checked++
		default:
			dup++
		}
	}
	s.res.Losses += lost
	s.res.Dups += dup
	if lost > 0 || dup > 0 {
		s.problem("%s: %d acknowledged events missing, %d held more than once", replica, lost, dup)
	}
	extra := 0
	for id := range counts {
		if _, ok := s.acked[id]; !ok {
			extra++
		}
	}
	if extra > 0 {
		s.problem("%s: %d events never acknowledged", replica, extra)
	}
}

// scanJournal calls fn for every own event the shop's journal holds:
// from past what its retention pruned (Journal refuses a pruned
// position rather than skip it).
func scanJournal(sh *shop, fn func(storeline.Event)) error {
	l := sh.node.Ledger()
	pruned, err := l.PrunedThrough(sh.id)
	if err != nil {
		return err
	}
	from := ledger.Position{Epoch: pruned.Epoch, Seq: pruned.Seq + 1}
	for {
		evs, err := l.Journal(sh.id, from, ledger.MaxJournalLimit)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			fn(ev)
		}
		if len(evs) < ledger.MaxJournalLimit {
			return nil
		}
		last := evs[len(evs)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

// accountStore returns the store an account belongs to (kind/store/...).
func accountStore(account string) storeline.StoreID {
	parts := strings.SplitN(account, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return storeline.StoreID(parts[1])
}

func (s *sim) close() {
	for _, sh := range s.shops {
		if sh.node != nil {
			sh.node.Stop()
		}
		sh.reorder.close()
		for _, p := range sh.proxies {
			p.Close()
		}
	}
	for _, sl := range s.centrals {
		if sl.node != nil {
			sl.node.Close()
		}
	}
}

// waitUntil polls cond every 10 ms until it holds, ctx ends or d passes.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out")
		case <-t.C:
		}
	}
	return nil
}

// resend pushes an already acknowledged run of shop i's journal straight
// to a central node once more, as a shop whose answer was lost would: it
// must reach central's apply path and apply nothing. must makes a
// harness error of central being unreachable (the closing resend, after
// healing); during the schedule an unreachable central skips it.
func (s *sim) resend(ctx context.Context, i int, must bool) error {
	sh := s.shops[i]
	acked := sh.node.Replication().Status().Acked
	n := 1 + s.rng.IntN(20)
	sl := s.centrals[s.rng.IntN(len(s.centrals))]
	if acked.Seq == 0 {
		return nil
	}
	from := ledger.Position{Epoch: acked.Epoch, Seq: max(1, acked.Seq-uint64(n)+1)}
	// Only what retention left: a pruned event's body is gone.
	pruned, err := sh.node.Ledger().PrunedThrough(sh.id)
	if err != nil {
		return fmt.Errorf("simtest: resend: %w", err)
	}
	if pruned.Epoch == from.Epoch && pruned.Seq >= from.Seq {
		from.Seq = pruned.Seq + 1
	}
	if from.Seq > acked.Seq {
		return nil
	}
	evs, err := sh.node.Ledger().Journal(sh.id, from, n)
	if err != nil {
		return fmt.Errorf("simtest: resend: journal of %s: %w", sh.id, err)
	}
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: string(sh.id), Epoch: acked.Epoch}
	for _, ev := range evs {
		if ev.Epoch != acked.Epoch || ev.Seq > acked.Seq {
			break
		}
		we, err := replication.EventToWire(ev)
		if err != nil {
			return fmt.Errorf("simtest: resend: %w", err)
		}
		req.Events = append(req.Events, we)
	}
	if len(req.Events) == 0 {
		return nil
	}
	body, err := replication.Encode(&req)
	if err != nil {
		return fmt.Errorf("simtest: resend: %w", err)
	}
	var resp replication.PushResponse
	deadline := time.Now().Add(s.cfg.Converge)
	for {
		if sl.node == nil { // stopped: another node
			sl = s.centrals[(slices.Index(s.centrals, sl)+1)%len(s.centrals)]
			continue
		}
		st, b, err := postPush(ctx, "http://"+sl.cfg.ReplicationAddr, shopToken(i), body)
		if err == nil && st == http.StatusOK {
			if err := replication.Decode(b, &resp); err != nil {
				return fmt.Errorf("simtest: resend: answer: %w", err)
			}
			break
		}
		if !must || time.Now().After(deadline) {
			if must {
				return fmt.Errorf("simtest: resend to %s: %d %s %v", sl.cfg.NodeID, st, b, err)
			}
			return nil
		}
		sl = s.centrals[(slices.Index(s.centrals, sl)+1)%len(s.centrals)]
		time.Sleep(20 * time.Millisecond) // backoff while central elects a leader
	}
	s.res.Faults[FaultResend]++
	if resp.Applied != 0 {
		s.problem("%s: a resent batch of %d acknowledged events (%d/%d-%d) was applied again: %d applied",
			sl.cfg.NodeID, len(req.Events), acked.Epoch, req.Events[0].Seq, req.Events[len(req.Events)-1].Seq, resp.Applied)
	}
	if resp.Acked.Less(acked) {
		s.problem("%s: answered a resent batch with mark %v below the shop's acknowledged %v", sl.cfg.NodeID, resp.Acked, acked)
	}
	return nil
}

func postPush(ctx context.Context, base, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/replication/push", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/msgpack")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

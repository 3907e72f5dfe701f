package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/internal/tillsim"
	"github.com/storeline/storeline/node"
)

// Chain is a running chain: central nodes, shops, and the data loaded.
type Chain struct {
	cfg  Config
	log  *slog.Logger
	data *sample.Generated
	// AdminKey is the head-office API's admin key, ViewerKey a read-only
	// one.
	AdminKey, ViewerKey string
	ho                  *hoClient
	hc                  *http.Client
	start               time.Time

	mu       sync.Mutex // guards centrals[i].node and shops' cut flags
	centrals []*centralSlot
	shops    []*Shop

	// last and lastSum are the last Run's tills' facts and summary, which
	// its closing check compared (the tests check again with a fault
	// planted).
	last    *facts
	lastSum tillsim.Summary
	// received is, per shop, the units of each item the opening
	// invoices brought (receiveGoods): the stock the tills start from,
	// less the wholesale (openingStock).
	received []map[storeline.ItemID]decimal.Decimal
	// wholesale is, per shop, what the wholesale step (sellWholesale)
	// booked there; nil until it ran.
	wholesale []wholesale
	// plant, set by tests only, changes what the closing check read before
	// it compares: a fault planted in the chain's state.
	plant *plant
}

// plant is a test's fault: shop changes what a shop's ledger holds,
// central what a central node holds of a shop, report what central's API
// reports of a shop.
type plant struct {
	shop    func(store storeline.StoreID, v *shopView)
	central func(node string, store storeline.StoreID, v *shopView)
	report  func(store storeline.StoreID, v *reportView)
}

// centralSlot is one central node's configuration and, while it runs, the
// node.
type centralSlot struct {
	cfg  central.Config
	node *central.Node // nil while killed
}

// Shop is one running store node.
type Shop struct {
	ID storeline.StoreID
	// AdminToken is the node's admin token; CheckToken a terminal token
	// the harness reads the tills' API with.
	AdminToken, CheckToken string
	Node                   *node.Node
	// proxies stand between the shop and each central node.
	proxies []*faultproxy.Proxy
	cut     bool
}

const clusterSecret = "storeline-demo-cluster-secret"

// Start starts the central cluster and the shops and loads the chain's
// master data through the public APIs. On error everything started is
// stopped again.
func Start(ctx context.Context, cfg Config) (c *Chain, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c = &Chain{
		cfg: cfg, log: log, start: time.Now(),
		AdminKey: node.NewToken(), ViewerKey: node.NewToken(),
		hc: &http.Client{Timeout: 30 * time.Second},
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.say("generating the sample chain: %d shops, %d items, %d customers", cfg.Size.Stores, cfg.Size.Items, cfg.Size.Customers)
	c.data = sample.Generate(cfg.Size)
	t0 := time.Now()
	if err := c.startCentrals(); err != nil {
		return c, err
	}
	c.say("central: %d nodes up, leader %s (%s)", len(c.centrals), c.Leader(), time.Since(t0).Round(time.Millisecond))
	c.ho = &hoClient{hc: c.hc, key: c.AdminKey, bases: c.centralAPIs}
	t0 = time.Now()
	n, err := c.loadCentral(ctx)
	if err != nil {
		return c, err
	}
	c.say("central: %d master records loaded through the head-office API (%s)", n, time.Since(t0).Round(time.Millisecond))
	for i := range cfg.Size.Stores {
		if err := c.startShop(ctx, i); err != nil {
			return c, err
		}
	}
	t0 = time.Now()
	if err := c.provisionShops(ctx); err != nil {
		return c, err
	}
	if !linked {
		c.say("shops: %d up, provisioned through their admin API (%s); NOT linked to central", len(c.shops), time.Since(t0).Round(time.Millisecond))
		return c, nil
	}
	if err := c.waitMaster(ctx); err != nil {
		return c, err
	}
	c.say("shops: %d up; master data pulled from central (%s)", len(c.shops), time.Since(t0).Round(time.Millisecond))
	if err := c.receiveGoods(ctx); err != nil {
		return c, err
	}
	if err := c.sellWholesale(ctx); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Chain) say(format string, args ...any) {
	if c.cfg.Narrate != nil {
		c.cfg.Narrate(fmt.Sprintf(format, args...))
	}
}

// Data returns the generated master data.
func (c *Chain) Data() *sample.Generated { return c.data }

// Shops returns the shops.
func (c *Chain) Shops() []*Shop { return c.shops }

func (c *Chain) centralConfig(i int) central.Config {
	cc := central.DefaultConfig(filepath.Join(c.cfg.Dir, fmt.Sprintf("central-%d", i+1)))
	cc.NodeID = fmt.Sprintf("central-%d", i+1)
	cc.ClusterSecret = clusterSecret
	cc.APIKeys = []central.APIKey{
		{Name: "demo-admin", Hash: storeline.TokenHash(c.AdminKey), Role: central.RoleAdmin},
		{Name: "demo-viewer", Hash: storeline.TokenHash(c.ViewerKey), Role: central.RoleViewer},
	}
	cc.MaxVoters = c.cfg.Centrals
	cc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	cc.ElectionTimeout = c.cfg.ElectionTimeout
	// A lease as long as the heartbeat timeout keeps a leader that is
	// merely slow (a loaded laptop, -race) from stepping down.
	cc.LeaderLeaseTimeout = c.cfg.HeartbeatTimeout
	cc.CommitTimeout = 2 * time.Millisecond
	cc.ProbeInterval = c.cfg.ProbeInterval
	cc.ProbeTimeout = c.cfg.ProbeInterval / 2
	cc.GossipInterval = c.cfg.ProbeInterval / 5
	cc.ReconcileInterval = c.cfg.ProbeInterval
	cc.ApplyTimeout = 10 * time.Second
	cc.ForwardTimeout = 10 * time.Second
	cc.Logger = c.log.With("central", cc.NodeID)
	return cc
}

// openCentral opens slot i's node with a fresh registry (a restarted node
// registers its collectors again).
func (c *Chain) openCentral(i int) error {
	c.mu.Lock()
	s := c.centrals[i]
	cfg := s.cfg
	c.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	n, err := central.Open(cfg)
	if err != nil {
		return fmt.Errorf("chain: open %s: %w", cfg.NodeID, err)
	}
	// A restart binds the same addresses, so shops' proxies, Prometheus
	// targets and gossip seeds stay valid.
	cfg.RaftAddr, cfg.APIAddr, cfg.AdminAddr, cfg.GossipAddr = n.RaftAddr(), n.APIAddr(), n.AdminAddr(), n.GossipAddr()
	pinReplicationAddr(&cfg, n)
	c.mu.Lock()
	s.node, s.cfg = n, cfg
	c.mu.Unlock()
	return nil
}

func (c *Chain) startCentrals() error {
	keys := shopTokens(c.cfg.Size.Stores)
	for i := range c.cfg.Centrals {
		cc := c.centralConfig(i)
		if i > 0 {
			cc.Bootstrap = false
			cc.Seeds = []string{c.centrals[0].cfg.GossipAddr}
		}
		enableReplication(&cc, keys)
		c.centrals = append(c.centrals, &centralSlot{cfg: cc})
		if err := c.openCentral(i); err != nil {
			return err
		}
		if i == 0 {
			if err := waitUntil(context.Background(), 20*time.Second, func() bool { return c.centrals[0].node.IsLeader() }); err != nil {
				return fmt.Errorf("chain: %s never became leader: %w", cc.NodeID, err)
			}
		}
	}
	return waitUntil(context.Background(), 30*time.Second, func() bool { return c.voters() == c.cfg.Centrals })
}

// voters returns the voters in the leader's Raft configuration, 0 when no
// live node knows a leader.
func (c *Chain) voters() int {
	n := c.leaderNode()
	if n == nil {
		return 0
	}
	_, members, err := n.Cluster(context.Background())
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

// leaderNode returns the live node that is leader, or nil.
func (c *Chain) leaderNode() *central.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.centrals {
		if s.node != nil && s.node.IsLeader() {
			return s.node
		}
	}
	return nil
}

// Leader returns the central leader's node ID, "" if none.
func (c *Chain) Leader() string {
	if n := c.leaderNode(); n != nil {
		return n.ID()
	}
	return ""
}

// CentralAPIs returns the head-office API base URLs of the live central
// nodes, the leader first.
func (c *Chain) CentralAPIs() []string { return c.centralAPIs() }

// centralAPIs returns the head-office API base URLs of the live nodes,
// the leader first (any node serves any request; the leader saves a
// forward).
func (c *Chain) centralAPIs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.centrals {
		if s.node == nil {
			continue
		}
		u := "http://" + s.node.APIAddr()
		if s.node.IsLeader() {
			out = append([]string{u}, out...)
		} else {
			out = append(out, u)
		}
	}
	return out
}

// Target is a /metrics endpoint of the chain.
type Target struct {
	Job  string // "storeline-central" or "storeline-node"
	Name string // node ID or store ID
	Addr string // host:port of the admin listener
}

// Targets returns every node's /metrics address, killed nodes included
// (they come back on the same address).
func (c *Chain) Targets() []Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Target
	for _, s := range c.centrals {
		out = append(out, Target{Job: "storeline-central", Name: s.cfg.NodeID, Addr: s.cfg.AdminAddr})
	}
	for _, s := range c.shops {
		out = append(out, Target{Job: "storeline-node", Name: string(s.ID), Addr: trimScheme(s.Node.AdminURL())})
	}
	return out
}

func trimScheme(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			return u[len(p):]
		}
	}
	return u
}

func (c *Chain) startShop(ctx context.Context, i int) error {
	id := sample.StoreName(i)
	s := &Shop{ID: id, AdminToken: node.NewToken(), CheckToken: node.NewToken()}
	nc := node.DefaultConfig()
	nc.StoreID = id
	nc.DataDir = filepath.Join(c.cfg.Dir, string(id))
	nc.TillAddr, nc.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	nc.AdminToken = s.AdminToken
	nc.Terminals = []node.TerminalToken{{ID: "chain-check", Name: "Chain check", Token: s.CheckToken}}
	nc.WALSegmentBytes = 16 << 20
	nc.ShutdownTimeout = 5 * time.Second
	nc.Version = "demo"
	if linked {
		c.mu.Lock()
		for _, cs := range c.centrals {
			p, err := faultproxy.New(replicationAddr(cs.node))
			if err != nil {
				c.mu.Unlock()
				return fmt.Errorf("chain: proxy for %s: %w", id, err)
			}
			s.proxies = append(s.proxies, p)
			nc.Replication.Central = append(nc.Replication.Central, p.URL())
		}
		c.mu.Unlock()
		nc.Replication.Token = shopTokens(c.cfg.Size.Stores)[i]
		nc.Replication.PushInterval = c.cfg.ReplicationPoll
		nc.Replication.PollWait = c.cfg.ReplicationPoll * 5
		nc.Replication.BackoffMin = 20 * time.Millisecond
		nc.Replication.BackoffMax = c.cfg.ReplicationPoll * 2
		nc.Replication.RequestTimeout = 5 * time.Second
	}
	n, err := node.New(nc, c.log, nil)
	if err != nil {
		return fmt.Errorf("chain: shop %s: %w", id, err)
	}
	if err := n.Start(); err != nil {
		for _, p := range s.proxies {
			p.Close()
		}
		return fmt.Errorf("chain: start shop %s: %w", id, err)
	}
	s.Node = n
	c.shops = append(c.shops, s)
	return nil
}

// waitMaster waits until every shop's tills' API serves the last item,
// the last loyalty card and every seller, all pulled from central.
func (c *Chain) waitMaster(ctx context.Context) error {
	d := c.data
	lastItem, lastCard := d.Items[len(d.Items)-1].SKU, d.Cards[len(d.Cards)-1].Code
	for _, s := range c.shops {
		err := waitUntil(ctx, c.cfg.DrainTimeout+time.Duration(len(d.Items)+2*len(d.Customers))*time.Millisecond, func() bool {
			var sellers struct {
				Sellers []json.RawMessage `json:"sellers"`
			}
			till := s.Node.TillURL()
			return c.call(ctx, "GET", till+"/v1/items/"+lastItem, s.CheckToken, nil, nil) == nil &&
				c.call(ctx, "GET", till+"/v1/cards/"+lastCard, s.CheckToken, nil, nil) == nil &&
				c.call(ctx, "GET", till+"/v1/sellers", s.CheckToken, nil, &sellers) == nil && len(sellers.Sellers) == len(d.Sellers)
		})
		if err != nil {
			return fmt.Errorf("chain: %s never received the master data from central: %w", s.ID, err)
		}
	}
	return nil
}

// shopTokens returns each shop's replication token, derived from its
// index so that central and the shop agree without a store of secrets.
func shopTokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("demo-replication-token-%s", sample.StoreName(i))
	}
	return out
}

// Close stops the shops, then the central nodes. It is safe to call more
// than once.
func (c *Chain) Close() error {
	var errs []error
	for _, s := range c.shops {
		if s.Node != nil {
			errs = append(errs, s.Node.Stop())
		}
		for _, p := range s.proxies {
			p.Close()
		}
		s.proxies = nil
	}
	c.mu.Lock()
	nodes := make([]*central.Node, 0, len(c.centrals))
	for _, s := range c.centrals {
		if s.node != nil {
			nodes = append(nodes, s.node)
			s.node = nil
		}
	}
	c.mu.Unlock()
	for _, n := range nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
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
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

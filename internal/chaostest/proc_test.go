package chaostest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/proctest"
	"github.com/storeline/storeline/node"
)

// A child is this test binary re-executed with specEnv set to a JSON spec:
// it runs one central node or one shop node, prints "ready" once it
// serves, and runs until it is killed or gets SIGTERM.
const specEnv = "STORELINE_CHAOSTEST_SPEC"

const (
	clusterSecret = "chaostest-cluster-secret"
	adminKey      = "chaostest-admin-key"
	shopAdmin     = "chaostest-shop-admin-token"
	sellerID      = storeline.SellerID("alice")
	termID        = storeline.TerminalID("till-1")
)

// shopNames are the two shops; each one's terminal and replication tokens
// derive from its name.
var shopNames = []storeline.StoreID{"s1", "s2"}

// probeStore has a replication token at central but no node: the
// corrupted-push test pushes in its name, so that the one valid push it
// sends to show central still serves leaves the shops' journals alone.
const probeStore = storeline.StoreID("probe")

func termToken(s storeline.StoreID) string { return "chaostest-till-token-" + string(s) }
func replToken(s storeline.StoreID) string { return "chaostest-replication-token-" + string(s) }

// spec is what a child runs. Every address is fixed by the parent, so a
// restarted child binds the same ones and its peers reach it again.
type spec struct {
	Role string // "central" or "shop"
	ID   string // central node ID or store ID
	Dir  string

	// A central node.
	Raft, API, Admin, Gossip, Repl string
	Seeds                          []string
	Bootstrap                      bool
	// SeedMaster: once leader, write the chain's master data (the first
	// start of the bootstrap node only).
	SeedMaster bool

	// A shop.
	Till, ShopAdmin string
	Central         []string // replication base URLs
	// ClockOffset skews the shop's wall clock (node.Config.Clock, which
	// its HLC reads) from the machine's: a shop whose clock is hours off.
	ClockOffset time.Duration
}

func TestMain(m *testing.M) {
	if s := os.Getenv(specEnv); s != "" {
		os.Exit(childMain(s))
	}
	os.Exit(m.Run())
}

func childMain(raw string) int {
	var sp spec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "chaostest child: spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch sp.Role {
	case "central":
		err = runCentral(ctx, sp, log)
	case "shop":
		err = runShop(ctx, sp, log)
	default:
		err = fmt.Errorf("unknown role %q", sp.Role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaostest child:", err)
		return 1
	}
	return 0
}

// centralConfig is a central node's config with timers scaled down, but
// less than in central's own tests: five processes built with -race share
// the machine here, and a starved node must not start elections all the
// time (200 ms kept a loaded 2-core machine leaderless for minutes).
func centralConfig(sp spec, log *slog.Logger) central.Config {
	c := central.DefaultConfig(sp.Dir)
	c.NodeID = sp.ID
	c.RaftAddr, c.APIAddr, c.AdminAddr, c.GossipAddr, c.ReplicationAddr = sp.Raft, sp.API, sp.Admin, sp.Gossip, sp.Repl
	c.Seeds = sp.Seeds
	c.Bootstrap = sp.Bootstrap
	c.MaxVoters = 3
	c.ClusterSecret = clusterSecret
	c.APIKeys = []central.APIKey{{Name: "admin", Hash: storeline.TokenHash(adminKey), Role: central.RoleAdmin}}
	c.HeartbeatTimeout = 600 * time.Millisecond
	c.ElectionTimeout = 600 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 2 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.ForwardTimeout = 5 * time.Second
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.ReconcileInterval = 50 * time.Millisecond
	c.ReplicationTokens = map[string]storeline.StoreID{}
	for _, s := range append([]storeline.StoreID{probeStore}, shopNames...) {
		c.ReplicationTokens[replToken(s)] = s
	}
	c.ReplicationMaxWait = 500 * time.Millisecond
	c.ReplicationPageItems = 1000
	c.Logger = log
	return c
}

func runCentral(ctx context.Context, sp spec, log *slog.Logger) error {
	n, err := central.Open(centralConfig(sp, log))
	if err != nil {
		return err
	}
	defer n.Close()
	if sp.SeedMaster {
		if err := seedMaster(ctx, n); err != nil {
			return err
		}
	}
	proctest.Ready(os.Stdout)
	<-ctx.Done()
	return n.Close()
}

// seedMaster writes the chain's master data once this node leads.
func seedMaster(ctx context.Context, n *central.Node) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := n.PutRecords(ctx, "chaostest-master", masterData()...)
		if err == nil {
			return nil
		}
		if storeline.KindOf(err) != storeline.Unavailable || time.Now().After(deadline) {
			return fmt.Errorf("seed master data: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // no leader yet: retry
		}
	}
}

// items are the chain's goods: SKU sku<i>, price (100+i)/100 EUR.
const items = 10

func itemPrice(i int) decimal.Decimal { return decimal.NewFromInt(int64(100 + i)).Shift(-2) }

func masterData() []storeline.Record {
	recs := []storeline.Record{
		&storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"},
		&storeline.Group{ID: "g", Name: "Goods"},
	}
	for _, s := range shopNames {
		recs = append(recs, &storeline.Store{ID: s, Name: "Shop " + string(s), TimeZone: "Europe/Riga", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: []storeline.PriceListID{"retail"}})
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range items {
		id := storeline.ItemID(fmt.Sprintf("i%d", i))
		recs = append(recs,
			&storeline.Item{ID: id, SKU: fmt.Sprintf("sku%d", i), Name: fmt.Sprintf("Item %d", i),
				Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)},
			&storeline.Price{List: "retail", Item: id, From: from, Price: itemPrice(i)})
	}
	recs = append(recs, &storeline.Seller{ID: sellerID, Name: "Alice", Role: storeline.Cashier,
		PINHash: storeline.HashPIN("1234", []byte("chaostest-salt-0"))})
	return recs
}

// shopConfig is a shop node's config: small WAL segments and checkpoints,
// so kills land in every phase of the commit pipeline, and replication
// timers scaled down.
func shopConfig(sp spec) node.Config {
	c := node.DefaultConfig()
	c.StoreID = storeline.StoreID(sp.ID)
	c.DataDir = sp.Dir
	c.TillAddr, c.AdminAddr = sp.Till, sp.ShopAdmin
	c.AdminToken = shopAdmin
	c.Terminals = []node.TerminalToken{{ID: termID, Token: termToken(c.StoreID)}}
	c.MaxBatchBytes = 256 << 10
	c.WALSegmentBytes = 2 << 20
	c.CheckpointBytes = 128 << 10
	c.ShutdownTimeout = 5 * time.Second
	if off := sp.ClockOffset; off != 0 {
		c.Clock = func() time.Time { return time.Now().Add(off) }
	}
	c.Replication = node.ReplicationConfig{
		Central: sp.Central, Token: replToken(c.StoreID),
		MaxBatchEvents: 100, MaxBatchBytes: 256 << 10, PageItems: 500,
		PushInterval: 10 * time.Millisecond, PollWait: 400 * time.Millisecond, RequestTimeout: 5 * time.Second,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}
	return c
}

func runShop(ctx context.Context, sp spec, log *slog.Logger) error {
	n, err := node.New(shopConfig(sp), log, nil)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	proctest.Ready(os.Stdout)
	return n.Run(ctx)
}

// start runs sp in a child and waits until it says it is ready.
func start(t *testing.T, sp spec, run int) *proctest.Proc {
	t.Helper()
	raw, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(sp.Dir), fmt.Sprintf("%s-%03d.log", sp.ID, run))
	return proctest.Start(t, fmt.Sprintf("%s run %d", sp.ID, run), logPath, specEnv+"="+string(raw))
}

// accountOf returns the store an account belongs to (kind/store/...).
func accountOf(account string) storeline.StoreID {
	parts := strings.SplitN(account, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return storeline.StoreID(parts[1])
}

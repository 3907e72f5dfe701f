package chaostest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
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
	for _, s := range shopNames {
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
	fmt.Println("ready")
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
	fmt.Println("ready")
	return n.Run(ctx)
}

// proc is one run of a child process.
type proc struct {
	sp      spec
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

// startTimeout bounds a child's start, WAL and Raft replay included.
const startTimeout = 2 * time.Minute

// start runs sp in a child and waits until it says it is ready.
func start(t *testing.T, sp spec, run int) *proc {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(sp.Dir), fmt.Sprintf("%s-%03d.log", sp.ID, run))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	raw, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), specEnv+"="+string(raw))
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{sp: sp, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	ready := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- struct{}{}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	select {
	case <-ready:
		return p
	case <-p.done:
		t.Fatalf("%s run %d exited before it was ready:\n%s", sp.ID, run, p.logTail())
	case <-time.After(startTimeout):
		t.Fatalf("%s run %d not ready after %v:\n%s", sp.ID, run, startTimeout, p.logTail())
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.sp.ID, p.logTail())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM:\n%s", p.sp.ID, code, p.logTail())
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freeAddrs returns n loopback addresses whose TCP and UDP ports were
// free a moment ago (memberlist binds both on one port).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(out) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue // UDP side taken: draw another port
		}
		held = append(held, pc)
		out = append(out, addr)
	}
	return out
}

// errNotYet marks a condition not met yet.
var errNotYet = errors.New("not yet")

// waitFor polls cond every 10 ms until it returns nil, or fails the test
// after d with cond's last error.
func waitFor(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
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

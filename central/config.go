package central

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
)

// Role is what an API key may do on the head-office API.
type Role string

// The roles: an admin reads and writes, a viewer only reads.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
)

// APIKey is a head-office API key, configured by its hash
// (storeline.TokenHash of the key), never the key itself.
type APIKey struct {
	Name string
	Hash string
	Role Role
}

// Config is the one configuration of a central node. Build it with
// DefaultConfig and change what you need; Open calls Validate.
type Config struct {
	// NodeID names the node in Raft and gossip; it never changes.
	NodeID string
	// DataDir holds DataDir/raft (the Raft log), DataDir/fsm (the state
	// machine's ledger) and DataDir/snapshots.
	DataDir string
	// RaftAddr is the Raft transport's listen address; RaftAdvertise the
	// address peers dial (defaults to the bound address).
	RaftAddr      string
	RaftAdvertise string
	// APIAddr is the head-office API's listen address; APIAdvertise the
	// address other nodes forward writes to (defaults to the bound one).
	APIAddr      string
	APIAdvertise string
	// AdminAddr serves /metrics and /healthz, loopback by default.
	AdminAddr string
	// GossipAddr is memberlist's bind address (TCP and UDP, same port).
	GossipAddr string
	// Seeds are gossip addresses of nodes already in the cluster; a node
	// with seeds joins through them.
	Seeds []string
	// Bootstrap forms a new cluster with this node as its only voter. Only
	// the first node of a cluster, started once, sets it. It takes effect
	// only on a node with no Raft state and no Seeds: a node whose Raft
	// log exists, or that has seeds, ignores it (a node with seeds joins
	// through them, so a first node whose data was lost rejoins its
	// cluster instead of forming a second one).
	Bootstrap bool
	// MaxVoters is the odd number of voters the leader keeps (3 or 5);
	// nodes beyond it join as non-voters.
	MaxVoters int
	// ClusterSecret authenticates one node to another (forwarded writes,
	// read-index requests, status). Every node of a cluster has the same.
	ClusterSecret string
	// APIKeys are the head-office API's keys.
	APIKeys []APIKey

	// Raft timers and limits (see hashicorp/raft's Config).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	// ApplyTimeout bounds one Submit on the leader (enqueue and commit).
	ApplyTimeout time.Duration
	// ForwardTimeout bounds a forwarded request to the leader.
	ForwardTimeout time.Duration

	// Gossip (memberlist) timers.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	SuspicionMult  int
	// ReconcileInterval is how often the leader compares gossip members
	// with the Raft configuration.
	ReconcileInterval time.Duration
	// DeadNodeRemoveAfter removes from Raft a node gossip has seen dead
	// this long; 0 (the default) never removes one.
	DeadNodeRemoveAfter time.Duration

	// ChangeRetention is how long tombstones of the change feed are kept;
	// a cursor older than the pruned ones gets a resync answer.
	ChangeRetention time.Duration
	// PruneInterval is how often the leader submits a prune of tombstones
	// older than ChangeRetention.
	PruneInterval time.Duration
	// ImportChunk is the number of records per Raft entry of a bulk
	// import.
	ImportChunk int
	// MaxBodyBytes bounds a request body of the head-office API.
	MaxBodyBytes int64

	// ReplicationAddr is the listen address of the shops' replication
	// API (push and pull); "" turns it off.
	ReplicationAddr string
	// ReplicationTokens maps a shop's bearer token to its store: how a
	// shop is registered when it authenticates by token. Secret.
	ReplicationTokens map[string]storeline.StoreID
	// ReplicationTLS, if set, serves the replication API over TLS; with
	// ClientCAs set, every shop must present a certificate the chain CA
	// signed, naming its store (mutual TLS, production).
	ReplicationTLS *tls.Config
	// ReplicationMaxWait caps a pull's long poll; ReplicationPageItems a
	// page's items.
	ReplicationMaxWait   time.Duration
	ReplicationPageItems int

	// Loyalty is head office's automatic loyalty policy: pre-grants to
	// customers' usual shops, debts netted, answers pruned (loyalty_auto.go).
	Loyalty LoyaltyConfig

	// InternalBarcodes is how head office allocates in-store EAN-13s to
	// items without a manufacturer's barcode (internal_barcodes.go): the
	// chain's internal prefix and the weighed layout its tills read, which
	// must leave the prefix free.
	InternalBarcodes InternalBarcodeConfig

	// Registerer receives the node's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// Now is the node's clock, nil for time.Now. The leader stamps every
	// command it applies with its reading (the time ops see, fsm.go
	// invariant 5); tests skew a node's clock with it.
	Now func() time.Time

	// fsmLevel, when set, is the FSM level the node tells the others
	// instead of its binary's (levels.go; negative: none): tests play an
	// old or a newer version with it.
	fsmLevel int
}

// DefaultConfig returns a single-node configuration bootstrapping on
// loopback with ephemeral ports, with data in dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		NodeID:             "central-1",
		DataDir:            dataDir,
		RaftAddr:           "127.0.0.1:0",
		APIAddr:            "127.0.0.1:0",
		AdminAddr:          "127.0.0.1:0",
		GossipAddr:         "127.0.0.1:0",
		Bootstrap:          true,
		MaxVoters:          3,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		MaxAppendEntries:   1024,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		ForwardTimeout:     10 * time.Second,
		ProbeInterval:      1 * time.Second,
		ProbeTimeout:       500 * time.Millisecond,
		GossipInterval:     200 * time.Millisecond,
		SuspicionMult:      4,
		ReconcileInterval:  1 * time.Second,
		ChangeRetention:    30 * 24 * time.Hour,
		PruneInterval:      time.Hour,
		ImportChunk:        2000,
		MaxBodyBytes:       64 << 20,

		ReplicationAddr:      "127.0.0.1:0",
		ReplicationMaxWait:   25 * time.Second,
		ReplicationPageItems: 1000,

		Loyalty:          DefaultLoyaltyConfig(),
		InternalBarcodes: DefaultInternalBarcodeConfig(),
	}
}

// Validate names every bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, storeline.Invalidf(field, format, args...))
	}
	if err := storeline.CheckID("NodeID", c.NodeID); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		bad("DataDir", "a central node needs a data directory")
	}
	for _, a := range []struct{ f, v string }{{"RaftAddr", c.RaftAddr}, {"APIAddr", c.APIAddr}, {"AdminAddr", c.AdminAddr}, {"GossipAddr", c.GossipAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			bad(a.f, "%q is not host:port", a.v)
		}
	}
	if c.APIAdvertise != "" {
		if err := checkAdvertise(c.APIAdvertise); err != nil {
			bad("APIAdvertise", "%q: %v", c.APIAdvertise, err)
		}
	}
	for i, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad(fmt.Sprintf("Seeds[%d]", i), "%q is not host:port", s)
		}
	}
	if c.MaxVoters != 1 && c.MaxVoters != 3 && c.MaxVoters != 5 && c.MaxVoters != 7 {
		bad("MaxVoters", "%d: want an odd number from 1 to 7", c.MaxVoters)
	}
	if len(c.Seeds) > 0 && c.ClusterSecret == "" {
		bad("ClusterSecret", "a node that joins a cluster needs the cluster secret")
	}
	if c.ClusterSecret != "" && len(c.ClusterSecret) < 16 {
		bad("ClusterSecret", "at least 16 characters")
	}
	for i, k := range c.APIKeys {
		if len(k.Hash) != 64 {
			bad(fmt.Sprintf("APIKeys[%d].Hash", i), "want the hex SHA-256 of the key")
		}
		if k.Role != RoleAdmin && k.Role != RoleViewer {
			bad(fmt.Sprintf("APIKeys[%d].Role", i), "unknown role %q (admin, viewer)", k.Role)
		}
	}
	if c.HeartbeatTimeout < 5*time.Millisecond {
		bad("HeartbeatTimeout", "%s below 5ms", c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", "%s below HeartbeatTimeout", c.ElectionTimeout)
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", "%s out of [5ms, HeartbeatTimeout]", c.LeaderLeaseTimeout)
	}
	if c.CommitTimeout < time.Millisecond {
		bad("CommitTimeout", "%s below 1ms", c.CommitTimeout)
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		bad("MaxAppendEntries", "%d out of [1, 1024]", c.MaxAppendEntries)
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		bad("SnapshotInterval", "%s below 5ms", c.SnapshotInterval)
	}
	if c.SnapshotThreshold < 1 {
		bad("SnapshotThreshold", "must be positive")
	}
	if c.TrailingLogs < 4 || c.TrailingLogs > 1<<24 {
		bad("TrailingLogs", "%d out of [4, %d]", c.TrailingLogs, 1<<24)
	}
	// Lower bounds keep the leader's loops and gossip from spinning (1ns
	// used to pass); they are at or below the small values tests use.
	within := func(field string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(field, "%s out of [%s, %s]", v, lo, hi)
		}
	}
	within("ApplyTimeout", c.ApplyTimeout, 100*time.Millisecond, 10*time.Minute)
	within("ForwardTimeout", c.ForwardTimeout, 100*time.Millisecond, 10*time.Minute)
	within("ProbeInterval", c.ProbeInterval, 10*time.Millisecond, time.Minute)
	if c.ProbeTimeout < 5*time.Millisecond || c.ProbeTimeout > c.ProbeInterval {
		bad("ProbeTimeout", "%s out of [5ms, ProbeInterval]", c.ProbeTimeout)
	}
	within("GossipInterval", c.GossipInterval, 5*time.Millisecond, time.Minute)
	if c.SuspicionMult < 1 || c.SuspicionMult > 16 {
		bad("SuspicionMult", "%d out of [1, 16]", c.SuspicionMult)
	}
	within("ReconcileInterval", c.ReconcileInterval, 10*time.Millisecond, 10*time.Minute)
	if c.DeadNodeRemoveAfter != 0 && (c.DeadNodeRemoveAfter < 100*time.Millisecond || c.DeadNodeRemoveAfter > 365*24*time.Hour) {
		bad("DeadNodeRemoveAfter", "%s out of [100ms, 1 year] (0: never)", c.DeadNodeRemoveAfter)
	}
	if c.ChangeRetention < time.Second {
		bad("ChangeRetention", "%s below 1s", c.ChangeRetention)
	}
	within("PruneInterval", c.PruneInterval, time.Second, 24*time.Hour)
	c.Loyalty.validate(bad)
	c.InternalBarcodes.validate(bad)
	if c.ImportChunk < 1 || c.ImportChunk > 4096 {
		bad("ImportChunk", "%d out of [1, 4096]", c.ImportChunk)
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 1<<30 {
		bad("MaxBodyBytes", "%d out of [1 KiB, 1 GiB]", c.MaxBodyBytes)
	}
	if c.ReplicationAddr != "" {
		if _, _, err := net.SplitHostPort(c.ReplicationAddr); err != nil {
			bad("ReplicationAddr", "%q is not host:port", c.ReplicationAddr)
		}
	}
	for tok, s := range c.ReplicationTokens {
		if len(tok) < 16 {
			bad("ReplicationTokens", "the token of store %s is shorter than 16 characters", s)
		}
		if err := storeline.CheckID("ReplicationTokens", string(s)); err != nil {
			errs = append(errs, err)
		}
	}
	within("ReplicationMaxWait", c.ReplicationMaxWait, 100*time.Millisecond, 10*time.Minute)
	if c.ReplicationPageItems < 1 || c.ReplicationPageItems > MaxFeedLimit {
		bad("ReplicationPageItems", "%d out of [1, %d]", c.ReplicationPageItems, MaxFeedLimit)
	}
	if len(errs) > 0 {
		return storeline.E("central.Config.Validate", storeline.Invalid, errors.Join(errs...))
	}
	return nil
}

// checkAdvertise checks an address other nodes dial: host:port with a
// host (not a wildcard) and a port (not 0).
func checkAdvertise(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("not host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("want a port from 1 to 65535")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return errors.New("want a host other nodes can dial, not a wildcard")
	}
	return nil
}

// String describes the configuration with secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node=%s data=%s raft=%s api=%s admin=%s gossip=%s seeds=%v bootstrap=%v max_voters=%d",
		c.NodeID, c.DataDir, c.RaftAddr, c.APIAddr, c.AdminAddr, c.GossipAddr, c.Seeds, c.Bootstrap, c.MaxVoters)
	secret := "unset"
	if c.ClusterSecret != "" {
		secret = "[redacted]"
	}
	fmt.Fprintf(&b, " replication=%s shop_tokens=%d replication_tls=%v", c.ReplicationAddr, len(c.ReplicationTokens), c.ReplicationTLS != nil)
	fmt.Fprintf(&b, " cluster_secret=%s api_keys=%d heartbeat=%s election=%s lease=%s commit=%s max_append=%d probe=%s/%s gossip=%s dead_remove=%s",
		secret, len(c.APIKeys), c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout,
		c.MaxAppendEntries, c.ProbeInterval, c.ProbeTimeout, c.GossipInterval, c.DeadNodeRemoveAfter)
	return b.String()
}

package central

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// Node is one member of the central cluster: Raft with its FSM, gossip,
// the head-office API and the admin listener.
type Node struct {
	cfg  Config
	log  *slog.Logger
	rep  *ledger.Replica
	logs *ledger.LogStore
	fsm  *FSM
	tfsm *trackedFSM // fsm as Raft is given it (metrics.go)
	// reconciles counts the leader's reconcile rounds (gossip.go), so a
	// test can wait for rounds rather than for time.
	reconciles atomic.Uint64
	raft       *raft.Raft
	tr         unpipelined
	sl         *streamLayer
	ml         *memberlist.Memberlist
	gos        *gossip
	// gossipAddr is memberlist's bound address, read once: UpdateNode
	// rewrites the local node while the reconcile loop runs.
	gossipAddr string
	met        *metrics

	api, admin     *http.Server
	apiLn, adminLn net.Listener
	apiAddr        string
	client         *http.Client
	keys           map[string]APIKey // by hash

	// Replication: the shops' listener, long polls' wake-up, per-shop
	// metrics.
	repl    *http.Server
	replLn  net.Listener
	replReg *trackingRegisterer
	applied *appliedSignal
	shops   *shopCollector
	loy     *loyaltyMetrics // loyalty.go

	quit chan struct{}
	// ctx is cancelled by Close: the background loops' rounds and the
	// requests being served run under it.
	ctx  context.Context
	stop context.CancelFunc
	// serving is read-held by every request being served; Close sets
	// closing, then write-locks it, so no request reads the replica
	// after it is closed (serve).
	serving   sync.RWMutex
	closing   atomic.Bool
	failed    chan error    // the first failure that stops the node serving (Failed)
	raftHalts atomic.Uint64 // Raft goroutines the log store ended rather than return into a panic (logstore.go)
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open starts a node. ops are extra FSM ops (other packages' commands);
// every node of a cluster must register the same ops.
func Open(cfg Config, ops ...Op) (_ *Node, err error) {
	const op = "central.Open"
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// n is not the named result: an early `return nil, err` must leave it
	// set for the deferred closers, which use it.
	n := &Node{cfg: cfg, log: cfg.Logger, quit: make(chan struct{}), keys: map[string]APIKey{}, applied: newAppliedSignal(), failed: make(chan error, 1)}
	n.ctx, n.stop = context.WithCancel(context.Background())
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for _, k := range cfg.APIKeys {
		n.keys[k.Hash] = k
	}
	n.client = &http.Client{Timeout: cfg.ForwardTimeout}
	closers := []func(){n.stop}
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, err)
	}
	if n.logs, err = ledger.OpenLogStore(filepath.Join(cfg.DataDir, "raft"), ledger.LogStoreOptions{Logger: n.log}); err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.logs.Close() })
	if n.rep, err = ledger.OpenReplica(filepath.Join(cfg.DataDir, "fsm"), ledger.ReplicaOptions{Logger: n.log}); err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.rep.Close() })
	if n.fsm, err = newFSM(n.rep, n.log, append(append(append(append(replicationOps(), loyaltyOps()...), incarnationOps()...), levelOps()...), ops...)); err != nil {
		return nil, storeline.E(op, storeline.Invalid, err)
	}
	n.fsm.onApply = n.applied.bump
	n.fsm.spoolDir = cfg.DataDir
	// Raft's own logs go to the node's logger at debug level, through
	// raft's io.Writer constructors (hclog is not a dependency of ours).
	hl := logWriter{n.log}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(cfg.DataDir, "snapshots"), 2, hl)
	if err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("snapshot store: %w", err))
	}
	rln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("raft listener: %w", err))
	}
	closers = append(closers, func() { rln.Close() })
	if n.sl, err = newStreamLayer(rln, cfg.RaftAdvertise); err != nil {
		return nil, storeline.E(op, storeline.Invalid, storeline.Invalidf("RaftAdvertise", "%v", err))
	}
	n.sl.requireSecret(cfg.ClusterSecret)
	n.tr = unpipelined{raft.NewNetworkTransport(n.sl, 3, 10*time.Second, hl)}
	closers = append(closers, func() { n.tr.Close() })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoLegacyTelemetry = true
	rc.LogOutput = hl
	rc.LogLevel = "INFO"
	// The replica keeps its state and applied index across restarts, so
	// Raft need not restore the latest snapshot at start, unless the
	// replica is behind it (its directory was lost).
	n.tfsm = &trackedFSM{FSM: n.fsm}
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		rc.NoSnapshotRestoreOnStart = n.rep.AppliedIndex() >= metas[0].Index
		n.tfsm.snapshotted.Store(snapshotTime(metas))
	} else {
		rc.NoSnapshotRestoreOnStart = true
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, storeline.E(op, storeline.Invalid, err)
	}
	ls := watchedLogStore{logStore{n.logs}, n.fail, &n.raftHalts}
	existing, err := raft.HasExistingState(ls, ls, snaps)
	if err != nil {
		return nil, storeline.E(op, storeline.Internal, err)
	}
	n.met = newMetrics(n)
	if n.raft, err = raft.NewRaft(rc, n.tfsm, ls, ls, snaps, n.tr); err != nil {
		return nil, storeline.E(op, storeline.Internal, fmt.Errorf("raft: %w", err))
	}
	closers = append(closers, func() { n.raft.Shutdown().Error() })
	n.met.observe(n.raft)
	// Bootstrap takes effect only on a node with no Raft state and no
	// seeds: a node given seeds joins through them, so a first node whose
	// data was lost rejoins its cluster instead of forming a second one
	// (whose acknowledged writes that cluster's leader would overwrite).
	switch {
	case cfg.Bootstrap && !existing && len(cfg.Seeds) > 0:
		n.log.Warn("central: bootstrap ignored: a node with seeds joins through them", "seeds", cfg.Seeds)
	case cfg.Bootstrap && !existing:
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: n.tr.LocalAddr(),
		}}})
		if err := f.Error(); err != nil {
			return nil, storeline.E(op, storeline.Internal, fmt.Errorf("bootstrap: %w", err))
		}
		n.firstIncarnation() // restore.go
	}

	if n.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("api listener: %w", err))
	}
	closers = append(closers, func() { n.apiLn.Close() })
	n.apiAddr = n.apiLn.Addr().String()
	if cfg.APIAdvertise != "" {
		n.apiAddr = cfg.APIAdvertise
	}
	if n.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("admin listener: %w", err))
	}
	closers = append(closers, func() { n.adminLn.Close() })
	n.api = &http.Server{Handler: n.serve(n.apiHandler()), ReadHeaderTimeout: 10 * time.Second}
	n.admin = &http.Server{Handler: n.serve(n.adminHandler()), ReadHeaderTimeout: 10 * time.Second}
	go n.serveOn(n.api, n.apiLn, "api")
	go n.serveOn(n.admin, n.adminLn, "admin")
	closers = append(closers, func() { n.api.Close(); n.admin.Close() })
	if err := n.startReplication(); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, err)
	}
	closers = append(closers, func() {
		if n.repl != nil {
			n.repl.Close()
		}
		n.replReg.unregisterAll()
	})

	if err := n.startGossip(existing); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("gossip: %w", err))
	}
	closers = append(closers, func() { n.ml.Shutdown() })
	n.shops = newShopCollector(n)
	n.loy = newLoyaltyMetrics(n)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(n.met); err != nil {
			return nil, storeline.E(op, storeline.Internal, fmt.Errorf("metrics: %w", err))
		}
		if err := cfg.Registerer.Register(n.shops); err != nil {
			cfg.Registerer.Unregister(n.met)
			return nil, storeline.E(op, storeline.Internal, fmt.Errorf("metrics: %w", err))
		}
		if err := cfg.Registerer.Register(n.loy); err != nil {
			cfg.Registerer.Unregister(n.met)
			cfg.Registerer.Unregister(n.shops)
			return nil, storeline.E(op, storeline.Internal, fmt.Errorf("metrics: %w", err))
		}
	}
	n.wg.Add(4)
	go n.reconcileLoop()
	go n.pruneLoop()
	go n.loyaltyLoop()     // loyalty_auto.go
	go n.incarnationLoop() // restore.go
	n.log.Info("central: node started", "config", cfg.String(), "raft", n.tr.LocalAddr(), "api", n.apiAddr)
	return n, nil
}

// Close leaves gossip, stops Raft and the listeners, and closes the
// stores. Other nodes see it as failed (it does not leave Raft).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		n.stop() // ends the loops' rounds and the requests being served
		close(n.quit)
		n.wg.Wait()
		if n.cfg.Registerer != nil {
			n.cfg.Registerer.Unregister(n.met)
			n.cfg.Registerer.Unregister(n.shops)
			n.cfg.Registerer.Unregister(n.loy)
			n.replReg.unregisterAll()
		}
		var errs []error
		if n.repl != nil {
			n.repl.Close()
		}
		n.api.Close()
		n.admin.Close()
		// Requests already being served end (their context is cancelled)
		// before the stores close; later ones are answered Unavailable.
		n.serving.Lock()
		defer n.serving.Unlock()
		_ = n.ml.Leave(n.cfg.ProbeTimeout)
		errs = append(errs, n.ml.Shutdown())
		errs = append(errs, n.raft.Shutdown().Error())
		errs = append(errs, n.tr.Close())
		errs = append(errs, n.rep.Close(), n.logs.Close())
		if err := errors.Join(errs...); err != nil {
			n.closeErr = storeline.E("central.Close", storeline.Internal, err)
		}
	})
	return n.closeErr
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// APIAddr returns the head-office API's address.
func (n *Node) APIAddr() string { return n.apiAddr }

// AdminAddr returns the admin listener's address.
func (n *Node) AdminAddr() string { return n.adminLn.Addr().String() }

// RaftAddr returns the Raft transport's address.
func (n *Node) RaftAddr() string { return string(n.tr.LocalAddr()) }

// Failed receives the first failure that leaves the node unable to serve
// (a listener that stopped accepting, or a write to the Raft log store
// that failed, while the node was not closing): the process running it
// should close it and exit with an error, so its supervisor restarts it,
// rather than run on deaf, or unable to store a Raft entry.
func (n *Node) Failed() <-chan error { return n.failed }

// serveOn serves srv on ln and reports, through Failed, an end that Close
// did not ask for.
func (n *Node) serveOn(srv *http.Server, ln net.Listener, name string) {
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || n.closing.Load() {
		return
	}
	n.log.Error("central: listener stopped", "listener", name, "err", err)
	n.fail(fmt.Errorf("%s listener: %w", name, err))
}

// fail reports err on Failed unless the node is closing; only the first
// failure is kept.
func (n *Node) fail(err error) {
	if n.closing.Load() {
		return
	}
	n.log.Error("central: node failed", "err", err)
	select {
	case n.failed <- err:
	default:
	}
}

// GossipAddr returns memberlist's address.
func (n *Node) GossipAddr() string { return n.gossipAddr }

// IsLeader reports whether the node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's node id, "" if none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// AppliedIndex returns the index of the last command the FSM applied.
// (raft.AppliedIndex is not used for waiting: Raft advances it when it
// hands a batch to the FSM, before the FSM has applied it.)
func (n *Node) AppliedIndex() uint64 { return n.rep.AppliedIndex() }

// FSMApplies returns how many commands this node's FSM applied (not
// skipped on replay) since Open.
func (n *Node) FSMApplies() uint64 { return n.fsm.Applies() }

// Replica returns the node's state machine store, for reads.
func (n *Node) Replica() *ledger.Replica { return n.rep }

// Submit applies a command through Raft and returns its outcome. On a
// follower the command is forwarded to the leader.
//
// If Submit returns an Unavailable error, the command may or may not have
// been applied (leadership was lost mid-apply, or the leader's answer was
// lost). Retrying with the same key is safe: the FSM remembers the outcome
// of every key and returns it instead of applying twice. A command without
// a key has no such guarantee.
func (n *Node) Submit(ctx context.Context, op, key string, payload []byte) (*Result, error) {
	c := command{Op: op, Key: key, AtMs: n.now().UnixMilli(), Payload: payload}
	return n.submit(ctx, &c, true)
}

// now reads the node's clock (Config.Now).
func (n *Node) now() time.Time {
	if n.cfg.Now != nil {
		return n.cfg.Now()
	}
	return time.Now()
}

func (n *Node) submit(ctx context.Context, c *command, mayForward bool) (*Result, error) {
	const op = "central.Submit"
	if err := n.checkLevel(c.Op); err != nil {
		return nil, err
	}
	if n.raft.State() != raft.Leader {
		if !mayForward {
			return nil, storeline.Errorf(storeline.Unavailable, op, "not the leader; nothing was applied, retry")
		}
		return n.forwardSubmit(ctx, c)
	}
	data, err := msgpack.Marshal(c)
	if err != nil {
		return nil, storeline.E(op, storeline.Internal, err)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	// Raft reads a timeout of 0 or less as none: for a caller that gave
	// up it would wait as long as its queue stays full.
	if err := ctx.Err(); err != nil || timeout <= 0 {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("not applied, retry: %w", cmp.Or(err, context.DeadlineExceeded)))
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	errc := make(chan error, 1)
	go func() {
		err := f.Error()
		if err == nil { // observed here: a caller that gave up does not hide a slow commit
			n.met.commitDur.Observe(time.Since(start).Seconds())
		}
		errc <- err
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
		return nil, storeline.E(op, storeline.Unavailable,
			fmt.Errorf("outcome unknown (gave up waiting for commit); retrying with the same idempotency key is safe: %w", ctx.Err()))
	}
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader) && mayForward:
		return n.forwardSubmit(ctx, c) // refused before it was appended: nothing applied
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("not applied, retry: %w", err))
	default:
		return nil, storeline.E(op, storeline.Unavailable,
			fmt.Errorf("outcome unknown (%v); retrying with the same idempotency key is safe", err))
	}
	res, ok := f.Response().(*Result)
	if !ok || res == nil {
		return nil, storeline.Errorf(storeline.Internal, op, "no result for index %d", f.Index())
	}
	return res, nil
}

// Linearize makes the node's next local read linearizable: it returns
// once this node has applied everything committed before the call. A
// leader commits a barrier; a follower asks the leader for its applied
// index and waits until it has applied as much.
func (n *Node) Linearize(ctx context.Context) error {
	const op = "central.Linearize"
	var idx uint64
	if n.raft.State() == raft.Leader {
		i, err := n.barrier(ctx)
		if err != nil {
			return err
		}
		idx = i
	} else {
		i, err := n.forwardReadIndex(ctx)
		if err != nil {
			return err
		}
		idx = i
	}
	return n.waitApplied(ctx, idx, op)
}

func (n *Node) barrier(ctx context.Context) (uint64, error) {
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	// As in submit: 0 or less would be no timeout.
	if err := ctx.Err(); err != nil || timeout <= 0 {
		return 0, storeline.E("central.Linearize", storeline.Unavailable, fmt.Errorf("barrier: %w", cmp.Or(err, context.DeadlineExceeded)))
	}
	f := n.raft.Barrier(timeout)
	// Raft's timeout bounds only the enqueueing: the barrier then waits
	// for the FSM, which the caller's context bounds.
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return 0, storeline.E("central.Linearize", storeline.Unavailable, fmt.Errorf("barrier: %w", err))
	}
	// The barrier returns after the FSM applied every command before it.
	return n.rep.AppliedIndex(), nil
}

// waitApplied polls the applied index until it reaches idx or ctx ends.
func (n *Node) waitApplied(ctx context.Context, idx uint64, op string) error {
	if n.rep.AppliedIndex() >= idx {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for n.rep.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return storeline.E(op, storeline.Unavailable, fmt.Errorf("applied %d, leader at %d: %w", n.rep.AppliedIndex(), idx, ctx.Err()))
		case <-t.C:
		}
	}
	return nil
}

// pruneLoop submits, on the leader, a prune of the feed's tombstones older
// than ChangeRetention every PruneInterval, then prunes the shops' feeds
// below the raised floor.
func (n *Node) pruneLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case <-t.C:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		n.pruneRound(0)
	}
}

// pruneEntriesPerRound bounds the prune entries of one round of the prune
// loop (each removes up to MaxChangesPerEntry tombstones): a larger burst
// of deletes is pruned over several rounds, and a round cannot hold the
// leader forever.
const pruneEntriesPerRound = 32

// pruneRound is one round of the prune loop: prune entries while the last
// one reached its limit, at most pruneEntriesPerRound, then the shops'
// feeds. limit bounds the tombstones of each prune entry below
// MaxChangesPerEntry (zero: MaxChangesPerEntry).
func (n *Node) pruneRound(limit int) {
	p := prunePayload{Before: n.now().Add(-n.cfg.ChangeRetention), Limit: limit}
	ctx, cancel := n.loopContext(pruneEntriesPerRound * n.cfg.ApplyTimeout)
	entries, more, err := n.pruneHistory(ctx, p, pruneEntriesPerRound, false)
	cancel()
	switch {
	case err != nil:
		n.log.Warn("central: prune", "entries", entries, "err", err)
	case more:
		n.log.Info("central: prune: tombstones left for the next round", "entries", entries)
	}
	// Then the shops' feeds below the new floor (feed.go).
	ctx, cancel = n.loopContext(10 * n.cfg.ApplyTimeout)
	if _, err := n.PruneFeeds(ctx); err != nil {
		n.log.Warn("central: prune feeds", "err", err)
	}
	cancel()
}

// loopContext is the context of one round of a background loop, bounded
// by d and cancelled by Close.
func (n *Node) loopContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(n.ctx, d)
}

// serve wraps a listener's handler: a request runs under a context Close
// cancels, and Close waits for it before closing the stores; a request
// that comes once Close began is answered Unavailable without reading
// them.
func (n *Node) serve(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.enterServing() {
			writeProblem(w, r, storeline.Errorf(storeline.Unavailable, "central.serve", "the node is shutting down; retry on another node"))
			return
		}
		defer n.serving.RUnlock()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(n.ctx, cancel)()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// enterServing read-locks serving unless Close began; a request that
// waited for the lock while Close held it sees closing afterwards.
func (n *Node) enterServing() bool {
	if n.closing.Load() {
		return false
	}
	n.serving.RLock()
	if n.closing.Load() {
		n.serving.RUnlock()
		return false
	}
	return true
}

// CutRaft cuts the node's Raft transport off (true) or reconnects it.
// Gossip and HTTP are unaffected. For tests and fencing.
func (n *Node) CutRaft(cut bool) { n.sl.setCut(cut) }

// TransferLeadership asks the leader to hand leadership to another voter
// (before maintenance). It fails on a follower.
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return storeline.E("central.TransferLeadership", storeline.Unavailable, err)
	}
	return nil
}

// logWriter turns raft's log lines into debug records of the node's logger.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug("raft", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// TakeSnapshot makes Raft snapshot the state now (and compact its log to
// TrailingLogs entries), as before maintenance.
func (n *Node) TakeSnapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return storeline.E("central.TakeSnapshot", storeline.Unavailable, err)
	}
	return nil
}

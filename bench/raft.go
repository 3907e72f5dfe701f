package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/ledger"
)

// raftConfig is the Raft configuration of Storeline's central, read from
// central.DefaultConfig (the fields central/node.go copies into
// hashicorp/raft's Config), so that the raw harness differs from central
// only by what central adds. BatchApplyCh is on in both: concurrent Applies
// queue in a buffered channel and the leader drains up to MaxAppendEntries
// of them into one StoreLogs (one fsync) and one AppendEntries RPC.
func raftConfig(id string) *raft.Config {
	cc := central.DefaultConfig("")
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = cc.HeartbeatTimeout
	c.ElectionTimeout = cc.ElectionTimeout
	c.LeaderLeaseTimeout = cc.LeaderLeaseTimeout
	c.CommitTimeout = cc.CommitTimeout
	c.MaxAppendEntries = cc.MaxAppendEntries
	c.BatchApplyCh = true
	c.SnapshotInterval = cc.SnapshotInterval
	c.SnapshotThreshold = cc.SnapshotThreshold
	c.TrailingLogs = cc.TrailingLogs
	c.NoLegacyTelemetry = true
	c.NoSnapshotRestoreOnStart = true
	c.LogOutput = io.Discard
	return c
}

// raftContender is the raw hashicorp/raft harness: three voters in this
// process on loopback TCP, each with its own log store, an FSM that only
// keeps marks and counts, and each shop batch committed as one log entry
// (rawEntry: the batch's event wire bytes as a msgpack array). It is what central costs before its
// FSM, decoding and API: the Storeline central contender is measured
// against it.
//
// Log store: ledger.LogStore, the Badger log store central uses (SyncWrites:
// StoreLogs returns after Badger's fsync), adapted to raft.LogStore and
// raft.StableStore below.
type raftContender struct {
	dir   string
	w     *workload
	batch int
	// pipeline leaves hashicorp/raft's pipelined replication on. Off by
	// default, as central runs (central/transport.go turns it off: in
	// v1.8 a pipeline can deadlock a leader), so the harness has
	// central's Raft settings.
	pipeline bool
	nodes    []*raftNode
	clients  []*raftClient
	retries  atomic.Int64 // applies refused by a former leader and applied again
}

type raftNode struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	store *ledger.LogStore
	fsm   *countFSM
}

func newRaftContender(dir string, w *workload, batch int, pipeline bool) *raftContender {
	return &raftContender{dir: dir, w: w, batch: batch, pipeline: pipeline}
}

// unpipelined is the TCP transport without pipelined replication, as
// central's (central/transport.go): every AppendEntries is sent and
// answered in turn.
type unpipelined struct{ *raft.NetworkTransport }

func (unpipelined) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (c *raftContender) Name() string { return nameRaft }
func (c *raftContender) Unit() string { return "event" }

func (c *raftContender) Open(ctx context.Context, clients int) error {
	var servers []raft.Server
	for i := range 3 {
		store, err := ledger.OpenLogStore(filepath.Join(c.dir, fmt.Sprintf("n%d", i), "log"), ledger.LogStoreOptions{})
		if err != nil {
			return fmt.Errorf("bench: raft log store: %w", err)
		}
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			store.Close()
			return fmt.Errorf("bench: raft transport: %w", err)
		}
		n := &raftNode{trans: trans, store: store, fsm: &countFSM{marks: map[string]uint64{}}}
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: trans.LocalAddr()})
	}
	for i, n := range c.nodes {
		cfg := raftConfig(fmt.Sprintf("n%d", i))
		ls := raftStore{n.store}
		snaps, err := raft.NewFileSnapshotStore(filepath.Join(c.dir, fmt.Sprintf("n%d", i), "snapshots"), 2, io.Discard)
		if err != nil {
			return fmt.Errorf("bench: raft snapshots: %w", err)
		}
		var trans raft.Transport = unpipelined{n.trans}
		if c.pipeline {
			trans = n.trans
		}
		r, err := raft.NewRaft(cfg, n.fsm, ls, ls, snaps, trans)
		if err != nil {
			return fmt.Errorf("bench: raft node %d: %w", i, err)
		}
		n.r = r
	}
	if err := c.nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("bench: raft bootstrap: %w", err)
	}
	if _, err := c.leader(ctx); err != nil {
		return err
	}
	for i := range clients {
		pool, err := newEventPool(c.w, shopID(i), uint64(i))
		if err != nil {
			return err
		}
		c.clients = append(c.clients, &raftClient{c: c, pool: pool})
	}
	return nil
}

// leader waits for a leader and returns it.
func (c *raftContender) leader(ctx context.Context) (*raft.Raft, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, n := range c.nodes {
			if n.r.State() == raft.Leader {
				return n.r, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("bench: raft elected no leader in 30 s")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling for an election with a deadline
		}
	}
}

func (c *raftContender) Client(i int) Client { return c.clients[i] }

func (c *raftContender) Describe(context.Context) (string, error) {
	cfg := raftConfig("x")
	pipe := "pipelined replication off as in central"
	if c.pipeline {
		pipe = "pipelined replication ON (central runs without)"
	}
	return fmt.Sprintf("hashicorp/raft v1.8.0, 3 voters, TCP transport on 127.0.0.1 (%s), ledger.LogStore (Badger, SyncWrites), file snapshots, counting FSM, BatchApplyCh=%v, MaxAppendEntries=%d, heartbeat %v, election %v, commit timeout %v (central's defaults); batch %d events of about %d bytes per entry; %d applies sent again after a leader change",
		pipe, cfg.BatchApplyCh, cfg.MaxAppendEntries, cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.CommitTimeout, c.batch, c.clients[0].pool.eventBytes(), c.retries.Load()), nil
}

// Check waits until every voter has applied the leader's last index, then
// checks that each applied exactly the acknowledged events.
func (c *raftContender) Check(ctx context.Context, acked int64) error {
	l, err := c.leader(ctx)
	if err != nil {
		return err
	}
	if err := l.Barrier(30 * time.Second).Error(); err != nil {
		return fmt.Errorf("raft barrier: %w", err)
	}
	want := l.AppliedIndex()
	deadline := time.Now().Add(30 * time.Second)
	for i, n := range c.nodes {
		for n.r.AppliedIndex() < want {
			if time.Now().After(deadline) {
				return fmt.Errorf("raft voter %d applied %d, leader %d", i, n.r.AppliedIndex(), want)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
		}
		if got := n.fsm.events.Load(); got != acked {
			return fmt.Errorf("raft voter %d applied %d events, %d were acknowledged", i, got, acked)
		}
	}
	return nil
}

func (c *raftContender) Close() error {
	var errs []error
	for _, n := range c.nodes {
		if n.r != nil {
			errs = append(errs, n.r.Shutdown().Error())
		}
		errs = append(errs, n.trans.Close(), n.store.Close())
	}
	return errors.Join(errs...)
}

type raftClient struct {
	c    *raftContender
	pool *eventPool
}

func (cl *raftClient) Do(ctx context.Context) (int, error) {
	first, evs, err := cl.pool.batch(cl.c.batch)
	if err != nil {
		return 0, err
	}
	data, err := msgpack.Marshal(&rawEntry{Shop: string(cl.pool.shop), First: first, Events: evs})
	if err != nil {
		return 0, fmt.Errorf("raft: encode batch of %s seq %d: %w", cl.pool.shop, first, err)
	}
	// An election (the machine is shared) leaves a moment with no leader,
	// or a leader that loses its lease mid-commit: as a shop would, send
	// the batch again to the new leader; the FSM's marks apply it once.
	for {
		l, err := cl.c.leader(ctx)
		if err != nil {
			return 0, fmt.Errorf("raft apply of %s seq %d: %w", cl.pool.shop, first, err)
		}
		f := l.Apply(data, 10*time.Second)
		err = f.Error()
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			cl.c.retries.Add(1)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("raft apply of %s seq %d: %w", cl.pool.shop, first, err)
		}
		if err, _ := f.Response().(error); err != nil {
			return 0, err
		}
		return len(evs), nil
	}
}

// rawEntry is a raw Raft log entry: one shop's batch, the events as they
// are on the wire.
type rawEntry struct {
	Shop   string               `msgpack:"s"`
	First  uint64               `msgpack:"f"`
	Events []msgpack.RawMessage `msgpack:"e"`
}

// countFSM is the raw harness's state machine: it keeps each shop's last
// seq and counts events, and keeps nothing else. The mark makes an entry
// applied twice (a client resends after a lost leadership, not knowing
// whether its first entry committed) count once, as central's marks do.
type countFSM struct {
	events atomic.Int64
	marks  map[string]uint64 // Apply runs on Raft's FSM goroutine only
}

func (f *countFSM) Apply(l *raft.Log) any {
	var e rawEntry
	if err := msgpack.Unmarshal(l.Data, &e); err != nil {
		return fmt.Errorf("raft: entry %d: %w", l.Index, err)
	}
	mark := f.marks[e.Shop]
	last := e.First + uint64(len(e.Events)) - 1
	switch {
	case last <= mark:
		return nil // a resent batch already applied
	case e.First != mark+1:
		return fmt.Errorf("raft: entry %d: %s seq %d after mark %d", l.Index, e.Shop, e.First, mark)
	}
	f.marks[e.Shop] = last
	f.events.Add(int64(len(e.Events)))
	return nil
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type countSnapshot struct{}

func (countSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (countSnapshot) Release()                             {}

// raftStore adapts ledger.LogStore to raft.LogStore and raft.StableStore,
// field for field.
type raftStore struct{ s *ledger.LogStore }

func (a raftStore) FirstIndex() (uint64, error) { return a.s.FirstIndex() }
func (a raftStore) LastIndex() (uint64, error)  { return a.s.LastIndex() }

func (a raftStore) GetLog(index uint64, out *raft.Log) error {
	var e ledger.LogEntry
	if err := a.s.GetLog(index, &e); err != nil {
		if errors.Is(err, ledger.ErrLogNotFound) {
			return raft.ErrLogNotFound
		}
		return err
	}
	*out = raft.Log{Index: e.Index, Term: e.Term, Type: raft.LogType(e.Type), Data: e.Data, Extensions: e.Extensions, AppendedAt: e.AppendedAt}
	return nil
}

func (a raftStore) StoreLog(l *raft.Log) error { return a.StoreLogs([]*raft.Log{l}) }

func (a raftStore) StoreLogs(logs []*raft.Log) error {
	es := make([]ledger.LogEntry, len(logs))
	for i, l := range logs {
		es[i] = ledger.LogEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data, Extensions: l.Extensions, AppendedAt: l.AppendedAt}
	}
	return a.s.StoreLogs(es)
}

func (a raftStore) DeleteRange(min, max uint64) error      { return a.s.DeleteRange(min, max) }
func (a raftStore) Set(key, val []byte) error              { return a.s.Set(key, val) }
func (a raftStore) Get(key []byte) ([]byte, error)         { return a.s.Get(key) }
func (a raftStore) SetUint64(key []byte, val uint64) error { return a.s.SetUint64(key, val) }
func (a raftStore) GetUint64(key []byte) (uint64, error)   { return a.s.GetUint64(key) }

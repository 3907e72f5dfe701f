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

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// raftConfig is the Raft configuration of Storeline's central, copied from
// central.DefaultConfig (central/config.go, central/node.go) so that the
// raw harness differs from central only by what central adds: BatchApplyCh
// on, so concurrent Applies queue in a buffered channel and the leader
// drains up to MaxAppendEntries of them into one StoreLogs (one fsync) and
// one AppendEntries RPC; central's timers, snapshot and trailing-log
// settings. When the central contender is added, read them from
// central.DefaultConfig instead.
func raftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.MaxAppendEntries = 1024
	c.BatchApplyCh = true
	c.SnapshotInterval = 2 * time.Minute
	c.SnapshotThreshold = 16384
	c.TrailingLogs = 10240
	c.NoLegacyTelemetry = true
	c.NoSnapshotRestoreOnStart = true
	c.LogOutput = io.Discard
	return c
}

// raftContender is the raw hashicorp/raft harness: three voters in this
// process on loopback TCP, each with its own log store, a no-op FSM that
// only counts, and each shop batch committed as one log entry (the batch's
// event bytes as a msgpack array). It is what central costs before its
// FSM, decoding and API: the Storeline central contender is measured
// against it.
//
// Log store: ledger.LogStore, the Badger log store central uses (SyncWrites:
// StoreLogs returns after Badger's fsync), adapted to raft.LogStore and
// raft.StableStore below.
type raftContender struct {
	dir     string
	w       *workload
	batch   int
	nodes   []*raftNode
	clients []*raftClient
}

type raftNode struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	store *ledger.LogStore
	fsm   *countFSM
}

func newRaftContender(dir string, w *workload, batch int) *raftContender {
	return &raftContender{dir: dir, w: w, batch: batch}
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
		n := &raftNode{trans: trans, store: store, fsm: &countFSM{}}
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
		r, err := raft.NewRaft(cfg, n.fsm, ls, ls, snaps, n.trans)
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
		pool, err := newEncodedPool(c.w, storeline.StoreID(fmt.Sprintf("shop-%03d", i+1)), uint64(i))
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
	return fmt.Sprintf("hashicorp/raft v1.8.0, 3 voters, TCP transport on 127.0.0.1, ledger.LogStore (Badger, SyncWrites), file snapshots, no-op FSM, BatchApplyCh=%v, MaxAppendEntries=%d, heartbeat %v, election %v, commit timeout %v (central's defaults); batch %d events of about %d bytes per entry",
		cfg.BatchApplyCh, cfg.MaxAppendEntries, cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.CommitTimeout, c.batch, c.clients[0].pool.eventBytes()), nil
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
	pool *encodedPool
	buf  []byte
}

func (cl *raftClient) Do(ctx context.Context) (int, error) {
	_, evs := cl.pool.batch(cl.c.batch)
	data, err := msgpack.Marshal(evs)
	if err != nil {
		return 0, err
	}
	var f raft.ApplyFuture
	for _, n := range cl.c.nodes {
		if n.r.State() == raft.Leader {
			f = n.r.Apply(data, 10*time.Second)
			break
		}
	}
	if f == nil {
		return 0, errors.New("raft: no leader")
	}
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("raft apply: %w", err)
	}
	return len(evs), nil
}

// countFSM is the raw harness's state machine: it counts the events of
// each applied batch and keeps nothing else.
type countFSM struct {
	events atomic.Int64
}

func (f *countFSM) Apply(l *raft.Log) any {
	n, err := msgpackArrayLen(l.Data)
	if err != nil {
		return err
	}
	f.events.Add(int64(n))
	return nil
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type countSnapshot struct{}

func (countSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (countSnapshot) Release()                             {}

// msgpackArrayLen reads the length of the msgpack array at the head of b.
func msgpackArrayLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("raft: empty entry")
	}
	switch c := b[0]; {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), nil
	case c == 0xdc && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), nil
	case c == 0xdd && len(b) >= 5:
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]), nil
	}
	return 0, fmt.Errorf("raft: entry is not a msgpack array (0x%02x)", b[0])
}

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

package central

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// NewBadgerLogStore opens the Badger log store central gives Raft, for the
// raw-Raft benchmark harness.
func NewBadgerLogStore(tb testing.TB, dir string) logStore {
	tb.Helper()
	s, err := ledger.OpenLogStore(dir, ledger.LogStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return logStore{s}
}

// SubmitUnchecked commits records without the checks made before a request
// is submitted, as a request racing another through another central node
// would pass them: only the checks made when the entry applies stand.
func (n *Node) SubmitUnchecked(ctx context.Context, recs ...storeline.Record) error {
	fields := make([]string, len(recs))
	for i := range fields {
		fields[i] = "records[0]"
	}
	_, _, err := n.submitRecords(ctx, "unchecked-"+storeline.NewEventID().String(), recs, fields)
	return err
}

// WithFSMLevel returns cfg with the node telling the others FSM level
// level instead of its binary's (levels.go).
func WithFSMLevel(cfg Config, level int) Config {
	cfg.fsmLevel = level
	return cfg
}

// OpLevelTwo is a test op of FSM level 2: it stores its payload at meta
// key "test/level2".
const OpLevelTwo = "test.level2"

func init() { opLevels[OpLevelTwo] = 2 }

// LevelTwoOp is OpLevelTwo for Open.
func LevelTwoOp() Op {
	return Op{OpLevelTwo, func(tx *Tx, p []byte) ([]byte, error) { return nil, tx.SetMeta("test/level2", p) }}
}

// SubmitPastLevel puts a command in the log without the level check, as
// a leader that checked just before the cluster's configuration changed
// would.
func (n *Node) SubmitPastLevel(op string, payload []byte) (*Result, error) {
	data, err := msgpack.Marshal(&command{Op: op, AtMs: time.Now().UnixMilli(), Payload: payload})
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Response().(*Result), nil
}

// ReconcileRounds returns how many reconcile rounds this node ran as
// leader.
func (n *Node) ReconcileRounds() uint64 { return n.reconciles.Load() }

// GossipAlive reports whether this node's gossip holds id as alive.
func (n *Node) GossipAlive(id string) bool {
	_, ok := n.gos.meta(id)
	return ok
}

// BackupFSM writes the node's FSM state as a Raft snapshot would.
func (n *Node) BackupFSM(w io.Writer) error { return n.rep.Backup(w) }

// RestoreFSM restores the node's FSM from r as Raft would (FSM.Restore).
func (n *Node) RestoreFSM(r io.Reader) error { return n.fsm.Restore(io.NopCloser(r)) }

// LoopContext is the context a round of the node's background loops
// (prune, loyalty sweep) runs under, bounded by d.
func (n *Node) LoopContext(d time.Duration) (context.Context, context.CancelFunc) {
	return n.loopContext(d)
}

// APIHandler is the head-office API's handler, to serve a request as one
// already accepted (in flight) when the node closes.
func (n *Node) APIHandler() http.Handler { return n.api.Handler }

// CloseAPIListener closes the API's listener under its server, as a
// failing network stack would.
func (n *Node) CloseAPIListener() error { return n.apiLn.Close() }

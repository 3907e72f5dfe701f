package central

// The FSM applies committed Raft entries to a ledger.Replica (the ledger in
// replicated mode: the Raft log is its write-ahead log).
//
// Invariants:
//
//  1. Every entry is one command envelope {op, idempotency key, time,
//     payload}; ops are looked up in a registry built at Open, so later
//     packages add ops without touching the dispatcher.
//  2. A batch of entries (BatchApplyCh) is applied in consecutive runs of
//     entries, each in one Badger transaction together with the index of
//     its last entry (a run holds about a third of what one transaction
//     may write; a run Badger still refuses is applied entry by entry);
//     entries at or below the stored index are skipped, so a restart's
//     replay applies nothing twice (the apply counter proves it in tests).
//     How entries are grouped changes nothing of the state they leave.
//  3. An op either returns a business error (a *storeline.Error of a kind
//     other than Internal) having written nothing, or succeeds. Any other
//     error is a storage failure: the node cannot go on with a state that
//     differs from its peers', so it panics with the index.
//  4. The outcome of a keyed command is remembered (idemRetainEntries
//     entries back), so a retry with the same key gets the first outcome and
//     applies nothing; the same key with another payload is a Conflict.
//  5. Apply is deterministic: it reads only the entry and the state (the
//     time an op sees is the leader's clock, carried in the entry).
//  6. A snapshot streams Badger's state, applied index included. Persist
//     may run while later entries apply, so the stream can be ahead of the
//     snapshot's index; that is safe because the state carries its own
//     applied index and replay skips what it holds (invariant 2).

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// idemRetainEntries is how many Raft entries back an idempotency key's
// outcome is remembered. It is a constant, not a config field, because
// every replica must prune the same keys at the same index.
const idemRetainEntries = 1 << 20

// idemPrunePerEntry bounds the pruning work of one entry.
const idemPrunePerEntry = 64

// command is the envelope of every Raft entry the FSM applies.
type command struct {
	Op      string `msgpack:"o"`
	Key     string `msgpack:"k,omitempty"`
	AtMs    int64  `msgpack:"t"`
	Payload []byte `msgpack:"p,omitempty"`
}

// Result is the outcome of one command.
type Result struct {
	// Body is the op's answer (msgpack or nil).
	Body []byte `msgpack:"b,omitempty"`
	// Version is the last master-data version the command wrote.
	Version Version `msgpack:"v"`
	// Index is the Raft index the command was applied at.
	Index uint64 `msgpack:"i"`
	// Duplicate is true when an earlier command with the same key had
	// already been applied; the rest of the Result is its outcome.
	Duplicate bool `msgpack:"d,omitempty"`
	// The business error of the command, by kind name (storeline.Kind).
	ErrKind  string `msgpack:"ek,omitempty"`
	ErrField string `msgpack:"ef,omitempty"`
	ErrMsg   string `msgpack:"em,omitempty"`
}

// Err returns the command's business error, or nil.
func (r *Result) Err() error {
	if r.ErrKind == "" {
		return nil
	}
	return &storeline.Error{Op: "central.apply", Kind: storeline.ParseKind(r.ErrKind), Field: r.ErrField, Err: errors.New(r.ErrMsg)}
}

type storedResult struct {
	Index  uint64   `msgpack:"i"`
	Hash   [32]byte `msgpack:"h"`
	Result Result   `msgpack:"r"`
}

// OpFunc applies one command's payload. See invariant 3: a business error
// must leave tx unwritten.
type OpFunc func(tx *Tx, payload []byte) (body []byte, err error)

// Op is a named operation of the FSM.
type Op struct {
	Name  string
	Apply OpFunc
}

// Tx is what an op sees: the replica transaction of its entry, the
// entry's index, and the leader's time when it was submitted.
type Tx struct {
	*ledger.ReplicaTxn
	Index uint64
	At    time.Time
	pos   uint16
	last  Version
	// items is the FSM's item cache (FSM.items) in a push entry, nil in
	// any other.
	items map[storeline.ItemID]itemFlags
	// cache is the FSM's read cache (FSM.cache) in a push entry, nil in
	// any other.
	cache *pushCache
}

// noItemCache turns the FSM's item cache off, so a test can compare the
// state a log leaves with and without it. Only tests set it.
var noItemCache atomic.Bool

// noPushCache turns the FSM's read cache (pushCache) off, and
// checkPushCache has every push that uses it compare what it answers
// with the state. Only tests set them.
var noPushCache, checkPushCache atomic.Bool

// NextVersion returns the version of the next change in this entry.
func (t *Tx) NextVersion() (Version, error) {
	if t.pos == MaxChangesPerEntry {
		return Version{}, storeline.Errorf(storeline.TooLarge, "central.apply", "more than %d changes in one entry", MaxChangesPerEntry)
	}
	t.pos++
	t.last = Version{Index: t.Index, Pos: t.pos}
	return t.last, nil
}

// FSM is central's Raft state machine.
type FSM struct {
	rep     *ledger.Replica
	ops     map[string]OpFunc
	log     *slog.Logger
	applies atomic.Uint64 // commands applied, not skipped
	split   atomic.Uint64 // transactions refused whole and applied entry by entry
	// onApply, if set, runs after each applied transaction (it wakes the
	// replication long polls).
	onApply func()
	// items caches, across push entries, whether each item a push
	// checked exists and its excise flag, as the state has them (a push
	// reads a few hundred items per entry, the same ones every time).
	// Only push entries use it, and they write no master record; any
	// other entry (which might), a failed or skipped transaction (whose
	// reads may have seen writes then undone) and a restore empty it, so
	// it always answers what a read of the state would. Only the FSM's
	// goroutine touches it.
	items map[storeline.ItemID]itemFlags
	// cache holds, across push entries, what they read of the state
	// again and again: every stock balance of the stores that pushed
	// (read by a scan, which sorts the transaction's pending writes
	// first: the entries before it in the batch), the other balances a
	// push moved, the negative-stock marks it checked and the last
	// purchase costs its cost pass read (backoffice_cogs.go). Only push
	// entries use it, and the functions that write those keys in a push
	// entry write them through to it (no push writes a last cost); any
	// other entry, a failed or skipped transaction and a restore empty
	// it, as they do items.
	cache *pushCache
	// spoolDir holds a snapshot being restored ("" is os.TempDir).
	spoolDir string
}

type itemFlags struct{ exists, excise bool }

var _ raft.BatchingFSM = (*FSM)(nil)

func newFSM(rep *ledger.Replica, log *slog.Logger, ops []Op) (*FSM, error) {
	f := &FSM{rep: rep, ops: map[string]OpFunc{}, log: log, items: map[storeline.ItemID]itemFlags{},
		cache: newPushCache()}
	for _, o := range append(masterOps(), ops...) {
		if _, dup := f.ops[o.Name]; dup || o.Name == "" || o.Apply == nil {
			return nil, fmt.Errorf("central: op %q registered twice or empty", o.Name)
		}
		f.ops[o.Name] = o.Apply
	}
	return f, nil
}

// Applies returns how many commands the FSM has applied (not skipped)
// since it was created.
func (f *FSM) Applies() uint64 { return f.applies.Load() }

// Apply applies one entry.
func (f *FSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies the command entries of logs above the applied index
// in one transaction (invariant 2).
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	var cmds []int
	for i, l := range logs {
		if l.Type == raft.LogCommand && l.Index > f.rep.AppliedIndex() {
			cmds = append(cmds, i)
		}
	}
	if len(cmds) == 0 {
		return out
	}
	// Raft hands over what committed since the last call: under many
	// shops, dozens of pushes. Their writes go in runs of entries carrying
	// about a third of what Badger takes in one transaction (a push
	// writes about 1.3 times what it carries): a transaction Badger
	// refuses costs its whole run twice (applied, discarded, applied again
	// entry by entry) and empties the read caches. Entries that write far
	// more than they carry (a document's posting, a cost catch-up, a
	// prune) can still overflow a run and take that fallback; grouping
	// changes nothing of the state either way (TestRunsSameStateEveryOp).
	budget := f.rep.MaxApplyBytes() / 3
	for start := 0; start < len(cmds); {
		end, size := start+1, int64(len(logs[cmds[start]].Data))
		for end < len(cmds) && size+int64(len(logs[cmds[end]].Data)) <= budget {
			size += int64(len(logs[cmds[end]].Data))
			end++
		}
		chunk := cmds[start:end]
		err := f.applyRange(logs, chunk, out)
		if err != nil && len(chunk) > 1 {
			// Still too big for one transaction: apply it entry by entry.
			f.split.Add(1)
			for _, i := range chunk {
				if err = f.applyRange(logs, []int{i}, out); err != nil {
					break
				}
			}
		}
		if err != nil {
			panic(fmt.Sprintf("central: apply up to index %d: %v", logs[chunk[len(chunk)-1]].Index, err))
		}
		start = end
	}
	return out
}

func (f *FSM) applyRange(logs []*raft.Log, cmds []int, out []interface{}) error {
	last := logs[cmds[len(cmds)-1]].Index
	res := make([]*Result, len(cmds))
	done, err := f.rep.Apply(last, func(rt *ledger.ReplicaTxn) error {
		for j, i := range cmds {
			r, err := f.applyOne(rt, logs[i])
			if err != nil {
				return fmt.Errorf("index %d: %w", logs[i].Index, err)
			}
			res[j] = r
		}
		return nil
	})
	if err != nil || !done {
		clear(f.items)
		f.cache.reset()
	}
	if err != nil {
		return err
	}
	if done {
		f.applies.Add(uint64(len(cmds)))
		for j, i := range cmds {
			out[i] = res[j]
		}
		if f.onApply != nil {
			f.onApply()
		}
	}
	return nil
}

func (f *FSM) applyOne(rt *ledger.ReplicaTxn, l *raft.Log) (*Result, error) {
	var c command
	if err := msgpack.Unmarshal(l.Data, &c); err != nil {
		// A malformed entry is refused identically by every replica.
		return &Result{Index: l.Index, ErrKind: storeline.Invalid.String(), ErrMsg: "undecodable command: " + err.Error()}, nil
	}
	var hash [32]byte
	if c.Key != "" {
		hash = sha256.Sum256(append([]byte(c.Op+"\x00"), c.Payload...))
		v, err := rt.Meta(idemKey(c.Key))
		if err != nil {
			return nil, err
		}
		if v != nil {
			var sr storedResult
			if err := msgpack.Unmarshal(v, &sr); err != nil {
				return nil, fmt.Errorf("decode idempotency record %q: %w", c.Key, err)
			}
			if sr.Hash != hash {
				return &Result{Index: l.Index, ErrKind: storeline.Conflict.String(), ErrField: "Idempotency-Key",
					ErrMsg: fmt.Sprintf("key %q was used at index %d for another request", c.Key, sr.Index)}, nil
			}
			r := sr.Result
			r.Duplicate = true
			return &r, nil
		}
	}
	tx := &Tx{ReplicaTxn: rt, Index: l.Index, At: time.UnixMilli(c.AtMs).UTC()}
	if c.Op == OpReplicationPush && !noItemCache.Load() {
		tx.items = f.items
	} else {
		clear(f.items)
	}
	if c.Op == OpReplicationPush && !noPushCache.Load() {
		tx.cache = f.cache
	} else {
		f.cache.reset()
	}
	res := &Result{Index: l.Index}
	fn, ok := f.ops[c.Op]
	if need := opLevel(c.Op); ok && need > 1 {
		// Above the cluster's level, an op is answered as a node that
		// does not know it answers (levels.go, invariant 3).
		cur, err := readClusterLevel(rt)
		if err != nil {
			return nil, err
		}
		ok = need <= cur
	}
	if !ok {
		res.ErrKind, res.ErrMsg = storeline.Invalid.String(), fmt.Sprintf("unknown op %q (a newer node wrote it?)", c.Op)
	} else {
		body, err := fn(tx, c.Payload)
		if err != nil {
			var se *storeline.Error
			if !errors.As(err, &se) || se.Kind == storeline.Internal {
				return nil, fmt.Errorf("op %s: %w", c.Op, err)
			}
			res.ErrKind, res.ErrField, res.ErrMsg = se.Kind.String(), storeline.FieldOf(err), errMessage(err)
		} else {
			res.Body, res.Version = body, tx.last
		}
	}
	if c.Key != "" {
		enc, err := msgpack.Marshal(&storedResult{Index: l.Index, Hash: hash, Result: *res})
		if err != nil {
			return nil, err
		}
		if err := rt.SetMeta(idemKey(c.Key), enc); err != nil {
			return nil, err
		}
		if err := rt.SetMeta(idemIndexKey(l.Index, c.Key), []byte{}); err != nil {
			return nil, err
		}
	}
	if err := pruneIdem(rt, l.Index); err != nil {
		return nil, err
	}
	return res, nil
}

// errMessage is the innermost message of err, without the op and kind
// prefixes the API adds itself.
func errMessage(err error) string {
	for {
		var se *storeline.Error
		if !errors.As(err, &se) || se.Err == nil {
			return err.Error()
		}
		err = se.Err
	}
}

func idemKey(key string) string { return "idem/" + key }

func idemIndexKey(index uint64, key string) string {
	return "idemx/" + string(ledger.PutU64(index)) + key
}

// pruneIdem forgets the outcomes of keys older than idemRetainEntries.
func pruneIdem(rt *ledger.ReplicaTxn, index uint64) error {
	if index <= idemRetainEntries {
		return nil
	}
	cutoff := index - idemRetainEntries
	var victims []string
	err := rt.ScanMeta("idemx/", func(k string, _ []byte) (bool, error) {
		rest := k[len("idemx/"):]
		if len(rest) < 8 || ledger.U64([]byte(rest[:8])) >= cutoff || len(victims) == idemPrunePerEntry {
			return false, nil
		}
		victims = append(victims, k)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range victims {
		if err := rt.SetMeta(k, nil); err != nil {
			return err
		}
		if err := rt.SetMeta(idemKey(k[len("idemx/")+8:]), nil); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot syncs Badger (Raft may compact the log the snapshot covers;
// invariant 4 of ledger/replicated.go) and returns a snapshot that streams
// the state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.rep.Sync(); err != nil {
		return nil, fmt.Errorf("central: snapshot: %w", err)
	}
	return fsmSnapshot{f.rep}, nil
}

// Restore replaces the state with a snapshot's. The snapshot is read
// whole into a spool file first: the replica drops its state before it
// loads the new one, so a stream that broke midway would leave it half
// restored under its old applied index.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	clear(f.items)
	f.cache.reset()
	sp, err := os.CreateTemp(f.spoolDir, "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("central: restore: spool: %w", err)
	}
	defer func() {
		sp.Close()
		os.Remove(sp.Name())
	}()
	if _, err := io.Copy(sp, rc); err != nil {
		return fmt.Errorf("central: restore: reading the snapshot: %w", err)
	}
	if _, err := sp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("central: restore: spool: %w", err)
	}
	if err := f.rep.Restore(sp); err != nil {
		return fmt.Errorf("central: restore: %w", err)
	}
	return nil
}

type fsmSnapshot struct{ rep *ledger.Replica }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.rep.Backup(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("central: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}

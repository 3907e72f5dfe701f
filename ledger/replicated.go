package ledger

// Replica is a ledger in replicated mode, for a state machine fed by a
// consensus log (central's Raft FSM). It has no WAL and no committer: the
// consensus log is the write-ahead log, and the caller applies each log
// entry (or batch of entries) in one Badger transaction that also records
// the entry's index.
//
// Invariants:
//
//  1. Apply runs one transaction per call; the applied index is written in
//     the same transaction as the entry's effects, so an entry is applied
//     exactly once: Apply at or below the applied index does nothing and
//     reports it (Raft replays its log after a restart).
//  2. Only one goroutine applies at a time (Raft's FSM goroutine); reads
//     run concurrently on Badger's snapshots.
//  3. Versions are assigned by the caller (from the log index), not by the
//     replica, and must grow: PutMasters asserts it.
//  4. Badger is opened without SyncWrites. A crash may lose the latest
//     applied entries; Raft replays them from its synced log. Sync is
//     called before a snapshot is taken, because after a snapshot Raft may
//     compact the log entries the snapshot covers.
//
// The master-data layout is the ledger's own (codec.go), so the read
// methods of Ledger serve a Replica unchanged.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

var kRaftApplied = []byte("xraftidx")

// replicaMagic starts a replica snapshot stream.
const replicaMagic = "storeline-replica-snapshot v1\n"

// ReplicaOptions configure OpenReplica.
type ReplicaOptions struct {
	// MemTableBytes is Badger's memtable size; it bounds one Apply
	// transaction (about 15% of it).
	MemTableBytes int64
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

// Replica is safe for concurrent reads with one applier.
type Replica struct {
	dir     string
	db      *badger.DB
	l       *Ledger // read methods over db
	applied atomic.Uint64
	last    uint64 // last master version written (applier only)
	// restores counts Restore's starts and ends, so it is odd while one
	// runs: the store is then empty or half loaded under the old applied
	// index, and a read answered from it could move a shop's cursor past
	// changes it never got. Reads refuse (Unavailable) instead. A restore
	// that failed once it began, or one a crash cut short (its marker
	// file, restoreMarker, is found at open), never ends: reads refuse
	// until a later restore succeeds.
	restores atomic.Uint64
	// maxTxnBytes is MaxApplyBytes.
	maxTxnBytes int64
}

// errRestoring is what a read gets while a snapshot is being restored.
var errRestoring = errors.New("replica is restoring a snapshot, retry")

// guarded runs read unless a Restore runs, and refuses its answer if a
// Restore started or ended meanwhile.
func (r *Replica) guarded(op string, read func() error) error {
	g := r.restores.Load()
	if g%2 == 1 {
		return storeline.E(op, storeline.Unavailable, errRestoring)
	}
	err := read()
	if r.restores.Load() != g {
		return storeline.E(op, storeline.Unavailable, errRestoring)
	}
	return err
}

// OpenReplica opens (or creates) a replica in dir.
func OpenReplica(dir string, o ReplicaOptions) (*Replica, error) {
	const op = "ledger.OpenReplica"
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 32 << 20
	}
	if o.MemTableBytes < 8<<20 || o.MemTableBytes > 1<<30 {
		return nil, storeline.E(op, storeline.Invalid, storeline.Invalidf("MemTableBytes", "%d out of [8 MiB, 1 GiB]", o.MemTableBytes))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, storeline.E(op, ioKind(err), err)
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false). // the consensus log is the WAL (invariant 4)
		WithDetectConflicts(false).
		WithMemTableSize(o.MemTableBytes).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(16 << 20).
		WithNumVersionsToKeep(1).
		WithLogger(nil)
	db, err := openAfterCrash(opts, badger.Open)
	if err != nil {
		return nil, storeline.E(op, ioKind(err), fmt.Errorf("badger %s: %w", dir, err))
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r := &Replica{dir: dir, db: db, l: &Ledger{db: db, ver: newVersions(db, false), log: lg, replica: true}, maxTxnBytes: o.MemTableBytes * 15 / 100}
	applied, err := r.load()
	if err != nil {
		_ = db.Close()
		return nil, storeline.E(op, storeline.Internal, err)
	}
	if _, err := os.Stat(filepath.Join(dir, restoreMarker)); err == nil {
		// A restore was cut short: the store holds part of a snapshot
		// under whatever applied index it loaded. Applied 0 makes the
		// node restore the latest snapshot at start; reads refuse until
		// a restore succeeds.
		lg.Warn("ledger: replica: a snapshot restore was cut short; the state waits for a restore", "dir", dir)
		r.restores.Store(1)
		applied = 0
	} else if !errors.Is(err, os.ErrNotExist) {
		_ = db.Close()
		return nil, storeline.E(op, ioKind(err), err)
	}
	r.applied.Store(applied)
	return r, nil
}

// restoreMarker is the file a Replica's Restore keeps in its directory
// from before it drops the old state until the new one is loaded and
// synced.
const restoreMarker = "RESTORING"

// setRestoreMarker creates (on) or removes the restore marker, durably.
func (r *Replica) setRestoreMarker(on bool) error {
	p := filepath.Join(r.dir, restoreMarker)
	if on {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return err
		}
	} else if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return osFS{}.SyncDir(r.dir)
}

func (r *Replica) load() (applied uint64, err error) {
	err = r.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, kRaftApplied)
		if err != nil {
			return err
		}
		if v != nil {
			applied = getU64(v)
		}
		r.last = 0
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tVersion}, Reverse: true})
		defer it.Close()
		it.Seek(versionKey(^uint64(0)))
		if it.Valid() {
			r.last = getU64(it.Item().Key()[1:])
		}
		return nil
	})
	return applied, err
}

// Close closes Badger after syncing it.
func (r *Replica) Close() error {
	r.l.ver.shut() // reads through r.l finish first (versions.go, invariant 4)
	err := errors.Join(r.db.Sync(), r.db.Close())
	if err != nil {
		return storeline.E("ledger.Replica.Close", storeline.Internal, err)
	}
	return nil
}

// MaxApplyBytes is about the most one Apply's transaction may write:
// Badger refuses a transaction past 15% of its memtable (ErrTxnTooBig),
// keys, values and per-entry overhead counted, or past that many bytes
// over its largest skiplist node in writes (about 52,000 at the default
// memtable), which binds first for writes under about 84 bytes.
func (r *Replica) MaxApplyBytes() int64 { return r.maxTxnBytes }

// AppliedIndex returns the index of the last applied log entry.
func (r *Replica) AppliedIndex() uint64 { return r.applied.Load() }

// Sync makes everything applied so far durable in Badger.
func (r *Replica) Sync() error {
	if err := r.db.Sync(); err != nil {
		return storeline.E("ledger.Replica.Sync", ioKind(err), err)
	}
	return nil
}

// Apply runs fn in one transaction that also records index as applied,
// unless index is at or below the applied index: then it does nothing and
// returns false. An error from fn (or Badger) discards the transaction;
// the caller must treat it as fatal, since the entry is committed in the
// log. Business outcomes belong in fn's own results, not its error.
func (r *Replica) Apply(index uint64, fn func(*ReplicaTxn) error) (bool, error) {
	if index <= r.applied.Load() {
		return false, nil
	}
	txn := r.db.NewTransaction(true)
	defer txn.Discard()
	last := r.last
	tx := &ReplicaTxn{txn: txn, r: r, last: last}
	if err := fn(tx); err != nil {
		return false, fmt.Errorf("ledger: replica apply %d: %w", index, err)
	}
	if err := txn.Set(kRaftApplied, u64(index)); err != nil {
		return false, fmt.Errorf("ledger: replica apply %d: %w", index, err)
	}
	if err := txn.Commit(); err != nil {
		return false, fmt.Errorf("ledger: replica apply %d: commit: %w", index, err)
	}
	r.last = tx.last
	r.applied.Store(index)
	return true, nil
}

// MasterWrite is one master-data change of a replicated entry: a record
// to store, or (Record nil) a tombstone for Kind and ID.
type MasterWrite struct {
	Version uint64
	Record  storeline.Record
	Kind    storeline.MasterKind
	ID      string
}

// ReplicaTxn is the transaction of one Apply. Reads see its own writes.
type ReplicaTxn struct {
	txn  *badger.Txn
	r    *Replica
	last uint64
}

// GetMaster decodes the live record (kind, id) into into, replacing all it
// held; false (into untouched) if there is none.
func (t *ReplicaTxn) GetMaster(kind storeline.MasterKind, id string, into storeline.Record) (bool, error) {
	mv, err := getMaster(t.txn, kind, id)
	if err != nil || mv == nil || mv.Deleted {
		return false, err
	}
	if into != nil {
		if err := decodeRecord(mv.Data, into); err != nil {
			return false, fmt.Errorf("ledger: decode %s %s: %w", kind, id, err)
		}
	}
	return true, nil
}

// HasMaster reports whether the live record (kind, id) exists. It reads
// only the stored value's tombstone flag: central checks every item a
// pushed receipt sells, thousands a second.
func (t *ReplicaTxn) HasMaster(kind storeline.MasterKind, id string) (bool, error) {
	it, err := t.txn.Get(masterKey(kind, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	live := false
	err = it.Value(func(v []byte) error {
		d := msgpack.GetDecoder()
		defer msgpack.PutDecoder(d)
		d.Reset(bytes.NewReader(v))
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		live = true
		for range n {
			k, err := d.DecodeString()
			if err != nil {
				return err
			}
			if k != "x" {
				err = d.Skip()
			} else {
				var del bool
				del, err = d.DecodeBool()
				live = !del
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("ledger: decode %s %s: %w", kind, id, err)
	}
	return live, nil
}

// Meta returns the value of a metadata key, nil if absent.
func (t *ReplicaTxn) Meta(key string) ([]byte, error) { return getValue(t.txn, metaKey(key)) }

// SetMeta sets a metadata key; a nil value deletes it.
func (t *ReplicaTxn) SetMeta(key string, val []byte) error {
	if val == nil {
		return t.txn.Delete(metaKey(key))
	}
	return t.txn.Set(metaKey(key), val)
}

// ScanMeta calls fn for each metadata key with the prefix, in key order,
// until fn returns false.
func (t *ReplicaTxn) ScanMeta(prefix string, fn func(key string, val []byte) (bool, error)) error {
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: metaKey(prefix), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(string(it.Item().Key()[1:]), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// PutMasters validates and stores ws all or none, in order. A unique key
// held by another record is a Conflict and a tombstone for a record that
// does not exist is NotFound; both are returned before anything is
// written, so the transaction stays usable. Versions must grow.
func (t *ReplicaTxn) PutMasters(ws []MasterWrite) error {
	const op = "ledger.PutMasters"
	type prepared struct {
		kind storeline.MasterKind
		id   string
		mv   masterVal
	}
	ps := make([]prepared, len(ws))
	owners := map[string]string{}
	held := map[string][]string{}
	last := t.last
	for i, w := range ws {
		if w.Version <= last {
			panic(fmt.Sprintf("ledger: master version %d after %d", w.Version, last))
		}
		last = w.Version
		p := prepared{kind: w.Kind, id: w.ID, mv: masterVal{Version: w.Version}}
		if w.Record != nil {
			if err := w.Record.Validate(); err != nil {
				return storeline.E(op, storeline.Invalid, err)
			}
			p.kind, p.id = w.Record.MasterKind(), w.Record.MasterID()
			data, err := msgpack.Marshal(w.Record)
			if err != nil {
				return storeline.E(op, storeline.Invalid, err)
			}
			p.mv.Data, p.mv.Keys = data, uniqueKeys(w.Record.UniqueKeys())
		} else {
			p.mv.Deleted = true
		}
		if err := checkKeyPart("kind", string(p.kind)); err != nil {
			return storeline.E(op, storeline.Invalid, err)
		}
		if err := checkKeyPart("id", p.id); err != nil {
			return storeline.E(op, storeline.Invalid, err)
		}
		mk := string(masterKey(p.kind, p.id))
		old, ok := held[mk]
		if !ok {
			mv, err := getMaster(t.txn, p.kind, p.id)
			if err != nil {
				return err
			}
			live := mv != nil && !mv.Deleted
			if live {
				old = mv.Keys
			}
			if p.mv.Deleted && !live {
				return storeline.Errorf(storeline.NotFound, op, "no %s %q", p.kind, p.id)
			}
		}
		for _, k := range old {
			owners[string(uniqueKey(p.kind, k))] = ""
		}
		for _, k := range p.mv.Keys {
			if err := checkKeyPart("unique key", k); err != nil {
				return storeline.E(op, storeline.Invalid, err)
			}
			uk := string(uniqueKey(p.kind, k))
			owner, ok := owners[uk]
			if !ok {
				v, err := getValue(t.txn, []byte(uk))
				if err != nil {
					return err
				}
				owner = string(v)
			}
			if owner != "" && owner != p.id {
				return storeline.Errorf(storeline.Conflict, op, "%s %q: unique key %q is held by %q", p.kind, p.id, k, owner)
			}
			owners[uk] = p.id
		}
		held[mk] = p.mv.Keys
		ps[i] = p
	}
	for _, p := range ps {
		if err := putMaster(t.txn, p.kind, p.id, &p.mv); err != nil {
			return err
		}
	}
	t.last = last
	return nil
}

// PruneTombstones removes tombstones with versions below v, at most limit
// of them, and returns how many it removed. A reader whose cursor is below
// the highest pruned version must resync: the caller records that floor.
func (t *ReplicaTxn) PruneTombstones(below uint64, limit int) (int, error) {
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tVersion}, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	type victim struct{ vk, mk []byte }
	var vs []victim
	for it.Rewind(); it.Valid() && len(vs) < limit; it.Next() {
		ver := getU64(it.Item().Key()[1:])
		if ver >= below {
			break
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return 0, err
		}
		kind, id, _ := cutZero(v)
		mv, err := getMaster(t.txn, storeline.MasterKind(kind), id)
		if err != nil {
			return 0, err
		}
		if mv != nil && mv.Deleted && mv.Version == ver {
			vs = append(vs, victim{it.Item().KeyCopy(nil), masterKey(storeline.MasterKind(kind), id)})
		}
	}
	it.Close()
	for _, v := range vs {
		if err := t.txn.Delete(v.vk); err != nil {
			return 0, err
		}
		if err := t.txn.Delete(v.mk); err != nil {
			return 0, err
		}
	}
	return len(vs), nil
}

func cutZero(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return string(b), "", false
}

// GetMaster decodes the live record (kind, id); NotFound if none.
func (r *Replica) GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error {
	return r.guarded("ledger.Replica.GetMaster", func() error { return r.l.GetMaster(kind, id, into) })
}

// LookupMaster decodes the live record of kind holding a unique key.
func (r *Replica) LookupMaster(kind storeline.MasterKind, key string, into storeline.Record) error {
	return r.guarded("ledger.Replica.LookupMaster", func() error { return r.l.LookupMaster(kind, key, into) })
}

// ScanMaster calls fn for each live record of kind whose ID has the prefix.
func (r *Replica) ScanMaster(kind storeline.MasterKind, idPrefix string, fn func(storeline.Record) error) error {
	return r.guarded("ledger.Replica.ScanMaster", func() error { return r.l.ScanMaster(kind, idPrefix, fn) })
}

// ScanMasterAfter calls fn for each live record of kind with an ID above
// after, in ID order, until fn returns false.
func (r *Replica) ScanMasterAfter(kind storeline.MasterKind, after string, fn func(storeline.Record) (bool, error)) error {
	return r.guarded("ledger.Replica.ScanMasterAfter", func() error { return r.scanMasterAfter(kind, after, fn) })
}

func (r *Replica) scanMasterAfter(kind storeline.MasterKind, after string, fn func(storeline.Record) (bool, error)) error {
	err := r.l.ver.view(func(txn *badger.Txn) error {
		p := masterKey(kind, "")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		start := masterKey(kind, after)
		for it.Seek(start); it.Valid(); it.Next() {
			if after != "" && string(it.Item().Key()) == string(start) {
				continue
			}
			var mv masterVal
			if err := it.Item().Value(func(v []byte) error { return msgpack.Unmarshal(v, &mv) }); err != nil {
				return err
			}
			if mv.Deleted {
				continue
			}
			rec, err := storeline.NewRecord(kind)
			if err != nil {
				return err
			}
			if err := msgpack.Unmarshal(mv.Data, rec); err != nil {
				return err
			}
			more, err := fn(rec)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
	return r.l.readErr("ledger.Replica.ScanMasterAfter", err)
}

// MasterChanges returns up to limit latest changes above version after.
func (r *Replica) MasterChanges(after uint64, limit int) ([]MasterChange, error) {
	var out []MasterChange
	err := r.guarded("ledger.Replica.MasterChanges", func() (err error) {
		out, err = r.l.MasterChanges(after, limit)
		return err
	})
	return out, err
}

// Meta returns a metadata value, nil if absent.
func (r *Replica) Meta(key string) ([]byte, error) {
	var out []byte
	err := r.guarded("ledger.Replica.Meta", func() (err error) {
		out, err = r.meta(key)
		return err
	})
	return out, err
}

func (r *Replica) meta(key string) ([]byte, error) {
	var out []byte
	err := r.l.ver.view(func(txn *badger.Txn) error {
		var err error
		out, err = getValue(txn, metaKey(key))
		return err
	})
	return out, r.l.readErr("ledger.Replica.Meta", err)
}

// Backup writes the replica's whole state (applied index included) to w,
// read at one instant.
func (r *Replica) Backup(w io.Writer) error {
	if _, err := io.WriteString(w, replicaMagic); err != nil {
		return storeline.E("ledger.Replica.Backup", storeline.Unavailable, err)
	}
	// Through versions, so Close waits for it (invariant 4 there).
	if err := r.l.ver.backup(w); err != nil {
		if errors.Is(err, badger.ErrDBClosed) {
			return storeline.E("ledger.Replica.Backup", storeline.Unavailable, err)
		}
		return storeline.E("ledger.Replica.Backup", storeline.Internal, fmt.Errorf("badger backup: %w", err))
	}
	return nil
}

// Restore replaces the replica's state with a Backup stream. No Apply may
// run meanwhile (Raft calls FSM.Restore with the FSM goroutine idle).
func (r *Replica) Restore(rd io.Reader) error {
	const op = "ledger.Replica.Restore"
	br := bufio.NewReader(rd)
	head := make([]byte, len(replicaMagic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != replicaMagic {
		return storeline.Errorf(storeline.Invalid, op, "not a replica snapshot (header %q)", head)
	}
	// From here a failure leaves the restore begun (reads refuse) and,
	// once the marker is down, a reopen waiting for another restore:
	// the old state may be gone and the new one is not whole.
	if r.restores.Load()%2 == 0 {
		r.restores.Add(1)
	}
	if err := r.setRestoreMarker(true); err != nil {
		return storeline.E(op, ioKind(err), fmt.Errorf("restore marker: %w", err))
	}
	if err := r.db.DropAll(); err != nil {
		return storeline.E(op, storeline.Internal, fmt.Errorf("drop: %w", err))
	}
	if err := r.db.Load(br, 256); err != nil {
		return storeline.E(op, storeline.Internal, fmt.Errorf("load: %w", err))
	}
	if err := r.db.Sync(); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	applied, err := r.load()
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	if err := r.setRestoreMarker(false); err != nil {
		return storeline.E(op, ioKind(err), fmt.Errorf("restore marker: %w", err))
	}
	// The restore ends before its applied index shows: whoever sees the
	// index may read the state it stands for at once.
	r.restores.Add(1)
	r.applied.Store(applied)
	return nil
}

// U64 and PutU64 encode the integers replicated state machines keep in
// metadata, in the ledger's byte order.
func U64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// PutU64 encodes v in 8 big-endian bytes.
func PutU64(v uint64) []byte { return u64(v) }

// View runs fn in a read-only transaction, for checks made before a
// command is submitted (fn must not write).
func (r *Replica) View(fn func(*ReplicaTxn) error) error {
	return r.guarded("ledger.Replica.View", func() error {
		err := r.l.ver.view(func(txn *badger.Txn) error {
			return fn(&ReplicaTxn{txn: txn, r: r})
		})
		return r.l.readErr("ledger.Replica.View", err)
	})
}

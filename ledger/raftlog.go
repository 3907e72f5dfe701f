package ledger

// LogStore is a consensus log and a small stable store over Badger, for
// central's Raft. It lives here, and not in central, because Badger is the
// ledger's engine (DESIGN.md: Badger only via ledger); central adapts it to
// hashicorp/raft's LogStore and StableStore interfaces (the ledger may not
// import raft, so entries are this package's LogEntry).
//
// Why Badger and not raft-boltdb: one storage engine for the whole system
// (one set of tuning, backup and failure modes to know), no bbolt, and no
// dependency on the go-metrics module raft-boltdb v2.3 imports, which raft
// v1.8.0's go-metrics no longer provides (the version trap measured in
// issue 4).
//
// Durability: the store is opened with SyncWrites, so StoreLogs, Set and
// DeleteRange return only after Badger's value log is fsynced. Raft counts
// an entry as persisted when StoreLogs returns, so this is what makes an
// acknowledged write survive a power loss. The FSM's Badger (Replica) is
// not synced per entry: this log is its write-ahead log.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// ErrLogNotFound is returned by LogStore.Get and GetLog for a missing key
// or index. Its text is "not found", which hashicorp/raft compares against.
var ErrLogNotFound = errors.New("not found")

// Key space of a LogStore (its own Badger directory):
//
//	L index8 → LogEntry (msgpack)
//	S key    → value (stable store)
const (
	tLog    = 'L'
	tStable = 'S'
)

// LogEntry is one consensus log entry, field for field what Raft stores.
type LogEntry struct {
	Index      uint64    `msgpack:"i"`
	Term       uint64    `msgpack:"t"`
	Type       uint8     `msgpack:"y"`
	Data       []byte    `msgpack:"d,omitempty"`
	Extensions []byte    `msgpack:"x,omitempty"`
	AppendedAt time.Time `msgpack:"a"`
}

// LogStore is safe for concurrent use.
type LogStore struct {
	db *badger.DB
}

// LogStoreOptions configure OpenLogStore.
type LogStoreOptions struct {
	// MemTableBytes is Badger's memtable size; it bounds one StoreLogs
	// transaction (about 15% of it) before it is split.
	MemTableBytes int64
	// Logger receives Badger's warnings; nil discards them.
	Logger *slog.Logger
}

// OpenLogStore opens (or creates) a log store in dir.
func OpenLogStore(dir string, o LogStoreOptions) (*LogStore, error) {
	const op = "ledger.OpenLogStore"
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 16 << 20
	}
	if o.MemTableBytes < 8<<20 || o.MemTableBytes > 1<<30 {
		return nil, storeline.E(op, storeline.Invalid, storeline.Invalidf("MemTableBytes", "%d out of [8 MiB, 1 GiB]", o.MemTableBytes))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, storeline.E(op, ioKind(err), err)
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMemTableSize(o.MemTableBytes).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(8 << 20).
		WithNumVersionsToKeep(1).
		WithLogger(nil)
	db, err := openAfterCrash(opts, badger.Open)
	if err != nil {
		return nil, storeline.E(op, ioKind(err), fmt.Errorf("badger %s: %w", dir, err))
	}
	return &LogStore{db: db}, nil
}

// Close closes the store.
func (s *LogStore) Close() error {
	if err := s.db.Close(); err != nil {
		return storeline.E("ledger.LogStore.Close", storeline.Internal, err)
	}
	return nil
}

func logKey(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tLog}, i) }

// edgeIndex returns the first (or last) stored index, 0 when empty.
func (s *LogStore) edgeIndex(last bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tLog}, Reverse: last})
		defer it.Close()
		if last {
			it.Seek(logKey(^uint64(0)))
		} else {
			it.Rewind()
		}
		if it.Valid() {
			idx = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: log store index: %w", err)
	}
	return idx, nil
}

// FirstIndex returns the first stored index, 0 when the log is empty.
func (s *LogStore) FirstIndex() (uint64, error) { return s.edgeIndex(false) }

// LastIndex returns the last stored index, 0 when the log is empty.
func (s *LogStore) LastIndex() (uint64, error) { return s.edgeIndex(true) }

// GetLog decodes the entry at index into e; ErrLogNotFound if absent.
func (s *LogStore) GetLog(index uint64, e *LogEntry) error {
	return s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(logKey(index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrLogNotFound
		}
		if err != nil {
			return fmt.Errorf("ledger: log %d: %w", index, err)
		}
		return it.Value(func(v []byte) error { return msgpack.Unmarshal(v, e) })
	})
}

// StoreLogs stores entries and returns after they are synced. A batch too
// big for one Badger transaction is split; Raft rewrites a partly stored
// batch on its next attempt, so that is safe.
func (s *LogStore) StoreLogs(entries []LogEntry) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for i := range entries {
		v, err := msgpack.Marshal(&entries[i])
		if err != nil {
			return fmt.Errorf("ledger: encode log %d: %w", entries[i].Index, err)
		}
		k := logKey(entries[i].Index)
		if err := txn.Set(k, v); errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("ledger: store logs: %w", err)
			}
			txn = s.db.NewTransaction(true)
			if err := txn.Set(k, v); err != nil {
				return fmt.Errorf("ledger: store log %d: %w", entries[i].Index, err)
			}
		} else if err != nil {
			return fmt.Errorf("ledger: store log %d: %w", entries[i].Index, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("ledger: store logs: %w", err)
	}
	return nil
}

// DeleteRange deletes the entries with indexes in [min, max].
func (s *LogStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	for {
		done := true
		err := s.db.Update(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tLog}})
			defer it.Close()
			n := 0
			for it.Seek(logKey(min)); it.Valid(); it.Next() {
				idx := binary.BigEndian.Uint64(it.Item().Key()[1:])
				if idx > max {
					return nil
				}
				if n == 10000 { // bound one transaction; continue in the next
					min, done = idx, false
					return nil
				}
				if err := txn.Delete(it.Item().KeyCopy(nil)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("ledger: delete logs [%d, %d]: %w", min, max, err)
		}
		if done {
			return nil
		}
	}
}

// Set stores a stable value.
func (s *LogStore) Set(key, val []byte) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{tStable}, key...), append([]byte{}, val...))
	})
	if err != nil {
		return fmt.Errorf("ledger: stable set %q: %w", key, err)
	}
	return nil
}

// Get returns a stable value; ErrLogNotFound if absent.
func (s *LogStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append([]byte{tStable}, key...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrLogNotFound
		}
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	return out, err
}

// SetUint64 stores a stable integer.
func (s *LogStore) SetUint64(key []byte, val uint64) error { return s.Set(key, u64(val)) }

// GetUint64 returns a stable integer, 0 if absent.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if errors.Is(err, ErrLogNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("ledger: stable %q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

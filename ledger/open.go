package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// firstEpoch is the epoch of a new ledger. A restore moves to a larger one
// (the HLC time of the restore).
const firstEpoch = 1

func openBadger(dir string, memTableBytes, valueThreshold, valueLogFileBytes int64) (*badger.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false). // the WAL is the durability boundary
		WithDetectConflicts(false).
		WithMemTableSize(memTableBytes).
		WithNumVersionsToKeep(1).
		// Snappy on every flushed table cost ~6% of the CPU of a
		// 64-writer append load (2 cores); tables are small and the disk
		// is not the bound. Tables written compressed keep their own
		// compression in the manifest and stay readable.
		WithCompression(options.None).
		WithValueThreshold(valueThreshold). // vlog.go
		WithVerifyValueChecksum(true).      // a damaged value never reads as another (vlog.go)
		WithLogger(nil)
	if valueLogFileBytes > 0 {
		opts = opts.WithValueLogFileSize(valueLogFileBytes)
	}
	return openAfterCrash(opts, badger.OpenManaged) // versions.go numbers the commits
}

// openAfterCrash opens Badger with opts by open (badger.Open or
// badger.OpenManaged). A crash between Badger's creating a memtable or
// value-log file and its first write leaves the file empty, and Badger's
// next Open fails on it: it sizes the file, then takes the "new file"
// answer for an error (upstream issue 2207). The Open after that finds
// the file sized, with nothing in it, and goes on: a node must start
// after any crash without someone restarting it twice.
func openAfterCrash(opts badger.Options, open func(badger.Options) (*badger.DB, error)) (*badger.DB, error) {
	empty, err := emptyBadgerFiles(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.ValueDir != opts.Dir {
		more, err := emptyBadgerFiles(opts.ValueDir)
		if err != nil {
			return nil, err
		}
		empty = append(empty, more...)
	}
	db, err := open(opts)
	if err != nil && len(empty) > 0 {
		db, err = open(opts)
	}
	return db, err
}

// emptyBadgerFiles lists the empty memtable and value-log files in dir.
func emptyBadgerFiles(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if n := e.Name(); strings.HasSuffix(n, ".mem") || strings.HasSuffix(n, ".vlog") {
			if fi, err := e.Info(); err == nil && fi.Size() == 0 {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// ErrOriginMismatch is the cause of the Invalid error Open returns for a
// data directory that holds another store's ledger (Options.Origin is not
// the origin it was created with, or restored from a backup of): the new
// origin's events would land on top of the other store's balances.
var ErrOriginMismatch = errors.New("data directory holds another store's ledger")

// recover loads the persisted state, replays the WAL frames Badger lacks
// and prepares the WAL for writing.
func (l *Ledger) recover() error {
	const op = "ledger.Open"
	var origin []byte
	err := l.ver.view(func(txn *badger.Txn) error {
		for _, kv := range []struct {
			k []byte
			v *uint64
		}{{kAppliedLSN, &l.st.lsn}, {kHLC, &l.st.hlc}, {kEpoch, &l.st.epoch}, {kSeq, &l.st.seq}, {kMasterVersion, &l.st.mver}} {
			v, err := getValue(txn, kv.k)
			if err != nil {
				return err
			}
			if v != nil {
				*kv.v = getU64(v)
			}
		}
		var err error
		origin, err = getValue(txn, kOrigin)
		return err
	})
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	// Checked before Open writes anything (Open's error path leaves no
	// read-back marker for this refusal).
	if origin != nil && string(origin) != string(l.o.Origin) {
		return storeline.E(op, storeline.Invalid, fmt.Errorf("%w: %s holds the ledger of origin %q, configured origin is %q",
			ErrOriginMismatch, l.o.Dir, origin, l.o.Origin))
	}
	if l.st.epoch == 0 || origin == nil {
		// A new ledger, or one written before the origin was persisted,
		// which takes the configured one. Every state key is written,
		// not only the ones a batch has set yet, so a Backup of this
		// ledger always carries them all (Restore requires them). The
		// values are the ones just read (or their zero defaults): the
		// state does not change.
		if l.st.epoch == 0 {
			l.st.epoch = firstEpoch
		} else if origin == nil {
			l.log.Info("ledger: data directory has no origin, adopting the configured one", "origin", l.o.Origin)
		}
		err := l.ver.update(func(txn *badger.Txn) error {
			if err := txn.Set(kOrigin, []byte(l.o.Origin)); err != nil {
				return err
			}
			return l.putState(txn)
		})
		if err != nil {
			return storeline.E(op, ioKind(err), err)
		}
	}
	applied := l.st.lsn
	replayed := 0
	var lastSeen uint64
	repair, boot, err := l.valueRepair(l.readBackAsked)
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	w, err := openWAL(l.seams.FS, filepath.Join(l.o.Dir, "wal"), l.o.WALSegmentBytes, func(fr walFrame) error {
		lastSeen = fr.lsn
		if fr.lsn <= l.st.lsn {
			if err := repair.add(fr); err != nil {
				return fmt.Errorf("wal: read back LSN %d: %w", fr.lsn, err)
			}
			return nil
		}
		if err := repair.finish(); err != nil {
			return fmt.Errorf("wal: read back before LSN %d: %w", fr.lsn, err)
		}
		if fr.lsn != l.st.lsn+1 {
			return fmt.Errorf("wal: frame LSN %d after applied LSN %d: frames are missing", fr.lsn, l.st.lsn)
		}
		if err := l.replay(fr); err != nil {
			return fmt.Errorf("wal: replay LSN %d: %w", fr.lsn, err)
		}
		replayed++
		return nil
	})
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	l.wal = w
	if err := repair.finish(); err != nil {
		return storeline.E(op, ioKind(err), fmt.Errorf("wal: read back: %w", err))
	}
	l.readBack = repair.stats
	if lastSeen > l.st.lsn {
		panic(fmt.Sprintf("ledger: WAL LSN %d beyond applied %d after replay", lastSeen, l.st.lsn))
	}
	if replayed > 0 {
		// What was replayed may exist only in the page cache (a failed
		// fsync before a restart of the process): make it durable in
		// Badger before anything is answered from it.
		if err := l.syncBadger(); err != nil {
			return storeline.E(op, ioKind(err), fmt.Errorf("sync after replay: %w", err))
		}
		l.log.Info("ledger: replayed WAL", "from_lsn", applied+1, "to_lsn", l.st.lsn, "batches", replayed)
	}
	if err := l.upgradeViews(); err != nil {
		return storeline.E(op, ioKind(err), fmt.Errorf("views: %w", err))
	}
	if boot != "" {
		if err := l.ver.update(func(txn *badger.Txn) error { return txn.Set(kBoot, []byte(boot)) }); err != nil {
			return storeline.E(op, ioKind(err), err)
		}
	}
	if l.readBackAsked {
		if err := l.syncBadger(); err != nil {
			return storeline.E(op, ioKind(err), fmt.Errorf("sync after the read-back: %w", err))
		}
		if err := l.readBackDone(); err != nil {
			return storeline.E(op, ioKind(err), fmt.Errorf("read-back marker: %w", err))
		}
	}
	observeClock(l.o.Clock, l.st.hlc)
	l.publish()
	return nil
}

// replay applies one WAL frame in its own transaction with its LSN.
func (l *Ledger) replay(fr walFrame) error {
	var wb walBatch
	if err := msgpack.Unmarshal(fr.body, &wb); err != nil {
		return err
	}
	txn := l.ver.begin(true)
	defer l.ver.end(txn)
	for i := range wb.Recs {
		if err := l.apply(txn, &wb.Recs[i], nil); err != nil {
			return err
		}
	}
	l.st.lsn = fr.lsn
	l.st.hlc = max(l.st.hlc, wb.HLC)
	if err := l.putState(txn); err != nil {
		return err
	}
	return l.ver.commit(txn)
}

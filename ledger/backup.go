package ledger

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/storeline/storeline"
)

// backupMagic starts every backup stream; the version after it changes
// when the stream's layout does.
const backupMagic = "storeline-ledger-backup v1\n"

// Backup writes a consistent snapshot of the ledger to w while it runs:
// a header, then Badger's backup stream. Every acknowledged event is in
// Badger once caughtUp returns (invariant 2 of commit.go), so the WAL is
// not needed; the stream carries the ledger's state keys (epoch, sequence, HLC high-water mark,
// master version, applied LSN) with the data, read at one instant.
func (l *Ledger) Backup(w io.Writer) error {
	const op = "ledger.Backup"
	if err := l.available(op); err != nil {
		return err
	}
	if err := l.caughtUp(); err != nil {
		return err
	}
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	if err := l.ver.backup(w); err != nil {
		return storeline.E(op, storeline.Internal, fmt.Errorf("badger backup: %w", err))
	}
	return nil
}

// Restore loads a Backup stream into dir, the empty data directory of a
// stopped node, and moves the node to newEpoch, so the restored node's own
// sequence numbers restart at 1 in a larger epoch. Callers pass the HLC
// time of the restore; it must be above the backup's epoch (epochs only
// grow). Deduplication by (origin, ID) holds across epochs, so a till's
// retry of an event the backup holds is still counted once.
func Restore(dir string, r io.Reader, newEpoch uint64) (err error) {
	const op = "ledger.Restore"
	if es, err := os.ReadDir(dir); err == nil && len(es) > 0 {
		return storeline.Errorf(storeline.Invalid, op, "data directory %s is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return storeline.E(op, storeline.Unavailable, err)
	}
	br := bufio.NewReader(r)
	head := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != backupMagic {
		return storeline.Errorf(storeline.Invalid, op, "not a ledger backup (header %q)", head)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	defer func() {
		if err != nil {
			// Leave the directory empty, as it was, so a retry can run.
			_ = os.RemoveAll(filepath.Join(dir, "badger"))
		}
	}()
	db, err := openBadger(filepath.Join(dir, "badger"), 64<<20, defaultValueThreshold, 0)
	if err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = storeline.E(op, ioKind(cerr), cerr)
		}
	}()
	if err := db.Load(br, 256); err != nil {
		return storeline.E(op, storeline.Invalid, fmt.Errorf("load backup: %w", err))
	}
	// Load wrote the backup's entries at their own versions.
	err = newVersions(db, true).update(func(txn *badger.Txn) error {
		old, err := getValue(txn, kEpoch)
		if err != nil {
			return err
		}
		if old != nil && newEpoch <= getU64(old) {
			return storeline.Errorf(storeline.Invalid, op, "new epoch %d is not above the backup's epoch %d", newEpoch, getU64(old))
		}
		if err := txn.Set(kEpoch, u64(newEpoch)); err != nil {
			return err
		}
		return txn.Set(kSeq, u64(0))
	})
	if err != nil {
		if storeline.KindOf(err) == storeline.Invalid {
			return err
		}
		return storeline.E(op, ioKind(err), err)
	}
	if err := syncBadger(db, filepath.Join(dir, "badger")); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	return nil
}

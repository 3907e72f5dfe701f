package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/storeline/storeline"
)

// Bridges for the external tests.

// WALSegments returns how many WAL segments the ledger holds.
func (l *Ledger) WALSegments() int { return l.wal.segments() }

// AppliedLSN returns the LSN of the last batch applied to Badger.
func (l *Ledger) AppliedLSN() uint64 { return l.appliedLSN.Load() }

// Checkpoint asks the checkpointer to run now.
func (l *Ledger) Checkpoint() {
	select {
	case l.ckpt <- struct{}{}:
	default:
	}
}

// CheckpointNow runs two checkpoints synchronously, so every segment
// below the applied LSN is dropped.
func (l *Ledger) CheckpointNow() { l.checkpoint(l.checkpoint(0)) }

// DropViews deletes the derived views and their version marker, as a
// database written before the views existed lacks them.
func (l *Ledger) DropViews() error {
	if err := l.db.DropPrefix([]byte{tShift}); err != nil {
		return err
	}
	return l.ver.update(func(txn *badger.Txn) error { return txn.Delete(kViews) })
}

// ReadersWaiting reports whether a read is waiting for the applier to
// catch up with what was answered.
func (l *Ledger) ReadersWaiting() bool {
	l.appliedMu.Lock()
	defer l.appliedMu.Unlock()
	return l.appliedWake != nil
}

// EncodeBody is encodeBody: the bytes a body is stored as.
var EncodeBody = encodeBody

// GroupCommitWaits returns how many batches' committers waited for more
// requests (invariant 14).
func (l *Ledger) GroupCommitWaits() uint64 { return l.waits.Load() }

// QueueLen returns how many requests wait for the committer.
func (l *Ledger) QueueLen() int { return len(l.reqs) }

// SetLastSync sets, as the holder of the commit token, how long the last
// WAL sync took: the bound of the next group-commit wait.
func (l *Ledger) SetLastSync(d time.Duration) {
	<-l.tok
	l.lastSync = d
	l.tok <- struct{}{}
}

// RebuildBalances drops every balance and sums them again from the events.
func (l *Ledger) RebuildBalances() (int, error) { return l.rebuildBalances() }

// CloseAsCrash closes without the sync and the record of it that Close
// makes, so what Badger holds is only as durable as a crash leaves it.
func (l *Ledger) CloseAsCrash() error {
	l.crashOnClose = true
	return l.Close()
}

// LastReadBack reports how many values the last Open read back from the
// value log and how many it rewrote.
func (l *Ledger) LastReadBack() (checked, rewritten int) {
	return l.readBack.checked, l.readBack.rewritten
}

// CrashMidRebuild leaves the ledger as a crash in Open's rebuild of the
// running sums would (vlog.go, invariant 4): the rebuild recorded, shift
// totals and balances dropped, nothing rebuilt yet.
func (l *Ledger) CrashMidRebuild() error {
	_ = l.Position() // everything applied
	if err := l.ver.update(func(txn *badger.Txn) error {
		return txn.Set(kRebuild, []byte{rebuildShifts | rebuildBalances})
	}); err != nil {
		return err
	}
	for _, p := range []byte{tShift, tBalance} {
		if err := l.db.DropPrefix([]byte{p}); err != nil {
			return err
		}
	}
	return l.CloseAsCrash()
}

// OverwriteEvent stores other's stored bytes as event id's, as a value
// log that lost id's bytes and later held another value at that place
// would read.
func (l *Ledger) OverwriteEvent(origin storeline.StoreID, id, other storeline.EventID) error {
	_ = l.Position() // both applied
	return l.ver.update(func(txn *badger.Txn) error {
		v, err := getValue(txn, eventKey(origin, other))
		if err != nil || v == nil {
			return fmt.Errorf("event %s: %v", other, err)
		}
		return txn.Set(eventKey(origin, id), v)
	})
}

// SetLastBatch sets the size the next batch of events waits to fill up
// to (invariant 14).
func (l *Ledger) SetLastBatch(n int) {
	<-l.tok
	l.lastBatch = n
	l.tok <- struct{}{}
}

// BackupMagicV1 starts the backup streams of earlier versions.
const BackupMagicV1 = backupMagicV1

// BackupLayout returns where the chunks of a backup stream start and
// where its end (the zero length before the trailer) is.
func BackupLayout(b []byte) (chunks []int, end int, err error) {
	off := len(backupMagic)
	for off+4 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n == 0 {
			return chunks, off, nil
		}
		chunks = append(chunks, off)
		off += 8 + n
	}
	return nil, 0, fmt.Errorf("no end in %d bytes", len(b))
}

// BackupData returns the data of a backup stream's chunks: Badger's
// backup stream.
func BackupData(b []byte) ([]byte, error) {
	chunks, _, err := BackupLayout(b)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, off := range chunks {
		n := int(binary.BigEndian.Uint32(b[off:]))
		out = append(out, b[off+8:off+8+n]...)
	}
	return out, nil
}

// FrameBackup frames data as Backup frames Badger's stream, checksums and
// trailer matching.
func FrameBackup(data []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString(backupMagic)
	w := newBackupWriter(&buf)
	_, _ = w.Write(data)
	_ = w.finish()
	return buf.Bytes()
}

// ForgetOrigin deletes the persisted origin and, with state, the state
// keys only a batch wrote before, as a data directory written before
// they were persisted at Open lacks them (state: one never written to).
func (l *Ledger) ForgetOrigin(state bool) error {
	_ = l.Position() // everything applied
	keys := [][]byte{kOrigin}
	if state {
		keys = append(keys, kAppliedLSN, kHLC, kSeq, kMasterVersion)
	}
	return l.ver.update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetRestoreMemTable sets the restore's Badger memtable size until the
// returned function restores it.
func SetRestoreMemTable(n int64) (restore func()) {
	old := restoreMemTableBytes
	restoreMemTableBytes = n
	return func() { restoreMemTableBytes = old }
}

package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
)

// The backup stream (format v2), integers big-endian as in the WAL:
//
//	header   backupMagic
//	chunks   n u32 (1 ≤ n ≤ maxBackupChunk), crc32c(data) u32, data[n]
//	end      u32 0
//	trailer  total u64 (the bytes of data of every chunk), crc32c of them all u32
//	         and nothing after it
//
// The chunks' data, in order, is Badger's backup stream. That stream has
// no checksum and no end of its own: Load takes EOF at one of its blocks'
// boundaries for a clean end (a truncated copy loads "successfully"),
// loads a flipped byte as whatever it decodes to, and sizes its buffer by
// a length nobody checked. So every chunk is checked before Badger sees a
// byte of it, and a restore succeeds only once the trailer is read and
// matches what came before it (backupReader).
const (
	backupMagic = "storeline-ledger-backup v2\n"
	// backupMagicV1 started the streams of earlier versions: a header and
	// Badger's stream, nothing that tells a whole copy from a truncated
	// one. Restore refuses them.
	backupMagicV1 = "storeline-ledger-backup v1\n"
	// backupChunkBytes is the data of the chunks Backup writes; Restore
	// takes chunks up to maxBackupChunk, so the size may grow without a
	// new format.
	backupChunkBytes = 64 << 10
	maxBackupChunk   = 16 << 20
)

// ErrBadBackup is the cause of the Invalid error Restore returns for a
// stream that is not a whole, undamaged backup: truncated anywhere, a
// checksum that does not match, no trailer, data after it, or the
// ledger's state missing from what it holds.
var ErrBadBackup = errors.New("damaged or incomplete backup")

// Backup writes a consistent snapshot of the ledger to w while it runs:
// Badger's backup stream in checksummed chunks between a header and a
// trailer (see backupMagic). Every acknowledged event is in Badger once
// caughtUp returns (invariant 2 of commit.go), so the WAL is not needed;
// the stream carries the ledger's state keys (origin, epoch, sequence,
// HLC high-water mark, master version, applied LSN: Open writes them all)
// with the data, read at one instant. A stream cut short (a full disk, a
// dropped connection) lacks the trailer, and Restore refuses it.
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
	bw := newBackupWriter(w)
	if err := l.ver.backup(bw); err != nil {
		if bw.err != nil { // w failed, not Badger
			return storeline.E(op, storeline.Unavailable, bw.err)
		}
		return storeline.E(op, storeline.Internal, fmt.Errorf("badger backup: %w", err))
	}
	if err := bw.finish(); err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	return nil
}

// Restore loads a Backup stream into dir, the empty data directory of a
// stopped node, and moves the node to newEpoch, so the restored node's own
// sequence numbers restart at 1 in a larger epoch. Callers pass the HLC
// time of the restore; it must be above the backup's epoch (epochs only
// grow). The master version goes on above the restore's time in
// microseconds, so above every version the lost node gave out (tills keep
// the last one they read). Deduplication by (origin, ID) holds across
// epochs, so a till's retry of an event the backup holds is still counted
// once. The restored
// ledger keeps the backup's origin: Open refuses it as any other store
// (ErrOriginMismatch).
//
// Only a whole, undamaged stream is restored: one that is truncated
// anywhere, fails a checksum, lacks the trailer or the ledger's state is
// refused with an Invalid error wrapping ErrBadBackup. Backups in the
// format of earlier versions (v1) are refused too (Invalid): they carry
// nothing to tell a whole copy from a truncated one, so take a new backup
// with this version. A refused restore leaves dir as it found it (empty
// or absent), so it can be retried.
func Restore(dir string, r io.Reader, newEpoch uint64) (err error) {
	const op = "ledger.Restore"
	es, err := os.ReadDir(dir)
	created := errors.Is(err, os.ErrNotExist)
	// A restore killed midway left its stage and nothing else: it was
	// never a ledger (see restoreStage), so a retry starts over.
	stale := err == nil && len(es) == 1 && es[0].Name() == restoreStage
	if err == nil && len(es) > 0 && !stale {
		return storeline.Errorf(storeline.Invalid, op, "data directory %s is not empty", dir)
	} else if err != nil && !created {
		return storeline.E(op, storeline.Unavailable, err)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head := make([]byte, len(backupMagic))
	_, rerr := io.ReadFull(br, head)
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		// A failed read is not a file of another kind.
		return storeline.E(op, storeline.Internal, fmt.Errorf("ledger: read backup: %w", rerr))
	}
	if rerr != nil || string(head) != backupMagic {
		if string(head) == backupMagicV1 {
			return storeline.Errorf(storeline.Invalid, op, "backup in format v1, which cannot be checked for truncation or damage: take a new backup with this version")
		}
		return storeline.Errorf(storeline.Invalid, op, "not a ledger backup (header %q)", head)
	}
	stage := filepath.Join(dir, restoreStage)
	if stale {
		if err := os.RemoveAll(stage); err != nil {
			return storeline.E(op, ioKind(err), err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	defer func() {
		if err != nil {
			// Leave the directory as it was, so a retry can run: what
			// Load wrote of a refused stream must not be opened.
			if rerr := os.RemoveAll(stage); rerr != nil {
				err = errors.Join(err, fmt.Errorf("ledger: remove the refused restore: %w", rerr))
			} else if created {
				_ = os.Remove(dir)
			}
		}
	}()
	if err := restoreBadger(stage, br, newEpoch); err != nil {
		return err
	}
	// Only a whole restore, synced with its new epoch, becomes the
	// ledger's Badger: a crash before the rename leaves no ledger.
	if err := os.Rename(stage, filepath.Join(dir, "badger")); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	if err := (osFS{}).SyncDir(dir); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	return nil
}

// restoreStage is the directory, in the data directory, a restore loads
// into; Restore renames it to badger only once the restore is whole and
// synced. A restore killed midway (a power cut, an operator's ^C) leaves
// it, never a badger directory holding part of the backup at the backup's
// epoch, which Open would take for a ledger and go on numbering own
// events in an epoch whose sequence numbers the lost node gave out.
const restoreStage = "badger.restoring"

// restoreMemTableBytes is the memtable of the Badger a restore loads
// into; Load writes a batch at about 15% of it (tests make it small).
var restoreMemTableBytes int64 = 64 << 20

// restoreBadger loads a backup stream, past its header, into a new Badger
// in path and moves it to newEpoch (Restore).
func restoreBadger(path string, br *bufio.Reader, newEpoch uint64) (err error) {
	const op = "ledger.Restore"
	db, err := openBadger(path, restoreMemTableBytes, defaultValueThreshold, 0)
	if err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = storeline.E(op, ioKind(cerr), cerr)
		}
	}()
	src := &backupReader{r: br}
	if err := db.Load(src, 256); err != nil {
		if errors.Is(err, ErrBadBackup) {
			return storeline.E(op, storeline.Invalid, err)
		}
		return storeline.E(op, ioKind(err), fmt.Errorf("load backup: %w", err))
	}
	if !src.done { // Load ends only at EOF, which src gives only after the trailer
		return storeline.E(op, storeline.Invalid, fmt.Errorf("%w: Badger's stream ended before the trailer", ErrBadBackup))
	}
	// Load wrote the backup's entries at their own versions.
	err = newVersions(db, true).update(func(txn *badger.Txn) error {
		// Backup's ledger was opened, and Open writes every state key
		// (open.go): one missing is a stream that is not whole, whatever
		// its trailer says.
		for _, k := range [][]byte{kAppliedLSN, kHLC, kEpoch, kSeq, kMasterVersion} {
			v, err := getValue(txn, k)
			if err != nil {
				return err
			}
			if len(v) != 8 {
				return storeline.E(op, storeline.Invalid, fmt.Errorf("%w: state key %s is missing or malformed (%d bytes)", ErrBadBackup, k, len(v)))
			}
		}
		origin, err := getValue(txn, kOrigin)
		if err != nil {
			return err
		}
		if err := storeline.CheckID("origin", string(origin)); err != nil {
			return storeline.E(op, storeline.Invalid, fmt.Errorf("%w: the ledger's origin: %w", ErrBadBackup, err))
		}
		old, err := getValue(txn, kEpoch)
		if err != nil {
			return err
		}
		if newEpoch <= getU64(old) {
			return storeline.Errorf(storeline.Invalid, op, "new epoch %d is not above the backup's epoch %d", newEpoch, getU64(old))
		}
		if err := txn.Set(kEpoch, u64(newEpoch)); err != nil {
			return err
		}
		// The epoch is the restore's HLC time: the node's own events of
		// the new epoch are stamped after it, whatever its wall clock
		// (Open raises the clock to the stored mark).
		hlc, err := getValue(txn, kHLC)
		if err != nil {
			return err
		}
		if newEpoch > getU64(hlc) {
			if err := txn.Set(kHLC, u64(newEpoch)); err != nil {
				return err
			}
		}
		// Master versions only grow (tills keep the last one they read),
		// but the lost node may have given out versions above the
		// backup's. It gave out one per record changed, far fewer than
		// one a microsecond since its last restore, so the restore's time
		// in microseconds is above all of them, and stays below 2^53 (a
		// JSON number) until the year 2255.
		mv, err := getValue(txn, kMasterVersion)
		if err != nil {
			return err
		}
		if floor := uint64(crdt.Timestamp(newEpoch).Millis()) * 1000; floor > getU64(mv) {
			if err := txn.Set(kMasterVersion, u64(floor)); err != nil {
				return err
			}
		}
		return txn.Set(kSeq, u64(0))
	})
	if err != nil {
		if storeline.KindOf(err) == storeline.Invalid {
			return err
		}
		return storeline.E(op, ioKind(err), err)
	}
	if err := syncBadger(db, path); err != nil {
		return storeline.E(op, ioKind(err), err)
	}
	return nil
}

// backupWriter cuts Badger's backup stream into checksummed chunks and
// ends it with the trailer (finish).
type backupWriter struct {
	w     io.Writer
	buf   []byte // the chunk's header room, then its data
	total uint64 // bytes of data written
	sum   uint32 // crc32c of them
	err   error  // w's first error: nothing is written after it
}

func newBackupWriter(w io.Writer) *backupWriter {
	return &backupWriter{w: w, buf: make([]byte, 8, 8+backupChunkBytes)}
}

func (b *backupWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && b.err == nil {
		k := copy(b.buf[len(b.buf):cap(b.buf)], p)
		b.buf = b.buf[:len(b.buf)+k]
		p = p[k:]
		if len(b.buf) == cap(b.buf) {
			b.flush()
		}
	}
	return n - len(p), b.err
}

func (b *backupWriter) flush() {
	data := b.buf[8:]
	if len(data) == 0 || b.err != nil {
		return
	}
	binary.BigEndian.PutUint32(b.buf[0:], uint32(len(data)))
	binary.BigEndian.PutUint32(b.buf[4:], crc32.Checksum(data, castagnoli))
	b.total += uint64(len(data))
	b.sum = crc32.Update(b.sum, castagnoli, data)
	_, b.err = b.w.Write(b.buf)
	b.buf = b.buf[:8]
}

// finish writes the last chunk, the end and the trailer.
func (b *backupWriter) finish() error {
	b.flush()
	if b.err != nil {
		return b.err
	}
	var t [4 + 12]byte // the end (0), then the trailer
	binary.BigEndian.PutUint64(t[4:], b.total)
	binary.BigEndian.PutUint32(t[12:], b.sum)
	_, b.err = b.w.Write(t[:])
	return b.err
}

// backupReader gives Load the data of a backup stream's chunks, each once
// its checksum matched, and EOF only once the trailer matched the data
// and nothing followed it. Anything else is an error wrapping
// ErrBadBackup (or the source's own read error), which Load returns.
type backupReader struct {
	r     *bufio.Reader
	chunk []byte // the current chunk's data, checked
	left  []byte // what of it Load has not read
	total uint64 // bytes of data checked
	sum   uint32 // crc32c of them
	done  bool   // the trailer was read and matched
	err   error
}

func (b *backupReader) Read(p []byte) (int, error) {
	for len(b.left) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return 0, io.EOF
		}
		b.err = b.next()
	}
	n := copy(p, b.left)
	b.left = b.left[n:]
	return n, nil
}

// next reads the next chunk, or the end and the trailer.
func (b *backupReader) next() error {
	var h [8]byte
	if err := b.readFull(h[:4], "a chunk's header"); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 {
		return b.trailer()
	}
	if n > maxBackupChunk {
		return fmt.Errorf("%w: chunk of %d bytes after %d bytes of data, over %d", ErrBadBackup, n, b.total, maxBackupChunk)
	}
	if err := b.readFull(h[4:], "a chunk's header"); err != nil {
		return err
	}
	if cap(b.chunk) < int(n) {
		b.chunk = make([]byte, n)
	}
	b.chunk = b.chunk[:n]
	if err := b.readFull(b.chunk, "a chunk"); err != nil {
		return err
	}
	if crc32.Checksum(b.chunk, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return fmt.Errorf("%w: checksum mismatch in the chunk after %d bytes of data", ErrBadBackup, b.total)
	}
	b.total += uint64(n)
	b.sum = crc32.Update(b.sum, castagnoli, b.chunk)
	b.left = b.chunk
	return nil
}

func (b *backupReader) trailer() error {
	var t [12]byte
	if err := b.readFull(t[:], "the trailer"); err != nil {
		return err
	}
	total, sum := binary.BigEndian.Uint64(t[:8]), binary.BigEndian.Uint32(t[8:])
	if total != b.total || sum != b.sum {
		return fmt.Errorf("%w: the trailer says %d bytes of data (crc32c %08x), the stream holds %d (crc32c %08x)",
			ErrBadBackup, total, sum, b.total, b.sum)
	}
	if _, err := b.r.ReadByte(); err == nil {
		return fmt.Errorf("%w: data after the trailer", ErrBadBackup)
	} else if err != io.EOF {
		return fmt.Errorf("ledger: read backup: %w", err)
	}
	b.done = true
	return nil
}

// readFull reads len(p) bytes of the stream; the stream ending first is a
// truncated backup.
func (b *backupReader) readFull(p []byte, what string) error {
	_, err := io.ReadFull(b.r, p)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated in %s after %d bytes of data, before the trailer", ErrBadBackup, what, b.total)
	}
	if err != nil {
		return fmt.Errorf("ledger: read backup: %w", err)
	}
	return nil
}

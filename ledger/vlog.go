package ledger

// Badger's value log holds every value of ValueThreshold bytes or more
// (events, master records; shift totals of long seller IDs); its LSM tree
// holds the rest and a pointer to each of those. An event is written once
// to the value log and never again: compactions move only its key and
// pointer. With every value in the LSM tree (Badger's default), compactions
// rewrote each event at every level, and at 64 writers the CPU per receipt
// grew from ~34 µs on a fresh ledger to ~100 µs after two million receipts.
//
// Badger runs without SyncWrites (the WAL is the durability boundary), and
// its value log and LSM tree reach the disk independently: after a power
// loss the tree may point into what the value log lost. Badger truncates
// its last value-log file at the first damaged entry and never writes to
// that file again, and it verifies each value's checksum when read (opened
// so), so such a pointer reads as no bytes and no error (Badger logs and
// swallows the error), which readsBack tells from an empty value by the
// size the pointer records. Only if a lost file's number were used again
// could it read as another value of the same length: the read-back
// compares each value with its frame.
// Invariants:
//
//  1. syncBadger makes all of Badger durable: DB.Sync (the active memtable's
//     log and the current value-log file), then every value-log and
//     memtable-log file (a rotated one is synced by nobody else) and the
//     directory (Badger creates files without syncing it).
//  2. A checkpoint runs syncBadger, then records the LSN it covers
//     (kSynced), then drops WAL segments; Close the same. Every value of a
//     frame at or below kSynced is durable; every frame above it is still
//     in the WAL. A failed syncBadger, wherever it runs, a failed apply of
//     a batch to Badger and a failed Open leave a synced marker file in
//     the WAL's directory (after a writeback error the kernel may drop the
//     dirty pages and report the error once: a later sync would succeed
//     over lost values), so the next Open reads back whatever the boot,
//     with the value log's pages dropped from the page cache first (a hint
//     the kernel honours for clean, unmapped pages); at a checkpoint it
//     also poisons the ledger.
//  3. Open reads back, when the machine restarted since the last Open (a
//     new boot ID: within one boot the page cache kept everything a crashed
//     process wrote) or the marker of invariant 2 is there, the values the
//     WAL frames above kSynced that Badger applied stored: events (written
//     only by the frame that first stored them), master records and
//     metadata (the last frame that wrote each). Frames are resolved, so
//     these values are functions of the frame alone; a value missing,
//     unreadable or different from the frame's is written again.
//  4. Shift totals and balances are running sums, not functions of one
//     frame: after such a read-back Open reads every one, and if any does
//     not read back it rebuilds them from the journal (after invariant 3
//     has made every event readable). A rebuild first records, synced,
//     which views it rebuilds (kRebuild), and clears it once the rebuilt
//     views are synced: a crash in between makes the next Open rebuild
//     again, whatever the boot.
//  5. Keys whose values are shorter than minValueThreshold by construction
//     (journal, date and returns indexes, unique keys, version entries of
//     at most 152 bytes, the ledger's own state) always stay in the LSM
//     tree.
//  6. Value-log garbage collection runs only as retention.go's invariant
//     7 says (an iterator held open and Badger synced before a rewritten
//     file may go): Badger deletes a rewritten file without syncing the
//     values it moved. Pruned events and replaced master records are the
//     garbage.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

const (
	// defaultValueThreshold sends a receipt of about four lines or more
	// to the value log and keeps shift totals (75-300 bytes) in the tree.
	defaultValueThreshold = 512
	// minValueThreshold is above every value invariant 5 names: an ID is at
	// most 64 bytes, a price's record ID 146, a version entry a kind and an
	// ID.
	minValueThreshold = 256
	maxValueThreshold = 1 << 20

	// readBackMarker, in the WAL's directory, makes the next Open read the
	// value log back (invariant 2).
	readBackMarker = "READBACK"
)

// Views a rebuild covers (kRebuild's bits).
const (
	rebuildShifts   = 1
	rebuildBalances = 2
)

// syncBadger makes all of Badger durable (invariant 1).
func syncBadger(db *badger.DB, dir string) error {
	if err := db.Sync(); err != nil {
		return err
	}
	err := eachBadgerLog(dir, func(name string) error {
		if err := syncFile(name); err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return osFS{}.SyncDir(dir)
}

// eachBadgerLog calls fn with each value-log and memtable-log file of the
// Badger in dir: the files Badger writes through mmap without syncing.
func eachBadgerLog(dir string, fn func(name string) error) error {
	for _, pattern := range []string{"*.vlog", "*.mem"} {
		names, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := fn(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // removed since the listing (a flushed memtable's log)
	}
	if err != nil {
		return err
	}
	err = fdatasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *Ledger) badgerDir() string { return filepath.Join(l.o.Dir, "badger") }

// syncBadger syncs the ledger's Badger (invariant 1). If that fails it
// leaves the read-back marker (invariant 2), wherever it was called from.
func (l *Ledger) syncBadger() error {
	var err error
	if l.seams.BadgerSync != nil {
		err = l.seams.BadgerSync()
	}
	if err == nil {
		err = syncBadger(l.db, l.badgerDir())
	}
	if err != nil {
		if merr := l.distrustBadger(); merr != nil {
			err = errors.Join(err, fmt.Errorf("read-back marker: %w", merr))
		}
	}
	return err
}

// markSynced records that the values of every frame through lsn are
// durable (syncBadger has returned since they were applied).
func (l *Ledger) markSynced(lsn uint64) error {
	return l.ver.update(func(txn *badger.Txn) error { return txn.Set(kSynced, u64(lsn)) })
}

// distrustBadger leaves the synced marker that makes the next Open read
// the value log back (invariant 2).
func (l *Ledger) distrustBadger() error {
	dir := filepath.Join(l.o.Dir, "wal")
	if err := l.seams.FS.MkdirAll(dir); err != nil {
		return err
	}
	f, err := l.seams.FS.OpenFile(filepath.Join(dir, readBackMarker), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return l.seams.FS.SyncDir(dir)
}

// readBackMarked reports whether the marker of invariant 2 is there.
func (l *Ledger) readBackMarked() (bool, error) {
	names, err := l.seams.FS.ReadDir(filepath.Join(l.o.Dir, "wal"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return slices.Contains(names, readBackMarker), err
}

// readBackDone removes the marker once Open has read back and synced.
func (l *Ledger) readBackDone() error {
	dir := filepath.Join(l.o.Dir, "wal")
	if err := l.seams.FS.Remove(filepath.Join(dir, readBackMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return l.seams.FS.SyncDir(dir)
}

// dropBadgerCache drops the page cache of Badger's value-log and
// memtable-log files before Badger maps them, so a read-back reads the
// disk, not pages a failed writeback left cached.
func dropBadgerCache(dir string) error {
	return eachBadgerLog(dir, func(name string) error {
		if err := dropFileCache(name); err != nil {
			return fmt.Errorf("drop the page cache of %s: %w", filepath.Base(name), err)
		}
		return nil
	})
}

// valueRepair collects, over the WAL frames Badger has applied, the values
// Open must read back (invariants 3 and 4).
type valueRepair struct {
	l *Ledger
	// from is the LSN through which values are known durable: frames at
	// or below it are not read back.
	from    uint64
	rebuild byte              // views a rebuild left unfinished (kRebuild)
	events  [][2][]byte       // (key, stored bytes) of events the frames stored first
	last    map[string][]byte // key → the last value a frame wrote (master, meta)
	gone    map[string]bool   // keys of last whose last write was a delete
	order   []string          // keys of last, in first-write order
	frames  int               // frames read back
	done    bool
	stats   readBackStats
}

// readBackStats counts what Open read back from the value log and what it
// had to write again.
type readBackStats struct{ checked, rewritten int }

// valueRepair returns the read-back Open runs over the WAL frames Badger
// has applied, and the running boot's ID. Within the boot that last opened
// the ledger the page cache kept whatever Badger wrote, so nothing is read
// back unless asked (invariant 2); otherwise frames after the last
// recorded sync are.
func (l *Ledger) valueRepair(asked bool) (*valueRepair, string, error) {
	r := &valueRepair{l: l, last: map[string][]byte{}, gone: map[string]bool{}}
	boot := l.seams.BootID()
	err := l.ver.view(func(txn *badger.Txn) error {
		v, err := getValue(txn, kSynced)
		if err != nil {
			return err
		}
		if v != nil {
			r.from = getU64(v)
		}
		if v, err = getValue(txn, kRebuild); err != nil {
			return err
		}
		if len(v) == 1 {
			r.rebuild = v[0]
		}
		prev, err := getValue(txn, kBoot)
		if !asked && boot != "" && string(prev) == boot {
			r.from = math.MaxUint64
		}
		return err
	})
	return r, boot, err
}

// add notes the values frame fr wrote.
func (r *valueRepair) add(fr walFrame) error {
	if fr.lsn <= r.from || canarySkipReadBack {
		return nil
	}
	r.frames++
	var wb walBatch
	if err := msgpack.Unmarshal(fr.body, &wb); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	for i := range wb.Recs {
		rec := &wb.Recs[i]
		switch rec.T {
		case recEvent:
			k, err := storedEventKey(rec.Ev)
			if err != nil {
				return err
			}
			r.events = append(r.events, [2][]byte{k, rec.Ev})
		case recMaster:
			if rec.Master == nil {
				return fmt.Errorf("master record %s %s without a value", rec.Kind, rec.MID)
			}
			enc, err := encodeMaster(rec.Master)
			if err != nil {
				return err
			}
			r.note(masterKey(storeline.MasterKind(rec.Kind), rec.MID), enc)
		case recMeta:
			r.note(metaKey(rec.Key), rec.Val)
		case recMetaDel:
			r.note(metaKey(rec.Key), nil)
			r.gone[string(metaKey(rec.Key))] = true
		case recPrune:
			r.pruned(rec)
		}
	}
	if len(r.events) >= 4096 {
		return r.flushEvents()
	}
	return nil
}

func (r *valueRepair) note(k, v []byte) {
	if _, ok := r.last[string(k)]; !ok {
		r.order = append(r.order, string(k))
	}
	r.last[string(k)] = v
	delete(r.gone, string(k))
}

// flushEvents reads back the noted events and rewrites those that fail.
func (r *valueRepair) flushEvents() error {
	kvs := r.events
	r.events = r.events[:0]
	return r.rewriteLost(kvs)
}

// rewriteLost writes each (key, value) whose stored value is missing, does
// not read back, or differs: a frame Badger applied wrote exactly that
// value, and nothing wrote the key after it.
func (r *valueRepair) rewriteLost(kvs [][2][]byte) error {
	var lost [][2][]byte
	err := r.l.ver.view(func(txn *badger.Txn) error {
		for _, kv := range kvs {
			r.stats.checked++
			item, err := txn.Get(kv[0])
			if errors.Is(err, badger.ErrKeyNotFound) {
				lost = append(lost, kv)
				continue
			}
			if err != nil {
				return err
			}
			same := false
			if err := item.Value(func(v []byte) error { same = bytes.Equal(v, kv[1]); return nil }); err != nil || !same {
				lost = append(lost, kv)
			}
		}
		return nil
	})
	if err != nil || len(lost) == 0 {
		return err
	}
	err = r.l.ver.writeBatch(func(wb *badger.WriteBatch) error {
		for _, kv := range lost {
			if err := wb.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.stats.rewritten += len(lost)
	return nil
}

// deleteFound deletes each of keys still present: the last frame that
// wrote it deleted it, and a lost tombstone must not bring it back.
func (r *valueRepair) deleteFound(keys [][]byte) error {
	var found [][]byte
	err := r.l.ver.view(func(txn *badger.Txn) error {
		for _, k := range keys {
			r.stats.checked++
			_, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			found = append(found, k)
		}
		return nil
	})
	if err != nil || len(found) == 0 {
		return err
	}
	err = r.l.ver.writeBatch(func(wb *badger.WriteBatch) error {
		for _, k := range found {
			if err := wb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.stats.rewritten += len(found)
	return nil
}

// finish rewrites what was lost, rebuilds the running sums if any of them
// was lost or a rebuild was left unfinished, and makes the result durable.
// It runs once, before the first frame is replayed.
func (r *valueRepair) finish() error {
	if r.done {
		return nil
	}
	r.done = true
	if r.frames == 0 && r.rebuild == 0 {
		return nil
	}
	if err := r.flushEvents(); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	kvs := make([][2][]byte, 0, len(r.order))
	var gone [][]byte
	for _, k := range r.order {
		if r.gone[k] {
			gone = append(gone, []byte(k))
			continue
		}
		kvs = append(kvs, [2][]byte{[]byte(k), r.last[k]})
	}
	if err := r.rewriteLost(kvs); err != nil {
		return fmt.Errorf("master data and metadata: %w", err)
	}
	if err := r.deleteFound(gone); err != nil {
		return fmt.Errorf("deleted metadata: %w", err)
	}
	views := []struct {
		bit     byte
		table   byte
		name    string
		rebuild func() (int, error)
	}{{rebuildShifts, tShift, "shift totals", r.l.rebuildShifts}, {rebuildBalances, tBalance, "balances", r.l.rebuildBalances}}
	rebuild := r.rebuild
	if r.frames > 0 {
		for _, v := range views {
			ok, err := r.l.prefixReadable([]byte{v.table})
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if !ok {
				rebuild |= v.bit
			}
		}
	}
	if r.stats.rewritten > 0 || rebuild != 0 {
		if err := r.l.syncBadger(); err != nil {
			return err
		}
	}
	var rebuilt []string
	if rebuild != 0 {
		if err := r.l.ver.update(func(txn *badger.Txn) error { return txn.Set(kRebuild, []byte{rebuild}) }); err != nil {
			return err
		}
		if err := r.l.syncBadger(); err != nil {
			return err
		}
		for _, v := range views {
			if rebuild&v.bit == 0 {
				continue
			}
			if _, err := v.rebuild(); err != nil {
				return fmt.Errorf("rebuild %s: %w", v.name, err)
			}
			rebuilt = append(rebuilt, v.name)
		}
		if err := r.l.syncBadger(); err != nil {
			return err
		}
		if err := r.l.ver.update(func(txn *badger.Txn) error { return txn.Delete(kRebuild) }); err != nil {
			return err
		}
	}
	if r.stats.rewritten > 0 || len(rebuilt) > 0 {
		r.l.log.Warn("ledger: values Badger lost from its value log restored from the WAL",
			"values_checked", r.stats.checked, "values_rewritten", r.stats.rewritten, "rebuilt", strings.Join(rebuilt, ", "))
	}
	return nil
}

// prefixReadable reports whether every value under prefix reads back.
func (l *Ledger) prefixReadable(prefix []byte) (bool, error) {
	ok := true
	err := l.ver.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			if !readsBack(it.Item()) {
				ok = false
				return nil
			}
		}
		return nil
	})
	return ok, err
}

// readsBack reports whether item's value reads back. Badger answers a
// value it cannot read (a pointer past the end of a truncated value-log
// file, a checksum mismatch) with no error and no bytes; only the size its
// pointer records tells it from an empty value.
func readsBack(item *badger.Item) bool {
	n := -1
	err := item.Value(func(v []byte) error { n = len(v); return nil })
	return err == nil && (n > 0 || item.ValueSize() <= 0)
}

// rebuildSeam runs Seams.Rebuild, if set, after a rebuild dropped view.
func (l *Ledger) rebuildSeam(view string) error {
	if l.seams.Rebuild == nil {
		return nil
	}
	return l.seams.Rebuild(view)
}

// rebuildBalances drops every balance and sums the postings of every
// stored event again (each is stored once, whatever its copies). It
// returns the number of events summed.
func (l *Ledger) rebuildBalances() (int, error) {
	if err := l.db.DropPrefix([]byte{tBalance}); err != nil {
		return 0, err
	}
	if err := l.rebuildSeam("balances"); err != nil {
		return 0, err
	}
	sums := map[string]decimal.Decimal{}
	n := 0
	err := l.ver.view(func(txn *badger.Txn) error {
		// What pruned events posted (retention.go, invariant 4); their
		// stubs have no postings.
		carried := []byte{tCarry}
		ct := txn.NewIterator(badger.IteratorOptions{Prefix: carried})
		for ct.Rewind(); ct.ValidForPrefix(carried); ct.Next() {
			k := bytes.Clone(ct.Item().Key())
			var d decimal.Decimal
			if err := ct.Item().Value(d.UnmarshalBinary); err != nil {
				ct.Close()
				return fmt.Errorf("carry %q: %w", k, err)
			}
			k[0] = tBalance
			sums[string(k)] = sums[string(k)].Add(d)
		}
		ct.Close()
		prefix := []byte{tEvent}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		var k []byte
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				se, err := decodeStored(v)
				if err != nil {
					return err
				}
				for _, p := range se.Postings {
					k = appendBalanceKey(k[:0], p.Account, storeline.Asset(p.Asset))
					sums[string(k)] = sums[string(k)].Add(p.Amount)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("event %x: %w", it.Item().Key(), err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, l.ver.writeBatch(func(wb *badger.WriteBatch) error {
		for k, v := range sums {
			b, err := v.MarshalBinary()
			if err != nil {
				return err
			}
			if err := wb.Set([]byte(k), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// storedEventKey returns the key of the stored event enc. Its first two
// fields are the ID and the origin (appendStoredEvent and msgpack's struct
// encoding both write fields in declaration order), so the rest need not
// be decoded: half of a read-back's time was decoding whole events.
func storedEventKey(enc []byte) ([]byte, error) {
	if k, ok := storedEventKeyQuick(enc); ok {
		return k, nil
	}
	se, err := decodeStored(enc)
	if err != nil {
		return nil, err
	}
	return eventKey(storeline.StoreID(se.Origin), storeline.EventID(se.ID)), nil
}

func storedEventKeyQuick(b []byte) ([]byte, bool) {
	// A map of two fields or more, then "i" and 16 bytes of bin, then "o"
	// and a string. Duplicate keys and a truncated tail are not looked
	// for: the bytes come from the ledger's own frames, CRC-checked.
	p := 1
	switch {
	case len(b) < 23:
		return nil, false
	case b[0] >= 0x82 && b[0] <= 0x8f:
	case b[0] == 0xde && int(b[1])<<8|int(b[2]) >= 2:
		p = 3
	default:
		return nil, false
	}
	if len(b) < p+22 || b[p] != 0xa1 || b[p+1] != 'i' || b[p+2] != 0xc4 || b[p+3] != 16 {
		return nil, false
	}
	id := storeline.EventID(b[p+4 : p+20])
	p += 20
	if len(b) < p+3 || b[p] != 0xa1 || b[p+1] != 'o' {
		return nil, false
	}
	p += 2
	var n int
	switch c := b[p]; {
	case c&0xe0 == 0xa0:
		n, p = int(c&0x1f), p+1
	case c == 0xd9 && len(b) > p+1:
		n, p = int(b[p+1]), p+2
	case c == 0xda && len(b) > p+2:
		n, p = int(b[p+1])<<8|int(b[p+2]), p+3
	default:
		return nil, false
	}
	if len(b) < p+n {
		return nil, false
	}
	return eventKey(storeline.StoreID(b[p:p+n]), id), true
}

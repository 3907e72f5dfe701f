package ledger

// Badger's value log holds every value of ValueThreshold bytes or more
// (events, master records; shift totals at a low threshold); its LSM tree
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
// so), so such a pointer never reads as another value; it reads as no
// bytes and no error (Badger logs and swallows it), which readsBack tells
// from an empty value by the size the pointer records.
// Invariants:
//
//  1. A checkpoint makes every value-log file durable (syncBadger), not only
//     Badger's current one (DB.Sync syncs that one alone), before it drops
//     WAL segments: every value written for a frame older than the WAL's
//     first frame is durable.
//  2. Open reads, for every frame still in the WAL that Badger has applied,
//     the values those frames stored that can live in the value log: events
//     (written only by the frame that first stored them), master records
//     and metadata (the last frame that wrote each). A value that does not
//     read back is written again from its frame: frames are resolved, so
//     these values are functions of the frame alone.
//  3. Shift totals and balances are running sums, not functions of one
//     frame: Open reads every one, and if any does not read back it
//     rebuilds all of them from the journal (after invariant 2 has made
//     every event readable). Balances are decimals far below the smallest
//     threshold allowed; the check costs a scan of small values.
//  4. Keys whose values are shorter than minValueThreshold by construction
//     (journal, date and returns indexes, unique keys, version entries, the
//     ledger's own state) always stay in the LSM tree.
//  5. No value-log garbage collection: Badger deletes a rewritten file
//     without syncing the values it moved. Events never become garbage;
//     replaced master records and shift totals do, a few bytes per change.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
	// minValueThreshold is above every value invariant 4 names: an ID is at
	// most 64 bytes, a version entry a kind and an ID.
	minValueThreshold = 128
	maxValueThreshold = 1 << 20
)

// syncBadger makes Badger durable: its memtable WAL and every value-log
// file (invariant 1).
func syncBadger(db *badger.DB, dir string) error {
	if err := db.Sync(); err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		return err
	}
	for _, name := range names {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed since the listing
			}
			return err
		}
		err = fdatasync(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
		}
	}
	return nil
}

// syncBadger syncs the ledger's Badger (invariant 1).
func (l *Ledger) syncBadger() error { return syncBadger(l.db, filepath.Join(l.o.Dir, "badger")) }

// valueRepair collects, over the WAL frames Badger has applied, the values
// Open must read back (invariants 2 and 3).
type valueRepair struct {
	l *Ledger
	// from is the LSN through which values are known durable: frames at
	// or below it are not read back.
	from   uint64
	events [][2][]byte       // (key, stored bytes) of events the frames stored first
	last   map[string][]byte // key → the last value a frame wrote (master, meta)
	order  []string          // keys of last, in first-write order
	frames int               // frames read back
	done   bool
	stats  readBackStats
}

// readBackStats counts what Open read back from the value log and what it
// had to write again.
type readBackStats struct{ checked, rewritten int }

// valueRepair returns the read-back Open runs over the WAL frames Badger
// has applied, and the running boot's ID. Within the boot that last opened
// the ledger, the page cache kept whatever Badger wrote, so nothing is read
// back; otherwise frames after the last recorded sync are.
func (l *Ledger) valueRepair() (*valueRepair, string, error) {
	r := &valueRepair{l: l, last: map[string][]byte{}}
	boot := l.seams.BootID()
	err := l.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, kSynced)
		if err != nil {
			return err
		}
		if v != nil {
			r.from = getU64(v)
		}
		prev, err := getValue(txn, kBoot)
		if boot != "" && string(prev) == boot {
			r.from = math.MaxUint64
		}
		return err
	})
	return r, boot, err
}

// markSynced records that the values of every frame through lsn are
// durable (syncBadger has returned since they were applied).
func (l *Ledger) markSynced(lsn uint64) error {
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(kSynced, u64(lsn)) })
}

// add notes the values frame fr wrote.
func (r *valueRepair) add(fr walFrame) error {
	if fr.lsn <= r.from {
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
			se, err := decodeStored(rec.Ev)
			if err != nil {
				return err
			}
			r.events = append(r.events, [2][]byte{eventKey(storeline.StoreID(se.Origin), storeline.EventID(se.ID)), rec.Ev})
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
}

// flushEvents reads back the noted events and rewrites those that fail.
func (r *valueRepair) flushEvents() error {
	kvs := r.events
	r.events = r.events[:0]
	return r.rewriteUnreadable(kvs)
}

// rewriteUnreadable writes each (key, value) whose stored value exists but
// does not read back. A missing key is left alone: the frames Badger
// applied stored every one of them, so none can be missing.
func (r *valueRepair) rewriteUnreadable(kvs [][2][]byte) error {
	var bad [][2][]byte
	err := r.l.db.View(func(txn *badger.Txn) error {
		for _, kv := range kvs {
			r.stats.checked++
			item, err := txn.Get(kv[0])
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !readsBack(item) {
				bad = append(bad, kv)
			}
		}
		return nil
	})
	if err != nil || len(bad) == 0 {
		return err
	}
	wb := r.l.db.NewWriteBatch()
	defer wb.Cancel()
	for _, kv := range bad {
		if err := wb.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	r.stats.rewritten += len(bad)
	return nil
}

// finish rewrites what does not read back, rebuilds the running sums if
// any of them does not, and makes the result durable. It runs once, before
// the first frame is replayed.
func (r *valueRepair) finish() error {
	if r.done {
		return nil
	}
	r.done = true
	if r.frames == 0 {
		return nil
	}
	if err := r.flushEvents(); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	kvs := make([][2][]byte, 0, len(r.order))
	for _, k := range r.order {
		kvs = append(kvs, [2][]byte{[]byte(k), r.last[k]})
	}
	if err := r.rewriteUnreadable(kvs); err != nil {
		return fmt.Errorf("master data and metadata: %w", err)
	}
	rebuilt := ""
	for _, p := range []struct {
		table   byte
		name    string
		rebuild func() (int, error)
	}{{tShift, "shift totals", r.l.rebuildShifts}, {tBalance, "balances", r.l.rebuildBalances}} {
		ok, err := r.l.prefixReadable([]byte{p.table})
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if ok {
			continue
		}
		if _, err := p.rebuild(); err != nil {
			return fmt.Errorf("rebuild %s: %w", p.name, err)
		}
		rebuilt = strings.TrimPrefix(rebuilt+", "+p.name, ", ")
	}
	if r.stats.rewritten == 0 && rebuilt == "" {
		return nil
	}
	if err := r.l.syncBadger(); err != nil {
		return err
	}
	r.l.log.Warn("ledger: values Badger lost from its value log restored from the WAL",
		"values_checked", r.stats.checked, "values_rewritten", r.stats.rewritten, "rebuilt", rebuilt)
	return nil
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

// prefixReadable reports whether every value under prefix reads back.
func (l *Ledger) prefixReadable(prefix []byte) (bool, error) {
	ok := true
	err := l.db.View(func(txn *badger.Txn) error {
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

// rebuildBalances drops every balance and sums the postings of every
// stored event again (each is stored once, whatever its copies). It
// returns the number of events summed.
func (l *Ledger) rebuildBalances() (int, error) {
	if err := l.db.DropPrefix([]byte{tBalance}); err != nil {
		return 0, err
	}
	sums := map[string]decimal.Decimal{}
	n := 0
	err := l.db.View(func(txn *badger.Txn) error {
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
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for k, v := range sums {
		b, err := v.MarshalBinary()
		if err != nil {
			return n, err
		}
		if err := wb.Set([]byte(k), b); err != nil {
			return n, err
		}
	}
	return n, wb.Flush()
}

package ledger

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// Master data goes through the same WAL and committer as events, rather
// than a Badger transaction followed by db.Sync(): one durability
// mechanism, one replay path, group commit for bulk pulls, and one writer
// that checks unique keys without races.

// MaxMasterRecords bounds the records of one PutMaster call.
const MaxMasterRecords = 4096

// MasterChange is the latest change of one record: its version, and the
// record (nil for a tombstone).
type MasterChange struct {
	Version uint64
	Kind    storeline.MasterKind
	ID      string
	Deleted bool
	Record  storeline.Record
}

// PutMaster validates recs (Validate normalises them in place) and stores
// them atomically: all or none. Unique keys are enforced per kind: a key
// held by another record is a Conflict; keys an updated record no longer
// has are released. Each record gets the next node-local version (versions
// only grow); the last is returned. It returns after the change is
// durable.
func (l *Ledger) PutMaster(ctx context.Context, recs []storeline.Record) (version uint64, err error) {
	const op = "ledger.PutMaster"
	if len(recs) == 0 {
		return l.MasterVersion(), nil
	}
	if len(recs) > MaxMasterRecords {
		return 0, storeline.Errorf(storeline.TooLarge, op, "%d records, over %d", len(recs), MaxMasterRecords)
	}
	ops := make([]masterOp, len(recs))
	size := 0
	for i, rec := range recs {
		if rec == nil {
			return 0, storeline.E(op, storeline.Invalid, storeline.Invalidf(fmt.Sprintf("[%d]", i), "nil record"))
		}
		if err := rec.Validate(); err != nil {
			return 0, storeline.E(op, storeline.Invalid, fmt.Errorf("record %d (%s %s): %w", i, rec.MasterKind(), rec.MasterID(), err))
		}
		kind, id := rec.MasterKind(), rec.MasterID()
		if err := checkKeyPart("kind", string(kind)); err != nil {
			return 0, storeline.E(op, storeline.Invalid, err)
		}
		if err := checkKeyPart("id", id); err != nil {
			return 0, storeline.E(op, storeline.Invalid, err)
		}
		data, err := msgpack.Marshal(rec)
		if err != nil {
			return 0, storeline.E(op, storeline.Invalid, err)
		}
		keys := uniqueKeys(rec.UniqueKeys())
		for _, k := range keys {
			if err := checkKeyPart("unique key", k); err != nil {
				return 0, storeline.E(op, storeline.Invalid, err)
			}
		}
		ops[i] = masterOp{kind: kind, id: id, data: data, keys: keys}
		size += len(data) + len(id) + 64
		for _, k := range keys {
			size += len(k) + 8
		}
	}
	if size > l.o.MaxBatchBytes {
		return 0, storeline.Errorf(storeline.TooLarge, op, "%d bytes of records, over MaxBatchBytes %d", size, l.o.MaxBatchBytes)
	}
	res := l.submit(ctx, op, &request{kind: reqMaster, ops: ops, size: size})
	return res.version, res.err
}

func uniqueKeys(keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	out := append([]string(nil), keys...)
	sort.Strings(out)
	n := 0
	for i, k := range out {
		if i == 0 || k != out[n-1] {
			out[n] = k
			n++
		}
	}
	return out[:n]
}

// DeleteMaster writes a tombstone for (kind, id) with the next version.
// A record that does not exist (or is deleted) is NotFound.
func (l *Ledger) DeleteMaster(ctx context.Context, kind storeline.MasterKind, id string) (version uint64, err error) {
	const op = "ledger.DeleteMaster"
	if _, err := storeline.NewRecord(kind); err != nil {
		return 0, storeline.E(op, storeline.Invalid, err)
	}
	if err := checkKeyPart("id", id); err != nil {
		return 0, storeline.E(op, storeline.Invalid, err)
	}
	res := l.submit(ctx, op, &request{kind: reqMaster, ops: []masterOp{{kind: kind, id: id}}, size: len(id) + 64})
	return res.version, res.err
}

// MasterVersion returns the node-local version of the last master change.
func (l *Ledger) MasterVersion() uint64 { return l.masterVersion.Load() }

func getMaster(txn *badger.Txn, kind storeline.MasterKind, id string) (*masterVal, error) {
	v, err := getValue(txn, masterKey(kind, id))
	if err != nil || v == nil {
		return nil, err
	}
	mv := new(masterVal)
	if err := msgpack.Unmarshal(v, mv); err != nil {
		return nil, fmt.Errorf("ledger: decode %s %s: %w", kind, id, err)
	}
	return mv, nil
}

// resolveMaster checks a PutMaster or DeleteMaster against the state in
// txn, all records first, so the request is applied whole or not at all.
func (l *Ledger) resolveMaster(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	const op = "ledger.PutMaster"
	owners := map[string]string{} // unique-key key → holder id, "" if free
	// ownerOf is who holds uk: as this request's earlier ops left it,
	// else as stored.
	ownerOf := func(uk string) (string, error) {
		if owner, ok := owners[uk]; ok {
			return owner, nil
		}
		v, err := getValue(txn, []byte(uk))
		return string(v), err
	}
	held := map[string][]string{} // master key → keys it holds after the earlier ops
	for _, o := range r.ops {
		mk := string(masterKey(o.kind, o.id))
		old, ok := held[mk]
		if !ok {
			mv, err := getMaster(txn, o.kind, o.id)
			if err != nil {
				return result{}, err
			}
			live := mv != nil && !mv.Deleted
			if live {
				old = mv.Keys
			}
			if o.data == nil && !live {
				return result{err: storeline.Errorf(storeline.NotFound, "ledger.DeleteMaster", "no %s %q", o.kind, o.id)}, nil
			}
		}
		for _, k := range old {
			// Only a key the record still holds is released: a pulled
			// page may have moved one of its keys to another record
			// (ApplyPulled), leaving it listed here until its own change.
			uk := string(uniqueKey(o.kind, k))
			owner, err := ownerOf(uk)
			if err != nil {
				return result{}, err
			}
			if owner == o.id {
				owners[uk] = ""
			}
		}
		for _, k := range o.keys {
			uk := string(uniqueKey(o.kind, k))
			owner, err := ownerOf(uk)
			if err != nil {
				return result{}, err
			}
			if owner != "" && owner != o.id {
				return result{err: storeline.Errorf(storeline.Conflict, op, "%s %q: unique key %q is held by %q", o.kind, o.id, k, owner)}, nil
			}
			owners[uk] = o.id
		}
		held[mk] = o.keys
	}
	for _, o := range r.ops {
		rec := walRec{T: recMaster, Kind: string(o.kind), MID: o.id, Master: &masterVal{
			Version: l.st.mver + 1, Deleted: o.data == nil, Data: o.data, Keys: o.keys,
		}}
		if err := l.apply(txn, &rec, nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, rec)
	}
	return result{version: l.st.mver}, nil
}

// applyMaster stores one change: old unique keys released, the old version
// entry removed, the new record (or tombstone), its keys and version entry
// written.
func (l *Ledger) applyMaster(txn *badger.Txn, rec *walRec) error {
	kind, id, mv := storeline.MasterKind(rec.Kind), rec.MID, rec.Master
	if mv == nil {
		return fmt.Errorf("ledger: master record %s %s without a value", kind, id)
	}
	if mv.Version != l.st.mver+1 {
		panic(fmt.Sprintf("ledger: master version %d after %d", mv.Version, l.st.mver))
	}
	if err := putMaster(txn, kind, id, mv); err != nil {
		return err
	}
	l.st.mver = mv.Version
	return nil
}

// putMaster writes mv as the record (kind, id) in txn: the old record's
// unique keys and version entry removed, the new record (a tombstone keeps
// no data or keys), its keys and its version entry written. The node's
// ledger and central's replica both write master data through it.
func putMaster(txn *badger.Txn, kind storeline.MasterKind, id string, mv *masterVal) error {
	old, err := getMaster(txn, kind, id)
	if err != nil {
		return err
	}
	if old != nil {
		for _, k := range old.Keys {
			uk := uniqueKey(kind, k)
			holder, err := getValue(txn, uk)
			if err != nil {
				return err
			}
			if string(holder) == id {
				if err := txn.Delete(uk); err != nil {
					return err
				}
			}
		}
		if err := txn.Delete(versionKey(old.Version)); err != nil {
			return err
		}
	}
	enc, err := encodeMaster(mv)
	if err != nil {
		return err
	}
	if err := txn.Set(masterKey(kind, id), enc); err != nil {
		return err
	}
	keys := mv.Keys
	if mv.Deleted {
		keys = nil
	}
	for _, k := range keys {
		if err := txn.Set(uniqueKey(kind, k), []byte(id)); err != nil {
			return err
		}
	}
	return txn.Set(versionKey(mv.Version), append(append([]byte(kind), 0), id...))
}

// encodeMaster returns the stored form of mv: a tombstone keeps no data or
// keys.
func encodeMaster(mv *masterVal) ([]byte, error) {
	stored := *mv
	if stored.Deleted {
		stored.Keys, stored.Data = nil, nil
	}
	return msgpack.Marshal(&stored)
}

// decodeRecord decodes a stored record's data into into, which it zeroes
// first: msgpack sets only the fields the data holds, and a record omits
// its empty optional fields (omitempty), so a record read into a variable
// that held another would keep that one's phone, group or card holder.
// Zeroing the struct in place costs a memclr, no allocation: these are
// the tills' hottest reads.
func decodeRecord(data []byte, into storeline.Record) error {
	if v := reflect.ValueOf(into); v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().SetZero()
	}
	return msgpack.Unmarshal(data, into)
}

// GetMaster decodes the record (kind, id) into into, replacing all it
// held; NotFound (into untouched) if there is none or it is deleted.
func (l *Ledger) GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error {
	const op = "ledger.GetMaster"
	c := l.masterCache()
	k := string(masterKey(kind, id))
	if c != nil {
		if data, ok := c.records.Load(k); ok {
			return l.readErr(op, decodeRecord(data.([]byte), into))
		}
	}
	var data []byte
	err := l.viewMaster(func(txn *badger.Txn) error {
		mv, err := getMaster(txn, kind, id)
		if err != nil {
			return err
		}
		if mv == nil || mv.Deleted {
			return storeline.Errorf(storeline.NotFound, op, "no %s %q", kind, id)
		}
		data = mv.Data
		return nil
	})
	if err != nil {
		return l.readErr(op, err)
	}
	if c != nil {
		c.add(&c.records, k, data)
	}
	return l.readErr(op, decodeRecord(data, into))
}

// recordCache holds master records as read at one master version: the
// live records' encoded data by master key, and the IDs unique keys
// name. The tills' API reads the same few records (the store, the items
// on sale, their prices, the terminal) for every request, and master data
// changes seldom; any change (a new MasterVersion) starts an empty cache.
// A record read after a later change is kept under the earlier version,
// which only makes the cache answer fresher than it must.
type recordCache struct {
	version uint64
	records sync.Map // master key → []byte (msgpack of the record)
	ids     sync.Map // unique-key key → string (the holder's ID)
	n       atomic.Int64
}

// maxCachedRecords bounds a recordCache; past it, reads go to Badger.
const maxCachedRecords = 1 << 17

func (c *recordCache) add(m *sync.Map, k string, v any) {
	if c.n.Add(1) > maxCachedRecords {
		return
	}
	m.Store(k, v)
}

// masterCache returns the record cache of the current master version, or
// nil for a replica's ledger, whose master data changes in the replica's
// own transactions, not at a master version this ledger publishes.
func (l *Ledger) masterCache() *recordCache {
	if l.replica {
		return nil
	}
	v := l.masterVersion.Load() // read first: what is read is at least this fresh
	if c := l.records.Load(); c != nil && c.version == v {
		return c
	}
	c := &recordCache{version: v}
	l.records.Store(c)
	return c
}

// LookupMaster decodes the record of kind holding uniqueKey into into,
// replacing all it held; NotFound (into untouched) if none does. The holder and its record are read at one
// instant (one cache, or one transaction): read apart, a change that
// moves the key to another record between the two reads answered the
// old holder's new record, which no longer holds the key, or NotFound
// for a holder deleted meanwhile.
func (l *Ledger) LookupMaster(kind storeline.MasterKind, key string, into storeline.Record) error {
	const op = "ledger.LookupMaster"
	c := l.masterCache()
	uk := string(uniqueKey(kind, key))
	if c != nil {
		if id, ok := c.ids.Load(uk); ok {
			if data, ok := c.records.Load(string(masterKey(kind, id.(string)))); ok {
				return l.readErr(op, decodeRecord(data.([]byte), into))
			}
		}
	}
	var id string
	var data []byte
	err := l.viewMaster(func(txn *badger.Txn) error {
		v, err := getValue(txn, uniqueKey(kind, key))
		if err != nil {
			return err
		}
		if v == nil {
			return storeline.Errorf(storeline.NotFound, op, "no %s with %q", kind, key)
		}
		id = string(v)
		mv, err := getMaster(txn, kind, id)
		if err != nil {
			return err
		}
		if mv == nil || mv.Deleted {
			// As GetMaster answers the holder: the index and the records
			// change in one transaction, so this is not expected.
			return storeline.Errorf(storeline.NotFound, op, "no %s with %q", kind, key)
		}
		data = mv.Data
		return nil
	})
	if err != nil {
		return l.readErr(op, err)
	}
	if c != nil {
		c.add(&c.ids, uk, id)
		c.add(&c.records, string(masterKey(kind, id)), data)
	}
	return l.readErr(op, decodeRecord(data, into))
}

// ScanMaster calls fn for every live record of kind whose ID starts with
// idPrefix, in ID order. An error from fn stops the scan and is returned.
func (l *Ledger) ScanMaster(kind storeline.MasterKind, idPrefix string, fn func(storeline.Record) error) error {
	const op = "ledger.ScanMaster"
	var fnErr error
	err := l.viewMaster(func(txn *badger.Txn) error {
		p := masterKey(kind, idPrefix)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
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
			if fnErr = fn(rec); fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return l.readErr(op, err)
}

// MasterChanges returns up to limit changes with versions above after, in
// version order: the latest change of each record (an older change of a
// record changed again is superseded), tombstones included.
func (l *Ledger) MasterChanges(after uint64, limit int) ([]MasterChange, error) {
	const op = "ledger.MasterChanges"
	var out []MasterChange
	err := l.viewMaster(func(txn *badger.Txn) error {
		var err error
		out, err = masterChanges(txn, after, limit)
		return err
	})
	return out, l.readErr(op, err)
}

// MasterChanges is Ledger.MasterChanges inside the transaction, so a
// reader sees the changes and the other values it reads at one instant.
func (t *ReplicaTxn) MasterChanges(after uint64, limit int) ([]MasterChange, error) {
	return masterChanges(t.txn, after, limit)
}

// LookupMasterKey decodes into the live record of kind holding the unique
// key, in the transaction's state; false (into untouched) if none does.
func (t *ReplicaTxn) LookupMasterKey(kind storeline.MasterKind, key string, into storeline.Record) (bool, error) {
	v, err := getValue(t.txn, uniqueKey(kind, key))
	if err != nil || v == nil {
		return false, err
	}
	return t.GetMaster(kind, string(v), into)
}

// ScanMetaFrom is ScanMeta starting at the key prefix+from (or the first
// key after it): a paged reader seeks instead of walking the keys it has
// already seen.
func (t *ReplicaTxn) ScanMetaFrom(prefix, from string, fn func(key string, val []byte) (bool, error)) error {
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: metaKey(prefix), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Seek(metaKey(prefix + from)); it.Valid(); it.Next() {
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

// MetaKeys reads the meta keys under a prefix, keys only, by seeks: a
// reader hopping from one group of keys to the next (a shop's accounts,
// a department's) makes one iterator for all its hops, and reads no
// value it skips. Close it before the transaction ends; a read-write
// transaction allows one open iterator at a time.
type MetaKeys struct {
	it     *badger.Iterator
	prefix []byte
}

// MetaKeys returns a MetaKeys over the keys starting with prefix.
func (t *ReplicaTxn) MetaKeys(prefix string) *MetaKeys {
	p := metaKey(prefix)
	return &MetaKeys{it: t.txn.NewIterator(badger.IteratorOptions{Prefix: p}), prefix: p}
}

// Seek returns the first key at or after prefix+from (the whole key,
// prefix included); false when there is none.
func (m *MetaKeys) Seek(from string) (string, bool) {
	m.it.Seek(append(m.prefix[:len(m.prefix):len(m.prefix)], from...))
	if !m.it.Valid() {
		return "", false
	}
	return string(m.it.Item().Key()[1:]), true
}

// Close ends the iterator.
func (m *MetaKeys) Close() { m.it.Close() }

// AppliedIndex is the Raft index of the last entry applied in the state
// the transaction sees.
func (t *ReplicaTxn) AppliedIndex() (uint64, error) {
	v, err := getValue(t.txn, kRaftApplied)
	if err != nil || v == nil {
		return 0, err
	}
	return getU64(v), nil
}

// ScanMasterAfter calls fn for each live record of kind with an ID above
// after, in ID order, until fn returns false, in the transaction's state.
func (t *ReplicaTxn) ScanMasterAfter(kind storeline.MasterKind, after string, fn func(storeline.Record) (bool, error)) error {
	return scanMasterAfter(t.txn, kind, after, fn)
}

func scanMasterAfter(txn *badger.Txn, kind storeline.MasterKind, after string, fn func(storeline.Record) (bool, error)) error {
	p := masterKey(kind, "")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	start := masterKey(kind, after)
	for it.Seek(start); it.Valid(); it.Next() {
		if after != "" && bytes.Equal(it.Item().Key(), start) {
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
}

func masterChanges(txn *badger.Txn, after uint64, limit int) ([]MasterChange, error) {
	if limit <= 0 {
		limit = DefaultJournalLimit
	}
	limit = min(limit, MaxJournalLimit)
	if after == math.MaxUint64 {
		// No version is above it, and after+1 would wrap to 0, which is
		// every change (a till can ask with since=2^64-1).
		return nil, nil
	}
	var out []MasterChange
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tVersion}})
	defer it.Close()
	for it.Seek(versionKey(after + 1)); it.Valid() && len(out) < limit; it.Next() {
		ver := getU64(it.Item().Key()[1:])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		k, id, _ := bytes.Cut(v, []byte{0})
		kind := storeline.MasterKind(k)
		mv, err := getMaster(txn, kind, string(id))
		if err != nil {
			return nil, err
		}
		if mv == nil || mv.Version != ver {
			return nil, fmt.Errorf("ledger: version %d names %s %s at version %v", ver, kind, id, mv)
		}
		c := MasterChange{Version: ver, Kind: kind, ID: string(id), Deleted: mv.Deleted}
		if !mv.Deleted {
			rec, err := storeline.NewRecord(kind)
			if err != nil {
				return nil, err
			}
			if err := msgpack.Unmarshal(mv.Data, rec); err != nil {
				return nil, err
			}
			c.Record = rec
		}
		out = append(out, c)
	}
	return out, nil
}

// viewMaster runs fn in a read transaction without waiting for the
// applier (invariant 2 of commit.go): the batches answered before their
// apply hold events only, which write no master data, and a batch that
// writes master data is answered after its apply. A till's request reads
// the store, its items and their prices this way, so it does not queue
// behind every sale answered a moment before.
func (l *Ledger) viewMaster(fn func(txn *badger.Txn) error) error {
	return l.ver.view(fn)
}

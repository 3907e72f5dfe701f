package crdt

import (
	"bytes"
	"cmp"
	"iter"

	"github.com/vmihailenco/msgpack/v5"
)

// Register states, in the order used to break ties between writes with the
// same Stamp (which two correct writers never produce): a tombstone beats a
// value, and a value beats the unwritten register.
const (
	regUnset uint8 = iota
	regLive
	regTombstone
)

// LWWRegister is a last-writer-wins register of bytes, for data a shop may
// author offline, such as a customer registered at a till. Writes are ordered
// by Stamp (HLC time, then origin); the greatest wins at every replica,
// whatever the order in which they arrive. A delete is a write too, a
// tombstone, so that an older write arriving later does not bring the value
// back. Central's edits carry the Raft leader's HLC time.
//
// The value is opaque to this package; give it in a canonical encoding if
// replicas compare checksums. The register copies the value given to Set and
// returns its own copy from Get, which the caller must not modify.
//
// The zero LWWRegister is unwritten.
type LWWRegister struct {
	stamp Stamp
	value []byte
	state uint8
}

// Get returns the value and true, or nil and false if the register is
// unwritten or deleted.
func (r LWWRegister) Get() ([]byte, bool) {
	if r.state != regLive {
		return nil, false
	}
	return r.value, true
}

// Stamp is the stamp of the winning write, zero if the register is unwritten.
func (r LWWRegister) Stamp() Stamp { return r.stamp }

// Deleted reports whether the winning write is a delete.
func (r LWWRegister) Deleted() bool { return r.state == regTombstone }

// Set writes value at s, and reports whether it won, that is, whether s is
// greater than the current stamp.
func (r *LWWRegister) Set(value []byte, s Stamp) bool {
	return r.Merge(liveRegister(value, s))
}

// Delete writes a tombstone at s, and reports whether it won.
func (r *LWWRegister) Delete(s Stamp) bool {
	return r.Merge(LWWRegister{stamp: s, state: regTombstone})
}

// Merge keeps the greater of r and other, and reports whether other won.
func (r *LWWRegister) Merge(other LWWRegister) bool {
	if other.compare(*r) <= 0 {
		return false
	}
	*r = other
	return true
}

func liveRegister(value []byte, s Stamp) LWWRegister {
	v := make([]byte, len(value))
	copy(v, value)
	return LWWRegister{stamp: s, value: v, state: regLive}
}

// compare orders registers by stamp, then state, then value bytes. It is a
// total order, so merge picks the same winner at every replica even for two
// writes carrying the same stamp.
func (r LWWRegister) compare(o LWWRegister) int {
	if c := r.stamp.Compare(o.stamp); c != 0 {
		return c
	}
	if c := cmp.Compare(r.state, o.state); c != 0 {
		return c
	}
	return bytes.Compare(r.value, o.value)
}

// EncodeMsgpack writes [version, time, origin, state, value], where state is 0
// unwritten, 1 live or 2 deleted, and value is nil unless live.
func (r LWWRegister) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 5); err != nil {
		return err
	}
	return r.encodeFields(e)
}

func (r LWWRegister) encodeFields(e *msgpack.Encoder) error {
	if err := e.EncodeUint(uint64(r.stamp.Time)); err != nil {
		return err
	}
	if err := e.EncodeString(r.stamp.Origin); err != nil {
		return err
	}
	if err := e.EncodeUint(uint64(r.state)); err != nil {
		return err
	}
	if r.state != regLive {
		return e.EncodeNil()
	}
	return e.EncodeBytes(r.value)
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (r *LWWRegister) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "LWWRegister", 5); err != nil {
		return err
	}
	n, err := decodeRegisterFields(d)
	if err != nil {
		return err
	}
	if n.state == regUnset && n.stamp != (Stamp{}) {
		return malformed("LWWRegister: unwritten with stamp %s", n.stamp)
	}
	*r = n
	return nil
}

func decodeRegisterFields(d *msgpack.Decoder) (LWWRegister, error) {
	var r LWWRegister
	t, err := decodeTime(d, "LWWRegister time")
	if err != nil {
		return r, err
	}
	o, err := readString(d, "LWWRegister origin")
	if err != nil {
		return r, err
	}
	st, err := d.DecodeUint64()
	if err != nil {
		return r, err
	}
	if st > uint64(regTombstone) {
		return r, malformed("LWWRegister: state %d", st)
	}
	v, err := readBytes(d)
	if err != nil {
		return r, err
	}
	if (st == uint64(regLive)) != (v != nil) {
		return r, malformed("LWWRegister: state %d with value %q", st, v)
	}
	r = LWWRegister{stamp: Stamp{Time: t, Origin: o}, value: v, state: uint8(st)}
	return r, nil
}

// LWWMap is a map from string keys to LWW registers, with tombstones for
// deleted keys and a purge horizon.
//
// Tombstones keep a deleted key from coming back when an older write arrives
// late, so they cannot be dropped at once. Purge(h) drops those older than h
// and records h as the map's horizon; from then on the map ignores any write
// older than the horizon for a key it does not hold, since such a write can
// only be a stale redelivery of something already overwritten. That is sound
// only if h is stable: every replica has seen every write stamped before h
// (central knows this from the shops' acknowledged cursors; a retention
// period such as 30 days is the usual margin). Purging at an unstable horizon
// can resurrect or lose a key.
//
// Merge treats a key that a map does not hold as deleted before that map's
// horizon: an entry older than the other map's horizon, for a key the other
// map lacks, is dropped. Hence a map with a non-zero horizon must be a whole
// replica's state; Since returns deltas with horizon zero for that reason.
//
// The zero LWWMap is empty and ready to use. An LWWMap is not safe for
// concurrent use.
type LWWMap struct {
	entries map[string]LWWRegister
	horizon Timestamp
	live    int
}

// Set writes value for key at s, and reports whether the write won.
func (m *LWWMap) Set(key string, value []byte, s Stamp) bool {
	return m.Apply(key, liveRegister(value, s))
}

// Delete writes a tombstone for key at s, and reports whether it won.
func (m *LWWMap) Delete(key string, s Stamp) bool {
	return m.Apply(key, LWWRegister{stamp: s, state: regTombstone})
}

// Apply merges one entry, as received from another replica, and reports
// whether it won. It is Merge of a map holding that entry alone.
func (m *LWWMap) Apply(key string, r LWWRegister) bool {
	if r.state == regUnset {
		return false
	}
	cur, ok := m.entries[key]
	if !ok && r.stamp.Time < m.horizon {
		return false // stale: the key was deleted and purged, or overwritten
	}
	if ok && r.compare(cur) <= 0 {
		return false
	}
	m.put(key, r)
	return true
}

// put stores r for key, or removes key if r is a tombstone older than the
// horizon, keeping the live count.
func (m *LWWMap) put(key string, r LWWRegister) {
	old, had := m.entries[key]
	if had && old.state == regLive {
		m.live--
	}
	if r.state == regTombstone && r.stamp.Time < m.horizon {
		if had {
			delete(m.entries, key)
		}
		return
	}
	if m.entries == nil {
		m.entries = make(map[string]LWWRegister)
	}
	m.entries[key] = r
	if r.state == regLive {
		m.live++
	}
}

// remove drops key's entry, keeping the live count.
func (m *LWWMap) remove(key string) {
	if r, ok := m.entries[key]; ok {
		if r.state == regLive {
			m.live--
		}
		delete(m.entries, key)
	}
}

// Get returns key's value and true, or nil and false if it is absent or
// deleted. The caller must not modify the value.
func (m *LWWMap) Get(key string) ([]byte, bool) {
	return m.entries[key].Get()
}

// Entry returns key's register, tombstones included, and whether the map
// holds one.
func (m *LWWMap) Entry(key string) (LWWRegister, bool) {
	r, ok := m.entries[key]
	return r, ok
}

// Len is the number of live keys.
func (m *LWWMap) Len() int { return m.live }

// Tombstones is the number of deleted keys still held.
func (m *LWWMap) Tombstones() int { return len(m.entries) - m.live }

// All yields the live keys and values in ascending key order.
func (m *LWWMap) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, k := range sortedKeys(m.entries) {
			if v, ok := m.entries[k].Get(); ok && !yield(k, v) {
				return
			}
		}
	}
}

// Horizon is the map's purge horizon, zero if it was never purged.
func (m *LWWMap) Horizon() Timestamp { return m.horizon }

// Purge raises the horizon to h, drops tombstones older than it and returns
// how many it dropped. See the type's comment for when h is safe. A horizon
// at or below the current one does nothing.
func (m *LWWMap) Purge(h Timestamp) int {
	if h <= m.horizon {
		return 0
	}
	m.horizon = h
	n := 0
	for k, r := range m.entries {
		if r.state == regTombstone && r.stamp.Time < h {
			m.remove(k)
			n++
		}
	}
	return n
}

// Merge merges other into m: per key the greater register wins; a key one
// side lacks counts as deleted before that side's horizon; the horizon
// becomes the greater of the two, and tombstones older than it are dropped.
func (m *LWWMap) Merge(other *LWWMap) {
	for k, r := range other.entries {
		m.Apply(k, r)
	}
	if other.horizon > m.horizon {
		for k, r := range m.entries {
			if _, ok := other.entries[k]; !ok && r.stamp.Time < other.horizon {
				m.remove(k)
			}
		}
		m.Purge(other.horizon)
	}
}

// Since returns a delta holding the entries, tombstones included, whose time
// is at or after t, with horizon zero. A replica that has merged everything
// before t needs only this to catch up.
func (m *LWWMap) Since(t Timestamp) *LWWMap {
	d := &LWWMap{}
	for k, r := range m.entries {
		if r.stamp.Time >= t {
			d.put(k, r)
		}
	}
	return d
}

// Clone returns an independent copy of m. Values are shared, as nothing
// modifies them.
func (m *LWWMap) Clone() *LWWMap {
	n := &LWWMap{entries: make(map[string]LWWRegister, len(m.entries)), horizon: m.horizon, live: m.live}
	for k, r := range m.entries {
		n.entries[k] = r
	}
	return n
}

// EncodeMsgpack writes [version, horizon, {key: [time, origin, state, value]}]
// with keys sorted.
func (m LWWMap) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 3); err != nil {
		return err
	}
	if err := e.EncodeUint(uint64(m.horizon)); err != nil {
		return err
	}
	if err := e.EncodeMapLen(len(m.entries)); err != nil {
		return err
	}
	for _, k := range sortedKeys(m.entries) {
		if err := e.EncodeString(k); err != nil {
			return err
		}
		if err := e.EncodeArrayLen(4); err != nil {
			return err
		}
		if err := m.entries[k].encodeFields(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes, replacing m's contents.
func (m *LWWMap) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "LWWMap", 3); err != nil {
		return err
	}
	h, err := decodeTime(d, "LWWMap horizon")
	if err != nil {
		return err
	}
	n := &LWWMap{horizon: h}
	err = decodeSortedMap(d, "LWWMap entries", func(k string) error {
		if err := decodeArrayLen(d, "LWWMap entry", 4); err != nil {
			return err
		}
		r, err := decodeRegisterFields(d)
		if err != nil {
			return err
		}
		if r.state == regUnset {
			return malformed("LWWMap: unwritten entry %q", k)
		}
		if r.state == regTombstone && r.stamp.Time < n.horizon {
			return malformed("LWWMap: tombstone %q at %s older than horizon %s", k, r.stamp, n.horizon)
		}
		n.put(k, r)
		return nil
	})
	if err != nil {
		return err
	}
	*m = *n
	return nil
}

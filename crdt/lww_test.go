package crdt_test

import (
	"bytes"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

func st(ms int64, origin string) crdt.Stamp { return crdt.Stamp{Time: ts(ms, 0), Origin: origin} }

func TestLWWRegister(t *testing.T) {
	var r crdt.LWWRegister
	if _, ok := r.Get(); ok || r.Deleted() {
		t.Fatalf("zero register: Get() ok, Deleted() = %v, %v, want false, false", ok, r.Deleted())
	}
	v := []byte("alice")
	if !r.Set(v, st(10, "shop-1")) {
		t.Fatalf("Set at 10 lost against the zero register")
	}
	v[0] = 'X' // the register keeps its own copy
	steps := []struct {
		name    string
		do      func() bool
		wantWon bool
		want    string // "" and !wantOK for deleted
		wantOK  bool
	}{
		{"older set loses", func() bool { return r.Set([]byte("bob"), st(9, "shop-2")) }, false, "alice", true},
		{"same time, greater origin wins", func() bool { return r.Set([]byte("carol"), st(10, "shop-2")) }, true, "carol", true},
		{"central's edit carries the leader's HLC", func() bool { return r.Set([]byte("dave"), st(11, "central")) }, true, "dave", true},
		{"delete", func() bool { return r.Delete(st(12, "shop-1")) }, true, "", false},
		{"an older write arriving late does not resurrect", func() bool { return r.Set([]byte("eve"), st(11, "shop-3")) }, false, "", false},
		{"a tombstone beats a value with the same stamp", func() bool { return r.Set([]byte("zed"), st(12, "shop-1")) }, false, "", false},
		{"a newer write revives", func() bool { return r.Set([]byte{}, st(13, "shop-1")) }, true, "", true},
	}
	for _, s := range steps {
		if won := s.do(); won != s.wantWon {
			t.Errorf("%s: won = %v, want %v", s.name, won, s.wantWon)
		}
		got, ok := r.Get()
		if string(got) != s.want || ok != s.wantOK {
			t.Errorf("%s: Get() = %q, %v, want %q, %v", s.name, got, ok, s.want, s.wantOK)
		}
	}
	if r.Stamp() != st(13, "shop-1") {
		t.Errorf("Stamp() = %v, want %v", r.Stamp(), st(13, "shop-1"))
	}
}

func TestLWWMapPurge(t *testing.T) {
	var m crdt.LWWMap
	m.Set("cust-1", []byte("a"), st(10, "shop-1"))
	m.Set("cust-2", []byte("b"), st(10, "shop-1"))
	m.Set("cust-3", []byte("c"), st(30, "shop-1"))
	m.Delete("cust-2", st(20, "shop-2"))
	m.Delete("cust-3", st(40, "shop-2"))
	if m.Len() != 1 || m.Tombstones() != 2 {
		t.Fatalf("Len(), Tombstones() = %d, %d, want 1, 2", m.Len(), m.Tombstones())
	}
	if n := m.Purge(ts(25, 0)); n != 1 {
		t.Errorf("Purge(25) = %d, want 1", n)
	}
	if n := m.Purge(ts(20, 0)); n != 0 || m.Horizon() != ts(25, 0) {
		t.Errorf("Purge(20) = %d, Horizon() = %s, want 0 and the horizon kept at 25", n, m.Horizon())
	}
	steps := []struct {
		name    string
		key     string
		stamp   crdt.Stamp
		wantWon bool
		wantOK  bool
	}{
		{"a stale write to a purged key is ignored", "cust-2", st(15, "shop-1"), false, false},
		{"a stale write to a new key is ignored", "cust-9", st(24, "shop-1"), false, false},
		{"a write after the horizon is taken", "cust-2", st(26, "shop-3"), true, true},
		{"a kept tombstone still wins over older writes", "cust-3", st(35, "shop-1"), false, false},
		{"a live key below the horizon follows LWW", "cust-1", st(11, "shop-3"), true, true},
	}
	for _, s := range steps {
		if won := m.Set(s.key, []byte("x"), s.stamp); won != s.wantWon {
			t.Errorf("%s: Set(%s, %v) won = %v, want %v", s.name, s.key, s.stamp, won, s.wantWon)
		}
		if _, ok := m.Get(s.key); ok != s.wantOK {
			t.Errorf("%s: Get(%s) ok = %v, want %v", s.name, s.key, ok, s.wantOK)
		}
	}
	if m.Delete("cust-1", st(12, "shop-1")) != true {
		t.Errorf("Delete(cust-1) at 12 lost against a write at 11")
	}
	if _, held := m.Entry("cust-1"); held {
		t.Errorf("a tombstone older than the horizon was kept")
	}
	if err := crdt.CheckDerived(&m); err != nil {
		t.Error(err)
	}
}

// TestLWWMapMergePurgedState: a new replica hears a stale redelivery of a
// write before it receives a whole state from a replica that purged the
// key's tombstone. The purged state's horizon vouches that the key was
// deleted, so the stale write goes.
func TestLWWMapMergePurgedState(t *testing.T) {
	var full crdt.LWWMap
	full.Set("cust-1", []byte("old"), st(5, "shop-1"))
	full.Set("cust-2", []byte("kept"), st(6, "shop-1"))
	full.Delete("cust-1", st(8, "shop-2"))
	full.Purge(ts(20, 0))

	var fresh crdt.LWWMap
	fresh.Set("cust-1", []byte("old"), st(5, "shop-1")) // stale redelivery
	fresh.Merge(&full)
	if v, ok := fresh.Get("cust-1"); ok {
		t.Errorf("Get(cust-1) = %q, want deleted", v)
	}
	if v, _ := fresh.Get("cust-2"); string(v) != "kept" {
		t.Errorf("Get(cust-2) = %q, want \"kept\"", v)
	}
	if x, y := encode(t, &fresh), encode(t, &full); !bytes.Equal(x, y) {
		t.Errorf("fresh replica = %x, want %x", x, y)
	}
}

func TestLWWMapAllAndSince(t *testing.T) {
	var m crdt.LWWMap
	for i, k := range []string{"d", "b", "a", "c"} {
		m.Set(k, []byte(k), st(int64(10+i), "shop-1"))
	}
	m.Delete("a", st(20, "shop-1"))
	var keys []string
	for k, v := range m.All() {
		if string(v) != k {
			t.Errorf("All() yields %s=%q, want %q", k, v, k)
		}
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{"b", "c", "d"}) {
		t.Errorf("All() keys = %v, want [b c d]", keys)
	}
	d := m.Since(ts(12, 0))
	if d.Len() != 1 || d.Tombstones() != 1 || d.Horizon() != 0 {
		t.Errorf("Since(12): Len, Tombstones, Horizon = %d, %d, %s, want 1, 1, 0", d.Len(), d.Tombstones(), d.Horizon())
	}
	// A replica that had everything before 12 catches up from the delta.
	var old crdt.LWWMap
	for _, k := range []string{"d", "b"} {
		r, _ := m.Entry(k)
		old.Apply(k, r)
	}
	old.Merge(d)
	if x, y := encode(t, &old), encode(t, &m); !bytes.Equal(x, y) {
		t.Errorf("catching up from Since: got %x, want %x", x, y)
	}
}

var (
	genKey   = rapid.SampledFrom([]string{"k1", "k2", "k3", "k4"})
	genValue = rapid.SampledFrom([]string{"", "a", "b"})
	genStamp = rapid.Custom(func(t *rapid.T) crdt.Stamp {
		return crdt.Stamp{
			Time:   ts(rapid.Int64Range(1, 6).Draw(t, "ms"), rapid.Uint16Range(0, 1).Draw(t, "l")),
			Origin: rapid.SampledFrom(origins).Draw(t, "origin"),
		}
	})
)

// lwwWrite is one write to a map: a set, or a delete if del.
type lwwWrite struct {
	key   string
	value []byte
	del   bool
	stamp crdt.Stamp
}

func genWriteAfter(min int64) *rapid.Generator[lwwWrite] {
	return rapid.Custom(func(t *rapid.T) lwwWrite {
		s := genStamp.Draw(t, "stamp")
		s.Time = ts(s.Time.Millis()+min, s.Time.Logical())
		return lwwWrite{
			key:   genKey.Draw(t, "key"),
			value: []byte(genValue.Draw(t, "value")),
			del:   rapid.IntRange(0, 3).Draw(t, "del") == 0,
			stamp: s,
		}
	})
}

func (w lwwWrite) register() crdt.LWWRegister {
	var r crdt.LWWRegister
	if w.del {
		r.Delete(w.stamp)
	} else {
		r.Set(w.value, w.stamp)
	}
	return r
}

func (w lwwWrite) applyTo(m *crdt.LWWMap) {
	if w.del {
		m.Delete(w.key, w.stamp)
	} else {
		m.Set(w.key, w.value, w.stamp)
	}
}

var genRegister = rapid.Custom(func(t *rapid.T) *crdt.LWWRegister {
	r := &crdt.LWWRegister{}
	for _, w := range rapid.SliceOfN(genWriteAfter(0), 0, 3).Draw(t, "writes") {
		r.Merge(w.register())
	}
	return r
})

func genMapAfter(min int64) *rapid.Generator[*crdt.LWWMap] {
	return rapid.Custom(func(t *rapid.T) *crdt.LWWMap {
		m := &crdt.LWWMap{}
		for _, w := range rapid.SliceOfN(genWriteAfter(min), 0, 10).Draw(t, "writes") {
			w.applyTo(m)
		}
		return m
	})
}

var (
	registerLattice = lattice[*crdt.LWWRegister]{
		clone: func(r *crdt.LWWRegister) *crdt.LWWRegister { c := *r; return &c },
		merge: func(dst, src *crdt.LWWRegister) { dst.Merge(*src) },
	}
	mapLattice = lattice[*crdt.LWWMap]{
		clone: (*crdt.LWWMap).Clone,
		merge: (*crdt.LWWMap).Merge,
	}
)

func TestLWWRegisterLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, registerLattice, genRegister.Draw(t, "a"), genRegister.Draw(t, "b"), genRegister.Draw(t, "c"))
	})
}

func TestLWWMapLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, mapLattice, genMapAfter(0).Draw(t, "a"), genMapAfter(0).Draw(t, "b"), genMapAfter(0).Draw(t, "c"))
	})
}

// TestLWWMapLawsWithStableHorizon checks the laws on maps that share a
// history every replica has seen (so horizon h is stable), then took writes
// at or after h, and were or were not purged at h.
func TestLWWMapLawsWithStableHorizon(t *testing.T) {
	const h = 10
	rapid.Check(t, func(t *rapid.T) {
		base := genMapAfter(0).Draw(t, "base")
		grow := func(label string) *crdt.LWWMap {
			m := base.Clone()
			m.Merge(genMapAfter(h).Draw(t, label))
			if rapid.Bool().Draw(t, label+" purged") {
				m.Purge(ts(h, 0))
			}
			if err := crdt.CheckDerived(m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		checkLaws(t, mapLattice, grow("a"), grow("b"), grow("c"))
	})
}

// lwwUpdate is a write, or the instruction to purge at the horizon.
type lwwUpdate struct {
	w     lwwWrite
	purge crdt.Timestamp
}

func applyLWW(m *crdt.LWWMap, u lwwUpdate) {
	if u.purge != 0 {
		m.Purge(u.purge)
		return
	}
	m.Apply(u.w.key, u.w.register())
}

// TestLWWMapConverges delivers writes to three replicas in random orders
// with duplicates, drops and redelivery, and gossip, and checks they converge
// to the last write per key.
func TestLWWMapConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		writes := rapid.SliceOfN(genWriteAfter(0), 1, 25).Draw(t, "writes")
		var updates []lwwUpdate
		for _, w := range writes {
			updates = append(updates, lwwUpdate{w: w})
		}
		n := lwwNetwork(3)
		n.run(t, updates)
		checkLWWModel(t, n.replicas[0], writes, 0)
	})
}

// TestLWWMapConvergesWithPurge: every replica has seen a first batch of
// writes, so a horizon after them is stable. Replicas then receive a second
// batch, stale redeliveries of the first, and an instruction to purge at the
// horizon, all in random order; nothing resurrects, nothing is lost, and the
// replicas converge.
func TestLWWMapConvergesWithPurge(t *testing.T) {
	const h = 10
	rapid.Check(t, func(t *rapid.T) {
		first := rapid.SliceOfN(genWriteAfter(0), 1, 15).Draw(t, "first")
		second := rapid.SliceOfN(genWriteAfter(h), 0, 15).Draw(t, "second")
		n := lwwNetwork(3)
		for _, m := range n.replicas {
			for _, w := range first {
				w.applyTo(m)
			}
		}
		updates := []lwwUpdate{{purge: ts(h, 0)}}
		for _, w := range second {
			updates = append(updates, lwwUpdate{w: w})
		}
		for _, w := range rapid.SliceOf(rapid.SampledFrom(first)).Draw(t, "stale") {
			updates = append(updates, lwwUpdate{w: w})
		}
		n.run(t, updates)
		checkLWWModel(t, n.replicas[0], append(first, second...), ts(h, 0))
	})
}

func lwwNetwork(replicas int) *network[*crdt.LWWMap, lwwUpdate] {
	n := &network[*crdt.LWWMap, lwwUpdate]{
		apply: applyLWW,
		merge: (*crdt.LWWMap).Merge,
		check: func(t *rapid.T, r int, m *crdt.LWWMap) {
			if err := crdt.CheckDerived(m); err != nil {
				t.Fatalf("replica %d: %v", r, err)
			}
		},
	}
	for range replicas {
		n.replicas = append(n.replicas, &crdt.LWWMap{})
	}
	return n
}

// checkLWWModel compares m with the naive answer: for each key, the write
// with the greatest stamp (ties broken by the register order), and only
// tombstones at or after the horizon kept.
func checkLWWModel(t *rapid.T, m *crdt.LWWMap, writes []lwwWrite, horizon crdt.Timestamp) {
	t.Helper()
	winner := map[string]crdt.LWWRegister{}
	for _, w := range writes {
		r := winner[w.key]
		r.Merge(w.register())
		winner[w.key] = r
	}
	for k, want := range winner {
		got, held := m.Entry(k)
		if want.Deleted() && want.Stamp().Time < horizon {
			if held {
				t.Fatalf("Entry(%s) = %v held, want purged", k, got.Stamp())
			}
			continue
		}
		if !held || got.Stamp() != want.Stamp() || got.Deleted() != want.Deleted() {
			t.Fatalf("Entry(%s) = %v deleted=%v held=%v, want %v deleted=%v",
				k, got.Stamp(), got.Deleted(), held, want.Stamp(), want.Deleted())
		}
		gv, gok := got.Get()
		wv, wok := want.Get()
		if !bytes.Equal(gv, wv) || gok != wok {
			t.Fatalf("Get(%s) = %q, %v, want %q, %v", k, gv, gok, wv, wok)
		}
	}
}

func TestLWWRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMapAfter(0).Draw(t, "m")
		if rapid.Bool().Draw(t, "purge") {
			m.Purge(ts(rapid.Int64Range(1, 7).Draw(t, "h"), 0))
		}
		got := roundTrip(t, m)
		if err := crdt.CheckDerived(got); err != nil {
			t.Fatal(err)
		}
		if got.Len() != m.Len() || got.Horizon() != m.Horizon() {
			t.Fatalf("Len, Horizon after round trip = %d, %s, want %d, %s", got.Len(), got.Horizon(), m.Len(), m.Horizon())
		}
		r := genRegister.Draw(t, "r")
		back := roundTrip(t, r)
		if back.Stamp() != r.Stamp() || back.Deleted() != r.Deleted() {
			t.Fatalf("register round trip = %v/%v, want %v/%v", back.Stamp(), back.Deleted(), r.Stamp(), r.Deleted())
		}
	})
}

func TestLWWEmptyValueIsNotDeleted(t *testing.T) {
	var a, b crdt.LWWRegister
	a.Set(nil, st(1, "x"))
	b.Delete(st(1, "x"))
	if v, ok := a.Get(); !ok || len(v) != 0 {
		t.Errorf("Get() after Set(nil) = %q, %v, want \"\", true", v, ok)
	}
	if bytes.Equal(encode(t, &a), encode(t, &b)) {
		t.Errorf("an empty value and a tombstone encode the same")
	}
	got := &crdt.LWWRegister{}
	if err := unmarshal(encode(t, &a), got); err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Get(); !ok || v == nil {
		t.Errorf("decoded empty value: Get() = %#v, %v, want []byte{}, true", v, ok)
	}
}

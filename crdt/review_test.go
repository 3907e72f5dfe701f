package crdt_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

// TestReviewClockEdges: the wall clock steps back, a remote or observed time
// equals the local one, and the logical counter overflows.
func TestReviewClockEdges(t *testing.T) {
	w := &fakeWall{ms: base}
	c := crdt.NewClock(w.now, time.Second)
	want := func(got, want crdt.Timestamp) {
		t.Helper()
		if got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	want(c.Now(), ts(base, 0))
	w.set(base - 500) // wall steps back
	want(c.Now(), ts(base, 1))
	got, err := c.Update(ts(base, 1)) // remote equal to local
	if err != nil {
		t.Fatal(err)
	}
	want(got, ts(base, 2))
	c.Observe(ts(base, 2)) // observed equal to local
	want(c.Now(), ts(base, 3))
	c.Observe(ts(base, crdt.MaxLogical)) // at the logical limit
	want(c.Now(), ts(base+1, 0))
	if c.Stats().Overflows != 1 {
		t.Fatalf("Overflows = %d, want 1", c.Stats().Overflows)
	}
	got, err = c.Update(ts(base+1, crdt.MaxLogical))
	if err != nil {
		t.Fatal(err)
	}
	want(got, ts(base+2, 0))
	// Remote exactly at the skew is adopted, one ms beyond is refused.
	w.set(base + 10_000)
	if got, err := c.Update(ts(base+11_000, 5)); err != nil || got != ts(base+11_000, 6) {
		t.Fatalf("Update at skew = %s, %v", got, err)
	}
	if got, err := c.Update(ts(base+11_001, 0)); !errors.Is(err, crdt.ErrClockSkew) || got != ts(base+11_000, 7) {
		t.Fatalf("Update beyond skew = %s, %v", got, err)
	}
	// A new clock whose wall clock reads before 1970 never returns zero.
	z := crdt.NewClock(func() time.Time { return time.UnixMilli(-5) }, 0)
	if got := z.Now(); got == 0 {
		t.Fatalf("Now() = 0")
	}
}

// TestReviewClockConcurrentWallJitter: concurrent Now and Update calls while
// the wall clock jumps back and forth never return a timestamp twice.
func TestReviewClockConcurrentWallJitter(t *testing.T) {
	w := &fakeWall{ms: base}
	c := crdt.NewClock(w.now, 50*time.Millisecond)
	const goroutines, each = 4, 2000
	results := make([][]crdt.Timestamp, goroutines)
	stop := make(chan struct{})
	var jw sync.WaitGroup
	jw.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.set(base + int64(i%7)*10 - 30)
		}
	})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i%3 == 0 {
					got, _ := c.Update(ts(base+int64(i%40), uint16(i)))
					results[g] = append(results[g], got)
				} else {
					results[g] = append(results[g], c.Now())
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	jw.Wait()
	seen := map[crdt.Timestamp]bool{}
	for _, rs := range results {
		for i, r := range rs {
			if seen[r] {
				t.Fatalf("timestamp %s returned twice", r)
			}
			seen[r] = true
			if i > 0 && r <= rs[i-1] {
				t.Fatalf("one goroutine saw %s after %s", r, rs[i-1])
			}
		}
	}
}

func TestReviewTimestampPacking(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms1 := rapid.Int64Range(0, crdt.MaxMillis).Draw(t, "ms1")
		ms2 := rapid.Int64Range(0, crdt.MaxMillis).Draw(t, "ms2")
		l1 := rapid.Uint16().Draw(t, "l1")
		l2 := rapid.Uint16().Draw(t, "l2")
		a, b := crdt.MakeTimestamp(ms1, l1), crdt.MakeTimestamp(ms2, l2)
		if a.Millis() != ms1 || a.Logical() != l1 {
			t.Fatalf("MakeTimestamp(%d, %d) unpacks to (%d, %d)", ms1, l1, a.Millis(), a.Logical())
		}
		lex := ms1 < ms2 || ms1 == ms2 && l1 < l2
		if (a < b) != lex {
			t.Fatalf("order of (%d,%d) and (%d,%d) is not lexicographic", ms1, l1, ms2, l2)
		}
	})
}

// genTieWrite draws writes from a tiny stamp space, so that equal stamps with
// different states and values are common.
var genTieWrite = rapid.Custom(func(t *rapid.T) lwwWrite {
	return lwwWrite{
		key:   rapid.SampledFrom([]string{"k1", "k2"}).Draw(t, "key"),
		value: []byte(rapid.SampledFrom([]string{"", "a", "b", "ab"}).Draw(t, "value")),
		del:   rapid.Bool().Draw(t, "del"),
		stamp: crdt.Stamp{
			Time:   ts(rapid.Int64Range(1, 2).Draw(t, "ms"), 0),
			Origin: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "origin"),
		},
	}
})

func TestReviewLWWTieLaws(t *testing.T) {
	genReg := rapid.Custom(func(t *rapid.T) *crdt.LWWRegister {
		r := &crdt.LWWRegister{}
		for _, w := range rapid.SliceOfN(genTieWrite, 0, 3).Draw(t, "writes") {
			r.Merge(w.register())
		}
		return r
	})
	genMap := rapid.Custom(func(t *rapid.T) *crdt.LWWMap {
		m := &crdt.LWWMap{}
		for _, w := range rapid.SliceOfN(genTieWrite, 0, 6).Draw(t, "writes") {
			w.applyTo(m)
		}
		return m
	})
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, registerLattice, genReg.Draw(t, "a"), genReg.Draw(t, "b"), genReg.Draw(t, "c"))
		checkLaws(t, mapLattice, genMap.Draw(t, "ma"), genMap.Draw(t, "mb"), genMap.Draw(t, "mc"))
	})
}

func TestReviewLWWNoResurrection(t *testing.T) {
	m := &crdt.LWWMap{}
	m.Set("k", []byte("v"), st(5, "a"))
	m.Delete("k", st(7, "a"))
	if m.Set("k", []byte("old"), st(6, "b")) {
		t.Fatal("older write beat the tombstone")
	}
	m.Purge(ts(8, 0))
	if m.Set("k", []byte("old"), st(6, "b")) {
		t.Fatal("older write resurrected a purged key")
	}
	stale := &crdt.LWWMap{}
	stale.Set("k", []byte("old"), st(6, "b"))
	m.Merge(stale)
	if _, ok := m.Get("k"); ok {
		t.Fatal("merge of a stale replica resurrected a purged key")
	}
	stale.Merge(m)
	if _, ok := stale.Get("k"); ok {
		t.Fatal("stale replica kept a key deleted before the other's horizon")
	}
	var r crdt.LWWRegister
	r.Delete(st(7, "a"))
	if r.Set([]byte("x"), st(7, "a")) {
		t.Fatal("a value beat a tombstone with the same stamp")
	}
}

func TestReviewBoundedAmounts(t *testing.T) {
	c := &crdt.BoundedCounter{}
	for _, n := range []int64{0, -1, -crdt.MaxAmount, crdt.MaxAmount + 1} {
		if _, err := c.Increment("a", n); !errors.Is(err, crdt.ErrInvalidAmount) {
			t.Errorf("Increment(%d) error = %v", n, err)
		}
		if _, err := c.Decrement("a", n); !errors.Is(err, crdt.ErrInvalidAmount) {
			t.Errorf("Decrement(%d) error = %v", n, err)
		}
		if _, err := c.Transfer("a", "b", n); !errors.Is(err, crdt.ErrInvalidAmount) {
			t.Errorf("Transfer(%d) error = %v", n, err)
		}
	}
	if _, err := c.Increment("a", crdt.MaxAmount); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Increment("a", 1); !errors.Is(err, crdt.ErrOverflow) {
		t.Fatalf("Increment past MaxAmount error = %v", err)
	}
	d1, err := c.Transfer("a", "b", 10)
	if err != nil {
		t.Fatal(err)
	}
	b := &crdt.BoundedCounter{}
	b.Merge(d1)
	b.Merge(d1)
	if got := b.Rights("b"); got != 10 {
		t.Fatalf("transfer applied twice: Rights(b) = %d, want 10", got)
	}
	if _, err := b.Decrement("b", 11); !errors.Is(err, crdt.ErrInsufficientRights) {
		t.Fatalf("overspend error = %v", err)
	}
	// Two concurrent transfers from central to two shops, each spending all,
	// merged everywhere: total spent never exceeds what was granted.
	cen := &crdt.BoundedCounter{}
	inc, _ := cen.Increment("central", 100)
	t1, _ := cen.Transfer("central", "s1", 60)
	t2, _ := cen.Transfer("central", "s2", 40)
	if _, err := cen.Transfer("central", "s1", 1); err == nil {
		t.Fatal("central granted more than it holds")
	}
	s1, s2 := &crdt.BoundedCounter{}, &crdt.BoundedCounter{}
	s1.Merge(inc)
	s1.Merge(t1)
	s2.Merge(t2)
	x1, err1 := s1.Decrement("s1", 60)
	x2, err2 := s2.Decrement("s2", 40)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	all := &crdt.BoundedCounter{}
	for _, d := range []*crdt.BoundedCounter{x2, x1, t2, t1, inc, x1} {
		all.Merge(d)
		if all.Value() < 0 || len(all.Overdrawn()) > 0 {
			t.Fatalf("Value() = %d, Overdrawn() = %v", all.Value(), all.Overdrawn())
		}
	}
	if all.Value() != 0 {
		t.Fatalf("Value() = %d, want 0", all.Value())
	}
}

// TestReviewDecodeHostile feeds every decoder random bytes and truncated or
// corrupted valid encodings: no panic, and what decodes is a fixed point that
// keeps its invariants.
func TestReviewDecodeHostile(t *testing.T) {
	pn := &crdt.PNCounter{}
	pn.Add("shop-1", dec("1.5"))
	pn.Add("shop-2", dec("-2"))
	bc := &crdt.BoundedCounter{}
	_, _ = bc.Increment("s", 10)
	_, _ = bc.Transfer("s", "c", 4)
	_, _ = bc.Decrement("c", 1)
	m := &crdt.LWWMap{}
	m.Set("k", []byte("v"), st(3, "o"))
	m.Delete("j", st(4, "o"))
	m.Purge(ts(2, 0))
	sc := &crdt.SerialCounts{}
	sc.Sell("S", "a")
	sc.Return("S", "b")
	var reg crdt.LWWRegister
	reg.Set([]byte("hello"), st(9, "x"))
	var seeds [][]byte
	for _, v := range []any{pn, pn.Row("shop-1"), bc, m, sc, sc.Row("S", "a"), &reg, st(1, "o")} {
		seeds = append(seeds, encode(t, v))
	}
	fresh := []func() any{
		func() any { return &crdt.PNCounter{} },
		func() any { return &crdt.PNDelta{} },
		func() any { return &crdt.BoundedCounter{} },
		func() any { return &crdt.LWWRegister{} },
		func() any { return &crdt.LWWMap{} },
		func() any { return &crdt.SerialCounts{} },
		func() any { return &crdt.SerialDelta{} },
		func() any { return new(crdt.Stamp) },
		func() any { return new(crdt.Timestamp) },
	}
	try := func(t tb, b []byte) {
		for _, f := range fresh {
			v := f()
			if msgpack.Unmarshal(b, v) != nil {
				continue
			}
			if c, ok := v.(*crdt.BoundedCounter); ok && (c.Value() < 0 || len(c.Overdrawn()) > 0) {
				t.Fatalf("decoded %x: Value() = %d, Overdrawn() = %v", b, c.Value(), c.Overdrawn())
			}
			switch v.(type) {
			case *crdt.BoundedCounter, *crdt.LWWMap, *crdt.SerialCounts:
				if err := crdt.CheckDerived(v); err != nil {
					t.Fatalf("decoded %T from %x: %v", v, b, err)
				}
			}
			once := encode(t, v)
			w := f()
			if err := msgpack.Unmarshal(once, w); err != nil {
				t.Fatalf("%T from %x re-encodes to %x, which does not decode: %v", v, b, once, err)
			}
			if twice := encode(t, w); !bytes.Equal(once, twice) {
				t.Fatalf("%T from %x: not a fixed point: %x then %x", v, b, once, twice)
			}
		}
	}
	for _, s := range seeds {
		for i := range len(s) {
			try(t, s[:i])
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		b := append([]byte(nil), rapid.SampledFrom(seeds).Draw(rt, "seed")...)
		for range rapid.IntRange(1, 4).Draw(rt, "edits") {
			i := rapid.IntRange(0, len(b)-1).Draw(rt, "at")
			switch rapid.IntRange(0, 2).Draw(rt, "edit") {
			case 0:
				b[i] = rapid.Byte().Draw(rt, "byte")
			case 1:
				b = append(b[:i:i], b[i+1:]...)
			default:
				b = append(b[:i:i], append([]byte{rapid.Byte().Draw(rt, "ins")}, b[i:]...)...)
			}
			if len(b) == 0 {
				break
			}
		}
		try(rt, b)
	})
}

// TestReviewClockSkewErrorWildRemote: a remote time centuries ahead (a
// corrupted or hostile stamp) is refused, and the error must say by how much
// without the duration overflowing.
func TestReviewClockSkewErrorWildRemote(t *testing.T) {
	w := &fakeWall{ms: base}
	c := crdt.NewClock(w.now, time.Minute)
	remote := crdt.MakeTimestamp(crdt.MaxMillis, 0)
	got, err := c.Update(remote)
	if !errors.Is(err, crdt.ErrClockSkew) || got != ts(base, 0) {
		t.Fatalf("Update(max) = %s, %v", got, err)
	}
	ahead := crdt.MaxMillis - base
	if want := fmt.Sprintf("%dms ahead", ahead); !strings.Contains(err.Error(), want) {
		t.Errorf("Update error = %q, want it to contain %q", err, want)
	}
}

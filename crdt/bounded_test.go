package crdt_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

func mustDelta(t *testing.T) func(*crdt.BoundedCounter, error) *crdt.BoundedCounter {
	return func(d *crdt.BoundedCounter, err error) *crdt.BoundedCounter {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return d
	}
}

func wantRights(t *testing.T, c *crdt.BoundedCounter, want map[string]int64) {
	t.Helper()
	var sum int64
	for o, w := range want {
		if got := c.Rights(o); got != w {
			t.Errorf("Rights(%s) = %d, want %d", o, got, w)
		}
		sum += w
	}
	if got := c.Value(); got != sum {
		t.Errorf("Value() = %d, want %d", got, sum)
	}
}

// TestBoundedCounterLoyaltyStory follows one customer's points through the
// design's escrow flow.
func TestBoundedCounterLoyaltyStory(t *testing.T) {
	must := mustDelta(t)
	shop1, shop2, central := &crdt.BoundedCounter{}, &crdt.BoundedCounter{}, &crdt.BoundedCounter{}

	// Points earned at shop-1 are spendable there at once, offline.
	earn := must(shop1.Increment("shop-1", 100))
	must(shop1.Decrement("shop-1", 30))
	wantRights(t, shop1, map[string]int64{"shop-1": 70})

	// shop-1 hands rights above a float of 20 back to central when online.
	back := must(shop1.Transfer("shop-1", "central", 50))
	central.Merge(earn)
	central.Merge(back)
	wantRights(t, central, map[string]int64{"shop-1": 20, "central": 50})

	// Central brokers 40 to shop-2, which spends 25 offline.
	grant := must(central.Transfer("central", "shop-2", 40))
	shop2.Merge(grant)
	spend := must(shop2.Decrement("shop-2", 25))
	wantRights(t, shop2, map[string]int64{"shop-1": 20, "central": 10, "shop-2": 15})

	// shop-2 cannot spend more than it holds, and the error says how many
	// rights it has, though central holds more.
	_, err := shop2.Decrement("shop-2", 16)
	var re *crdt.RightsError
	if !errors.Is(err, crdt.ErrInsufficientRights) || !errors.As(err, &re) || re.Have != 15 || re.Need != 16 {
		t.Fatalf("Decrement(shop-2, 16) error = %v, want RightsError{Need: 16, Have: 15}", err)
	}
	if !strings.Contains(err.Error(), "has 15 rights") {
		t.Errorf("error %q does not say how many rights the origin has", err)
	}

	// A replica that receives shop-2's spend alone also receives what paid
	// for it: the delta carries the rows of central and shop-1.
	observer := &crdt.BoundedCounter{}
	observer.Merge(spend)
	wantRights(t, observer, map[string]int64{"shop-1": 20, "central": 10, "shop-2": 15})
	if got := observer.Origins(); strings.Join(got, ",") != "central,shop-1,shop-2" {
		t.Errorf("Origins() = %v, want [central shop-1 shop-2]", got)
	}
}

func TestBoundedCounterErrors(t *testing.T) {
	must := mustDelta(t)
	var c crdt.BoundedCounter
	must(c.Increment("a", 10))
	before := encode(t, &c)
	tests := []struct {
		name string
		op   func() (*crdt.BoundedCounter, error)
		want error
	}{
		{"zero increment", func() (*crdt.BoundedCounter, error) { return c.Increment("a", 0) }, crdt.ErrInvalidAmount},
		{"negative decrement", func() (*crdt.BoundedCounter, error) { return c.Decrement("a", -1) }, crdt.ErrInvalidAmount},
		{"huge transfer", func() (*crdt.BoundedCounter, error) { return c.Transfer("a", "b", crdt.MaxAmount+1) }, crdt.ErrInvalidAmount},
		{"overdraw", func() (*crdt.BoundedCounter, error) { return c.Decrement("a", 11) }, crdt.ErrInsufficientRights},
		{"over-transfer", func() (*crdt.BoundedCounter, error) { return c.Transfer("a", "b", 11) }, crdt.ErrInsufficientRights},
		{"spend of a stranger", func() (*crdt.BoundedCounter, error) { return c.Decrement("b", 1) }, crdt.ErrInsufficientRights},
		{"self transfer", func() (*crdt.BoundedCounter, error) { return c.Transfer("a", "a", 1) }, crdt.ErrSelfTransfer},
		{"increment overflow", func() (*crdt.BoundedCounter, error) { return c.Increment("a", crdt.MaxAmount) }, crdt.ErrOverflow},
	}
	for _, tt := range tests {
		d, err := tt.op()
		if !errors.Is(err, tt.want) || d != nil {
			t.Errorf("%s: error = %v, delta = %v, want %v and no delta", tt.name, err, d, tt.want)
		}
		if after := encode(t, &c); !bytes.Equal(after, before) {
			t.Errorf("%s: a failed operation changed the counter", tt.name)
		}
	}
}

// bcOp is one attempted operation at an origin.
type bcOp struct {
	kind   string // "inc", "dec", "xfer"
	origin string
	to     string
	n      int64
}

func (o bcOp) String() string { return fmt.Sprintf("%s(%s→%s, %d)", o.kind, o.origin, o.to, o.n) }

func genBCOp(origins []string) *rapid.Generator[bcOp] {
	return rapid.Custom(func(t *rapid.T) bcOp {
		op := bcOp{
			kind:   rapid.SampledFrom([]string{"inc", "dec", "dec", "xfer", "xfer"}).Draw(t, "kind"),
			origin: rapid.SampledFrom(origins).Draw(t, "origin"),
			n:      rapid.Int64Range(1, 30).Draw(t, "n"),
		}
		if op.kind == "xfer" {
			op.to = rapid.SampledFrom(origins).Filter(func(s string) bool { return s != op.origin }).Draw(t, "to")
		}
		return op
	})
}

func (o bcOp) do(c *crdt.BoundedCounter) (*crdt.BoundedCounter, error) {
	switch o.kind {
	case "inc":
		return c.Increment(o.origin, o.n)
	case "dec":
		return c.Decrement(o.origin, o.n)
	default:
		return c.Transfer(o.origin, o.to, o.n)
	}
}

// bcModel is the naive reference: the totals of all successful operations
// anywhere, from which each origin's true rights follow.
type bcModel struct {
	inc, dec map[string]int64
	out      map[[2]string]int64
}

func newBCModel() *bcModel {
	return &bcModel{inc: map[string]int64{}, dec: map[string]int64{}, out: map[[2]string]int64{}}
}

func (m *bcModel) record(o bcOp) {
	switch o.kind {
	case "inc":
		m.inc[o.origin] += o.n
	case "dec":
		m.dec[o.origin] += o.n
	default:
		m.out[[2]string{o.origin, o.to}] += o.n
	}
}

func (m *bcModel) rights(origin string) int64 {
	r := m.inc[origin] - m.dec[origin]
	for k, v := range m.out {
		if k[1] == origin {
			r += v
		}
		if k[0] == origin {
			r -= v
		}
	}
	return r
}

func (m *bcModel) value() int64 {
	var v int64
	for _, x := range m.inc {
		v += x
	}
	for _, x := range m.dec {
		v -= x
	}
	return v
}

// checkBounded asserts the counter's invariants at one replica.
func checkBounded(t *rapid.T, where string, c *crdt.BoundedCounter) {
	t.Helper()
	if err := crdt.CheckDerived(c); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if v := c.Value(); v < 0 {
		t.Fatalf("%s: Value() = %d, want >= 0", where, v)
	}
	if bad := c.Overdrawn(); len(bad) > 0 {
		t.Fatalf("%s: Rights(%s) = %d, want >= 0", where, bad[0], c.Rights(bad[0]))
	}
}

// TestBoundedCounterNeverOverdraws runs random histories of increments,
// decrements and transfers at several origins, each on its own replica, plus
// an observer that only listens. Deltas travel as encoded bytes through a
// network that reorders, duplicates and drops them (a dropped message is
// resent later) and that partitions and heals; replicas also gossip whole
// states. After every step, every replica has Value() >= 0 and no origin with
// negative rights, and no origin has spent beyond the rights the whole
// history gave it. At the end, with the network healed and drained, the
// replicas are equal and the value is the model's.
func TestBoundedCounterNeverOverdraws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		names := []string{"central", "shop-1", "shop-2", "shop-3"}[:rapid.IntRange(2, 4).Draw(t, "origins")]
		replicas := append(append([]string{}, names...), "observer")
		state := map[string]*crdt.BoundedCounter{}
		side := map[string]int{}
		for _, r := range replicas {
			state[r] = &crdt.BoundedCounter{}
		}
		type msg struct {
			from string
			b    []byte
		}
		inbox := map[string][]msg{}
		var resend []struct {
			to string
			m  msg
		}
		linked := func(a, b string) bool { return side[a] == side[b] }
		model := newBCModel()
		deliver := func(to string, m msg) {
			var d crdt.BoundedCounter
			if err := msgpack.Unmarshal(m.b, &d); err != nil {
				t.Fatalf("decode delta from %s: %v", m.from, err)
			}
			checkBounded(t, "delta from "+m.from, &d)
			state[to].Merge(&d)
		}
		genOp := genBCOp(names)

		for step := range rapid.IntRange(1, 120).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "action") {
			case 0, 1, 2, 3: // an operation at its origin
				op := genOp.Draw(t, "op")
				c := state[op.origin]
				have := c.Rights(op.origin)
				before := encode(t, c)
				d, err := op.do(c)
				if err != nil {
					var re *crdt.RightsError
					if !errors.As(err, &re) || re.Have != have || re.Need != op.n || op.kind == "inc" {
						t.Fatalf("step %d: %v error = %v, want RightsError{Have: %d}", step, op, err, have)
					}
					if !bytes.Equal(encode(t, c), before) {
						t.Fatalf("step %d: failed %v changed the counter", step, op)
					}
					break
				}
				if op.kind != "inc" && have < op.n {
					t.Fatalf("step %d: %v succeeded with %d rights", step, op, have)
				}
				model.record(op)
				b := encode(t, d)
				for _, r := range replicas {
					if r != op.origin {
						inbox[r] = append(inbox[r], msg{op.origin, b})
					}
				}
			case 4, 5, 6: // a delivery, maybe out of order, duplicated or lost
				r := rapid.SampledFrom(replicas).Draw(t, "to")
				if len(inbox[r]) == 0 {
					break
				}
				i := rapid.IntRange(0, len(inbox[r])-1).Draw(t, "msg")
				m := inbox[r][i]
				if !linked(m.from, r) {
					break
				}
				switch rapid.IntRange(0, 5).Draw(t, "fate") {
				case 0: // lost; the sender resends it later
					resend = append(resend, struct {
						to string
						m  msg
					}{r, m})
				case 1: // duplicated: delivered now and again later
					deliver(r, m)
					continue
				default:
					deliver(r, m)
				}
				inbox[r] = append(inbox[r][:i], inbox[r][i+1:]...)
			case 7: // anti-entropy: a whole state, if linked
				a, b := rapid.SampledFrom(replicas).Draw(t, "a"), rapid.SampledFrom(replicas).Draw(t, "b")
				if a != b && linked(a, b) {
					state[a].Merge(state[b])
				}
			case 8: // partition or heal
				r := rapid.SampledFrom(replicas).Draw(t, "flip")
				side[r] = 1 - side[r]
			case 9: // resend what was lost
				for _, x := range resend {
					inbox[x.to] = append(inbox[x.to], x.m)
				}
				resend = nil
			}
			for _, r := range replicas {
				checkBounded(t, fmt.Sprintf("step %d at %s", step, r), state[r])
			}
			for _, o := range names {
				if got := model.rights(o); got < 0 {
					t.Fatalf("step %d: %s spent beyond its rights: true rights %d", step, o, got)
				}
				if local := state[o].Rights(o); local > model.rights(o) {
					t.Fatalf("step %d: %s sees %d rights, but has only %d", step, o, local, model.rights(o))
				}
			}
		}

		// Heal, resend and drain.
		for _, x := range resend {
			inbox[x.to] = append(inbox[x.to], x.m)
		}
		for _, r := range replicas {
			for _, m := range inbox[r] {
				deliver(r, m)
			}
			checkBounded(t, "drained "+r, state[r])
		}
		want := encode(t, state[replicas[0]])
		for _, r := range replicas {
			if got := encode(t, state[r]); !bytes.Equal(got, want) {
				t.Fatalf("%s did not converge:\n got  %x\n want %x", r, got, want)
			}
			if got := state[r].Value(); got != model.value() {
				t.Fatalf("%s: Value() = %d, want %d", r, got, model.value())
			}
			for _, o := range names {
				if got := state[r].Rights(o); got != model.rights(o) {
					t.Fatalf("%s: Rights(%s) = %d, want %d", r, o, got, model.rights(o))
				}
			}
		}
	})
}

// genBounded builds a counter from a random history at a single replica, so
// that it is a state the package can reach.
var genBounded = rapid.Custom(func(t *rapid.T) *crdt.BoundedCounter {
	c := &crdt.BoundedCounter{}
	for _, op := range rapid.SliceOfN(genBCOp(origins), 0, 15).Draw(t, "ops") {
		_, _ = op.do(c)
	}
	return c
})

var boundedLattice = lattice[*crdt.BoundedCounter]{
	clone: (*crdt.BoundedCounter).Clone,
	merge: (*crdt.BoundedCounter).Merge,
}

// TestBoundedCounterLaws checks the merge laws on independent histories.
// Those reuse origin names, so their union may overdraw; the laws are about
// the cell-wise maximum and hold regardless.
func TestBoundedCounterLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, boundedLattice, genBounded.Draw(t, "a"), genBounded.Draw(t, "b"), genBounded.Draw(t, "c"))
	})
}

func TestBoundedCounterConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Deltas from one history at per-origin replicas, as in production.
		local := map[string]*crdt.BoundedCounter{}
		shared := &crdt.BoundedCounter{} // lets origins see each other's grants
		var deltas []*crdt.BoundedCounter
		model := newBCModel()
		for _, op := range rapid.SliceOfN(genBCOp(origins), 1, 30).Draw(t, "ops") {
			if local[op.origin] == nil {
				local[op.origin] = &crdt.BoundedCounter{}
			}
			if rapid.Bool().Draw(t, "sync") {
				local[op.origin].Merge(shared)
			}
			d, err := op.do(local[op.origin])
			if err != nil {
				continue
			}
			model.record(op)
			shared.Merge(d)
			deltas = append(deltas, d)
		}
		n := network[*crdt.BoundedCounter, *crdt.BoundedCounter]{
			replicas: []*crdt.BoundedCounter{{}, {}, {}},
			apply:    (*crdt.BoundedCounter).Merge,
			merge:    (*crdt.BoundedCounter).Merge,
			check: func(t *rapid.T, r int, c *crdt.BoundedCounter) {
				checkBounded(t, fmt.Sprintf("replica %d", r), c)
			},
		}
		n.run(t, deltas)
		if got := n.replicas[0].Value(); got != model.value() {
			t.Fatalf("Value() = %d, want %d", got, model.value())
		}
	})
}

func TestBoundedCounterRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genBounded.Draw(t, "c")
		got := roundTrip(t, c)
		if got.Value() != c.Value() {
			t.Fatalf("Value() after round trip = %d, want %d", got.Value(), c.Value())
		}
		for _, o := range c.Origins() {
			if got.Rights(o) != c.Rights(o) {
				t.Fatalf("Rights(%s) after round trip = %d, want %d", o, got.Rights(o), c.Rights(o))
			}
		}
		if err := crdt.CheckDerived(got); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBoundedCounterForkedOriginIsReported shows what the type cannot
// prevent: an origin restored from an old backup that keeps its name writes
// a second version of its row, and the merge overdraws. Overdrawn reports it.
func TestBoundedCounterForkedOriginIsReported(t *testing.T) {
	must := mustDelta(t)
	var live crdt.BoundedCounter
	must(live.Increment("shop-1", 10))
	backup := live.Clone()
	must(live.Decrement("shop-1", 10))
	must(backup.Decrement("shop-1", 4))
	must(backup.Transfer("shop-1", "central", 6))
	live.Merge(backup)
	if got := live.Overdrawn(); len(got) != 1 || got[0] != "shop-1" {
		t.Errorf("Overdrawn() = %v, want [shop-1]", got)
	}
	if got := live.Rights("shop-1"); got != -6 {
		t.Errorf("Rights(shop-1) = %d, want -6", got)
	}
}

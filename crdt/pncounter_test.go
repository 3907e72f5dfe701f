package crdt_test

import (
	"bytes"
	"testing"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

var origins = []string{"central", "shop-1", "shop-2", "shop-3"}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// pnOp is one Add at an origin.
type pnOp struct {
	origin string
	amount decimal.Decimal
}

var genPNOp = rapid.Custom(func(t *rapid.T) pnOp {
	// Amounts with up to three decimals and trailing zeros, as weighed goods.
	units := rapid.Int64Range(-5000, 5000).Draw(t, "units")
	exp := rapid.Int32Range(-3, 0).Draw(t, "exp")
	return pnOp{
		origin: rapid.SampledFrom(origins).Draw(t, "origin"),
		amount: decimal.New(units, exp),
	}
})

// runPN performs ops at their origins, each origin on its own replica as in
// production, and returns the deltas they ship and the exact sum.
func runPN(ops []pnOp) ([]crdt.PNDelta, decimal.Decimal) {
	local := map[string]*crdt.PNCounter{}
	var deltas []crdt.PNDelta
	sum := decimal.Zero
	for _, op := range ops {
		if local[op.origin] == nil {
			local[op.origin] = &crdt.PNCounter{}
		}
		d, err := local[op.origin].Add(op.origin, op.amount)
		if err != nil {
			panic(err) // amounts of a few digits always fit
		}
		deltas = append(deltas, d)
		sum = sum.Add(op.amount)
	}
	return deltas, sum
}

var genPN = rapid.Custom(func(t *rapid.T) *crdt.PNCounter {
	deltas, _ := runPN(rapid.SliceOfN(genPNOp, 0, 12).Draw(t, "ops"))
	c := &crdt.PNCounter{}
	for _, d := range deltas {
		if err := c.Apply(d); err != nil {
			t.Fatalf("Apply(%+v): %v", d, err)
		}
	}
	return c
})

var pnLattice = lattice[*crdt.PNCounter]{
	clone: (*crdt.PNCounter).Clone,
	merge: (*crdt.PNCounter).Merge,
}

func TestPNCounterAdd(t *testing.T) {
	var c crdt.PNCounter
	c.Add("shop-1", dec("12.5"))
	c.Add("shop-1", dec("-2.25"))
	d, err := c.Add("shop-2", dec("-1"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add("shop-2", decimal.Zero)
	if want := (crdt.PNDelta{Origin: "shop-2", Inc: decimal.Zero, Dec: dec("1")}); d.Origin != want.Origin || !d.Inc.Equal(want.Inc) || !d.Dec.Equal(want.Dec) {
		t.Errorf("Add(shop-2, -1) = %+v, want %+v", d, want)
	}
	if got, want := c.Value(), dec("9.25"); !got.Equal(want) {
		t.Errorf("Value() = %s, want %s", got, want)
	}
	if got, want := c.Contribution("shop-1"), dec("10.25"); !got.Equal(want) {
		t.Errorf("Contribution(shop-1) = %s, want %s", got, want)
	}
	if got := c.Contribution("nobody"); !got.IsZero() {
		t.Errorf("Contribution(nobody) = %s, want 0", got)
	}
	if got := c.Origins(); len(got) != 2 || got[0] != "shop-1" || got[1] != "shop-2" {
		t.Errorf("Origins() = %v, want [shop-1 shop-2]", got)
	}
}

func TestPNCounterApplyIsIdempotentAndIgnoresOldRows(t *testing.T) {
	var at crdt.PNCounter
	d1, err1 := at.Add("shop-1", dec("3"))
	d2, err2 := at.Add("shop-1", dec("-1"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	var c crdt.PNCounter
	for _, d := range []crdt.PNDelta{d2, d1, d2, d1} {
		if err := c.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.Value(), dec("2"); !got.Equal(want) {
		t.Errorf("Value() = %s, want %s", got, want)
	}
}

func TestPNCounterEqualValuesEqualBytes(t *testing.T) {
	var a, b crdt.PNCounter
	a.Add("shop-1", dec("12.3"))
	b.Add("shop-1", dec("12.300"))
	a.Add("shop-2", dec("-0.5"))
	b.Add("shop-2", dec("-0.50"))
	if x, y := encode(t, &a), encode(t, &b); !bytes.Equal(x, y) {
		t.Errorf("encodings of equal counters differ:\n %x\n %x", x, y)
	}
}

func TestPNCounterLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, pnLattice, genPN.Draw(t, "a"), genPN.Draw(t, "b"), genPN.Draw(t, "c"))
	})
}

func TestPNCounterConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		deltas, sum := runPN(rapid.SliceOfN(genPNOp, 1, 30).Draw(t, "ops"))
		n := network[*crdt.PNCounter, crdt.PNDelta]{
			replicas: []*crdt.PNCounter{{}, {}, {}},
			apply: func(c *crdt.PNCounter, d crdt.PNDelta) {
				if err := c.Apply(d); err != nil {
					t.Fatalf("Apply(%+v): %v", d, err)
				}
			},
			merge: (*crdt.PNCounter).Merge,
		}
		n.run(t, deltas)
		if got := n.replicas[0].Value(); !got.Equal(sum) {
			t.Fatalf("Value() = %s, want %s", got, sum)
		}
	})
}

func TestPNCounterRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genPN.Draw(t, "c")
		got := roundTrip(t, c)
		if !got.Value().Equal(c.Value()) {
			t.Fatalf("Value() after round trip = %s, want %s", got.Value(), c.Value())
		}
		for _, o := range c.Origins() {
			d := c.Row(o)
			if d.Inc.IsZero() && d.Dec.IsZero() {
				continue
			}
			back := roundTrip(t, &d)
			if !back.Inc.Equal(d.Inc) || !back.Dec.Equal(d.Dec) || back.Origin != d.Origin {
				t.Fatalf("PNDelta round trip = %+v, want %+v", back, d)
			}
		}
	})
}

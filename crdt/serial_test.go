package crdt_test

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

func TestSerialCountsStories(t *testing.T) {
	tests := []struct {
		name         string
		ops          []string // "sell shop-1" or "return shop-1", on serial S
		wantNet      int64
		wantConflict bool
	}{
		{"sold once", []string{"sell shop-1"}, 1, false},
		{"sold and returned", []string{"sell shop-1", "return shop-1"}, 0, false},
		{"sold, returned, sold again elsewhere", []string{"sell shop-1", "return shop-1", "sell shop-2"}, 1, false},
		{"sold, returned elsewhere, sold again", []string{"sell shop-1", "return shop-2", "sell shop-1"}, 1, false},
		{"sold twice at two shops", []string{"sell shop-1", "sell shop-2"}, 2, true},
		{"sold twice at one shop", []string{"sell shop-1", "sell shop-1"}, 2, true},
		{"sold twice, one returned", []string{"sell shop-1", "sell shop-2", "return shop-2"}, 1, false},
		{"returned without a sale seen", []string{"return shop-1"}, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := map[string]*crdt.SerialCounts{}
			var all crdt.SerialCounts
			for _, op := range tt.ops {
				var kind, origin string
				fmt.Sscan(op, &kind, &origin)
				if local[origin] == nil {
					local[origin] = &crdt.SerialCounts{}
				}
				var d crdt.SerialDelta
				if kind == "sell" {
					d = local[origin].Sell("S", origin)
				} else {
					d = local[origin].Return("S", origin)
				}
				all.Apply(d)
			}
			if got := all.Net("S"); got != tt.wantNet {
				t.Errorf("Net(S) = %d, want %d", got, tt.wantNet)
			}
			if got := all.Conflict("S"); got != tt.wantConflict {
				t.Errorf("Conflict(S) = %v, want %v", got, tt.wantConflict)
			}
			if got, want := all.Conflicts(), tt.wantConflict; (len(got) == 1) != want {
				t.Errorf("Conflicts() = %v, want S listed: %v", got, want)
			}
		})
	}
}

// serialOp is one sale or return of a serial at an origin.
type serialOp struct {
	serial, origin string
	sell           bool
}

var genSerialOp = rapid.Custom(func(t *rapid.T) serialOp {
	return serialOp{
		serial: rapid.SampledFrom([]string{"S1", "S2", "S3"}).Draw(t, "serial"),
		origin: rapid.SampledFrom(origins).Draw(t, "origin"),
		sell:   rapid.IntRange(0, 2).Draw(t, "sell") > 0,
	}
})

// serialHistory performs ops at their origins and returns, for each delta,
// its position in its origin's sequence of ops on that serial.
type serialHistory struct {
	ops    map[[2]string][]bool // (serial, origin) -> sells (true) and returns in order
	deltas []crdt.SerialDelta
	index  []int // deltas[i] follows ops[...][:index[i]]
}

func runSerial(ops []serialOp) *serialHistory {
	h := &serialHistory{ops: map[[2]string][]bool{}}
	local := map[string]*crdt.SerialCounts{}
	for _, op := range ops {
		if local[op.origin] == nil {
			local[op.origin] = &crdt.SerialCounts{}
		}
		var d crdt.SerialDelta
		if op.sell {
			d = local[op.origin].Sell(op.serial, op.origin)
		} else {
			d = local[op.origin].Return(op.serial, op.origin)
		}
		k := [2]string{op.serial, op.origin}
		h.ops[k] = append(h.ops[k], op.sell)
		h.deltas = append(h.deltas, d)
		h.index = append(h.index, len(h.ops[k]))
	}
	return h
}

// naiveConflicts counts events, not rows: a replica that has seen delta i
// knows the first index[i] operations of that origin on that serial; each
// sale adds one and each return takes one away.
func (h *serialHistory) naiveConflicts(seen []int) (net map[string]int64, conflicts []string) {
	known := map[[2]string]int{}
	for _, i := range seen {
		k := [2]string{h.deltas[i].Serial, h.deltas[i].Origin}
		known[k] = max(known[k], h.index[i])
	}
	net = map[string]int64{}
	for k, n := range known {
		for _, sell := range h.ops[k][:n] {
			if sell {
				net[k[0]]++
			} else {
				net[k[0]]--
			}
		}
	}
	for s, n := range net {
		if n > 1 {
			conflicts = append(conflicts, s)
		}
	}
	slices.Sort(conflicts)
	return net, conflicts
}

// TestSerialCountsConflictsMatchNaiveModel delivers the deltas of a random
// history one by one, in random order with duplicates, and after each
// checks that the conflicts reported are exactly the serials whose net count
// of seen sales and returns exceeds one.
func TestSerialCountsConflictsMatchNaiveModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := runSerial(rapid.SliceOfN(genSerialOp, 1, 30).Draw(t, "ops"))
		idx := make([]int, len(h.deltas))
		for i := range idx {
			idx[i] = i
		}
		order := rapid.Permutation(append(idx, rapid.SliceOf(rapid.SampledFrom(idx)).Draw(t, "dups")...)).Draw(t, "order")
		var c crdt.SerialCounts
		var seen []int
		for _, i := range order {
			c.Apply(h.deltas[i])
			seen = append(seen, i)
			net, want := h.naiveConflicts(seen)
			if got := c.Conflicts(); !slices.Equal(got, want) {
				t.Fatalf("after %d deliveries: Conflicts() = %v, want %v", len(seen), got, want)
			}
			for s, n := range net {
				if got := c.Net(s); got != n {
					t.Fatalf("Net(%s) = %d, want %d", s, got, n)
				}
			}
			if err := crdt.CheckDerived(&c); err != nil {
				t.Fatal(err)
			}
		}
	})
}

var genSerialCounts = rapid.Custom(func(t *rapid.T) *crdt.SerialCounts {
	h := runSerial(rapid.SliceOfN(genSerialOp, 0, 12).Draw(t, "ops"))
	c := &crdt.SerialCounts{}
	for _, d := range h.deltas {
		if rapid.Bool().Draw(t, "keep") {
			c.Apply(d)
		}
	}
	return c
})

var serialLattice = lattice[*crdt.SerialCounts]{
	clone: (*crdt.SerialCounts).Clone,
	merge: (*crdt.SerialCounts).Merge,
}

func TestSerialCountsLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkLaws(t, serialLattice, genSerialCounts.Draw(t, "a"), genSerialCounts.Draw(t, "b"), genSerialCounts.Draw(t, "c"))
	})
}

func TestSerialCountsConverge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := runSerial(rapid.SliceOfN(genSerialOp, 1, 30).Draw(t, "ops"))
		n := network[*crdt.SerialCounts, crdt.SerialDelta]{
			replicas: []*crdt.SerialCounts{{}, {}, {}},
			apply:    (*crdt.SerialCounts).Apply,
			merge:    (*crdt.SerialCounts).Merge,
		}
		n.run(t, h.deltas)
		all := make([]int, len(h.deltas))
		for i := range all {
			all[i] = i
		}
		if _, want := h.naiveConflicts(all); !slices.Equal(n.replicas[0].Conflicts(), want) {
			t.Fatalf("Conflicts() = %v, want %v", n.replicas[0].Conflicts(), want)
		}
	})
}

func TestSerialCountsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genSerialCounts.Draw(t, "c")
		got := roundTrip(t, c)
		if !slices.Equal(got.Conflicts(), c.Conflicts()) || got.Len() != c.Len() {
			t.Fatalf("after round trip: Conflicts() = %v, Len() = %d, want %v, %d", got.Conflicts(), got.Len(), c.Conflicts(), c.Len())
		}
		if err := crdt.CheckDerived(got); err != nil {
			t.Fatal(err)
		}
		d := crdt.SerialDelta{Serial: "S1", Origin: "shop-1", Sold: rapid.Int64Range(0, 5).Draw(t, "sold"), Returned: 2}
		if back := roundTrip(t, &d); *back != d {
			t.Fatalf("SerialDelta round trip = %+v, want %+v", *back, d)
		}
	})
}

package crdt_test

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// tb is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// encode returns v's msgpack bytes, failing the test on error.
func encode(t tb, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("msgpack.Marshal(%T) error = %v", v, err)
	}
	return b
}

// lattice describes a state type for checkLaws: how to clone, merge and
// encode it. merge(dst, src) merges src into dst.
type lattice[S any] struct {
	clone func(S) S
	merge func(dst, src S)
}

func (l lattice[S]) join(a, b S) S {
	c := l.clone(a)
	l.merge(c, b)
	return c
}

// checkLaws checks that merge is commutative, associative and idempotent on
// a, b, c, comparing encoded bytes, and that it leaves its argument alone.
func checkLaws[S any](t *rapid.T, l lattice[S], a, b, c S) {
	t.Helper()
	eb := encode(t, b)
	ab, ba := l.join(a, b), l.join(b, a)
	if x, y := encode(t, ab), encode(t, ba); !bytes.Equal(x, y) {
		t.Fatalf("merge not commutative:\n a∪b = %x\n b∪a = %x", x, y)
	}
	if !bytes.Equal(encode(t, b), eb) {
		t.Fatalf("merge modified its argument")
	}
	abc1, abc2 := l.join(ab, c), l.join(a, l.join(b, c))
	if x, y := encode(t, abc1), encode(t, abc2); !bytes.Equal(x, y) {
		t.Fatalf("merge not associative:\n (a∪b)∪c = %x\n a∪(b∪c) = %x", x, y)
	}
	if x, y := encode(t, l.join(a, a)), encode(t, a); !bytes.Equal(x, y) {
		t.Fatalf("merge not idempotent:\n a∪a = %x\n a   = %x", x, y)
	}
	if x, y := encode(t, l.join(ab, b)), encode(t, ab); !bytes.Equal(x, y) {
		t.Fatalf("merging again changed the state:\n (a∪b)∪b = %x\n a∪b     = %x", x, y)
	}
}

// network is a replica simulation for convergence tests. Each replica gets
// every update at least once: in a random order, some of them twice, some
// dropped on first delivery and redelivered later. Between deliveries,
// replicas also gossip whole states to each other. When every queue is
// drained, all replicas must encode to the same bytes.
type network[S, U any] struct {
	replicas []S
	apply    func(S, U)
	merge    func(dst, src S)
	check    func(t *rapid.T, replica int, s S) // after every step; may be nil
}

func (n *network[S, U]) run(t *rapid.T, updates []U) {
	t.Helper()
	queues := make([][]U, len(n.replicas))
	for r := range n.replicas {
		first := rapid.Permutation(updates).Draw(t, fmt.Sprintf("order%d", r))
		var q, later []U
		for _, u := range first {
			switch rapid.IntRange(0, 9).Draw(t, "fate") {
			case 0, 1: // dropped: redelivered after the first pass
				later = append(later, u)
			case 2: // duplicated
				q = append(q, u)
				later = append(later, u)
			default:
				q = append(q, u)
			}
		}
		queues[r] = append(q, rapid.Permutation(later).Draw(t, "redelivery")...)
	}
	for {
		var open []int
		for r, q := range queues {
			if len(q) > 0 {
				open = append(open, r)
			}
		}
		if len(open) == 0 {
			break
		}
		r := rapid.SampledFrom(open).Draw(t, "replica")
		if len(n.replicas) > 1 && rapid.IntRange(0, 9).Draw(t, "gossip") == 0 {
			from := rapid.IntRange(0, len(n.replicas)-1).Draw(t, "from")
			if from != r {
				n.merge(n.replicas[r], n.replicas[from])
			}
		} else {
			n.apply(n.replicas[r], queues[r][0])
			queues[r] = queues[r][1:]
		}
		if n.check != nil {
			n.check(t, r, n.replicas[r])
		}
	}
	want := encode(t, n.replicas[0])
	for r := 1; r < len(n.replicas); r++ {
		if got := encode(t, n.replicas[r]); !bytes.Equal(got, want) {
			t.Fatalf("replica %d did not converge:\n got  %x\n want %x", r, got, want)
		}
	}
}

// roundTrip decodes v's encoding into a fresh value, checks that it encodes
// to the same bytes, and returns it.
func roundTrip[S any](t *rapid.T, v *S) *S {
	t.Helper()
	b := encode(t, v)
	var got S
	if err := msgpack.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(Marshal(%T)) error = %v", v, err)
	}
	if again := encode(t, &got); !bytes.Equal(again, b) {
		t.Fatalf("Marshal(Unmarshal(b)) = %x, want b = %x", again, b)
	}
	return &got
}

func unmarshal(b []byte, v any) error { return msgpack.Unmarshal(b, v) }

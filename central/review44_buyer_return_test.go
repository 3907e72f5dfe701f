package central_test

import (
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline/central"
)

// review44Raise raises n's cluster to FSM level 8 by an entry, as the
// leader does once every node tells it, while n still tells 7.
func review44Raise(t *testing.T, n *central.Node) {
	t.Helper()
	enc, err := msgpack.Marshal(map[string]int{"l": 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.SubmitPastLevel(central.OpClusterLevel, enc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cluster at level 8", 10*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l == 8
	})
}

func review44Returnable(t *testing.T, n *central.Node) map[string]string {
	t.Helper()
	m, err := n.Review40Meta("bo/bret/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range m {
		var bt struct {
			B string `msgpack:"b"`
			Q string `msgpack:"q"`
		}
		_ = msgpack.Unmarshal([]byte(v), &bt)
		out[k] = bt.B + "=" + bt.Q
	}
	return out
}

// TestReview44BuyerReturnAcrossRaise: an invoice and a return posted at
// level 7 and cancelled at level 8 touch nothing of the returnable
// batches; a return at 8 of an invoice at 7 comes back unbatched.
func TestReview44BuyerReturnAcrossRaise(t *testing.T) {
	n, reg := review40Node(t, 7)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5") // B1 4, B2 1
	review40Return(t, a, "r0", "b1", map[string]any{"qty": "1"})
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	review44Raise(t, n)
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "3"})
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	if m := review44Returnable(t, n); len(m) != 0 {
		t.Fatalf("returnable after r1: %v", m)
	}
	review40Out(t, a, "out2", "b1", "2") // B2 2
	wantBatches(t, a, reg, "s1", "B3=5", 0)
	t.Logf("after out2: %v", review44Returnable(t, n))
	cancelDoc(t, a, "out1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=1 B3=5", 2)
	t.Logf("after cancel out1: %v", review44Returnable(t, n))
	cancelDoc(t, a, "r0")
	review40Return(t, a, "r2", "b1", map[string]any{"qty": "3"})
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review44Returnable(t, n); len(m) != 0 {
		t.Fatalf("returnable after r2: %v", m)
	}
	cancelDoc(t, a, "r2")
	wantBatches(t, a, reg, "s1", "B1=4 B2=1 B3=5", 2)
	cancelDoc(t, a, "out2")
	cancelDoc(t, a, "r1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review44Returnable(t, n); len(m) != 0 {
		t.Fatalf("returnable at the end: %v", m)
	}
	if s := milkStock(t, a); s != "12" {
		t.Fatalf("milk = %s", s)
	}
}

// TestReview44BuyerReturnAfterNegativeReturnable: an invoice cancelled
// under its return leaves its buyer's returnable units of the batch
// below zero, so a later return puts nothing more into that batch until
// later invoices of the buyer take from it again, and then only what
// they took past the deficit.
func TestReview44BuyerReturnAfterNegativeReturnable(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "4") // B1 4
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "3"})
	wantBatches(t, a, reg, "s1", "B1=3 B2=3 B3=5", 2)
	cancelDoc(t, a, "out1") // B1 +4: r1's 3 stand, returnable B1 −3
	wantBatches(t, a, reg, "s1", "B1=7 B2=3 B3=5", 2)
	review40Return(t, a, "r2", "b1", map[string]any{"qty": "2", "batch": "B1"})
	wantBatches(t, a, reg, "s1", "B1=7 B2=3 B3=5", 2)
	review40Out(t, a, "out2", "b1", "5") // B1 5: returnable B1 2
	wantBatches(t, a, reg, "s1", "B1=2 B2=3 B3=5", 2)
	review40Return(t, a, "r3", "b1", map[string]any{"qty": "5"}) // B1 2, 3 unbatched
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review44Returnable(t, n); len(m) != 0 {
		t.Fatalf("returnable after r3: %v", m)
	}
	for _, id := range []string{"r1", "out2", "r3", "r2"} {
		cancelDoc(t, a, id)
	}
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review44Returnable(t, n); len(m) != 0 {
		t.Fatalf("returnable at the end: %v", m)
	}
	if s := milkStock(t, a); s != "12" {
		t.Fatalf("milk = %s", s)
	}
}

// TestReview44BuyerReturnReplicasAgreeAcrossRaise: three replicas write
// the same batches, returnable batches and document records when the
// cluster is raised to level 8 between an invoice and its return.
func TestReview44BuyerReturnReplicasAgreeAcrossRaise(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 7) })
	waitFor(t, "the cluster at FSM level 7", 20*time.Second, func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		lv, err := l.ClusterLevel()
		return err == nil && lv == 7
	})
	l := c.waitLeader()
	a := l.APIAddr()
	review40Seed(t, a)
	review40Out(t, a, "out1", "b1", "5") // at 7: B1 4, B2 1, not returnable
	review44Raise(t, l)
	review40Out(t, a, "out2", "b1", "3") // B2 2, B3 1
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "4"})
	cancelDoc(t, a, "out1")
	review40Return(t, a, "r2", "b1", map[string]any{"qty": "1", "batch": "B3"})
	cancelDoc(t, a, "r1")
	c.waitSettled()
	var first map[string]string
	for _, node := range c.nodes {
		got := map[string]string{}
		for _, p := range []string{"bo/batch/", "bo/bret/", "bo/doc/"} {
			m, err := node.Review40Meta(p)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				got[k] = v
			}
		}
		if first == nil {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("node %s holds %d keys, the first node %d", node.ID(), len(got), len(first))
		}
		for k, v := range first {
			if got[k] != v {
				t.Fatalf("node %s differs at %q", node.ID(), k)
			}
		}
	}
	// out2 took B2 2 and B3 1; r1 put them back (1 unbatched), leaving
	// r2 nothing to put back; r1's cancel took out what it put in; out1
	// (level 7) was returnable to nothing.
	wantBatches(t, a, nil, "s1", "B1=4 B2=1 B3=4", -1)
}

package central_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review40Node starts a one-node cluster telling FSM level level (0: its
// binary's) and waits until the cluster runs it, with the back office's
// master data, a buyer b1, and an invoice of 12 milk at s1 in three
// batches, as batchNode's: B1 (4, expiring in 3 days, certificate C-1),
// B2 (3, in 5 days), B3 (5, in 30 days).
func review40Node(t *testing.T, level int) (*central.Node, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, "solo", filepath.Join(t.TempDir(), "solo"))
	cfg.Registerer = reg
	want := central.FSMLevel
	if level > 0 {
		cfg, want = central.WithFSMLevel(cfg, level), level
	}
	n := openNode(t, cfg)
	waitFor(t, fmt.Sprintf("leader at FSM level %d", want), 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && l == want
	})
	review40Seed(t, n.APIAddr())
	wantBatches(t, n.APIAddr(), reg, "s1", "B1=4 B2=3 B3=5", 2)
	return n, reg
}

func review40Seed(t *testing.T, a string) {
	t.Helper()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b1", adminKey, map[string]any{"name": "Cafe Ltd"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/b2", adminKey, map[string]any{"name": "Bar Ltd"}, nil))
	riga, _ := time.LoadLocation("Europe/Riga")
	in := func(days int) string { return string(storeline.DateOf(time.Now().AddDate(0, 0, days), riga)) }
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.10", "batch": "B1", "expiry": in(3), "certificate": "C-1"},
		map[string]any{"item": "milk", "qty": "3", "purchase_price": "1.10", "batch": "B2", "expiry": in(5)},
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "B3", "expiry": in(30)})})
}

func review40Out(t *testing.T, a, id, buyer, qty string) {
	t.Helper()
	createAndPost(t, a, id, map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": buyer,
		"lines": lines(map[string]any{"item": "milk", "qty": qty, "price": "2.20"})})
}

func review40Return(t *testing.T, a, id, buyer string, ls ...map[string]any) {
	t.Helper()
	for _, l := range ls {
		l["item"], l["price"] = "milk", "2.20"
	}
	createAndPost(t, a, id, map[string]any{"type": "buyer_return", "store": "s1", "buyer": buyer, "lines": lines(ls...)})
}

// milkStock is the units of milk on s1's books.
func milkStock(t *testing.T, a string) string {
	t.Helper()
	return balances(t, a)["stock/s1/main/milk item:milk"].String()
}

// TestReview40BuyerReturnRefillsBatches: a buyer return puts its units
// back into the batches its buyer's outgoing invoices took them from
// (first-expiring first, a batch its line names first), never more than
// they took less what the buyer's other returns put back; what is left
// comes back unbatched, as a received line without a batch. Its cancel
// takes out exactly what its post put in, and however the documents are
// cancelled the batches end where they began.
func TestReview40BuyerReturnRefillsBatches(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5") // B1 4, B2 1
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	if s := milkStock(t, a); s != "7" {
		t.Fatalf("milk after out1 = %s, want 7", s)
	}
	// Another buyer's invoice: what b1 returns never goes into what b2 took.
	review40Out(t, a, "out2", "b2", "1") // B2 1
	wantBatches(t, a, reg, "s1", "B2=1 B3=5", 1)

	review40Return(t, a, "r1", "b1", map[string]any{"qty": "3"})
	wantBatches(t, a, reg, "s1", "B1=3 B2=1 B3=5", 2)
	if s := milkStock(t, a); s != "9" {
		t.Fatalf("milk after r1 = %s, want 9 (the batches hold 9)", s)
	}
	// A line naming B2 takes B2 first; b1's invoices took 1 of it and 1
	// of B1 is left: 2 batched, 2 more unbatched.
	review40Return(t, a, "r2", "b1", map[string]any{"qty": "4", "batch": "B2"})
	wantBatches(t, a, reg, "s1", "B1=4 B2=2 B3=5", 2)
	if s := milkStock(t, a); s != "13" {
		t.Fatalf("milk after r2 = %s, want 13 (11 in batches, 2 unbatched)", s)
	}
	// Nothing of b1's is left to put back.
	review40Return(t, a, "r3", "b1", map[string]any{"qty": "1"})
	wantBatches(t, a, reg, "s1", "B1=4 B2=2 B3=5", 2)

	// Cancels in an order that leaves an invoice cancelled under its
	// returns: each puts back or takes out exactly its own.
	cancelDoc(t, a, "r1") // B1 −3
	wantBatches(t, a, reg, "s1", "B1=1 B2=2 B3=5", 2)
	cancelDoc(t, a, "out1") // B1 +4, B2 +1
	wantBatches(t, a, reg, "s1", "B1=5 B2=3 B3=5", 2)
	// With out1 cancelled, r2's units no longer come from b1's invoices:
	// another return of b1 comes back unbatched.
	review40Return(t, a, "r4", "b1", map[string]any{"qty": "1"})
	wantBatches(t, a, reg, "s1", "B1=5 B2=3 B3=5", 2)
	cancelDoc(t, a, "r2") // B1 −1, B2 −1
	cancelDoc(t, a, "out2")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	cancelDoc(t, a, "r3")
	cancelDoc(t, a, "r4")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if s := milkStock(t, a); s != "12" {
		t.Fatalf("milk after every cancel = %s, want 12", s)
	}
	// Nothing is left to return: b1's pool of returnable units is empty.
	if m, err := n.Review40Meta("bo/bret/"); err != nil || len(m) != 0 {
		t.Fatalf("returnable batches after every cancel: %v %v, want none", m, err)
	}
}

// TestReview40BuyerReturnCancelOrder: the batches do not depend on the
// order of cancels, even when a return's cancel finds its units gone
// (owed by the batch, paid by the next units put in).
func TestReview40BuyerReturnCancelOrder(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "4") // B1 4
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "2"})
	wantBatches(t, a, reg, "s1", "B1=2 B2=3 B3=5", 2)
	// A write-off takes B1's 2 returned units; r1's cancel cannot take
	// them out again: B1 owes them, paid by out1's cancel.
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "batch": "B1"})})
	wantBatches(t, a, reg, "s1", "B2=3 B3=5", 1)
	cancelDoc(t, a, "r1")
	wantBatches(t, a, reg, "s1", "B2=3 B3=5", 1)
	cancelDoc(t, a, "out1") // B1 +4, less the 2 owed
	wantBatches(t, a, reg, "s1", "B1=2 B2=3 B3=5", 2)
	cancelDoc(t, a, "wo1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if s := milkStock(t, a); s != "12" {
		t.Fatalf("milk after every cancel = %s, want 12", s)
	}
}

// docKeys returns the msgpack keys of document id's stored record.
func docKeys(t *testing.T, n *central.Node, id string) map[string]any {
	t.Helper()
	m, err := n.Review40Meta("bo/doc/" + id)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := msgpack.Unmarshal([]byte(m["bo/doc/"+id]), &rec); err != nil {
		t.Fatalf("document %s: %v", id, err)
	}
	return rec
}

// TestReview40BuyerReturnBelowLevel: while the cluster runs level 7 a
// buyer return, its invoice and their cancels write what they wrote
// before level 8: the return's units come back unbatched, no record of
// what a buyer may return, nothing more in the documents' records.
func TestReview40BuyerReturnBelowLevel(t *testing.T) {
	n, reg := review40Node(t, 7)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5")
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "3"})
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	if s := milkStock(t, a); s != "10" {
		t.Fatalf("milk after r1 = %s, want 10", s)
	}
	for _, id := range []string{"out1", "r1"} {
		rec := docKeys(t, n, id)
		for _, k := range []string{"ret", "pool"} {
			if _, ok := rec[k]; ok {
				t.Fatalf("below level 8 document %s records %q: %v", id, k, rec[k])
			}
		}
	}
	if m, err := n.Review40Meta("bo/bret/"); err != nil || len(m) != 0 {
		t.Fatalf("below level 8: returnable batches %v %v, want none", m, err)
	}
	cancelDoc(t, a, "r1")
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	cancelDoc(t, a, "out1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
}

// TestReview40BuyerReturnReplicasAgree: three nodes apply a buyer return
// and cancels alike: at level 8 with every node of it, and at level 7
// while one node tells 7 (the return then batches nothing on any).
func TestReview40BuyerReturnReplicasAgree(t *testing.T) {
	for _, low := range []bool{false, true} {
		t.Run(fmt.Sprintf("one node at level 7: %v", low), func(t *testing.T) {
			// The node at level 7 bootstraps: a node below the cluster's
			// level would not be let in.
			i := 0
			c := startClusterWith(t, 3, func(cfg *central.Config) {
				if i++; low && i == 1 {
					*cfg = central.WithFSMLevel(*cfg, 7)
				}
			})
			want := central.FSMLevel
			if low {
				want = 7
			}
			waitFor(t, fmt.Sprintf("the cluster at FSM level %d", want), 20*time.Second, func() bool {
				l := c.leader()
				if l == nil {
					return false
				}
				lv, err := l.ClusterLevel()
				return err == nil && lv == want
			})
			a := c.waitLeader().APIAddr()
			review40Seed(t, a)
			review40Out(t, a, "out1", "b1", "5")
			review40Return(t, a, "r1", "b1", map[string]any{"qty": "3"})
			review40Return(t, a, "r2", "b1", map[string]any{"qty": "1", "batch": "B2"})
			cancelDoc(t, a, "r1")
			// out1 took B1 4 and B2 1; r1 put 3 into B1, r2 1 into B2,
			// r1's cancel took B1's 3 out again.
			wantB := "B2=3 B3=5"
			if low {
				wantB = "B2=2 B3=5"
			}
			c.waitSettled()
			var first map[string]string
			for _, node := range c.nodes {
				wantBatches(t, node.APIAddr(), nil, "s1", wantB, -1)
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
				if low {
					for k := range got {
						if strings.HasPrefix(k, "bo/bret/") {
							t.Fatalf("node %s at level 7 wrote %q", node.ID(), k)
						}
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
		})
	}
}

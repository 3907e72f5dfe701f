package central_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review49Doc is a buyer return of milk at store by buyer naming invoice
// ("": none), one line per quantity.
func review49Doc(store, buyer, invoice string, qtys ...string) map[string]any {
	var ls []map[string]any
	for _, q := range qtys {
		ls = append(ls, map[string]any{"item": "milk", "qty": q, "price": "2.20"})
	}
	d := map[string]any{"type": "buyer_return", "store": store, "buyer": buyer, "lines": lines(ls...)}
	if invoice != "" {
		d["invoice"] = invoice
	}
	return d
}

// review49Refused checks that creating document id (or, when posted is
// true, posting it after it was created) is a 422 naming field, and that
// a refused create stored nothing.
func review49Refused(t *testing.T, a, id, field string, doc map[string]any) {
	t.Helper()
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/"+id, adminKey, doc, nil), http.StatusUnprocessableEntity, field)
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/"+id, viewerKey, nil, nil), http.StatusNotFound, "")
}

// review49Meta returns node's metadata keys and values under the prefixes.
func review49Meta(t *testing.T, n *central.Node, prefixes ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, p := range prefixes {
		m, err := n.Review40Meta(p)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			got[k] = v
		}
	}
	return got
}

// TestReview49ReturnInvoiceRefused: a buyer return naming an invoice that
// is none, not an outgoing invoice, another buyer's or store's, a draft
// or cancelled is refused naming invoice; a line of an item the invoice
// did not sell names lines[i].item, more than it sold lines[i].qty; an
// invoice on another type of document is refused naming invoice. Nothing
// is stored.
func TestReview49ReturnInvoiceRefused(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5")
	review40Out(t, a, "out2", "b2", "1")
	review40Out(t, a, "outX", "b1", "1")
	cancelDoc(t, a, "outX")
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/outD", adminKey, map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})}, nil))
	createAndPost(t, a, "inS2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.10"})})
	createAndPost(t, a, "outS2", map[string]any{"type": "outgoing_invoice", "store": "s2", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	wantBatches(t, a, reg, "s1", "B2=1 B3=5", 1)

	for _, tc := range []struct{ invoice, why string }{
		{"nope", "unknown"}, {"inv1", "an incoming invoice"}, {"out2", "buyer b2's"},
		{"outS2", "store s2's"}, {"outX", "cancelled"}, {"outD", "a draft"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			review49Refused(t, a, "r-"+tc.invoice, "invoice", review49Doc("s1", "b1", tc.invoice, "1"))
		})
	}
	bread := review49Doc("s1", "b1", "out1", "1")
	bread["lines"] = append(bread["lines"].([]any), map[string]any{"item": "bread", "qty": "1", "price": "1.50"})
	review49Refused(t, a, "r-bread", "lines[1].item", bread)
	review49Refused(t, a, "r-six", "lines[0].qty", review49Doc("s1", "b1", "out1", "6"))
	review49Refused(t, a, "r-split", "lines[1].qty", review49Doc("s1", "b1", "out1", "3", "3"))
	other := map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1", "invoice": "out1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20"})}
	review49Refused(t, a, "o-inv", "invoice", other)
	review49Refused(t, a, "r-badid", "invoice", review49Doc("s1", "b1", "a b", "1"))

	// Every refusal wrote nothing: the batches and the returns' record
	// are as the invoices left them.
	wantBatches(t, a, reg, "s1", "B2=1 B3=5", 1)
	if m := review49Meta(t, n, "bo/invret/"); len(m) != 0 {
		t.Fatalf("refused returns recorded %v", m)
	}
	// Exactly what the invoice sold may be returned.
	createAndPost(t, a, "r-five", review49Doc("s1", "b1", "out1", "2", "3"))
	wantBatches(t, a, reg, "s1", "B1=4 B2=2 B3=5", 2)
	if got := getDocField(t, a, "r-five", "invoice"); got != "out1" {
		t.Fatalf("r-five answers invoice %v, want out1", got)
	}
}

// TestReview49ReturnRestoresItsInvoiceBatches: a return naming its invoice
// puts its units back into the batches that invoice took, even where the
// buyer's other invoices took batches expiring sooner; no more than the
// invoice sold less what its standing returns took back may be returned,
// over two returns too, checked again when a draft is posted; a
// cancelled return frees its units; and cancelling everything leaves the
// batches where they began and no record behind.
func TestReview49ReturnRestoresItsInvoiceBatches(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5") // B1 4, B2 1
	createAndPost(t, a, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "3", "price": "2.20", "batch": "B3"})}) // B3 3
	wantBatches(t, a, reg, "s1", "B2=2 B3=2", 1)

	// An unnamed return would put these into B1 (first-expiring of b1's).
	createAndPost(t, a, "r1", review49Doc("s1", "b1", "out2", "2"))
	wantBatches(t, a, reg, "s1", "B2=2 B3=4", 1)
	// A draft within what out2 has left, posted only after another
	// return takes the rest: refused at its post, naming its line.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/rD", adminKey, review49Doc("s1", "b1", "out2", "1"), nil))
	createAndPost(t, a, "r2", review49Doc("s1", "b1", "out2", "1"))
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/rD/post", adminKey, nil, nil), http.StatusUnprocessableEntity, "lines[0].qty")
	if got := getDocField(t, a, "rD", "status"); got != "draft" {
		t.Fatalf("rD after a refused post: %v, want draft", got)
	}
	// out2 sold 3, r1 and r2 took 3 back: nothing more.
	review49Refused(t, a, "r3", "lines[0].qty", review49Doc("s1", "b1", "out2", "1"))
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)

	// r1's cancel frees its 2: the draft posts now, and one more.
	cancelDoc(t, a, "r1")
	wantBatches(t, a, reg, "s1", "B2=2 B3=3", 1)
	d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/rD/post", adminKey, nil, nil))
	if d.Status != "posted" {
		t.Fatalf("rD after r1's cancel: %s, want posted", d.Status)
	}
	createAndPost(t, a, "r3", review49Doc("s1", "b1", "out2", "1"))
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	review49Refused(t, a, "r4", "lines[0].qty", review49Doc("s1", "b1", "out2", "1"))

	// out1 took B1 4 and B2 1: a return naming it puts back exactly
	// those, a line naming B2 first.
	createAndPost(t, a, "r5", map[string]any{"type": "buyer_return", "store": "s1", "buyer": "b1", "invoice": "out1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "price": "2.20", "batch": "B2"},
			map[string]any{"item": "milk", "qty": "1", "price": "2.20"})})
	wantBatches(t, a, reg, "s1", "B1=1 B2=3 B3=5", 2)
	if s := milkStock(t, a); s != "9" {
		t.Fatalf("milk after r5 = %s, want 9", s)
	}
	// b1's pool holds out1's B1 3 still: an unnamed return takes it.
	review40Return(t, a, "r6", "b1", map[string]any{"qty": "1"})
	wantBatches(t, a, reg, "s1", "B1=2 B2=3 B3=5", 2)

	for _, id := range []string{"r5", "rD", "r2", "r3", "r6", "out2", "out1"} {
		cancelDoc(t, a, id)
	}
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if s := milkStock(t, a); s != "12" {
		t.Fatalf("milk after every cancel = %s, want 12", s)
	}
	if m := review49Meta(t, n, "bo/invret/", "bo/bret/"); len(m) != 0 {
		t.Fatalf("after every cancel: %v, want no returnable or returned units", m)
	}
}

// review49Submit puts a buyer return naming invoice in the log through
// the leader, past the API's level check, as a leader that checked just
// before the cluster's configuration changed would.
func review49Submit(t *testing.T, leader func() *central.Node, id, invoice string) {
	t.Helper()
	doc := storeline.Document{ID: id, Type: storeline.DocBuyerReturn, Store: "s1", Buyer: "b1", Invoice: invoice,
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("1"), Price: dec("2.20")}}}
	enc, err := msgpack.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	retryUnavailable(t, func() error {
		res, err := leader().Submit(context.Background(), central.OpDocCreate, id+"-create", enc)
		if err == nil {
			err = res.Err()
		}
		return err
	})
}

// review49RefusedForLevel checks that creating a return naming invoice
// answers 503 naming level 10 and stores nothing.
func review49RefusedForLevel(t *testing.T, a, id string) {
	t.Helper()
	var status int
	var body string
	// 503 also while a leader is elected: wait for the level's.
	waitFor(t, "a return naming its invoice refused for its level", 15*time.Second, func() bool {
		status, body = rawDo(t, "PUT", a, "/v1/documents/"+id, review49Doc("s1", "b1", "out1", "1"))
		return status != http.StatusServiceUnavailable || strings.Contains(body, "level")
	})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "level 10") || !strings.Contains(body, "level 9") {
		t.Fatalf("a return naming its invoice at level 9 = %d %s, want 503 naming levels 10 and 9", status, body)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/"+id, viewerKey, nil, nil), http.StatusNotFound, "")
}

// TestReview49ReturnInvoiceLevelNine: while the cluster runs level 9 a
// return naming its invoice is refused before the log (503 naming the
// levels); one in the log all the same is stored without it, as a node of
// level 9 stores it, and posts as an unnamed return (first-expiring of
// the buyer's), recording nothing of the invoice. At level 10 it is
// accepted.
func TestReview49ReturnInvoiceLevelNine(t *testing.T) {
	if central.FSMLevel < 10 {
		t.Fatalf("FSMLevel = %d, want 10 (a buyer return naming its invoice)", central.FSMLevel)
	}
	n, reg := review40Node(t, 9)
	a := n.APIAddr()
	createAndPost(t, a, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "3", "price": "2.20", "batch": "B3"})})
	review40Out(t, a, "out1", "b1", "4") // B1 4
	wantBatches(t, a, reg, "s1", "B2=3 B3=2", 1)
	review49RefusedForLevel(t, a, "r1")
	review49Submit(t, func() *central.Node { return n }, "r2", "out2")
	if got := getDocField(t, a, "r2", "invoice"); got != nil {
		t.Fatalf("r2 created at level 9 holds invoice %v, want none", got)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/r2/post", adminKey, nil, nil))
	wantBatches(t, a, reg, "s1", "B1=1 B2=3 B3=2", 2)
	if m := review49Meta(t, n, "bo/invret/"); len(m) != 0 {
		t.Fatalf("level 9 recorded %v", m)
	}
	if _, ok := docKeys(t, n, "r2")["reti"]; ok {
		t.Fatalf("level 9 recorded r2's invoice batches")
	}
	cancelDoc(t, a, "r2")
	wantBatches(t, a, reg, "s1", "B2=3 B3=2", 1)

	n10, reg10 := review40Node(t, 0)
	a10 := n10.APIAddr()
	createAndPost(t, a10, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
		"lines": lines(map[string]any{"item": "milk", "qty": "3", "price": "2.20", "batch": "B3"})})
	review40Out(t, a10, "out1", "b1", "4")
	review49Submit(t, func() *central.Node { return n10 }, "r2", "out2")
	mustOK(t, apiDo(t, "POST", a10, "/v1/documents/r2/post", adminKey, nil, nil))
	wantBatches(t, a10, reg10, "s1", "B2=3 B3=3", 1)
}

// TestReview49ReturnInvoiceReplicasAgree: three nodes apply returns naming
// their invoices, a refused over-return and cancels alike: at level 10
// with every node of it, and at level 9 while one node tells 9 (the API
// refuses the invoice, an entry naming it all the same drops it on every
// replica).
func TestReview49ReturnInvoiceReplicasAgree(t *testing.T) {
	for _, low := range []bool{false, true} {
		t.Run(fmt.Sprintf("one node at level 9: %v", low), func(t *testing.T) {
			i := 0
			c := startClusterWith(t, 3, func(cfg *central.Config) {
				if i++; low && i == 1 {
					*cfg = central.WithFSMLevel(*cfg, 9)
				}
			})
			want := central.FSMLevel
			if low {
				want = 9
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
			review40Out(t, a, "out1", "b1", "5") // B1 4, B2 1
			createAndPost(t, a, "out2", map[string]any{"type": "outgoing_invoice", "store": "s1", "buyer": "b1",
				"lines": lines(map[string]any{"item": "milk", "qty": "3", "price": "2.20", "batch": "B3"})}) // B3 3
			var wantB string
			if low {
				review49RefusedForLevel(t, a, "r0")
				review49Submit(t, c.waitLeader, "r1", "out2")
				mustOK(t, apiDo(t, "POST", a, "/v1/documents/r1/post", adminKey, nil, nil)) // B1 +1
				review49Submit(t, c.waitLeader, "r2", "out2")
				mustOK(t, apiDo(t, "POST", a, "/v1/documents/r2/post", adminKey, nil, nil)) // B1 +1
				cancelDoc(t, a, "r1")
				wantB = "B1=1 B2=2 B3=2"
			} else {
				createAndPost(t, a, "r1", review49Doc("s1", "b1", "out2", "2"))
				createAndPost(t, a, "r2", review49Doc("s1", "b1", "out2", "1"))
				review49Refused(t, a, "r3", "lines[0].qty", review49Doc("s1", "b1", "out2", "1"))
				createAndPost(t, a, "r4", review49Doc("s1", "b1", "out1", "1")) // B1 +1
				cancelDoc(t, a, "r1")
				createAndPost(t, a, "r5", review49Doc("s1", "b1", "out2", "1"))
				cancelDoc(t, a, "r4")
				// out2's B3 3: r2 1 and r5 1 back.
				wantB = "B2=2 B3=4"
			}
			c.waitSettled()
			var first map[string]string
			for _, node := range c.nodes {
				wantBatches(t, node.APIAddr(), nil, "s1", wantB, -1)
				got := review49Meta(t, node, "bo/batch/", "bo/bret/", "bo/doc/", "bo/invret/")
				var invret int
				for k := range got {
					if strings.HasPrefix(k, "bo/invret/") {
						invret++
					}
				}
				if low && invret != 0 || !low && invret != 1 {
					t.Fatalf("node %s holds %d records of returns naming invoices, want %d", node.ID(), invret, map[bool]int{false: 1, true: 0}[low])
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

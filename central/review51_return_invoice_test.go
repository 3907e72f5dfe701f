package central_test

import (
	"testing"
)

// TestReview51NamedReturnAfterUnnamedReturn: out1 sold b1 all of batch
// B1 (4) and an unnamed return brought the 4 back into B1, so b1 has none
// of B1 left to return. A return naming out1 may still take 4 back (no
// standing return names out1), but B1 never held more than the 4 it
// received: the units come back unbatched, as an unnamed return's beyond
// its buyer's invoices do, and b1's returnable batches do not go below
// zero (they do only when an invoice is cancelled under its returns).
func TestReview51NamedReturnAfterUnnamedReturn(t *testing.T) {
	n, reg := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "4") // B1 4
	wantBatches(t, a, reg, "s1", "B2=3 B3=5", 1)
	review40Return(t, a, "r1", "b1", map[string]any{"qty": "4"})
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)

	createAndPost(t, a, "r2", review49Doc("s1", "b1", "out1", "4"))
	if s := milkStock(t, a); s != "16" {
		t.Fatalf("milk after r2 = %s, want 16", s)
	}
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review49Meta(t, n, "bo/bret/"); len(m) != 0 {
		t.Fatalf("b1's returnable batches after r2: %q, want none", m)
	}

	for _, id := range []string{"r2", "r1", "out1"} {
		cancelDoc(t, a, id)
	}
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	if m := review49Meta(t, n, "bo/invret/", "bo/bret/"); len(m) != 0 {
		t.Fatalf("after every cancel: %q, want no returnable or returned units", m)
	}
}

// TestReview51ReturnInvoiceInPacks: a return line counted in packs is
// held against what the invoice sold in base units.
func TestReview51ReturnInvoiceInPacks(t *testing.T) {
	n, _ := review40Node(t, 0)
	a := n.APIAddr()
	review40Out(t, a, "out1", "b1", "5")
	packs := func(p, f string) map[string]any {
		d := review49Doc("s1", "b1", "out1")
		d["lines"] = lines(map[string]any{"item": "milk", "packs": p, "pack_factor": f, "price": "2.20"})
		return d
	}
	review49Refused(t, a, "r-six", "lines[0].qty", packs("2", "3"))
	createAndPost(t, a, "r-four", packs("2", "2"))
	review49Refused(t, a, "r-two", "lines[0].qty", packs("1", "2"))
	createAndPost(t, a, "r-one", review49Doc("s1", "b1", "out1", "1"))
}

// TestReview51CancelOrder: whether a return naming its invoice is
// cancelled before or after the invoice, the batches end where they
// began and no returned or returnable units are left behind.
func TestReview51CancelOrder(t *testing.T) {
	for _, order := range [][]string{{"r1", "out1"}, {"out1", "r1"}} {
		t.Run(order[0]+"-first", func(t *testing.T) {
			n, reg := review40Node(t, 0)
			a := n.APIAddr()
			review40Out(t, a, "out1", "b1", "5") // B1 4, B2 1
			createAndPost(t, a, "r1", review49Doc("s1", "b1", "out1", "3"))
			wantBatches(t, a, reg, "s1", "B1=3 B2=2 B3=5", 2)
			for _, id := range order {
				cancelDoc(t, a, id)
			}
			wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
			if m := review49Meta(t, n, "bo/invret/", "bo/bret/"); len(m) != 0 {
				t.Fatalf("after every cancel: %q, want no returnable or returned units", m)
			}
		})
	}
}

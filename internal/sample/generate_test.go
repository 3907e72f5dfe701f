package sample_test

import (
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
)

// TestGenerateFullSize: the demo's chain has what the issue asks for, every
// record validates, and the unique keys (SKUs, barcodes, card codes) are
// unique.
func TestGenerateFullSize(t *testing.T) {
	g := sample.Generate(sample.FullSize)
	if len(g.Items) < 5000 || len(g.Customers) != 10000 || len(g.Cards) != 10000 || len(g.Lists) != 2 || len(g.Stores) != 2 {
		t.Fatalf("items %d, customers %d, cards %d, lists %d, stores %d", len(g.Items), len(g.Customers), len(g.Cards), len(g.Lists), len(g.Stores))
	}
	keys := map[string]string{}
	var weighed, packs, nested int
	for _, r := range g.Records() {
		if err := r.Validate(); err != nil {
			t.Fatalf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
		for _, k := range r.UniqueKeys() {
			if prev, ok := keys[k]; ok {
				t.Fatalf("key %s of %s %s already belongs to %s", k, r.MasterKind(), r.MasterID(), prev)
			}
			keys[k] = r.MasterID()
		}
		switch x := r.(type) {
		case *storeline.Item:
			if x.Weighed {
				weighed++
			}
			for _, b := range x.Barcodes {
				if !b.Factor.Equal(b.Factor.Truncate(0)) || b.Factor.IntPart() > 1 {
					packs++
				}
			}
		case *storeline.Group:
			if x.Parent != "" {
				nested++
			}
		}
	}
	if weighed == 0 || packs == 0 || nested == 0 || len(g.Promotions) == 0 || g.Programme == nil || len(g.Messages) == 0 || len(g.Sellers) == 0 {
		t.Errorf("weighed %d, packs %d, nested groups %d, promotions %d, messages %d, sellers %d", weighed, packs, nested, len(g.Promotions), len(g.Messages), len(g.Sellers))
	}
}

package sample_test

import (
	"crypto/rand"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
)

func TestChainValid(t *testing.T) {
	c := sample.New("shop-1")
	recs := c.Records(func(s sample.SellerPIN) *storeline.Seller {
		return &storeline.Seller{ID: s.ID, Name: s.Name, Role: s.Role, PINHash: storeline.HashPIN(s.PIN, []byte(rand.Text()[:16]))}
	})
	if got := len(c.Items); got != 200 {
		t.Errorf("len(Items) = %d, want 200", got)
	}
	codes := map[string]storeline.ItemID{}
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Errorf("%s %s: %v", r.MasterKind(), r.MasterID(), err)
		}
		if it, ok := r.(*storeline.Item); ok {
			for _, b := range it.Barcodes {
				if prev, dup := codes[b.Code]; dup {
					t.Errorf("barcode %s on %s and %s", b.Code, prev, it.ID)
				}
				codes[b.Code] = it.ID
			}
		}
	}
	scan, err := storeline.DefaultWeighedLayout().ParseScan(sample.WeighedCode(1250))
	if err != nil {
		t.Fatalf("ParseScan(weighed) = %v", err)
	}
	if scan.Kind != storeline.ScanWeighed || codes[scan.GTIN] != sample.ApplesItem || scan.Weight.String() != "1.25" {
		t.Errorf("ParseScan(weighed) = %+v (item %q), want apples 1.25 kg", scan, codes[scan.GTIN])
	}
	water := c.Item(sample.WaterItem)
	if len(water.Barcodes) != 2 || water.Barcodes[1].Factor.String() != "6" {
		t.Errorf("water barcodes = %+v, want a single and a pack of 6", water.Barcodes)
	}
}

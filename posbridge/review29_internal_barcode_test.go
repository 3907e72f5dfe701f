package posbridge_test

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// A code registered exactly in master data resolves to its item even when
// its prefix is one the weighed layout claims: a chain whose scales still
// print 29 (or an item given an in-store code by hand) must not have its
// piece codes read as weights, nor refused as "zero weight".
func TestExactBarcodeWinsOverWeighedLayout(t *testing.T) {
	internal := gtin("290000000017")
	byHand := gtin("210000100125")     // as weighed: item 00001, 0.125 kg
	zeroWeight := gtin("220000000000") // as weighed: zero weight, refused
	e := newEnvConfig(t, nil, func(c *posbridge.Config) {
		c.WeighedLayout.Prefixes = append(c.WeighedLayout.Prefixes, "29")
	})
	one := decimal.NewFromInt(1)
	pieces := &storeline.Item{ID: "jam", SKU: "JAM", Name: "Jam, home made", Group: "g-food", Dept: "food", Unit: storeline.Piece, VATRate: dec("10"),
		Barcodes: []storeline.ItemBarcode{{Code: internal, Factor: one}, {Code: byHand, Factor: one}, {Code: zeroWeight, Factor: one}}}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{pieces}); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{internal, byHand, zeroWeight} {
		m := e.do(req{method: "GET", path: "/v1/barcodes/" + code, token: tokenT1}).json(t)
		item, _ := m["item"].(map[string]any)
		if m["kind"] != "gtin" || item == nil || item["id"] != "jam" || m["qty"] != "1" || m["gtin"] != "0"+code {
			t.Fatalf("scan %s = %v; want the item it is registered to, one piece", code, m)
		}
	}
	// A weighed item's own code, its weight zeroed, still weighs nothing.
	e.problem(e.do(req{method: "GET", path: "/v1/barcodes/" + cheeseKey, token: tokenT1}), 422, "code")
	// A weighed label nobody registered exactly is still a weight.
	m := e.do(req{method: "GET", path: "/v1/barcodes/" + gtin("201234500347"), token: tokenT1}).json(t)
	if item, _ := m["item"].(map[string]any); m["kind"] != "weighed" || item == nil || item["id"] != "cheese" || m["qty"] != "0.347" {
		t.Fatalf("weighed scan = %v", m)
	}
}

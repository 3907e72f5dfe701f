package posbridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// review35Env is the fixture with prefix 29 read as weighed (a node whose
// configuration still lists it), a piece item "jam" holding codes of
// weighed prefixes, one of them in packs of 6, and a price for it.
func review35Env(t *testing.T, codes ...storeline.ItemBarcode) *env {
	t.Helper()
	e := newEnvConfig(t, nil, func(c *posbridge.Config) {
		c.WeighedLayout.Prefixes = append(c.WeighedLayout.Prefixes, "29")
	})
	jam := &storeline.Item{ID: "jam", SKU: "JAM", Name: "Jam", Group: "g-food", Dept: "food", Unit: storeline.Piece, VATRate: dec("10"), Barcodes: codes}
	price := &storeline.Price{List: "base", Item: "jam", From: t0.Add(-48 * time.Hour), Price: dec("2.00")}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{jam, price}); err != nil {
		t.Fatal(err)
	}
	return e
}

// A receipt scanned by a piece code registered exactly under a weighed
// prefix is its own retry: the retry reads the code as the first try did,
// not as a weight (zero weight: 422; packs: compared unmultiplied, 409).
func TestReceiptRetryOfExactCodeUnderWeighedPrefix(t *testing.T) {
	zeroWeight := gtin("290000100000") // as weighed: item 00001, zero weight
	pack := gtin("290000000017")       // as weighed: 0.001 kg; a pack of 6
	e := review35Env(t, storeline.ItemBarcode{Code: zeroWeight, Factor: decimal.NewFromInt(1)},
		storeline.ItemBarcode{Code: pack, Factor: decimal.NewFromInt(6)})
	body := sale(newID(), []map[string]any{
		line("barcode", zeroWeight, "qty", "1", "price", "2.00"),
		line("barcode", pack, "qty", "2", "price", "2.00"),
	}, []map[string]any{{"method": "cash", "amount": "26.00"}})
	first := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body})
	e.must(first, 201)
	if r := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}); r.status != 200 && r.status != 201 {
		t.Fatalf("retry: %d %s; want the stored receipt", r.status, r.body)
	}
	lines(body)[1]["qty"] = "3"
	if r := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}); r.status != 409 || !strings.Contains(string(r.body), "lines[1].qty") {
		t.Fatalf("retry with another qty: %d %s; want 409 naming lines[1].qty", r.status, r.body)
	}
}

// A scale's label keeps reading as its weighed item when some piece item
// holds, by mistake, the same digits: before exact codes won, the label
// sold the weighed item, and a collision must not now sell the piece item
// at every scan of that weight.
func TestWeighedLabelWinsOverCollidingPieceCode(t *testing.T) {
	label := gtin("201234500347") // cheese, 0.347 kg
	e := review35Env(t, storeline.ItemBarcode{Code: label, Factor: decimal.NewFromInt(1)})
	m := e.do(req{method: "GET", path: "/v1/barcodes/" + label, token: tokenT1}).json(t)
	if item, _ := m["item"].(map[string]any); m["kind"] != "weighed" || item == nil || item["id"] != "cheese" || m["qty"] != "0.347" {
		t.Fatalf("scale label = %v; want cheese, 0.347 kg", m)
	}
}

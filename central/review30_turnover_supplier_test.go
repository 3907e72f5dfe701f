package central_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// TestReview30TurnoverBySupplierHasNoProvenance pins why the turnover
// report has no by=supplier or by=invoice: the state does not record
// which incoming invoice a sold unit came from. Batches are keyed by
// (store, item, expiry, batch) alone, so two invoices from two
// suppliers bringing the same batch merge into one batch that names
// neither; items whose invoice lines name no batch are not tracked by
// batch at all; and cost of sales stores per sale only its cost at the
// moving average (bo/margin), taking a pass's units from the batches in
// one sum per item. Until sales record their takes with the invoice a
// batch unit came from, the report refuses those dimensions rather than
// guess. When that provenance exists, this test is the one to replace.
func TestReview30TurnoverBySupplierHasNoProvenance(t *testing.T) {
	c := startCluster(t, 1)
	a := c.nodes[0].APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Farm"}, nil))
	for _, inv := range []struct{ id, supplier string }{{"inv1", "p1"}, {"inv2", "p2"}} {
		createAndPost(t, a, inv.id, map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": inv.supplier, "lines": lines(
			map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.10", "batch": "B1", "expiry": "2099-01-31"})})
	}
	var body struct {
		Batches []map[string]any
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1", viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Batches) != 1 {
		t.Fatalf("batches after two invoices of batch B1: %v, want one merged batch", body.Batches)
	}
	b := body.Batches[0]
	if q, _ := decimal.NewFromString(b["qty"].(string)); !q.Equal(decimal.NewFromInt(8)) {
		t.Fatalf("batch B1 = %v, want both invoices' 8 units in it", b)
	}
	for k := range b {
		if k == "supplier" || strings.Contains(k, "invoice") || k == "document" {
			t.Fatalf("batch B1 names its provenance (%q): by=supplier/by=invoice can now be built from it: %v", k, b)
		}
	}
	for _, by := range []string{"supplier", "invoice", "item,supplier"} {
		r := apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2024-03-01&to=2024-03-31&by="+by, viewerKey, nil, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "by") {
			t.Errorf("turnover by=%s: %d %s, want 400 naming by (no provenance to report from)", by, r.status, r.body)
		}
	}
}

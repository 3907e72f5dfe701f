package central_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/storeline/storeline/central"
)

// TestReview16ReportsDocumentsLastPageFull: a document listing whose last
// page is exactly full says so with an empty next (README: "empty next:
// the end"), rather than a next that leads to an empty page.
func TestReview16ReportsDocumentsLastPageFull(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for i := range 4 {
		mustOK(t, apiDo(t, "PUT", a, fmt.Sprintf("/v1/documents/d%d", i), adminKey, map[string]any{"type": "incoming_invoice",
			"store": "s1", "supplier": "p1", "lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})}, nil))
	}
	page := func(q string) (ids []string, next string) {
		t.Helper()
		var body struct {
			Documents []struct{ ID string }
			Next      string
		}
		if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/documents"+q, viewerKey, nil, nil)).body, &body); err != nil {
			t.Fatal(err)
		}
		for _, d := range body.Documents {
			ids = append(ids, d.ID)
		}
		return ids, body.Next
	}
	if ids, next := page("?limit=2"); len(ids) != 2 || next != "d1" {
		t.Fatalf("first page %v next %q, want d0 d1 and next d1", ids, next)
	}
	if ids, next := page("?limit=2&after=d1"); len(ids) != 2 || next != "" {
		t.Fatalf("last page %v next %q, want d2 d3 and no next", ids, next)
	}
	if ids, next := page("?limit=4"); len(ids) != 4 || next != "" {
		t.Fatalf("one full page %v next %q, want 4 and no next", ids, next)
	}
	// Filtered: the last match fills the page, a document after it does
	// not match.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/d9", adminKey, map[string]any{"type": "incoming_invoice",
		"store": "s2", "supplier": "p1", "lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})}, nil))
	if ids, next := page("?limit=2&after=d1&store=s1"); len(ids) != 2 || next != "" {
		t.Fatalf("last filtered page %v next %q, want d2 d3 and no next", ids, next)
	}
}

// TestReview16ReportsCollectionLastPageFull: GET /v1/{collection} gives
// no next on a last page that is exactly full, as the other listings do.
func TestReview16ReportsCollectionLastPageFull(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a) // suppliers: p1
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))
	var body struct {
		Records []map[string]any
		Next    string
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/suppliers?limit=2", viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Records) != 2 || body.Next != "" {
		t.Fatalf("the last page of 2 suppliers: %d records, next %q; want 2 and no next", len(body.Records), body.Next)
	}
}

// TestReview16ReportsCostOfSalesUnknownStore: cost of sales for a store
// head office does not know answers 404 naming store, as the stock,
// batches and margin reports of such a store do, not 422 (no rule of the
// request is broken: the store is not there).
func TestReview16ReportsCostOfSalesUnknownStore(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "GET", a, "/v1/stock?store=nope", viewerKey, nil, nil), http.StatusNotFound, "store")
	problemOf(t, apiDo(t, "GET", a, "/v1/batches?store=nope", viewerKey, nil, nil), http.StatusNotFound, "store")
	problemOf(t, apiDo(t, "GET", a, "/v1/margin?store=nope&from=2026-11-01&to=2026-11-02", viewerKey, nil, nil), http.StatusNotFound, "store")
	problemOf(t, apiDo(t, "POST", a, "/v1/cost_of_sales?store=nope", adminKey, nil, nil), http.StatusNotFound, "store")
}

var _ = central.MaxFeedLimit

// TestReview16ReportsNegativeStockValuation: milk sold before its invoice
// was posted (5 units, no purchase cost known yet, so costed at zero),
// then the invoice of those 5 units at 1.00 net: the shop holds nothing,
// and an accountant expects it valued at nothing, the 5.00 being the
// cost of the units sold. Before the invoice the report shows -5 units
// at the cost then known (none: 0.00).
func TestReview16ReportsNegativeStockValuation(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 1, 5))
	wantStock(t, a, "s1", "milk", "-5", "0")
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"})})
	q, v := stockOf(t, a, "s1", "milk")
	cogs := balances(t, a)["cogs/s1/milk cur:EUR"]
	if !q.IsZero() || !v.IsZero() || !cogs.Equal(dec("5")) {
		t.Fatalf("after the invoice covering negative stock, "+
			"stock of milk = %s units worth %s, cogs %s; want 0 worth 0.00, cogs 5.00", q, v, cogs)
	}
}

// TestReview16ReportsNamedBatchNotHeld: a write-off naming a batch the
// shop does not hold (the expired batch Z to be destroyed) is refused
// naming lines[0].batch, rather than taken first-expiring first from
// batch A, which is then short in the books while Z was the one
// destroyed.
func TestReview16ReportsNamedBatchNotHeld(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "A", "expiry": "2030-01-01"})})
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/wo1", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "expired",
		"lines": lines(map[string]any{"item": "milk", "qty": "2", "batch": "Z"})}, nil))
	r := apiDo(t, "POST", a, "/v1/documents/wo1/post", adminKey, nil, nil)
	if r.status == http.StatusOK {
		var body struct{ Batches []map[string]any }
		_ = json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1", viewerKey, nil, nil)).body, &body)
		t.Fatalf("a write-off of batch Z, not held, was posted; batches now %v", body.Batches)
	}
	problemOf(t, r, http.StatusUnprocessableEntity, "lines[0].batch")
}

// TestReview16ReportsBatchesLastPageFull: the batches report skips
// batches with nothing left; a last page that is exactly full of batches
// with stock, followed only by used-up ones, has an empty next.
func TestReview16ReportsBatchesLastPageFull(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "A", "expiry": "2030-01-01"},
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "B", "expiry": "2030-02-01"},
		map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10", "batch": "C", "expiry": "2030-03-01"})})
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "damaged",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "batch": "C", "expiry": "2030-03-01"})})
	var body struct {
		Batches []struct{ Batch string }
		Next    string
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1&limit=2", viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Batches) != 2 || body.Batches[0].Batch != "A" || body.Batches[1].Batch != "B" || body.Next != "" {
		t.Fatalf("batches %+v next %q, want A and B and no next", body.Batches, body.Next)
	}
}

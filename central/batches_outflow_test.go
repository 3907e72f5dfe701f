package central_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// batchNode starts a one-node cluster with the back office's master data
// and an invoice of 12 milk at s1 in three batches: B1 (4, expiring in
// 3 days, certificate C-1), B2 (3, in 5 days), B3 (5, in 30 days); flour
// comes without batches. The expiring-batches metric counts B1 and B2.
func batchNode(t *testing.T) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Registerer = reg })
	a := c.nodes[0].APIAddr()
	seedBackOffice(t, a)
	riga, _ := time.LoadLocation("Europe/Riga")
	in := func(days int) string { return string(storeline.DateOf(time.Now().AddDate(0, 0, days), riga)) }
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.10", "batch": "B1", "expiry": in(3), "certificate": "C-1"},
		map[string]any{"item": "milk", "qty": "3", "purchase_price": "1.10", "batch": "B2", "expiry": in(5)},
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "B3", "expiry": in(30)},
		map[string]any{"item": "flour", "qty": "50", "purchase_price": "0.80"})})
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	return a, reg
}

// wantBatches checks a store's batches with stock left, as GET /v1/batches
// lists them ("B1=4 B2=3", by batch name; "" for none), and, unless
// expiring is negative, the expiring-batches metric.
func wantBatches(t *testing.T, a string, reg *prometheus.Registry, store, want string, expiring int) {
	t.Helper()
	var body struct {
		Batches []struct {
			Item, Batch, Expiry, Certificate string
			Qty                              decimal.Decimal
		}
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/batches?store="+store, viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range body.Batches {
		if b.Batch == "B1" && b.Certificate != "C-1" {
			t.Errorf("batch B1 at %s lost its certificate: %+v", store, b)
		}
		if b.Expiry == "" {
			t.Errorf("batch %s at %s lost its expiry: %+v", b.Batch, store, b)
		}
		got = append(got, fmt.Sprintf("%s=%s", b.Batch, b.Qty))
	}
	sort.Strings(got)
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("batches at %s: %q, want %q", store, s, want)
	}
	if expiring >= 0 {
		if v, ok := boGauge(t, reg, "storeline_backoffice_expiring_batches", map[string]string{"store": store}); !ok || v != float64(expiring) {
			t.Fatalf("expiring batches at %s = %v (exported %v), want %d", store, v, ok, expiring)
		}
	}
}

func cancelDoc(t *testing.T, a, id string) {
	t.Helper()
	if d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/"+id+"/cancel", adminKey, nil, nil)); d.Status != "cancelled" {
		t.Fatalf("cancel %s: status %s", id, d.Status)
	}
}

// TestBatchesWriteOff: a write-off takes from the batches first-expiring
// first (a batch the line names first), never below zero; cancelling
// puts back exactly what each post took.
func TestBatchesWriteOff(t *testing.T) {
	a, reg := batchNode(t)
	wo := func(id string, l map[string]any) {
		createAndPost(t, a, id, map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled", "lines": lines(l)})
	}
	wo("wo1", map[string]any{"item": "milk", "qty": "5"})
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	wo("wo2", map[string]any{"item": "milk", "qty": "2", "batch": "B3"})
	wantBatches(t, a, reg, "s1", "B2=2 B3=3", 1)
	// More than there is: the stock goes below zero, the batches run out.
	wo("wo3", map[string]any{"item": "milk", "qty": "6"})
	wantStock(t, a, "s1", "milk", "-1", "")
	wantBatches(t, a, reg, "s1", "", 0)

	cancelDoc(t, a, "wo3")
	wantBatches(t, a, reg, "s1", "B2=2 B3=3", 1)
	cancelDoc(t, a, "wo1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=3", 2)
	cancelDoc(t, a, "wo2")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
	wantStock(t, a, "s1", "milk", "12", "")
}

// TestBatchesSupplierReturn: a return of a named batch takes it first,
// the rest first-expiring first.
func TestBatchesSupplierReturn(t *testing.T) {
	a, reg := batchNode(t)
	createAndPost(t, a, "ret1", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "batch": "B2"})})
	wantBatches(t, a, reg, "s1", "B1=2 B3=5", 1)
	cancelDoc(t, a, "ret1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
}

// TestBatchesTransfer: a transfer between shops takes the batches at the
// sender; its receipt brings them (expiry and certificate kept) to the
// receiver, a batch the receipt names first; cancelling each undoes it.
func TestBatchesTransfer(t *testing.T) {
	a, reg := batchNode(t)
	createAndPost(t, a, "tr1", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2",
		"lines": lines(map[string]any{"item": "milk", "qty": "6"})})
	wantBatches(t, a, reg, "s1", "B2=1 B3=5", 1)
	wantBatches(t, a, reg, "s2", "", 0) // in transit

	// 5 of the 6 shipped (B1 4, B2 2) arrive, B2 named first.
	createAndPost(t, a, "rc1", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "batch": "B2"})})
	wantBatches(t, a, reg, "s2", "B1=3 B2=2", 2)
	wantBatches(t, a, reg, "s1", "B2=1 B3=5", 1)
	cancelDoc(t, a, "rc1")
	wantBatches(t, a, reg, "s2", "", 0)

	// Received again, in full, first-expiring first.
	createAndPost(t, a, "rc2", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1",
		"lines": lines(map[string]any{"item": "milk", "qty": "6"})})
	wantBatches(t, a, reg, "s2", "B1=4 B2=2", 2)
	cancelDoc(t, a, "rc2")
	wantBatches(t, a, reg, "s2", "", 0)
	cancelDoc(t, a, "tr1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)

	// A transfer between departments keeps the batches where they are.
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR", "price_lists": []string{"retail"},
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "cafe", "name": "Cafe"}},
	}, nil))
	createAndPost(t, a, "tr2", map[string]any{"type": "transfer", "store": "s1", "to_dept": "cafe",
		"lines": lines(map[string]any{"item": "milk", "qty": "6"})})
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
}

// TestBatchesProduction: production takes its components from their
// batches; cancelling puts them back.
func TestBatchesProduction(t *testing.T) {
	a, reg := batchNode(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/recipes/bread", adminKey, map[string]any{"yield": "10",
		"components": []any{map[string]any{"item": "flour", "qty": "5"}, map[string]any{"item": "milk", "qty": "2"}}}, nil))
	createAndPost(t, a, "pr1", map[string]any{"type": "production", "store": "s1", "lines": lines(map[string]any{"item": "bread", "qty": "25"})})
	wantStock(t, a, "s1", "milk", "7", "")
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	cancelDoc(t, a, "pr1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
}

// TestBatchesStocktake: a stocktake's loss takes from the batches (a
// batch the line names first); a surplus is not tracked by batch (as a
// sale's return); cancelling puts back what the loss took.
func TestBatchesStocktake(t *testing.T) {
	a, reg := batchNode(t)
	createAndPost(t, a, "st1", map[string]any{"type": "stocktake", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "7"})})
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	createAndPost(t, a, "st2", map[string]any{"type": "stocktake", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "batch": "B3"})})
	wantBatches(t, a, reg, "s1", "B2=2 B3=3", 1)
	createAndPost(t, a, "st3", map[string]any{"type": "stocktake", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "9"})})
	wantStock(t, a, "s1", "milk", "9", "")
	wantBatches(t, a, reg, "s1", "B2=2 B3=3", 1)
	cancelDoc(t, a, "st3")
	cancelDoc(t, a, "st2")
	wantBatches(t, a, reg, "s1", "B2=2 B3=5", 1)
	cancelDoc(t, a, "st1")
	wantBatches(t, a, reg, "s1", "B1=4 B2=3 B3=5", 2)
}

package central_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview12ReportsStatementOfDeletedSupplier: a supplier fully settled (its
// invoice paid) and then removed from the master data keeps its history:
// the statement of the period still lists the invoice and the payment,
// rather than answering 404 as for a supplier head office never had.
func TestReview12ReportsStatementOfDeletedSupplier(t *testing.T) {
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Now = clock.Now })
	waitPaymentLevel(t, c)
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	today := clock.day(0)
	r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, map[string]any{"id": "pay1", "supplier": "p1", "bank": "b1",
		"currency": "EUR", "amount": "11.00", "paid_on": today}, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("payment: %d %s", r.status, r.body)
	}
	mustOK(t, apiDo(t, "DELETE", a, "/v1/suppliers/p1", adminKey, nil, nil))
	s := statement(t, a, "p1", today, today, "")
	s.wantRows(t, "invoice inv1 "+today+" 11.00 11.00", "payment pay1 "+today+" -11.00 0.00")
	if s.Opening != "0.00" || s.Closing != "0.00" {
		t.Fatalf("opening %s closing %s, want 0.00 and 0.00", s.Opening, s.Closing)
	}
}

// TestReview12ReportsExciseOfDeletedStore: a shop closed and removed from the
// master data keeps its excise journal readable, as its margin report
// is: the journal's rows are still held.
func TestReview12ReportsExciseOfDeletedStore(t *testing.T) {
	c := startClusterWith(t, 1, nil)
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "10", "purchase_price": "6.05"})})
	riga, _ := time.LoadLocation("Europe/Riga")
	day := string(storeline.DateOf(time.Now(), riga))
	q := "/v1/excise?store=s2&from=" + day + "&to=" + day
	var before rrExcise
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &before); err != nil {
		t.Fatal(err)
	}
	if len(before.Movements) != 1 {
		t.Fatalf("excise journal before: %+v", before)
	}
	mustOK(t, apiDo(t, "DELETE", a, "/v1/stores/s2", adminKey, nil, nil))
	var after rrExcise
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).body, &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Movements) != 1 {
		t.Fatalf("excise journal after the store's removal: %+v", after)
	}
}

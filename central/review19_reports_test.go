package central_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

type r19Excise struct {
	Movements []struct {
		Date, Source, Ref, Kind, Item, Serial string
		Qty                                   decimal.Decimal
	}
	Totals map[string]map[string]decimal.Decimal
	More   bool
	Next   string
}

func r19ExciseOf(t *testing.T, a, q string) r19Excise {
	t.Helper()
	var ex r19Excise
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/excise?"+q, viewerKey, nil, nil)).body, &ex); err != nil {
		t.Fatal(err)
	}
	return ex
}

func r19Vodka(t *testing.T, a string) {
	t.Helper()
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true, "marked": true}, nil))
}

// TestReview19ExciseDatesInStoreZone: one instant, 20:30 UTC on 29
// November, is 30 November in a shop at UTC+10 and 29 November in one at
// UTC-5; each shop's document is in its own day's journal only.
func TestReview19ExciseDatesInStoreZone(t *testing.T) {
	at := time.Date(2026, 11, 29, 20, 30, 0, 0, time.UTC)
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Now = func() time.Time { return at } })
	a := c.nodes[0].APIAddr()
	seedBackOffice(t, a)
	r19Vodka(t, a)
	for _, s := range []struct{ id, tz string }{{"east", "Australia/Brisbane"}, {"west", "America/Bogota"}} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/stores/"+s.id, adminKey, map[string]any{
			"name": s.id, "time_zone": s.tz, "currency": "EUR",
			"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail"},
		}, nil))
		createAndPost(t, a, "inv-"+s.id, map[string]any{"type": "incoming_invoice", "store": s.id, "supplier": "p1", "lines": lines(
			map[string]any{"item": "vodka", "qty": "10", "purchase_price": "6.05"})})
	}
	for q, want := range map[string]int{
		"store=east&from=2026-11-30&to=2026-11-30": 1, "store=east&from=2026-11-29&to=2026-11-29": 0,
		"store=west&from=2026-11-29&to=2026-11-29": 1, "store=west&from=2026-11-30&to=2026-11-30": 0,
	} {
		if got := r19ExciseOf(t, a, q); len(got.Movements) != want {
			t.Errorf("%s: %d movements, want %d: %+v", q, len(got.Movements), want, got.Movements)
		}
	}
}

// TestReview19ExciseTotalsReversals: an invoice of 10 bottles entered by
// mistake and cancelled, then the right one of 6; a write-off of 2
// broken bottles cancelled (they were found whole); two bottles sold, one
// brought back. The journal lists every row; its totals count what the
// shop received (6, and the bottle brought back) and what left it (2
// sold): a cancel takes its units out of the column its document put
// them in, rather than counting a cancelled invoice as 10 bottles gone.
// In less out is the stock's movement either way.
func TestReview19ExciseTotalsReversals(t *testing.T) {
	// The node's clock fixed, so the documents' day (the leader's clock in
	// Riga) is the events' whenever the test runs.
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.Now = func() time.Time { return at }
	})
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	r19Vodka(t, a)
	createAndPost(t, a, "inv-wrong", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "10", "purchase_price": "6.05"})})
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv-wrong/cancel", adminKey, nil, nil))
	createAndPost(t, a, "inv", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "6", "purchase_price": "6.05"})})
	createAndPost(t, a, "wo", map[string]any{"type": "write_off", "store": "s1", "reason": "broken", "lines": lines(
		map[string]any{"item": "vodka", "qty": "2"})})
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/wo/cancel", adminKey, nil, nil))
	today := storeline.Date("2026-11-29")
	sold := func(serial string) storeline.Line {
		return storeline.Line{Item: "vodka", Dept: "main", Serial: serial, VATRate: dec("21")}
	}
	rrPushOK(t, n, 0, rrPush(t, "s1", 1, rrSale{date: today, lines: []storeline.Line{sold("SN-1")}},
		rrSale{date: today, lines: []storeline.Line{sold("SN-2")}},
		rrSale{ret: true, date: today, lines: []storeline.Line{sold("SN-1")}}))
	ex := r19ExciseOf(t, a, "store=s1&from="+string(today)+"&to="+string(today))
	if len(ex.Movements) != 8 {
		t.Fatalf("excise journal: %+v, want 8 rows", ex.Movements)
	}
	tot := ex.Totals["vodka"]
	if !tot["in"].Equal(dec("7")) || !tot["out"].Equal(dec("2")) {
		t.Fatalf("excise totals %v, want vodka in 7 (6 received, 1 brought back) out 2 (sold); rows %+v", ex.Totals, ex.Movements)
	}
}

// TestReview19StockUnknownItem: the stock of an item head office has
// never heard of (a typo) is a 404 naming item, not an empty page that
// reads as "none in stock"; a known item with no stock is an empty page.
func TestReview19StockUnknownItem(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "GET", a, "/v1/stock?store=s1&item=mlik", viewerKey, nil, nil), http.StatusNotFound, "item")
	var body struct{ Stock []any }
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/stock?store=s1&item=milk", viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Stock) != 0 {
		t.Fatalf("stock of milk, none received: %v", body.Stock)
	}
}

// TestReview19ExciseUnknownStore: the excise journal of a store head
// office does not know is a 404 naming store, as the margin, stock and
// batches reports answer, so a client can tell which parameter is wrong.
func TestReview19ExciseUnknownStore(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=nope&from=2026-11-01&to=2026-11-02", viewerKey, nil, nil), http.StatusNotFound, "store")
}

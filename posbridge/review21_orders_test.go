package posbridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// fakeOrders stands in for head office: its orders for the shop, in ID
// order, paged as central pages them; err (if set) is every answer.
type fakeOrders struct {
	mu     sync.Mutex
	orders []posbridge.ShopOrder
	err    error
	asked  []string // "after/limit" of every call
}

func (f *fakeOrders) ShopOrders(_ context.Context, after string, limit int) (posbridge.ShopOrdersPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, fmt.Sprintf("%s/%d", after, limit))
	if f.err != nil {
		return posbridge.ShopOrdersPage{}, f.err
	}
	var p posbridge.ShopOrdersPage
	for _, o := range f.orders {
		if o.ID <= after {
			continue
		}
		if len(p.Orders) == limit {
			p.Next = p.Orders[len(p.Orders)-1].ID
			break
		}
		p.Orders = append(p.Orders, o)
	}
	return p, nil
}

func (f *fakeOrders) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

func ordersEnv(t *testing.T, src posbridge.OrderSource) *env {
	t.Helper()
	return newEnvConfig(t, nil, func(c *posbridge.Config) {
		if src != nil {
			c.Orders = src
		}
	})
}

func threeOrders() []posbridge.ShopOrder {
	return []posbridge.ShopOrder{
		{ID: "po-1", Supplier: "sup-1", SupplierName: "Dairy Ltd", ExpectedOn: "2026-03-12", Note: "ring the bell", Status: "open",
			Lines: []posbridge.ShopOrderLine{{Item: "milk", Ordered: dec("24"), Received: dec("0"), Outstanding: dec("24")}}},
		{ID: "po-2", Supplier: "sup-2", Status: "partial",
			Lines: []posbridge.ShopOrderLine{
				{Item: "cheese", Ordered: dec("10.5"), Received: dec("4.25"), Outstanding: dec("6.25")},
				// An item the shop's catalogue does not hold (yet): no sku.
				{Item: "new-item", Ordered: dec("6"), Received: dec("0"), Outstanding: dec("6")},
			}},
		{ID: "po-3", Supplier: "sup-1", Status: "open",
			Lines: []posbridge.ShopOrderLine{{Item: "wine", Ordered: dec("12"), Received: dec("0"), Outstanding: dec("12")}}},
	}
}

// TestReview21OrdersListedFromHeadOffice: GET /v1/orders answers the
// shop's expected deliveries as head office tells them, page by page
// (after, limit, next), each line with its SKU where the catalogue knows
// the item and its quantities as decimal strings; the till's after and
// limit reach head office as sent, bad ones are refused naming them.
func TestReview21OrdersListedFromHeadOffice(t *testing.T) {
	src := &fakeOrders{orders: threeOrders()}
	e := ordersEnv(t, src)
	m := e.must(e.do(req{method: "GET", path: "/v1/orders?limit=2", token: tokenT1}), 200)
	orders := m["orders"].([]any)
	if len(orders) != 2 || m["next"] != "po-2" {
		t.Fatalf("first page = %v, want po-1, po-2 and next po-2", m)
	}
	first := orders[0].(map[string]any)
	if first["id"] != "po-1" || first["supplier"] != "sup-1" || first["supplier_name"] != "Dairy Ltd" ||
		first["expected_on"] != "2026-03-12" || first["note"] != "ring the bell" || first["status"] != "open" {
		t.Fatalf("po-1 = %v", first)
	}
	if l := first["lines"].([]any)[0].(map[string]any); l["item"] != "milk" || l["sku"] != "MILK" ||
		l["ordered"] != "24" || l["received"] != "0" || l["outstanding"] != "24" {
		t.Fatalf("po-1's line = %v", l)
	}
	second := orders[1].(map[string]any)
	ls := second["lines"].([]any)
	if l := ls[0].(map[string]any); second["status"] != "partial" || l["sku"] != "CHS" || l["ordered"] != "10.5" || l["received"] != "4.25" || l["outstanding"] != "6.25" {
		t.Fatalf("po-2 = %v", second)
	}
	if l := ls[1].(map[string]any); l["item"] != "new-item" || l["sku"] != nil {
		t.Fatalf("a line of an item the catalogue lacks = %v, want no sku", l)
	}
	m = e.must(e.do(req{method: "GET", path: "/v1/orders?after=po-2&limit=2", token: tokenT1}), 200)
	if orders := m["orders"].([]any); len(orders) != 1 || orders[0].(map[string]any)["id"] != "po-3" || m["next"] != nil {
		t.Fatalf("last page = %v, want po-3 and no next", m)
	}
	e.must(e.do(req{method: "GET", path: "/v1/orders", token: tokenT1}), 200)
	if got, want := strings.Join(src.calls(), " "), "/2 po-2/2 /100"; got != want {
		t.Fatalf("head office was asked %q, want %q", got, want)
	}

	for _, c := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=501", "limit"}, {"limit=x", "limit"}, {"after=not%20an%20id", "after"},
	} {
		e.problem(e.do(req{method: "GET", path: "/v1/orders?" + c.query, token: tokenT1, invalid: true}), 422, c.field)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/orders", invalid: true}), 401, "")
	if n := len(src.calls()); n != 3 {
		t.Fatalf("refused requests reached head office: %d calls, want 3", n)
	}
}

// TestReview21OrdersHeadOfficeUnreachable: when head office cannot be
// reached the list is a 503 saying so; the shop keeps no copy to answer
// from, and invents none. Standalone (no head office), it is a 404 saying
// the shop has none.
func TestReview21OrdersHeadOfficeUnreachable(t *testing.T) {
	src := &fakeOrders{err: storeline.E("node.orders", storeline.Unavailable, errors.New("central unreachable: dial tcp 10.0.0.1:8444: connection refused"))}
	e := ordersEnv(t, src)
	r := e.do(req{method: "GET", path: "/v1/orders", token: tokenT1})
	e.problem(r, 503, "")
	if !strings.Contains(string(r.body), "head office") {
		t.Fatalf("503 does not say head office is unreachable: %s", r.body)
	}

	standalone := ordersEnv(t, nil)
	r = standalone.do(req{method: "GET", path: "/v1/orders", token: tokenT1})
	standalone.problem(r, 404, "")
	if !strings.Contains(string(r.body), "no head office") {
		t.Fatalf("404 does not say the shop has no head office: %s", r.body)
	}
}

// TestReview21DraftNamesOrder: an incoming invoice drafted at a till may
// name the purchase order it delivers: stored in the draft and answered;
// its retry with the same order is a 200, with another order or none a
// 409. Any other draft naming an order is a 422 naming order and appends
// nothing. Drafting never asks head office (the shop drafts offline).
func TestReview21DraftNamesOrder(t *testing.T) {
	src := &fakeOrders{err: storeline.E("node.orders", storeline.Unavailable, errors.New("offline"))}
	e := ordersEnv(t, src)
	alice := e.login(tokenT1, "alice", "1234")
	id := newID()
	invoice := map[string]any{"id": id, "occurred_at": t0.Format(time.RFC3339), "type": "incoming_invoice", "terminal": "t1", "seller": "alice",
		"supplier": "sup-1", "order": "po-1", "lines": []map[string]any{{"sku": "MILK", "qty": "24", "purchase_price": "0.50"}}}
	m := e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: invoice}), 201)
	if m["order"] != "po-1" {
		t.Fatalf("draft = %v, want order po-1", m)
	}
	eid, err := storeline.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := e.led.Event("s1", eid)
	if err != nil {
		t.Fatal(err)
	}
	if d := ev.Body.(*storeline.DocumentDraft); d.Order != "po-1" {
		t.Fatalf("stored draft's order = %q, want po-1", d.Order)
	}
	if again := e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: invoice}), 200); again["seq"] != m["seq"] || again["order"] != "po-1" {
		t.Fatalf("retry = %v, first %v", again, m)
	}
	for _, other := range []any{"po-2", nil} {
		if other == nil {
			delete(invoice, "order")
		} else {
			invoice["order"] = other
		}
		r := e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: invoice})
		e.problem(r, 409, "id")
		if !strings.Contains(string(r.body), "order") {
			t.Fatalf("retry with order %v: the 409 does not name order: %s", other, r.body)
		}
	}

	pos := e.led.Position()
	writeOff := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "type": "write_off", "terminal": "t1", "seller": "alice",
		"reason": "broken", "order": "po-1", "lines": []map[string]any{{"sku": "MILK", "qty": "1"}}}
	e.problem(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: writeOff}), 422, "order")
	badID := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "type": "incoming_invoice", "terminal": "t1", "seller": "alice",
		"supplier": "sup-1", "order": "not an id", "lines": []map[string]any{{"sku": "MILK", "qty": "1", "purchase_price": "0.50"}}}
	e.problem(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: badID, invalid: true}), 422, "order")
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused drafts moved the journal: %v → %v", pos, got)
	}
	if calls := src.calls(); len(calls) != 0 {
		t.Fatalf("drafting asked head office: %v", calls)
	}
}

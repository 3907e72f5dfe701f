package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// ordersNode starts one central node, waits for the FSM level of
// purchase orders and writes the back office's master data, with a
// second supplier p2.
func ordersNode(t *testing.T) string {
	t.Helper()
	n := singleNode(t)
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l >= 4
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))
	return a
}

func orderBody(id, store, supplier string, ls ...map[string]any) map[string]any {
	return map[string]any{"id": id, "store": store, "supplier": supplier, "lines": lines(ls...)}
}

// orderOut is an order as the API answers it.
type orderOut struct {
	ID, Store, Supplier, Currency, Status, Reason string
	ExpectedOn                                    string `json:"expected_on"`
	Lines                                         []struct {
		Item, Ordered, Received, Outstanding, Price string
	}
	Invoices []string
}

func decodeOrder(t *testing.T, r response, status int) orderOut {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var o orderOut
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatalf("order %s: %v", r.body, err)
	}
	return o
}

func createOrder(t *testing.T, a string, body map[string]any) orderOut {
	t.Helper()
	return decodeOrder(t, apiDo(t, "POST", a, "/v1/orders", adminKey, body, nil), http.StatusCreated)
}

func getOrder(t *testing.T, a, id string) orderOut {
	t.Helper()
	return decodeOrder(t, apiDo(t, "GET", a, "/v1/orders/"+id, viewerKey, nil, nil), http.StatusOK)
}

// wantLines checks each line's "item ordered/received/outstanding".
func (o orderOut) wantLines(t *testing.T, status string, want ...string) {
	t.Helper()
	var got []string
	for _, l := range o.Lines {
		got = append(got, l.Item+" "+l.Ordered+"/"+l.Received+"/"+l.Outstanding)
	}
	if o.Status != status || strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("order %s: %s %v, want %s %v", o.ID, o.Status, got, status, want)
	}
}

func invoice(store, supplier, order string, ls ...map[string]any) map[string]any {
	d := map[string]any{"type": "incoming_invoice", "store": store, "supplier": supplier, "lines": lines(ls...)}
	if order != "" {
		d["order"] = order
	}
	return d
}

func TestOrderCreateAndRetry(t *testing.T) {
	a := ordersNode(t)
	body := orderBody("o1", "s1", "p1",
		map[string]any{"item": "milk", "qty": "10", "price": "1.1"},
		map[string]any{"item": "flour", "qty": "2.5"})
	body["expected_on"], body["note"] = "2026-12-01", "before the holidays"
	o := createOrder(t, a, body)
	o.wantLines(t, "open", "milk 10/0/10", "flour 2.5/0/2.5")
	if o.Currency != "EUR" || o.Lines[0].Price != "1.10" || o.Lines[1].Price != "" || o.ExpectedOn != "2026-12-01" {
		t.Fatalf("created %+v", o)
	}

	// The same content spelled otherwise: 200 with the stored order.
	retry := orderBody("o1", "s1", "p1",
		map[string]any{"item": "milk", "qty": "10.000", "price": "1.10"},
		map[string]any{"item": "flour", "qty": "2.50"})
	retry["expected_on"], retry["note"] = "2026-12-01", "before the holidays"
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders", adminKey, retry, nil), http.StatusOK).
		wantLines(t, "open", "milk 10/0/10", "flour 2.5/0/2.5")

	// Other content under the same id: 409 naming id, nothing changed.
	for _, other := range []map[string]any{
		orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "11", "price": "1.10"},
			map[string]any{"item": "flour", "qty": "2.5"}),
		orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "10"},
			map[string]any{"item": "flour", "qty": "2.5"}),
		orderBody("o1", "s2", "p1", map[string]any{"item": "milk", "qty": "10", "price": "1.10"},
			map[string]any{"item": "flour", "qty": "2.5"}),
	} {
		other["expected_on"], other["note"] = "2026-12-01", "before the holidays"
		problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, other, nil), http.StatusConflict, "id")
	}
	got := getOrder(t, a, "o1")
	got.wantLines(t, "open", "milk 10/0/10", "flour 2.5/0/2.5")
	if got.Store != "s1" || got.Lines[0].Price != "1.10" {
		t.Fatalf("after conflicting retries: %+v", got)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/orders/nope", viewerKey, nil, nil), http.StatusNotFound, "id")
}

// TestOrderValidation: every bad field is refused naming it, and the
// refusal writes nothing.
func TestOrderValidation(t *testing.T) {
	a := ordersNode(t)
	milk := func(kv ...any) map[string]any {
		l := map[string]any{"item": "milk", "qty": "1"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(l, kv[i].(string))
			} else {
				l[kv[i].(string)] = kv[i+1]
			}
		}
		return l
	}
	with := func(k string, v any) map[string]any {
		b := orderBody("bad", "s1", "p1", milk())
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"no id", with("id", nil), 422, "id"},
		{"bad id", with("id", "a b"), 422, "id"},
		{"unknown supplier", with("supplier", "p9"), 422, "supplier"},
		{"no supplier", with("supplier", nil), 422, "supplier"},
		{"unknown store", with("store", "s9"), 422, "store"},
		{"unknown item", orderBody("bad", "s1", "p1", milk("item", "cheese")), 422, "lines[0].item"},
		{"no lines", with("lines", []any{}), 422, "lines"},
		{"zero qty", orderBody("bad", "s1", "p1", milk("qty", "0")), 422, "lines[0].qty"},
		{"negative qty", orderBody("bad", "s1", "p1", milk("qty", "-2")), 422, "lines[0].qty"},
		{"no qty", orderBody("bad", "s1", "p1", milk("qty", nil)), 422, "lines[0].qty"},
		{"a fraction of a piece", orderBody("bad", "s1", "p1", milk(), milk("item", "bread", "qty", "1.5")), 422, "lines[1].qty"},
		{"too many decimals", orderBody("bad", "s1", "p1", milk("item", "flour", "qty", "1.0001")), 422, "lines[0].qty"},
		{"qty a number", orderBody("bad", "s1", "p1", milk("qty", 2)), 400, "lines[0].qty"},
		{"qty with an exponent", orderBody("bad", "s1", "p1", milk("qty", "1e2")), 400, "lines[0].qty"},
		{"negative price", orderBody("bad", "s1", "p1", milk("price", "-1.00")), 422, "lines[0].price"},
		{"sub-cent price", orderBody("bad", "s1", "p1", milk("price", "1.001")), 422, "lines[0].price"},
		{"price a number", orderBody("bad", "s1", "p1", milk("price", 1.5)), 400, "lines[0].price"},
		{"item twice", orderBody("bad", "s1", "p1", milk(), milk("qty", "2")), 422, "lines[1].item"},
		{"bad expected_on", with("expected_on", "2026-13-01"), 422, "expected_on"},
		{"note with a control character", with("note", "a\x00b"), 422, "note"},
		{"note too long", with("note", strings.Repeat("я", 1025)), 422, "note"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, tc.body, nil), tc.status, tc.field)
		})
	}
	if r := apiDo(t, "POST", a, "/v1/orders", adminKey, map[string]any{"id": "bad", "store": "s1", "supplier": "p1",
		"lines": lines(milk()), "colour": "red"}, nil); r.status != http.StatusBadRequest {
		t.Fatalf("an unknown field: %d %s, want 400", r.status, r.body)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/orders/bad", viewerKey, nil, nil), http.StatusNotFound, "id")
	if l := listOrders(t, a, ""); len(l.Orders) != 0 {
		t.Fatalf("after refusals: %+v, want no order", l.Orders)
	}
	// A good body after the refusals is created as asked.
	createOrder(t, a, orderBody("bad", "s1", "p1", milk())).wantLines(t, "open", "milk 1/0/1")
}

// TestOrderReceivedByInvoices: incoming invoices naming an order count
// their lines (base units) as received on its lines of the same item;
// cancelling one takes its quantities back.
func TestOrderReceivedByInvoices(t *testing.T) {
	a := ordersNode(t)
	createOrder(t, a, orderBody("o1", "s1", "p1",
		map[string]any{"item": "milk", "qty": "10"}, map[string]any{"item": "flour", "qty": "5"}))

	d := createAndPost(t, a, "inv1", invoice("s1", "p1", "o1",
		map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.00"},
		map[string]any{"item": "bread", "qty": "3", "purchase_price": "0.50"})) // not on the order
	if got := getDocField(t, a, "inv1", "order"); got != "o1" {
		t.Fatalf("inv1 order = %v, want o1 (%+v)", got, d)
	}
	o := getOrder(t, a, "o1")
	o.wantLines(t, "partial", "milk 10/4/6", "flour 5/0/5")
	if strings.Join(o.Invoices, ",") != "inv1" {
		t.Fatalf("invoices %v, want inv1", o.Invoices)
	}

	// Six milk as one pack of six (base units), the flour in two lines.
	createAndPost(t, a, "inv2", invoice("s1", "p1", "o1",
		map[string]any{"item": "milk", "packs": "1", "pack_factor": "6", "purchase_price": "1.00"},
		map[string]any{"item": "flour", "qty": "2", "purchase_price": "0.80"},
		map[string]any{"item": "flour", "qty": "3.5", "purchase_price": "0.80"}))
	o = getOrder(t, a, "o1")
	o.wantLines(t, "received", "milk 10/10/0", "flour 5/5.5/0")
	if strings.Join(o.Invoices, ",") != "inv1,inv2" {
		t.Fatalf("invoices %v, want inv1,inv2", o.Invoices)
	}
	// A received order is still open to a late delivery.
	createAndPost(t, a, "inv3", invoice("s1", "p1", "o1", map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.00"}))
	getOrder(t, a, "o1").wantLines(t, "received", "milk 10/11/0", "flour 5/5.5/0")

	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv2/cancel", adminKey, nil, nil))
	o = getOrder(t, a, "o1")
	o.wantLines(t, "partial", "milk 10/5/5", "flour 5/0/5")
	if strings.Join(o.Invoices, ",") != "inv1,inv3" {
		t.Fatalf("invoices after cancelling inv2: %v, want inv1,inv3", o.Invoices)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv1/cancel", adminKey, nil, nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv3/cancel", adminKey, nil, nil))
	getOrder(t, a, "o1").wantLines(t, "open", "milk 10/0/10", "flour 5/0/5")
	// Nothing received now: it may be cancelled.
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o1/cancel", adminKey, map[string]any{"reason": "supplier out of stock"}, nil),
		http.StatusOK).wantLines(t, "cancelled", "milk 10/0/0", "flour 5/0/0")
}

func getDocField(t *testing.T, a, id, field string) any {
	t.Helper()
	return mustOK(t, apiDo(t, "GET", a, "/v1/documents/"+id, viewerKey, nil, nil)).json(t)[field]
}

// TestOrderInvoiceRefused: an invoice naming an order it may not fulfil
// is refused naming order, when it is created and when it is posted, and
// the refused post changes nothing.
func TestOrderInvoiceRefused(t *testing.T) {
	a := ordersNode(t)
	createOrder(t, a, orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "10"}))
	createOrder(t, a, orderBody("o2", "s1", "p1", map[string]any{"item": "milk", "qty": "10"}))
	milk := map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.00"}
	for _, tc := range []struct {
		name string
		doc  map[string]any
	}{
		{"unknown order", invoice("s1", "p1", "o9", milk)},
		{"another store's", invoice("s2", "p1", "o1", milk)},
		{"another supplier's", invoice("s1", "p2", "o1", milk)},
		{"not an invoice", map[string]any{"type": "supplier_return", "store": "s1", "supplier": "p1", "order": "o1", "lines": lines(milk)}},
		{"a bad id", invoice("s1", "p1", "o 1", milk)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad", adminKey, tc.doc, nil), http.StatusUnprocessableEntity, "order")
		})
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/bad", viewerKey, nil, nil), http.StatusNotFound, "")

	// Drafted while o2 stood, posted after it was closed or cancelled.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv-late", adminKey, invoice("s1", "p1", "o2", milk), nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv-cx", adminKey, invoice("s1", "p1", "o1", milk), nil))
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o2/close", adminKey, nil, nil), http.StatusOK)
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o1/cancel", adminKey, map[string]any{"reason": "typo"}, nil), http.StatusOK)
	before := balances(t, a)
	for _, id := range []string{"inv-late", "inv-cx"} {
		problemOf(t, apiDo(t, "POST", a, "/v1/documents/"+id+"/post", adminKey, nil, nil), http.StatusUnprocessableEntity, "order")
		if st := getDocField(t, a, id, "status"); st != "draft" {
			t.Fatalf("%s after a refused post: %v, want draft", id, st)
		}
	}
	sameBalances(t, "after refused posts", balances(t, a), before)
	getOrder(t, a, "o2").wantLines(t, "closed", "milk 10/0/0")
	getOrder(t, a, "o1").wantLines(t, "cancelled", "milk 10/0/0")
	// A new invoice naming either is refused when it is created.
	for _, id := range []string{"o1", "o2"} {
		problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-new", adminKey, invoice("s1", "p1", id, milk), nil),
			http.StatusUnprocessableEntity, "order")
	}
}

// TestOrderCancelAndClose: an order is cancelled only while it received
// nothing, else closed; closing drops what is outstanding and keeps what
// was received; both are final.
func TestOrderCancelAndClose(t *testing.T) {
	a := ordersNode(t)
	createOrder(t, a, orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "10"}, map[string]any{"item": "flour", "qty": "4"}))
	createAndPost(t, a, "inv1", invoice("s1", "p1", "o1", map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.00"}))

	cancel := func(id string, body any) response {
		return apiDo(t, "POST", a, "/v1/orders/"+id+"/cancel", adminKey, body, nil)
	}
	problemOf(t, cancel("o1", map[string]any{}), http.StatusUnprocessableEntity, "reason")
	problemOf(t, cancel("o1", map[string]any{"reason": "  "}), http.StatusUnprocessableEntity, "reason")
	problemOf(t, cancel("o1", map[string]any{"reason": "a\x07b"}), http.StatusUnprocessableEntity, "reason")
	problemOf(t, cancel("o1", map[string]any{"reason": "changed our mind"}), http.StatusConflict, "status")
	problemOf(t, cancel("o9", map[string]any{"reason": "x"}), http.StatusNotFound, "id")
	getOrder(t, a, "o1").wantLines(t, "partial", "milk 10/4/6", "flour 4/0/4")

	o := decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o1/close", adminKey, map[string]any{"reason": "the rest is not coming"}, nil), http.StatusOK)
	o.wantLines(t, "closed", "milk 10/4/0", "flour 4/0/0")
	if o.Reason != "the rest is not coming" {
		t.Fatalf("closed: reason %q", o.Reason)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/orders/o1/close", adminKey, nil, nil), http.StatusConflict, "status")
	problemOf(t, cancel("o1", map[string]any{"reason": "x"}), http.StatusConflict, "status")
	// Cancelling the invoice still takes its quantities back.
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv1/cancel", adminKey, nil, nil))
	getOrder(t, a, "o1").wantLines(t, "closed", "milk 10/0/0", "flour 4/0/0")

	// A retry of a cancel with its key gets the first answer; another
	// cancel is a conflict.
	createOrder(t, a, orderBody("o2", "s2", "p2", map[string]any{"item": "bread", "qty": "3"}))
	key := map[string]string{"Idempotency-Key": "cancel-o2"}
	for range 2 {
		o := decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o2/cancel", adminKey, map[string]any{"reason": "duplicate order"}, key), http.StatusOK)
		o.wantLines(t, "cancelled", "bread 3/0/0")
	}
	problemOf(t, cancel("o2", map[string]any{"reason": "duplicate order"}), http.StatusConflict, "status")
	problemOf(t, apiDo(t, "POST", a, "/v1/orders/o2/close", adminKey, nil, nil), http.StatusConflict, "status")
	// Its id stays spent: created again with its content, the cancelled
	// order answers.
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders", adminKey, orderBody("o2", "s2", "p2", map[string]any{"item": "bread", "qty": "3"}), nil),
		http.StatusOK).wantLines(t, "cancelled", "bread 3/0/0")
}

type orderPage struct {
	Orders []orderOut
	Next   string
}

func listOrders(t *testing.T, a, query string) orderPage {
	t.Helper()
	var p orderPage
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/orders"+query, viewerKey, nil, nil)).body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p orderPage) ids() string {
	var ids []string
	for _, o := range p.Orders {
		ids = append(ids, o.ID)
	}
	return strings.Join(ids, ",")
}

func TestOrderListPagingAndFilters(t *testing.T) {
	a := ordersNode(t)
	for _, o := range []struct{ id, store, supplier string }{
		{"o1", "s1", "p1"}, {"o2", "s2", "p1"}, {"o3", "s1", "p2"}, {"o4", "s2", "p2"}, {"o5", "s1", "p1"},
	} {
		createOrder(t, a, orderBody(o.id, o.store, o.supplier, map[string]any{"item": "milk", "qty": "5"}))
	}
	createAndPost(t, a, "inv1", invoice("s1", "p1", "o1", map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.00"}))
	createAndPost(t, a, "inv5", invoice("s1", "p1", "o5", map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.00"}))
	decodeOrder(t, apiDo(t, "POST", a, "/v1/orders/o4/cancel", adminKey, map[string]any{"reason": "x"}, nil), http.StatusOK)

	var all []string
	next := ""
	for range 5 {
		q := "?limit=2"
		if next != "" {
			q += "&after=" + next
		}
		p := listOrders(t, a, q)
		if len(p.Orders) > 2 {
			t.Fatalf("page of %d, limit 2", len(p.Orders))
		}
		all = append(all, p.ids())
		if next = p.Next; next == "" {
			break
		}
	}
	if got := strings.Join(all, "|"); got != "o1,o2|o3,o4|o5" {
		t.Fatalf("pages %s, want o1,o2|o3,o4|o5", got)
	}
	for q, want := range map[string]string{
		"?store=s1":                  "o1,o3,o5",
		"?supplier=p2":               "o3,o4",
		"?store=s1&supplier=p1":      "o1,o5",
		"?status=open":               "o2,o3",
		"?status=partial":            "o1",
		"?status=received":           "o5",
		"?status=cancelled":          "o4",
		"?status=closed":             "",
		"?store=s1&limit=1&after=o1": "o3",
	} {
		if got := listOrders(t, a, q).ids(); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
	}
	// next is the last order the page examined, filtered out or not.
	if p := listOrders(t, a, "?store=s1&limit=1"); p.ids() != "o1" || p.Next == "" {
		t.Errorf("store s1, limit 1: %s next %q, want o1 and a next", p.ids(), p.Next)
	} else if p2 := listOrders(t, a, "?store=s1&limit=5&after="+p.Next); p2.ids() != "o3,o5" || p2.Next != "" {
		t.Errorf("store s1 after %s: %s next %q, want o3,o5 and no next", p.Next, p2.ids(), p2.Next)
	}
	for q, field := range map[string]string{"?status=lost": "status", "?limit=0": "limit", "?store=a%20b": "store", "?supplier=a%20b": "supplier"} {
		problemOf(t, apiDo(t, "GET", a, "/v1/orders"+q, viewerKey, nil, nil), http.StatusBadRequest, field)
	}
}

// rawDo sends one request and does not retry a 503 (apiDo does).
func rawDo(t *testing.T, method, addr, path string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestOrderLevelThree: purchase orders are of FSM level 4. A cluster at
// level 3 answers the order routes, and an invoice naming an order, with
// a 503 naming the levels; an order entry in the log all the same is
// answered as an unknown op and changes nothing; a document created with
// an order by an entry is stored without it, as a node of level 3 stores
// it, and posts as an invoice did before orders.
func TestOrderLevelThree(t *testing.T) {
	if central.FSMLevel < 4 {
		t.Fatalf("FSMLevel = %d, want 4 (purchase orders)", central.FSMLevel)
	}
	c := startClusterWith(t, 1, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 3) })
	n := c.waitLeader()
	waitFor(t, "the cluster at level 3", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l == 3
	})
	a := n.APIAddr()
	seedBackOffice(t, a)

	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/orders", orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "10"})},
		{"POST", "/v1/orders/o1/cancel", map[string]any{"reason": "early"}},
		{"POST", "/v1/orders/o1/close", map[string]any{}},
		{"PUT", "/v1/documents/inv1", invoice("s1", "p1", "o1", map[string]any{"item": "milk", "qty": "2", "purchase_price": "1.00"})},
	} {
		var status int
		var body string
		// 503 also while a leader is elected: wait for the level's.
		waitFor(t, r.path+" refused for its level", 15*time.Second, func() bool {
			status, body = rawDo(t, r.method, a, r.path, r.body)
			return status != http.StatusServiceUnavailable || strings.Contains(body, "level")
		})
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "level 4") {
			t.Fatalf("%s %s at level 3 = %d %s, want 503 naming level 4", r.method, r.path, status, body)
		}
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/inv1", viewerKey, nil, nil), http.StatusNotFound, "")

	payload, err := msgpack.Marshal(map[string]any{"a": "create", "o": map[string]any{"i": "o1", "s": "p1", "t": "s1",
		"l": []any{map[string]any{"i": "milk", "q": "10"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var res *central.Result
	retryUnavailable(t, func() error {
		var err error
		res, err = n.SubmitPastLevel(central.OpOrder, payload)
		return err
	})
	var se *storeline.Error
	if err := res.Err(); !errors.As(err, &se) || se.Kind != storeline.Invalid || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("a level-4 entry applied at level 3 = %v, want the unknown-op answer", err)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/orders/o1", viewerKey, nil, nil), http.StatusNotFound, "id")

	// An entry creating an invoice that names an order: the order is
	// dropped, as a level-3 node (which does not know the field) drops it.
	doc := storeline.Document{ID: "inv2", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1", Order: "o1",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("2"), PurchasePrice: dec("1.00")}}}
	enc, err := msgpack.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	retryUnavailable(t, func() error {
		res, err := n.Submit(context.Background(), central.OpDocCreate, "inv2-create", enc)
		if err == nil {
			err = res.Err()
		}
		return err
	})
	if got := getDocField(t, a, "inv2", "order"); got != nil {
		t.Fatalf("inv2 created at level 3 holds order %v, want none", got)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv2/post", adminKey, nil, nil))
	wantStock(t, a, "s1", "milk", "2", "1.82") // 2.00 with 10% VAT
}

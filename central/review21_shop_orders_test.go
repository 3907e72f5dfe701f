package central_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// shopOrdersNode starts one central node with the test shops' tokens on
// its replication listener, at the FSM level of purchase orders, with
// the back office's master data and a second supplier p2 (Bakery).
func shopOrdersNode(t *testing.T) *central.Node {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l >= 4
	})
	seedBackOffice(t, n.APIAddr())
	mustOK(t, apiDo(t, "PUT", n.APIAddr(), "/v1/suppliers/p2", adminKey, map[string]any{"name": "Bakery"}, nil))
	return n
}

// askShopOrders posts body to the replication listener's shop orders
// call with token ("" sends none) and returns the status, the page (on
// 200) and the problem's field (otherwise).
func askShopOrders(t *testing.T, addr, token string, body []byte) (int, replication.ShopOrdersPage, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+replication.PathShopOrders, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/msgpack")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var page replication.ShopOrdersPage
	if resp.StatusCode == http.StatusOK {
		if err := replication.Decode(b, &page); err != nil {
			t.Fatalf("page %x: %v", b, err)
		}
		return resp.StatusCode, page, ""
	}
	var p struct {
		Field string `json:"field"`
	}
	_ = json.Unmarshal(b, &p)
	return resp.StatusCode, page, p.Field
}

// shopOrders asks as the test shop store for a page, wanting a 200.
func shopOrders(t *testing.T, addr string, store storeline.StoreID, after string, limit int) replication.ShopOrdersPage {
	t.Helper()
	token := ""
	for _, s := range testShops {
		if s.store == store {
			token = s.token
		}
	}
	b, err := replication.Encode(&replication.ShopOrdersRequest{After: after, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	status, page, field := askShopOrders(t, addr, token, b)
	if status != http.StatusOK {
		t.Fatalf("%s's orders after %q: status %d (field %q)", store, after, status, field)
	}
	return page
}

// describe spells a page as "id status supplier/name [item o/r/u ...]"
// per order, then "next=cursor".
func describe(p replication.ShopOrdersPage) string {
	var out []string
	for _, o := range p.Orders {
		ls := make([]string, len(o.Lines))
		for i, l := range o.Lines {
			ls[i] = fmt.Sprintf("%s %s/%s/%s", l.Item, l.Ordered, l.Received, l.Outstanding)
		}
		out = append(out, fmt.Sprintf("%s %s %s/%s %v", o.ID, o.Status, o.Supplier, o.SupplierName, ls))
	}
	return strings.Join(append(out, "next="+p.Next), "; ")
}

func wantPage(t *testing.T, got replication.ShopOrdersPage, want ...string) {
	t.Helper()
	if d, w := describe(got), strings.Join(want, "; "); d != w {
		t.Fatalf("page:\n got %s\nwant %s", d, w)
	}
}

// TestReview21ShopOrders: a shop asks head office on the replication
// listener for its orders that still expect goods (open or partial), a
// page at a time in ID order, each line with what was ordered, received
// and is outstanding, and the supplier's name; never another store's
// orders nor received, closed or cancelled ones.
func TestReview21ShopOrders(t *testing.T) {
	n := shopOrdersNode(t)
	a, repl := n.APIAddr(), n.ReplicationAddr()
	milk := func(qty string) map[string]any { return map[string]any{"item": "milk", "qty": qty} }

	o1 := orderBody("o1", "s1", "p1", milk("10"), map[string]any{"item": "flour", "qty": "2.5"})
	o1["expected_on"], o1["note"] = "2026-12-01", "before the holidays"
	createOrder(t, a, o1)
	createOrder(t, a, orderBody("o2", "s1", "p2", map[string]any{"item": "bread", "qty": "5"}))
	createAndPost(t, a, "inv2", invoice("s1", "p2", "o2", map[string]any{"item": "bread", "qty": "2", "purchase_price": "0.50"}))
	createOrder(t, a, orderBody("o3", "s1", "p1", milk("1")))
	createAndPost(t, a, "inv3", invoice("s1", "p1", "o3", map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.00"}))
	createOrder(t, a, orderBody("o4", "s1", "p1", milk("4")))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o4/cancel", adminKey, map[string]any{"reason": "by mistake"}, nil))
	createOrder(t, a, orderBody("o5", "s1", "p1", milk("5")))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o5/close", adminKey, nil, nil))
	createOrder(t, a, orderBody("o6", "s2", "p1", milk("6")))
	createOrder(t, a, orderBody("o7", "s1", "p1", milk("7")))

	all := shopOrders(t, repl, "s1", "", replication.MaxShopOrders)
	wantPage(t, all,
		"o1 open p1/Dairy [milk 10/0/10 flour 2.5/0/2.5]",
		"o2 partial p2/Bakery [bread 5/2/3]",
		"o7 open p1/Dairy [milk 7/0/7]",
		"next=")
	if o := all.Orders[0]; o.ExpectedOn != "2026-12-01" || o.Note != "before the holidays" {
		t.Fatalf("o1 as the shop sees it: %+v", o)
	}
	wantPage(t, shopOrders(t, repl, "s2", "", 10), "o6 open p1/Dairy [milk 6/0/6]", "next=")

	// A page at a time: the cursor is the last order read. The page
	// reads the store's open orders alone (orders.go invariant 7: o3 to
	// o6 are not read at all), so it is the last one shown.
	first := shopOrders(t, repl, "s1", "", 2)
	wantPage(t, first, "o1 open p1/Dairy [milk 10/0/10 flour 2.5/0/2.5]", "o2 partial p2/Bakery [bread 5/2/3]", "next=o2")
	wantPage(t, shopOrders(t, repl, "s1", first.Next, 2), "o7 open p1/Dairy [milk 7/0/7]", "next=")
	wantPage(t, shopOrders(t, repl, "s1", "o1", 1), "o2 partial p2/Bakery [bread 5/2/3]", "next=o2")

	// A supplier the master data no longer holds: the order is still
	// expected, its supplier unnamed.
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p3", adminKey, map[string]any{"name": "Farm"}, nil))
	createOrder(t, a, orderBody("o8", "s1", "p3", milk("8")))
	wantPage(t, shopOrders(t, repl, "s1", "o7", 1), "o8 open p3/Farm [milk 8/0/8]", "next=")
	if r := apiDo(t, "DELETE", a, "/v1/suppliers/p3", adminKey, nil, nil); r.status/100 != 2 {
		t.Fatalf("delete p3: %d %s", r.status, r.body)
	}
	wantPage(t, shopOrders(t, repl, "s1", "o7", 1), "o8 open p3/ [milk 8/0/8]", "next=")

	// Bad input is refused naming it, as the shop's other calls are.
	for _, limit := range []int{0, -1, replication.MaxShopOrders + 1} {
		b, _ := replication.Encode(&replication.ShopOrdersRequest{Limit: limit})
		if status, _, field := askShopOrders(t, repl, testShops[0].token, b); status != http.StatusUnprocessableEntity || field != "limit" {
			t.Fatalf("limit %d: status %d field %q, want 422 naming limit", limit, status, field)
		}
	}
	b, _ := replication.Encode(&replication.ShopOrdersRequest{After: "a b", Limit: 1})
	if status, _, field := askShopOrders(t, repl, testShops[0].token, b); status != http.StatusUnprocessableEntity || field != "after" {
		t.Fatalf("after a b: status %d field %q, want 422 naming after", status, field)
	}
	// Undecodable: 422, as the loyalty calls beside it answer one.
	if status, _, _ := askShopOrders(t, repl, testShops[0].token, []byte("not msgpack")); status != http.StatusUnprocessableEntity {
		t.Fatalf("an undecodable body: status %d, want 422", status)
	}
	ok, _ := replication.Encode(&replication.ShopOrdersRequest{Limit: 10})
	for _, token := range []string{"", "no-such-token-0123456789"} {
		if status, _, _ := askShopOrders(t, repl, token, ok); status != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d, want 401", token, status)
		}
	}
}

// TestReview21DraftNamesOrder: a till drafts the incoming invoice of an
// order the shop was told of; the document head office makes of the
// draft names that order, and posting it counts the receipt. An order
// the invoice may not fulfil is refused naming order, as a typed
// document's is; an order head office names itself wins over the
// draft's.
func TestReview21DraftNamesOrder(t *testing.T) {
	n := shopOrdersNode(t)
	a, repl := n.APIAddr(), n.ReplicationAddr()
	createOrder(t, a, orderBody("o1", "s1", "p1", map[string]any{"item": "milk", "qty": "24"}))
	createOrder(t, a, orderBody("o2", "s1", "p1", map[string]any{"item": "milk", "qty": "6"}))
	createOrder(t, a, orderBody("o-s2", "s2", "p1", map[string]any{"item": "milk", "qty": "1"}))
	createOrder(t, a, orderBody("o-gone", "s1", "p1", map[string]any{"item": "milk", "qty": "1"}))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o-gone/close", adminKey, nil, nil))

	seq := uint64(0)
	draft := func(order, packs string) storeline.EventID {
		seq++
		dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Number: fmt.Sprintf("D-%d", seq), Terminal: "till-1", Seller: "alice",
			Currency: "EUR", Supplier: "p1", Order: order,
			Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Packs: dec(packs), PackFactor: dec("6"), PurchasePrice: dec("0.55")}}}
		return pushDraft(t, repl, "s1", seq, dr)
	}
	ref := func(ev storeline.EventID) map[string]any {
		return map[string]any{"draft": map[string]any{"store": "s1", "event": ev.String()}}
	}

	first := draft("o1", "3")
	if got := draftsByEvent(t, a)[first.String()]["order"]; got != "o1" {
		t.Fatalf("head office's list of drafts shows the invoice draft's order as %v, want o1", got)
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, ref(first), nil))
	if got := getDocField(t, a, "inv1", "order"); got != "o1" {
		t.Fatalf("the document made of a draft naming o1 names order %v", got)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv1/post", adminKey, nil, nil))
	getOrder(t, a, "o1").wantLines(t, "partial", "milk 24/18/6")
	wantPage(t, shopOrders(t, repl, "s1", "", 1), "o1 partial p1/Dairy [milk 24/18/6]", "next=o1")

	// The rest arrives: received, and the shop expects it no more.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv2", adminKey, ref(draft("o1", "1")), nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv2/post", adminKey, nil, nil))
	getOrder(t, a, "o1").wantLines(t, "received", "milk 24/24/0")
	wantPage(t, shopOrders(t, repl, "s1", "", 10), "o2 open p1/Dairy [milk 6/0/6]", "next=")

	// Head office's own order wins over the draft's.
	withOrder := ref(draft("o1", "1"))
	withOrder["order"] = "o2"
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv3", adminKey, withOrder, nil))
	if got := getDocField(t, a, "inv3", "order"); got != "o2" {
		t.Fatalf("head office named o2, the draft o1: the document names %v", got)
	}

	// Orders the draft's invoice may not fulfil: refused naming order.
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv4", adminKey, ref(draft("o-s2", "1")), nil), http.StatusUnprocessableEntity, "order")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv5", adminKey, ref(draft("o-gone", "1")), nil), http.StatusUnprocessableEntity, "order")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv6", adminKey, ref(draft("o-none", "1")), nil), http.StatusUnprocessableEntity, "order")

	// Cancelled after the document was made: refused at its post.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv7", adminKey, ref(draft("o2", "1")), nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o2/cancel", adminKey, map[string]any{"reason": "by mistake"}, nil))
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/inv7/post", adminKey, nil, nil), http.StatusUnprocessableEntity, "order")
}

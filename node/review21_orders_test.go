package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

const ordersReplToken = "shop-1-replication-token"

// fakeCentralOrders speaks central's side of replication.PathShopOrders as
// replication/orders.go defines it (msgpack, the shop's bearer token),
// with two orders for the shop; anything else it does not serve.
type fakeCentralOrders struct {
	mu    sync.Mutex
	asked []replication.ShopOrdersRequest
}

func (f *fakeCentralOrders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != replication.PathShopOrders {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"kind":"not_found","detail":"not served here"}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+ordersReplToken || r.Header.Get("Content-Type") != "application/msgpack" {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"kind":"unauthorized","detail":"who are you"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var rq replication.ShopOrdersRequest
	if err := replication.Decode(body, &rq); err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"kind":"invalid","detail":"bad body"}`)
		return
	}
	f.mu.Lock()
	f.asked = append(f.asked, rq)
	f.mu.Unlock()
	d := decimal.RequireFromString
	all := []replication.ShopOrder{
		{ID: "po-1", Supplier: "sup-1", SupplierName: "Dairy Ltd", ExpectedOn: "2026-12-02", Status: "partial",
			Lines: []replication.ShopOrderLine{{Item: sample.MilkItem, Ordered: d("24"), Received: d("6"), Outstanding: d("18")}}},
		{ID: "po-2", Supplier: "sup-2", Status: "open",
			Lines: []replication.ShopOrderLine{{Item: "not-in-the-catalogue", Ordered: d("2.5"), Received: d("0"), Outstanding: d("2.5")}}},
	}
	var page replication.ShopOrdersPage
	for _, o := range all {
		if o.ID <= rq.After {
			continue
		}
		if len(page.Orders) == rq.Limit {
			page.Next = page.Orders[len(page.Orders)-1].ID
			break
		}
		page.Orders = append(page.Orders, o)
	}
	out, err := replication.Encode(page)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/msgpack")
	w.Write(out)
}

func (f *fakeCentralOrders) requests() []replication.ShopOrdersRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]replication.ShopOrdersRequest(nil), f.asked...)
}

// ordersNode starts a node replicating to central (nil: standalone) with
// the sample catalogue and one till, and returns the till's token. The
// catalogue is imported standalone first (a replicating shop takes it
// from head office only, and this central serves orders alone).
func ordersNode(t *testing.T, central []string) (*node.Node, string) {
	t.Helper()
	return ordersNodeAt(t, t.TempDir(), central)
}

// ordersNodeAt is ordersNode with its data in dir.
func ordersNodeAt(t *testing.T, dir string, central []string) (*node.Node, string) {
	t.Helper()
	n := startNode(t, dir, nil)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
	var term node.TerminalResponse
	if err := json.Unmarshal(body, &term); err != nil || term.Token == "" {
		t.Fatalf("terminal: %s", body)
	}
	if central == nil {
		return n, term.Token
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	return startNode(t, dir, func(c *node.Config) {
		c.Replication.Central, c.Replication.Token = central, ordersReplToken
	}), term.Token
}

// closedURL is the address of a server that is no longer there: a
// central that refuses connections.
func closedURL(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	return s.URL
}

// TestReview21OrdersFromCentral: a replicating node answers GET /v1/orders
// from central's PathShopOrders, asked with the shop's token and the
// till's after and limit, trying central's next node when one refuses
// connections and following no redirect; lines carry the catalogue's SKU
// where the shop knows the item.
func TestReview21OrdersFromCentral(t *testing.T) {
	central := &fakeCentralOrders{}
	srv := httptest.NewServer(central)
	defer srv.Close()
	var redirected atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	n, token := ordersNode(t, []string{closedURL(t), redirector.URL, srv.URL})

	type ordersPage struct {
		Orders []struct {
			ID, Supplier, SupplierName, ExpectedOn, Status string
			Lines                                          []struct{ Item, SKU, Ordered, Received, Outstanding string }
		}
		Next string
	}
	code, body := call(t, "GET", n.TillURL()+"/v1/orders?limit=1", token, nil)
	var page ordersPage
	if code != 200 || json.Unmarshal(body, &page) != nil {
		t.Fatalf("GET /v1/orders = %d %s", code, body)
	}
	if len(page.Orders) != 1 || page.Next != "po-1" {
		t.Fatalf("first page = %s, want po-1 and next po-1", body)
	}
	o := page.Orders[0]
	if o.ID != "po-1" || o.Supplier != "sup-1" || o.Status != "partial" || len(o.Lines) != 1 {
		t.Fatalf("po-1 = %s", body)
	}
	if l := o.Lines[0]; l.Item != string(sample.MilkItem) || l.SKU != "SKU00001" || l.Ordered != "24" || l.Received != "6" || l.Outstanding != "18" {
		t.Fatalf("po-1's line = %+v (%s)", l, body)
	}
	if !strings.Contains(string(body), `"supplier_name":"Dairy Ltd"`) || !strings.Contains(string(body), `"expected_on":"2026-12-02"`) {
		t.Fatalf("po-1 lacks its supplier's name or date: %s", body)
	}

	code, body = call(t, "GET", n.TillURL()+"/v1/orders?after=po-1", token, nil)
	page = ordersPage{}
	if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Orders) != 1 || page.Orders[0].ID != "po-2" || page.Next != "" {
		t.Fatalf("second page = %d %s, want po-2 alone", code, body)
	}
	if l := page.Orders[0].Lines[0]; l.SKU != "" || l.Outstanding != "2.5" {
		t.Fatalf("a line of an item the shop lacks = %+v, want no sku", l)
	}
	// The node's refresh of its copy asks too, whole pages of
	// replication.MaxShopOrders (orders.go): not the tills' calls.
	asked := slices.DeleteFunc(central.requests(), func(r replication.ShopOrdersRequest) bool {
		return r.Limit == replication.MaxShopOrders
	})
	if len(asked) != 2 || asked[0] != (replication.ShopOrdersRequest{Limit: 1}) || asked[1] != (replication.ShopOrdersRequest{After: "po-1", Limit: 100}) {
		t.Fatalf("central was asked %+v", asked)
	}
	if k := redirected.Load(); k != 0 {
		t.Fatalf("a redirect was followed %d times, with the shop's token", k)
	}
}

// TestReview21OrdersCentralUnreachable: with no central node reachable the
// tills' API answers 503 saying head office cannot be reached; a
// standalone node answers 404 saying it has no head office.
func TestReview21OrdersCentralUnreachable(t *testing.T) {
	n, token := ordersNode(t, []string{closedURL(t), closedURL(t)})
	code, body := call(t, "GET", n.TillURL()+"/v1/orders", token, nil)
	if code != 503 || !strings.Contains(string(body), "head office cannot be reached") {
		t.Fatalf("GET /v1/orders with central down = %d %s, want 503 saying head office cannot be reached", code, body)
	}

	n, token = ordersNode(t, nil)
	code, body = call(t, "GET", n.TillURL()+"/v1/orders", token, nil)
	if code != 404 || !strings.Contains(string(body), "no head office") {
		t.Fatalf("GET /v1/orders standalone = %d %s, want 404 saying the shop has no head office", code, body)
	}
}

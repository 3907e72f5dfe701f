package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/storeline/storeline/replication"
)

// TestReview24CentralURLWithTrailingSlash: a central URL configured with
// a trailing slash (as the replication client accepts it, trimming it)
// reaches central's PathShopOrders too, not "//v1/shop/orders", which
// central's mux answers with a redirect the node rightly does not follow:
// the tills would be told head office cannot be reached while the shop
// replicates to it.
func TestReview24CentralURLWithTrailingSlash(t *testing.T) {
	central := &fakeCentralOrders{}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL + "/"})
	if code, body := call(t, "GET", n.TillURL()+"/v1/orders", token, nil); code != 200 {
		t.Fatalf("GET /v1/orders with central's URL ending in / = %d %s, want 200", code, body)
	}
	asked := slices.DeleteFunc(central.requests(), func(r replication.ShopOrdersRequest) bool {
		return r.Limit == replication.MaxShopOrders // the copy's refresh (orders.go)
	})
	if len(asked) != 1 {
		t.Fatalf("central was asked %+v, want once", asked)
	}
}

// TestReview24CentralRefusalReachesTill: central's refusal of the request
// itself (a 422 naming limit, as a central with a smaller page would
// answer) reaches the till as that 422 naming limit, not as head office
// being unreachable; a central of an older version, whose listener has no
// such path (a plain 404), is one that cannot serve the shop: a 503.
func TestReview24CentralRefusalReachesTill(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"kind":"invalid","field":"limit","detail":"500: want 1 to 100 orders a page"}`)
	}))
	defer refusing.Close()
	n, token := ordersNode(t, []string{refusing.URL})
	code, body := call(t, "GET", n.TillURL()+"/v1/orders?limit=500", token, nil)
	var p struct{ Field string }
	if code != 422 || json.Unmarshal(body, &p) != nil || p.Field != "limit" {
		t.Fatalf("central refusing the limit: till answered %d %s, want 422 naming limit", code, body)
	}

	older := httptest.NewServer(http.NewServeMux()) // no PathShopOrders: 404 page not found
	defer older.Close()
	n, token = ordersNode(t, []string{older.URL})
	if code, body := call(t, "GET", n.TillURL()+"/v1/orders", token, nil); code != 503 {
		t.Fatalf("an older central: till answered %d %s, want 503", code, body)
	}
}

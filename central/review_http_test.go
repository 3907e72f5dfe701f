package central_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReviewImportAcrossEntriesAllOrNothing: a bulk import split into
// several Raft entries whose later entry would break a unique key is
// refused whole, before any entry is applied; one whose records move a
// key between them in order is accepted.
func TestReviewImportAcrossEntriesAllOrNothing(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ImportChunk = 2 })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	imp := func(ids ...string) []map[string]any {
		out := make([]map[string]any, len(ids))
		for i, id := range ids {
			m := item(100 + i)
			m["id"] = id
			out[i] = m
		}
		return out
	}
	stored := func(id string) bool {
		t.Helper()
		var it storeline.Item
		err := n.Replica().GetMaster(storeline.KindItem, id, &it)
		if err != nil && storeline.KindOf(err) != storeline.NotFound {
			t.Fatal(err)
		}
		return err == nil
	}
	// The third record (second entry) takes milk's SKU.
	its := imp("a0", "a1", "a2")
	its[2]["sku"] = "MILK"
	r := apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": its}, nil)
	problemOf(t, r, http.StatusConflict, "items[2].sku")
	if !strings.Contains(string(r.body), "sku:MILK") {
		t.Fatalf("conflict does not name the key: %s", r.body)
	}
	// Two records of the request in different entries share a SKU.
	its = imp("b0", "b1", "b2")
	its[2]["sku"] = its[0]["sku"]
	problemOf(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": its}, nil), http.StatusConflict, "items[2].sku")
	for _, id := range []string{"a0", "a1", "a2", "b0", "b1", "b2"} {
		if stored(id) {
			t.Fatalf("%s stored by a refused import", id)
		}
	}
	// milk gives up its SKU in the first entry, c2 takes it in the second.
	its = imp("c0", "milk", "c2")
	its[1]["sku"], its[1]["name"], its[1]["vat_rate"] = "MILK-OLD", "Milk", "10"
	its[2]["sku"] = "MILK"
	mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": its}, nil))
	if !stored("c0") || !stored("c2") {
		t.Fatal("valid import not stored")
	}
}

// TestReviewBasketFieldPaths: a bad line of a basket is a 400 naming the
// line's field with its index.
func TestReviewBasketFieldPaths(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for _, tc := range []struct {
		line  map[string]any
		field string
	}{
		{map[string]any{"item": "milk", "qty": "abc"}, "lines[1].qty"},
		{map[string]any{"item": 5, "qty": "1"}, "lines[1].item"},
		{map[string]any{"item": "milk", "qty": "1", "price": "1e2"}, "lines[1].price"},
	} {
		body := map[string]any{"lines": []any{map[string]any{"item": "milk", "qty": "1"}, tc.line}}
		problemOf(t, apiDo(t, "POST", a, "/v1/stores/s1/baskets/price", viewerKey, body, nil), http.StatusBadRequest, tc.field)
	}
}

// TestReviewDecimalsStrict: money and quantities are decimals in strings
// (openapi.yaml: ^-?[0-9]+(\.[0-9]+)?$); an exponent or a JSON number is
// a 400 naming the field, and nothing is written.
func TestReviewDecimalsStrict(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for i, qty := range []any{"1e3", 1.5, "+1", ".5", "1.", " 1"} {
		id := "d" + string(rune('0'+i))
		problemOf(t, apiDo(t, "PUT", a, "/v1/documents/"+id, adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
			"lines": lines(map[string]any{"item": "milk", "qty": "1"}, map[string]any{"item": "milk", "qty": qty})}, nil), http.StatusBadRequest, "lines[1].qty")
		problemOf(t, apiDo(t, "GET", a, "/v1/documents/"+id, viewerKey, nil, nil), http.StatusNotFound, "")
	}
	it := item(7)
	it["vat_rate"] = "2.1e1"
	problemOf(t, apiDo(t, "PUT", a, "/v1/items/i7", adminKey, it, nil), http.StatusBadRequest, "vat_rate")
	// The plain forms still pass.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/ok", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "flour", "qty": "0.5"}, map[string]any{"item": "milk", "qty": "2"})}, nil))
}

// TestReviewExciseRange: one request covers at most 400 business dates,
// from and to included; the cursor's number is not negative.
func TestReviewExciseRange(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from=2026-01-01&to=2027-02-04", viewerKey, nil, nil)) // 400 dates
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from=2026-01-01&to=2027-02-05", viewerKey, nil, nil), http.StatusBadRequest, "to")
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from=2026-01-01&to=2026-01-05&after=2026-01-02/-5", viewerKey, nil, nil), http.StatusBadRequest, "after")
}

// TestReviewImportMalformedIs400: an unknown or mistyped field inside a
// bulk import's record is a malformed body (400), like on a single PUT.
func TestReviewImportMalformedIs400(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	it := item(1)
	it["id"], it["colour"] = "x1", "red"
	problemOf(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": []any{item(2), it}}, nil), http.StatusBadRequest, "items[1].colour")
	problemOf(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": []any{map[string]any{"list": "retail", "item": "milk", "price": 1}}}, nil), http.StatusBadRequest, "prices[0].price")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/p1", adminKey, map[string]any{"type": "stocktake", "store": "s1", "position": map[string]any{"colour": 1},
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})}, nil), http.StatusBadRequest, "position.colour")
}

// TestPricesPaged: a price list is read in pages of limit, in ID order,
// each page's next the after of the following one and empty on the last,
// so nothing is cut off unsaid; an after outside the list is a 400.
func TestPricesPaged(t *testing.T) {
	c := startClusterWith(t, 1, nil)
	a := c.nodes[0].APIAddr()
	seed(t, a, 7)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/promo", adminKey, map[string]any{"name": "Promo", "currency": "EUR"}, nil))
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var prices []any
	for i := range 7 {
		prices = append(prices, map[string]any{"list": "retail", "item": fmt.Sprintf("i%d", i), "from": from, "price": fmt.Sprintf("%d.50", i+1)})
	}
	prices = append(prices, map[string]any{"list": "promo", "item": "i0", "from": from, "price": "0.99"})
	mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": prices}, nil))

	seen := map[string]bool{}
	after, pages := "", 0
	for {
		path := "/v1/prices?list=retail&limit=3"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		page := mustOK(t, apiDo(t, "GET", a, path, viewerKey, nil, nil)).json(t)
		pages++
		ps := page["prices"].([]any)
		if len(ps) > 3 {
			t.Fatalf("page %d holds %d prices, limit 3", pages, len(ps))
		}
		for _, p := range ps {
			m := p.(map[string]any)
			if m["list"] != "retail" {
				t.Fatalf("page %d holds a price of list %v", pages, m["list"])
			}
			if seen[m["item"].(string)] {
				t.Fatalf("price of %v on two pages", m["item"])
			}
			seen[m["item"].(string)] = true
		}
		after = page["next"].(string)
		if after == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("%d prices in %d pages, want 7 in 3", len(seen), pages)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/prices?list=retail&after=promo/i0", viewerKey, nil, nil), http.StatusBadRequest, "after")
	problemOf(t, apiDo(t, "GET", a, "/v1/prices?list=retail&limit=0", viewerKey, nil, nil), http.StatusBadRequest, "limit")
}

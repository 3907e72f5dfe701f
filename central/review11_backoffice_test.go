package central_test

import (
	"net/http"
	"sort"
	"testing"
)

// repricingDrafts returns the lines (item → price) of every repricing
// draft, by price list.
func repricingDrafts(t *testing.T, a string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	ds := mustOK(t, apiDo(t, "GET", a, "/v1/documents?type=repricing&status=draft", viewerKey, nil, nil)).json(t)["documents"].([]any)
	for _, d := range ds {
		doc := mustOK(t, apiDo(t, "GET", a, "/v1/documents/"+d.(map[string]any)["id"].(string), viewerKey, nil, nil)).json(t)
		list := doc["price_list"].(string)
		if out[list] == nil {
			out[list] = map[string]string{}
		}
		for _, l := range doc["lines"].([]any) {
			m := l.(map[string]any)
			out[list][m["item"].(string)] = m["price"].(string)
		}
	}
	return out
}

// TestReview11RulesOfOneGroupForTwoLists: a group with a reprice rule for
// each of two price lists a shop prices from is repriced in both, each
// list by its own rule, after an invoice and on demand.
func TestReview11RulesOfOneGroupForTwoLists(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/wholesale", adminKey, map[string]any{"name": "Wholesale", "currency": "EUR"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail", "wholesale"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30", "ending": "0.99"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r2", adminKey, map[string]any{"group": "food", "price_list": "wholesale", "markup": "10"}, nil))
	// 10 milk at 2.20 incl. 10% VAT: cost 2.00. Retail: 2.00 × 1.30 × 1.10
	// = 2.86 → 2.99; wholesale: 2.00 × 1.10 × 1.10 = 2.42.
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"})})
	got := repricingDrafts(t, a)
	if got["retail"]["milk"] != "2.99" || got["wholesale"]["milk"] != "2.42" || len(got) != 2 {
		t.Fatalf("repricing drafts after the invoice = %v, want retail milk 2.99 and wholesale milk 2.42", got)
	}
	d := mustOK(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rpw", "store": "s1", "price_list": "wholesale"}, nil)).json(t)
	if ls := d["lines"].([]any); len(ls) != 1 || ls[0].(map[string]any)["price"] != "2.42" {
		t.Fatalf("on-demand wholesale repricing lines = %v, want milk at 2.42", d["lines"])
	}
}

// TestReview11AutoRepricingOnlyOfTheShopsLists: an invoice at shop 1 does
// not draft a repricing of a price list only shop 2 prices from (nor of
// one in another currency), and one is not drafted on demand: shop 1's
// purchase costs would set shop 2's prices.
func TestReview11AutoRepricingOnlyOfTheShopsLists(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/wholesale", adminKey, map[string]any{"name": "Wholesale", "currency": "EUR"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/usd", adminKey, map[string]any{"name": "Dollars", "currency": "USD"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail", "usd"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s2", adminKey, map[string]any{
		"name": "Shop 2", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"wholesale"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "wholesale", "markup": "10"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/groups/dairy", adminKey, map[string]any{"name": "Dairy", "parent": "food"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r2", adminKey, map[string]any{"group": "dairy", "price_list": "usd", "markup": "10"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/cheese", adminKey, map[string]any{"sku": "CHEESE", "name": "Cheese", "group": "dairy", "dept": "main", "unit": "pcs", "vat_rate": "10"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"}, map[string]any{"item": "cheese", "qty": "1", "purchase_price": "5.50"})})
	if got := repricingDrafts(t, a); len(got) != 0 {
		lists := []string{}
		for l := range got {
			lists = append(lists, l)
		}
		sort.Strings(lists)
		t.Fatalf("an invoice at s1 drafted repricings of %v: %v", lists, got)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp1", "store": "s1", "price_list": "wholesale"}, nil), http.StatusUnprocessableEntity, "price_list")
	problemOf(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp2", "store": "s1", "price_list": "usd"}, nil), http.StatusUnprocessableEntity, "price_list")
}

// TestReview11ReceiptLandsInTheTransfersDept: a transfer to another shop
// naming the department its goods go to is received there when the
// receipt names none, as it was checked at the transfer (not in the
// item's own department, which the receiving shop may lack or not sell
// it from).
func TestReview11ReceiptLandsInTheTransfersDept(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for _, s := range []string{"s1", "s2"} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/stores/"+s, adminKey, map[string]any{
			"name": "Shop", "time_zone": "Europe/Riga", "currency": "EUR",
			"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "bakery", "name": "Bakery"}}, "price_lists": []string{"retail"},
		}, nil))
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/cake", adminKey, map[string]any{"sku": "CAKE", "name": "Cake", "group": "food", "dept": "bakery", "unit": "pcs", "vat_rate": "10"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "cake", "qty": "5", "purchase_price": "1.10"})})
	createAndPost(t, a, "tr1", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2", "to_dept": "main",
		"lines": lines(map[string]any{"item": "cake", "qty": "2"})})
	rc := createAndPost(t, a, "rc1", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1",
		"lines": lines(map[string]any{"item": "cake", "qty": "2"})})
	if q := rc.posting("stock/s2/main/cake", "item:cake"); !q.Equal(dec("2")) {
		t.Fatalf("receipt postings %+v: 2 cakes should land in s2's main, as the transfer said", rc.Postings)
	}
}

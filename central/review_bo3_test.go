package central_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// priceOf returns the price of item in list from exactly from, "" if the
// list has none from then.
func priceOf(t *testing.T, a, list, item string, from time.Time) string {
	t.Helper()
	ps := mustOK(t, apiDo(t, "GET", a, "/v1/prices?list="+list+"&item="+item, viewerKey, nil, nil)).json(t)["prices"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		at, err := time.Parse(time.RFC3339Nano, m["from"].(string))
		if err != nil {
			t.Fatalf("price %v: %v", m, err)
		}
		if at.Equal(from) {
			return m["price"].(string)
		}
	}
	return ""
}

// TestReviewBO3CancelRepricingRestoresPrice: cancelling a repricing puts
// back the price it replaced at the same (list, item, start), instead of
// leaving the item without a price from then; a later repricing that set
// the same price stands when the earlier one is cancelled, and cancelling
// both, in either order, leaves the price they found.
func TestReviewBO3CancelRepricingRestoresPrice(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": []any{
		map[string]any{"list": "retail", "item": "milk", "from": from, "price": "1.29"},
		map[string]any{"list": "retail", "item": "bread", "from": from, "price": "0.89"},
	}}, nil))
	reprice := func(id, item, price string) {
		t.Helper()
		createAndPost(t, a, id, map[string]any{"type": "repricing", "store": "s1", "price_list": "retail", "from": from,
			"lines": lines(map[string]any{"item": item, "price": price})})
	}
	want := func(what, item, price string) {
		t.Helper()
		if got := priceOf(t, a, "retail", item, from); got != price {
			t.Fatalf("%s: price of %s = %q, want %q", what, item, got, price)
		}
	}

	reprice("rp1", "milk", "1.49")
	want("after rp1", "milk", "1.49")
	cancelDoc(t, a, "rp1")
	want("after cancelling rp1", "milk", "1.29")

	// Two repricings set the same price; the first is cancelled first.
	reprice("rp2", "milk", "1.59")
	reprice("rp3", "milk", "1.59")
	cancelDoc(t, a, "rp2")
	want("after cancelling rp2 under rp3", "milk", "1.59")
	cancelDoc(t, a, "rp3")
	want("after cancelling rp2 and rp3", "milk", "1.29")

	// The other order, on another item.
	reprice("rp4", "bread", "0.99")
	reprice("rp5", "bread", "1.09")
	cancelDoc(t, a, "rp5")
	want("after cancelling rp5", "bread", "0.99")
	cancelDoc(t, a, "rp4")
	want("after cancelling rp5 and rp4", "bread", "0.89")

	// A price written by hand after a repricing stands when it is cancelled.
	reprice("rp6", "milk", "1.39")
	mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": []any{
		map[string]any{"list": "retail", "item": "milk", "from": from, "price": "1.19"}}}, nil))
	cancelDoc(t, a, "rp6")
	want("after cancelling rp6 under a price set by hand", "milk", "1.19")

	// A repricing that found no price withdraws its own.
	reprice("rp7", "flour", "0.79")
	cancelDoc(t, a, "rp7")
	want("after cancelling rp7", "flour", "")
}

// TestReviewBO3RepriceRetryAfterRulesChanged: an automatic repricing
// retried with a new idempotency key is answered as a duplicate even when
// the rules changed in between and would now price nothing.
func TestReviewBO3RepriceRetryAfterRulesChanged(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/wholesale", adminKey, map[string]any{"name": "Wholesale", "currency": "EUR"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30", "ending": "0.99"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"})})
	req := map[string]any{"id": "rp1", "store": "s1", "price_list": "retail"}
	if d := decodeDoc(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, req, nil)); d.Status != "draft" || d.Duplicate {
		t.Fatalf("first automatic repricing: %+v", d)
	}
	// The rule now prices another list: retail has no rule left.
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "wholesale", "markup": "30", "ending": "0.99"}, nil))
	if d := decodeDoc(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, req, nil)); d.ID != "rp1" || !d.Duplicate {
		t.Fatalf("retried automatic repricing: %+v, want rp1 as a duplicate", d)
	}
	// Another document's ID is still a conflict, and a new one still
	// needs a rule.
	problemOf(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "inv1", "store": "s1", "price_list": "retail"}, nil), http.StatusConflict, "id")
	problemOf(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp2", "store": "s1", "price_list": "retail"}, nil), http.StatusUnprocessableEntity, "price_list")
}

// TestReviewBO3RepriceRulesPaged: the reprice rules are read in pages of
// limit, in ID order, each page's next the after of the following one and
// empty on the last, so nothing is cut off unsaid.
func TestReviewBO3RepriceRulesPaged(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	for _, total := range []int{7, 9} { // 9: the last page is full
		for i := range total {
			mustOK(t, apiDo(t, "PUT", a, fmt.Sprintf("/v1/reprice_rules/r%d", i), adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30"}, nil))
		}
		seen := map[string]bool{}
		after, pages, prev := "", 0, ""
		for {
			path := "/v1/reprice_rules?limit=3"
			if after != "" {
				path += "&after=" + url.QueryEscape(after)
			}
			page := mustOK(t, apiDo(t, "GET", a, path, viewerKey, nil, nil)).json(t)
			pages++
			rs := page["rules"].([]any)
			if len(rs) > 3 {
				t.Fatalf("page %d holds %d rules, limit 3", pages, len(rs))
			}
			for _, r := range rs {
				id := r.(map[string]any)["id"].(string)
				if seen[id] || id <= prev {
					t.Fatalf("rule %s out of order or on two pages (after %s)", id, prev)
				}
				seen[id], prev = true, id
			}
			after = page["next"].(string)
			if after == "" {
				break
			}
			if pages > total {
				t.Fatal("paging does not end")
			}
		}
		if want := (total + 2) / 3; len(seen) != total || pages != want {
			t.Fatalf("%d rules in %d pages, want %d in %d", len(seen), pages, total, want)
		}
	}
	if rs := mustOK(t, apiDo(t, "GET", a, "/v1/reprice_rules", viewerKey, nil, nil)).json(t)["rules"].([]any); len(rs) != 9 {
		t.Fatalf("one page of the default limit holds %d rules, want 9", len(rs))
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/reprice_rules?limit=0", viewerKey, nil, nil), http.StatusBadRequest, "limit")
	problemOf(t, apiDo(t, "GET", a, "/v1/reprice_rules?limit=5001", viewerKey, nil, nil), http.StatusBadRequest, "limit")
}

// TestReviewBO3BatchCancelOrder: an invoice brings batches, a write-off
// takes them; cancelling both leaves no units in the batches whichever is
// cancelled first (cancelling the invoice first could not take back what
// the write-off had taken, and the write-off's cancel then put it back).
func TestReviewBO3BatchCancelOrder(t *testing.T) {
	a, reg := batchNode(t) // inv1 at s1: milk B1=4 B2=3 B3=5
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled", "lines": lines(
		map[string]any{"item": "milk", "qty": "4"})})
	wantBatches(t, a, reg, "s1", "B2=3 B3=5", 1)
	cancelDoc(t, a, "inv1")
	wantBatches(t, a, reg, "s1", "", 0)
	wantStock(t, a, "s1", "milk", "-4", "")
	cancelDoc(t, a, "wo1")
	wantStock(t, a, "s1", "milk", "0", "")
	wantBatches(t, a, reg, "s1", "", 0)

	// The same documents again at s2, cancelled in the other order.
	riga, _ := time.LoadLocation("Europe/Riga")
	b1 := map[string]any{"item": "milk", "qty": "4", "purchase_price": "1.10", "batch": "B1", "expiry": string(storeline.DateOf(time.Now().AddDate(0, 0, 3), riga)), "certificate": "C-1"}
	invoice := func(id string) {
		t.Helper()
		createAndPost(t, a, id, map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1", "lines": lines(b1)})
	}
	writeOff := func(id string) {
		t.Helper()
		createAndPost(t, a, id, map[string]any{"type": "write_off", "store": "s2", "reason": "spoiled", "lines": lines(
			map[string]any{"item": "milk", "qty": "4"})})
	}
	invoice("inv2")
	writeOff("wo2")
	cancelDoc(t, a, "wo2")
	wantBatches(t, a, reg, "s2", "B1=4", -1)
	cancelDoc(t, a, "inv2")
	wantStock(t, a, "s2", "milk", "0", "")
	wantBatches(t, a, reg, "s2", "", -1)

	// What a cancelled invoice could not take back from B1 (the
	// write-off had taken it) is not forgotten: another invoice of B1
	// makes up for it first, as it does for the stock's units.
	invoice("inv3")
	writeOff("wo3")
	cancelDoc(t, a, "inv3")
	invoice("inv4")
	wantStock(t, a, "s2", "milk", "0", "")
	wantBatches(t, a, reg, "s2", "", -1)
	cancelDoc(t, a, "wo3")
	wantStock(t, a, "s2", "milk", "4", "")
	wantBatches(t, a, reg, "s2", "B1=4", -1)
}

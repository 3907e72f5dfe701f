package central_test

import (
	"testing"
	"time"
)

// TestReviewBO5HandPriceEqualToRepricing: a price set by hand after a
// repricing stands when the repricing is cancelled, also when the hand
// set the value the repricing had set (a price list imported again, a
// price changed by hand and changed back): the repricing's marker names
// the value, not the write, so its cancel took the hand's price for its
// own and put back what the repricing had found.
func TestReviewBO5HandPriceEqualToRepricing(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	hand := func(item, price string) {
		t.Helper()
		mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": []any{
			map[string]any{"list": "retail", "item": item, "from": from, "price": price}}}, nil))
	}
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
	hand("milk", "1.29")
	reprice("rp1", "milk", "1.49")
	hand("milk", "1.19")
	hand("milk", "1.49") // changed back by hand
	cancelDoc(t, a, "rp1")
	want("after cancelling rp1 under 1.49 set by hand", "milk", "1.49")

	// A repricing that made the price; the hand sets it again.
	reprice("rp2", "flour", "0.79")
	hand("flour", "0.79")
	cancelDoc(t, a, "rp2")
	want("after cancelling rp2 under 0.79 set by hand", "flour", "0.79")
}

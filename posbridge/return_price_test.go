package posbridge_test

import (
	"testing"
	"time"
)

// TestReturnNotAboveWhatWasPaid: a return naming its receipt may not give
// back more money for an item than the receipt took for it, over all its
// returns (a till pricing a return above the sale refunded the
// difference); within it, partial returns at the sale's price land.
func TestReturnNotAboveWhatWasPaid(t *testing.T) {
	e := newEnv(t)
	bob := e.login(tokenT1, "bob", "9999")
	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid,
		[]map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19", "discount", "0.30")},
		[]map[string]any{{"method": "cash", "amount": "3.27"}})}), 201) // 3.57 − 0.30
	ret := func(qty, price, refund string) map[string]any {
		return map[string]any{"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339),
			"original": rid, "reason": "r", "lines": []map[string]any{line("sku", "MILK", "qty", qty, "price", price)},
			"refunds": []map[string]any{{"method": "cash", "amount": refund}}}
	}
	pos := e.led.Position()
	e.problem(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret("1", "5.00", "5.00")}), 422, "lines[0].price")
	if got := e.led.Position(); got != pos {
		t.Fatalf("a refused return moved the journal from %v to %v", pos, got)
	}
	e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret("2", "1.19", "2.38")}), 201)
	// 0.89 of the 3.27 is left for the last unit: 1.19 is too much.
	e.problem(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret("1", "1.19", "1.19")}), 422, "lines[0].price")
	e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret("1", "0.89", "0.89")}), 201)
}

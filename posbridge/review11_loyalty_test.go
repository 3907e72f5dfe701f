package posbridge_test

import (
	"testing"
)

// wineReturn is a return of n wines of receipt orig at price, refunded in
// cash.
func wineReturn(orig, n, price, cash string) map[string]any {
	return map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-11-28T10:30:00Z",
		"original": orig, "reason": "changed their mind",
		"lines":   []map[string]any{line("sku", "WINE", "qty", n, "price", price)},
		"refunds": []map[string]any{line("method", "cash", "amount", cash)},
	}
}

// TestReview11ReturnAllAtLowerPriceReversesAllEarned: 10 wines (71.90)
// earn 719 points. All 10 come back at 7.00 each (70.00, the shop
// refunding less than was paid): every unit is back, so the return takes
// back all 719 points, not floor(719 × 70.00 / 71.90) = 700, which left
// the customer 19 points for goods returned.
func TestReview11ReturnAllAtLowerPriceReversesAllEarned(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	rc := earnSale("10")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201)
	if r := e.rights(); r != 719 {
		t.Fatalf("rights after the sale: %d, want 719", r)
	}
	m := e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
		body: wineReturn(rc["id"].(string), "10", "7.00", "70.00")}), 201)
	p, _ := m["points"].(map[string]any)
	if p == nil || p["reversed"] != float64(719) || p["debt"] != float64(0) {
		t.Fatalf("return of all 10 wines took back %v, want 719 reversed", m["points"])
	}
	if r := e.rights(); r != 0 {
		t.Fatalf("rights after returning everything: %d, want 0", r)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReview11ReturnTakesBackWhatTheLinesEarned: 10 wines (71.90, 719
// points) and 4 colas (7.20, excluded: no points) on one receipt of
// 79.10. Returning the colas takes back nothing (it took back
// floor(719 × 7.20 / 79.10) = 65 points the colas never earned); the
// wines then take back all 719 (it took back 654, leaving 65 for goods
// returned).
func TestReview11ReturnTakesBackWhatTheLinesEarned(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	rc := earnSale("10")
	rc["lines"] = append(rc["lines"].([]map[string]any), line("sku", "COLA", "qty", "4", "price", "1.80"))
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201)
	if m["points_earned"] != float64(719) || e.rights() != 719 {
		t.Fatalf("earned %v, rights %d; want 719", m["points_earned"], e.rights())
	}
	orig := rc["id"].(string)
	cola := pointsReturn(orig, "4", line("method", "cash", "amount", "7.20"))
	m = e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: cola}), 201)
	if p, _ := m["points"].(map[string]any); p != nil && (p["reversed"] != float64(0) || p["debt"] != float64(0)) {
		t.Fatalf("returning colas that earned nothing took back %v", p)
	}
	if r := e.rights(); r != 719 {
		t.Fatalf("rights after returning the colas: %d, want 719", r)
	}
	m = e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
		body: wineReturn(orig, "5", "7.19", "35.95")}), 201)
	if p, _ := m["points"].(map[string]any); p == nil || p["reversed"] != float64(359) {
		t.Fatalf("returning 5 of 10 wines took back %v, want 359 (floor(719/2))", m["points"])
	}
	m = e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
		body: wineReturn(orig, "5", "7.19", "35.95")}), 201)
	if p, _ := m["points"].(map[string]any); p == nil || p["reversed"] != float64(360) {
		t.Fatalf("returning the last 5 wines took back %v, want 360", m["points"])
	}
	if r := e.rights(); r != 0 {
		t.Fatalf("rights after returning everything: %d, want 0", r)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

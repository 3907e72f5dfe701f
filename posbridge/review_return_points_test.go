package posbridge_test

import (
	"testing"

	"github.com/storeline/storeline"
)

// A receipt paid partly with points, returned: the part it paid with
// points goes back to the customer as points, and only the rest is
// refunded in money. Points never turn into cash.

// pointsReturn is a return of n colas of receipt orig, refunded as refunds.
func pointsReturn(orig, n string, refunds ...map[string]any) map[string]any {
	if refunds == nil {
		refunds = []map[string]any{}
	}
	return map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-11-28T10:30:00Z",
		"original": orig, "reason": "changed their mind",
		"lines":   []map[string]any{line("sku", "COLA", "qty", n, "price", "1.80")},
		"refunds": refunds,
	}
}

// refundsOf splits a return's answer into its money refunded and the
// points given back (with their worth).
func refundsOf(t *testing.T, m map[string]any) (money string, points int64, worth string) {
	t.Helper()
	mon, wor := dec("0"), dec("0")
	for _, p := range m["refunds"].([]any) {
		p := p.(map[string]any)
		if p["method"] == "points" {
			points += int64(p["points"].(float64))
			wor = wor.Add(dec(p["amount"].(string)))
		} else {
			mon = mon.Add(dec(p["amount"].(string)))
		}
	}
	return mon.StringFixed(2), points, wor.StringFixed(2)
}

func (e *env) balance(acct string, asset storeline.Asset) string {
	e.t.Helper()
	b, err := e.led.Balance(acct, asset)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

// TestReviewReturnPaidWithPointsRefundsPoints: 4 colas (7.20) paid 700
// points (7.00) and 0.20 in money. Returned whole, 7.20 in cash is a 422
// naming refunds and changes nothing; 0.20 in cash is taken and the 700
// points go back to the customer's rights here, out of
// points-redeemed/s1, with 7.00 out of loyalty/s1. A retry answers the
// same.
func TestReviewReturnPaidWithPointsRefundsPoints(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	rc := spendSale("t1", 700)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201)
	if r := e.rights(); r != 19 {
		t.Fatalf("rights after paying 700 of 719: %d", r)
	}
	orig := rc["id"].(string)
	before := e.led.Position()
	r := e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
		body: pointsReturn(orig, "4", line("method", "cash", "amount", "7.20"))})
	if r.status != 422 {
		t.Fatalf("a receipt paid 7.00 in points and 0.20 in money was refunded 7.20 in cash: %d %s", r.status, r.body)
	}
	e.problem(r, 422, "refunds")
	if e.led.Position() != before || e.rights() != 19 {
		t.Fatalf("a refused return moved the journal or rights (%d)", e.rights())
	}
	// A card refund of the whole is no better.
	e.problem(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
		body: pointsReturn(orig, "4", line("method", "card", "amount", "7.20"))}), 422, "refunds")

	body := pointsReturn(orig, "4", line("method", "cash", "amount", "0.20"))
	for _, code := range []int{201, 200} {
		m := e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: body}), code)
		money, pts, worth := refundsOf(t, m)
		if money != "0.20" || pts != 700 || worth != "7.00" || m["total"] != "7.20" {
			t.Fatalf("return (%d) refunded %s in money and %d points worth %s of %v; want 0.20, 700, 7.00 of 7.20", code, money, pts, worth, m["total"])
		}
		if p, _ := m["points"].(map[string]any); p == nil || p["restored"] != float64(700) || p["customer"] != "cust1" {
			t.Fatalf("return (%d) points %v, want 700 restored to cust1", code, m["points"])
		}
	}
	if r := e.rights(); r != 719 {
		t.Fatalf("rights after the return: %d, want 719", r)
	}
	pts, eur := storeline.PointsAsset("club"), storeline.MoneyAsset("EUR")
	if b := e.balance(storeline.RedeemedPointsAccount("s1"), pts); b != "0" {
		t.Errorf("points-redeemed/s1 = %s, want 0", b)
	}
	if b := e.balance(storeline.LoyaltyAccount("s1"), eur); !dec(b).IsZero() {
		t.Errorf("loyalty/s1 = %s, want 0", b)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReviewReturnPaidWithPointsInParts: returned in parts, each return
// gives back floor(points paid × money returned / total) (as differences
// of the cumulative figure), its points' worth rounded so the money
// refunded never runs ahead of the receipt's money; the return that
// completes the receipt gives back the rest exactly. 333 points (3.33)
// and 3.87 in money: 1 cola gives back 83 points worth 0.84 and 0.96 in
// money, the next 83 worth 0.83 and 0.97, the last two 167 worth 1.66
// and 1.94: 333 points, 3.33 and 3.87 in all.
func TestReviewReturnPaidWithPointsInParts(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	rc := spendSale("t1", 333)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201)
	orig := rc["id"].(string)
	for i, step := range []struct {
		qty, money string
		points     int64
		worth      string
	}{{"1", "0.96", 83, "0.84"}, {"1", "0.97", 83, "0.83"}, {"2", "1.94", 167, "1.66"}} {
		// A cent over is refused, naming refunds, and says what may be refunded.
		over := dec(step.money).Add(dec("0.01")).StringFixed(2)
		r := e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
			body: pointsReturn(orig, step.qty, line("method", "cash", "amount", over))})
		e.problem(r, 422, "refunds")
		m := e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob,
			body: pointsReturn(orig, step.qty, line("method", "cash", "amount", step.money))}), 201)
		money, pts, worth := refundsOf(t, m)
		if money != step.money || pts != step.points || worth != step.worth {
			t.Fatalf("return %d: %s in money and %d points worth %s; want %s, %d, %s", i, money, pts, worth, step.money, step.points, step.worth)
		}
	}
	if r := e.rights(); r != 719 {
		t.Fatalf("rights after returning it all: %d, want 719", r)
	}
	if b := e.balance(storeline.RedeemedPointsAccount("s1"), storeline.PointsAsset("club")); b != "0" {
		t.Errorf("points-redeemed/s1 = %s, want 0", b)
	}
	if b := e.balance(storeline.LoyaltyAccount("s1"), storeline.MoneyAsset("EUR")); !dec(b).IsZero() {
		t.Errorf("loyalty/s1 = %s, want 0", b)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReviewReturnPaidAllWithPoints: a receipt paid wholly with points is
// returned with no money refund at all; points the receipt earned are
// taken back from the points it gives back rather than left as a debt.
func TestReviewReturnPaidAllWithPoints(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201) // 719
	// One wine (7.19) paid with 719 points: it earns 71.
	b := sale(newID(), []map[string]any{line("sku", "WINE", "qty", "1", "price", "7.19")},
		[]map[string]any{{"method": "points", "points": 719}})
	b["card"] = "CARD0001"
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)
	if m["points_earned"] != float64(71) || e.rights() != 71 {
		t.Fatalf("earned %v, rights %d; want 71, 71", m["points_earned"], e.rights())
	}
	// The 71 are spent elsewhere: the shop holds no rights.
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", 71)}), 201)
	if e.rights() != 0 {
		t.Fatalf("rights %d, want 0", e.rights())
	}
	e.problem(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-11-28T10:30:00Z",
		"original": b["id"], "reason": "x", "lines": []map[string]any{line("sku", "WINE", "qty", "1", "price", "7.19")},
		"refunds": []map[string]any{line("method", "cash", "amount", "0.01")},
	}}), 422, "refunds")
	m = e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-11-28T10:30:00Z",
		"original": b["id"], "reason": "x", "lines": []map[string]any{line("sku", "WINE", "qty", "1", "price", "7.19")},
		"refunds": []map[string]any{},
	}}), 201)
	money, pts, worth := refundsOf(t, m)
	p, _ := m["points"].(map[string]any)
	if money != "0.00" || pts != 719 || worth != "7.19" || p["reversed"] != float64(71) || p["debt"] != float64(0) || p["restored"] != float64(719) {
		t.Fatalf("return: %s money, %d points worth %s, points %v; want 0.00, 719 worth 7.19, 71 reversed, no debt", money, pts, worth, p)
	}
	if e.rights() != 648 {
		t.Fatalf("rights %d, want 719 − 71 = 648", e.rights())
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

package posbridge_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
)

// club earns 10 points a euro on everything but cola; a point is worth
// one cent; points may pay a whole receipt.
func (e *env) addClub() {
	e.t.Helper()
	club := &storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("10"),
		ExcludeItems: []storeline.ItemID{"cola"}, PointValue: dec("0.01"), MaxShare: dec("100"), DailyOfflineCap: 0}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{club}); err != nil {
		e.t.Fatalf("PutMaster: %v", err)
	}
}

// rights is the shop's rights in cust1's club points.
func (e *env) rights() int64 {
	e.t.Helper()
	b, err := e.led.Balance(storeline.PointsAccount("club", "cust1", "s1"), storeline.PointsAsset("club"))
	if err != nil {
		e.t.Fatal(err)
	}
	return b.IntPart()
}

// earnSale buys n wines at the card's VIP price (7.99 − 10%).
func earnSale(n string) map[string]any {
	b := sale(newID(), []map[string]any{line("sku", "WINE", "qty", n, "price", "7.19")}, []map[string]any{line("method", "cash", "amount", "10000.00")})
	b["card"] = "CARD0001"
	return b
}

// spendSale buys four colas (7.20, earning nothing) paying pts points and
// the rest in cash.
func spendSale(term string, pts int64) map[string]any {
	b := sale(newID(), []map[string]any{line("sku", "COLA", "qty", "4", "price", "1.80")},
		[]map[string]any{{"method": "points", "points": pts}, line("method", "cash", "amount", "7.20")})
	b["card"], b["terminal"] = "CARD0001", term
	return b
}

func TestPointsEarnedAndPaid(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	// 10 × 7.19 = 71.90 at 10 a euro.
	if m["points_earned"] != float64(719) || m["programme"] != "club" || e.rights() != 719 {
		t.Fatalf("earned %v in %v, rights %d; want 719", m["points_earned"], m["programme"], e.rights())
	}
	// A sale without a card earns nothing.
	b := earnSale("1")
	delete(b, "card")
	if m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201); m["points_earned"] != float64(0) {
		t.Fatalf("anonymous sale earned %v", m["points_earned"])
	}
	// 700 points pay 7.00 of 7.20; the till's wrong amount for them is
	// refused; points without a card are refused.
	bad := spendSale("t1", 700)
	bad["payments"].([]map[string]any)[0]["amount"] = "6.00"
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: bad}), 422, "payments[0].amount")
	bad = spendSale("t1", 700)
	delete(bad, "card")
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: bad}), 422, "payments[0].method")
	body := spendSale("t1", 700)
	m = e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 201)
	p := m["payments"].([]any)[0].(map[string]any)
	if p["amount"] != "7.00" || p["points"] != float64(700) || m["change"] != "7.00" || e.rights() != 19 {
		t.Fatalf("points payment %v, change %v, rights %d; want 7.00, 7.00, 19", p, m["change"], e.rights())
	}
	// A retry is answered, not checked again against rights now short.
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 200)
	if e.rights() != 19 {
		t.Fatalf("retry moved rights to %d", e.rights())
	}
	// A blocked card neither earns nor pays.
	blocked := &storeline.CardRecord{ID: "card1", Code: "CARD0001", Kind: storeline.LoyaltyCard, Customer: "cust1", Blocked: true}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{blocked}); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", 1)}), 422, "payments[0].method")
	if m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("1")}), 201); m["points_earned"] != float64(0) {
		t.Fatalf("a blocked card earned %v", m["points_earned"])
	}
	blocked.Blocked = false
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{blocked}); err != nil {
		t.Fatal(err)
	}
	// 20 points are one more than the shop holds: refused, nothing moves.
	before := e.led.Position()
	r := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", 20)})
	e.problem(r, 409, "payments[0].points")
	if !strings.Contains(string(r.body), "19 may be taken now") {
		t.Errorf("refusal does not say what may be taken: %s", r.body)
	}
	if e.led.Position() != before || e.rights() != 19 {
		t.Fatalf("a refused spend moved the journal or rights (%d)", e.rights())
	}
	c := e.must(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: tokenT1}), 200)
	if p, _ := c["points"].(map[string]any); p == nil || p["balance"] != float64(19) || p["rights_here"] != float64(19) || p["programme"] != "club" {
		t.Errorf("card points = %v, want 19 here", c["points"])
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestPointsSpentOnceFromTwoTills: a customer with N points pays N from
// two tills at once: exactly one receipt takes them; N+1 is never taken.
func TestPointsSpentOnceFromTwoTills(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("1")}), 201)
	const n = 71 // 7.19 at 10 a euro
	if e.rights() != n {
		t.Fatalf("rights %d, want %d", e.rights(), n)
	}
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", n+1)}), 409, "payments[0].points")
	for round := 0; round < 5; round++ {
		if round > 0 {
			e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("1")}), 201)
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, tt := range []struct{ term, token string }{{"t1", tokenT1}, {"t2", tokenT2}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = e.do(req{method: "POST", path: "/v1/receipts", token: tt.token, body: spendSale(tt.term, n)}).status
			}()
		}
		wg.Wait()
		if !(codes[0] == 201 && codes[1] == 409 || codes[0] == 409 && codes[1] == 201) {
			t.Fatalf("round %d: answers %v, want one 201 and one 409", round, codes)
		}
		if e.rights() != 0 {
			t.Fatalf("round %d: rights %d after spending all", round, e.rights())
		}
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestPointsPropertyAgainstBoundedCounter: random earns and spends through
// the API (the real Append path) agree with the crdt bounded counter of
// the shop's rights: a spend is taken exactly when the counter allows it,
// rights never go below zero, and every asset is conserved.
func TestPointsPropertyAgainstBoundedCounter(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	rng := rand.New(rand.NewPCG(6, 6))
	var model crdt.BoundedCounter
	for op := 0; op < 60; op++ {
		if rng.IntN(3) == 0 {
			m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("1")}), 201)
			if _, err := model.Increment("s1", int64(m["points_earned"].(float64))); err != nil {
				t.Fatal(err)
			}
		} else {
			pts := 1 + rng.Int64N(100)
			r := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", pts)})
			switch allowed := model.Rights("s1") >= pts; {
			case allowed && r.status == 201:
				if _, err := model.Decrement("s1", pts); err != nil {
					t.Fatal(err)
				}
			case !allowed && r.status == 409:
			default:
				t.Fatalf("op %d: spend %d with rights %d answered %d: %s", op, pts, model.Rights("s1"), r.status, r.body)
			}
		}
		if got := e.rights(); got != model.Rights("s1") || got < 0 {
			t.Fatalf("op %d: ledger rights %d, counter %d", op, got, model.Rights("s1"))
		}
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReturnWithoutReceiptReversesByCard: a return without its original
// receipt but with the customer's card takes back what the returned lines
// earn at the programme, from the rights here as far as they go; the rest
// is a recorded debt, shown on the card, and the return is never refused
// for it. A retry keeps the figures; no card or an unknown one takes
// nothing back; a malformed card is a 422 naming it.
func TestReturnWithoutReceiptReversesByCard(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", 700)}), 201)
	if r := e.rights(); r != 19 {
		t.Fatalf("rights after spending 700 of 719: %d", r)
	}
	ret := func(id, card string) map[string]any {
		b := map[string]any{
			"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-11-28T10:30:00Z", "reason": "no receipt",
			"lines":   []map[string]any{line("sku", "WINE", "qty", "2", "price", "7.19")},
			"refunds": []map[string]any{line("method", "cash", "amount", "14.38")},
		}
		if card != "" {
			b["card"] = card
		}
		return b
	}
	// 2 × 7.19 = 14.38 earns 143: 19 from the rights here, 124 owed.
	id := newID()
	for _, code := range []int{201, 200} {
		m := e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret(id, "CARD0001")}), code)
		p, _ := m["points"].(map[string]any)
		if p["reversed"] != float64(19) || p["debt"] != float64(124) || p["customer"] != "cust1" {
			t.Fatalf("return (%d) took back %v, want 19 reversed and 124 owed", code, m["points"])
		}
	}
	debt, err := e.led.Balance(storeline.PointsDebtAccount("club", "cust1", "s1"), storeline.PointsAsset("club"))
	if err != nil || e.rights() != 0 || debt.IntPart() != -124 {
		t.Fatalf("rights %d, debt account %s (%v); want 0 and -124", e.rights(), debt, err)
	}
	card := e.must(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: tokenT1}), 200)
	if p, _ := card["points"].(map[string]any); p["debt"] != float64(124) || p["balance"] != float64(0) {
		t.Errorf("card after the return: %v, want debt 124, balance 0", card["points"])
	}
	for _, c := range []string{"", "CARD9999"} {
		m := e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret(newID(), c)}), 201)
		if m["points"] != nil {
			t.Errorf("a return with card %q took back %v", c, m["points"])
		}
	}
	e.problem(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret(newID(), "card-1")}), 422, "card")
}

package posbridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// zeroEnv is a node with shift sh1 open at t1 by alice (float 10.00),
// and the sessions of alice and bob.
type zeroEnv struct {
	*env
	alice, bob string
}

func newZeroEnv(t *testing.T) zeroEnv {
	t.Helper()
	e := newEnv(t)
	z := zeroEnv{env: e, alice: e.login(tokenT1, "alice", "1234"), bob: e.login(tokenT1, "bob", "9999")}
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: z.alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339), "float": "10.00"}}), 201)
	return z
}

func (z zeroEnv) receipt(body map[string]any) resp {
	return z.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: z.alice, body: body})
}

func (z zeroEnv) ret(id, orig string, lines, refunds []map[string]any) resp {
	b := map[string]any{"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice",
		"occurred_at": t0.Format(time.RFC3339), "reason": "r", "lines": lines, "refunds": refunds}
	if orig != "" {
		b["original"] = orig
	}
	return z.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: z.bob, body: b})
}

func (z zeroEnv) onHand(sku string) decimal.Decimal {
	z.t.Helper()
	m := z.must(z.do(req{method: "GET", path: "/v1/stock/" + sku, token: tokenT1}), 200)
	d, err := decimal.NewFromString(fmt.Sprint(m["on_hand"]))
	if err != nil {
		z.t.Fatalf("on_hand %v: %v", m["on_hand"], err)
	}
	return d
}

// closeZ closes sh1 and returns its Z report.
func (z zeroEnv) closeZ(counted string) map[string]any {
	z.t.Helper()
	m := z.must(z.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: z.alice,
		body: map[string]any{"id": newID(), "counted_cash": counted}}), 201)
	return m["report"].(map[string]any)
}

func (z zeroEnv) conservation() {
	z.t.Helper()
	if err := z.led.CheckConservation(); err != nil {
		z.t.Fatalf("conservation: %v", err)
	}
}

// A fully discounted sale (a giveaway) has nothing to pay: it is recorded
// with no payments, moves its stock, and counts in the Z report and the
// stats with no sales. A payment of 0, or a card payment past the zero
// total, is still refused, and a receipt with something to pay still
// needs its payments.
func TestReview11ZeroReceiptWithoutPayments(t *testing.T) {
	z := newZeroEnv(t)
	free := []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19", "discount", "2.38")}
	none := []map[string]any{}
	before := z.onHand("MILK")

	z.problem(z.receipt(sale(newID(), free, []map[string]any{{"method": "cash", "amount": "0.00"}})), 422, "payments[0].amount")
	z.problem(z.receipt(sale(newID(), free, []map[string]any{{"method": "card", "amount": "1.00"}})), 422, "payments")
	z.problem(z.receipt(sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19", "discount", "1.18")}, none)), 422, "payments")

	id := newID()
	m := z.must(z.receipt(sale(id, free, none)), 201)
	if m["total"] != "0.00" || m["change"] != "0.00" || len(m["payments"].([]any)) != 0 {
		t.Fatalf("zero receipt = %v", m)
	}
	z.must(z.receipt(sale(id, free, none)), 200) // a retry
	got := z.must(z.do(req{method: "GET", path: "/v1/receipts/" + id, token: tokenT1}), 200)
	if got["total"] != "0.00" || len(got["payments"].([]any)) != 0 {
		t.Fatalf("stored zero receipt = %v", got)
	}
	if after := z.onHand("MILK"); !after.Equal(before.Sub(decimal.NewFromInt(2))) {
		t.Fatalf("milk on hand %s after giving 2 away from %s", after, before)
	}
	// Cash past a zero total is change, as on any receipt.
	m = z.must(z.receipt(sale(newID(), free, []map[string]any{{"method": "cash", "amount": "5.00"}})), 201)
	if m["total"] != "0.00" || m["change"] != "5.00" {
		t.Fatalf("zero receipt paid in cash = %v", m)
	}
	z.conservation()

	z.clock.Add(time.Hour)
	rep := z.closeZ("10.00")
	if rep["receipts"] != 2.0 || rep["sales"] != "0.00" || rep["expected_cash"] != "10.00" || rep["difference"] != "0.00" {
		t.Fatalf("Z report = %v", rep)
	}
	s := z.must(z.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: z.alice}), 200)
	if tot := s["total"].(map[string]any); tot["receipts"] != 2.0 || tot["sales"] != "0.00" || tot["net"] != "0.00" {
		t.Fatalf("stats = %v", s)
	}
	z.conservation()
}

// 3 milk sold for 1.20 after a line discount; two come back at 1.19 and
// 0.01, and the third, with no money left to refund, comes back at 0.00
// with no refunds: its unit is on hand again and nothing is paid out. The
// caps still hold: a fourth unit, or a cent more, is refused.
func TestReview11ZeroReturnOfItsReceipt(t *testing.T) {
	z := newZeroEnv(t)
	before := z.onHand("MILK")
	rid := newID()
	z.must(z.receipt(sale(rid, []map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19", "discount", "2.37")},
		[]map[string]any{{"method": "cash", "amount": "1.20"}})), 201)
	milk := func(price string) []map[string]any {
		return []map[string]any{line("sku", "MILK", "qty", "1", "price", price)}
	}
	cash := func(a string) []map[string]any { return []map[string]any{{"method": "cash", "amount": a}} }
	none := []map[string]any{}

	z.must(z.ret(newID(), rid, milk("1.19"), cash("1.19")), 201)
	z.must(z.ret(newID(), rid, milk("0.01"), cash("0.01")), 201)
	// Nothing is left to refund: a cent more is refused by the money cap,
	// a refund of 0 is refused, and a return of no money without its
	// receipt still needs refunds.
	z.problem(z.ret(newID(), rid, milk("0.01"), cash("0.01")), 422, "lines[0].price")
	z.problem(z.ret(newID(), rid, milk("0.00"), cash("0.00")), 422, "refunds[0].amount")
	z.problem(z.ret(newID(), "", milk("0.00"), none), 422, "refunds")

	id := newID()
	m := z.must(z.ret(id, rid, milk("0.00"), none), 201)
	if m["total"] != "0.00" || len(m["refunds"].([]any)) != 0 {
		t.Fatalf("zero return = %v", m)
	}
	z.must(z.ret(id, rid, milk("0.00"), none), 200) // a retry
	if after := z.onHand("MILK"); !after.Equal(before) {
		t.Fatalf("milk on hand %s after all 3 came back, want %s", after, before)
	}
	z.problem(z.ret(newID(), rid, milk("0.00"), none), 422, "lines[0].qty")
	z.conservation()

	z.clock.Add(time.Hour)
	// 10.00 float + 1.20 sales − 1.20 refunds.
	rep := z.closeZ("10.00")
	if rep["receipts"] != 1.0 || rep["returns"] != 3.0 || rep["sales"] != "1.20" || rep["refunds"] != "1.20" || rep["expected_cash"] != "10.00" {
		t.Fatalf("Z report = %v", rep)
	}
	s := z.must(z.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: z.alice}), 200)
	if tot := s["total"].(map[string]any); tot["returns"] != 3.0 || tot["refunds"] != "1.20" || tot["net"] != "0.00" {
		t.Fatalf("stats = %v", s)
	}
	z.conservation()
}

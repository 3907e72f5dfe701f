package posbridge_test

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net/http/httptest"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// Review 13: what a shop running for months, and a hostile or broken till
// on the shop LAN, would hit. Each test failed on the code before its fix.

// TestReview13ReloginBoundsSessions: a till that logs its seller in again
// and again (a broken till, or one that logs in for every sale) without
// logging out used to add a session each time, kept for session-ttl (12h):
// the node's MaxSessions filled and every till of the shop was refused a
// login (503) until they expired. A seller's new login at a terminal ends
// their earlier session there, so the sessions held stay bounded by
// terminals × sellers.
func TestReview13ReloginBoundsSessions(t *testing.T) {
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.MaxSessions = 4 })
	var last string
	for range 20 {
		last = e.login(tokenT1, "alice", "1234")
	}
	if n := e.srv.SessionsHeld(); n != 1 {
		t.Fatalf("%d sessions held after 20 logins of one seller at one terminal, want 1", n)
	}
	// The latest session works; another till's login is not refused.
	e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: last}), 200)
	bob := e.login(tokenT2, "bob", "9999")
	alice2 := e.login(tokenT2, "alice", "1234")
	if n := e.srv.SessionsHeld(); n != 3 {
		t.Fatalf("%d sessions held, want 3 (alice at t1 and t2, bob at t2)", n)
	}
	// A session at another terminal is not ended by a login elsewhere.
	e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: last}), 200)
	e.must(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT2, session: bob}), 204)
	e.must(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT2, session: alice2}), 204)
}

// TestReview13FloodAtOneTillLocksOnlyIt: a till on the shop LAN sending
// logins of made-up sellers (no PIN is checked for them: cheap) filled the
// PIN-failure records, and while they were full every seller without a
// record, at every till, was refused 429 even with the right PIN: one
// till locked the whole shop out of logins for as long as it kept
// sending. Records are now bounded per terminal too, so a flood locks out
// new sellers at the flooding till only.
func TestReview13FloodAtOneTillLocksOnlyIt(t *testing.T) {
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.MaxSessions = 100 })
	for i := range 300 {
		r := e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: loginBody(fmt.Sprintf("ghost%d", i), "0000")})
		if r.status != 401 && r.status != 429 {
			t.Fatalf("ghost %d: status %d: %s", i, r.status, r.body)
		}
	}
	// Another till's seller logs in.
	e.login(tokenT2, "alice", "1234")
	if n := e.srv.FailureRecords(); n > 64 {
		t.Fatalf("one terminal holds %d failure records, want at most 64", n)
	}
	// The flooding till's lock-out still holds for a seller it targets.
	for range 3 {
		e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: loginBody("bob", "0000")})
	}
	e.problem(e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: loginBody("bob", "9999")}), 429, "")
}

// TestReview13FloodFillsGlobalRecords: with MaxSessions small, two
// terminals' floods fill the records; a third seller is refused (the
// lock-out is not switched off), and the records never exceed the bound.
func TestReview13FloodFillsGlobalRecords(t *testing.T) {
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.MaxSessions = 5 })
	for i := range 20 {
		for _, tok := range []string{tokenT1, tokenT2} {
			e.do(req{method: "POST", path: "/v1/sessions", token: tok, body: loginBody(fmt.Sprintf("ghost%d", i), "0000")})
		}
	}
	if n := e.srv.FailureRecords(); n > 5 {
		t.Fatalf("%d failure records, want at most MaxSessions (5)", n)
	}
}

// TestReview13PINResetEndsSession: a seller's PIN reset (a PIN seen by
// someone else) left every session opened with the old PIN working until
// session-ttl, 12 hours, manager rights included. A session now lasts only
// as long as the PIN it was opened with, as a login with that PIN would
// be refused now.
func TestReview13PINResetEndsSession(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bob := e.login(tokenT1, "bob", "9999")
	stats := func(ses string) resp {
		return e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: ses})
	}
	e.must(stats(alice), 200)
	e.must(stats(bob), 200)
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Manager, PINHash: hashPIN("4242")},
	}); err != nil {
		t.Fatal(err)
	}
	e.problem(stats(bob), 401, "")
	e.problem(stats(bob), 401, "") // ended, not only refused once
	e.must(stats(alice), 200)      // another seller's session is not touched
	// The new PIN opens a session.
	e.must(stats(e.login(tokenT1, "bob", "4242")), 200)
}

// TestReview13RevokedTerminalToken: a terminal whose token was replaced,
// or which was removed, is refused with its old token.
func TestReview13RevokedTerminalToken(t *testing.T) {
	e := newEnv(t)
	e.must(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT1}), 200)
	const fresh = "a-fresh-token-of-till-1"
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Terminal{ID: "t1", Store: "s1", TokenHash: storeline.TokenHash(fresh)},
	}); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT1}), 401, "")
	e.must(e.do(req{method: "GET", path: "/v1/sellers", token: fresh}), 200)
	if _, err := e.led.DeleteMaster(context.Background(), storeline.KindTerminal, "t2"); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT2}), 401, "")
}

// TestReview13ReceiptAfterClose: a receipt of a shift already closed (a
// till that sold offline and sends the sale after its close) is a sale
// that happened and was fiscalized: it is stored (201), as DESIGN.md says
// a sale is never refused. But it is in no Z report (the close's is fixed)
// and nothing counted it: the shop's cash and sales for the shift were
// short with no trace. It is now counted in
// storeline_shift_facts_after_close_total{kind="receipt"}, and a retry of
// the close answers the report as made with after_close: the receipts,
// returns and money stored in the shift since.
func TestReview13ReceiptAfterClose(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: openShiftBody(newID(), "sh1", "100.00")}), 201)
	cash := func(a string) []map[string]any { return []map[string]any{{"method": "cash", "amount": a}} }
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(newID(),
		[]map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, cash("1.19"))}), 201)
	cid := newID()
	closeBody := map[string]any{"id": cid, "counted_cash": "101.19"}
	z := e.must(e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: closeBody}), 201)
	if z["after_close"] != nil {
		t.Fatalf("a fresh close has after_close: %v", z["after_close"])
	}
	if v := metricOf(t, e, "storeline_shift_facts_after_close_total", "receipt"); v != 0 {
		t.Fatalf("facts after close = %v before any", v)
	}
	late := newID()
	lateBody := sale(late, []map[string]any{line("sku", "COLA", "qty", "2", "price", "2.00")}, cash("4.00"))
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: lateBody}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: lateBody}), 200) // a retry is not counted again
	if v := metricOf(t, e, "storeline_shift_facts_after_close_total", "receipt"); v != 1 {
		t.Fatalf("receipts after close = %v, want 1", v)
	}
	// Cash under the closed shift is still refused.
	e.problem(e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format("2006-01-02T15:04:05Z07:00"),
		"direction": "in", "amount": "4.00"}}), 409, "shift")
	z = e.must(e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: closeBody}), 200)
	rep := z["report"].(map[string]any)
	if rep["receipts"] != 1.0 || rep["sales"] != "1.19" {
		t.Fatalf("the retried close's report changed: %v", rep)
	}
	ac, _ := z["after_close"].(map[string]any)
	if ac == nil || ac["receipts"] != 1.0 || ac["returns"] != 0.0 || ac["sales"] != "4.00" || ac["refunds"] != "0.00" || ac["cash"] != "4.00" {
		t.Fatalf("after_close = %v, want 1 receipt of 4.00 cash", z["after_close"])
	}
	// After a restart (a new server over the same ledger, which has seen
	// no close), a late receipt is counted too.
	e2 := *e
	e2.reg = prometheus.NewRegistry()
	cfg := posbridge.DefaultConfig()
	cfg.Store, cfg.Now, cfg.Registerer, cfg.Version = "s1", e.clock.Now, e2.reg, "test"
	wireLedger(&cfg, e.led)
	srv, err := posbridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e2.srv = srv
	e2.http = httptest.NewServer(srv.Handler())
	defer e2.http.Close()
	e2.must(e2.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(newID(),
		[]map[string]any{line("sku", "COLA", "qty", "1", "price", "2.00")}, cash("2.00"))}), 201)
	if v := metricOf(t, &e2, "storeline_shift_facts_after_close_total", "receipt"); v != 1 {
		t.Fatalf("receipts after close counted by a restarted server = %v, want 1", v)
	}
}

// metricOf reads a counter of a labelled vector by its only label value.
func metricOf(t *testing.T, e *env, name, label string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// TestReview13CloseCountingNothingRetried: a close that counted an empty
// drawer (counted_cash 0.00) answers its retry with the same report, 200,
// and shows the count: the count was dropped when stored (msgpack's
// omitempty took 0.00 for empty), so the retry read "counted none" and
// got 409. Found by TestTillHistoriesMatchModel.
func TestReview13CloseCountingNothingRetried(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: openShiftBody(newID(), "sh1", "0.00")}), 201)
	body := map[string]any{"id": newID(), "counted_cash": "0.00"}
	first := e.must(e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: body}), 201)
	again := e.must(e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: body}), 200)
	if first["report"].(map[string]any)["counted_cash"] != "0.00" || again["report"].(map[string]any)["counted_cash"] != "0.00" {
		t.Fatalf("counted_cash: first %v, retry %v, want 0.00 in both", first["report"], again["report"])
	}
}

package posbridge_test

import (
	"strings"
	"testing"
	"time"
)

// TestReview21NodeClockOutsideEventYears: an event the node authors with
// its own clock (a shift's close) is refused while that clock reads a year
// head office refuses (CheckFromShop): kept, it would stop the shop's push
// for good. The till is told why, and nothing is written.
func TestReview21NodeClockOutsideEventYears(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	at := t0.Format(time.RFC3339)
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "float": "100.00"}}), 201)
	before := e.led.Position()

	e.clock.Add(-40 * 365 * 24 * time.Hour) // the node's clock falls back to the 1980s
	alice = e.login(tokenT1, "alice", "1234")
	close := func() resp {
		return e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: map[string]any{"id": "11111111-1111-4111-8111-111111111111"}})
	}
	r := close()
	e.problem(r, 503, "")
	if !strings.Contains(string(r.body), "clock") {
		t.Fatalf("detail %s: want it to name the node's clock", r.body)
	}
	if after := e.led.Position(); after != before {
		t.Fatalf("journal moved from %v to %v: the refused close was written", before, after)
	}

	e.clock.Add(40 * 365 * 24 * time.Hour) // set right: the same close now goes through
	e.clock.Add(8 * time.Hour)
	alice = e.login(tokenT1, "alice", "1234")
	e.must(close(), 201)
}

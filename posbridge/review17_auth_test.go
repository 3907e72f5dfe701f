package posbridge_test

import (
	"strings"
	"testing"
	"time"
)

// Review 17 (auth): a fact's retry is answered from the stored fact
// whoever's session it carries, rights being checked for a new fact only.
// A retry carrying a session that gives no rights at all (ended, or
// never issued) is answered for the calling terminal's own facts; another
// terminal's fact under the same id must be a 409 that tells nothing of
// that fact but that it is another terminal's.

// forged is an X-Session no login issued: what a till whose session has
// ended sends, or a caller holding the terminal token but no PIN.
const forged = "not-a-session"

// TestReview17AuthDocumentRetryOtherTerminal: t1 stores a draft; t2, with
// a forged session, posts its id naming itself with another type or
// number. The draft's type and number were compared before its terminal,
// so the 409's detail ("stored with another type") let t2 learn, one
// guess at a time, the type and number of t1's draft (an incoming
// invoice's supplier number) without a seller's session. The terminal is
// now compared first: every such probe reads "another terminal".
func TestReview17AuthDocumentRetryOtherTerminal(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := docBody("incoming_invoice", map[string]any{"sku": "MILK", "qty": "2"})
	body["supplier"] = "sup1"
	e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: body}), 201)

	for _, kv := range [][2]string{{"type", "write_off"}, {"number", "INV-8"}, {"type", "incoming_invoice"}} {
		probe := map[string]any{}
		for k, v := range body {
			probe[k] = v
		}
		probe["terminal"] = "t2"
		probe[kv[0]] = kv[1]
		if kv[1] == "write_off" {
			delete(probe, "supplier")
		}
		r := e.do(req{method: "POST", path: "/v1/documents", token: tokenT2, session: forged, body: probe})
		e.problem(r, 409, "id")
		if d, _ := r.json(t)["detail"].(string); !strings.Contains(d, "another terminal") {
			t.Fatalf("t2 probing t1's draft with %s=%s: detail %q, want it to name the terminal only", kv[0], kv[1], d)
		}
	}
}

// TestReview17AuthCloseRetryOtherTerminal: t1 closes its shift sh1 under
// an id; t2, with a forged session, posts a close of its own shift under
// that id. The 409's detail named t1's shift and terminal ("id … closed
// shift sh1 at t1"): a fact of another terminal told to a caller without
// a seller's session. It now says only that the id is another terminal's
// close; the same terminal's other shift is still named (its own fact).
func TestReview17AuthCloseRetryOtherTerminal(t *testing.T) {
	e := newEnv(t)
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: bob, body: openShiftBody(newID(), "sh-secret", "10.00")}), 201)
	id := newID()
	e.must(e.do(req{method: "POST", path: "/v1/shifts/sh-secret/close", token: tokenT1, session: bob, body: map[string]any{"id": id, "counted_cash": "10.00"}}), 201)

	for _, shift := range []string{"sh-secret", "sh2"} {
		r := e.do(req{method: "POST", path: "/v1/shifts/" + shift + "/close", token: tokenT2, session: forged, body: map[string]any{"id": id, "counted_cash": "10.00"}})
		e.problem(r, 409, "id")
		d, _ := r.json(t)["detail"].(string)
		if strings.Contains(d, "sh-secret") || strings.Contains(d, "t1") {
			t.Fatalf("t2 retrying t1's close as shift %s: detail %q names t1's shift or terminal", shift, d)
		}
	}
	// At t1 itself, the retry is answered (its own fact), and a close of
	// another shift under the id names the shift it closed.
	e.must(e.do(req{method: "POST", path: "/v1/shifts/sh-secret/close", token: tokenT1, session: forged, body: map[string]any{"id": id, "counted_cash": "10.00"}}), 200)
	e.problem(e.do(req{method: "POST", path: "/v1/shifts/sh2/close", token: tokenT1, session: forged, body: map[string]any{"id": id, "counted_cash": "10.00"}}), 409, "id")
}

// TestReview17AuthForgedRetryStoresNothing: for every fact route, a
// caller at the fact's own terminal with a forged session gets the stored
// fact for the same body and a 409 for any other body under its id, and a
// new fact is refused 401: no body posted without rights stores anything
// (the stored fact is still the first, read back by a retry with a real
// session), and another terminal gets a 409 for the same body.
func TestReview17AuthForgedRetryStoresNothing(t *testing.T) {
	for _, rt := range retryRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t)
			bob := e.login(tokenT1, "bob", "9999")
			if rt.prep != nil {
				rt.prep(e, bob)
			}
			id := newID()
			first := e.must(e.do(req{method: "POST", path: rt.path, token: tokenT1, session: bob, body: rt.body(id)}), 201)

			again := e.must(e.do(req{method: "POST", path: rt.path, token: tokenT1, session: forged, body: rt.body(id)}), 200)
			if again["id"] != first["id"] {
				t.Fatalf("forged retry answered %v, want %v", again, first)
			}
			// Another body under the id, at the same terminal: a 409.
			path, other := rt.path, rt.body(id)
			if rt.other != nil {
				path, other = rt.other(id)
			} else {
				other["occurred_at"] = t0.Add(time.Minute).Format(time.RFC3339)
			}
			e.problem(e.do(req{method: "POST", path: path, token: tokenT1, session: forged, body: other}), 409, "id")
			// The same body from another terminal: a 409, never the fact.
			tb := rt.body(id)
			if _, ok := tb["terminal"]; ok {
				tb["terminal"] = "t2"
			}
			r := e.do(req{method: "POST", path: rt.path, token: tokenT2, session: forged, body: tb})
			e.problem(r, 409, "id")
			// A new fact without rights: 401, nothing stored.
			fresh := rt.body(newID())
			path = rt.path
			if rt.newPath != nil {
				path = rt.newPath()
			}
			e.problem(e.do(req{method: "POST", path: path, token: tokenT1, session: forged, body: fresh}), 401, "")
			// The stored fact is still the first one.
			back := e.must(e.do(req{method: "POST", path: rt.path, token: tokenT1, session: bob, body: rt.body(id)}), 200)
			if back["id"] != first["id"] || back["occurred_at"] != first["occurred_at"] {
				t.Fatalf("stored fact now %v, want %v", back, first)
			}
		})
	}
}

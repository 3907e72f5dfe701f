package posbridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// Review 17: a fact's retry is answered by what is stored, whatever
// happened to the session it carries since the first try. Each test
// failed on the code before its fix.

// retryRoute is one route a till posts facts to: body makes the fact
// under id, other another fact under the same id (its path and body),
// prep what the fact needs stored before it (bob's session given).
type retryRoute struct {
	name  string
	path  string
	prep  func(e *env, bob string)
	body  func(id string) map[string]any
	other func(id string) (string, map[string]any)
	// newPath is where a new fact goes, when not to path (a shift is
	// closed once).
	newPath func() string
}

// rightsChange is what happens to bob, the manager whose session posted
// the fact, between its first try and its retry; denied is what a new
// fact gets from his session afterwards.
type rightsChange struct {
	name   string
	change func(e *env, bob string)
	denied int
}

func retryRoutes() []retryRoute {
	at := t0.Format(time.RFC3339)
	milk := []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}
	with := func(m map[string]any, kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	var rid string // the receipt returns name
	return []retryRoute{{
		name: "return", path: "/v1/returns",
		prep: func(e *env, _ string) {
			rid = newID()
			e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid,
				[]map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19")},
				[]map[string]any{{"method": "cash", "amount": "3.57"}})}), 201)
		},
		body: func(id string) map[string]any {
			return map[string]any{"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at,
				"original": rid, "reason": "sour", "lines": milk, "refunds": []map[string]any{{"method": "cash", "amount": "1.19"}}}
		},
	}, {
		name: "cash-out", path: "/v1/cash",
		body: func(id string) map[string]any {
			return map[string]any{"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at,
				"direction": "out", "amount": "5.00", "reason": "bank"}
		},
	}, {
		name: "cash-in", path: "/v1/cash",
		body: func(id string) map[string]any {
			return map[string]any{"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at,
				"direction": "in", "amount": "5.00"}
		},
	}, {
		name: "shift-open", path: "/v1/shifts",
		body: func(id string) map[string]any { return openShiftBody(id, "sh1", "10.00") },
	}, {
		name: "shift-close", path: "/v1/shifts/sh1/close",
		prep: func(e *env, bob string) {
			e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: bob, body: openShiftBody(newID(), "sh1", "10.00")}), 201)
			e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: bob, body: openShiftBody(newID(), "sh2", "10.00")}), 201)
		},
		body: func(id string) map[string]any { return map[string]any{"id": id, "counted_cash": "10.00"} },
		other: func(id string) (string, map[string]any) {
			return "/v1/shifts/sh2/close", map[string]any{"id": id, "counted_cash": "10.00"}
		},
		newPath: func() string { return "/v1/shifts/sh2/close" },
	}, {
		name: "document", path: "/v1/documents",
		body: func(id string) map[string]any {
			return with(docBody("write_off", map[string]any{"sku": "MILK", "qty": "2"}), "id", id, "reason", "spoilt")
		},
	}, {
		name: "customer", path: "/v1/customers",
		body: func(id string) map[string]any {
			return map[string]any{"id": id, "occurred_at": at, "terminal": "t1", "seller": "alice",
				"customer": map[string]any{"id": "cust-new", "name": "Nina", "phone": "+49301234"}, "card_code": "CARD7777"}
		},
	}, {
		name: "basket", path: "/v1/baskets",
		body: func(id string) map[string]any {
			return with(basketBody(line("sku", "WINE", "qty", "2")), "id", id)
		},
	}}
}

func rightsChanges() []rightsChange {
	bobAs := func(role storeline.Role, pin string) *storeline.Seller {
		return &storeline.Seller{ID: "bob", Name: "Bob", Role: role, PINHash: hashPIN(pin)}
	}
	return []rightsChange{
		{"demoted", func(e *env, _ string) { e.putMaster(bobAs(storeline.Cashier, "9999")) }, 403},
		{"moved", func(e *env, _ string) {
			s := bobAs(storeline.Manager, "9999")
			s.Stores = []storeline.StoreID{"s2"}
			e.putMaster(s)
		}, 401},
		{"deleted", func(e *env, _ string) {
			if _, err := e.led.DeleteMaster(context.Background(), storeline.KindSeller, "bob"); err != nil {
				e.t.Fatal(err)
			}
		}, 401},
		{"pin-reset", func(e *env, _ string) { e.putMaster(bobAs(storeline.Manager, "0000")) }, 401},
		{"logged-out", func(e *env, bob string) {
			e.must(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: bob}), 204)
		}, 401},
		{"expired", func(e *env, _ string) { e.clock.Add(13 * time.Hour) }, 401},
	}
}

// TestReview17FactRetryAfterRightsChange: bob, a manager, posts a fact at
// till t1 (for alice where the fact names a seller) and the till loses
// the answer; then bob's rights change (demoted, moved to another store,
// deleted, PIN reset, logged out, session expired) and the till retries
// the same body with the session it holds. The retry was refused before
// the stored fact was looked up (403 for a return after a demotion, or a
// cash-out, or any fact for another seller; 401 for every fact once the
// session had ended), so the till could never learn its fact was stored.
// A retry is now answered 200 with the stored fact; another body under
// the id is still a 409, and a new fact is still refused without the
// rights.
func TestReview17FactRetryAfterRightsChange(t *testing.T) {
	for _, rt := range retryRoutes() {
		for _, rc := range rightsChanges() {
			t.Run(rt.name+"/"+rc.name, func(t *testing.T) {
				e := newEnv(t)
				bob := e.login(tokenT1, "bob", "9999")
				if rt.prep != nil {
					rt.prep(e, bob)
				}
				post := func(path string, body map[string]any) resp {
					return e.do(req{method: "POST", path: path, token: tokenT1, session: bob, body: body})
				}
				id := newID()
				first := e.must(post(rt.path, rt.body(id)), 201)
				rc.change(e, bob)

				again := e.must(post(rt.path, rt.body(id)), 200)
				if fmt.Sprint(again) != fmt.Sprint(first) {
					t.Fatalf("retry answered\n%v\nwant the stored fact\n%v", again, first)
				}
				// Another body under the id is a conflict naming id.
				path, other := rt.path, rt.body(id)
				if rt.other != nil {
					path, other = rt.other(id)
				} else {
					other["occurred_at"] = t0.Add(time.Minute).Format(time.RFC3339)
				}
				e.problem(post(path, other), 409, "id")

				// A new fact is refused without the rights.
				path, fresh := rt.path, rt.body(newID())
				if rt.newPath != nil {
					path = rt.newPath()
				}
				if fresh["shift"] != nil {
					fresh["shift"] = "sh9"
				}
				if _, ok := fresh["card_code"]; ok {
					fresh["card_code"] = "CARD8888"
				}
				if rt.name == "shift-close" && rc.denied == 403 {
					// Closing needs a seller's session, which a demoted
					// manager keeps.
					e.must(post(path, fresh), 201)
					return
				}
				r := post(path, fresh)
				if r.status != rc.denied {
					t.Fatalf("a new fact after bob was %s: status %d, want %d: %s", rc.name, r.status, rc.denied, r.body)
				}
			})
		}
	}
}

// TestReview17CashAndOpeningRetryCompare: a cash operation's and a shift
// opening's retry are now answered from the stored fact (they went
// through the ledger's comparison of bodies before): the same figures
// written otherwise ("5" for "5.00") are the same fact, any field the
// till sent changed is a 409 naming id.
func TestReview17CashAndOpeningRetryCompare(t *testing.T) {
	e := newEnv(t)
	bob := e.login(tokenT1, "bob", "9999")
	at := t0.Format(time.RFC3339)
	post := func(path string, body map[string]any) resp {
		return e.do(req{method: "POST", path: path, token: tokenT1, session: bob, body: body})
	}
	id := newID()
	cash := func(kv ...string) map[string]any {
		m := map[string]any{"id": id, "terminal": "t1", "shift": "sh1", "seller": "bob", "occurred_at": at,
			"direction": "out", "amount": "5.00", "reason": "bank"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	first := e.must(post("/v1/cash", cash()), 201)
	if again := e.must(post("/v1/cash", cash("amount", "5")), 200); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v, want %v", again, first)
	}
	for _, kv := range [][]string{{"amount", "5.01"}, {"direction", "in"}, {"reason", "safe"}, {"seller", "alice"}, {"shift", "sh2"}} {
		e.problem(post("/v1/cash", cash(kv...)), 409, "id")
	}
	oid := newID()
	first = e.must(post("/v1/shifts", openShiftBody(oid, "sh1", "10.00")), 201)
	if again := e.must(post("/v1/shifts", openShiftBody(oid, "sh1", "10")), 200); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v, want %v", again, first)
	}
	e.problem(post("/v1/shifts", openShiftBody(oid, "sh1", "10.50")), 409, "id")
	e.problem(post("/v1/shifts", openShiftBody(oid, "sh2", "10.00")), 409, "id")
	// A cash id is not an opening's.
	e.problem(post("/v1/shifts", openShiftBody(id, "sh1", "10.00")), 409, "id")
}

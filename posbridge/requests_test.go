package posbridge_test

import (
	"testing"
	"time"
)

// requestDraft is a till's request for goods (type request) by alice at
// t1, with the fields of set on top.
func requestDraft(set map[string]any) map[string]any {
	d := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "type": "request", "terminal": "t1", "seller": "alice",
		"note": "for the weekend", "lines": []map[string]any{{"sku": "MILK", "qty": "24"}, {"sku": "CHS", "qty": "1.5"}}}
	for k, v := range set {
		d[k] = v
	}
	return d
}

// TestRequestDraftAccepted: a till drafts a request for goods, in base
// units or in packs, with a note and neither supplier nor prices; it is
// stored as a draft of type request and a retry answers it again.
func TestRequestDraftAccepted(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := requestDraft(map[string]any{"lines": []map[string]any{
		{"sku": "MILK", "packs": "2", "pack_factor": "12"}, {"sku": "CHS", "qty": "1.5"}}})
	m := e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: body}), 201)
	if m["type"] != "request" || m["note"] != "for the weekend" || m["supplier"] != nil {
		t.Fatalf("request draft = %v", m)
	}
	ls := m["lines"].([]any)
	if len(ls) != 2 || ls[0].(map[string]any)["item"] != "milk" || ls[0].(map[string]any)["qty"] != "24" ||
		ls[1].(map[string]any)["qty"] != "1.5" || ls[0].(map[string]any)["purchase_price"] != nil {
		t.Fatalf("request lines = %v", ls)
	}
	again := e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: body}), 200)
	if again["id"] != m["id"] || again["type"] != "request" {
		t.Fatalf("retry = %v, want %v", again, m)
	}
}

// TestRequestDraftRefusals: what a request cannot hold is a 422 naming
// the field, and nothing is appended to the journal.
func TestRequestDraftRefusals(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	pos := e.led.Position()
	line := func(l map[string]any) map[string]any {
		return map[string]any{"lines": []map[string]any{{"sku": "MILK", "qty": "1"}, l}}
	}
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"zero qty", requestDraft(line(map[string]any{"sku": "MILK", "qty": "0"})), "lines[1].qty"},
		{"negative qty", requestDraft(line(map[string]any{"sku": "MILK", "qty": "-2"})), "lines[1].qty"},
		{"no qty", requestDraft(line(map[string]any{"sku": "MILK"})), "lines[1].qty"},
		{"fraction of a piece", requestDraft(line(map[string]any{"sku": "MILK", "qty": "1.5"})), "lines[1].qty"},
		{"packs times factor differs", requestDraft(line(map[string]any{"sku": "MILK", "qty": "5", "packs": "2", "pack_factor": "12"})), "lines[1].qty"},
		{"price", requestDraft(line(map[string]any{"sku": "MILK", "qty": "1", "purchase_price": "0.50"})), "lines[1].purchase_price"},
		{"batch", requestDraft(line(map[string]any{"sku": "MILK", "qty": "1", "batch": "L1"})), "lines[1].batch"},
		{"expiry", requestDraft(line(map[string]any{"sku": "MILK", "qty": "1", "expiry": "2027-01-01"})), "lines[1].expiry"},
		{"certificate", requestDraft(line(map[string]any{"sku": "MILK", "qty": "1", "certificate": "C-1"})), "lines[1].certificate"},
		{"unknown sku", requestDraft(line(map[string]any{"sku": "NOPE", "qty": "1"})), "lines[1].sku"},
		{"supplier", requestDraft(map[string]any{"supplier": "sup-1"}), "supplier"},
		{"to_store", requestDraft(map[string]any{"to_store": "s2"}), "to_store"},
		{"from_dept", requestDraft(map[string]any{"from_dept": "food"}), "from_dept"},
		{"to_dept", requestDraft(map[string]any{"to_dept": "food"}), "to_dept"},
		{"reason", requestDraft(map[string]any{"reason": "empty shelf"}), "reason"},
		{"position", requestDraft(map[string]any{"position": map[string]any{"epoch": 1, "seq": 0, "pull_cursor": 0}}), "position"},
		{"no lines", requestDraft(map[string]any{"lines": []map[string]any{}}), "lines"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: c.body, invalid: true}), 422, c.field)
		})
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused requests moved the journal: %v → %v", pos, got)
	}
}

package posbridge_test

import (
	"testing"
	"time"
)

// TestReview12DraftDeptOnlyWhereUsed: a document draft naming a
// department its type has no use for (to_dept on anything but a
// transfer; from_dept on an incoming invoice) is refused at the till,
// 422 naming the field, and appends nothing: head office refuses to make
// a document of such a draft, so accepting it only delayed the refusal to
// someone who could no longer ask the till.
func TestReview12DraftDeptOnlyWhereUsed(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	at := t0.Format(time.RFC3339)
	pos := e.led.Position()
	draft := func(typ string, set map[string]any) map[string]any {
		d := map[string]any{"id": newID(), "occurred_at": at, "type": typ, "terminal": "t1", "seller": "alice",
			"lines": []map[string]any{{"sku": "MILK", "qty": "1", "purchase_price": "0.50"}}}
		switch typ {
		case "incoming_invoice", "supplier_return":
			d["supplier"] = "sup-1"
		case "write_off":
			d["reason"] = "broken"
			d["lines"] = []map[string]any{{"sku": "MILK", "qty": "1"}}
		case "stocktake":
			d["position"] = map[string]any{"epoch": 1, "seq": 0, "pull_cursor": 0}
			d["lines"] = []map[string]any{{"sku": "MILK", "qty": "1"}}
		}
		for k, v := range set {
			d[k] = v
		}
		return d
	}
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"invoice to_dept", draft("incoming_invoice", map[string]any{"to_dept": "food"}), "to_dept"},
		{"invoice from_dept", draft("incoming_invoice", map[string]any{"from_dept": "food"}), "from_dept"},
		{"write-off to_dept", draft("write_off", map[string]any{"from_dept": "food", "to_dept": "drinks"}), "to_dept"},
		{"stocktake to_dept", draft("stocktake", map[string]any{"to_dept": "food"}), "to_dept"},
		{"supplier return to_dept", draft("supplier_return", map[string]any{"to_dept": "food"}), "to_dept"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: c.body, invalid: true}), 422, c.field)
		})
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused drafts moved the journal: %v → %v", pos, got)
	}
	// Where the type uses them, they still go in.
	for _, body := range []map[string]any{
		draft("write_off", map[string]any{"from_dept": "food"}),
		draft("supplier_return", map[string]any{"from_dept": "food"}),
		draft("transfer", map[string]any{"from_dept": "food", "to_dept": "drinks"}),
	} {
		if r := e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: body}); r.status != 201 {
			t.Errorf("draft %v = %d %s, want 201", body["type"], r.status, r.body)
		}
	}
}

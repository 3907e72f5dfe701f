package posbridge_test

import (
	"strings"
	"testing"
)

// TestFieldNamesExactlyOnce: encoding/json matches field names
// case-insensitively and keeps the last of a repeated one, so a body could
// name a field in another case than the spec's or override a value
// further down; both are refused (400 naming the key) and change nothing.
func TestFieldNamesExactlyOnce(t *testing.T) {
	e := newEnv(t)
	pos := e.led.Position()
	raw := func(s string) resp {
		return e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, raw: s, invalid: true})
	}
	sale := func(id, lines string) string {
		return `{"id":"` + id + `","terminal":"t1","shift":"sh1","seller":"alice","occurred_at":"2026-03-10T09:00:00Z",` +
			`"lines":[` + lines + `],"payments":[{"method":"cash","amount":"20"}]}`
	}
	for _, c := range []struct{ name, body, field string }{
		{"top-level case", strings.Replace(sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19"}`), `"seller"`, `"Seller"`, 1), "Seller"},
		{"nested case", sale(newID(), `{"sku":"MILK","QTY":"1","price":"1.19"}`), "lines[0].QTY"},
		{"escaped case", sale(newID(), `{"sku":"MILK","q\u0054y":"1","price":"1.19"}`), "lines[0].qTy"},
		{"repeated", sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19","price":"0.01"}`), "lines[0].price"},
		{"repeated escaped", sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19","pr\u0069ce":"0.01"}`), "lines[0].price"},
		{"repeated in case", sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19","Price":"0.01"}`), "lines[0].Price"},
		{"repeated top level", strings.Replace(sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19"}`), `"seller":"alice"`, `"seller":"alice","seller":"bob"`, 1), "seller"},
	} {
		t.Run(c.name, func(t *testing.T) { e.problem(raw(c.body), 400, c.field) })
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused bodies moved the journal from %v to %v", pos, got)
	}
	// The same key in sibling objects, a key-like string value and a
	// value holding quotes, braces and commas are fine.
	body := sale(newID(), `{"sku":"MILK","qty":"1","price":"1.19"},{"sku":"COLA","qty":"1","price":"2.00"}`)
	body = strings.Replace(body, `"seller":"alice"`, `"seller":"alice","card":"CARD0001"`, 1)
	e.must(raw(body), 201)
}

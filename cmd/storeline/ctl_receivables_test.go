package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlReceivables drives the buyer settlement commands of `storeline
// ctl --central` against a `storeline central` started in the test: an
// outgoing invoice, a buyer's payment (again: harmless; other content:
// refused naming id), its cancel, the buyer's statement and receivables.
func TestCtlReceivables(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, args := range [][]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/stores/s1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
		{"PUT", "/v1/buyers/c1", `{"name":"Cafe Ltd"}`},
		{"PUT", "/v1/banks/b1", `{"name":"First Bank"}`},
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)
	path := writeFile(t, "out1.json", `{"type":"outgoing_invoice","store":"s1","buyer":"c1","due_on":"`+today+`","lines":[{"item":"milk","qty":"4","price":"2.50"}]}`)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"document", "out1", path}, 0, `"status":"draft"`},
		{[]string{"post", "out1"}, 0, `"account":"receivable/c1","amount":"10"`},
		{[]string{"pay-buyer", "bp1", "c1", "b1", "4", "EUR", today}, 0, `"amount":"4.00"`},
		{[]string{"pay-buyer", "bp1", "c1", "b1", "4.00", "EUR", today}, 0, `"amount":"4.00"`},
		{[]string{"pay-buyer", "bp1", "c1", "b1", "5", "EUR", today}, 1, `(field: id)`},
		{[]string{"pay-buyer", "bp2", "nobody", "b1", "1", "EUR"}, 1, `(field: buyer)`},
		{[]string{"buyer-statement", "c1", "EUR", today, today}, 0, `"closing":"6.00"`},
		{[]string{"receivables", today}, 0, `"balance":"6.00"`},
		{[]string{"buyer-pay-cancel", "bp1", "bounced"}, 0, `"status":"cancelled"`},
		{[]string{"buyer-pay-cancel", "bp1", "bounced"}, 0, `"status":"cancelled"`},
		{[]string{"buyer-statement", "c1", "EUR", today, today}, 0, `"closing":"10.00"`},
		{[]string{"receivables"}, 0, `"balance":"10.00"`},
		{[]string{"buyer-statement", "c1", "EUR", today}, 2, `bad command`},
		{[]string{"receivables", "tomorrow"}, 1, `(field: as_of)`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
}

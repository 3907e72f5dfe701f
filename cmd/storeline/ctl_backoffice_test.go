package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlBackOffice drives the back-office commands of `storeline ctl
// --central` against a `storeline central` started in the test.
func TestCtlBackOffice(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, args := range [][]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/stores/s1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
		{"PUT", "/v1/suppliers/p1", `{"name":"Dairy"}`},
		{"PUT", "/v1/banks/b1", `{"name":"First Bank"}`},
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	expiry := time.Now().UTC().AddDate(0, 0, 3).Format(time.DateOnly)
	today := time.Now().UTC().Format(time.DateOnly)
	path := filepath.Join(dir, "inv1.json")
	doc := `{"type":"incoming_invoice","store":"s1","supplier":"p1","lines":[{"item":"milk","qty":"10","purchase_price":"1.10","batch":"B1","expiry":"` + expiry + `"}]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"document", "inv1", path}, 0, `"status":"draft"`},
		{[]string{"cancel", "inv1"}, 1, `(field: status)`},
		{[]string{"post", "inv1"}, 0, `"status":"posted"`},
		{[]string{"post", "inv1"}, 1, `(field: status)`},
		{[]string{"stock", "s1", "milk"}, 0, `"qty":"10","value":"10"`},
		{[]string{"expiring", "s1", "7"}, 0, `"batch":"B1"`},
		{[]string{"drafts", "s1"}, 0, `"drafts":[]`},
		{[]string{"cost-of-sales", "s1"}, 0, `"costed":0`},
		{[]string{"cancel", "inv1"}, 0, `"status":"cancelled"`},
		{[]string{"show", "inv1"}, 0, `"status":"cancelled"`},
		{[]string{"stock", "s1"}, 0, `"stock":[]`},
		{[]string{"document-from-draft", "x1", "s1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}, 1, `(field: draft.event)`},
		{[]string{"stock"}, 2, `bad command`},
		{[]string{"reservations", "s1"}, 0, `"reservations":[]`},
		{[]string{"reservations", "s1", "milk"}, 0, `"store":"s1"`},
		{[]string{"reservations", "nowhere"}, 1, `(field: store)`},
		{[]string{"reservations"}, 2, `bad command`},
		// Settlements: the cancelled invoice owes nothing; a payment is
		// an advance (the chain is owed 5.00), and a retry is harmless.
		{[]string{"pay-supplier", "pay1", "p1", "b1", "5.00", "EUR", today}, 0, `"amount":"5.00"`},
		{[]string{"pay-supplier", "pay1", "p1", "b1", "5", "EUR", today}, 0, `"amount":"5.00"`},
		{[]string{"pay-supplier", "pay1", "p1", "b1", "6", "EUR", today}, 1, `(field: id)`},
		{[]string{"pay-supplier", "pay2", "p1", "nobank", "1", "EUR"}, 1, `(field: bank)`},
		{[]string{"statement", "p1", "EUR", today, today}, 0, `"closing":"-5.00"`},
		{[]string{"statement", "p1", "EUR", today}, 2, `bad command`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
}

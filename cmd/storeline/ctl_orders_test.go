package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlOrders drives the purchase-order commands against a `storeline
// central` started in the test: an order is created (again: the same
// order), shown and listed; an invoice naming it receives part of it;
// cancelling it is refused once goods arrived, closing it drops what is
// outstanding, and running the close again answers the same.
func TestCtlOrders(t *testing.T) {
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
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	order := write("po1.json", `{"id":"po1","supplier":"p1","store":"s1","lines":[{"item":"milk","qty":"10","price":"1.10"}]}`)
	invoice := write("inv1.json", `{"type":"incoming_invoice","store":"s1","supplier":"p1","order":"po1","lines":[{"item":"milk","qty":"4","purchase_price":"1.10"}]}`)
	// Orders need the cluster's FSM level 4, raised shortly after the
	// node leads: wait until the command gets past the 503.
	waitFor(t, "the cluster at the level of orders", 20*time.Second, func() bool {
		code, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "order", order)
		return code == 0 || !strings.Contains(stdout+stderr, "level")
	})
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"order", order}, 0, `"status":"open"`},
		{[]string{"show-order", "po1"}, 0, `"outstanding":"10"`},
		{[]string{"orders", "s1"}, 0, `"id":"po1"`},
		{[]string{"document", "inv1", invoice}, 0, `"order":"po1"`},
		{[]string{"post", "inv1"}, 0, `"status":"posted"`},
		{[]string{"show-order", "po1"}, 0, `"status":"partial"`},
		{[]string{"show-order", "po1"}, 0, `"outstanding":"6"`},
		{[]string{"order-cancel", "po1", "not needed"}, 1, `(field: status)`},
		{[]string{"order-close", "po1", "enough"}, 0, `"status":"closed"`},
		{[]string{"order-close", "po1", "enough"}, 0, `"status":"closed"`},
		{[]string{"show-order", "po1"}, 0, `"outstanding":"0"`},
		{[]string{"show-order", "nosuch"}, 1, `(field: id)`},
		{[]string{"order-cancel", "po1"}, 2, `bad command`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
}

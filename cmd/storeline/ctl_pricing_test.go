package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlPricing authors pricing rules with `storeline ctl --central`
// against a `storeline central` started in the test, and prices a basket
// with them; a bad rule exits 1 naming the field.
func TestCtlPricing(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, args := range [][]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/customer_groups/vip", `{"name":"VIP"}`},
		{"PUT", "/v1/stores/s1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
		{"POST", "/v1/prices", `{"prices":[{"list":"retail","item":"milk","from":"2026-01-01T00:00:00Z","price":"2.00"}]}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	promo := file("p.json", `{"name":"Milk week","kind":"percent","from":"2026-01-01T00:00:00Z","items":["milk"],"percent":"25"}`)
	clash := file("clash.json", `{"name":"Milk too","kind":"fixed","from":"2026-02-01T00:00:00Z","items":["milk"],"amount":"0.10"}`)
	policy := file("pol.json", `{"customer_group":"vip","percent":"10"}`)
	badProg := file("prog.json", `{"name":"Points","currency":"EUR","default_rate":"1","point_value":"0.01","max_share":"120"}`)
	basket := file("basket.json", `{"occurred_at":"2026-03-01T10:00:00Z","customer_group":"vip","lines":[{"item":"milk","qty":"2"}]}`)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"promotion", "milk-25", promo}, 0, `"version"`},
		{[]string{"promotion", "milk-10c", clash}, 1, `(field: items[0])`},
		{[]string{"price-policy", "vip-10", policy}, 0, `"customer_group":"vip"`},
		{[]string{"loyalty-programme", "points", badProg}, 1, `(field: max_share)`},
		{[]string{"rules"}, 0, `"id":"milk-25"`},
		// 2.00 − 10% = 1.80 a unit; 25% off 3.60.
		{[]string{"price-basket", "s1", basket}, 0, `"total":"2.70"`},
		{[]string{"promotion", "x"}, 2, `bad command`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCentralEndToEnd runs `storeline central` with no configuration but
// a data directory (a single-node cluster on loopback) and drives it with
// `storeline ctl --central`.
func TestCentralEndToEnd(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	// The referenced records first, then items and prices from CSV.
	for _, args := range [][]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/stores/s1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
	} {
		c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	var csv strings.Builder
	csv.WriteString("id,sku,name,group,dept,unit,vat_rate\n")
	const items = 25000
	for i := 0; i < items; i++ {
		fmt.Fprintf(&csv, "i%d,SKU%d,Item %d,food,main,pcs,21\n", i, i, i)
	}
	path := filepath.Join(dir, "items.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "import-items", path)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("imported %d rows", items)) || !strings.Contains(stderr, "100.0%") {
		t.Fatalf("import-items: %d\n%s\n%s", code, stdout, stderr)
	}
	// Running it again is harmless (same idempotency keys).
	if code, _, stderr := runCmd(t, e, "ctl", "--central", api, "import-items", path); code != 0 {
		t.Fatalf("import-items again: %d %s", code, stderr)
	}
	if code, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "price", "retail", "i7", "3.49"); code != 0 || !strings.Contains(stdout, `"records":1`) {
		t.Fatalf("price: %d %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "seller", "anna", "Anna", "cashier", "1234"); code != 0 || !strings.Contains(stdout, `"id":"anna"`) {
		t.Fatalf("seller: %d %s %s", code, stdout, stderr)
	}
	// A bad price names the field.
	if code, _, stderr := runCmd(t, e, "ctl", "--central", api, "price", "retail", "ghost", "1"); code != 1 || !strings.Contains(stderr, "prices[0].item") {
		t.Fatalf("price on an unknown item: %d %s", code, stderr)
	}
}

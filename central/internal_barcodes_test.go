package central_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// startLevel6 starts one node that raises the cluster to FSM level 6,
// where OpInternalBarcode is allowed.
func startLevel6(t *testing.T) *central.Node {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 6) })
	n := c.nodes[0]
	waitFor(t, "cluster level 6", 10*time.Second, func() bool { l, err := n.ClusterLevel(); return err == nil && l >= 6 })
	return n
}

func internalCode(t *testing.T, serial uint64) string {
	t.Helper()
	code, err := storeline.InternalEAN13(storeline.DefaultInternalPrefix, serial)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func allocate(t *testing.T, addr, item string) (int, map[string]any) {
	t.Helper()
	r := apiDo(t, "POST", addr, "/v1/items/"+item+"/internal_barcode", adminKey, nil, nil)
	return r.status, r.json(t)
}

func TestInternalBarcodeAllocation(t *testing.T) {
	n := startLevel6(t)
	addr := n.APIAddr()
	seed(t, addr, 4)

	st, m := allocate(t, addr, "i0")
	if st != http.StatusOK || m["barcode"] != internalCode(t, 1) || m["allocated"] != true || m["item"] != "i0" {
		t.Fatalf("first allocation: %d %v", st, m)
	}
	// Again, under another key: the same code, nothing allocated.
	if st, m = allocate(t, addr, "i0"); st != http.StatusOK || m["barcode"] != internalCode(t, 1) || m["allocated"] != false {
		t.Fatalf("second allocation for i0: %d %v", st, m)
	}
	// The code is the item's, as any barcode: the shops get it by the feed.
	it := mustOK(t, apiDo(t, "GET", addr, "/v1/items/i0", viewerKey, nil, nil)).json(t)
	bcs, _ := it["barcodes"].([]any)
	if len(bcs) != 1 || bcs[0].(map[string]any)["code"] != "0"+internalCode(t, 1) {
		t.Fatalf("item i0 after allocation: %v", it)
	}
	// A code of the prefix typed in by hand is skipped by the counter,
	// and the item holding it keeps it.
	hand := item(2)
	hand["barcodes"] = []any{map[string]any{"code": internalCode(t, 2)}}
	mustOK(t, apiDo(t, "PUT", addr, "/v1/items/i2", adminKey, hand, nil))
	if st, m = allocate(t, addr, "i2"); st != http.StatusOK || m["barcode"] != internalCode(t, 2) || m["allocated"] != false {
		t.Fatalf("allocation for i2, holding serial 2 by hand: %d %v", st, m)
	}
	if st, m = allocate(t, addr, "i1"); st != http.StatusOK || m["barcode"] != internalCode(t, 3) || m["allocated"] != true {
		t.Fatalf("allocation for i1 past the hand-typed serial 2: %d %v", st, m)
	}

	// An unknown item: 404 naming id; a weighed one: 422 naming id.
	r := apiDo(t, "POST", addr, "/v1/items/nope/internal_barcode", adminKey, nil, nil)
	if p := r.json(t); r.status != http.StatusNotFound || p["field"] != "id" {
		t.Fatalf("unknown item: %d %s", r.status, r.body)
	}
	w := item(9)
	w["unit"], w["weighed"] = "kg", true
	mustOK(t, apiDo(t, "PUT", addr, "/v1/items/loose", adminKey, w, nil))
	r = apiDo(t, "POST", addr, "/v1/items/loose/internal_barcode", adminKey, nil, nil)
	if p := r.json(t); r.status != http.StatusUnprocessableEntity || p["field"] != "id" {
		t.Fatalf("weighed item: %d %s", r.status, r.body)
	}
	// A viewer may not allocate.
	if r = apiDo(t, "POST", addr, "/v1/items/i3/internal_barcode", viewerKey, nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer: %d %s", r.status, r.body)
	}
}

// Allocations racing through the API each get a code of their own: the
// counter is read and raised in the entry that attaches the code.
func TestInternalBarcodesConcurrentAreDistinct(t *testing.T) {
	n := startLevel6(t)
	addr := n.APIAddr()
	const items = 12
	seed(t, addr, items)
	codes := make([]string, items)
	var wg sync.WaitGroup
	for i := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := apiDo(t, "POST", addr, fmt.Sprintf("/v1/items/i%d/internal_barcode", i), adminKey, nil, nil)
			if r.status == http.StatusOK {
				codes[i], _ = r.json(t)["barcode"].(string)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, c := range codes {
		if c == "" || seen[c] {
			t.Fatalf("item i%d got %q; all: %v", i, c, codes)
		}
		seen[c] = true
	}
	for s := uint64(1); s <= items; s++ {
		if !seen[internalCode(t, s)] {
			t.Fatalf("serial %d not allocated: %v", s, codes)
		}
	}
}

func TestInternalBarcodePrefixMustBeLeftFreeByTheWeighedLayout(t *testing.T) {
	if err := central.DefaultConfig(t.TempDir()).Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, c := range []struct {
		name string
		set  func(*central.InternalBarcodeConfig)
	}{
		{"weighed prefix", func(c *central.InternalBarcodeConfig) { c.Prefix = "28" }},
		{"outside 20-29", func(c *central.InternalBarcodeConfig) { c.Prefix = "46" }},
		{"layout claims 29", func(c *central.InternalBarcodeConfig) {
			c.WeighedLayout.Prefixes = append(c.WeighedLayout.Prefixes, "29")
		}},
	} {
		cfg := central.DefaultConfig(t.TempDir())
		c.set(&cfg.InternalBarcodes)
		err := cfg.Validate()
		var se *storeline.Error
		if !errors.Is(err, storeline.Invalid) || !errors.As(err, &se) {
			t.Fatalf("%s: Validate = %v, want Invalid", c.name, err)
		}
		if fmt.Sprint(err) == "" || !containsField(err, "InternalBarcodes.Prefix") {
			t.Fatalf("%s: %v does not name InternalBarcodes.Prefix", c.name, err)
		}
	}
	cfg := central.DefaultConfig(t.TempDir())
	cfg.InternalBarcodes.Prefix = "25"
	cfg.InternalBarcodes.WeighedLayout.Prefixes = []string{"20", "21", "22"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("prefix 25 beside weighed 20-22: %v", err)
	}
}

// containsField reports whether one of the joined errors names field.
func containsField(err error, field string) bool {
	if storeline.FieldOf(err) == field {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if containsField(e, field) {
				return true
			}
		}
	}
	if u := errors.Unwrap(err); u != nil {
		return containsField(u, field)
	}
	return false
}

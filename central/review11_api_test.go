package central_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// A seller's PIN is stored salted and hashed. A client whose first PUT
// committed but whose answer was lost retries with the same
// Idempotency-Key, as the API asks; the retry must get the first outcome,
// not a 409 saying the key was used for another request.
func TestReview11SellerPINRetrySameKey(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	h := map[string]string{"Idempotency-Key": "seller-put-1"}
	body := map[string]any{"name": "Anna", "role": "cashier", "pin": "1234"}
	r1 := mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey, body, h)).json(t)
	r2 := apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey, body, h)
	if r2.status != http.StatusOK {
		t.Fatalf("PUT retry with the same key and body: %d %s", r2.status, r2.body)
	}
	if m := r2.json(t); m["duplicate"] != true || m["version"] != r1["version"] {
		t.Fatalf("retry = %v, first = %v", m, r1)
	}
	// The same key with another PIN is another request.
	problemOf(t, apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey,
		map[string]any{"name": "Anna", "role": "cashier", "pin": "5678"}, h), 409, "Idempotency-Key")

	hp := map[string]string{"Idempotency-Key": "seller-pin-1"}
	p1 := mustOK(t, apiDo(t, "POST", a, "/v1/sellers/anna/pin", adminKey, map[string]any{"pin": "9876"}, hp)).json(t)
	p2 := apiDo(t, "POST", a, "/v1/sellers/anna/pin", adminKey, map[string]any{"pin": "9876"}, hp)
	if p2.status != http.StatusOK {
		t.Fatalf("POST pin retry with the same key and body: %d %s", p2.status, p2.body)
	}
	if m := p2.json(t); m["duplicate"] != true || m["version"] != p1["version"] {
		t.Fatalf("pin retry = %v, first = %v", m, p1)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/sellers/anna/pin", adminKey, map[string]any{"pin": "1111"}, hp), 409, "Idempotency-Key")
}

// A PIN sent as a JSON number is a malformed body: it must be refused
// naming pin, not answered 200 with the seller's old PIN kept.
func TestReview11SellerPINOfWrongTypeRefused(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey, map[string]any{"name": "Anna", "role": "cashier", "pin": "1234"}, nil))
	before := n.AppliedIndex()
	r := apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey, `{"name":"Anna","role":"cashier","pin":9876}`, nil)
	problemOf(t, r, 400, "pin")
	if got := n.AppliedIndex(); got != before {
		t.Fatalf("a refused PUT applied entries %d..%d", before, got)
	}
}

// Every error is problem+json (README "Head-office API"): a method the
// route does not serve and a path the API does not have included.
func TestReview11RoutingErrorsAreProblems(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 1)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PATCH", "/v1/items/i0", 405, "DELETE, GET, HEAD, PUT"},
		{"POST", "/v1/items/i0", 405, "DELETE, GET, HEAD, PUT"},
		{"PUT", "/v1/prices", 405, "GET, HEAD, POST"},
		{"GET", "/v1/no_such_collection", 404, ""},
		{"GET", "/v1/items/i0/extra", 404, ""},
	} {
		req, err := http.NewRequest(c.method, "http://"+a+c.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+viewerKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, resp.StatusCode, c.status, b)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want application/problem+json: %s", c.method, c.path, ct, b)
			continue
		}
		var p struct {
			Status int    `json:"status"`
			Kind   string `json:"kind"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Status != c.status || p.Kind == "" {
			t.Errorf("%s %s: problem %s (%v)", c.method, c.path, b, err)
		}
		if c.allow != "" && resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, resp.Header.Get("Allow"), c.allow)
		}
	}
}

// An import split into several entries keys entry i "KEY/i" and a
// one-entry import "KEY": a retry with the same key and another body
// that splits otherwise (fewer or more entries) was applied as a new
// request. The same key with another body must be a 409 naming
// Idempotency-Key that applies nothing; the same body again a duplicate.
func TestReview11ImportSameKeyOtherBody(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ImportChunk = 2 })
	n := c.nodes[0]
	a := n.APIAddr()
	seed(t, a, 0)
	items := func(from, to int) map[string]any {
		var out []map[string]any
		for i := from; i < to; i++ {
			m := item(i)
			m["id"] = fmt.Sprintf("imp%d", i)
			out = append(out, m)
		}
		return map[string]any{"items": out}
	}
	stored := func(i int) bool {
		t.Helper()
		var it storeline.Item
		err := n.Replica().GetMaster(storeline.KindItem, fmt.Sprintf("imp%d", i), &it)
		if err != nil && storeline.KindOf(err) != storeline.NotFound {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, tc := range []struct {
		name          string
		first, second map[string]any
		added         int // the item only the second body has
	}{
		{"fewer entries", items(0, 3), items(10, 11), 10},
		{"more entries", items(20, 21), items(30, 33), 30},
		{"a superset", items(40, 44), items(40, 45), 44},
	} {
		h := map[string]string{"Idempotency-Key": "import-" + tc.name}
		mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, tc.first, h))
		again := mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, tc.first, h)).json(t)
		if again["records"] == nil {
			t.Fatalf("%s: retry answer %v", tc.name, again)
		}
		before := n.AppliedIndex()
		r := apiDo(t, "POST", a, "/v1/import", adminKey, tc.second, h)
		if r.status != http.StatusConflict {
			t.Errorf("%s: same key, another body: %d %s", tc.name, r.status, r.body)
		} else {
			problemOf(t, r, http.StatusConflict, "Idempotency-Key")
		}
		if stored(tc.added) {
			t.Errorf("%s: imp%d stored by a request refused for its key (index %d → %d)", tc.name, tc.added, before, n.AppliedIndex())
		}
	}
}

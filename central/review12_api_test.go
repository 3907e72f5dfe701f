package central_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// A terminal token request whose answer was lost is retried with the same
// Idempotency-Key, as the API asks: the retry must get the first outcome
// (the same token, which still works), not a 409 saying the key was used
// for another request while a second token was minted for nothing.
func TestReview12APITerminalTokenRetrySameKey(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t1", adminKey, map[string]any{"store": "s1", "name": "Till 1"}, nil))
	h := map[string]string{"Idempotency-Key": "token-t1-1"}
	r1 := mustOK(t, apiDo(t, "POST", a, "/v1/terminals/t1/token", adminKey, nil, h)).json(t)
	r2 := apiDo(t, "POST", a, "/v1/terminals/t1/token", adminKey, nil, h)
	if r2.status != http.StatusOK {
		t.Fatalf("token retry with the same key: %d %s", r2.status, r2.body)
	}
	m := r2.json(t)
	if m["duplicate"] != true || m["version"] != r1["version"] || m["token"] != r1["token"] || r1["token"] == "" {
		t.Fatalf("retry = %v, first = %v", m, r1)
	}
	var term storeline.Terminal
	if err := n.Replica().GetMaster(storeline.KindTerminal, "t1", &term); err != nil {
		t.Fatal(err)
	}
	if term.TokenHash != storeline.TokenHash(r1["token"].(string)) {
		t.Fatalf("the token answered does not work: stored hash %s", term.TokenHash)
	}
	// A new key is a new token.
	r3 := mustOK(t, apiDo(t, "POST", a, "/v1/terminals/t1/token", adminKey, nil, map[string]string{"Idempotency-Key": "token-t1-2"})).json(t)
	if r3["token"] == r1["token"] || r3["duplicate"] == true {
		t.Fatalf("a token request with a new key = %v, first = %v", r3, r1)
	}
}

// A new terminal's PUT whose answer was lost, retried with the same key
// and body, must answer the token the first one issued: answering no
// token leaves the terminal with a token nobody has.
func TestReview12APINewTerminalRetryAnswersToken(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	h := map[string]string{"Idempotency-Key": "put-t9"}
	body := map[string]any{"store": "s1", "name": "Till 9"}
	r1 := mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t9", adminKey, body, h)).json(t)
	r2 := mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t9", adminKey, body, h)).json(t)
	if r1["token"] == nil || r1["token"] == "" || r2["duplicate"] != true || r2["token"] != r1["token"] {
		t.Fatalf("retry = %v, first = %v", r2, r1)
	}
	// An edit of the terminal (another key) issues no token.
	r3 := mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t9", adminKey, map[string]any{"store": "s1", "name": "Till nine"}, nil)).json(t)
	if tok, ok := r3["token"]; ok {
		t.Fatalf("an edit answered token %v", tok)
	}
}

// A bulk write split over several entries keys entry i > 0 by a key of
// its own. A client whose earlier request used a key equal to one of
// those (a batch "run" and a later one "run/1") must not have the bulk
// applied in part and then refused: the sub-keys cannot be a client's.
func TestReview12APIBulkSubKeysNotClientKeys(t *testing.T) {
	n := openNode(t, func() central.Config {
		cfg := testConfig(t, "solo", t.TempDir())
		cfg.ImportChunk = 2
		return cfg
	}())
	waitFor(t, "leader", 10*time.Second, n.IsLeader)
	a := n.APIAddr()
	seed(t, a, 0)
	mustOK(t, apiDo(t, "PUT", a, "/v1/groups/other", adminKey, map[string]any{"name": "Other"}, map[string]string{"Idempotency-Key": "run/1"}))
	items := make([]any, 4)
	for i := range items {
		m := item(100 + i)
		m["id"] = fmt.Sprintf("b%d", i)
		items[i] = m
	}
	r := apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": items}, map[string]string{"Idempotency-Key": "run"})
	if r.status != http.StatusOK {
		t.Fatalf("import keyed run after a request keyed run/1: %d %s", r.status, r.body)
	}
	for i := range items {
		var it storeline.Item
		if err := n.Replica().GetMaster(storeline.KindItem, fmt.Sprintf("b%d", i), &it); err != nil {
			t.Fatalf("b%d: %v", i, err)
		}
	}
}

// TestReview12APIUniqueKeyConflictNamesField: a single PUT taking a SKU, a
// barcode or a card code another record holds is a 409 naming the field
// (README: errors name the offending field), and changes nothing.
func TestReview12APIUniqueKeyConflictNamesField(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	x1 := map[string]any{"sku": "X1", "name": "X", "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "10"}
	x1["sku"] = "MILK"
	problemOf(t, apiDo(t, "PUT", a, "/v1/items/x1", adminKey, x1, nil), http.StatusConflict, "sku")
	x1["sku"] = "X1"
	x1["barcodes"] = []any{map[string]any{"code": "4601234567893"}}
	problemOf(t, apiDo(t, "PUT", a, "/v1/items/x1", adminKey, x1, nil), http.StatusConflict, "barcodes[0].code")
	problemOf(t, apiDo(t, "GET", a, "/v1/items/x1", viewerKey, nil, nil), http.StatusNotFound, "")
	mustOK(t, apiDo(t, "PUT", a, "/v1/customers/c1", adminKey, map[string]any{"name": "Anna"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/cards/k1", adminKey, map[string]any{"code": "1234567", "kind": "loyalty", "customer": "c1"}, nil))
	problemOf(t, apiDo(t, "PUT", a, "/v1/cards/k2", adminKey, map[string]any{"code": "1234567", "kind": "loyalty", "customer": "c1"}, nil), http.StatusConflict, "code")
}

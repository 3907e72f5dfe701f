package central_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// long turns on the big sizes (make central-long).
var long = flag.Bool("central.long", false, "run central's tests at full size (a 100k-item import)")

func singleNode(t *testing.T) *central.Node {
	t.Helper()
	n := openNode(t, testConfig(t, "solo", filepath.Join(t.TempDir(), "solo")))
	waitFor(t, "leader", 10*time.Second, n.IsLeader)
	return n
}

// problemOf checks a problem+json answer of the given status naming field.
func problemOf(t *testing.T, r response, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var p struct {
		Field string `json:"field"`
		Kind  string `json:"kind"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem %s: %v", r.body, err)
	}
	if p.Field != field {
		t.Fatalf("problem field %q, want %q: %s", p.Field, field, r.body)
	}
}

func TestMasterDataCRUD(t *testing.T) {
	t.Parallel()
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 2)

	got := mustOK(t, apiDo(t, "GET", a, "/v1/items/i1", viewerKey, nil, nil)).json(t)
	if got["sku"] != "SKU1" || got["vat_rate"] != "21" || got["group"] != "food" {
		t.Fatalf("item = %v", got)
	}
	// Item with a barcode and a pack.
	it := item(5)
	it["barcodes"] = []any{map[string]any{"code": "4601234567893"}, map[string]any{"code": "04601234567800", "factor": "12"}}
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/i5", adminKey, it, nil))
	var i5 storeline.Item
	if err := n.Replica().LookupMaster(storeline.KindItem, storeline.BarcodeKey("04601234567800"), &i5); err != nil || i5.ID != "i5" || !i5.Barcodes[1].Factor.Equal(decimal.NewFromInt(12)) {
		t.Fatalf("item by pack barcode = %+v, %v", i5, err)
	}
	// Another item may not take a barcode i5 holds.
	it6 := item(6)
	it6["barcodes"] = []any{map[string]any{"code": "4601234567893"}}
	problemOf(t, apiDo(t, "PUT", a, "/v1/items/i6", adminKey, it6, nil), 409, "barcodes[0].code")
	var r response
	// Prices in bulk, then read back.
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustOK(t, apiDo(t, "POST", a, "/v1/prices", adminKey, map[string]any{"prices": []any{
		map[string]any{"list": "retail", "item": "i0", "from": from, "price": "1.99"},
		map[string]any{"list": "retail", "item": "i1", "from": from, "price": "2.50"},
	}}, nil))
	ps := mustOK(t, apiDo(t, "GET", a, "/v1/prices?list=retail&item=i1", viewerKey, nil, nil)).json(t)["prices"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["price"] != "2.5" {
		t.Fatalf("prices = %v", ps)
	}
	// Registries, customers, cards, messages, sellers, terminals.
	mustOK(t, apiDo(t, "PUT", a, "/v1/manufacturers/m1", adminKey, map[string]any{"name": "Maker", "country": "LV"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/representatives/r1", adminKey, map[string]any{"name": "Rep", "manufacturer": "m1"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "Bank", "bic": "HABALV22"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/buyers/y1", adminKey, map[string]any{"name": "Buyer"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p1", adminKey, map[string]any{"name": "Supplier"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/customer_groups/vip", adminKey, map[string]any{"name": "VIP"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/customers/c1", adminKey, map[string]any{"name": "Anna", "group": "vip"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/cards/k1", adminKey, map[string]any{"code": "1234567", "kind": "loyalty", "customer": "c1"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/messages/hello", adminKey, map[string]any{"text": "Hello", "stores": []string{"s1"}, "from": from}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/anna", adminKey, map[string]any{"name": "Anna", "role": "cashier", "pin": "1234"}, nil))
	var s storeline.Seller
	if err := n.Replica().GetMaster(storeline.KindSeller, "anna", &s); err != nil || !storeline.CheckPIN(s.PINHash, "1234") {
		t.Fatalf("seller PIN not stored hashed: %v %+v", err, s)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/sellers/anna/pin", adminKey, map[string]any{"pin": "9876"}, nil))
	if err := n.Replica().GetMaster(storeline.KindSeller, "anna", &s); err != nil || !storeline.CheckPIN(s.PINHash, "9876") {
		t.Fatalf("PIN reset not stored: %v", err)
	}
	tr := mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t1", adminKey, map[string]any{"store": "s1", "name": "Till 1"}, nil)).json(t)
	tok, _ := tr["token"].(string)
	var term storeline.Terminal
	if err := n.Replica().LookupMaster(storeline.KindTerminal, storeline.TerminalTokenKey(storeline.TokenHash(tok)), &term); err != nil || tok == "" {
		t.Fatalf("terminal token %q not found by its hash: %v", tok, err)
	}
	// Delete, then the feed shows a tombstone.
	mustOK(t, apiDo(t, "DELETE", a, "/v1/customers/c1", adminKey, nil, nil))
	r = apiDo(t, "GET", a, "/v1/customers/c1", viewerKey, nil, nil)
	problemOf(t, r, 404, "")

	lst := mustOK(t, apiDo(t, "GET", a, "/v1/items?limit=2", viewerKey, nil, nil)).json(t)
	if len(lst["records"].([]any)) != 2 || lst["next"] != "i1" {
		t.Fatalf("list = %v", lst)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 1)
	mustOK(t, apiDo(t, "PUT", a, "/v1/groups/child", adminKey, map[string]any{"name": "Child", "parent": "food"}, nil))
	before := n.Replica().AppliedIndex()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	cases := []struct {
		name, method, path, key string
		body                    any
		status                  int
		field                   string
	}{
		{"unknown field", "PUT", "/v1/items/i9", adminKey, map[string]any{"sku": "X", "name": "X", "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "0", "colour": "red"}, 400, "colour"},
		{"nested unknown field", "PUT", "/v1/stores/s2", adminKey, map[string]any{"name": "S", "time_zone": "UTC", "currency": "EUR", "departments": []any{map[string]any{"id": "d", "nam": "x"}}}, 400, "departments[0].nam"},
		{"wrong type", "PUT", "/v1/items/i9", adminKey, map[string]any{"sku": 5}, 400, "sku"},
		{"group its own ancestor", "PUT", "/v1/groups/food", adminKey, map[string]any{"name": "Food", "parent": "child"}, 422, "parent"},
		{"group unknown parent", "PUT", "/v1/groups/g2", adminKey, map[string]any{"name": "G", "parent": "nope"}, 422, "parent"},
		{"price unknown item", "POST", "/v1/prices", adminKey, map[string]any{"prices": []any{
			map[string]any{"list": "retail", "item": "i0", "from": from, "price": "1"},
			map[string]any{"list": "retail", "item": "ghost", "from": from, "price": "1"}}}, 422, "prices[1].item"},
		{"negative price", "POST", "/v1/prices", adminKey, map[string]any{"prices": []any{map[string]any{"list": "retail", "item": "i0", "from": from, "price": "-1"}}}, 422, "prices[0].price"},
		{"viewer writing", "PUT", "/v1/groups/g3", viewerKey, map[string]any{"name": "G"}, 403, ""},
		{"no key", "PUT", "/v1/groups/g3", "", map[string]any{"name": "G"}, 401, ""},
		{"bad vat", "PUT", "/v1/items/i9", adminKey, map[string]any{"sku": "X", "name": "X", "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "120"}, 422, "vat_rate"},
		{"id mismatch", "PUT", "/v1/groups/g4", adminKey, map[string]any{"id": "g5", "name": "G"}, 400, "id"},
		{"import unknown collection", "POST", "/v1/import", adminKey, map[string]any{"widgets": []any{}}, 400, "widgets"},
		{"bad consistency", "GET", "/v1/items/i0?consistency=strong", viewerKey, nil, 400, "consistency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := apiDo(t, c.method, a, c.path, c.key, c.body, nil)
			problemOf(t, r, c.status, c.field)
		})
	}
	// A rejected write changes nothing: the only applied entries since are
	// the FSM's answers to the 422s, which write nothing.
	var g storeline.Group
	if err := n.Replica().GetMaster(storeline.KindGroup, "food", &g); err != nil || g.Parent != "" {
		t.Fatalf("group food = %+v, %v; want unchanged", g, err)
	}
	if err := n.Replica().ScanMaster(storeline.KindPrice, "", func(storeline.Record) error { return fmt.Errorf("a price was stored") }); err != nil {
		t.Fatal(err)
	}
	cs, err := n.Changes("s1", central.Version{Index: before, Pos: central.MaxChangesPerEntry}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Changes) != 0 {
		t.Fatalf("changes after bad requests: %+v", cs.Changes)
	}
}

func TestIdempotentRetry(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	h := map[string]string{"Idempotency-Key": "k-1"}
	r1 := mustOK(t, apiDo(t, "PUT", a, "/v1/groups/g1", adminKey, map[string]any{"name": "One"}, h)).json(t)
	applies := n.FSMApplies()
	r2 := mustOK(t, apiDo(t, "PUT", a, "/v1/groups/g1", adminKey, map[string]any{"name": "One"}, h)).json(t)
	if r2["duplicate"] != true || r2["version"] != r1["version"] {
		t.Fatalf("retry = %v, first = %v", r2, r1)
	}
	if got := n.FSMApplies(); got != applies+1 {
		t.Fatalf("applies %d, want %d (the retry is an entry that writes nothing)", got, applies+1)
	}
	cs, _ := n.Changes("s1", central.Version{}, 100)
	count := 0
	for _, c := range cs.Changes {
		if c.ID == "g1" {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("g1 appears %d times in the feed", count)
	}
	// The same key with another body is a conflict.
	r3 := apiDo(t, "PUT", a, "/v1/groups/g1", adminKey, map[string]any{"name": "Two"}, h)
	problemOf(t, r3, 409, "Idempotency-Key")
}

func TestChangeFeedForStore(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 3)
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_lists/other", adminKey, map[string]any{"name": "Other", "currency": "EUR"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s2", adminKey, map[string]any{"name": "Shop 2", "time_zone": "UTC", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"other"}}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/terminals/t2", adminKey, map[string]any{"store": "s2", "name": "Till"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p1", adminKey, map[string]any{"name": "Supplier"}, nil))
	mustOK(t, apiDo(t, "DELETE", a, "/v1/items/i2", adminKey, nil, nil))

	var all []map[string]any
	after := ""
	for {
		q := "/v1/changes?store=s1&limit=2"
		if after != "" {
			q += "&after=" + after
		}
		p := mustOK(t, apiDo(t, "GET", a, q, viewerKey, nil, nil)).json(t)
		for _, c := range p["changes"].([]any) {
			all = append(all, c.(map[string]any))
		}
		after = p["next"].(string)
		if p["more"] != true {
			break
		}
	}
	seen := map[string]bool{}
	last := central.Version{}
	for _, c := range all {
		v, err := central.ParseVersion("v", c["version"].(string))
		if err != nil || v.Pack() <= last.Pack() {
			t.Fatalf("version %v after %v", c["version"], last)
		}
		last = v
		seen[c["kind"].(string)+"/"+c["id"].(string)] = true
		if c["id"] == "i2" && c["deleted"] != true {
			t.Fatalf("i2 not a tombstone: %v", c)
		}
	}
	for _, want := range []string{"store/s1", "price_list/retail", "group/food", "item/i0", "item/i1", "item/i2"} {
		if !seen[want] {
			t.Errorf("feed of s1 lacks %s: %v", want, seen)
		}
	}
	for _, not := range []string{"store/s2", "price_list/other", "terminal/t2", "supplier/p1"} {
		if seen[not] {
			t.Errorf("feed of s1 has %s", not)
		}
	}
	// The snapshot has the live records only.
	snap := mustOK(t, apiDo(t, "GET", a, "/v1/snapshot?store=s1&limit=100", viewerKey, nil, nil)).json(t)
	ids := map[string]bool{}
	for _, r := range snap["records"].([]any) {
		ids[r.(map[string]any)["id"].(string)] = true
	}
	if !ids["i0"] || ids["i2"] || ids["s2"] || !ids["s1"] {
		t.Fatalf("snapshot ids = %v", ids)
	}
}

func TestBulkImportSplitsEntries(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 0)
	// Past one entry's 2,000 records is all a split needs; the full size
	// is -central.long's.
	count, entries := 2500, 2
	if *long {
		count, entries = 100000, 50
	}
	items := make([]any, count)
	for i := range items {
		m := item(i)
		m["id"] = fmt.Sprintf("bulk%05d", i)
		items[i] = m
	}
	r := mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": items}, nil)).json(t)
	if r["records"] != float64(count) || r["entries"] != float64(entries) {
		t.Fatalf("import = %v, want %d records in %d entries of <=2000", r, count, entries)
	}
	got := 0
	if err := n.Replica().ScanMaster(storeline.KindItem, "bulk", func(storeline.Record) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != count {
		t.Fatalf("%d items stored, want %d", got, count)
	}
	// A duplicate SKU in an import is refused whole.
	bad := []any{item(90001), item(90002)}
	bad[0].(map[string]any)["id"] = "x1"
	bad[1].(map[string]any)["id"] = "x2"
	bad[1].(map[string]any)["sku"] = "SKU90001"
	res := apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"items": bad}, nil)
	if res.status != http.StatusConflict || !strings.Contains(string(res.body), "sku:SKU90001") {
		t.Fatalf("duplicate SKU import: %d %s", res.status, res.body)
	}
	var it storeline.Item
	if err := n.Replica().GetMaster(storeline.KindItem, "x1", &it); storeline.KindOf(err) != storeline.NotFound {
		t.Fatalf("x1 stored after a refused import: %v", err)
	}
}

// TestPruneForcesResync: after tombstones older than the retention are
// pruned, a cursor from before them gets a resync answer, and the snapshot
// still has every live record.
func TestPruneForcesResync(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 3)
	mustOK(t, apiDo(t, "DELETE", a, "/v1/items/i1", adminKey, nil, nil))
	old := mustOK(t, apiDo(t, "GET", a, "/v1/changes?store=s1&limit=1", viewerKey, nil, nil)).json(t)
	if old["resync"] != false {
		t.Fatalf("resync before any prune: %v", old)
	}
	cursor, _ := central.ParseVersion("next", old["next"].(string))
	payload, _ := msgpack.Marshal(map[string]any{"b": time.Now().Add(2 * time.Hour)})
	res, err := n.Submit(context.Background(), central.OpMasterPrune, "", payload)
	if err != nil || res.Err() != nil {
		t.Fatalf("prune: %v %v", err, res)
	}
	p, err := n.Changes("s1", cursor, 10)
	if err != nil || !p.Resync {
		t.Fatalf("changes after prune from %v = %+v, %v; want resync", cursor, p, err)
	}
	var rest []string
	snap, err := n.Snapshot("s1", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.Records {
		rest = append(rest, r.MasterID())
	}
	if len(snap.Records) != 5 || snap.Next != "" { // store, group, price list, i0, i2
		t.Fatalf("snapshot = %v (next %q)", rest, snap.Next)
	}
	// From the snapshot's version on, the feed works again.
	if p, err := n.Changes("s1", snap.AsOf, 10); err != nil || p.Resync || len(p.Changes) != 0 {
		t.Fatalf("changes after the snapshot = %+v, %v", p, err)
	}
}

func TestAdminMetricsAndHealth(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, "m1", filepath.Join(t.TempDir(), "m1"))
	cfg.Registerer = reg
	n := openNode(t, cfg)
	waitFor(t, "leader", 10*time.Second, n.IsLeader)
	waitFor(t, "the cluster at this binary's FSM level", 10*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l == central.FSMLevel
	})
	seed(t, n.APIAddr(), 1)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"leader":"m1"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`storeline_central_raft_state{node="m1",state="Leader"} 1`,
		`storeline_central_fsm_applied_commands_total{node="m1"} 6`, // the seed's 4, the first incarnation (restore.go), the FSM level's raise (levels.go)
		`storeline_central_fsm_split_transactions_total{node="m1"} 0`,
		`storeline_central_raft_voters{node="m1"} 1`,
		`storeline_central_gossip_members{node="m1"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
}

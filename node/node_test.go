package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

const adminToken = "admin-token-0123456789"

// startNode starts a node on a temp dir with ephemeral ports and stops it
// at the end of the test.
func startNode(t *testing.T, dir string, mod func(*node.Config)) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID = "shop-1"
	c.DataDir = dir
	c.TillAddr = "127.0.0.1:0"
	c.AdminAddr = "127.0.0.1:0"
	c.AdminToken = adminToken
	c.WALSegmentBytes = 8 << 20
	c.MaxBatchBytes = 1 << 20
	if mod != nil {
		mod(&c)
	}
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

// call does an HTTP request and returns the status and body.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func sampleImport(t *testing.T) node.MasterImport {
	t.Helper()
	var imp node.MasterImport
	for _, r := range sample.New("shop-1").Records(nil) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		imp.Records = append(imp.Records, node.MasterEntry{Kind: r.MasterKind(), Record: b})
	}
	return imp
}

func TestHealthAndMetrics(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if code, body := call(t, "GET", n.AdminURL()+"/healthz", "", nil); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("GET /healthz = %d %s", code, body)
	}
	code, body := call(t, "GET", n.AdminURL()+"/metrics", "", nil)
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{"go_goroutines", "process_", "storeline_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestAdminNeedsToken(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/admin/v1/master"}, {"POST", "/admin/v1/terminals"}, {"POST", "/admin/v1/sellers"},
		{"GET", "/admin/v1/backup"}, {"GET", "/admin/v1/conservation"},
	} {
		for _, tok := range []string{"", "wrong-token-0123456789"} {
			if code, _ := call(t, tc.method, n.AdminURL()+tc.path, tok, map[string]any{}); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q = %d, want 401", tc.method, tc.path, tok, code)
			}
		}
	}
}

func TestAdminImportTerminalSeller(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	imp := sampleImport(t)
	code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, imp)
	if code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	var res struct{ Version, Count uint64 }
	json.Unmarshal(body, &res)
	if res.Count != uint64(len(imp.Records)) || res.Version != n.Ledger().MasterVersion() {
		t.Errorf("import = %+v, want count %d, version %d", res, len(imp.Records), n.Ledger().MasterVersion())
	}

	// A bad record is refused, naming the record and its field.
	bad := node.MasterImport{Records: []node.MasterEntry{imp.Records[0], {Kind: "item", Record: json.RawMessage(`{"ID":"x","SKU":"x","Name":"x","Group":"g","Dept":"d","Unit":"pcs","Barcodes":[{"Code":"123"}]}`)}}}
	code, body = call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, bad)
	if code != 400 || !strings.Contains(string(body), `"field":"records[1].record.barcodes[0].code"`) {
		t.Errorf("bad import = %d %s, want 400 naming records[1].record.barcodes[0].code", code, body)
	}
	code, body = call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, map[string]any{"records": []any{map[string]any{"kind": "spaceship", "record": map[string]any{}}}})
	if code != 400 || !strings.Contains(string(body), "records[0].kind") {
		t.Errorf("unknown kind = %d %s", code, body)
	}

	code, body = call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-7"})
	var term node.TerminalResponse
	json.Unmarshal(body, &term)
	if code != 200 || term.ID != "till-7" || len(term.Token) < node.MinTokenLen {
		t.Fatalf("issue terminal = %d %s", code, body)
	}
	var tr storeline.Terminal
	if err := n.Ledger().GetMaster(storeline.KindTerminal, "till-7", &tr); err != nil {
		t.Fatal(err)
	}
	if tr.TokenHash != storeline.TokenHash(term.Token) || tr.Store != "shop-1" {
		t.Errorf("stored terminal = %+v, want the token's hash and store shop-1", tr)
	}

	code, body = call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, node.SellerRequest{ID: "s-1", Name: "Sam", Role: storeline.Cashier, PIN: "2468"})
	if code != 200 {
		t.Fatalf("set seller = %d %s", code, body)
	}
	var s storeline.Seller
	if err := n.Ledger().GetMaster(storeline.KindSeller, "s-1", &s); err != nil {
		t.Fatal(err)
	}
	if !storeline.CheckPIN(s.PINHash, "2468") || storeline.CheckPIN(s.PINHash, "2469") {
		t.Errorf("stored seller's PIN hash does not check")
	}
	for _, req := range []node.SellerRequest{
		{ID: "s-2", Name: "X", Role: storeline.Cashier, PIN: "12"},
		{ID: "s-2", Name: "X", Role: "boss", PIN: "1234"},
	} {
		if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, req); code != 400 {
			t.Errorf("set seller %+v = %d %s, want 400", req, code, body)
		}
	}
	if code, body := call(t, "GET", n.AdminURL()+"/admin/v1/conservation", adminToken, nil); code != 200 || !strings.Contains(string(body), `"ok":true`) {
		t.Errorf("conservation = %d %s", code, body)
	}
}

func TestBodyLimit(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *node.Config) { c.MaxImportBytes = node.MinBodyBytes })
	code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized import = %d %s, want 413", code, body)
	}
}

// TestProvisionedTerminals: terminals in the config are stored at start.
func TestProvisionedTerminals(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *node.Config) {
		c.Terminals = []node.TerminalToken{{ID: "till-1", Token: "till-one-token-0123456789"}}
	})
	var tr storeline.Terminal
	if err := n.Ledger().GetMaster(storeline.KindTerminal, "till-1", &tr); err != nil {
		t.Fatal(err)
	}
	if tr.TokenHash != storeline.TokenHash("till-one-token-0123456789") {
		t.Errorf("provisioned terminal = %+v", tr)
	}
}

// TestBackupRestore streams a backup over the admin API, restores it into
// a new directory and opens a node there.
func TestBackupRestore(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	version := n.Ledger().MasterVersion()
	code, backup := call(t, "GET", n.AdminURL()+"/admin/v1/backup", adminToken, nil)
	if code != 200 || len(backup) == 0 {
		t.Fatalf("backup = %d, %d bytes", code, len(backup))
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := ledger.Restore(dir, bytes.NewReader(backup), n.Ledger().Epoch()+1); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, dir, nil)
	if got := n2.Ledger().MasterVersion(); got < version {
		t.Errorf("restored MasterVersion = %d, want >= %d", got, version)
	}
	var it storeline.Item
	if err := n2.Ledger().GetMaster(storeline.KindItem, string(sample.MilkItem), &it); err != nil {
		t.Errorf("restored GetMaster(milk) = %v", err)
	}
}

// TestRunStopsOnCancel: Run returns after its context ends, with the
// listeners closed.
func TestRunStopsOnCancel(t *testing.T) {
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := http.Get(n.AdminURL() + "/healthz"); err == nil {
		t.Errorf("admin listener still answers after Run returned")
	}
}

// TestTillAPIWiring drives the tills' API through a node: a terminal token
// issued by the admin API authenticates, a seller set by the admin API logs
// in with the PIN, a receipt is committed and its retry answers the same
// position, and stock, catalogue changes and metrics see it.
func TestTillAPIWiring(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
	var term node.TerminalResponse
	json.Unmarshal(body, &term)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, node.SellerRequest{ID: "cashier-1", Name: "Ann", Role: storeline.Cashier, PIN: "1234"}); code != 200 {
		t.Fatalf("seller = %d %s", code, body)
	}
	till := n.TillURL()
	if code, body := call(t, "GET", till+"/v1/barcodes/"+sample.EAN13("400000000001"), term.Token, nil); code != 200 || !strings.Contains(string(body), string(sample.MilkItem)) {
		t.Errorf("GET barcode = %d %s", code, body)
	}
	if code, _ := call(t, "GET", till+"/v1/barcodes/"+sample.EAN13("400000000001"), "not-a-terminal-token", nil); code != 401 {
		t.Errorf("GET barcode with a bad token = %d, want 401", code)
	}
	if code, body := call(t, "POST", till+"/v1/sessions", term.Token, map[string]string{"seller": "cashier-1", "pin": "1234"}); code != 201 {
		t.Errorf("login = %d %s", code, body)
	}
	receipt := map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:00:00Z",
		"lines":       []map[string]string{{"sku": "SKU00001", "qty": "2", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "5.00"}},
	}
	var first, retry struct{ Seq, Epoch uint64 }
	code, body := call(t, "POST", till+"/v1/receipts", term.Token, receipt)
	if code != 201 || json.Unmarshal(body, &first) != nil || first.Seq == 0 {
		t.Fatalf("POST receipt = %d %s", code, body)
	}
	code, body = call(t, "POST", till+"/v1/receipts", term.Token, receipt)
	if code != 200 || json.Unmarshal(body, &retry) != nil || retry != first {
		t.Errorf("retry = %d %s, want 200 at %+v", code, body, first)
	}
	if code, body := call(t, "GET", till+"/v1/stock/SKU00001", term.Token, nil); code != 200 || !strings.Contains(string(body), `"on_hand":"-2"`) {
		t.Errorf("GET stock = %d %s, want on_hand -2", code, body)
	}
	if code, body := call(t, "GET", till+"/v1/catalog/changes?after=0&limit=5", term.Token, nil); code != 200 || !strings.Contains(string(body), "store") {
		t.Errorf("GET catalog changes = %d %s", code, body)
	}
	if code, body := call(t, "GET", n.AdminURL()+"/admin/v1/conservation", adminToken, nil); code != 200 {
		t.Errorf("conservation = %d %s", code, body)
	}
	_, metrics := call(t, "GET", n.AdminURL()+"/metrics", "", nil)
	for _, want := range []string{"storeline_receipts_committed_total 1", "storeline_ledger_events_appended_total", "storeline_node_info{"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var page node.JournalPage
	_, body = call(t, "GET", n.AdminURL()+"/admin/v1/journal", adminToken, nil)
	if json.Unmarshal(body, &page) != nil || len(page.Events) != 1 || page.Events[0].Seq != first.Seq || page.Events[0].Kind != storeline.KindReceipt {
		t.Errorf("journal = %s, want the one receipt", body)
	}
}

// TestStartFailsCleanly: a busy port fails Start, releases the ledger (a
// second node can open the same directory) and leaves Stop harmless.
func TestStartFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	busy := startNode(t, t.TempDir(), nil)
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", dir, adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", strings.TrimPrefix(busy.AdminURL(), "http://")
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("Start on a busy admin port = %v, want an admin listener error", err)
	}
	if err := n.Stop(); err != nil {
		t.Errorf("Stop after a failed Start = %v", err)
	}
	startNode(t, dir, nil) // the ledger was closed: the directory opens again
}

// TestTillAPIReadsConfiguredClock: the tills' API prices at the node's
// configured clock, not the host's. A price effective from 2031 is the
// item's price on a node whose clock reads mid-2031, and not yet on one
// whose clock reads the host's time.
func TestTillAPIReadsConfiguredClock(t *testing.T) {
	future := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)
	imp := sampleImport(t)
	later, err := json.Marshal(&storeline.Price{List: "base", Item: sample.MilkItem,
		From: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Price: decimal.RequireFromString("9.99")})
	if err != nil {
		t.Fatal(err)
	}
	imp.Records = append(imp.Records, node.MasterEntry{Kind: storeline.KindPrice, Record: later})
	priceAt := func(clock func() time.Time) string {
		n := startNode(t, t.TempDir(), func(c *node.Config) { c.Clock = clock })
		if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, imp); code != 200 {
			t.Fatalf("import = %d %s", code, body)
		}
		_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
		var term node.TerminalResponse
		if err := json.Unmarshal(body, &term); err != nil {
			t.Fatalf("terminal = %s", body)
		}
		code, body := call(t, "GET", n.TillURL()+"/v1/items/SKU00001", term.Token, nil)
		var it struct{ Price *string }
		if code != 200 || json.Unmarshal(body, &it) != nil || it.Price == nil {
			t.Fatalf("GET item = %d %s", code, body)
		}
		return *it.Price
	}
	if got := priceAt(func() time.Time { return future }); got != "9.99" {
		t.Errorf("price on a node whose clock reads %s = %s, want 9.99 (effective from 2031-01-01)", future, got)
	}
	if got := priceAt(nil); got == "9.99" {
		t.Errorf("price on a node at the host's time = %s, the 2031 price", got)
	}
}

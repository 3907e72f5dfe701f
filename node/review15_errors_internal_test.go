package node

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/ledger"
)

// TestReview15TillProblemHidesFilePaths: once a failed WAL sync (an
// *fs.PathError, as os.File.Sync returns) poisoned the ledger, the tills'
// API answers a till's write with its status and a detail that names
// neither the data directory's files nor the system's error text (as the
// admin API does since review 14); the log keeps the cause.
func TestReview15TillProblemHidesFilePaths(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	var logMu sync.Mutex
	logs := &bytes.Buffer{}
	lw := writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) })
	n, err := New(reviewNodeConfig(dir), slog.New(slog.NewTextHandler(lw, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	walFile := filepath.Join(dir, "wal", "wal-0000000000000001.seg")
	n.seams = &ledger.Seams{Sync: func(f ledger.File) error {
		if fail.Load() {
			return &fs.PathError{Op: "sync", Path: walFile, Err: syscall.EIO}
		}
		return f.Sync()
	}}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	do := func(method, url, token, session string, v any) (int, []byte) {
		t.Helper()
		body, _ := json.Marshal(v)
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		if session != "" {
			req.Header.Set("X-Session", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var imp MasterImport
	for _, r := range sample.New("shop-1").Records(nil) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		imp.Records = append(imp.Records, MasterEntry{Kind: r.MasterKind(), Record: b})
	}
	if code, b := do("POST", n.AdminURL()+"/admin/v1/master", reviewAdminToken, "", imp); code != http.StatusOK {
		t.Fatalf("import = %d %s", code, b)
	}
	code, b := do("POST", n.AdminURL()+"/admin/v1/terminals", reviewAdminToken, "", TerminalRequest{ID: "till-1"})
	var term TerminalResponse
	if code != http.StatusOK || json.Unmarshal(b, &term) != nil {
		t.Fatalf("terminal = %d %s", code, b)
	}
	if code, b := do("POST", n.AdminURL()+"/admin/v1/sellers", reviewAdminToken, "", SellerRequest{ID: "cashier-1", Name: "Ann", Role: storeline.Cashier, PIN: "1234"}); code != http.StatusOK {
		t.Fatalf("seller = %d %s", code, b)
	}
	fail.Store(true)
	for i := 0; i < 2; i++ {
		code, b := do("POST", n.TillURL()+"/v1/receipts", term.Token, "", map[string]any{
			"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
			"occurred_at": "2026-11-28T10:00:00Z",
			"lines":       []map[string]string{{"sku": "SKU00001", "qty": "2", "price": "1.19"}},
			"payments":    []map[string]string{{"method": "cash", "amount": "5.00"}},
		})
		if code < 500 {
			t.Fatalf("a write whose sync failed answered %d %s", code, b)
		}
		if strings.Contains(string(b), dir) || strings.Contains(string(b), "input/output error") {
			t.Errorf("POST /v1/receipts = %d %s: the problem names the data directory's files", code, b)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), walFile) {
		t.Errorf("the log lost the cause (%s): %s", walFile, logs.String())
	}
}

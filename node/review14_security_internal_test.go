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
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview14AdminProblemHidesFilePaths: once a failed WAL sync (an
// *fs.PathError, as os.File.Sync returns) poisoned the ledger, the admin
// API's problem bodies say the node is unavailable without the data
// directory's paths or the Go error text; the log keeps the cause.
func TestReview14AdminProblemHidesFilePaths(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	logs := &bytes.Buffer{}
	logMu := make(chan struct{}, 1) // a lock: the node logs from many goroutines
	logMu <- struct{}{}
	lw := writerFunc(func(p []byte) (int, error) { <-logMu; defer func() { logMu <- struct{}{} }(); return logs.Write(p) })
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
	fail.Store(true)
	post := func(id string) (int, []byte) {
		body, _ := json.Marshal(TerminalRequest{ID: storeline.TerminalID("till-" + id)})
		req, _ := http.NewRequest("POST", n.AdminURL()+"/admin/v1/terminals", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+reviewAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, id := range []string{"1", "2"} {
		code, b := post(id)
		if code == http.StatusOK {
			t.Fatalf("a write whose sync failed answered 200")
		}
		if strings.Contains(string(b), dir) || strings.Contains(string(b), "input/output error") {
			t.Errorf("POST /admin/v1/terminals = %d %s: the problem names the data directory's files", code, b)
		}
	}
	for _, path := range []string{"/admin/v1/backup", "/admin/v1/journal"} {
		req, _ := http.NewRequest("GET", n.AdminURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+reviewAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), dir) {
			t.Errorf("GET %s = %d %s: the problem names the data directory's files", path, resp.StatusCode, b)
		}
	}
	<-logMu
	defer func() { logMu <- struct{}{} }()
	if !strings.Contains(logs.String(), walFile) {
		t.Errorf("the log lost the cause (%s): %s", walFile, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

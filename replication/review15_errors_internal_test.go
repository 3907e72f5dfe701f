package replication

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/storeline/storeline"
)

// TestReview15ProblemHidesFileErrors: a push or pull whose backend failed
// on a file operation (a poisoned ledger, a full disk at head office) is
// answered to the shop with its status, kind and field, and a detail that
// names neither head office's data directory nor the system's error text;
// the log keeps the cause. Bad input is still answered in full.
func TestReview15ProblemHidesFileErrors(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "fsm", "000001.vlog")
	cases := []struct {
		name      string
		err       error
		status    int
		kind      string
		field     string
		secret    []string // must not be in the body
		wantInLog string
	}{
		{"sync failed", fmt.Errorf("replication: push s1/1: %w", storeline.E("ledger.Replica.Sync", storeline.Unavailable, &fs.PathError{Op: "sync", Path: wal, Err: syscall.EIO})),
			http.StatusServiceUnavailable, "unavailable", "", []string{dir, "input/output error"}, wal},
		{"disk full", storeline.E("ledger.commit", storeline.InsufficientStorage, os.NewSyscallError("fallocate "+wal, syscall.ENOSPC)),
			http.StatusInsufficientStorage, "insufficient_storage", "", []string{dir, "fallocate", "device"}, wal},
		{"rename failed", &storeline.Error{Op: "ledger.restore", Kind: storeline.Unavailable, Field: "snapshot", Err: &os.LinkError{Op: "rename", Old: wal + ".tmp", New: wal, Err: syscall.EXDEV}},
			http.StatusServiceUnavailable, "unavailable", "snapshot", []string{dir, "cross-device"}, wal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &bytes.Buffer{}
			s := &Server{log: slog.New(slog.NewTextHandler(logs, nil))}
			w := httptest.NewRecorder()
			code := s.problem(w, httptest.NewRequest("POST", "/v1/replication/push", nil), c.err)
			body := w.Body.String()
			var p map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if code != c.status || w.Code != c.status || p["kind"] != c.kind || p["status"] != float64(c.status) {
				t.Errorf("answer %d %s, want %d kind %s", w.Code, body, c.status, c.kind)
			}
			if f, _ := p["field"].(string); f != c.field {
				t.Errorf("field %q, want %q (%s)", f, c.field, body)
			}
			for _, sec := range c.secret {
				if strings.Contains(body, sec) {
					t.Errorf("the answer to the shop holds %q: %s", sec, body)
				}
			}
			if d, _ := p["detail"].(string); d == "" {
				t.Errorf("no detail: %s", body)
			}
			if !strings.Contains(logs.String(), c.wantInLog) {
				t.Errorf("the log lost the cause %q: %s", c.wantInLog, logs.String())
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		s := &Server{log: slog.New(slog.DiscardHandler)}
		w := httptest.NewRecorder()
		s.problem(w, httptest.NewRequest("POST", "/v1/replication/push", nil), storeline.Invalidf("events[2].seq", "7 after 5: a gap"))
		var p map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusBadRequest || p["field"] != "events[2].seq" || !strings.Contains(fmt.Sprint(p["detail"]), "7 after 5: a gap") {
			t.Errorf("bad input answered %d %s", w.Code, w.Body)
		}
	})
}

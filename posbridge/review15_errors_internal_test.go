package posbridge

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

// TestReview15ProblemHidesFileErrors: a till's request that failed on a
// file operation of the node (a poisoned ledger after a failed WAL sync,
// a full disk) is answered with its status and field, and a detail that
// names neither the node's data directory nor the system's error text;
// the log keeps the cause. Bad input is still answered in full.
func TestReview15ProblemHidesFileErrors(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "wal", "wal-0000000000000001.seg")
	cases := []struct {
		name   string
		err    error
		status int
		field  string
		secret []string
	}{
		{"sync failed", storeline.E("ledger.commit", storeline.Unavailable, &fs.PathError{Op: "sync", Path: wal, Err: syscall.EIO}),
			http.StatusServiceUnavailable, "", []string{dir, "input/output error"}},
		{"disk full", storeline.E("ledger.commit", storeline.InsufficientStorage, fmt.Errorf("roll segment: %w", os.NewSyscallError("fallocate "+wal, syscall.ENOSPC))),
			http.StatusInsufficientStorage, "", []string{dir, "fallocate", "device"}},
		{"rename failed", &storeline.Error{Op: "ledger.roll", Kind: storeline.Unavailable, Field: "segment", Err: &os.LinkError{Op: "rename", Old: wal + ".tmp", New: wal, Err: syscall.EXDEV}},
			http.StatusServiceUnavailable, "segment", []string{dir, "cross-device"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &bytes.Buffer{}
			s := &Server{log: slog.New(slog.NewTextHandler(logs, nil))}
			w := httptest.NewRecorder()
			s.problem(w, httptest.NewRequest("POST", "/v1/receipts", nil), c.err)
			body := w.Body.String()
			var p problemJSON
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if w.Code != c.status || p.Status != c.status || p.Field != c.field {
				t.Errorf("answer %d %s, want %d field %q", w.Code, body, c.status, c.field)
			}
			for _, sec := range c.secret {
				if strings.Contains(body, sec) {
					t.Errorf("the answer to the till holds %q: %s", sec, body)
				}
			}
			if p.Detail == "" {
				t.Errorf("no detail: %s", body)
			}
			if !strings.Contains(logs.String(), wal) || !strings.Contains(logs.String(), "/v1/receipts") {
				t.Errorf("the log lost the cause (%s) or the request: %s", wal, logs.String())
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		s := &Server{log: slog.New(slog.DiscardHandler)}
		w := httptest.NewRecorder()
		s.problem(w, httptest.NewRequest("POST", "/v1/receipts", nil), storeline.Invalidf("lines[2].qty", "must be positive"))
		var p problemJSON
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusUnprocessableEntity || p.Field != "lines[2].qty" || !strings.Contains(p.Detail, "must be positive") {
			t.Errorf("bad input answered %d %s", w.Code, w.Body)
		}
		w = httptest.NewRecorder()
		s.problem(w, httptest.NewRequest("POST", "/v1/receipts", nil), errMalformed("lines[0].qty", "want a decimal string"))
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusBadRequest || p.Field != "lines[0].qty" || !strings.Contains(p.Detail, "want a decimal string") {
			t.Errorf("malformed input answered %d %s", w.Code, w.Body)
		}
	})
}

package central

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/storeline/storeline"
)

// TestReview15ProblemHidesFileErrors: an API request that failed on a
// file operation of head office (a failed sync of the FSM's store, a full
// disk) is answered with its status, kind and field, and a detail that
// names neither the data directory nor the system's error text; the log
// keeps the cause (Node.problem logs it). Bad input is still answered in
// full.
func TestReview15ProblemHidesFileErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fsm", "000001.vlog")
	logs := &lockedBuffer{}
	n := &Node{log: slog.New(slog.NewTextHandler(logs, nil))}
	cases := []struct {
		name   string
		err    error
		status int
		kind   string
		field  string
		secret []string
	}{
		{"sync failed", storeline.E("ledger.Replica.Sync", storeline.Unavailable, &fs.PathError{Op: "sync", Path: file, Err: syscall.EIO}),
			http.StatusServiceUnavailable, "unavailable", "", []string{dir, "input/output error"}},
		{"disk full", storeline.E("central.backup", storeline.InsufficientStorage, fmt.Errorf("write backup: %w", os.NewSyscallError("fallocate "+file, syscall.ENOSPC))),
			http.StatusInsufficientStorage, "insufficient_storage", "", []string{dir, "fallocate", "device"}},
		{"rename failed", &storeline.Error{Op: "central.restore", Kind: storeline.Unavailable, Field: "snapshot", Err: &os.LinkError{Op: "rename", Old: file + ".tmp", New: file, Err: syscall.EXDEV}},
			http.StatusServiceUnavailable, "unavailable", "snapshot", []string{dir, "cross-device"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			n.problem(w, httptest.NewRequest("POST", "/v1/import", nil), c.err)
			body := w.Body.String()
			var p problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if w.Code != c.status || p.Status != c.status || p.Kind != c.kind || p.Field != c.field {
				t.Errorf("answer %d %s, want %d kind %s field %q", w.Code, body, c.status, c.kind, c.field)
			}
			for _, sec := range c.secret {
				if strings.Contains(body, sec) {
					t.Errorf("the answer holds %q: %s", sec, body)
				}
			}
			if p.Detail == "" {
				t.Errorf("no detail: %s", body)
			}
		})
	}
	if !strings.Contains(logs.String(), file) || !strings.Contains(logs.String(), "/v1/import") {
		t.Errorf("the log lost the causes (%s) or the request: %s", file, logs.String())
	}
	t.Run("bad input", func(t *testing.T) {
		w := httptest.NewRecorder()
		writeProblem(w, httptest.NewRequest("PUT", "/v1/items/x", nil), storeline.Invalidf("price", "-1.00: must not be negative"))
		var p problem
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusUnprocessableEntity || p.Field != "price" || !strings.Contains(p.Detail, "-1.00: must not be negative") {
			t.Errorf("bad input answered %d %s", w.Code, w.Body)
		}
		w = httptest.NewRecorder()
		writeProblem(w, httptest.NewRequest("PUT", "/v1/items/x", nil), errMalformed("qty", "want a decimal string"))
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusBadRequest || p.Field != "qty" || !strings.Contains(p.Detail, "want a decimal string") {
			t.Errorf("malformed input answered %d %s", w.Code, w.Body)
		}
	})
}

// TestReview15ProblemKeepsNetworkErrors: a write forwarded to a leader
// that refused the connection (a network error, which wraps an
// *os.SyscallError too) is still answered with its detail: "outcome
// unknown, retrying ... is safe", as README and openapi.yaml promise.
func TestReview15ProblemKeepsNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, derr := (&http.Client{}).Post("http://"+addr+"/internal/v1/submit", "application/msgpack", nil)
	var se *os.SyscallError
	if derr == nil || !errors.As(derr, &se) {
		t.Fatalf("a post to a closed port = %v, want a network error wrapping an *os.SyscallError", derr)
	}
	err = storeline.E("central.Submit", storeline.Unavailable, fmt.Errorf("outcome unknown, retrying with the same idempotency key is safe: %w", derr))
	w := httptest.NewRecorder()
	writeProblem(w, httptest.NewRequest("PUT", "/v1/items/x", nil), err)
	var p problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(p.Detail, "outcome unknown") || !strings.Contains(p.Detail, "refused") {
		t.Errorf("a forward refused by the leader answered %d %s, want 503 saying the outcome is unknown", w.Code, w.Body)
	}
}

// lockedBuffer is a bytes.Buffer safe for the goroutines that log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

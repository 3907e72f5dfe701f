package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline/ledger"
)

const reviewAdminToken = "admin-token-0123456789"

func reviewNodeConfig(dir string) Config {
	c := DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", dir, reviewAdminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	return c
}

func reviewGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
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

// TestReviewHealthzNotOkWhenLedgerPoisoned: once a failed WAL sync has
// poisoned the ledger, the node refuses every sale until it is restarted;
// /healthz (what a supervisor or load balancer polls) must not go on
// answering 200 "ok".
func TestReviewHealthzNotOkWhenLedgerPoisoned(t *testing.T) {
	var fail atomic.Bool
	n, err := New(reviewNodeConfig(t.TempDir()), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.seams = &ledger.Seams{Sync: func(f ledger.File) error {
		if fail.Load() {
			return errors.New("injected: fdatasync failed (EIO)")
		}
		return f.Sync()
	}}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	if code, body := reviewGet(t, n.AdminURL()+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthy node: GET /healthz = %d %s", code, body)
	}

	fail.Store(true)
	body, _ := json.Marshal(TerminalRequest{ID: "till-1"})
	req, _ := http.NewRequest("POST", n.AdminURL()+"/admin/v1/terminals", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+reviewAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("a write whose sync failed answered 200")
	}
	if n.Ledger().Poisoned() == nil {
		t.Fatalf("the ledger is not poisoned after a failed sync")
	}
	code, hb := reviewGet(t, n.AdminURL()+"/healthz")
	var h map[string]any
	_ = json.Unmarshal(hb, &h)
	if code == http.StatusOK || h["status"] == "ok" {
		t.Fatalf("poisoned ledger: GET /healthz = %d %s, want 503 and a status other than ok", code, hb)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("poisoned ledger: GET /healthz = %d, want 503", code)
	}
}

// TestReviewRunReturnsWhenStopped: Run serving a started node returns once
// the node is stopped (by an embedder's Stop), rather than waiting on a
// context nobody may ever cancel with nothing left serving; and Run on a
// node already stopped says so instead of blocking.
func TestReviewRunReturnsWhenStopped(t *testing.T) {
	n, err := New(reviewNodeConfig(t.TempDir()), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	n.runWaits = func() { close(waiting) }
	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background()) }()
	<-waiting
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Stop = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Run still blocked 5s after the node was stopped")
	}

	// Run on a stopped node: an error at once, not a wait on ctx.
	again := make(chan error, 1)
	go func() { again <- n.Run(context.Background()) }()
	select {
	case err := <-again:
		if err == nil {
			t.Errorf("Run on a stopped node = nil, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Run on a stopped node blocked")
	}
}

package node_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

func reviewConfig(dir string) node.Config {
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", dir, adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	return c
}

// TestReviewRestartOnSameRegistry: a node stopped and started again in the
// same process, on the registry the caller passes in, starts: Stop takes
// its metrics off the registry as the ledger takes its own.
func TestReviewRestartOnSameRegistry(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	for i := range 3 {
		c := reviewConfig(dir)
		if i == 2 {
			// With replication (and the loyalty broker): its metrics too.
			// Nothing listens there; the client only backs off.
			c.Replication.Central, c.Replication.Token = []string{"http://127.0.0.1:1"}, "shop-1-replication-token"
		}
		n, err := node.New(c, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatalf("run %d: New = %v", i, err)
		}
		if err := n.Start(); err != nil {
			t.Fatalf("run %d: Start = %v", i, err)
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("run %d: gather = %v", i, err)
		}
		if err := n.Stop(); err != nil {
			t.Fatalf("run %d: Stop = %v", i, err)
		}
	}
	// A failed Start takes its metrics off too.
	busy := startNode(t, t.TempDir(), nil)
	for i := range 2 {
		c := reviewConfig(dir)
		if i == 0 {
			c.AdminAddr = strings.TrimPrefix(busy.AdminURL(), "http://")
		}
		n, err := node.New(c, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatalf("after a failed start %d: New = %v", i, err)
		}
		if err := n.Start(); (err == nil) != (i == 1) {
			t.Fatalf("start %d = %v", i, err)
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReviewStopBeforeStart: Stop before Start leaves a node that Start
// refuses, rather than one whose later Stop does nothing (listeners and
// ledger left open).
func TestReviewStopBeforeStart(t *testing.T) {
	dir := t.TempDir()
	n, err := node.New(reviewConfig(dir), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err == nil {
		n.Stop()
		if n2 := n.Ledger(); n2 != nil {
			if _, _, err := n2.Meta("x"); err == nil {
				t.Errorf("Start after Stop succeeded, and the next Stop left the ledger open")
			}
		}
	}
}

// TestReviewStopDrainsInFlight: a request whose body is still arriving when
// Stop begins is answered in full, and what it stored is there after a
// restart: the ledger closes only after the answer.
func TestReviewStopDrainsInFlight(t *testing.T) {
	dir := t.TempDir()
	n, err := node.New(reviewConfig(dir), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(node.TerminalRequest{ID: "till-9", Name: "Till 9"})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", n.AdminURL()+"/admin/v1/terminals", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.ContentLength = int64(len(body))
	// The body goes only after the server's 100 Continue, which it sends
	// when the handler reads the body: once the first byte is taken, the
	// handler is running.
	req.Header.Set("Expect", "100-continue")
	hc := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	type answer struct {
		code int
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, b, err}
	}()
	// The server has read the first byte: the request is in flight.
	if _, err := pw.Write(body[:1]); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop() }()
	if _, err := pw.Write(body[1:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	a := <-answered
	if a.err != nil || a.code != 200 {
		t.Fatalf("in-flight request during Stop = %d %s %v, want 200", a.code, a.body, a.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v", err)
	}
	var term node.TerminalResponse
	if err := json.Unmarshal(a.body, &term); err != nil || term.Token == "" {
		t.Fatalf("answer %s", a.body)
	}
	led, err := ledger.Open(ledger.DefaultOptions(dir, "shop-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	var got storeline.Terminal
	if err := led.GetMaster(storeline.KindTerminal, "till-9", &got); err != nil {
		t.Fatalf("the terminal answered 200 during Stop is not in the ledger: %v", err)
	}
}

package central_test

// Review 16: central cluster operations (Raft, its log store, the
// metrics ops read), each defect shown by a test here before it was fixed.

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline/central"
)

// TestReview16OpsBrokenRaftLogExitsWithoutPanic: a leader whose Raft log
// store fails (a failing disk) reports it on Failed, so `storeline
// central` closes it and exits 1. Raft, meanwhile, steps down and stands
// for election in a new term, which it must store first; hashicorp/raft
// panics when it cannot, and the panic, on Raft's own goroutine, killed
// the process (exit 2, a stack trace, no orderly close) before or while
// the command closed the node.
func TestReview16OpsBrokenRaftLogExitsWithoutPanic(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	if err := n.BreakLogStore(); err != nil {
		t.Fatal(err)
	}
	// A write the leader cannot store: it steps down.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	submitted := make(chan error, 1)
	go func() {
		_, err := n.Submit(ctx, central.OpMasterDelete, "review16-broken", []byte{0xc0})
		submitted <- err
	}()
	select {
	case err := <-n.Failed():
		if err == nil || !strings.Contains(err.Error(), "raft log") {
			t.Fatalf("Failed = %v, want the raft log store named", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a leader whose Raft log store fails was not reported on Failed")
	}
	// Raft stands for election again: the new term's store fails.
	waitFor(t, "Raft to try storing a new term", 15*time.Second, func() bool { return n.RaftStoreHalts() > 0 })
	if resp, err := http.Get("http://" + n.AdminAddr() + "/healthz"); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz of a node whose Raft stopped = %d, want 503", resp.StatusCode)
	}
	// As `storeline central` does on Failed: Close must not hang on Raft.
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Close hung on a node whose Raft log store failed")
	}
	cancel()
	if err := <-submitted; err == nil {
		t.Error("a write the Raft log store could not store succeeded")
	}
}

// scrapeSample returns the value of the series line (name with its
// labels, as the text format writes it) on the node's real /metrics.
func scrapeSample(t *testing.T, n *central.Node, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestReview16OpsCommitLatencyAndSnapshotTime: ops read how long a
// command takes from its submit on the leader to its outcome (committed
// and applied), as a histogram, and when the node last stored a
// snapshot of the FSM (a node whose snapshots stopped keeps every log
// entry and replays them all at restart). Neither was exported.
func TestReview16OpsCommitLatencyAndSnapshotTime(t *testing.T) {
	const (
		commits = `storeline_central_raft_commit_duration_seconds_count{node="c1"}`
		sum     = `storeline_central_raft_commit_duration_seconds_sum{node="c1"}`
		snap    = `storeline_central_raft_last_snapshot_timestamp_seconds{node="c1"}`
	)
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	cfg.Registerer = prometheus.NewRegistry() // as `storeline central` does
	n := openNode(t, cfg)
	waitFor(t, "bootstrap leader", 10*time.Second, n.IsLeader)
	if v, ok := scrapeSample(t, n, snap); !ok || v != 0 {
		t.Errorf("%s = %v (exported %v) on a node that never stored a snapshot, want 0", snap, v, ok)
	}
	before, _ := scrapeSample(t, n, commits)
	start := time.Now()
	mustOK(t, apiDo(t, http.MethodPut, n.APIAddr(), "/v1/groups/g1", adminKey, map[string]any{"name": "G"}, nil))
	took := time.Since(start)
	after, ok := scrapeSample(t, n, commits)
	if !ok || after < before+1 {
		t.Fatalf("%s = %v (exported %v) after a write, %v before", commits, after, ok, before)
	}
	if s, _ := scrapeSample(t, n, sum); s <= 0 {
		t.Errorf("%s = %v after %v commits (the last one answered in %v)", sum, s, after, took)
	}

	start = time.Now().Truncate(time.Millisecond)
	if err := n.TakeSnapshot(); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	at, ok := scrapeSample(t, n, snap)
	if !ok || at < float64(start.UnixMilli())/1000 || at > float64(end.UnixMilli())/1000+0.001 {
		t.Fatalf("%s = %v (exported %v), want within [%v, %v]", snap, at, ok, start, end)
	}
	// At a restart, the time of the newest snapshot on disk.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Bootstrap = false
	m := openNode(t, cfg)
	if v, ok := scrapeSample(t, m, snap); !ok || v < float64(start.UnixMilli())/1000 || v > at {
		t.Errorf("%s = %v (exported %v) after a restart, want the stored snapshot's time (%v, taken from %v)", snap, v, ok, at, start)
	}
}

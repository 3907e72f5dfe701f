package central_test

// Review 15: central's operational metrics and the request paths into
// Raft, each defect shown by a test here before it was fixed.

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestReview15LastContactWithoutALeader: a node that has never heard
// from a leader since it started (restarted while the rest of its cluster
// is down) must not report 0 seconds since the leader was last heard
// from: 0 reads as "in contact" on a dashboard and to an alert. It
// reports the time since it started.
func TestReview15LastContactWithoutALeader(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		r := prometheus.NewRegistry()
		regs[cfg.NodeID] = r
		cfg.Registerer = r
	})
	for i := range c.nodes {
		c.stopNode(i)
	}
	c.startNode(0, nil) // its peers, in its Raft configuration, are down
	n := c.nodes[0]
	var v float64
	waitFor(t, "last contact above 0 on a node that never heard from a leader", 5*time.Second, func() bool {
		v, _ = metricValue(t, regs["c1"], "storeline_central_raft_last_contact_seconds")
		return v > 0
	})
	if n.Leader() != "" {
		t.Fatalf("c1 found a leader (%q) with its peers down", n.Leader())
	}
}

// TestReview15LeaderWinningAgainCounts: a leader that loses leadership
// and wins it back in a new term is an election like any other, and
// StorelineCentralLeaderFlapping must see it: every node counts it once.
// Before, only another server becoming leader counted, so a leader that
// kept losing and re-winning (a flapping link or a slow disk) counted
// nothing.
func TestReview15LeaderWinningAgainCounts(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		r := prometheus.NewRegistry()
		regs[cfg.NodeID] = r
		cfg.Registerer = r
		if cfg.NodeID != "c1" {
			// Only c1 stands for election in this test: the others wait
			// far longer than it for a leader before they stand.
			cfg.HeartbeatTimeout = 30 * time.Second
			cfg.ElectionTimeout = 30 * time.Second
		}
	})
	l := c.nodes[0]
	allFollow := func() bool {
		for _, n := range c.nodes {
			if n.Leader() != l.ID() {
				return false
			}
		}
		return true
	}
	value := func(n *central.Node, name string) float64 {
		v, _ := metricValue(t, regs[n.ID()], name)
		return v
	}
	changes := func(n *central.Node) float64 { return value(n, "storeline_central_leader_changes_total") }
	waitFor(t, "every node to follow c1 and count it", 10*time.Second, func() bool {
		if !l.IsLeader() || !allFollow() {
			return false
		}
		for _, n := range c.nodes {
			if changes(n) < 1 {
				return false
			}
		}
		return true
	})
	before := map[string]float64{}
	for _, n := range c.nodes {
		before[n.ID()] = changes(n)
	}
	term := value(l, "storeline_central_raft_term")

	// c1 loses its majority and steps down; reconnected, it wins again.
	l.CutRaft(true)
	waitFor(t, "c1 to step down", 10*time.Second, func() bool { return !l.IsLeader() })
	l.CutRaft(false)
	waitFor(t, "c1 leader again in a new term, followed by all", 15*time.Second, func() bool {
		return l.IsLeader() && allFollow() && value(l, "storeline_central_raft_term") > term
	})
	for _, n := range c.nodes {
		n := n
		waitFor(t, "node "+n.ID()+" to count c1's new term", 5*time.Second, func() bool {
			return changes(n) >= before[n.ID()]+1
		})
	}
	for _, n := range c.nodes {
		if d := changes(n) - before[n.ID()]; d != 1 {
			t.Errorf("node %s counted %v leader changes for c1 winning term %v again", n.ID(), d, value(l, "storeline_central_raft_term"))
		}
	}
}

// blockingFSM opens a single-node cluster whose FSM has an op,
// "test.block", that stops the FSM on a "block" payload until the test
// ends (Raft's FSM goroutine waits in it, as behind a slow disk).
func blockingFSM(t *testing.T, mod func(*central.Config)) (n *central.Node, blocked <-chan struct{}) {
	t.Helper()
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	op := central.Op{Name: "test.block", Apply: func(tx *central.Tx, p []byte) ([]byte, error) {
		if string(p) == "block" {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil, nil
	}}
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	if mod != nil {
		mod(&cfg)
	}
	n, err := central.Open(cfg, op)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	t.Cleanup(func() { close(release) }) // before Close
	waitFor(t, "c1 leader", 10*time.Second, n.IsLeader)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _ = n.Submit(ctx, "test.block", "", []byte("block"))
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the FSM never applied the blocking entry")
	}
	return n, entered
}

// returnsWithin runs f and fails the test if it has not returned within
// d (it is left running: the test's end releases what it waits on).
func returnsWithin(t *testing.T, what string, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %s (its context had ended)", what, d)
		return nil
	}
}

// TestReview15LinearizeHonoursContext: a linearizable read on a leader
// whose FSM is behind (slow) returns when its context ends, Unavailable,
// instead of waiting for the FSM however long it takes.
func TestReview15LinearizeHonoursContext(t *testing.T) {
	n, _ := blockingFSM(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, "Linearize", 5*time.Second, func() error { return n.Linearize(ctx) })
	if err == nil || storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Linearize past its deadline: %v, want Unavailable", err)
	}
}

// TestReview15SubmitPastDeadline: a command whose caller's deadline has
// already passed is refused at once, Unavailable and not applied. Before,
// the negative time left went to raft.Apply as its enqueue timeout, which
// Raft reads as none: on a leader whose Raft loop is busy (its apply
// queue full behind a slow FSM) the request's goroutine waited for as
// long as that lasted, for a client long gone.
func TestReview15SubmitPastDeadline(t *testing.T) {
	n, _ := blockingFSM(t, func(cfg *central.Config) { cfg.MaxAppendEntries = 1 })
	// Fill Raft's queues behind the stuck FSM until a submit cannot even
	// be enqueued: back to back, each submit already waits out its own
	// 10 ms (a poll's pause between them tripled the test's time).
	full := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(full) {
			t.Fatalf("Raft's apply queue not full after %d submits", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := n.Submit(ctx, "test.block", "fill-"+strconv.Itoa(i), []byte("x"))
		cancel()
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			break
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := returnsWithin(t, "Submit past its deadline", 5*time.Second, func() error {
		_, err := n.Submit(ctx, "test.block", "late", []byte("x"))
		return err
	})
	if err == nil || storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("Submit past its deadline: %v, want Unavailable", err)
	}
}

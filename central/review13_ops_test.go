package central_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline/central"
)

// TestReview13FailedReportsABrokenRaftLog: a follower whose Raft log
// store stops taking writes (a failing disk) can never store, so never
// commit, another entry; it must say so on Failed, so `storeline
// central` exits with an error and its supervisor restarts it, rather
// than run on as a follower that stays behind for ever (it still hears
// the leader's heartbeats, so /healthz says all is well).
func TestReview13FailedReportsABrokenRaftLog(t *testing.T) {
	c := startCluster(t, 3)
	l := c.waitLeader()
	f := c.follower()
	// f has heard from this term's leader (a term it had not stored yet
	// would make Raft panic on the broken store, not run on).
	mustOK(t, apiDo(t, "PUT", l.APIAddr(), "/v1/groups/first", adminKey, map[string]any{"name": "G"}, nil))
	waitFor(t, "the follower applies the leader's writes", 10*time.Second, func() bool { return f.AppliedIndex() >= l.AppliedIndex() })
	if err := f.BreakLogStore(); err != nil {
		t.Fatal(err)
	}
	defer f.Close() // before the log store's closing returns an error on Close
	// The writer stops before the test returns: its cleanups close the
	// leader, and a write in flight then would fail the test.
	done := make(chan struct{})
	var writer sync.WaitGroup
	defer func() { close(done); writer.Wait() }()
	writer.Add(1)
	go func() {
		defer writer.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if r := apiDo(t, "PUT", l.APIAddr(), fmt.Sprintf("/v1/groups/g%d", i), adminKey, map[string]any{"name": "G"}, nil); r.status != 200 {
				t.Errorf("write through the leader: %d %s", r.status, r.body)
				return
			}
		}
	}()
	select {
	case err := <-f.Failed():
		if err == nil || !strings.Contains(err.Error(), "raft log") {
			t.Fatalf("Failed = %v, want the raft log store named", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a follower whose Raft log store fails was not reported on Failed")
	}
}

// TestReview13RejoinUntilEverySeedIsAMember: a member whose seed is down
// when it starts keeps trying it until the seed is a member, however many
// other nodes join it meanwhile. Before, it stopped once gossip held more
// members than it has seeds: c1 (seed c3, down) met c2 (seed c1), stopped
// trying c3, and c3, back without a live seed (its own were down, or it
// was given none), stayed in a gossip group of its own for good (its
// level and incarnation unseen by the leader, its failure undetected).
func TestReview13RejoinUntilEverySeedIsAMember(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	for i := range c.nodes {
		c.cfgs[i].GossipAddr = c.nodes[i].GossipAddr() // restarts reuse it
	}
	for i := range c.nodes {
		c.stopNode(i)
	}
	c.startNode(0, []string{c.cfgs[2].GossipAddr})
	c.startNode(1, []string{c.cfgs[0].GossipAddr})
	waitFor(t, "c1 and c2 in one gossip group", 10*time.Second, func() bool { return c.nodes[0].GossipAlive("c2") })
	c.startNode(2, nil)
	waitFor(t, "c1 rejoins its seed c3", 10*time.Second, func() bool { return c.nodes[0].GossipAlive("c3") })
}

// TestReview13CloseDoesNotWaitOutAJoin: a node retrying a seed that
// accepts the connection and never answers (a hung host) closes at once.
// Before, Close waited for the Join in flight, up to its TCP timeout
// (4 probe intervals: 3 s here, 20 s with 5 such seeds and the default
// 1 s).
func TestReview13CloseDoesNotWaitOutAJoin(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "n1")
	cfg := testConfig(t, "c1", dir)
	first := openNode(t, cfg)
	waitFor(t, "bootstrap leader", 10*time.Second, first.IsLeader)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- conn // held open, never answered
		}
	}()
	defer func() {
		for {
			select {
			case conn := <-accepted:
				conn.Close()
			default:
				return
			}
		}
	}()
	// A Join's TCP timeout is 4 probe intervals: 3 s, well past the 2 s
	// Close is allowed (Open's own Join waits all of it, so no longer).
	cfg.ProbeInterval = 750 * time.Millisecond
	cfg.ProbeTimeout = 500 * time.Millisecond
	cfg.Seeds = []string{ln.Addr().String()}
	n, err := central.Open(cfg) // its own Join to the seed times out first
	if err != nil {
		t.Fatal(err)
	}
	held := []net.Conn{<-accepted} // Open's Join
	conn := <-accepted             // the rejoin loop's, in flight
	held = append(held, conn)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v waiting out a Join to a hung seed", d)
	}
}

// TestReview13ApplyLagMetricsCountEntries: the dashboard's "Apply lag"
// and "Applied index" panels read storeline_central_raft_fsm_pending
// ("Entries committed but not yet applied") and _raft_applied_index
// ("Index of the last entry applied to the FSM"). They came from Raft's
// Stats: the batches queued for the FSM (one batch holds many entries)
// and the index Raft handed over, before the FSM applied it. With the
// FSM stuck on one entry and 20 more committed behind it, they said 1
// or 2 pending, and everything applied.
func TestReview13ApplyLagMetricsCountEntries(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	block := central.Op{Name: "review13.block", Apply: func(tx *central.Tx, p []byte) ([]byte, error) {
		if string(p) == "block" {
			once.Do(func() { close(started) })
			<-release
		}
		return nil, nil
	}}
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	cfg.Registerer = reg
	n, err := central.Open(cfg, block)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer n.Close()
	defer wg.Wait()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	waitFor(t, "bootstrap leader", 10*time.Second, n.IsLeader)
	if _, err := n.Submit(context.Background(), "review13.block", "warm", []byte("x")); err != nil {
		t.Fatal(err)
	}
	submit := func(key, payload string) {
		defer wg.Done()
		if _, err := n.Submit(context.Background(), "review13.block", key, []byte(payload)); err != nil {
			t.Errorf("submit %s: %v", key, err)
		}
	}
	wg.Add(1)
	go submit("blocker", "block")
	<-started
	// Read once the FSM is stuck: the leader's own entries (an
	// incarnation, a sweep) may be applied between the warm-up and the
	// blocker.
	before := n.AppliedIndex()
	const behind = 20
	for i := range behind {
		wg.Add(1)
		go submit(fmt.Sprintf("k%d", i), "x")
	}
	waitFor(t, "the entries behind the stuck one committed", 10*time.Second, func() bool {
		v, _ := metricValue(t, reg, "storeline_central_raft_commit_index")
		return uint64(v) >= before+1+behind
	})
	waitFor(t, "Raft to hand them to the FSM", 10*time.Second, func() bool {
		v, _ := metricValue(t, reg, "storeline_central_raft_commit_index")
		return n.RaftStats()["applied_index"] == fmt.Sprint(uint64(v))
	})
	commit, _ := metricValue(t, reg, "storeline_central_raft_commit_index")
	applied, _ := metricValue(t, reg, "storeline_central_raft_applied_index")
	pending, _ := metricValue(t, reg, "storeline_central_raft_fsm_pending")
	if uint64(applied) != n.AppliedIndex() || uint64(applied) != before {
		t.Errorf("raft_applied_index = %v with the FSM stuck after %d (node says %d)", applied, before, n.AppliedIndex())
	}
	if pending < behind+1 || pending != commit-float64(before) {
		t.Errorf("raft_fsm_pending = %v with %v entries committed and not applied", pending, commit-float64(before))
	}
	unblock()
	wg.Wait()
	waitFor(t, "the FSM to catch up", 10*time.Second, func() bool {
		p, _ := metricValue(t, reg, "storeline_central_raft_fsm_pending")
		a, _ := metricValue(t, reg, "storeline_central_raft_applied_index")
		c, _ := metricValue(t, reg, "storeline_central_raft_commit_index")
		return p == 0 && a == c
	})
}

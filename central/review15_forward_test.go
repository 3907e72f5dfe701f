package central_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// review15OpLag is a test op that, on the node named by its lagger,
// holds that node's FSM inside the entry until released: the node keeps
// receiving and acknowledging log entries (the others commit without
// waiting for it) but applies nothing after it, as a follower on a slow
// disk or catching up after a restart would.
const review15OpLag = "test.review15.lag"

type review15Lagger struct {
	mu      sync.Mutex
	node    string        // the node whose FSM is held
	entered chan struct{} // closed once that node's FSM is in the entry
	release chan struct{} // closed to let it go on
}

func (l *review15Lagger) op(id string) central.Op {
	return central.Op{Name: review15OpLag, Apply: func(*central.Tx, []byte) ([]byte, error) {
		l.mu.Lock()
		hold := l.node == id
		entered, release := l.entered, l.release
		l.mu.Unlock()
		if hold {
			close(entered)
			<-release
		}
		return nil, nil
	}}
}

// review15Cluster is replCluster with every node knowing review15OpLag.
func review15Cluster(t *testing.T, lag *review15Lagger) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("c%d", i+1)
		cfg := testConfig(t, id, filepath.Join(root, id))
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 500 * time.Millisecond
		cfg.Logger = testLogger()
		if i > 0 {
			cfg.Bootstrap = false
			cfg.Seeds = []string{c.nodes[0].GossipAddr()}
		}
		n, err := central.Open(cfg, lag.op(id))
		if err != nil {
			t.Fatalf("Open(%s): %v", id, err)
		}
		t.Cleanup(func() { n.Close() })
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, n)
		if i == 0 {
			waitFor(t, "bootstrap leader", 10*time.Second, n.IsLeader)
		}
	}
	c.waitVoters(3)
	return c
}

// TestReview15PushThroughLaggingFollowerIsAnswered: a shop's push that
// lands on a follower whose FSM lags is answered as soon as the leader
// has committed and applied it, with the leader's outcome, not after the
// follower has applied it too. Before, the follower waited for its own
// apply (ForwardTimeout) and answered 503, or the shop's RequestTimeout
// (2 s in the tests, 30 s by default) ran out first: the shop never got
// an acknowledgement of events central had committed, and made no
// progress while its address was that follower's.
func TestReview15PushThroughLaggingFollowerIsAnswered(t *testing.T) {
	lag := &review15Lagger{entered: make(chan struct{}), release: make(chan struct{})}
	c := review15Cluster(t, lag)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	c.waitSettled()

	f := c.follower()
	lag.mu.Lock()
	lag.node = f.ID()
	lag.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			close(lag.release)
		}
	}
	t.Cleanup(release)
	retryUnavailable(t, func() error {
		_, err := c.waitLeader().Submit(context.Background(), review15OpLag, "review15-lag", nil)
		return err
	})
	select {
	case <-lag.entered:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s never applied the lag entry", f.ID())
	}
	stuckAt := f.AppliedIndex()

	batch := wireBatch(t, "s1", 1, 1, 5)
	body, err := replication.Encode(&batch)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.ReplicationAddr()+"/v1/replication/push", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testShops[0].token)
	req.Header.Set("Content-Type", "application/msgpack")
	// The shop's RequestTimeout in the end-to-end tests.
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		ms, _ := c.waitLeader().Marks("s1")
		t.Fatalf("push through %s (FSM held at index %d): %v; the leader's marks meanwhile: %v", f.ID(), stuckAt, err, ms)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push through %s (FSM held at index %d): HTTP %d: %s", f.ID(), stuckAt, resp.StatusCode, rb)
	}
	var pr replication.PushResponse
	if err := replication.Decode(rb, &pr); err != nil {
		t.Fatal(err)
	}
	want := replication.Position{Epoch: 1, Seq: 5}
	if pr.Acked != want || pr.Applied != 5 || pr.Gap != nil {
		t.Fatalf("push answer %+v, want acked %v, 5 applied", pr, want)
	}
	if len(pr.Marks) == 0 || pr.Marks[len(pr.Marks)-1] != want {
		t.Errorf("push answer's marks %v, want the leader's, ending at %v", pr.Marks, want)
	}
	if got := f.AppliedIndex(); got != stuckAt {
		t.Fatalf("%s applied up to %d while held at %d: the test did not make it lag", f.ID(), got, stuckAt)
	}
	// What was acknowledged is committed: the leader has it now, and the
	// follower once it catches up.
	if ms, err := c.waitLeader().Marks("s1"); err != nil || len(ms) != 1 || ms[0] != want {
		t.Fatalf("leader's marks %v (%v), want [%v]", ms, err, want)
	}
	release()
	c.waitSettled()
	if ms, err := f.Marks("s1"); err != nil || len(ms) != 1 || ms[0] != want {
		t.Fatalf("%s's marks after catching up %v (%v), want [%v]", f.ID(), ms, err, want)
	}
}

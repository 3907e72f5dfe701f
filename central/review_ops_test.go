package central_test

// Operational defects of the cluster layer, each confirmed by a test here
// before it was fixed.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// metricValue returns the value of metric name on reg, and whether it is there.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestReviewVotersMetricOnNonVoter: storeline_central_raft_voters is
// "Voters in the Raft configuration"; a non-voter must report the
// cluster's voters, not 1.
func TestReviewVotersMetricOnNonVoter(t *testing.T) {
	c := startCluster(t, 3)
	l := c.waitLeader()
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, "c4", filepath.Join(t.TempDir(), "n4"))
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	cfg.Registerer = reg
	n4 := openNode(t, cfg)
	target := l.AppliedIndex()
	waitFor(t, "c4 follows the leader", 15*time.Second, func() bool {
		return n4.Leader() != "" && n4.AppliedIndex() >= target
	})
	waitFor(t, "c4 in the configuration", 15*time.Second, func() bool {
		v, ok := metricValue(t, reg, "storeline_central_raft_voters")
		return ok && v != 0 && n4.Leader() != ""
	})
	if v, _ := metricValue(t, reg, "storeline_central_raft_voters"); v != 3 {
		t.Fatalf("non-voter c4 reports %v voters, the configuration has 3", v)
	}
}

// TestReviewLeaderChangesCountedOnce: one leadership transfer is one
// leader change on every node, not two (the "no leader" moment between
// the old and the new one is not a change of its own).
func TestReviewLeaderChangesCountedOnce(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	c := startClusterWith(t, 3, func(cfg *central.Config) {
		r := prometheus.NewRegistry()
		regs[cfg.NodeID] = r
		cfg.Registerer = r
	})
	old := c.waitLeader()
	allFollow := func(id string) func() bool {
		return func() bool {
			for _, n := range c.nodes {
				if n.Leader() != id {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "every node knows the leader", 10*time.Second, allFollow(old.ID()))
	// The count is kept by a goroutine behind Raft's observations: wait
	// until each node has counted the first leader before the baseline.
	changes := func(n *central.Node) float64 {
		v, _ := metricValue(t, regs[n.ID()], "storeline_central_leader_changes_total")
		return v
	}
	waitFor(t, "every node to count the first leader", 10*time.Second, func() bool {
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
	if err := old.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	var nl *central.Node
	waitFor(t, "a new leader every node knows", 10*time.Second, func() bool {
		nl = c.leader()
		return nl != nil && nl != old && allFollow(nl.ID())()
	})
	waitFor(t, "every node to count the new leader", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if changes(n) < before[n.ID()]+1 {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		if d := changes(n) - before[n.ID()]; d != 1 {
			t.Errorf("node %s counted %v leader changes for one transfer (%s to %s)", n.ID(), d, old.ID(), nl.ID())
		}
	}
}

// failingReader yields r's first n bytes, then an error.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("snapshot stream broken")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	k, err := f.r.Read(p)
	f.n -= k
	return k, err
}

// TestReviewRestoreFailureKeepsState: a snapshot whose stream breaks
// midway fails the restore and must leave the FSM as it was, not with
// its state dropped and half loaded under the old applied index (reads
// then answer from a state that matches no index).
func TestReviewRestoreFailureKeepsState(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	l := c.waitLeader()
	seed(t, l.APIAddr(), 0)
	var ids []string
	for i := 0; i < 200; i++ {
		ids = append(ids, fmt.Sprintf("g%d", i))
	}
	// One import, so the snapshot is big enough to break in the middle.
	groups := make([]any, len(ids))
	for i, id := range ids {
		groups[i] = map[string]any{"id": id, "name": "Group " + id + string(bytes.Repeat([]byte("x"), 200)), "parent": "food"}
	}
	mustOK(t, apiDo(t, "POST", l.APIAddr(), "/v1/import", adminKey, map[string]any{"groups": groups}, nil))
	var snap bytes.Buffer
	if err := l.BackupFSM(&snap); err != nil {
		t.Fatal(err)
	}
	applied := l.AppliedIndex()
	err := l.RestoreFSM(&failingReader{r: bytes.NewReader(snap.Bytes()), n: snap.Len() / 2})
	if err == nil {
		t.Fatal("restore from a broken stream succeeded")
	}
	if got := l.AppliedIndex(); got != applied {
		t.Fatalf("applied index %d after a failed restore, was %d", got, applied)
	}
	var missing []string
	for _, id := range append([]string{"food"}, ids...) {
		if err := l.Replica().GetMaster(storeline.KindGroup, id, &storeline.Group{}); err != nil {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("after a failed restore the FSM claims index %d but lacks %d of %d groups (e.g. %s)", applied, len(missing), len(ids)+1, missing[0])
	}
	// A good snapshot still restores.
	if err := l.RestoreFSM(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	checkGroups(t, l, ids)
}

// TestReviewRejoinAfterWipe: a follower whose data directory is lost
// comes back under its id and addresses with an empty directory; it must
// get the state again and serve writes.
func TestReviewRejoinAfterWipe(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	l := c.waitLeader()
	seed(t, l.APIAddr(), 2)
	var victim int
	for i, n := range c.nodes {
		if n != l && i > 0 {
			victim = i
			break
		}
	}
	if victim == 0 {
		for i, n := range c.nodes {
			if n != l {
				victim = i
			}
		}
	}
	v := c.nodes[victim]
	v.Close()
	c.nodes[victim] = nil
	cfg := c.cfgs[victim]
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	mustOK(t, apiDo(t, "PUT", l.APIAddr(), "/v1/groups/while-away", adminKey, map[string]any{"name": "W", "parent": "food"}, nil))
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	rn := openNode(t, cfg)
	c.nodes[victim] = rn
	target := l.AppliedIndex()
	waitFor(t, "wiped node caught up", 20*time.Second, func() bool { return rn.AppliedIndex() >= target })
	checkGroups(t, rn, []string{"food", "while-away"})
	mustOK(t, apiDo(t, "PUT", rn.APIAddr(), "/v1/groups/after-wipe", adminKey, map[string]any{"name": "A", "parent": "food"}, nil))
	checkGroups(t, rn, []string{"after-wipe"})
}

// clusterGoroutines returns the stacks of goroutines running central's,
// Raft's or memberlist's code.
func clusterGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner(") || strings.Contains(g, "testing.(*M).Run(") {
			continue
		}
		if strings.Contains(g, "storeline/central.") || strings.Contains(g, "hashicorp/raft.") || strings.Contains(g, "hashicorp/memberlist.") {
			out = append(out, g)
		}
	}
	return out
}

// TestReviewCloseLeavesNoGoroutines: a closed node leaves nothing of
// its own running.
func TestReviewCloseLeavesNoGoroutines(t *testing.T) {
	if len(clusterGoroutines()) != 0 {
		t.Skipf("other nodes run in this process: %s", clusterGoroutines()[0])
	}
	c := startCluster(t, 3)
	l := c.waitLeader()
	seed(t, c.follower().APIAddr(), 1)
	mustOK(t, apiDo(t, "GET", c.follower().APIAddr(), "/v1/prices?list=retail&item=i0&consistency=linearizable", viewerKey, nil, nil))
	mustOK(t, apiDo(t, "GET", l.APIAddr(), "/v1/cluster", viewerKey, nil, nil))
	for _, n := range c.nodes {
		if err := n.Close(); err != nil {
			t.Errorf("close %s: %v", n.ID(), err)
		}
	}
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	waitFor(t, "goroutines of closed nodes to end", 15*time.Second, func() bool {
		left = clusterGoroutines()
		return len(left) == 0 || time.Now().After(deadline)
	})
	if len(left) > 0 {
		t.Fatalf("%d goroutines left after Close, e.g.\n%s", len(left), left[0])
	}
}

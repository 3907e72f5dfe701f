package central_test

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// raftMembers returns the ids in n's Raft configuration (GET /v1/cluster).
func raftMembers(t *testing.T, n *central.Node) map[string]bool {
	t.Helper()
	r := mustOK(t, apiDo(t, http.MethodGet, n.APIAddr(), "/v1/cluster", viewerKey, nil, nil))
	var body struct {
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range body.Members {
		out[m.ID] = true
	}
	return out
}

// TestReviewClusterForeignDataDirNotAdmitted: a node whose data directory
// belongs to another cluster (it bootstrapped its own, or an operator
// pointed it at the wrong copy) and that is started with seeds of this
// cluster must not be added to its Raft configuration: its Raft log and
// its replica hold another history, and the FSM skips every entry at or
// below the replica's applied index, so it would serve (and vote with) a
// state that is not the cluster's.
func TestReviewClusterForeignDataDirNotAdmitted(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	l := c.waitLeader()
	mustOK(t, apiDo(t, "PUT", l.APIAddr(), "/v1/groups/ours", adminKey, map[string]any{"name": "Ours"}, nil))

	// Another cluster: one node bootstrapped on its own, with writes.
	dir := filepath.Join(t.TempDir(), "foreign")
	cfg := testConfig(t, "x1", dir)
	other := openNode(t, cfg)
	waitFor(t, "foreign leader", 10*time.Second, other.IsLeader)
	for _, id := range []string{"theirs1", "theirs2", "theirs3", "theirs4", "theirs5", "theirs6"} {
		mustOK(t, apiDo(t, "PUT", other.APIAddr(), "/v1/groups/"+id, adminKey, map[string]any{"name": "Theirs"}, nil))
	}
	if other.Incarnation() == "" || other.Incarnation() == l.Incarnation() {
		t.Fatalf("incarnations: foreign %q, ours %q", other.Incarnation(), l.Incarnation())
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	// The same directory, now started with this cluster's seeds.
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	x := openNode(t, cfg)
	waitFor(t, "the leader's gossip sees x1", 10*time.Second, func() bool { return c.waitLeader().GossipAlive("x1") })
	// Give the reconciler many rounds with x1 in gossip: it would have
	// added x1 in the first.
	l = c.waitLeader()
	from := l.ReconcileRounds()
	waitFor(t, "ten reconcile rounds with x1 in gossip", 30*time.Second, func() bool {
		if m := raftMembers(t, l); m["x1"] {
			var g storeline.Group
			err := x.Replica().GetMaster(storeline.KindGroup, "theirs1", &g)
			t.Fatalf("x1, whose data directory is another cluster's (incarnation %s, cluster's %s), was added to the Raft configuration %v (it still holds the other cluster's group: %v)",
				x.Incarnation(), l.Incarnation(), m, err == nil)
		}
		return l.ReconcileRounds() >= from+10
	})
	if m := raftMembers(t, c.waitLeader()); m["x1"] {
		t.Fatalf("x1 was added to the Raft configuration %v", m)
	}
	// Nor did x1, leader of its own one-node cluster, add this cluster's
	// nodes to its configuration (it took c2 over before c2 gossiped the
	// incarnation it holds).
	if m := raftMembers(t, x); len(m) != 1 {
		t.Fatalf("x1's Raft configuration is %v", m)
	}
	// The cluster goes on without it.
	mustOK(t, apiDo(t, "PUT", c.waitLeader().APIAddr(), "/v1/groups/after", adminKey, map[string]any{"name": "After"}, nil))
	for _, n := range c.nodes {
		checkGroups(t, n, []string{"ours"})
		var g storeline.Group
		if n.Replica().GetMaster(storeline.KindGroup, "theirs1", &g) == nil {
			t.Fatalf("%s holds the foreign cluster's group", n.ID())
		}
	}
}

// TestReviewClusterOtherSecretNotAdmitted: a node with another cluster
// secret neither joins gossip nor gets into the Raft configuration.
func TestReviewClusterOtherSecretNotAdmitted(t *testing.T) {
	c := startCluster(t, 1)
	l := c.waitLeader()
	cfg := testConfig(t, "y1", filepath.Join(t.TempDir(), "y1"))
	cfg.ClusterSecret = "another-cluster-secret-entirely"
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	if n, err := central.Open(cfg); err == nil {
		t.Cleanup(func() { n.Close() })
		// y1 keeps trying its seed meanwhile (every probe interval); the
		// leader would admit it at its next round once gossip held it.
		from := l.ReconcileRounds()
		waitFor(t, "ten reconcile rounds with y1 running", 30*time.Second, func() bool { return l.ReconcileRounds() >= from+10 })
		if l.GossipAlive("y1") || raftMembers(t, l)["y1"] {
			t.Fatal("a node with another cluster secret was admitted")
		}
	}
}

// TestReviewClusterCloseFreesPorts: once Close returns, every address the
// node bound is free again (an operator restarts it on the same ports).
func TestReviewClusterCloseFreesPorts(t *testing.T) {
	c := startCluster(t, 2)
	l := c.waitLeader()
	f := c.follower()
	seed(t, f.APIAddr(), 1)
	for _, n := range []*central.Node{f, l} {
		addrs := []string{n.RaftAddr(), n.APIAddr(), n.AdminAddr(), n.GossipAddr(), n.ReplicationAddr()}
		if err := n.Close(); err != nil {
			t.Fatalf("close %s: %v", n.ID(), err)
		}
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s: %s still held after Close: %v", n.ID(), a, err)
				continue
			}
			ln.Close()
		}
		pc, err := net.ListenPacket("udp", n.GossipAddr())
		if err != nil {
			t.Errorf("%s: gossip UDP %s still held after Close: %v", n.ID(), n.GossipAddr(), err)
		} else {
			pc.Close()
		}
	}
}

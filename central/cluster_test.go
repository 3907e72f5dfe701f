package central_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
)

// writeGroup writes group id through addr with its id as idempotency key,
// retrying (same key) while the answer is unavailable, up to a deadline.
// It reports whether the write was acknowledged.
func writeGroup(t testing.TB, addrs func() []string, id string, deadline time.Time) bool {
	acked, attempt := false, 0
	testwait.Retry(time.Until(deadline), func() bool {
		as := addrs()
		a := as[attempt%len(as)]
		attempt++
		r := apiDo(t, "PUT", a, "/v1/groups/"+id, adminKey, map[string]any{"name": "G " + id, "parent": "food"}, map[string]string{"Idempotency-Key": id})
		switch {
		case r.status == http.StatusOK:
			acked = true
			return true
		case r.status == 0 || r.status == http.StatusServiceUnavailable:
			return false // retry the same key
		default:
			t.Errorf("write %s via %s: %d %s", id, a, r.status, r.body)
			return true
		}
	})
	return acked
}

func TestClusterKillLeaderUnderWrites(t *testing.T) {
	c := startCluster(t, 3)
	l := c.waitLeader()
	seed(t, l.APIAddr(), 0)

	var mu sync.Mutex
	var acked []string
	live := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var as []string
		for _, n := range c.nodes {
			if n != nil {
				as = append(as, n.APIAddr())
			}
		}
		return as
	}
	const writers, perWriter = 3, 40
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if w == 0 && i == perWriter/2 {
					close(killed)
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				if writeGroup(t, live, id, time.Now().Add(20*time.Second)) {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}(w)
	}
	<-killed
	var victim int
	mu.Lock()
	for i, n := range c.nodes {
		if n == l {
			victim = i
			c.nodes[i] = nil
		}
	}
	mu.Unlock()
	if err := l.Close(); err != nil {
		t.Logf("close leader: %v", err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(acked) != writers*perWriter {
		t.Fatalf("%d of %d writes acknowledged", len(acked), writers*perWriter)
	}
	nl := c.waitLeader()
	if nl == l {
		t.Fatal("the killed node is still leader")
	}
	// Every acknowledged write is on every live node.
	target := nl.AppliedIndex()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		waitFor(t, "node "+n.ID()+" applied", 10*time.Second, func() bool { return n.AppliedIndex() >= target })
		checkGroups(t, n, acked)
	}

	// Restart the killed node from its data dir: it catches up and applies
	// only the entries it lacked.
	cfg := c.cfgs[victim]
	rep, err := ledger.OpenReplica(filepath.Join(cfg.DataDir, "fsm"), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := rep.AppliedIndex()
	rep.Close()
	cfg.Bootstrap = false
	cfg.Seeds = []string{nl.GossipAddr()}
	rn := openNode(t, cfg)
	c.nodes[victim] = rn
	target = nl.AppliedIndex()
	waitFor(t, "restarted node caught up", 15*time.Second, func() bool { return rn.AppliedIndex() >= target })
	checkGroups(t, rn, acked)
	final := rn.Replica().AppliedIndex()
	if got := rn.FSMApplies(); got == 0 || got > final-stored {
		t.Fatalf("restarted node applied %d commands; it had index %d and is at %d, so at most %d were new", got, stored, final, final-stored)
	}
}

func checkGroups(t *testing.T, n *central.Node, ids []string) {
	t.Helper()
	for _, id := range ids {
		var g storeline.Group
		if err := n.Replica().GetMaster(storeline.KindGroup, id, &g); err != nil {
			t.Fatalf("node %s lacks acknowledged group %s: %v", n.ID(), id, err)
		}
	}
}

func TestClusterForwardAndJoin(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	l := c.waitLeader()
	f := c.follower()
	seed(t, f.APIAddr(), 2) // every write forwarded through a follower
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustOK(t, apiDo(t, "POST", f.APIAddr(), "/v1/prices", adminKey, map[string]any{"prices": []any{
		map[string]any{"list": "retail", "item": "i1", "from": from, "price": "3.10"}}}, nil))
	// A linearizable read through another follower sees it at once.
	for _, n := range c.nodes {
		r := mustOK(t, apiDo(t, "GET", n.APIAddr(), "/v1/prices?list=retail&item=i1&consistency=linearizable", viewerKey, nil, nil)).json(t)
		ps := r["prices"].([]any)
		if len(ps) != 1 || ps[0].(map[string]any)["price"] != "3.1" {
			t.Fatalf("node %s: prices %v", n.ID(), ps)
		}
	}
	// A viewer's write through a follower is refused there, not forwarded.
	r := apiDo(t, "PUT", f.APIAddr(), "/v1/groups/x", viewerKey, map[string]any{"name": "X"}, nil)
	if r.status != http.StatusForbidden {
		t.Fatalf("viewer write via follower: %d %s", r.status, r.body)
	}
	// A fourth node joins through gossip; with MaxVoters 3 it is a
	// non-voter. Removing nothing, the cluster still answers writes.
	cfg := testConfig(t, "c4", filepath.Join(t.TempDir(), "n4"))
	cfg.Bootstrap = false
	cfg.Seeds = []string{f.GossipAddr()}
	n4 := openNode(t, cfg)
	waitFor(t, "c4 in the raft configuration", 15*time.Second, func() bool {
		r := apiDo(t, "GET", l.APIAddr(), "/v1/cluster", viewerKey, nil, nil)
		if r.status != 200 {
			return false
		}
		for _, m := range r.json(t)["members"].([]any) {
			mm := m.(map[string]any)
			if mm["id"] == "c4" && mm["suffrage"] == "Nonvoter" {
				return true
			}
		}
		return false
	})
	waitFor(t, "c4 knows the leader", 10*time.Second, func() bool { return n4.Leader() != "" })
	mustOK(t, apiDo(t, "PUT", n4.APIAddr(), "/v1/groups/late", adminKey, map[string]any{"name": "Late"}, nil))
	waitFor(t, "c4 applies its own write", 10*time.Second, func() bool {
		return n4.Replica().GetMaster(storeline.KindGroup, "late", &storeline.Group{}) == nil
	})
}

func TestClusterJoinBecomesVoter(t *testing.T) {
	c := startCluster(t, 1)
	l := c.waitLeader()
	cfg := testConfig(t, "c2", filepath.Join(t.TempDir(), "n2"))
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	c.nodes = append(c.nodes, openNode(t, cfg))
	c.waitVoters(2)
}

// TestJoinFromSnapshot: after the leader snapshots and compacts its log, a
// new node gets the state by snapshot (streamed Badger state, restored),
// not by replaying entries.
func TestJoinFromSnapshot(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.TrailingLogs = 4 })
	l := c.waitLeader()
	seed(t, l.APIAddr(), 0)
	var ids []string
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("s%d", i)
		mustOK(t, apiDo(t, "PUT", l.APIAddr(), "/v1/groups/"+id, adminKey, map[string]any{"name": "S", "parent": "food"}, nil))
		ids = append(ids, id)
	}
	if err := l.TakeSnapshot(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "c2", filepath.Join(t.TempDir(), "n2"))
	cfg.Bootstrap = false
	cfg.Seeds = []string{l.GossipAddr()}
	n2 := openNode(t, cfg)
	c.nodes = append(c.nodes, n2)
	c.waitVoters(2)
	target := l.AppliedIndex()
	waitFor(t, "c2 caught up", 15*time.Second, func() bool { return n2.AppliedIndex() >= target })
	checkGroups(t, n2, ids)
	if got := n2.FSMApplies(); got >= uint64(len(ids)) {
		t.Fatalf("c2 applied %d commands: it replayed the log instead of restoring the snapshot", got)
	}
	// Writes go on, on both.
	mustOK(t, apiDo(t, "PUT", n2.APIAddr(), "/v1/groups/after", adminKey, map[string]any{"name": "A"}, nil))
	checkGroups(t, n2, []string{"after"})
}

// TestDeadNodeRemoved: with DeadNodeRemoveAfter set, the leader removes a
// node gossip has seen gone that long; by default it never does (the other
// cluster tests restart killed nodes into their old places).
func TestDeadNodeRemoved(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *central.Config) { cfg.DeadNodeRemoveAfter = 200 * time.Millisecond })
	c.waitLeader()
	f := c.follower()
	for i, n := range c.nodes {
		if n == f {
			c.nodes[i] = nil
		}
	}
	f.Close()
	c.waitVoters(2)
}

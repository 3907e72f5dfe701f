package central

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/storeline/storeline/internal/testwait"
)

// reviewCluster starts size nodes on loopback (the first bootstraps) and
// waits until all are voters.
func reviewCluster(t *testing.T, size int) []*Node {
	t.Helper()
	root := t.TempDir()
	var nodes []*Node
	for i := 0; i < size; i++ {
		cfg := DefaultConfig(filepath.Join(root, fmt.Sprintf("n%d", i+1)))
		cfg.NodeID = fmt.Sprintf("r%d", i+1)
		cfg.ClusterSecret = "cluster-secret-for-tests"
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		cfg.CommitTimeout = 2 * time.Millisecond
		cfg.ApplyTimeout, cfg.ForwardTimeout = 3*time.Second, 3*time.Second
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.GossipInterval = 100*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
		cfg.ReconcileInterval = 50 * time.Millisecond
		if i > 0 {
			cfg.Bootstrap = false
			cfg.Seeds = []string{nodes[0].GossipAddr()}
		}
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		if i == 0 {
			testwait.For(t, "bootstrap leader", 10*time.Second, n.IsLeader)
		}
	}
	testwait.For(t, "all voters", 15*time.Second, func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				f := n.raft.GetConfiguration()
				return f.Error() == nil && len(f.Configuration().Servers) == size
			}
		}
		return false
	})
	return nodes
}

// TestReviewClusterRemovedNodeAcksNothingUncommitted: a follower removed
// from the Raft configuration while it keeps running (gossip still sees
// it: the reconciler adds it back, so the gossip side is stopped first)
// never acknowledges a write the cluster does not hold, nor serves a
// linearizable read.
func TestReviewClusterRemovedNodeAcksNothingUncommitted(t *testing.T) {
	nodes := reviewCluster(t, 3)
	var f *Node
	for _, n := range nodes {
		if !n.IsLeader() {
			f = n
		}
	}
	// Keep the leader from adding it back: f leaves gossip, and the
	// removal waits until no other node sees it alive there (one still
	// seeing it, the leave not yet taken in on a loaded machine, would
	// have its reconciler add f back as a voter, with a leader again).
	if err := f.ml.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "every other node to see the removed node leave gossip", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n == f {
				continue
			}
			if alive, _ := n.gos.snapshot(); alive[f.ID()].Raft != "" {
				return false
			}
		}
		return true
	})

	// Remove f through whichever node leads at the time: on a loaded
	// machine an election may move leadership between finding the leader
	// and the call ("node is not the leader", "leadership lost while
	// committing log"). Removing a server already removed changes
	// nothing, so a retry after a lost commit is safe.
	var removeErr error
	removed := testwait.Retry(30*time.Second, func() bool {
		for _, n := range nodes {
			if n != f && n.IsLeader() {
				removeErr = n.raft.RemoveServer(raft.ServerID(f.ID()), 0, 3*time.Second).Error()
				return removeErr == nil
			}
		}
		if f.IsLeader() {
			removeErr = f.raft.LeadershipTransfer().Error()
		} else {
			removeErr = fmt.Errorf("no leader")
		}
		return false
	})
	if !removed {
		t.Fatalf("remove %s from the Raft configuration: %v", f.ID(), removeErr)
	}
	// Past f's heartbeat timeout: f no longer knows a leader.
	testwait.For(t, "the removed node to lose its leader", 30*time.Second, func() bool {
		addr, _ := f.raft.LeaderWithID()
		return addr == ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	res, err := f.Submit(ctx, OpIncarnation, "review-removed", []byte{0x80})
	if err == nil {
		// Acknowledged: it must be the cluster's (whichever of the other
		// two leads now).
		var held uint64
		for _, n := range nodes {
			if n != f {
				held = max(held, n.AppliedIndex())
			}
		}
		if res.Index > held {
			t.Fatalf("removed node acknowledged index %d the cluster (applied %d) does not hold", res.Index, held)
		}
	}
	if err := f.Linearize(ctx); err == nil {
		t.Fatalf("removed node (state %s, leader %q) serves linearizable reads", f.raft.State(), f.Leader())
	}
	if f.IsLeader() {
		t.Fatal("removed node became leader")
	}
}

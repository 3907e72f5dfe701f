package central_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// TestFSMLevelGate plays a rolling upgrade that adds an op of FSM level
// 2 (levels.go): a cluster of nodes of a version before levels (they tell
// none) has two of them upgraded; with the third still old the op is
// refused before the log, and an
// entry that carries it all the same is answered on every replica as a
// node that does not know the op answers it, changing nothing; once the
// third comes back at level 2 the leader raises the cluster's level and
// the op applies on every replica.
func TestFSMLevelGate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	levels := []int{-1, -1, -1} // a version before levels
	cfgs := make([]central.Config, len(levels))
	nodes := make([]*central.Node, len(levels))
	open := func(i int) {
		t.Helper()
		n, err := central.Open(central.WithFSMLevel(cfgs[i], levels[i]), central.LevelTwoOp())
		if err != nil {
			t.Fatalf("Open(%s): %v", cfgs[i].NodeID, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	for i := range levels {
		cfgs[i] = testConfig(t, fmt.Sprintf("c%d", i+1), filepath.Join(root, fmt.Sprintf("n%d", i+1)))
		if i > 0 {
			cfgs[i].Bootstrap = false
			cfgs[i].Seeds = []string{nodes[0].GossipAddr()}
		}
		open(i)
		cfgs[i].RaftAddr, cfgs[i].APIAddr = nodes[i].RaftAddr(), nodes[i].APIAddr()
		if i == 0 {
			waitFor(t, "bootstrap leader", 10*time.Second, nodes[0].IsLeader)
		}
	}
	c := &cluster{t: t, cfgs: cfgs, nodes: nodes}
	c.waitVoters(len(levels))
	ctx := context.Background()
	upgrade := func(i int) {
		t.Helper()
		if err := c.nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
		levels[i] = 2
		cfgs[i].Bootstrap = false
		cfgs[i].Seeds = []string{c.nodes[(i+1)%len(levels)].GossipAddr()}
		open(i)
		c.waitVoters(len(levels))
	}
	upgrade(0)
	upgrade(1)

	_, err := c.waitLeader().Submit(ctx, central.OpLevelTwo, "", []byte("early"))
	if storeline.KindOf(err) != storeline.Unavailable {
		t.Fatalf("level-2 op with a level-1 node = %v, want Unavailable", err)
	}
	var res *central.Result
	retryUnavailable(t, func() error {
		var err error
		if l := c.leader(); l == nil {
			err = storeline.Errorf(storeline.Unavailable, "test", "no leader")
		} else {
			res, err = l.SubmitPastLevel(central.OpLevelTwo, []byte("early"))
		}
		return err
	})
	var se *storeline.Error
	if err := res.Err(); !errors.As(err, &se) || se.Kind != storeline.Invalid {
		t.Fatalf("level-2 entry applied at level 1 = %v, want the unknown-op answer", err)
	}
	c.waitSettled()
	for _, n := range c.nodes {
		if v, err := n.Replica().Meta("test/level2"); err != nil || v != nil {
			t.Fatalf("%s holds %q (%v) after a level-2 entry at level 1", n.ID(), v, err)
		}
		if l, err := n.ClusterLevel(); err != nil || l != 1 {
			t.Fatalf("%s: cluster level %d (%v), want 1 while c3 is old", n.ID(), l, err)
		}
	}

	upgrade(2)
	waitFor(t, "the cluster at level 2 on every node", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if l, err := n.ClusterLevel(); err != nil || l != 2 {
				return false
			}
		}
		return true
	})
	retryUnavailable(t, func() error {
		res, err := c.waitLeader().Submit(ctx, central.OpLevelTwo, "level2-after", []byte("late"))
		if err == nil {
			err = res.Err()
		}
		return err
	})
	c.waitSettled()
	for _, n := range c.nodes {
		if v, err := n.Replica().Meta("test/level2"); err != nil || string(v) != "late" {
			t.Errorf("%s holds %q (%v), want the level-2 op applied", n.ID(), v, err)
		}
	}

	// A node of the old version joining now is not made a member; one of
	// level 2 joining after it is.
	members := func() map[string]bool {
		out := map[string]bool{}
		resp := apiDo(t, "GET", c.waitLeader().APIAddr(), "/v1/cluster", viewerKey, nil, nil)
		var body struct{ Members []central.NodeStatus }
		if resp.status == 200 && json.Unmarshal(resp.body, &body) == nil {
			for _, m := range body.Members {
				out[m.ID] = true
			}
		}
		return out
	}
	join := func(id string, level int) {
		t.Helper()
		cfg := testConfig(t, id, filepath.Join(root, id))
		cfg.Bootstrap = false
		cfg.Seeds = []string{nodes[0].GossipAddr()}
		n, err := central.Open(central.WithFSMLevel(cfg, level), central.LevelTwoOp())
		if err != nil {
			t.Fatalf("Open(%s): %v", id, err)
		}
		t.Cleanup(func() { n.Close() })
	}
	join("c4", -1)
	waitFor(t, "the leader's gossip to know c4", 10*time.Second, func() bool { return c.waitLeader().GossipAlive("c4") })
	join("c5", 2)
	waitFor(t, "c5 a member", 15*time.Second, func() bool { return members()["c5"] })
	if members()["c4"] {
		t.Errorf("c4, of a version before levels, was made a member of a level-2 cluster")
	}
}

package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// TestReview11ColdStartWithSeedsDown: README (Central cluster) has every
// node, the first included, keep the others as seeds once the cluster has
// formed, and its disaster recovery restores every node and then "start
// them". A node whose seeds were all down failed to open (gossip: join
// ... connection refused), so a cold start of the whole cluster (after a
// restore, a power loss, or an upgrade with every node stopped) never came
// up: each node exited because the others were not up yet. A node with
// Raft state opens without its seeds and keeps trying them, so nodes
// started in any order find each other. (Under -race it also showed
// GossipAddr reading memberlist's local node while the reconcile loop's
// UpdateNode rewrote it; the address is now read once, at start.)
func TestReview11ColdStartWithSeedsDown(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	c.put(t, "before-stop", &storeline.Store{ID: "s-cold", Name: "Cold", TimeZone: "Europe/Riga", Currency: "EUR",
		Departments: []storeline.Department{{ID: "food", Name: "Food"}}})
	gossip := make([]string, 3)
	for i, n := range c.nodes {
		gossip[i] = n.GossipAddr()
		c.cfgs[i].GossipAddr = gossip[i]
	}
	for i := range c.nodes {
		c.stopNode(i)
	}
	// The first node comes back while its seeds are both down; the
	// others come back without seeds, so only the first node's retries
	// can bring gossip together.
	c.startNode(0, []string{gossip[1], gossip[2]})
	c.startNode(1, nil)
	c.startNode(2, nil)
	c.waitLeader()
	for _, n := range c.nodes {
		waitFor(t, n.ID()+" to see every member through gossip", 15*time.Second, func() bool {
			_, members, err := n.Cluster(context.Background())
			if err != nil || len(members) != 3 {
				return false
			}
			for _, m := range members {
				if m.Error != "" {
					return false
				}
			}
			return true
		})
	}
	// A follower forwards a write to the leader it found through gossip.
	f := c.follower()
	retryUnavailable(t, func() error {
		_, err := f.PutRecords(context.Background(), "after-cold-start", &storeline.Store{ID: "s-cold-2", Name: "Cold 2",
			TimeZone: "Europe/Riga", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}})
		return err
	})
}

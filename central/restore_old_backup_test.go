package central_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// A central node's backup is a copy of its data directory (Raft log, FSM
// ledger, snapshots) taken while it is stopped; restoring it puts the copy
// back in place of a stopped node's directory. These tests restore such
// an old copy under running shops and check that nothing the shops
// pushed is lost or counted twice.

// restartable is a replication cluster whose nodes can be stopped and
// started again on the same addresses (Raft, API, gossip, replication),
// so the shops and the other nodes reach them where they were.
func restartable(t *testing.T) *cluster {
	t.Helper()
	c, _ := replCluster(t)
	for i, n := range c.nodes {
		c.cfgs[i].GossipAddr = n.GossipAddr()
		c.cfgs[i].ReplicationAddr = n.ReplicationAddr()
		c.cfgs[i].Registerer = nil
	}
	return c
}

// stopNode closes node i.
func (c *cluster) stopNode(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("close %s: %v", c.cfgs[i].NodeID, err)
	}
	c.nodes[i] = nil
}

// startNode opens node i from its data directory, joining through seeds
// (none: it finds its peers in its Raft configuration).
func (c *cluster) startNode(i int, seeds []string) {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Bootstrap = false
	cfg.Seeds = seeds
	c.nodes[i] = openNode(c.t, cfg)
}

// copyDir copies a stopped node's data directory: its backup.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatalf("copy %s to %s: %v", from, to, err)
	}
}

// restoreDir replaces a stopped node's data directory with a backup.
func restoreDir(t *testing.T, backup, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, dir)
}

// restoreShops starts the two test shops on every central node.
func restoreShops(t *testing.T, c *cluster) []*node.Node {
	t.Helper()
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "http://"+n.ReplicationAddr())
	}
	var shops []*node.Node
	for _, s := range testShops {
		shops = append(shops, startShopNode(t, s, t.TempDir(), shopReplication(urls, s.token)))
	}
	return shops
}

// setPrice changes item i0's price at central, keyed so a retry applies
// once.
func setPrice(t *testing.T, c *cluster, key, price string) {
	t.Helper()
	c.put(t, key, &storeline.Price{List: "retail", Item: "i0", From: time.Now().Add(-time.Minute), Price: decimal.RequireFromString(price)})
}

func waitPriceAtShops(t *testing.T, shops []*node.Node, price string) {
	t.Helper()
	for i, n := range shops {
		waitFor(t, fmt.Sprintf("price %s at %s's tills", price, testShops[i].store), time.Minute, func() bool {
			p, ok := tillItem(t, n, testShops[i].terminal, "sku0")
			return ok && p == price
		})
	}
}

func sellAll(t *testing.T, shops []*node.Node, n int) {
	t.Helper()
	for _, s := range shops {
		sellAt(t, s.Ledger(), n)
	}
	for i, s := range shops {
		waitFor(t, fmt.Sprintf("%s's receipts acknowledged", testShops[i].store), time.Minute, func() bool { return caughtUpAt(s) })
	}
}

// TestRestoreFollowerFromOldBackup: one central node is restored from a
// copy of its data taken 80 receipts per shop and a price change earlier,
// while the shops go on selling and pushing through it. It catches up from the
// leader, and every node then holds each shop's journal exactly once with
// the same balances; the shops keep getting head office's changes.
func TestRestoreFollowerFromOldBackup(t *testing.T) {
	c := restartable(t)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	shops := restoreShops(t, c)
	sellAll(t, shops, 30)

	// Back up a follower: stop it, copy its directory, start it again.
	v := 0
	for i, n := range c.nodes {
		if !n.IsLeader() {
			v = i
			break
		}
	}
	backup := t.TempDir() + "/backup"
	c.stopNode(v)
	copyDir(t, c.cfgs[v].DataDir, backup)
	c.startNode(v, []string{c.nodes[(v+1)%3].GossipAddr()})
	c.waitVoters(3)

	// Life goes on: receipts and a price change the backup lacks.
	sellAll(t, shops, 80)
	setPrice(t, c, "price-1", "3.33")
	waitPriceAtShops(t, shops, "3.33")

	// Restore the old copy into the stopped node while the shops sell.
	c.stopNode(v)
	restoreDir(t, backup, c.cfgs[v].DataDir)
	c.startNode(v, []string{c.nodes[(v+1)%3].GossipAddr()})
	sellAll(t, shops, 40)
	setPrice(t, c, "price-2", "4.44")
	waitPriceAtShops(t, shops, "4.44")
	c.waitSettled()
	for i, s := range shops {
		checkAgree(t, c, s, testShops[i].store, nil)
	}
	// Every node counted each event once: the restored node re-applied
	// what its backup lacked, nothing twice.
	for _, n := range c.nodes {
		for i, s := range testShops {
			st, err := n.ShopStats(s.store)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(len(shopJournal(t, shops[i].Ledger(), s.store))); st.Events != want {
				t.Errorf("%s counts %d events of %s applied, the shop has %d", n.ID(), st.Events, s.store, want)
			}
		}
	}
}

// TestRestoreClusterFromOldBackup: the whole central cluster is restored
// from copies of its data directories taken 80 receipts per shop and a
// price change earlier (a disaster recovery), copied back by hand, so not
// marked restored (central.RestoreBackup): the cluster keeps its
// incarnation. The shops, whose acknowledged positions are now ahead of
// central, see central's marks below them in their pull answers and push
// again what central lacks before they sell anything, so every node ends
// with each shop's whole journal exactly once and the same balances; and
// head office's changes made after the restore reach the shops (their
// cursors are past the restored history: a resync). A marked restore,
// which also closes the window this one leaves, is tested in
// restore_incarnation_test.go.
func TestRestoreClusterFromOldBackup(t *testing.T) {
	c := restartable(t)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	shops := restoreShops(t, c)
	sellAll(t, shops, 30)
	setPrice(t, c, "price-1", "2.22")
	waitPriceAtShops(t, shops, "2.22")

	// Back up every node: stop the cluster, copy, start it again.
	backups := make([]string, 3)
	for i := range c.nodes {
		c.stopNode(i)
	}
	for i := range c.nodes {
		backups[i] = fmt.Sprintf("%s/backup-%d", t.TempDir(), i)
		copyDir(t, c.cfgs[i].DataDir, backups[i])
	}
	startAll := func() {
		c.startNode(0, nil)
		for i := 1; i < 3; i++ {
			c.startNode(i, []string{c.cfgs[0].GossipAddr})
		}
		c.waitLeader()
	}
	startAll()

	// What the backups will lack: 80 receipts per shop, a price change,
	// and 40 more head-office writes (one Raft entry each), so the span of
	// history the restore loses is longer than what the restored cluster
	// writes before the shops' first pulls (see below).
	sellAll(t, shops, 80)
	for k := range 40 {
		c.put(t, fmt.Sprintf("group-%d", k), &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("lost-%d", k)), Name: "Lost"})
	}
	setPrice(t, c, "price-2", "3.33")
	waitPriceAtShops(t, shops, "3.33")

	// Disaster: every node restored from its old copy.
	for i := range c.nodes {
		c.stopNode(i)
	}
	for i := range c.nodes {
		restoreDir(t, backups[i], c.cfgs[i].DataDir)
	}
	startAll()

	// Head office's changes after the restore reach the shops although
	// their pull cursors are past the restored cluster's history: their
	// next pull finds the cursor past it (after a read barrier) and gets a
	// resync. Without a new incarnation this holds only while the restored
	// cluster has written less than the span it lost (RELIABILITY.md,
	// "Central restored from an old backup").
	setPrice(t, c, "price-3", "4.44")
	waitPriceAtShops(t, shops, "4.44")

	// Selling nothing, the shops push again the span central lost.
	for _, n := range c.nodes {
		for i, s := range testShops {
			want := uint64(len(shopJournal(t, shops[i].Ledger(), s.store)))
			waitFor(t, fmt.Sprintf("%s holding %s's whole journal before it sells again", n.ID(), s.store), 30*time.Second, func() bool {
				st, err := n.ShopStats(s.store)
				return err == nil && st.Events == want
			})
		}
	}

	// The shops sell on.
	sellAll(t, shops, 40)
	c.waitSettled()
	for i, s := range shops {
		checkAgree(t, c, s, testShops[i].store, nil)
	}
	for _, n := range c.nodes {
		for i, s := range testShops {
			st, err := n.ShopStats(s.store)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(len(shopJournal(t, shops[i].Ledger(), s.store))); st.Events != want {
				t.Errorf("%s counts %d events of %s applied, the shop has %d", n.ID(), st.Events, s.store, want)
			}
		}
	}
}

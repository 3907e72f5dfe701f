package central_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/node"
)

// pullGate is an HTTP proxy in front of a central node's replication
// listener that can refuse the shops' pulls (503, as an overloaded node
// would) while their pushes go through: a shop that sells before its
// first pull after a restore.
type pullGate struct {
	srv  *httptest.Server
	hold atomic.Bool
}

func newPullGate(t *testing.T, target string) *pullGate {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a stopped node is expected
	g := &pullGate{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.hold.Load() && strings.HasSuffix(r.URL.Path, "/pull") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"kind":"unavailable","detail":"pulls held by the test"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// startAllNodes starts every stopped node, the first without seeds.
func startAllNodes(c *cluster) {
	c.startNode(0, nil)
	for i := 1; i < len(c.nodes); i++ {
		c.startNode(i, []string{c.cfgs[0].GossipAddr})
	}
	c.waitLeader()
}

// backupCluster stops every node, copies its data directory and starts
// the cluster again; it returns the copies.
func backupCluster(t *testing.T, c *cluster) []string {
	t.Helper()
	backups := make([]string, len(c.nodes))
	for i := range c.nodes {
		c.stopNode(i)
	}
	for i := range c.nodes {
		backups[i] = fmt.Sprintf("%s/backup-%d", t.TempDir(), i)
		copyDir(t, c.cfgs[i].DataDir, backups[i])
	}
	startAllNodes(c)
	return backups
}

// restoreCluster stops every node, restores each from its backup with
// central.RestoreBackup (which marks it restored) and starts the cluster.
func restoreCluster(t *testing.T, c *cluster, backups []string) {
	t.Helper()
	for i := range c.nodes {
		c.stopNode(i)
	}
	for i := range c.nodes {
		if err := os.RemoveAll(c.cfgs[i].DataDir); err != nil {
			t.Fatal(err)
		}
		if err := central.RestoreBackup(backups[i], c.cfgs[i].DataDir); err != nil {
			t.Fatal(err)
		}
	}
	startAllNodes(c)
}

// incarnation waits until every node has applied the same incarnation
// and returns it.
func incarnation(t *testing.T, c *cluster, not string) string {
	t.Helper()
	var got string
	waitFor(t, "one incarnation on every node, not "+not, 15*time.Second, func() bool {
		got = c.nodes[0].Incarnation()
		for _, n := range c.nodes {
			if inc := n.Incarnation(); inc == "" || inc == not || inc != got {
				return false
			}
		}
		return true
	})
	return got
}

// countEvents checks that every node counts the shop's whole journal
// applied once.
func countEvents(t *testing.T, c *cluster, shops []*node.Node) {
	t.Helper()
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

// hasPrice reports whether a till's catalogue holds a price record of item
// at price.
func hasPrice(t *testing.T, n *node.Node, token string, item storeline.ItemID, price string) bool {
	t.Helper()
	for k, r := range tillCatalog(t, n, token) {
		if strings.HasPrefix(k, string(storeline.KindPrice)+"/") && r["item"] == string(item) && fmt.Sprint(r["price"]) == price {
			return true
		}
	}
	return false
}

// TestRestoredClusterShopsSellBeforeFirstPull closes the hole the old
// cursor check left (RELIABILITY.md, "Central restored from an old
// backup"): the whole cluster is restored from a backup; head office
// changes a price at once, which gets a version the shops' pull cursors
// are already past; then the shops sell before their first pull, so their
// pushes carry central's history past their cursors and a cursor no longer
// looks like central went back. The restore gave the cluster a new
// incarnation, so their first pull is answered with a resync: the price
// reaches the tills, the price change the restore lost leaves them, and
// every node ends with each shop's journal exactly once.
func TestRestoredClusterShopsSellBeforeFirstPull(t *testing.T) {
	c := restartable(t)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	var gates []*pullGate
	var urls []string
	for _, n := range c.nodes {
		g := newPullGate(t, n.ReplicationAddr())
		gates = append(gates, g)
		urls = append(urls, g.srv.URL)
	}
	var shops []*node.Node
	for _, s := range testShops {
		shops = append(shops, startShopNode(t, s, t.TempDir(), shopReplication(urls, s.token)))
	}
	sellAll(t, shops, 30)
	setPrice(t, c, "price-1", "2.22")
	waitPriceAtShops(t, shops, "2.22")
	first := incarnation(t, c, "")

	backups := backupCluster(t, c)
	// What the backups lack: receipts, head-office writes, a price change.
	sellAll(t, shops, 20)
	for k := range 20 {
		c.put(t, fmt.Sprintf("group-%d", k), &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("lost-%d", k)), Name: "Lost"})
	}
	setPrice(t, c, "price-2", "3.33")
	waitPriceAtShops(t, shops, "3.33")
	for i, s := range shops {
		if !hasPrice(t, s, testShops[i].terminal, "i0", "3.33") {
			t.Fatalf("%s's till catalogue lacks the price 3.33 the restore will lose", testShops[i].store)
		}
	}

	for _, g := range gates {
		g.hold.Store(true)
	}
	restoreCluster(t, c, backups)
	if second := incarnation(t, c, first); second == first {
		t.Fatal("unreachable")
	}
	var cursors []uint64
	for _, s := range shops {
		cursors = append(cursors, s.Replication().Status().Cursor)
	}

	// Head office's change after the restore: at a version the shops'
	// cursors are already past (else this test does not test the hole).
	var v central.Version
	retryUnavailable(t, func() error {
		var err error
		v, err = c.waitLeader().PutRecords(context.Background(), "price-3",
			&storeline.Price{List: "retail", Item: "i0", From: time.Now().Add(-time.Minute), Price: decimal.RequireFromString("4.44")})
		return err
	})
	for i, cur := range cursors {
		if v.Pack() > cur {
			t.Fatalf("setup: the price change after the restore is at %v, past %s's cursor %v: the restore lost too little", v, testShops[i].store, central.Unpack(cur))
		}
	}

	// The shops sell before they pull: their pushes find central behind
	// (a gap: they resend from its mark), and with head-office writes
	// carry central's history past every cursor.
	sellAll(t, shops, 40)
	for k := 0; ; k++ {
		top := central.Version{Index: c.waitLeader().AppliedIndex(), Pos: central.MaxChangesPerEntry}.Pack()
		if top > max(cursors[0], cursors[1]) {
			break
		}
		c.put(t, fmt.Sprintf("filler-%d", k), &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("filler-%d", k)), Name: "Filler"})
	}
	c.waitSettled()
	for _, s := range testShops {
		st, err := c.nodes[0].ShopStats(s.store)
		if err != nil {
			t.Fatal(err)
		}
		if st.Gaps == 0 {
			t.Errorf("central answered %s no gap: the shop's pushes did not find it behind", s.store)
		}
	}

	for _, g := range gates {
		g.hold.Store(false)
	}
	waitPriceAtShops(t, shops, "4.44")
	// The price change central lost is gone from the shops too: the
	// resync's sweep removes what central no longer sends.
	for i, s := range shops {
		waitFor(t, fmt.Sprintf("the lost price 3.33 gone from %s's till catalogue", testShops[i].store), 15*time.Second, func() bool {
			return !hasPrice(t, s, testShops[i].terminal, "i0", "3.33")
		})
	}
	sellAll(t, shops, 10)
	c.waitSettled()
	for i, s := range shops {
		checkAgree(t, c, s, testShops[i].store, nil)
	}
	countEvents(t, c, shops)
}

// TestRestoredClusterIdleShopGetsItsSpanBack: the whole cluster is
// restored from a backup taken before shop s1's last 25 receipts, and no
// shop sells afterwards. s1 learns from its pulls that central lacks what
// it acknowledged (a new incarnation, central's marks below its own) and
// pushes the span again without waiting for a sale; s2, which lost
// nothing, sends nothing twice.
func TestRestoredClusterIdleShopGetsItsSpanBack(t *testing.T) {
	c := restartable(t)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	shops := restoreShops(t, c)
	sellAll(t, shops, 30)
	first := incarnation(t, c, "")

	backups := backupCluster(t, c)
	sellAt(t, shops[0].Ledger(), 25)
	waitFor(t, "s1's receipts acknowledged", time.Minute, func() bool { return caughtUpAt(shops[0]) })

	restoreCluster(t, c, backups)
	second := incarnation(t, c, first)
	s2Before, err := c.nodes[0].ShopStats("s2")
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(len(shopJournal(t, shops[0].Ledger(), "s1")))
	for _, n := range c.nodes {
		waitFor(t, n.ID()+" holding s1's whole journal, s1 selling nothing", 30*time.Second, func() bool {
			st, err := n.ShopStats("s1")
			return err == nil && st.Events == want
		})
	}
	c.waitSettled()
	for i, s := range shops {
		checkAgree(t, c, s, testShops[i].store, nil)
	}
	countEvents(t, c, shops)
	st, err := c.nodes[0].ShopStats("s2")
	if err != nil {
		t.Fatal(err)
	}
	if d, b := st.Duplicates-s2Before.Duplicates, st.Below-s2Before.Below; d != 0 || b != 0 {
		t.Errorf("s2, which lost nothing, sent %d duplicates and %d events below central's mark after the restore", d, b)
	}
	// Every node's marker is consumed, and the three changes (one per
	// restored node, each naming the backup's incarnation) made one.
	for i := range c.nodes {
		waitFor(t, c.cfgs[i].NodeID+"'s restore marker removed", 15*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(c.cfgs[i].DataDir, central.RestoredMarker))
			return os.IsNotExist(err)
		})
	}
	c.waitSettled()
	for _, n := range c.nodes {
		if got := n.Incarnation(); got != second {
			t.Errorf("%s's incarnation is %s, %s after the restore: it changed more than once", n.ID(), got, second)
		}
	}
}

// TestRestoreBackupRefuses: a restore goes only into an empty directory,
// and only a central node's directory is marked.
func TestRestoreBackupRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	backup := t.TempDir()
	if err := os.Mkdir(filepath.Join(backup, "fsm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := central.RestoreBackup(backup, dir); storeline.KindOf(err) != storeline.Conflict {
		t.Errorf("restore into a non-empty directory: %v, want a Conflict", err)
	}
	if err := central.RestoreBackup(t.TempDir(), filepath.Join(t.TempDir(), "new")); storeline.KindOf(err) != storeline.Invalid {
		t.Errorf("restore of a directory that is not a node's: %v, want Invalid", err)
	}
	empty := t.TempDir()
	if err := central.MarkRestored(empty); storeline.KindOf(err) != storeline.Invalid {
		t.Errorf("mark a directory that is not a node's: %v, want Invalid", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "fsm")); !os.IsNotExist(err) {
		t.Errorf("marking created %s/fsm: %v", empty, err)
	}
}

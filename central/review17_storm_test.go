package central_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// pullLog is the ordered log of one shop's pulls through the counting
// proxies in front of every central node's replication listener.
type pullLog struct {
	mu    sync.Mutex
	pulls []pullSeen
	cond  *sync.Cond // broadcast at each pull logged
}

type pullSeen struct {
	node    int
	wait    int64 // the long poll asked (ms)
	status  int
	nothing bool // answered 200 with nothing new: same cursor, no items
}

func newPullLog() *pullLog {
	l := &pullLog{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// countingProxy forwards to a central node's replication listener and
// logs each pull: the long poll it asked and how it was answered.
func countingProxy(t *testing.T, l *pullLog, node int, target string) string {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a stopped node is expected
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/replication/pull" {
			rp.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var req replication.PullRequest
		_ = replication.Decode(body, &req)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		seen := pullSeen{node: node, wait: req.WaitMillis, status: rec.Code}
		if rec.Code == http.StatusOK {
			var resp replication.PullResponse
			if replication.Decode(rec.Body.Bytes(), &resp) == nil {
				seen.nothing = resp.Cursor == req.Cursor && resp.Resync == nil && req.Snapshot == nil &&
					len(resp.Records)+len(resp.Events)+len(resp.Rejections) == 0 &&
					(resp.Incarnation == "" || resp.Incarnation == req.Incarnation)
			}
		}
		l.mu.Lock()
		l.pulls = append(l.pulls, seen)
		l.cond.Broadcast()
		l.mu.Unlock()
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// mark returns the log's length: pulls after it are the window's.
func (l *pullLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pulls)
}

// window waits until n pulls after from were answered 200 by node (or
// the deadline passes) and returns the pulls after from.
func (l *pullLog) window(t *testing.T, from, node, n int, d time.Duration) []pullSeen {
	t.Helper()
	timer := time.AfterFunc(d, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		ok := 0
		for _, p := range l.pulls[from:] {
			if p.node == node && p.status == http.StatusOK {
				ok++
			}
		}
		if ok >= n {
			return append([]pullSeen(nil), l.pulls[from:]...)
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("only %d of %d pulls answered 200 by node %d within %v", ok, n, node, d)
		}
		l.cond.Wait()
	}
}

// TestReview17PullStormAfterRestoresAndQuorumLoss walks ops' sequence:
// central restored from backups (a new incarnation), the shop restored
// from its own backup, a wiped central node re-added, then central's
// quorum lost while the shop has a sale to push (its pushes fail, its
// pulls still succeed at the node left). A pull answered 200 ends any
// backoff: the next one must ask the long poll again, or every pull
// after a failed one is answered at once with nothing new, as fast as
// the network allows, until a page moves the cursor (89,318 pulls in two
// minutes at one node).
func TestReview17PullStormAfterRestoresAndQuorumLoss(t *testing.T) {
	c := restartable(t)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	plog := newPullLog()
	var urls []string
	for i, n := range c.nodes {
		urls = append(urls, countingProxy(t, plog, i, n.ReplicationAddr()))
	}
	s := testShops[0]
	rc := shopReplication(urls, s.token)
	// The window below waits out 12 long polls answered with nothing:
	// 100 ms each, not 400, is still a long poll a storm would not ask.
	rc.PollWait = 100 * time.Millisecond
	shop := startShopNode(t, s, t.TempDir(), rc)
	sellAt(t, shop.Ledger(), 30)
	waitFor(t, "the first 30 acknowledged", time.Minute, func() bool { return caughtUpAt(shop) })
	var shopBackup bytes.Buffer
	if err := shop.Ledger().Backup(&shopBackup); err != nil {
		t.Fatal(err)
	}
	first := incarnation(t, c, "")

	// Central's disaster recovery: every node from its backup.
	backups := backupCluster(t, c)
	sellAt(t, shop.Ledger(), 20)
	waitFor(t, "the next 20 acknowledged", time.Minute, func() bool { return caughtUpAt(shop) })
	restoreCluster(t, c, backups)
	incarnation(t, c, first)
	waitFor(t, "central holding the shop's 50 receipts again", time.Minute, func() bool {
		st, err := c.waitLeader().ShopStats(s.store)
		return err == nil && st.Events == 50
	})
	c.waitSettled()

	// The shop restored from its own backup (it lacks the last 20).
	if err := shop.Stop(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &shopBackup, 1000); err != nil {
		t.Fatal(err)
	}
	shop = startShopNode(t, s, dir, rc)
	waitFor(t, "the restored shop holding its 50 receipts", time.Minute, func() bool {
		return len(shopJournal(t, shop.Ledger(), s.store)) == 50
	})

	// A wiped central node re-added: empty data directory, seeds.
	c.stopNode(2)
	if err := os.RemoveAll(c.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	c.startNode(2, []string{c.cfgs[0].GossipAddr})
	c.waitSettled()
	sellAt(t, shop.Ledger(), 5)
	waitFor(t, "the sales after the restores acknowledged", time.Minute, func() bool { return caughtUpAt(shop) })
	c.waitSettled()

	// Quorum lost: node 2 is left. The shop sells: its pushes fail (503
	// at node 2, refused at the others) and move it between addresses,
	// so its pulls fail now and then too.
	c.stopNode(0)
	c.stopNode(1)
	from := plog.mark()
	sellAt(t, shop.Ledger(), 1)
	pulls := plog.window(t, from, 2, 12, time.Minute)

	prevOK, atOnce, nothing := false, 0, 0
	for _, p := range pulls {
		if prevOK && p.wait == 0 {
			atOnce++ // a pull after an answer, asking no long poll
		}
		if p.status == http.StatusOK && p.nothing {
			nothing++
		}
		prevOK = p.status == http.StatusOK
	}
	if atOnce > 0 {
		var trace []string
		for _, p := range pulls[:min(len(pulls), 20)] {
			trace = append(trace, fmt.Sprintf("n%d w=%d %d nothing=%v", p.node, p.wait, p.status, p.nothing))
		}
		t.Errorf("%d of %d pulls (%d answered with nothing new) asked no long poll right after central answered one: a storm while nothing is exchanged; first pulls: %v",
			atOnce, len(pulls), nothing, trace)
	}
	if ok := caughtUpAt(shop); ok {
		t.Errorf("the sale was acknowledged without a quorum")
	}
}

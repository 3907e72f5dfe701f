package replication_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// serveBackend starts the replication handlers over b on loopback, as
// refCentral.serve does over the reference central.
func serveBackend(t testing.TB, b replication.Backend) *httptest.Server {
	t.Helper()
	cfg := replication.DefaultServerConfig()
	cfg.Backend, cfg.Tokens, cfg.MaxWait = b, tokens(), 2*time.Second
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// startTestClient starts a client of shop over l against urls (fast
// timers, a backoff ceiling of a minute; edit changes them), with its
// metrics on a registry of its own; it stops at the test's end.
func startTestClient(t *testing.T, l replication.Local, urls []string, edit func(*replication.ClientConfig)) (*replication.Client, *prometheus.Registry) {
	t.Helper()
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, urls, shopToken
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 2*time.Millisecond, time.Minute
	if edit != nil {
		edit(&cc)
	}
	reg := prometheus.NewRegistry()
	met, err := replication.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := replication.NewClient(cc, l, met)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	t.Cleanup(cl.Stop)
	return cl, reg
}

// upgradedCentral is the reference central upgraded in the middle of a
// shop's resync: after `after` snapshot pages it writes snapshot positions
// in a new form and refuses the old one as central does (Invalid naming
// sn.a, "bad snapshot position").
type upgradedCentral struct {
	*refCentral
	after    int32
	pages    atomic.Int32
	upgraded atomic.Bool
	refused  atomic.Int32
}

func (u *upgradedCentral) Pull(ctx context.Context, q replication.PullQuery) (replication.Page, error) {
	if !u.upgraded.Load() {
		p, err := u.refCentral.Pull(ctx, q)
		if err == nil && p.Resync != nil && u.pages.Add(1) >= u.after {
			u.upgraded.Store(true)
		}
		return p, err
	}
	if q.Snapshot != nil && q.Snapshot.After != "" {
		a, ok := strings.CutPrefix(q.Snapshot.After, "v2:")
		if !ok {
			u.refused.Add(1)
			return replication.Page{}, storeline.Invalidf("sn.a", "bad snapshot position %q", q.Snapshot.After)
		}
		sn := *q.Snapshot
		sn.After = a
		q.Snapshot = &sn
	}
	p, err := u.refCentral.Pull(ctx, q)
	if err == nil && p.Resync != nil && p.Resync.Next != "" {
		rs := *p.Resync
		rs.Next = "v2:" + rs.Next
		p.Resync = &rs
	}
	return p, err
}

// TestReview5BadSnapshotPositionRestartsTheResync: central is upgraded
// (or restored) in the middle of a shop's resync and no longer reads the
// snapshot position the shop holds: it answers Invalid naming sn.a. The
// shop must drop its snapshot state and start the resync over, which
// then completes (and still ends with its sweep). Before, the client sent
// the same position at the backoff ceiling (here a minute) for good: no
// pull ever went through again.
func TestReview5BadSnapshotPositionRestartsTheResync(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(60)...)
	c.mu.Lock()
	c.horizon = 5 // a new shop (cursor 0) resyncs
	c.mu.Unlock()
	u := &upgradedCentral{refCentral: c, after: 2}
	srv := serveBackend(t, u)
	l, _ := shopLedger(t, 1)
	// A record the resync does not rewrite: the restarted resync must still
	// end with the sweep that removes it.
	gone := &storeline.Item{ID: "gone", SKU: "gone", Name: "Gone", Group: "g", Dept: "food", Unit: storeline.Piece,
		VATRate: decimal.NewFromInt(10)}
	if _, err := l.PutMaster(context.Background(), []storeline.Record{gone}); err != nil {
		t.Fatal(err)
	}
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.PageItems = 10
	})
	waitFor(t, "the resync done after central refused the shop's snapshot position", 10*time.Second, func() bool {
		var it storeline.Item
		st := cl.Status()
		return st.State == "online" && st.Cursor == 60 && l.GetMaster(storeline.KindItem, "i59", &it) == nil &&
			l.GetMaster(storeline.KindItem, "gone", &it) != nil
	})
	if n := u.refused.Load(); n != 1 {
		t.Errorf("central refused the snapshot position %d times, want once (the client starts over at once)", n)
	}
	if n := gathered(t, reg, "storeline_replication_resyncs_total"); n != 2 {
		t.Errorf("resyncs_total = %v, want 2 (the first and the one started over)", n)
	}
	for i := range 60 {
		var it storeline.Item
		if err := l.GetMaster(storeline.KindItem, "i"+strconv.Itoa(i), &it); err != nil {
			t.Fatalf("item i%d after the resync: %v", i, err)
		}
	}
}

// gapZeroCentral answers every push with a gap at seq 0, which no central
// can name: a gap is the mark plus one.
type gapZeroCentral struct {
	*refCentral
	answered atomic.Int32
}

func (g *gapZeroCentral) Push(_ context.Context, b replication.Batch) (replication.PushResult, error) {
	g.answered.Add(1)
	return replication.PushResult{IngestResult: replication.IngestResult{
		Acked: replication.Position{Epoch: b.Epoch}, Gap: &replication.Position{Epoch: b.Epoch}}}, nil
}

// TestReview5GapAtSeqZeroIsAFailedPush: central answers every push with a
// gap at seq 0. Ingest names mark+1, never 0: the answer is central's bug
// and nothing goes up. It is a failed push: health not online,
// push_errors_total counts it, last_push_timestamp_seconds does not move.
// Before, it counted as a successful push (online, last push now) while
// the loop waited the ceiling and the journal never went up.
func TestReview5GapAtSeqZeroIsAFailedPush(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(3)...)
	g := &gapZeroCentral{refCentral: c}
	srv := serveBackend(t, g)
	l, _ := shopLedger(t, 3)
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.BackoffMax = 10 * time.Millisecond
	})
	// The third push is sent after the answers to the first two were read.
	waitFor(t, "pushes answered with a gap at 0 and a pull done", 10*time.Second, func() bool {
		return g.answered.Load() >= 3 && !cl.Status().LastPull.IsZero()
	})
	if st := cl.Status(); st.State == "online" || !st.LastPush.IsZero() {
		t.Errorf("every push answered with a gap at 0: status %+v, want not online and no last push", st)
	}
	if v := gauge(t, reg, "storeline_replication_last_push_timestamp_seconds"); v != 0 {
		t.Errorf("no push went through, yet last_push_timestamp_seconds = %v", v)
	}
	if v := gathered(t, reg, "storeline_replication_push_errors_total"); v == 0 {
		t.Errorf("no push went through, yet push_errors_total = 0")
	}
}

// TestReview5ReachableOnlyOnCentralsAnswers: the only central address
// answers with something that is not central's (a proxy's page, a 200
// that is not a message): central is not reachable, and health (which
// reads Status.Reachable for central_reachable) must say so. Before, any
// HTTP answer set it. A problem document of central's still counts.
func TestReview5ReachableOnlyOnCentralsAnswers(t *testing.T) {
	html := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			_, _ = w.Write([]byte("<html><body><h1>" + http.StatusText(code) + "</h1></body></html>"))
		}
	}
	for name, tc := range map[string]struct {
		h    http.Handler
		want bool
	}{
		"502 proxy page":         {html(http.StatusBadGateway), false},
		"200 proxy page":         {html(http.StatusOK), false},
		"central's 503 problem":  {problemHandler(http.StatusServiceUnavailable, storeline.Unavailable, "", "no leader"), true},
		"central's 400 problem":  {problemHandler(http.StatusBadRequest, storeline.Invalid, "st", "bad store"), true},
		"200 problem of a proxy": {problemHandler(http.StatusOK, storeline.Internal, "", "ok"), false},
	} {
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				tc.h.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			l, _ := shopLedger(t, 1)
			cl, _ := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
				cc.BackoffMax = 10 * time.Millisecond
			})
			// Two loops: by the fifth request, one has read an answer.
			waitFor(t, "answers", 10*time.Second, func() bool { return hits.Load() >= 5 })
			if got := cl.Status().Reachable; got != tc.want {
				t.Errorf("Reachable = %v after answers of %s, want %v", got, name, tc.want)
			}
		})
	}
}

// pullWatch passes requests to h, refusing a pull with a proxy's 413 page
// while refuse says so, and records the page size of the pulls it passes.
func pullWatch(h http.Handler, refuse func() bool, refused, asked *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/replication/pull" {
			if refuse() {
				refused.Add(1)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				_, _ = w.Write([]byte("<html><body><h1>413 Request Entity Too Large</h1></body></html>"))
				return
			}
			b, _ := io.ReadAll(r.Body)
			var req replication.PullRequest
			if replication.Decode(b, &req) == nil {
				asked.CompareAndSwap(0, int64(req.MaxItems))
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		h.ServeHTTP(w, r)
	})
}

// TestReview5ProxyTooLargeOnPullDoesNotShrink: a proxy answers pulls with
// its own 413 page (not central's problem document). A pull request is a
// few bytes: asking for fewer items cannot get it through, so the client
// must fail over or back off with the page size it had. Before, each such
// answer halved the page size (64 to 8 after three), and with one address
// the ceiling came once it reached 1.
func TestReview5ProxyTooLargeOnPullDoesNotShrink(t *testing.T) {
	for _, name := range []string{"one address", "two addresses"} {
		t.Run(name, func(t *testing.T) {
			c := newRefCentral(t)
			c.putMaster(items(10)...)
			cfg := replication.DefaultServerConfig()
			cfg.Backend, cfg.Tokens, cfg.MaxWait = c, tokens(), 2*time.Second
			s, err := replication.NewServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var refused, asked atomic.Int64
			var urls []string
			if name == "one address" {
				// Three pulls refused, then the proxy lets them by.
				srv := httptest.NewServer(pullWatch(s.Handler(), func() bool { return refused.Load() < 3 }, &refused, &asked))
				t.Cleanup(srv.Close)
				urls = []string{srv.URL}
			} else {
				first := httptest.NewServer(pullWatch(s.Handler(), func() bool { return true }, &refused, new(atomic.Int64)))
				t.Cleanup(first.Close)
				second := httptest.NewServer(pullWatch(s.Handler(), func() bool { return false }, new(atomic.Int64), &asked))
				t.Cleanup(second.Close)
				urls = []string{first.URL, second.URL}
			}
			l, _ := shopLedger(t, 1)
			_, reg := startTestClient(t, node.LedgerLocal(l, nil), urls, func(cc *replication.ClientConfig) {
				cc.PageItems = 64
			})
			waitFor(t, "a pull through", 10*time.Second, func() bool { return asked.Load() != 0 })
			if refused.Load() == 0 {
				t.Fatal("the proxy refused no pull: the test proves nothing")
			}
			if n := asked.Load(); n != 64 {
				t.Errorf("the first pull through asked %d items, want 64: the proxy's 413 shrank the page", n)
			}
			if n := gathered(t, reg, "storeline_replication_shrinks_total"); n != 0 {
				t.Errorf("shrinks_total = %v after a proxy's 413 on pulls, want 0", n)
			}
		})
	}
}

// TestReview5OversizedProxyPageFailsOver: the first central address is a
// proxy whose error page (502) is larger than MaxResponseBytes; the second
// is central. The answer says this node cannot serve the shop whatever its
// size: the client must move to the second, with its batch and page sizes
// untouched. Before, the size was checked before the status: the answer
// was TooLarge, the batch and page were halved down to one item, and the
// client stayed on the proxy, waiting the ceiling (here a minute).
func TestReview5OversizedProxyPageFailsOver(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	good := c.serve(t, tokens())
	page := []byte("<html><body>" + strings.Repeat("bad gateway ", 10<<10) + "</body></html>") // > 64 KiB
	var hits atomic.Int32
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write(page)
	}))
	t.Cleanup(first.Close)
	l, _ := shopLedger(t, 3)
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{first.URL, good.URL}, func(cc *replication.ClientConfig) {
		cc.MaxResponseBytes = 64 << 10
	})
	waitFor(t, "the journal acknowledged and the master data pulled through the second address", 10*time.Second, func() bool {
		var it storeline.Item
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3} &&
			l.GetMaster(storeline.KindItem, "i9", &it) == nil
	})
	if hits.Load() == 0 {
		t.Fatal("the proxy answered nothing: the test proves nothing")
	}
	if n := gathered(t, reg, "storeline_replication_shrinks_total"); n != 0 {
		t.Errorf("shrinks_total = %v after a proxy's oversized error page, want 0", n)
	}
}

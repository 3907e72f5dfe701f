package replication_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReviewTokenNotSendableIsAConfigError: a token read from a file with
// its trailing newline (or any character a header cannot carry) is refused
// by NewClient naming Token; before, every request failed in the
// transport, was taken for an outage, and the shop stayed "offline"
// forever without a word about its config.
func TestReviewTokenNotSendableIsAConfigError(t *testing.T) {
	c := newRefCentral(t)
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 0)
	for _, tok := range []string{shopToken + "\n", " " + shopToken, shopToken + "\x00"} {
		cc := replication.DefaultClientConfig()
		cc.Store, cc.Central, cc.Token = shop, []string{srv.URL}, tok
		cc.PollWait, cc.BackoffMin, cc.BackoffMax = 100*time.Millisecond, 5*time.Millisecond, 20*time.Millisecond
		reg := prometheus.NewRegistry()
		met, err := replication.NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), met)
		if err == nil {
			cl.Start()
			waitFor(t, "failed pulls", 5*time.Second, func() bool { return gathered(t, reg, "storeline_replication_pull_errors_total") >= 3 })
			st := cl.Status()
			cl.Stop()
			t.Errorf("token %q: NewClient accepted it; then every pull failed as if central were down (status %+v)", tok, st)
			continue
		}
		if storeline.KindOf(err) != storeline.Invalid || !strings.Contains(err.Error(), "Token") {
			t.Errorf("token %q: NewClient = %v, want Invalid naming Token", tok, err)
		}
	}
}

// TestReviewStateNotOnlineWhilePushesFail: central's followers answer
// pushes 503 (no leader) while they still serve pulls from their own state.
// Health must not say "online" while nothing the shop sells goes up.
func TestReviewStateNotOnlineWhilePushesFail(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	cfg.Tokens = tokens()
	cfg.MaxWait = 2 * time.Second
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	var noLeader atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if noLeader.Load() && r.URL.Path == "/v1/replication/push" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 503, "kind": storeline.Unavailable.String(), "detail": "no leader"})
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	n := startShop(t, t.TempDir(), fastReplication(srv.URL))
	waitFor(t, "online", 10*time.Second, func() bool { return n.Replication().Status().State == "online" })

	noLeader.Store(true)
	sell(t, n.Ledger(), 5)
	waitFor(t, "failed pushes", 10*time.Second, func() bool {
		return testutilCounter(t, n, "storeline_replication_push_errors_total") >= 3
	})
	pulled := n.Replication().Status().LastPull
	waitFor(t, "a pull after the failed pushes", 10*time.Second, func() bool {
		return n.Replication().Status().LastPull.After(pulled)
	})
	if st := n.Replication().Status(); st.State == "online" || caughtUp(n) {
		t.Errorf("pushes failing: status %+v, want not online", st)
	}

	noLeader.Store(false)
	waitFor(t, "online again once pushes go through", 10*time.Second, func() bool {
		return caughtUp(n) && n.Replication().Status().State == "online"
	})
}

// failingLocal is a node whose ledger refuses to write (a full disk):
// every page and every ack fails to persist.
type failingLocal struct{ replication.Local }

func (failingLocal) ApplyPage(context.Context, replication.LocalPage) (replication.PageResult, error) {
	return replication.PageResult{}, storeline.Errorf(storeline.Internal, "test", "disk full")
}

func (failingLocal) SetMeta(context.Context, string, []byte) error {
	return storeline.Errorf(storeline.Internal, "test", "disk full")
}

// TestReviewBackoffGrowsWhileTheNodeCannotPersist: central answers, but
// the node cannot store what it got. The loops must back off as for any
// other failure, not fetch the same page (or resend the same batch) every
// BackoffMin forever because the answer itself succeeded.
func TestReviewBackoffGrowsWhileTheNodeCannotPersist(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	cfg.Tokens = tokens()
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], time.Now())
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	l, _ := shopLedger(t, 3)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, []string{srv.URL}, shopToken
	const bmin = 4 * time.Millisecond
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, bmin, 10*time.Second
	cl, err := replication.NewClient(cc, failingLocal{node.LedgerLocal(l, nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	defer cl.Stop()
	const tries = 8
	count := func(path string) int { mu.Lock(); defer mu.Unlock(); return len(seen[path]) }
	waitFor(t, "repeated pulls and pushes", 20*time.Second, func() bool {
		return count("/v1/replication/pull") >= tries && count("/v1/replication/push") >= tries
	})
	// Each failure waits at least half its step: min/2, min, 2 min, ...
	var least time.Duration
	for i := range tries - 1 {
		least += (bmin << i) / 2
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/v1/replication/pull", "/v1/replication/push"} {
		ts := seen[path]
		if took := ts[tries-1].Sub(ts[0]); took < least {
			t.Errorf("%s: %d tries within %v, want at least %v of backoff between them", path, tries, took, least)
		}
	}
}

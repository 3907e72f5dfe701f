package replication_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// sweepsFail is a node that stores every pulled page but cannot store a
// sweep (its disk fills up as the resync ends); it counts the sweeps
// refused.
type sweepsFail struct {
	replication.Local
	refused *atomic.Int32
}

func (l sweepsFail) ApplyPage(ctx context.Context, p replication.LocalPage) (replication.PageResult, error) {
	if p.Sweep != nil {
		l.refused.Add(1)
		return replication.PageResult{}, storeline.Errorf(storeline.InsufficientStorage, "test", "disk full")
	}
	return l.Local.ApplyPage(ctx, p)
}

// TestReview3StateNotOnlineWhileSweepsFail: a resync's pages are stored,
// then every sweep that ends it fails, so the shop keeps the records the
// resync no longer sends (prices of a list it left) and pulls nothing
// more. Health must not say "online": before, a failed sweep left the
// status as the last resync page had set it.
func TestReview3StateNotOnlineWhileSweepsFail(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	c.mu.Lock()
	c.horizon = 5 // a new shop (cursor 0) resyncs
	c.mu.Unlock()
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 3)
	// A record the resync does not rewrite, so it ends with a sweep.
	old := &storeline.Item{ID: "gone", SKU: "gone", Name: "Gone", Group: "g", Dept: "food", Unit: storeline.Piece,
		VATRate: decimal.NewFromInt(10)}
	if _, err := l.PutMaster(context.Background(), []storeline.Record{old}); err != nil {
		t.Fatal(err)
	}
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, []string{srv.URL}, shopToken
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 2*time.Millisecond, 10*time.Millisecond
	var refused atomic.Int32
	cl, err := replication.NewClient(cc, sweepsFail{node.LedgerLocal(l, nil), &refused}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	defer cl.Stop()
	waitFor(t, "the journal pushed and sweeps refused", 10*time.Second, func() bool {
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3} && refused.Load() >= 3
	})
	n := refused.Load()
	waitFor(t, "another sweep refused", 10*time.Second, func() bool { return refused.Load() > n })
	if st := cl.Status(); st.State == "online" {
		t.Errorf("no sweep can be stored: status %+v, want not online", st)
	}
}

// problemHandler answers every request with code and a problem document
// of central's (Content-Type application/problem+json).
func problemHandler(code int, kind storeline.Kind, field, detail string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"status": code, "kind": kind.String(), "title": kind.String(), "detail": detail}
		if field != "" {
			body["field"] = field
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

// TestReview3FailoverWhenANodeCannotServe: the first central address
// answers something that says this node cannot serve the shop (a wrong
// route, a method it does not route, its token list lacking the shop, a
// proxy's HTML page, a rate limit, a 200 that is not a message); the
// second is central. The client must move on and replicate through the
// second promptly, as it does when the first is down. Before, it stayed
// on the first and, for most of these, waited the backoff ceiling (here a
// minute) between tries.
func TestReview3FailoverWhenANodeCannotServe(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	good := c.serve(t, tokens())
	html := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			_, _ = w.Write([]byte("<html><body><h1>" + http.StatusText(code) + "</h1></body></html>"))
		}
	}
	getOnly := http.NewServeMux() // routes the paths, but not POST: 405
	getOnly.HandleFunc("GET /v1/replication/", func(w http.ResponseWriter, r *http.Request) {})
	bad := map[string]http.Handler{
		"404 no route":           http.NotFoundHandler(),
		"405 method not routed":  getOnly,
		"401 unknown token":      problemHandler(http.StatusUnauthorized, storeline.Unauthorized, "", "unknown token"),
		"403 proxy page":         html(http.StatusForbidden),
		"429 rate limited":       problemHandler(http.StatusTooManyRequests, storeline.RateLimited, "", "slow down"),
		"400 proxy page":         html(http.StatusBadRequest),
		"200 not a message":      html(http.StatusOK),
		"200 problem of a proxy": problemHandler(http.StatusOK, storeline.Internal, "", "ok"),
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			first := httptest.NewServer(h)
			t.Cleanup(first.Close)
			l, _ := shopLedger(t, 3)
			cc := replication.DefaultClientConfig()
			cc.Store, cc.Central, cc.Token = shop, []string{first.URL, good.URL}, shopToken
			cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 5*time.Millisecond, time.Minute
			cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			cl.Start()
			defer cl.Stop()
			waitFor(t, "the journal acknowledged and the master data pulled through the second address", 10*time.Second, func() bool {
				var it storeline.Item
				return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3} &&
					l.GetMaster(storeline.KindItem, "i9", &it) == nil && cl.Status().State == "online"
			})
		})
	}
}

// TestReview3RefusalOfTheRequestStays: a refusal of the request itself
// (a problem naming the field at fault, the same at every node) does not
// move the client to the next address: the answer would be the same
// there.
func TestReview3RefusalOfTheRequestStays(t *testing.T) {
	var firstHits, secondHits atomic.Int32
	refuse := problemHandler(http.StatusBadRequest, storeline.Invalid, "ev[0].body", "malformed receipt")
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstHits.Add(1)
		refuse(w, r)
	}))
	t.Cleanup(first.Close)
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secondHits.Add(1)
		refuse(w, r)
	}))
	t.Cleanup(second.Close)
	l, _ := shopLedger(t, 3)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, []string{first.URL, second.URL}, shopToken
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 2*time.Millisecond, 5*time.Millisecond
	cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	defer cl.Stop()
	waitFor(t, "repeated refusals", 10*time.Second, func() bool { return firstHits.Load() >= 10 })
	if n := secondHits.Load(); n != 0 {
		t.Errorf("a refusal naming a field moved the client to the next address (%d requests there)", n)
	}
	if st := cl.Status(); st.State != "offline" {
		t.Errorf("every request refused: status %+v, want offline", st)
	}
}

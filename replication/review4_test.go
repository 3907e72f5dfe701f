package replication_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReview4LoyaltyFailsOverAsReplicationDoes: the first central address
// answers something that says this node cannot serve the shop (its token
// list lacks the shop, a rate limit, a certificate setup naming no store,
// a proxy's page with 200), the second is central. Replication moves on to
// the second and is online there; the loyalty broker, which asks the same
// listener with the same credentials, must too. Before, it took the first
// node's 401, 403 or 429 (or its undecodable 200) for central's refusal
// and returned it: a card scan at the till failed with 401 or 500 while
// health said central was reachable and replication was online.
func TestReview4LoyaltyFailsOverAsReplicationDoes(t *testing.T) {
	c := newRefCentral(t)
	chain := sample.New(shop)
	card := sample.CardCode(0)
	c.putMaster(chain.Store, chain.Programme, &storeline.Customer{ID: "cust-1", Name: "Ann"},
		&storeline.CardRecord{ID: "card-1", Code: card, Kind: storeline.LoyaltyCard, Customer: "cust-1"})
	cfg := replication.DefaultServerConfig()
	cfg.Backend, cfg.Tokens, cfg.MaxWait = c, tokens(), 2*time.Second
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	mux.HandleFunc("POST /v1/loyalty/points", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Authenticate(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		asked.Add(1)
		b, _ := replication.Encode(map[string]any{"b": int64(42), "d": int64(0), "r": map[string]int64{"central": 42}})
		w.Header().Set("Content-Type", "application/msgpack")
		_, _ = w.Write(b)
	})
	good := httptest.NewServer(mux)
	t.Cleanup(good.Close)
	html := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>portal</body></html>"))
	}
	bad := map[string]http.Handler{
		"401 unknown token":        problemHandler(http.StatusUnauthorized, storeline.Unauthorized, "", "unknown token"),
		"403 certificate no store": problemHandler(http.StatusForbidden, storeline.Forbidden, "", "client certificate names no store"),
		"429 rate limited":         problemHandler(http.StatusTooManyRequests, storeline.RateLimited, "", "slow down"),
		"200 proxy page":           http.HandlerFunc(html),
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			first := httptest.NewServer(h)
			t.Cleanup(first.Close)
			repl := fastReplication(first.URL)
			repl.Central = append(repl.Central, good.URL)
			n := startShop(t, t.TempDir(), repl)
			waitFor(t, "replication online through the second address with the card pulled", 10*time.Second, func() bool {
				var cr storeline.CardRecord
				return n.Replication().Status().State == "online" &&
					n.Ledger().LookupMaster(storeline.KindCard, storeline.CardCodeKey(card), &cr) == nil
			})
			code, body := review4Call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminTok, node.TerminalRequest{ID: "t1"})
			var term node.TerminalResponse
			if code != 200 || json.Unmarshal(body, &term) != nil || term.Token == "" {
				t.Fatalf("terminal = %d %s", code, body)
			}
			before := asked.Load()
			code, body = review4Call(t, "GET", n.TillURL()+"/v1/cards/"+card, term.Token, nil)
			var out struct {
				Points struct {
					Balance int64  `json:"balance"`
					Source  string `json:"source"`
				} `json:"points"`
			}
			if code != 200 || json.Unmarshal(body, &out) != nil {
				t.Fatalf("card scan with replication online through the second address = %d %s", code, body)
			}
			if out.Points.Source != "central" || out.Points.Balance != 42 || asked.Load() == before {
				t.Errorf("card scan = %s, want central's balance 42 asked of the second address", body)
			}
		})
	}
}

func review4Call(t *testing.T, method, url, token string, in any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestReview4ProxyTooLargeOfOneEventFailsOver: a proxy in front of the
// first central address refuses any body over a few hundred bytes with
// its own 413 page (not central's problem document); the second address
// is central without it. The client halves the batch down to one event,
// which the proxy still refuses: the proxy's 413 says this node cannot
// serve the shop, so the client must try the next address promptly, as
// for any other answer of a proxy's. Before, a 413 always stayed, so the
// shop waited the ceiling (here a minute) on the proxy forever with its
// journal unsent.
func TestReview4ProxyTooLargeOfOneEventFailsOver(t *testing.T) {
	for name, batch := range map[string]int{"batch of 3 halved": 500, "batch of 1": 1} {
		t.Run(name, func(t *testing.T) {
			c := newRefCentral(t)
			c.putMaster(items(10)...)
			good := c.serve(t, tokens())
			cfg := replication.DefaultServerConfig()
			cfg.Backend, cfg.Tokens, cfg.MaxWait = c, tokens(), 2*time.Second
			s, err := replication.NewServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := s.Handler()
			var refused atomic.Int32
			first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.ContentLength > 200 {
					refused.Add(1)
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusRequestEntityTooLarge)
					_, _ = w.Write([]byte("<html><body><h1>413 Request Entity Too Large</h1></body></html>"))
					return
				}
				h.ServeHTTP(w, r)
			}))
			t.Cleanup(first.Close)
			l, _ := shopLedger(t, 3)
			cc := replication.DefaultClientConfig()
			cc.Store, cc.Central, cc.Token = shop, []string{first.URL, good.URL}, shopToken
			cc.MaxBatchEvents = batch
			cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 5*time.Millisecond, time.Minute
			cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			cl.Start()
			defer cl.Stop()
			waitFor(t, "the journal acknowledged through the second address", 10*time.Second, func() bool {
				return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3}
			})
			if refused.Load() == 0 {
				t.Fatal("the proxy refused nothing: the test proves nothing")
			}
		})
	}
}

// TestReview4LastPullNotSetWhilePagesCannotBeStored: central answers every
// pull but the node cannot store a page (a full disk). A page the node
// cannot store is a failed pull (health says so, pull_errors_total counts
// it, Status.LastPull stays), so storeline_replication_last_pull_timestamp_seconds,
// "the last successful pull", must not move either: alerts on a stale pull
// read it. Before, it was set as soon as the answer decoded, before the
// page was applied, so it said the shop pulled a moment ago all along.
func TestReview4LastPullNotSetWhilePagesCannotBeStored(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 3)
	var refused atomic.Int32
	cl, reg := startTestClient(t, pagesFail{node.LedgerLocal(l, nil), &refused}, []string{srv.URL},
		func(cc *replication.ClientConfig) { cc.BackoffMax = 10 * time.Millisecond })
	waitFor(t, "pages refused and the journal pushed", 10*time.Second, func() bool {
		return refused.Load() >= 3 && cl.Status().Acked == replication.Position{Epoch: 1, Seq: 3}
	})
	if st := cl.Status(); !st.LastPull.IsZero() {
		t.Fatalf("status says a pull succeeded: %+v", st)
	}
	if v := gauge(t, reg, "storeline_replication_last_pull_timestamp_seconds"); v != 0 {
		t.Errorf("no page could be stored, yet last_pull_timestamp_seconds = %v (%v ago)", v,
			time.Since(time.Unix(0, int64(v*1e9))).Round(time.Millisecond))
	}
	if v := gauge(t, reg, "storeline_replication_last_push_timestamp_seconds"); v == 0 {
		t.Errorf("pushes went through, yet last_push_timestamp_seconds = 0")
	}
}

// gauge reads a gauge of reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricValue(t, reg, name)
}

// metricValue reads the one series of a gauge or counter of reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// acksFail is a node that stores pulled pages but cannot store central's
// acknowledgements (the ack's meta write fails); it counts the refusals.
type acksFail struct {
	replication.Local
	refused *atomic.Int32
}

func (l acksFail) SetMeta(ctx context.Context, key string, v []byte) error {
	if key == replication.AckKey {
		l.refused.Add(1)
		return storeline.Errorf(storeline.InsufficientStorage, "test", "disk full")
	}
	return l.Local.SetMeta(ctx, key, v)
}

// TestReview4StateNotOnlineWhileAcksCannotBeStored: central takes every
// push, but the node cannot store the acknowledgement, so it resends its
// first batch forever and the sales after it never go up. Health must not
// say "online", the failure must count in push_errors_total and
// last_push_timestamp_seconds must not move, as for a page the node cannot
// store. Before, the push was recorded as a success before its ack was
// stored.
func TestReview4StateNotOnlineWhileAcksCannotBeStored(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 5)
	var refused atomic.Int32
	cl, reg := startTestClient(t, acksFail{node.LedgerLocal(l, nil), &refused}, []string{srv.URL},
		func(cc *replication.ClientConfig) { cc.MaxBatchEvents, cc.BackoffMax = 2, 10*time.Millisecond })
	waitFor(t, "acks refused and a pull done", 10*time.Second, func() bool {
		return refused.Load() >= 3 && !cl.Status().LastPull.IsZero()
	})
	n := refused.Load()
	waitFor(t, "another ack refused", 10*time.Second, func() bool { return refused.Load() > n })
	if st := cl.Status(); st.State == "online" {
		t.Errorf("no ack can be stored, the journal past the first batch is never sent: status %+v, want not online", st)
	}
	if v := gauge(t, reg, "storeline_replication_last_push_timestamp_seconds"); v != 0 {
		t.Errorf("no ack could be stored, yet last_push_timestamp_seconds = %v", v)
	}
	var errs float64
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "storeline_replication_push_errors_total" {
				errs = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
	}
	if errs == 0 {
		t.Errorf("no ack could be stored, yet push_errors_total = 0")
	}
}

// TestAnswersInTheRequestsVersion: central answers a push and a pull in
// the protocol version the shop asked in, so a shop one release behind
// (which refuses a version newer than its own) can still push and pull.
// It answered in its own version, which such a shop refused as "newer
// than it speaks": every pull page, for good.
func TestAnswersInTheRequestsVersion(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(3)...)
	srv := c.serve(t, tokens())
	old := replication.ProtocolVersion - 1
	_, evs := shopLedger(t, 2)
	push := replication.PushRequest{V: old, Store: string(shop), Epoch: evs[0].Epoch, Events: wireEvents(t, evs)}
	code, _, body := post(t, srv.Client(), srv.URL, shopToken, encode(t, push))
	var pr replication.PushResponse
	if code != 200 || replication.Decode(body, &pr) != nil || pr.V != old {
		t.Fatalf("push in version %d: %d, answered in version %d (%s)", old, code, pr.V, body)
	}
	pull := replication.PullRequest{V: old, Store: string(shop), MaxItems: 10}
	req, err := http.NewRequest("POST", srv.URL+"/v1/replication/pull", bytes.NewReader(encode(t, pull)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/msgpack")
	req.Header.Set("Authorization", "Bearer "+shopToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var page replication.PullResponse
	if resp.StatusCode != 200 || replication.Decode(b, &page) != nil || page.V != old {
		t.Fatalf("pull in version %d: %d, answered in version %d (%s)", old, resp.StatusCode, page.V, b)
	}
	if len(page.Records) == 0 {
		t.Fatalf("pull in version %d: no records in %+v", old, page)
	}
}

package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/internal/testaddr"
	"github.com/storeline/storeline/internal/testwait"
)

const (
	adminKey  = "admin-key-for-tests"
	viewerKey = "viewer-key-for-tests"
	secret    = "cluster-secret-for-tests"
)

// The slow tests that mostly wait (on Raft, gossip, HTTP or shops) call
// t.Parallel, so make test's two cores overlap their waits. Such a test
// must set no package-level state: none of the Set* hooks (SetCostPassLimit,
// SetTurnoverScanBound, ...), no hook variable of the internal tests, no
// environment. go test starts parallel tests only after every sequential
// test of the package has returned, so the hooks those set (and restore in
// cleanups) are never seen by a parallel one. Tests that count elections
// or time one step stay sequential: a second test's load moves leaders.

// testConfig is a node configuration with timers scaled down for tests.
func testConfig(t testing.TB, id, dir string) central.Config {
	t.Helper()
	c := central.DefaultConfig(dir)
	c.NodeID = id
	c.ClusterSecret = secret
	c.APIKeys = []central.APIKey{
		{Name: "admin", Hash: storeline.TokenHash(adminKey), Role: central.RoleAdmin},
		{Name: "viewer", Hash: storeline.TokenHash(viewerKey), Role: central.RoleViewer},
	}
	// Short enough that elections in tests take well under a second, long
	// enough that -race on a loaded 2-core machine does not start spurious
	// ones (100 ms did). The lease is as long as Raft allows (the
	// heartbeat timeout): at 100 ms a leader applying a shop's backlog
	// under -race stepped down every second or so for want of CPU, and
	// every push waited out an election (TestShopsConvergeWithCentral's
	// upload took twice as long).
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	// Listeners below the ephemeral range: a node restarted on the
	// addresses it had (restart and restore tests) must find them free.
	c.RaftAddr, c.APIAddr, c.AdminAddr = testaddr.Stable(false), testaddr.Stable(false), testaddr.Stable(false)
	c.GossipAddr = testaddr.Stable(true)
	c.CommitTimeout = 2 * time.Millisecond
	c.ApplyTimeout = 3 * time.Second
	c.ForwardTimeout = 3 * time.Second
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.ReconcileInterval = 50 * time.Millisecond
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

func openNode(t testing.TB, cfg central.Config) *central.Node {
	t.Helper()
	n, err := central.Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// cluster is an in-process cluster over loopback TCP.
type cluster struct {
	t     testing.TB
	dirs  []string
	cfgs  []central.Config
	nodes []*central.Node
}

// startCluster starts size nodes: the first bootstraps, the others join
// through gossip, and it waits until all are voters with a leader.
func startCluster(t testing.TB, size int) *cluster { return startClusterWith(t, size, nil) }

// startClusterWith is startCluster with each node's config changed by mod.
func startClusterWith(t testing.TB, size int, mod func(*central.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	for i := 0; i < size; i++ {
		cfg := testConfig(t, fmt.Sprintf("c%d", i+1), filepath.Join(root, fmt.Sprintf("n%d", i+1)))
		if mod != nil {
			mod(&cfg)
		}
		if i > 0 {
			cfg.Bootstrap = false
			cfg.Seeds = []string{c.nodes[0].GossipAddr()}
		}
		n := openNode(t, cfg)
		// Restarts reuse the bound addresses.
		cfg.RaftAddr, cfg.APIAddr = n.RaftAddr(), n.APIAddr()
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, n)
		if i == 0 {
			waitFor(t, "bootstrap leader", 10*time.Second, n.IsLeader)
		}
	}
	c.waitVoters(size)
	return c
}

func (c *cluster) waitVoters(want int) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("%d voters", want), 15*time.Second, func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		resp := apiDo(c.t, http.MethodGet, l.APIAddr(), "/v1/cluster", viewerKey, nil, nil)
		var body struct {
			Members []struct {
				Suffrage string `json:"suffrage"`
			} `json:"members"`
		}
		if resp.status != 200 || json.Unmarshal(resp.body, &body) != nil {
			return false
		}
		v := 0
		for _, m := range body.Members {
			if m.Suffrage == "Voter" {
				v++
			}
		}
		return v == want
	})
}

// leader returns the live node that is leader, or nil.
func (c *cluster) leader() *central.Node {
	for _, n := range c.nodes {
		if n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

func (c *cluster) waitLeader() *central.Node {
	c.t.Helper()
	var l *central.Node
	waitFor(c.t, "a leader", 15*time.Second, func() bool { l = c.leader(); return l != nil })
	return l
}

// follower returns a live node that is not the leader.
func (c *cluster) follower() *central.Node {
	for _, n := range c.nodes {
		if n != nil && !n.IsLeader() {
			return n
		}
	}
	return nil
}

type response struct {
	status int
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

func spec(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		l := openapi3.NewLoader()
		doc, err := l.LoadFromData(central.OpenAPI())
		if err == nil {
			err = doc.Validate(l.Context)
		}
		if err == nil {
			specRouter, err = gorillamux.NewRouter(doc)
		}
		specErr = err
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return specRouter
}

// apiDo sends one request to the head-office API at addr. Every answer is
// checked against openapi.yaml, and so is every request that was
// answered 2xx (requests refused on purpose break the spec).
func apiDo(t testing.TB, method, addr, path, key string, body any, hdr map[string]string) response {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		raw = enc
	}
	newReq := func(host string) *http.Request {
		req, err := http.NewRequest(method, host+path, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return req
	}
	if method != http.MethodGet && hdr["Idempotency-Key"] == "" {
		// A client retries a write with the same key (below), as the API
		// asks; the key makes that safe whatever the first outcome was.
		h := map[string]string{"Idempotency-Key": "test-" + storeline.NewEventID().String()}
		for k, v := range hdr {
			h[k] = v
		}
		hdr = h
	}
	var resp *http.Response
	var b []byte
	// 503 means no leader right now (an election on a loaded machine, the
	// tests' timers being short): retry until a deadline.
	var doErr error
	testwait.Retry(30*time.Second, func() bool {
		r, err := http.DefaultClient.Do(newReq("http://" + addr))
		if err != nil {
			doErr = err
			return true
		}
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
		resp = r
		return r.StatusCode != http.StatusServiceUnavailable
	})
	if doErr != nil {
		return response{status: 0, body: []byte(doErr.Error())}
	}
	vr := newReq("")
	route, params, err := spec(t).FindRoute(vr)
	if err != nil {
		t.Errorf("%s %s: not in openapi.yaml: %v", method, path, err)
		return response{status: resp.StatusCode, body: b}
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: accepted request breaks openapi.yaml: %v", method, path, err)
		}
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
	}); err != nil {
		t.Errorf("%s %s: answer %d breaks openapi.yaml: %v\n%s", method, path, resp.StatusCode, err, b)
	}
	return response{status: resp.StatusCode, body: b}
}

// mustOK fails unless the answer is 200.
func mustOK(t testing.TB, r response) response {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	return r
}

// seed writes a store, a price list, a group and n items through addr.
func seed(t testing.TB, addr string, items int) {
	t.Helper()
	mustOK(t, apiDo(t, "PUT", addr, "/v1/price_lists/retail", adminKey, map[string]any{"name": "Retail", "currency": "EUR"}, nil))
	mustOK(t, apiDo(t, "PUT", addr, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", addr, "/v1/groups/food", adminKey, map[string]any{"name": "Food"}, nil))
	for i := 0; i < items; i++ {
		mustOK(t, apiDo(t, "PUT", addr, fmt.Sprintf("/v1/items/i%d", i), adminKey, item(i), nil))
	}
}

func item(i int) map[string]any {
	return map[string]any{"sku": fmt.Sprintf("SKU%d", i), "name": fmt.Sprintf("Item %d", i), "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "21"}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// proxyEach puts a fault-injecting proxy in front of every central node's
// replication listener, closed when the test ends; it returns them and
// their URLs, in the nodes' order.
func proxyEach(t testing.TB, c *cluster) ([]*faultproxy.Proxy, []string) {
	t.Helper()
	var pxs []*faultproxy.Proxy
	var urls []string
	for _, n := range c.nodes {
		px, err := faultproxy.New(n.ReplicationAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		pxs = append(pxs, px)
		urls = append(urls, px.URL())
	}
	return pxs, urls
}

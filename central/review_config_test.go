package central_test

// Configuration and lifecycle defects of a central node, each confirmed by
// a test here before it was fixed.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// invalidFields returns the fields an error of Validate names.
func invalidFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*storeline.Error); ok && e.Field != "" {
			out = append(out, e.Field)
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// TestReviewConfigTimerBounds: every interval and timeout has a sane lower
// bound (1ns used to pass "must be positive" and would spin the leader's
// loops), an upper one where one makes sense, and TrailingLogs and
// APIAdvertise are checked; the error names the field.
func TestReviewConfigTimerBounds(t *testing.T) {
	base := testConfig(t, "c1", t.TempDir())
	for _, tc := range []struct {
		field string
		mod   func(*central.Config)
	}{
		{"PruneInterval", func(c *central.Config) { c.PruneInterval = time.Nanosecond }},
		{"PruneInterval", func(c *central.Config) { c.PruneInterval = 400 * 24 * time.Hour }},
		{"ReconcileInterval", func(c *central.Config) { c.ReconcileInterval = time.Nanosecond }},
		{"ReconcileInterval", func(c *central.Config) { c.ReconcileInterval = 24 * time.Hour }},
		{"ApplyTimeout", func(c *central.Config) { c.ApplyTimeout = time.Nanosecond }},
		{"ApplyTimeout", func(c *central.Config) { c.ApplyTimeout = 24 * time.Hour }},
		{"ForwardTimeout", func(c *central.Config) { c.ForwardTimeout = time.Nanosecond }},
		{"ForwardTimeout", func(c *central.Config) { c.ForwardTimeout = 24 * time.Hour }},
		{"ProbeInterval", func(c *central.Config) { c.ProbeInterval, c.ProbeTimeout = time.Nanosecond, time.Nanosecond }},
		{"ProbeTimeout", func(c *central.Config) { c.ProbeTimeout = time.Nanosecond }},
		{"GossipInterval", func(c *central.Config) { c.GossipInterval = time.Nanosecond }},
		{"GossipInterval", func(c *central.Config) { c.GossipInterval = time.Hour }},
		{"DeadNodeRemoveAfter", func(c *central.Config) { c.DeadNodeRemoveAfter = time.Nanosecond }},
		{"ReplicationMaxWait", func(c *central.Config) { c.ReplicationMaxWait = time.Nanosecond }},
		{"Loyalty.SweepInterval", func(c *central.Config) { c.Loyalty.SweepInterval = time.Nanosecond }},
		{"Loyalty.SweepInterval", func(c *central.Config) { c.Loyalty.SweepInterval = 400 * 24 * time.Hour }},
		{"TrailingLogs", func(c *central.Config) { c.TrailingLogs = 0 }},
		{"TrailingLogs", func(c *central.Config) { c.TrailingLogs = 1 << 40 }},
		{"APIAdvertise", func(c *central.Config) { c.APIAdvertise = "no-port" }},
		{"APIAdvertise", func(c *central.Config) { c.APIAdvertise = "0.0.0.0:8443" }},
		{"APIAdvertise", func(c *central.Config) { c.APIAdvertise = "10.0.0.11:0" }},
	} {
		c := base
		tc.mod(&c)
		err := c.Validate()
		if got := invalidFields(err); !slices.Contains(got, tc.field) {
			t.Errorf("%s: Validate = %v (fields %v), want %s named", tc.field, err, got, tc.field)
		} else if !errors.Is(err, storeline.Invalid) {
			t.Errorf("%s: Validate = %v, want Invalid", tc.field, err)
		}
	}

	// What the defaults and the tests use stays valid: the tests' small
	// values (TrailingLogs 4 for snapshot installs, DeadNodeRemoveAfter
	// 200ms, a 50ms sweep, 200ms long polls, 20ms gossip, 50ms reconcile,
	// internal/chain's ProbeInterval/5 gossip) are at or above the bounds.
	for name, mod := range map[string]func(*central.Config){
		"default":    func(c *central.Config) { *c = central.DefaultConfig(c.DataDir) },
		"testConfig": func(*central.Config) {},
		"small": func(c *central.Config) {
			c.TrailingLogs = 4
			c.DeadNodeRemoveAfter = 200 * time.Millisecond
			c.Loyalty.SweepInterval = 50 * time.Millisecond
			c.ReplicationMaxWait = 200 * time.Millisecond
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
		},
		"sweep off":     func(c *central.Config) { c.Loyalty.SweepInterval = 0 },
		"advertise":     func(c *central.Config) { c.APIAdvertise = "10.0.0.11:8443" },
		"advertise dns": func(c *central.Config) { c.APIAdvertise = "central-1.example:8443" },
		"chain": func(c *central.Config) {
			c.ProbeInterval, c.ProbeTimeout, c.GossipInterval, c.ReconcileInterval = 200*time.Millisecond, 100*time.Millisecond, 40*time.Millisecond, 200*time.Millisecond
		},
	} {
		c := base
		mod(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestReviewBootstrapWithSeedsRejoins: the first node of a cluster keeps
// Bootstrap set; restarted with its data wiped (after the cluster removed
// it as dead) and the other nodes as seeds, it used to form a one-node
// cluster of its own and lead it (acknowledging writes the real cluster's
// leader later overwrites). A node given seeds joins through them: it
// never leads a cluster of its own, and catches up with the cluster.
func TestReviewBootstrapWithSeedsRejoins(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 3, func(cfg *central.Config) { cfg.DeadNodeRemoveAfter = 200 * time.Millisecond })
	c.put(t, "before-wipe", &storeline.Store{ID: "s-before", Name: "Before", TimeZone: "Europe/Riga", Currency: "EUR",
		Departments: []storeline.Department{{ID: "food", Name: "Food"}}})
	c.stopNode(0)
	if err := os.RemoveAll(c.cfgs[0].DataDir); err != nil {
		t.Fatal(err)
	}
	c.waitVoters(2) // the dead node is out of the Raft configuration
	cfg := c.cfgs[0]
	if !cfg.Bootstrap {
		t.Fatal("the first node's config does not bootstrap")
	}
	cfg.Seeds = []string{c.nodes[1].GossipAddr(), c.nodes[2].GossipAddr()}
	n := openNode(t, cfg)
	c.nodes[0] = n
	// A node that bootstraps waits in Open (firstIncarnation, up to
	// ApplyTimeout) until it has elected itself and written its first
	// entry: leading as Open returns is a cluster of its own. A node that
	// joins has no configuration yet and cannot lead then.
	if n.IsLeader() {
		t.Fatal("the wiped node with seeds bootstrapped a cluster of its own and leads it")
	}
	waitFor(t, "the wiped node to follow the cluster's leader", 15*time.Second, func() bool {
		l := n.Leader()
		return l != "" && l != cfg.NodeID
	})
	waitFor(t, "the wiped node to catch up", 15*time.Second, func() bool {
		var s storeline.Store
		return n.Replica().GetMaster(storeline.KindStore, "s-before", &s) == nil && s.ID == "s-before"
	})
	c.waitVoters(3)
}

// TestReviewCloseCancelsLoops: Close cancels the context the prune and
// loyalty loops run their rounds under (it used to be a background one:
// Close waited up to 10×ApplyTimeout for a round to end).
func TestReviewCloseCancelsLoops(t *testing.T) {
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	n := openNode(t, cfg)
	ctx, cancel := n.LoopContext(time.Hour)
	defer cancel()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Close left the loops' context running")
	}
}

// TestReviewHandlerAfterCloseUnavailable: a request the API server had
// already accepted when the node closed must not read the closed replica:
// it is answered 503, never 500 (nor a panic over a closed Badger).
func TestReviewHandlerAfterCloseUnavailable(t *testing.T) {
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	n := openNode(t, cfg)
	waitFor(t, "leader", 10*time.Second, n.IsLeader)
	h := n.APIHandler()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/stores", "/v1/stores/s1", "/v1/changes?store=s1", "/v1/cluster"} {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+viewerKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s after Close: %d %s, want 503", path, rec.Code, rec.Body)
		}
	}
}

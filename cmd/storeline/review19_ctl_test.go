package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReview19CtlWrongServer: ctl --node given central's admin URL (which
// also answers /healthz) printed central's health and exited 0, and every
// other mix-up of URLs failed as a bare "404 page not found". Each now
// fails naming the URL and what it is not; a node's own error answers
// and central's own 404 (a document it does not have) are left as they
// were.
func TestReview19CtlWrongServer(t *testing.T) {
	c := startCentralArgs(t, env(nil), "-data", filepath.Join(t.TempDir(), "central"),
		"-heartbeat", "100ms", "-election", "100ms", "-lease", "50ms")
	api, admin, key := c["api"], c["admin"], c["admin-key"]
	central := env(map[string]string{"STORELINE_CENTRAL_KEY": key, "STORELINE_ADMIN_TOKEN": testToken})
	waitFor(t, "a leader", 10*time.Second, func() bool {
		code, stdout, _ := runCmd(t, central, "ctl", "--central", api, "cluster")
		return code == 0 && strings.Contains(stdout, `"leader":"central-1"`)
	})
	shop := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, shop, "-store", "shop-1", "-data", filepath.Join(t.TempDir(), "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")

	for _, tc := range []struct {
		name string
		args []string
		url  string
		want string
	}{
		{"node health at central's admin", []string{"--node", admin, "health"}, admin, "not a store node's admin listener"},
		{"node conservation at central's admin", []string{"--node", admin, "conservation"}, admin, "not a store node's admin listener"},
		{"node health at central's API", []string{"--node", api, "health"}, api, "not a store node's admin listener"},
		{"node terminal at central's API", []string{"--node", api, "terminal", "T1"}, api, "not a store node's admin listener"},
		{"central cluster at a node's admin", []string{"--central", p.admin, "cluster"}, p.admin, "not central's API"},
		{"central show at a node's admin", []string{"--central", p.admin, "show", "D1"}, p.admin, "not central's API"},
		{"central cluster at central's admin", []string{"--central", admin, "cluster"}, admin, "not central's API"},
	} {
		code, stdout, stderr := runCmd(t, central, append([]string{"ctl"}, tc.args...)...)
		if code != exitError || !strings.Contains(stderr, tc.url) || strings.Count(stderr, tc.want) != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and an error naming %s, %q",
				tc.name, code, stdout, stderr, exitError, tc.url, tc.want)
		}
	}

	// The right servers: the node's health passes, central's 404 for a
	// document it does not have is its own.
	if code, stdout, stderr := runCmd(t, shop, "ctl", "--node", p.admin, "health"); code != exitOK || !strings.Contains(stdout, `"store":"shop-1"`) {
		t.Errorf("node health at the node = %d %q %q, want 0 and its health", code, stdout, stderr)
	}
	code, _, stderr := runCmd(t, central, "ctl", "--central", api, "show", "no-such-doc")
	if code != exitError || !strings.Contains(stderr, "404") || strings.Contains(stderr, "not central's API") {
		t.Errorf("central show of a missing document = %d %q, want central's own 404", code, stderr)
	}
}

// TestReview19CtlPoisonedNodeIsANode: a poisoned node answers /healthz 503
// naming its store; ctl shows that answer, not "not a store node".
func TestReview19CtlPoisonedNodeIsANode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","reason":"ledger poisoned","store":"shop-1","master_version":3}`))
	}))
	defer srv.Close()
	code, _, stderr := runCmd(t, env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken}), "ctl", "--node", srv.URL, "health")
	if code != exitError || !strings.Contains(stderr, "ledger poisoned") || strings.Contains(stderr, "not a store node") {
		t.Errorf("health of a poisoned node = %d %q, want its 503 answer", code, stderr)
	}
}

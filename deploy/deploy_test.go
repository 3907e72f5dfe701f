package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

const (
	rulesFile     = "prometheus/storeline-node.rules.yml"
	rulesTestFile = "prometheus/storeline-node.rules.test.yml"
	configFile    = "prometheus.yml"
	dashboardFile = "grafana/storeline-node.json"

	centralRulesFile     = "prometheus/storeline-central.rules.yml"
	centralRulesTestFile = "prometheus/storeline-central.rules.test.yml"
	centralDashboardFile = "grafana/storeline-central.json"
)

// promtool returns promtool's path, or skips the test when it is missing:
// except under CI=true, where a missing promtool fails (.ci/run installs
// it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool is not installed, and CI=true requires it (apt-get install prometheus): %v", err)
		}
		t.Skipf("promtool not installed (apt-get install --no-install-recommends prometheus); skipping: %v", err)
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPromtool: the rules and the scrape config are valid, and the rules'
// unit tests pass.
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	runPromtool(t, bin, "check", "rules", rulesFile)
	runPromtool(t, bin, "check", "config", configFile)
	runPromtool(t, bin, "test", "rules", rulesTestFile)
	runPromtool(t, bin, "check", "rules", centralRulesFile)
	runPromtool(t, bin, "test", "rules", centralRulesTestFile)
	// prometheus.yml loads both rule files (check config checks them too).
	if out := runPromtool(t, bin, "check", "config", configFile); !strings.Contains(out, "storeline-central.rules.yml") {
		t.Errorf("%s does not load %s:\n%s", configFile, centralRulesFile, out)
	}
}

// nameToken matches PromQL identifiers: metric names, recording rule names
// (with colons), label names, functions and keywords alike.
var nameToken = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// metricPrefixes are the exporters whose names the files may use: ours,
// and the Go and process collectors a node registers.
var metricPrefixes = []string{"storeline_", "go_", "process_"}

// ruleExprs returns the PromQL expressions of the rules file (every "expr:"
// value, block scalars included) and the rule names it records.
func ruleExprs(t *testing.T, text string) (exprs []string, records map[string]bool) {
	t.Helper()
	records = map[string]bool{}
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		trim := strings.TrimPrefix(strings.TrimSpace(lines[i]), "- ")
		if v, ok := strings.CutPrefix(trim, "record:"); ok {
			records[strings.TrimSpace(v)] = true
		}
		v, ok := strings.CutPrefix(trim, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v != "|" && v != ">" {
			exprs = append(exprs, v)
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var b strings.Builder
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			b.WriteString(next + "\n")
			i++
		}
		exprs = append(exprs, b.String())
	}
	if len(exprs) == 0 {
		t.Fatalf("no expr: in the rules file")
	}
	return exprs, records
}

// dashboardExprs returns every query of the dashboard: panel targets'
// expr and template variables' queries.
func dashboardExprs(t *testing.T, name string, b []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && (k == "expr" || k == "definition") {
					out = append(out, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	if len(out) == 0 {
		t.Fatalf("%s: no queries", name)
	}
	return out
}

// namesIn returns the metric names and recording-rule names an expression
// uses. Quoted label values are dropped first.
func namesIn(expr string) (metrics, recorded []string) {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	for _, tok := range nameToken.FindAllString(expr, -1) {
		if strings.Contains(tok, ":") {
			recorded = append(recorded, tok)
			continue
		}
		for _, p := range metricPrefixes {
			if strings.HasPrefix(tok, p) {
				metrics = append(metrics, tok)
			}
		}
	}
	return metrics, recorded
}

// families parses the text exposition format's # TYPE lines.
func families(text string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// exported reports whether a series name belongs to an exported family:
// the family itself, or a histogram's or summary's _bucket/_sum/_count.
func exported(fams map[string]string, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if typ := fams[base]; typ == "histogram" || (typ == "summary" && suf != "_bucket") {
				return true
			}
		}
	}
	return false
}

// deadNames checks every expression against the exported families and the
// recorded rule names, returning what is used but does not exist.
func deadNames(exprs []string, fams map[string]string, records map[string]bool) []string {
	dead := map[string]bool{}
	for _, e := range exprs {
		ms, rs := namesIn(e)
		for _, m := range ms {
			if !exported(fams, m) {
				dead[m] = true
			}
		}
		for _, r := range rs {
			if !records[r] {
				dead[r] = true
			}
		}
	}
	out := make([]string, 0, len(dead))
	for d := range dead {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

const adminToken = "admin-token-0123456789"

// startNode starts a real store node (replicating to central when repl
// names one) and sends it a receipt, so that every labelled series has a
// child.
func startNode(t *testing.T, repl node.ReplicationConfig) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: "till-one-token-0123456789"}}
	if repl.Enabled() {
		c.Replication = repl
	}
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	if _, err := n.Ledger().PutMaster(context.Background(), sample.New("shop-1").Records(nil)); err != nil {
		t.Fatal(err)
	}
	receipt := map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "s-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:00:00Z",
		"lines":       []map[string]string{{"sku": "SKU00001", "qty": "1", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "1.19"}},
	}
	b, _ := json.Marshal(receipt)
	req, _ := http.NewRequest("POST", n.TillURL()+"/v1/receipts", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer till-one-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST /v1/receipts = %d", resp.StatusCode)
	}
	return n
}

// scrape returns the text of url's /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/metrics = %d\n%s", base, resp.StatusCode, text)
	}
	return string(text)
}

// scrapeNode starts a real standalone store node, sends it a receipt and
// returns its /metrics text.
func scrapeNode(t *testing.T) string {
	t.Helper()
	return scrape(t, startNode(t, node.ReplicationConfig{}).AdminURL())
}

const shopReplicationToken = "shop-1-replication-token-0123456789"

// scrapeChain starts a real single-node central cluster (Raft over TCP,
// gossip, the shops' replication listener, metrics registered as
// `storeline central` registers them) and a store node replicating to it,
// waits until central has applied the shop's push, and returns both
// /metrics texts: central's per-shop series exist only once a shop has
// pushed, the node's replication series only when it replicates.
func scrapeChain(t *testing.T) (centralText, nodeText string) {
	t.Helper()
	cfg := central.DefaultConfig(t.TempDir())
	cfg.ReplicationTokens = map[string]storeline.StoreID{shopReplicationToken: "shop-1"}
	cfg.ReplicationMaxWait = 200 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	// As cmd/storeline/central.go does.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	cn, err := central.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cn.Close(); err != nil {
			t.Errorf("central close: %v", err)
		}
	})
	repl := node.ReplicationConfig{
		Central: []string{cn.ReplicationURL()}, Token: shopReplicationToken,
		MaxBatchEvents: 500, MaxBatchBytes: 1 << 20, PageItems: 1000,
		PushInterval: 20 * time.Millisecond, PollWait: 200 * time.Millisecond, RequestTimeout: 5 * time.Second,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
	n := startNode(t, repl)
	centralURL := "http://" + cn.AdminAddr()
	pushed := regexp.MustCompile(`(?m)^storeline_central_replication_last_push_timestamp_seconds\{[^}]*store="shop-1"[^}]*\} [1-9]`)
	// The request counter moves when the push's handler returns, after
	// the FSM applied it (and the gauge above moved): wait for both.
	served := regexp.MustCompile(`(?m)^storeline_replication_server_requests_total\{[^}]*\} [1-9]`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		centralText = scrape(t, centralURL)
		if pushed.MatchString(centralText) && served.MatchString(centralText) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("central never applied shop-1's push; its /metrics:\n%s", centralText)
		case <-tick.C:
		}
	}
	return centralText, scrape(t, n.AdminURL())
}

// TestMetricNamesExist: every metric the rules and the dashboard use is
// exported by a running node, and every recording rule they use is
// defined in the rules file.
func TestMetricNamesExist(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs, records := ruleExprs(t, string(rules))
	exprs = append(exprs, dashboardExprs(t, dashboardFile, dash)...)
	text := scrapeNode(t)
	fams := families(text)
	if dead := deadNames(exprs, fams, records); len(dead) > 0 {
		t.Errorf("the rules or the dashboard use names a node does not export (or no rule records): %v", dead)
	}
	// The route label values the rules match on are the mux's patterns.
	if !strings.Contains(text, `route="POST /v1/receipts"`) {
		t.Errorf("/metrics has no route=\"POST /v1/receipts\" series; the rules filter on it")
	}
	// A planted dead name is caught: the check is not vacuous.
	planted := append(append([]string{}, exprs...), "rate(storeline_receipts_comitted_total[5m])", "instance:storeline_nothing:rate5m")
	if dead := deadNames(planted, fams, records); fmt.Sprint(dead) != "[instance:storeline_nothing:rate5m storeline_receipts_comitted_total]" {
		t.Errorf("planted dead names: found %v", dead)
	}
}

// TestCentralMetricNamesExist: every metric the central rules and the
// central dashboard use is exported by a running central node or by a
// store node replicating to it, and every recording rule they use is
// defined in the central rules file.
func TestCentralMetricNamesExist(t *testing.T) {
	rules, err := os.ReadFile(centralRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(centralDashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs, records := ruleExprs(t, string(rules))
	exprs = append(exprs, dashboardExprs(t, centralDashboardFile, dash)...)
	centralText, nodeText := scrapeChain(t)
	fams := families(centralText)
	for name, typ := range families(nodeText) {
		fams[name] = typ
	}
	if dead := deadNames(exprs, fams, records); len(dead) > 0 {
		t.Errorf("the central rules or dashboard use names neither central nor a replicating node exports (or no rule records): %v", dead)
	}
	// The label values and labels the rules match on are real: central's
	// per-shop series carry store (and node), Raft state is "Leader".
	for _, want := range []string{`state="Leader"`, `store="shop-1"`} {
		if !strings.Contains(centralText, want) {
			t.Errorf("central's /metrics has no %s series; the rules filter on it", want)
		}
	}
	// Sanity of the collection itself: the shop's push reached central's
	// FSM, and the node's replication client reports.
	for _, want := range []string{"storeline_central_replication_events_ingested_total", "storeline_central_raft_applied_index", "storeline_replication_server_requests_total"} {
		if !exported(fams, want) {
			t.Errorf("central exports no %s", want)
		}
	}
	if !exported(fams, "storeline_replication_events_waiting") {
		t.Errorf("the replicating node exports no storeline_replication_events_waiting")
	}
	planted := append(append([]string{}, exprs...), "max by (store) (storeline_central_replication_last_psuh_timestamp_seconds)", "store:storeline_central_nothing:max")
	if dead := deadNames(planted, fams, records); fmt.Sprint(dead) != "[store:storeline_central_nothing:max storeline_central_replication_last_psuh_timestamp_seconds]" {
		t.Errorf("planted dead names: found %v", dead)
	}
}

// TestMetricsLint: a running node's and a running central node's
// /metrics pass promtool check metrics (Prometheus naming conventions).
func TestMetricsLint(t *testing.T) {
	bin := promtool(t)
	centralText, nodeText := scrapeChain(t)
	for name, text := range map[string]string{"standalone node": scrapeNode(t), "replicating node": nodeText, "central": centralText} {
		cmd := exec.Command(bin, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics (%s): %v\n%s", name, err, out)
		}
	}
}

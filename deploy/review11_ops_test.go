package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

const review11TillToken = "till-one-token-0123456789"

// review11Node starts a real standalone store node with the sample
// master data and its sellers; withStore false leaves the store record
// out (as on a node whose store record has not arrived from central).
func review11Node(t *testing.T, withStore bool) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", t.TempDir(), adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: review11TillToken}}
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	var herr error
	recs := sample.New("shop-1").Records(func(s sample.SellerPIN) *storeline.Seller {
		rec, err := node.SellerRecord(node.SellerRequest{ID: s.ID, Name: s.Name, Role: s.Role, PIN: s.PIN})
		if err != nil {
			herr = err
		}
		return rec
	})
	if herr != nil {
		t.Fatal(herr)
	}
	if !withStore {
		kept := recs[:0]
		for _, r := range recs {
			if _, ok := r.(*storeline.Store); !ok {
				kept = append(kept, r)
			}
		}
		recs = kept
	}
	if _, err := n.Ledger().PutMaster(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return n
}

// review11Post sends a till's POST and returns its status.
func review11Post(t *testing.T, n *node.Node, path string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", n.TillURL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+review11TillToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// review11TillMinute is one minute of a till's work: a cashier logs in,
// and a receipt is sent. It returns the receipt's status.
func review11TillMinute(t *testing.T, n *node.Node) (login, receipt int) {
	t.Helper()
	login = review11Post(t, n, "/v1/sessions", map[string]string{"seller": "cashier-1", "pin": "1234"})
	receipt = review11Post(t, n, "/v1/receipts", map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "s-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:00:00Z",
		"lines":       []map[string]string{{"sku": "SKU00001", "qty": "1", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "1.19"}},
	})
	return login, receipt
}

var review11Count = regexp.MustCompile(`^(storeline_http_request_duration_seconds_count|storeline_node_info)\{([^}]*)\} (\S+)$`)

// review11Series turns a real node's /metrics into promtool input series
// for 20 minutes of the same traffic every minute: each till API counter
// grows by its scraped value a minute, storeline_node_info stays 1.
func review11Series(t *testing.T, text string) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := review11Count.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		values := "1x20"
		if m[1] != "storeline_node_info" {
			values = "0+" + m[3] + "x20"
		}
		series := fmt.Sprintf(`%s{job="storeline-node", instance="a:9090", %s}`, m[1], m[2])
		q, _ := json.Marshal(series)
		fmt.Fprintf(&b, "      - series: %s\n        values: '%s'\n", q, values)
	}
	return b.String()
}

// review11LedgerUnavailable runs promtool on the node rules with the
// given input series and the StorelineLedgerUnavailable alerts expected
// at 10m (exp_alerts YAML, "[]" for none).
func review11LedgerUnavailable(t *testing.T, bin, series, expAlerts string) {
	t.Helper()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	test := fmt.Sprintf(`rule_files:
  - %s
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
%s    alert_rule_test:
      - eval_time: 10m
        alertname: StorelineLedgerUnavailable
        exp_alerts: %s
`, rules, series, expAlerts)
	path := filepath.Join(t.TempDir(), "ledger-unavailable.test.yml")
	if err := os.WriteFile(path, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "test", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s\n%s", err, out, test)
	}
}

// TestReview11LedgerUnavailableDespiteLogins: a real node whose store
// record is missing answers every receipt 503 while its cashiers still
// log in (POST /v1/sessions 201, a read that writes nothing to the
// ledger). StorelineLedgerUnavailable ("every till write is refused
// (503)", critical) must fire on that node's own series; it used to be
// held back by any 2xx POST, the logins and basket pricing included, so
// it never fired while the shop was open. A healthy node's same traffic
// keeps it quiet.
func TestReview11LedgerUnavailableDespiteLogins(t *testing.T) {
	bin := promtool(t)

	broken := review11Node(t, false)
	login, receipt := review11TillMinute(t, broken)
	if login != 201 || receipt != 503 {
		t.Fatalf("node without its store record: login %d, receipt %d; want 201 and 503", login, receipt)
	}
	review11LedgerUnavailable(t, bin, review11Series(t, scrape(t, broken.AdminURL())), `
          - exp_labels: {severity: critical, job: storeline-node, instance: "a:9090", store: shop-1}
            exp_annotations:
              summary: "Store shop-1: every till write is refused (503)"
              description: "a:9090 answers the tills' writes 503 and commits none. The ledger is poisoned (disk or fsync failure; see the node's log for 'ledger poisoned') or the store record is missing. Fix the disk and restart the node: nothing acknowledged is lost."`)

	healthy := review11Node(t, true)
	if login, receipt := review11TillMinute(t, healthy); login != 201 || receipt != 201 {
		t.Fatalf("healthy node: login %d, receipt %d; want 201 and 201", login, receipt)
	}
	review11LedgerUnavailable(t, bin, review11Series(t, scrape(t, healthy.AdminURL())), "[]")
}

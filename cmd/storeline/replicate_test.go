package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// TestNodeReplicatesToCentral runs `storeline central` and a `storeline
// node` configured for replication by its flags and environment alone (as
// the systemd unit runs it), and shows both directions work: master data
// written at head office reaches the shop's tills, and a receipt sold at
// the shop reaches central's stock.
func TestNodeReplicatesToCentral(t *testing.T) {
	const shopToken, tillToken = "shop-1-replication-token-0123", "till-one-token-0123456789"
	dir := t.TempDir()
	api, key, repl, stop := runCentralEnv(t, filepath.Join(dir, "central"), env(map[string]string{"STORELINE_SHOP_TOKENS": "shop-1=" + shopToken}))
	defer stop()
	hq := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, r := range [][3]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/stores/shop-1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
		{"PUT", "/v1/sellers/cashier-1", `{"name":"Ann","role":"cashier","pin":"1234"}`},
	} {
		if err := hq.do(context.Background(), r[0], r[1], []byte(r[2]), io.Discard); err != nil {
			t.Fatalf("%s %s: %v", r[0], r[1], err)
		}
	}
	hqEnv := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	if code, _, errOut := runCmd(t, hqEnv, "ctl", "--central", api, "price", "retail", "milk", "1.19", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)); code != 0 {
		t.Fatalf("price: %s", errOut)
	}

	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken, "STORELINE_REPLICATION_TOKEN": shopToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(dir, "shop-1"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-terminals", "till-1="+tillToken, "-replication-central", repl,
		"-replication-push-interval", "50ms", "-replication-poll-wait", "500ms", "-replication-backoff-min", "20ms", "-replication-backoff-max", "200ms")
	till := func(method, path string, body []byte) (int, string) {
		req, _ := http.NewRequest(method, p.till+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tillToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "head office's item at the shop's tills", 20*time.Second, func() bool {
		code, _ := till("GET", "/v1/items/MILK", nil)
		return code == 200
	})
	waitFor(t, "the till's health to say online", 10*time.Second, func() bool {
		_, health := till("GET", "/v1/health", nil)
		return strings.Contains(health, `"replication":"online"`) && strings.Contains(health, `"central_reachable":true`)
	})

	receipt, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "s-1", "seller": "cashier-1",
		"occurred_at": time.Now().UTC().Format(time.RFC3339),
		"lines":       []map[string]string{{"sku": "MILK", "qty": "1", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "1.19"}},
	})
	if code, body := till("POST", "/v1/receipts", receipt); code != 201 {
		t.Fatalf("receipt = %d %s", code, body)
	}
	var last string
	waitFor(t, "the shop's receipt in central's stock", 20*time.Second, func() bool {
		_, last, _ = runCmd(t, hqEnv, "ctl", "--central", api, "stock", "shop-1", "milk")
		return strings.Contains(last, `"qty":"-1"`)
	})
	t.Logf("central's stock of shop-1: %s", last)
}

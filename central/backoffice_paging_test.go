package central_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// pages follows a report's cursor from the first page to the last at
// limit rows a page, returning every row of key (as JSON) in order.
func pages(t *testing.T, a, path, key string, limit int) []string {
	t.Helper()
	var out []string
	after := ""
	for range 100 {
		p := fmt.Sprintf("%s&limit=%d", path, limit)
		if after != "" {
			p += "&after=" + url.QueryEscape(after)
		}
		body := mustOK(t, apiDo(t, "GET", a, p, viewerKey, nil, nil)).json(t)
		rows := body[key].([]any)
		if len(rows) > limit {
			t.Fatalf("%s: %d rows, over the limit", p, len(rows))
		}
		for _, r := range rows {
			b, _ := json.Marshal(r)
			out = append(out, string(b))
		}
		next, _ := body["next"].(string)
		if next == "" {
			return out
		}
		after = next
	}
	t.Fatalf("%s: no end after 100 pages", path)
	return nil
}

// gauge returns a metric's value with the labels given, and whether it
// is exported.
func boGauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestReportsPageAndMetrics: every back-office report pages by limit and
// cursor, the pages together are the whole report, bad paging parameters
// are a 400 naming the field; the back-office metrics follow documents
// and sales as they are applied.
func TestReportsPageAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens(); cfg.Registerer = reg })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	soon := time.Now().AddDate(0, 0, 3).Format(time.DateOnly)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10", "batch": "B1", "expiry": "2030-01-01"},
		map[string]any{"item": "flour", "qty": "3", "purchase_price": "0.80", "batch": "F1", "expiry": soon},
		map[string]any{"item": "bread", "qty": "2", "purchase_price": "0.50", "batch": "R1"},
		map[string]any{"item": "bread", "qty": "2", "purchase_price": "0.50", "batch": "R2", "expiry": "2030-01-01"})})
	for i := range 4 {
		mustOK(t, apiDo(t, "PUT", a, fmt.Sprintf("/v1/documents/wo%d", i), adminKey, map[string]any{"type": "write_off", "store": "s1",
			"reason": "x", "lines": lines(map[string]any{"item": "flour", "qty": "1"})}, nil))
	}
	// 7 sales of milk, 5 in stock: milk goes below zero.
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 1, 7))

	// Each report, paged by 2 (or 1), is the report in one page.
	for _, r := range []struct{ path, key string }{
		{"/v1/margin?store=s1&from=2026-11-29&to=2026-11-29", "sales"},
		{"/v1/stock?store=s1", "stock"},
		{"/v1/balances?prefix=stock/s1/", "balances"},
		{"/v1/batches?store=s1", "batches"},
	} {
		all := pages(t, a, r.path, r.key, 5000)
		for _, limit := range []int{1, 2} {
			if got := pages(t, a, r.path, r.key, limit); strings.Join(got, "\n") != strings.Join(all, "\n") {
				t.Errorf("%s by %d:\n%s\nwhole:\n%s", r.path, limit, strings.Join(got, "\n"), strings.Join(all, "\n"))
			}
		}
		if len(all) < 3 {
			t.Errorf("%s: %d rows, want a few to page through", r.path, len(all))
		}
	}
	// Bad paging parameters: 400 naming the field.
	for _, p := range []string{"/v1/margin?store=s1&from=2026-11-29&to=2026-11-29", "/v1/excise?store=s1&from=2026-11-29&to=2026-11-29",
		"/v1/serials/conflicts?x=1", "/v1/stock?store=s1", "/v1/balances?prefix=stock/", "/v1/batches?store=s1", "/v1/drafts?store=s1"} {
		for _, bad := range []string{"limit=0", "limit=5001", "limit=x"} {
			problemOf(t, apiDo(t, "GET", a, p+"&"+bad, viewerKey, nil, nil), 400, "limit")
		}
		if !strings.Contains(p, "conflicts") {
			problemOf(t, apiDo(t, "GET", a, p+"&after=x", viewerKey, nil, nil), 400, "after")
		}
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from=2020-01-01&to=2026-11-29", viewerKey, nil, nil), 400, "to")

	// Metrics: from FSM state, as the entries applied it.
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"storeline_backoffice_documents", map[string]string{"status": "posted", "type": "incoming_invoice"}, 1},
		{"storeline_backoffice_documents", map[string]string{"status": "draft", "type": "write_off"}, 4},
		{"storeline_backoffice_documents", map[string]string{"status": "cancelled", "type": "transfer"}, 0},
		{"storeline_backoffice_repricing_drafts", nil, 0},
		{"storeline_backoffice_cost_backlog_events", map[string]string{"store": "s1"}, 0},
		{"storeline_backoffice_negative_stock_positions", map[string]string{"store": "s1"}, 1},
		{"storeline_backoffice_negative_stock_positions", map[string]string{"store": "s2"}, 0},
		{"storeline_backoffice_expiring_batches", map[string]string{"store": "s1"}, 1},
		{"storeline_backoffice_serial_conflicts", nil, 0},
		{"storeline_backoffice_excise_journal_entries_total", map[string]string{"store": "s1"}, 0},
	} {
		if got, ok := boGauge(t, reg, m.name, m.labels); !ok || got != m.want {
			t.Errorf("%s%v = %v (exported %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
	// A delivery clears the negative position; a posted write-off moves
	// a draft to posted.
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.20"})})
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/wo0/post", adminKey, nil, nil))
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"storeline_backoffice_negative_stock_positions", map[string]string{"store": "s1"}, 0},
		{"storeline_backoffice_documents", map[string]string{"status": "draft", "type": "write_off"}, 3},
		{"storeline_backoffice_documents", map[string]string{"status": "posted", "type": "write_off"}, 1},
		{"storeline_backoffice_documents", map[string]string{"status": "posted", "type": "incoming_invoice"}, 2},
	} {
		if got, ok := boGauge(t, reg, m.name, m.labels); !ok || got != m.want {
			t.Errorf("%s%v = %v (exported %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
	// A head-office transfer (not a document) taking 20 milk out of s1,
	// which holds 8, puts the position below zero; one bringing them back
	// clears it.
	milk := storeline.ItemAsset("milk")
	stock := storeline.StockAccount("s1", "main", "milk")
	for i, qty := range []string{"20", "-20"} {
		amt := decimal.RequireFromString(qty)
		if _, err := n.Transfer(context.Background(), storeline.NewEventID(), "recall", "", []storeline.Posting{
			{Account: stock, Asset: milk, Amount: amt.Neg()},
			{Account: "warehouse/milk", Asset: milk, Amount: amt},
		}); err != nil {
			t.Fatal(err)
		}
		want := float64(1 - i)
		if got, ok := boGauge(t, reg, "storeline_backoffice_negative_stock_positions", map[string]string{"store": "s1"}); !ok || got != want {
			t.Errorf("after a transfer of %s milk out: negative positions %v (exported %v), want %v", qty, got, ok, want)
		}
	}
}

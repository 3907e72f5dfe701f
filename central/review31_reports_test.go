package central_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review31World is one node at FSM level 7 (saved reports) with the
// back office's master data, store s1 and s1's sales pushed.
func review31World(t *testing.T) string {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		*cfg = central.WithFSMLevel(*cfg, 7)
	})
	n := c.nodes[0]
	waitFor(t, "cluster level 7", 10*time.Second, func() bool { l, err := n.ClusterLevel(); return err == nil && l >= 7 })
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "deli", "name": "Deli"}},
		"price_lists": []string{"retail"},
	}, nil))
	pushOK(t, n.ReplicationAddr(), t25Push(t, []t25Sale{
		{date: "2020-01-10", seller: "alice", terminal: "till-1", lines: []storeline.Line{t25Line("milk", "main", "2", "1.50")}},
		{date: "2020-01-31", seller: "bob", terminal: "till-2", lines: []storeline.Line{t25Line("milk", "deli", "1", "1.50")}},
		{ret: true, date: "2020-01-31", seller: "alice", terminal: "till-1", lines: []storeline.Line{t25Line("milk", "main", "1", "1.50")}},
		{date: "2020-02-03", seller: "carol", terminal: "till-1", lines: []storeline.Line{t25Line("milk", "main", "5", "1.50")}},
	}))
	return a
}

// problemField is the field a 4xx problem names.
func problemField(t *testing.T, r response) string {
	t.Helper()
	if r.status/100 != 4 {
		t.Fatalf("status %d, want a 4xx: %s", r.status, r.body)
	}
	f, _ := r.json(t)["field"].(string)
	return f
}

func TestReview31SavedReportValidation(t *testing.T) {
	a := review31World(t)
	for _, c := range []struct {
		def   map[string]any
		field string
	}{
		{map[string]any{"title": "x", "source": "sales", "period": "today"}, "source"},
		{map[string]any{"title": "x", "source": "turnover", "period": "today", "by": []string{"item", "supplier"}}, "by[1]"},
		{map[string]any{"title": "x", "source": "turnover", "period": "today", "by": []string{"item", "item"}}, "by[1]"},
		{map[string]any{"title": "x", "source": "turnover", "period": "last_week"}, "period"},
		{map[string]any{"title": "x", "source": "turnover"}, "period"},
		{map[string]any{"title": "x", "source": "turnover", "period": "fixed", "from": "2020-01-01"}, "to"},
		{map[string]any{"title": "x", "source": "turnover", "period": "today", "from": "2020-01-01"}, "from"},
		{map[string]any{"title": "x", "source": "turnover", "period": "fixed", "from": "2020-01-01", "to": "2022-01-01"}, "to"},
		{map[string]any{"title": "x", "source": "stock", "period": "today"}, "period"},
		{map[string]any{"title": "x", "source": "margin", "period": "today", "by": []string{"item"}}, "by"},
		{map[string]any{"title": "x", "source": "margin", "period": "today", "item": "milk"}, "item"},
		{map[string]any{"title": "", "source": "stock"}, "title"},
		{map[string]any{"title": "x", "source": "stock", "colour": "red"}, "colour"},
	} {
		r := apiDo(t, "PUT", a, "/v1/reports/bad", adminKey, c.def, nil)
		if f := problemField(t, r); f != c.field {
			t.Errorf("PUT %v: field %q (%s), want %q", c.def, f, r.body, c.field)
		}
	}
	list := mustOK(t, apiDo(t, "GET", a, "/v1/reports", viewerKey, nil, nil)).json(t)
	if rs := list["reports"].([]any); len(rs) != 0 {
		t.Fatalf("refused definitions were stored: %v", rs)
	}
	if r := apiDo(t, "GET", a, "/v1/reports/bad", viewerKey, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET a refused definition: %d %s", r.status, r.body)
	}
	// A viewer reads but does not write.
	if r := apiDo(t, "PUT", a, "/v1/reports/v", viewerKey, map[string]any{"title": "x", "source": "stock"}, nil); r.status != http.StatusForbidden {
		t.Fatalf("PUT by a viewer: %d %s", r.status, r.body)
	}
}

// TestReview31SavedReportRunsTheReport: a definition runs the turnover
// report itself for the resolved period, page by page, and its CSV rows
// are its JSON rows.
func TestReview31SavedReportRunsTheReport(t *testing.T) {
	a := review31World(t)
	def := map[string]any{"title": "Last month by item and seller", "source": "turnover", "by": []string{"item", "seller"}, "period": "previous_month"}
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/monthly", adminKey, def, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/s1-stock", adminKey, map[string]any{"title": "Stock", "source": "stock", "store": "s1"}, nil))
	list := mustOK(t, apiDo(t, "GET", a, "/v1/reports?limit=1", viewerKey, nil, nil)).json(t)
	if rs := list["reports"].([]any); len(rs) != 1 || rs[0].(map[string]any)["id"] != "monthly" || list["next"] != "monthly" {
		t.Fatalf("first page of definitions: %v", list)
	}
	got := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly", viewerKey, nil, nil)).json(t)
	if got["period"] != "previous_month" || !reflect.DeepEqual(got["by"], []any{"item", "seller"}) {
		t.Fatalf("stored definition: %v", got)
	}
	// The definition leaves the store open: the run names it.
	if f := problemField(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?date=2020-02-15", viewerKey, nil, nil)); f != "store" {
		t.Fatalf("a run without a store names %q", f)
	}
	if f := problemField(t, apiDo(t, "GET", a, "/v1/reports/s1-stock/run?store=s2", viewerKey, nil, nil)); f != "store" {
		t.Fatalf("a run overriding the definition's store names %q", f)
	}
	if f := problemField(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15&format=xml", viewerKey, nil, nil)); f != "format" {
		t.Fatalf("format=xml names %q", f)
	}

	run := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15", viewerKey, nil, nil)).json(t)
	if run["from"] != "2020-01-01" || run["to"] != "2020-01-31" || run["report"] != "monthly" {
		t.Fatalf("run for 2020-02-15: from %v to %v report %v", run["from"], run["to"], run["report"])
	}
	direct := mustOK(t, apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item,seller", viewerKey, nil, nil)).json(t)
	delete(run, "report")
	if !reflect.DeepEqual(run, direct) {
		t.Fatalf("run answers\n%v\nthe turnover report answers\n%v", run, direct)
	}
	if rows := direct["rows"].([]any); len(rows) != 2 {
		t.Fatalf("January's rows by item and seller: %v, want alice's and bob's", rows)
	}

	// Paged as the report pages.
	p1 := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15&limit=1", viewerKey, nil, nil)).json(t)
	d1 := mustOK(t, apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item,seller&limit=1", viewerKey, nil, nil)).json(t)
	if p1["more"] != true || p1["next"] != d1["next"] || !reflect.DeepEqual(p1["rows"], d1["rows"]) {
		t.Fatalf("first page: run %v, report %v", p1, d1)
	}
	next := p1["next"].(string)
	p2 := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15&limit=1&after="+next, viewerKey, nil, nil)).json(t)
	d2 := mustOK(t, apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item,seller&limit=1&after="+next, viewerKey, nil, nil)).json(t)
	if !reflect.DeepEqual(p2["rows"], d2["rows"]) || p2["next"] != d2["next"] {
		t.Fatalf("second page: run %v, report %v", p2, d2)
	}

	// CSV, asked for either way, of the run and of the report itself.
	header := []string{"item", "seller", "receipts", "returns", "qty", "revenue", "net", "vat"}
	for _, c := range []struct {
		path string
		hdr  map[string]string
	}{
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&format=csv", nil},
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15", map[string]string{"Accept": "text/csv"}},
		{"/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item,seller&format=csv", nil},
		{"/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item,seller", map[string]string{"Accept": "text/csv, application/json;q=0.5"}},
	} {
		r := mustOK(t, apiDo(t, "GET", a, c.path, viewerKey, nil, c.hdr))
		recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.path, err, r.body)
		}
		if !reflect.DeepEqual(recs[0], header) {
			t.Fatalf("%s: header %v, want %v", c.path, recs[0], header)
		}
		rows := direct["rows"].([]any)
		if len(recs)-1 != len(rows) {
			t.Fatalf("%s: %d CSV rows, %d JSON rows", c.path, len(recs)-1, len(rows))
		}
		for i, row := range rows {
			m := row.(map[string]any)
			key := m["key"].(map[string]any)
			want := []string{key["item"].(string), key["seller"].(string), jsonText(m["receipts"]), jsonText(m["returns"]),
				m["qty"].(string), m["revenue"].(string), m["net"].(string), m["vat"].(string)}
			if !reflect.DeepEqual(recs[i+1], want) {
				t.Errorf("%s: CSV row %d %v, JSON row %v", c.path, i, recs[i+1], want)
			}
		}
	}
	// JSON still when Accept prefers it.
	r := mustOK(t, apiDo(t, "GET", a, "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31", viewerKey, nil, map[string]string{"Accept": "application/json, text/csv"}))
	if !json.Valid(r.body) {
		t.Fatalf("Accept application/json first: %s", r.body)
	}

	// Without date, the period is of today in the store's zone.
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/today", adminKey, map[string]any{"title": "Today", "source": "turnover", "store": "s1", "period": "today"}, nil))
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().In(riga).Format(time.DateOnly)
	today := mustOK(t, apiDo(t, "GET", a, "/v1/reports/today/run", viewerKey, nil, nil)).json(t)
	after := time.Now().In(riga).Format(time.DateOnly)
	if (today["from"] != before && today["from"] != after) || today["to"] != today["from"] || today["store"] != "s1" {
		t.Fatalf("run of today in Riga (%s): %v", before, today)
	}
	// A source without a period answers without from and to.
	st := mustOK(t, apiDo(t, "GET", a, "/v1/reports/s1-stock/run", viewerKey, nil, nil)).json(t)
	if _, ok := st["from"]; ok || st["report"] != "s1-stock" || st["store"] != "s1" {
		t.Fatalf("stock run: %v", st)
	}

	// Deleted: gone from the list and not run.
	mustOK(t, apiDo(t, "DELETE", a, "/v1/reports/monthly", adminKey, nil, nil))
	if r := apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1", viewerKey, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("run of a deleted report: %d %s", r.status, r.body)
	}
	if r := apiDo(t, "DELETE", a, "/v1/reports/monthly", adminKey, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("delete again: %d %s", r.status, r.body)
	}
}

// TestReview31SavedReportCSVQuoting: a value holding a comma or a quote
// is quoted as RFC 4180 says, and reads back as itself.
func TestReview31SavedReportCSVQuoting(t *testing.T) {
	a := review31World(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/stock", adminKey, map[string]any{"title": "Stock, all", "source": "stock"}, nil))
	r := mustOK(t, apiDo(t, "GET", a, "/v1/reports/stock/run?store=s1&format=csv", viewerKey, nil, nil))
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) == 0 || strings.Join(recs[0][:4], ",") != "dept,item,qty,value" {
		t.Fatalf("stock CSV: %v %v\n%s", recs, err, r.body)
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{`a,"b"`})
	w.Flush()
	if b.String() != "\"a,\"\"b\"\"\"\n" {
		t.Fatalf("encoding/csv quotes %q", b.String())
	}
}

// TestReview31SavedReportNeedsLevel7: below FSM level 7 a definition is
// refused (503), so an old node never sees the op.
func TestReview31SavedReportNeedsLevel7(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 6) })
	a := c.nodes[0].APIAddr()
	// Not apiDo: it retries a 503 (no leader yet) for half a minute.
	req, err := http.NewRequest("PUT", "http://"+a+"/v1/reports/r1", strings.NewReader(`{"title": "x", "source": "stock"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Detail string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Detail, "level 7") {
		t.Fatalf("PUT below level 7: %d %q, want 503 naming level 7", resp.StatusCode, p.Detail)
	}
	if l, err := c.nodes[0].ClusterLevel(); err != nil || l >= 7 {
		t.Fatalf("cluster level %d %v", l, err)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package central_test

import (
	"net/http"
	"testing"
)

// TestReview42RunQueryParameters: a run used to drop every query
// parameter but store, date, after, limit and format, so
// ?from=2020-02-01&to=2020-02-29 answered the saved period without a
// word. Now the period may be overridden with concrete dates, checked
// as the report checks them; a parameter the definition fixes is
// refused unless it is the definition's; an unknown one is refused;
// paging passes through to the report.
func TestReview42RunQueryParameters(t *testing.T) {
	a := review31World(t)
	for id, def := range map[string]map[string]any{
		"monthly":  {"title": "M", "source": "turnover", "by": []string{"item"}, "period": "previous_month"},
		"total":    {"title": "T", "source": "turnover", "period": "yesterday"},
		"margin":   {"title": "G", "source": "margin", "period": "previous_month"},
		"excise":   {"title": "E", "source": "excise", "period": "previous_month"},
		"stock":    {"title": "S", "source": "stock", "store": "s1"},
		"milk-stk": {"title": "S", "source": "stock", "store": "s1", "item": "milk"},
	} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/reports/"+id, adminKey, def, nil))
	}

	// The period overridden: the report answers February, not January.
	run := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&from=2020-02-01&to=2020-02-29", viewerKey, nil, nil)).json(t)
	if run["from"] != "2020-02-01" || run["to"] != "2020-02-29" {
		t.Fatalf("run with from and to: from %v to %v, want the query's period", run["from"], run["to"])
	}
	if rows, _ := run["rows"].([]any); len(rows) != 1 || rows[0].(map[string]any)["qty"] != "5" {
		t.Fatalf("February's rows by item: %v, want carol's 5 milk", run["rows"])
	}
	mg := mustOK(t, apiDo(t, "GET", a, "/v1/reports/margin/run?store=s1&from=2020-02-01&to=2020-02-02", viewerKey, nil, nil)).json(t)
	if mg["from"] != "2020-02-01" || mg["to"] != "2020-02-02" {
		t.Fatalf("margin run with from and to: from %v to %v", mg["from"], mg["to"])
	}
	// Parameters equal to the definition's, and paging, pass.
	mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15&by=item&limit=1", viewerKey, nil, nil))
	mustOK(t, apiDo(t, "GET", a, "/v1/reports/milk-stk/run?item=milk&store=s1", viewerKey, nil, nil))

	for _, c := range []struct{ path, field string }{
		// The period's dates, checked as the report checks them.
		{"/v1/reports/monthly/run?store=s1&from=2020-02-01", "to"},
		{"/v1/reports/monthly/run?store=s1&to=2020-02-01", "from"},
		{"/v1/reports/monthly/run?store=s1&from=today&to=2020-02-01", "from"},
		{"/v1/reports/monthly/run?store=s1&from=2020-02-01&to=2020-02-30", "to"},
		{"/v1/reports/monthly/run?store=s1&from=2020-02-10&to=2020-02-01", "to"},
		{"/v1/reports/monthly/run?store=s1&from=2020-01-01&to=2021-01-31", "to"},
		{"/v1/reports/excise/run?store=s1&from=2020-01-01&to=2021-03-01", "to"},
		{"/v1/reports/monthly/run?store=s1&from=2020-02-01&to=2020-02-29&date=2020-03-15", "date"},
		{"/v1/reports/monthly/run?store=s1&from=2020-02-01&from=2020-01-01&to=2020-02-29", "from"},
		// A report of now has no period and no day.
		{"/v1/reports/stock/run?from=2020-02-01&to=2020-02-29", "from"},
		{"/v1/reports/stock/run?date=2020-02-15", "date"},
		// What the definition fixes.
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&by=date", "by"},
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&by=item,seller", "by"},
		{"/v1/reports/total/run?store=s1&date=2020-02-15&by=item", "by"},
		{"/v1/reports/margin/run?store=s1&date=2020-02-15&by=item", "by"},
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&item=milk", "item"},
		{"/v1/reports/stock/run?item=milk", "item"},
		{"/v1/reports/milk-stk/run?item=bread", "item"},
		// Unknown.
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&colour=red", "colour"},
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&period=today", "period"},
		// Paging goes to the report, which checks it.
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15&limit=0", "limit"},
	} {
		r := apiDo(t, "GET", a, c.path, viewerKey, nil, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400 naming %s", c.path, r.status, r.body, c.field)
			continue
		}
		if f := problemField(t, r); f != c.field {
			t.Errorf("%s: names %q (%s), want %q", c.path, f, r.body, c.field)
		}
	}
}

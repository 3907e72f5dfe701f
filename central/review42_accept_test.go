package central_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestReview42AcceptQValues: Accept was read in the order written and
// its q-values ignored (but for q=0), so text/csv;q=0.1 before
// application/json answered CSV, and an Accept taking neither JSON nor
// CSV got JSON. The q-values decide now (the first named on a tie), for
// a run and for /v1/turnover alike, and an Accept that takes neither is
// refused naming Accept: 406.
func TestReview42AcceptQValues(t *testing.T) {
	a := review31World(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/monthly", adminKey, map[string]any{"title": "M", "source": "turnover", "by": []string{"item"}, "period": "previous_month"}, nil))
	paths := []string{"/v1/reports/monthly/run?store=s1&date=2020-02-15", "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item"}
	for _, c := range []struct {
		accept string
		csv    bool
	}{
		{"", false},
		{"text/csv;q=0.1, application/json", false},
		{"application/json;q=0.5, text/csv", true},
		{"application/json;q=0.5, text/csv;q=0.500", false},
		{"text/csv, application/json", true},
		{"application/json, text/csv", false},
		{"*/*", false},
		{"text/*", true},
		{"application/*, text/csv;q=0.9", false},
		{"text/html, application/xhtml+xml, */*;q=0.8", false},
		{"text/csv;q=0, */*", false},
		{"application/json;q=0, */*;q=0.1", true},
		{"TEXT/CSV", true},
	} {
		for _, path := range paths {
			status, h, body := review34Get(t, a, path, map[string]string{"Accept": c.accept})
			ct := h.Get("Content-Type")
			switch {
			case status != http.StatusOK:
				t.Errorf("%s Accept %q: %d %s", path, c.accept, status, body)
			case c.csv && !strings.HasPrefix(ct, "text/csv"):
				t.Errorf("%s Accept %q: %s, want CSV", path, c.accept, ct)
			case !c.csv && (!strings.HasPrefix(ct, "application/json") || !json.Valid([]byte(body))):
				t.Errorf("%s Accept %q: %s, want JSON", path, c.accept, ct)
			}
		}
	}
	for _, accept := range []string{"text/csv;q=0", "image/png", "text/html, application/xml;q=0.9", "application/json;q=0, text/csv;q=0"} {
		for _, path := range paths {
			status, h, body := review34Get(t, a, path, map[string]string{"Accept": accept})
			var p struct{ Field string }
			_ = json.Unmarshal([]byte(body), &p)
			refused := status/100 == 4 && p.Field == "Accept" && strings.HasPrefix(h.Get("Content-Type"), "application/problem+json")
			if !refused || status != http.StatusNotAcceptable {
				t.Errorf("%s Accept %q: %d %s %s, want a 406 problem naming Accept", path, accept, status, h.Get("Content-Type"), body)
			}
		}
	}
	// format decides over Accept.
	if status, h, _ := review34Get(t, a, paths[0]+"&format=json", map[string]string{"Accept": "text/csv"}); status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("format=json with Accept text/csv: %d %s", status, h.Get("Content-Type"))
	}
	if status, h, _ := review34Get(t, a, paths[0]+"&format=csv", map[string]string{"Accept": "image/png"}); status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Errorf("format=csv with Accept image/png: %d %s", status, h.Get("Content-Type"))
	}
}

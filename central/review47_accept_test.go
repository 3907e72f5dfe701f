package central_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestReview47AcceptUnreadableRangeNotRefused: a range Accept could not
// be read by (a q outside RFC 9110's grammar, a range without a
// subtype) was skipped, and the ranges left were taken for the whole
// header: Java's HttpURLConnection default, "text/html, image/gif,
// image/jpeg, *; q=.2, */*; q=.2", whose */* takes JSON, was a 406. An
// Accept read only in part cannot say JSON and CSV are refused: it is
// disregarded (RFC 9110 12.5.1 allows it) and JSON answers; one read
// whole that takes neither is still a 406.
func TestReview47AcceptUnreadableRangeNotRefused(t *testing.T) {
	a := review31World(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/monthly", adminKey, map[string]any{"title": "M", "source": "turnover", "by": []string{"item"}, "period": "previous_month"}, nil))
	paths := []string{"/v1/reports/monthly/run?store=s1&date=2020-02-15", "/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&by=item"}
	for _, accept := range []string{
		"text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
		"*",
		"json",
		"text/html, */*;q=1.5",
		"text/html, application/json;q=abc",
	} {
		for _, path := range paths {
			status, h, body := review34Get(t, a, path, map[string]string{"Accept": accept})
			if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || !json.Valid([]byte(body)) {
				t.Errorf("%s Accept %q: %d %s %.200s, want JSON", path, accept, status, h.Get("Content-Type"), body)
			}
		}
	}
	for _, accept := range []string{"text/html,", "text/html, , */*;q=0", "text/csv;q=0.000, application/*;q=0"} {
		for _, path := range paths {
			status, h, body := review34Get(t, a, path, map[string]string{"Accept": accept})
			var p struct{ Field string }
			_ = json.Unmarshal([]byte(body), &p)
			if status != http.StatusNotAcceptable || p.Field != "Accept" || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s Accept %q: %d %s %s, want a 406 problem naming Accept", path, accept, status, h.Get("Content-Type"), body)
			}
		}
	}
}

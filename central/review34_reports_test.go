package central_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// review34Get is a GET whose answer's header the test reads (apiDo
// keeps only status and body).
func review34Get(t *testing.T, addr, path string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+viewerKey)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestReview34RunHTTP: a run applies consistency before it reads the
// definition (a linearizable run on a follower must see a definition
// just stored), CSV comes as a download named for the report, and an
// error asked for as CSV is problem+json.
func TestReview34RunHTTP(t *testing.T) {
	a := review31World(t)
	if f := problemField(t, apiDo(t, "GET", a, "/v1/reports/nope/run?store=s1&consistency=bogus", viewerKey, nil, nil)); f != "consistency" {
		t.Errorf("run with consistency=bogus of a missing definition names %q: the definition was read before consistency applied", f)
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/monthly", adminKey, map[string]any{"title": "M", "source": "turnover", "by": []string{"item"}, "period": "previous_month"}, nil))
	run := mustOK(t, apiDo(t, "GET", a, "/v1/reports/monthly/run?store=s1&date=2020-02-15&consistency=linearizable", viewerKey, nil, nil)).json(t)
	if run["from"] != "2020-01-01" {
		t.Fatalf("linearizable run: %v", run)
	}
	for path, name := range map[string]string{
		"/v1/reports/monthly/run?store=s1&date=2020-02-15&format=csv":    "monthly.csv",
		"/v1/turnover?store=s1&from=2020-01-01&to=2020-01-31&format=csv": "turnover.csv",
	} {
		status, h, body := review34Get(t, a, path, nil)
		if ct, cd := h.Get("Content-Type"), h.Get("Content-Disposition"); status != http.StatusOK || ct != "text/csv; charset=utf-8" || cd != `attachment; filename="`+name+`"` {
			t.Errorf("%s: %d Content-Type %q Content-Disposition %q\n%s", path, status, ct, cd, body)
		}
	}
	for _, path := range []string{"/v1/turnover?store=s1&from=2020-02-01&to=2020-01-01", "/v1/reports/monthly/run?date=2020-02-15"} {
		status, h, body := review34Get(t, a, path, map[string]string{"Accept": "text/csv"})
		if status != http.StatusBadRequest || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s, an error asked for as CSV: %d %q %s", path, status, h.Get("Content-Type"), body)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReview31CtlReportRun: report-run follows every page of a run; with
// --csv it prints one table whose header is the union of the pages'
// (a page's columns are those its rows have) and values quoted as RFC
// 4180 says; without, each page's JSON on a line.
func TestReview31CtlReportRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/reports/m/run" || q.Get("store") != "s1" || q.Get("date") != "2020-02-15" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusTeapot)
			return
		}
		page2 := q.Get("after") == "p1"
		if q.Get("format") == "csv" {
			w.Header().Set("Content-Type", "text/csv")
			if page2 {
				w.Header().Set("X-Next", "")
				_, _ = w.Write([]byte("row,date,cost\nrecost,2020-01-05,\"1,5\"\n"))
				return
			}
			w.Header().Set("X-Next", "p1")
			_, _ = w.Write([]byte("row,date,revenue\nsale,2020-01-02,3.00\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if page2 {
			_, _ = w.Write([]byte(`{"rows":[2],"next":""}`))
			return
		}
		_, _ = w.Write([]byte(`{"rows":[1],"next":"p1"}` + "\n"))
	}))
	defer srv.Close()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("report-run", "m", "s1", "2020-02-15", "--csv")
	want := "row,date,revenue,cost\nsale,2020-01-02,3.00,\nrecost,2020-01-05,,\"1,5\"\n"
	if code != exitOK || out != want {
		t.Fatalf("report-run --csv = %d\n%s\nwant\n%s\nstderr: %s", code, out, want, errs)
	}
	code, out, errs = run("report-run", "m", "s1", "2020-02-15")
	if code != exitOK || out != "{\"rows\":[1],\"next\":\"p1\"}\n{\"rows\":[2],\"next\":\"\"}\n" {
		t.Fatalf("report-run = %d\n%s\nstderr: %s", code, out, errs)
	}
	if code, _, errs = run("report-run"); code != exitUsage || !strings.Contains(errs, "bad command") {
		t.Fatalf("report-run without an id = %d %s", code, errs)
	}
	if code, _, errs = run("report-run", "m", "s2", "2020-02-15"); code != exitError || !strings.Contains(errs, "418") {
		t.Fatalf("report-run refused = %d %s", code, errs)
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestReview34CtlReportRunSumsTurnoverPages: a turnover page's rows are
// the sums of the events it read, so a key recurs on later pages;
// report-run --csv prints one row per key, summed and sorted by key, as
// ctl turnover does, not a key's partial sums one under another. Other
// reports' rows are printed as they come.
func TestReview34CtlReportRunSumsTurnoverPages(t *testing.T) {
	pages := map[string]string{
		"":   "item,receipts,returns,qty,revenue,net,vat\nmilk,2,0,3.000,4.50,3.72,0.78\nzest,1,0,1.000,1.00,0.83,0.17\n",
		"p1": "item,receipts,returns,qty,revenue,net,vat\nbread,1,0,1.000,2.00,1.65,0.35\nmilk,1,1,-1.000,-1.50,-1.24,-0.26\n",
	}
	next := map[string]string{"": "p1", "p1": ""}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := r.URL.Query().Get("after")
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("X-Next", next[after])
		_, _ = w.Write([]byte(pages[after]))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"report-run", "t", "s1", "2020-02-15", "--csv"}, &out, &errb)
	want := "item,receipts,returns,qty,revenue,net,vat\nbread,1,0,1.000,2.00,1.65,0.35\nmilk,3,1,2.000,3.00,2.48,0.52\nzest,1,0,1.000,1.00,0.83,0.17\n"
	if code != exitOK || out.String() != want {
		t.Fatalf("report-run --csv of a turnover = %d\n%s\nwant\n%s\nstderr: %s", code, out.String(), want, errb.String())
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReview47CtlReportsCursorCycle: `ctl reports` stopped only on a
// next equal to the one it had just sent, so a server whose cursors
// went round (b, then a, then b again) was asked for ever, the
// definitions piling up in memory. A next already followed is an error
// now, whichever page gave it, and nothing is printed.
func TestReview47CtlReportsCursorCycle(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) > 10 {
			http.Error(w, "asked too often", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "", "a":
			_, _ = w.Write([]byte(`{"reports":[{"id":"a"},{"id":"b"}],"next":"b"}`))
		default:
			_, _ = w.Write([]byte(`{"reports":[{"id":"c"}],"next":"a"}`))
		}
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"reports"}, &out, &errb)
	if code == exitOK || out.Len() != 0 || !strings.Contains(errb.String(), `"b"`) || asked.Load() > 3 {
		t.Fatalf("reports over a cycling cursor = %d, %d pages asked, stdout %q, stderr %q; want an error naming the repeated next after 3 pages", code, asked.Load(), out.String(), errb.String())
	}
}

// TestReview47CtlReportRunCursorCycle: `ctl report-run` had the same
// check, next against the one just sent, and as JSON it prints each page
// as it comes: a cycling cursor printed pages for ever. A next already
// followed is an error now.
func TestReview47CtlReportRunCursorCycle(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) > 10 {
			http.Error(w, "asked too often", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "", "a":
			_, _ = w.Write([]byte(`{"report":"r","stock":[{"item":"x"}],"next":"b"}`))
		default:
			_, _ = w.Write([]byte(`{"report":"r","stock":[{"item":"y"}],"next":"a"}`))
		}
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"report-run", "r"}, &out, &errb)
	if code == exitOK || !strings.Contains(errb.String(), `"b"`) || asked.Load() > 3 {
		t.Fatalf("report-run over a cycling cursor = %d, %d pages asked, stderr %q; want an error naming the repeated next after 3 pages", code, asked.Load(), errb.String())
	}
}

// TestReview47CtlReportRunEmptyDate: central refuses an empty date now
// (it ran today's period), and ctl sent DATE as given, so `report-run
// ID STORE ""` failed where an empty STORE is left out. An empty DATE is
// left out too: today in the store's zone, as without one.
func TestReview47CtlReportRunEmptyDate(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		if r.URL.Query().Has("date") && r.URL.Query().Get("date") == "" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"status":400,"kind":"invalid","field":"date","detail":"date \"\": want YYYY-MM-DD"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"report":"r","stock":[],"next":""}`))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"report-run", "r", "s1", ""}, &out, &errb); code != exitOK {
		t.Fatalf("report-run r s1 \"\" = %d (asked %q), stderr %q", code, query, errb.String())
	}
}

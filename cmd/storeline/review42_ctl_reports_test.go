package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReview42CtlReportsFollowsNext: `ctl reports` read one page of
// definitions (limit 5000) and printed it, next and all, so a head
// office with more saw only the first 5000. It follows next to the end
// now and prints every definition as one answer, next empty.
func TestReview42CtlReportsFollowsNext(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query().Get("after"))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "":
			_, _ = w.Write([]byte(`{"reports":[{"id":"a"},{"id":"b"}],"next":"b"}`))
		case "b":
			_, _ = w.Write([]byte(`{"reports":[{"id":"c"}],"next":""}`))
		default:
			http.Error(w, "unexpected "+r.URL.String(), http.StatusTeapot)
		}
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"reports"}, &out, &errb)
	if want := `{"next":"","reports":[{"id":"a"},{"id":"b"},{"id":"c"}]}` + "\n"; code != exitOK || out.String() != want {
		t.Fatalf("reports = %d %q, want %q (pages asked after %q); stderr %s", code, out.String(), want, asked, errb.String())
	}
}

// TestReview42CtlReportsAgainstCentral: with ctl's page lowered to 2,
// three definitions stored at a real central node come back whole.
func TestReview42CtlReportsAgainstCentral(t *testing.T) {
	defer func(p int) { ctlReportsPage = p }(ctlReportsPage)
	ctlReportsPage = 2
	c := startCentralArgs(t, env(nil), "-data", filepath.Join(t.TempDir(), "central"),
		"-heartbeat", "100ms", "-election", "100ms", "-lease", "50ms")
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": c["admin-key"]})
	waitFor(t, "a leader", 10*time.Second, func() bool {
		code, stdout, _ := runCmd(t, e, "ctl", "--central", c["api"], "cluster")
		return code == 0 && strings.Contains(stdout, `"leader":"central-1"`)
	})
	def := filepath.Join(t.TempDir(), "def.json")
	if err := os.WriteFile(def, []byte(`{"title":"Stock","source":"stock"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		waitFor(t, "report "+id+" defined", 10*time.Second, func() bool {
			code, _, _ := runCmd(t, e, "ctl", "--central", c["api"], "report-define", id, def)
			return code == exitOK
		})
	}
	code, stdout, stderr := runCmd(t, e, "ctl", "--central", c["api"], "reports")
	var got struct {
		Reports []struct{ ID string }
		Next    *string
	}
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil {
		t.Fatalf("reports = %d %q (%v); stderr %s", code, stdout, err, stderr)
	}
	var gotIDs []string
	for _, r := range got.Reports {
		gotIDs = append(gotIDs, r.ID)
	}
	if !slices.Equal(gotIDs, ids) || got.Next == nil || *got.Next != "" {
		t.Fatalf("reports in pages of 2 = %s, want %v and next empty", stdout, ids)
	}
}

package node_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

// problemBody is an admin error answer (RFC 9457).
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// wantProblem checks that an answer is a problem+json of status naming
// field, and returns it.
func wantProblem(t *testing.T, what string, code int, ctype string, body []byte, status int, field string) problemBody {
	t.Helper()
	var p problemBody
	if code != status || !strings.HasPrefix(ctype, "application/problem+json") || json.Unmarshal(body, &p) != nil ||
		p.Status != status || p.Field != field || p.Type == "" || p.Title == "" {
		t.Errorf("%s = %d %s %s, want %d application/problem+json naming field %q", what, code, ctype, body, status, field)
	}
	return p
}

// groups returns an import of n valid group records.
func groups(n int) node.MasterImport {
	imp := node.MasterImport{Records: make([]node.MasterEntry, n)}
	for i := range imp.Records {
		imp.Records[i] = node.MasterEntry{Kind: "group", Record: json.RawMessage(fmt.Sprintf(`{"id":"g%d","name":"Group %d"}`, i, i))}
	}
	return imp
}

// TestImportRecordLimit: an import the ledger cannot store in one call is
// refused up front, naming records and the real limit, and stores nothing;
// one at the limit goes through.
func TestImportRecordLimit(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if node.MaxImportRecords != ledger.MaxMasterRecords {
		t.Errorf("MaxImportRecords = %d, the ledger stores at most %d records per call", node.MaxImportRecords, ledger.MaxMasterRecords)
	}
	before := n.Ledger().MasterVersion()
	b, _ := json.Marshal(groups(ledger.MaxMasterRecords + 1))
	code, ctype, body := rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "", b)
	p := wantProblem(t, "import of one record too many", code, ctype, body, http.StatusRequestEntityTooLarge, "records")
	if !strings.Contains(p.Detail, fmt.Sprint(ledger.MaxMasterRecords)) {
		t.Errorf("detail %q does not give the limit %d", p.Detail, ledger.MaxMasterRecords)
	}
	if v := n.Ledger().MasterVersion(); v != before {
		t.Errorf("a refused import moved the master version %d -> %d", before, v)
	}
	code, body = call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, groups(ledger.MaxMasterRecords))
	if code != 200 {
		t.Errorf("import of %d records = %d %s", ledger.MaxMasterRecords, code, body)
	}
}

// TestJournalParameters: the journal's query parameters are checked
// strictly; a bad one is a 400 problem naming it.
func TestJournalParameters(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	base := n.AdminURL() + "/admin/v1/journal?"
	for _, tc := range []struct{ query, field string }{
		{"origin=" + url.QueryEscape("shop-1\x00\x00\x00"), "origin"},
		{"origin=" + url.QueryEscape("a/b"), "origin"},
		{"origin=" + url.QueryEscape(strings.Repeat("x", 65)), "origin"},
		{"seq=5abc", "seq"},
		{"seq=-1", "seq"},
		{"seq=" + url.QueryEscape(" 5"), "seq"},
		{"seq=18446744073709551616", "seq"},
		{"limit=" + url.QueryEscape("10 junk"), "limit"},
		{"limit=0", "limit"},
		{"limit=-5", "limit"},
		{"limit=" + fmt.Sprint(ledger.MaxJournalLimit+1), "limit"},
		{"epoch=0x10", "epoch"},
		{"epoch=1e3", "epoch"},
		{"epoch=%2B1", "epoch"},
	} {
		code, ctype, body := rawCall(t, "GET", base+tc.query, adminToken, "", nil)
		wantProblem(t, "journal?"+tc.query, code, ctype, body, http.StatusBadRequest, tc.field)
	}
	for _, q := range []string{"", "origin=shop-1", "origin=shop-2&epoch=0&seq=0&limit=1", "limit=" + fmt.Sprint(ledger.MaxJournalLimit), "seq=18446744073709551615"} {
		code, _, body := rawCall(t, "GET", base+q, adminToken, "", nil)
		var page node.JournalPage
		if code != 200 || json.Unmarshal(body, &page) != nil {
			t.Errorf("journal?%s = %d %s, want 200", q, code, body)
		}
	}
}

// TestAdminErrorsAreProblems: every admin error is application/problem+json
// with type, title, status, detail and the field.
func TestAdminErrorsAreProblems(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	code, ctype, body := rawCall(t, "GET", n.AdminURL()+"/admin/v1/conservation", "", "", nil)
	wantProblem(t, "no token", code, ctype, body, http.StatusUnauthorized, "Authorization")
	code, ctype, body = rawCall(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, "", []byte(`{"id":"s1","name":"S","role":"cashier","pin":"12"}`))
	if p := wantProblem(t, "short PIN", code, ctype, body, http.StatusBadRequest, "pin"); !strings.Contains(p.Detail, "PIN") {
		t.Errorf("short PIN: detail %q does not say why", p.Detail)
	}
	code, ctype, body = rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "", []byte(`{"records":[]} trailing`))
	wantProblem(t, "trailing data", code, ctype, body, http.StatusBadRequest, "body")
	// A field named twice: the decoder kept the last, so a record could
	// say one thing to a reader and another to the node.
	code, ctype, body = rawCall(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, "", []byte(`{"id":"s2","name":"S","role":"cashier","role":"manager","pin":"1234"}`))
	wantProblem(t, "field twice", code, ctype, body, http.StatusBadRequest, "role")
	code, ctype, body = rawCall(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, "",
		[]byte(`{"records":[{"kind":"group","record":{"ID":"g1","Name":"G","Name":"H"}}]}`))
	wantProblem(t, "record field twice", code, ctype, body, http.StatusBadRequest, "records[0].record.Name")
}

// TestBackupUnavailable: a backup that cannot start (the ledger is closed)
// is a 503 problem, not a dropped connection.
func TestBackupUnavailable(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if err := n.Ledger().Close(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", n.AdminURL()+"/admin/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("backup of a closed ledger: %v (want a 503 answer)", err)
	}
	defer resp.Body.Close()
	var p problemBody
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || resp.Header.Get("Content-Disposition") != "" ||
		!strings.Contains(p.Detail, "closed") {
		t.Errorf("backup of a closed ledger = %d %v %+v %v, want 503 problem+json saying the ledger is closed", resp.StatusCode, resp.Header, p, err)
	}
}

// TestStartReadsReplicationFilesFirst: a missing replication certificate
// fails Start before the ledger is opened (the data directory stays
// empty), and Stop after it is harmless.
func TestStartReadsReplicationFilesFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = "shop-1", dir, adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Replication.Central = []string{"https://127.0.0.1:1"}
	missing := filepath.Join(t.TempDir(), "missing")
	c.Replication.CAFile, c.Replication.CertFile, c.Replication.KeyFile = missing+"-ca.pem", missing+".pem", missing+"-key.pem"
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err == nil || !strings.Contains(err.Error(), "replication certificate") {
		t.Fatalf("Start with missing certificate files = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the ledger was opened before the certificate was read (%v)", err)
	}
	if err := n.Stop(); err != nil {
		t.Errorf("Stop after a failed Start = %v", err)
	}
}

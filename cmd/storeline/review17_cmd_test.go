package main

// Review 17: replication-keep-rejections, and ctl's statement of a long
// period.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestReview17KeepRejectionsSetting: how many head-office rejections a
// shop keeps (replication.ClientConfig.KeepRejections) could not be set
// on a node. replication-keep-rejections comes from the file, the
// environment and flags like the other replication-* settings, and a bad
// value is a usage error naming the flag.
func TestReview17KeepRejectionsSetting(t *testing.T) {
	base := map[string]string{"STORELINE_ADMIN_TOKEN": testToken}
	file := writeFile(t, "node.json", `{"store":"shop-1","data":"/d","replication-central":"https://c1:8444","replication-token":"tok-0123456789abcdef","replication-keep-rejections":300}`)
	cfg, err := loadConfig(t, env(base), "-config", file)
	if err != nil || cfg.Replication.KeepRejections != 300 {
		t.Fatalf("from the file: KeepRejections %d, %v; want 300", cfg.Replication.KeepRejections, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	withEnv := map[string]string{"STORELINE_ADMIN_TOKEN": testToken, "STORELINE_REPLICATION_KEEP_REJECTIONS": "200"}
	if cfg, err := loadConfig(t, env(withEnv), "-config", file); err != nil || cfg.Replication.KeepRejections != 200 {
		t.Errorf("from the environment: KeepRejections %d, %v; want 200", cfg.Replication.KeepRejections, err)
	}
	if cfg, err := loadConfig(t, env(withEnv), "-config", file, "-replication-keep-rejections", "100"); err != nil || cfg.Replication.KeepRejections != 100 {
		t.Errorf("from the flag: KeepRejections %d, %v; want 100", cfg.Replication.KeepRejections, err)
	}
	for _, tc := range [][]string{
		{"-replication-keep-rejections", "-1"},
		{"-replication-keep-rejections", "1073741824"},
		{"-replication-keep-rejections", "-1", "-replication-backoff-max", "1ms"}, // with another bad setting
	} {
		dir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"node", "-store", "shop-1", "-data", dir, "-replication-central", "https://c1:8444", "-replication-token", "tok-0123456789abcdef"}, tc...)
		code, _, errOut := runCmd(t, env(base), args...)
		if code != exitUsage || !strings.Contains(errOut, "replication-keep-rejections: ") {
			t.Errorf("%v = %d %q, want %d naming replication-keep-rejections", tc, code, errOut, exitUsage)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: the data directory was created (%v)", tc, err)
		}
	}
}

// review17Proxy forwards to central and records the path and query of
// every statement request.
type review17Proxy struct {
	mu   sync.Mutex
	reqs []*url.URL
	// before, when set, runs once before the nth statement request is
	// forwarded.
	before func()
	nth    int
}

func (p *review17Proxy) statementRequests() []*url.URL {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*url.URL
	for _, u := range p.reqs {
		if strings.HasSuffix(u.Path, "/statement") {
			out = append(out, u)
		}
	}
	return out
}

// TestReview17CtlStatementPages: central's statement pages (limit,
// after, next); ctl asked for the whole period in one answer, which it
// reads up to 16 MiB and silently cuts there (a long period's 50,000
// rows at about 350 bytes each): the operator got a truncated statement
// and exit status 0. ctl asks for pages of a bounded size, follows next
// and prints the whole statement once.
func TestReview17CtlStatementPages(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	today := time.Now().UTC().Format(time.DateOnly)
	const payments = 7
	reqs := [][3]string{
		{"PUT", "/v1/suppliers/p1", `{"name":"Dairy"}`},
		{"PUT", "/v1/banks/b1", `{"name":"First Bank"}`},
	}
	for i := 1; i <= payments; i++ {
		reqs = append(reqs, [3]string{"POST", "/v1/supplier_payments",
			fmt.Sprintf(`{"id":"pay%d","supplier":"p1","bank":"b1","amount":"%d.00","currency":"EUR","paid_on":%q}`, i, i, today)})
	}
	for _, r := range reqs {
		if err := c.do(context.Background(), r[0], r[1], []byte(r[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", r[0], r[1], err)
		}
	}
	target, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	rec := &review17Proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.URL)
		var before func()
		if strings.HasSuffix(r.URL.Path, "/statement") {
			if rec.nth--; rec.nth == 0 {
				before, rec.before = rec.before, nil
			}
		}
		rec.mu.Unlock()
		if before != nil {
			before()
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	defer func(p int) { ctlStatementPage = p }(ctlStatementPage)
	ctlStatementPage = 3 // 7 rows: pages of 3, 3 and 1
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	code, stdout, stderr := runCmd(t, e, "ctl", "--central", proxy.URL, "statement", "p1", "EUR", today, today)
	if code != exitOK {
		t.Fatalf("ctl statement = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for i, u := range rec.statementRequests() {
		if l, err := strconv.Atoi(u.Query().Get("limit")); err != nil || l < 1 || l > 5000 {
			t.Errorf("statement request %d (%s) asks for no bounded page (limit %q)", i+1, u, u.Query().Get("limit"))
		}
	}
	if n := len(rec.statementRequests()); n != 3 {
		t.Errorf("%d statement requests, want 3 pages of at most 3 rows", n)
	}
	// One statement on stdout, every row in order, its balances the
	// period's.
	dec := json.NewDecoder(strings.NewReader(stdout))
	var st struct {
		Opening, Closing string
		Next             *string
		Rows             []struct{ ID, Amount, Balance string }
		Totals           map[string]string
	}
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("stdout is not a statement: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one statement:\n%s", stdout)
	}
	if len(st.Rows) != payments {
		t.Fatalf("%d rows printed, want %d:\n%s", len(st.Rows), payments, stdout)
	}
	for i, r := range st.Rows {
		want := decimal.NewFromInt(int64(-(i + 1) * (i + 2) / 2)).StringFixed(2) // the running balance
		if r.ID != fmt.Sprintf("pay%d", i+1) || r.Balance != want {
			t.Errorf("row %d = %+v, want pay%d with balance %s", i+1, r, i+1, want)
		}
	}
	if st.Opening != "0.00" || st.Closing != "-28.00" || st.Totals["payment"] != "-28.00" || st.Next == nil || *st.Next != "" {
		t.Errorf("opening %s closing %s totals %v next %v; want 0.00, -28.00, payment -28.00, \"\"", st.Opening, st.Closing, st.Totals, st.Next)
	}
	// A payment booked between two pages: the statement is read again,
	// whole, and printed once.
	rec.mu.Lock()
	rec.reqs, rec.nth = nil, 2
	rec.before = func() {
		b := fmt.Sprintf(`{"id":"pay0","supplier":"p1","bank":"b1","amount":"2.00","currency":"EUR","paid_on":%q}`, today)
		if err := c.do(context.Background(), "POST", "/v1/supplier_payments", []byte(b), &syncBuffer{}); err != nil {
			t.Errorf("payment between pages: %v", err)
		}
	}
	rec.mu.Unlock()
	code, stdout, stderr = runCmd(t, e, "ctl", "--central", proxy.URL, "statement", "p1", "EUR", today, today)
	if code != exitOK {
		t.Fatalf("ctl statement with a payment between pages = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	dec = json.NewDecoder(strings.NewReader(stdout))
	st.Rows = nil
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("stdout is not a statement: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one statement:\n%s", stdout)
	}
	if len(st.Rows) != payments+1 || st.Rows[0].ID != "pay0" || st.Closing != "-30.00" || st.Rows[payments].Balance != "-30.00" {
		t.Errorf("with a payment between pages: %d rows (first %+v), closing %s; want %d rows from pay0, closing -30.00", len(st.Rows), st.Rows[0], st.Closing, payments+1)
	}
	if n := len(rec.statementRequests()); n != 2+3 {
		t.Errorf("%d statement requests, want 2 (the first read, given up at its second page) and 3", n)
	}

	// A bad argument is still central's 400, naming the field.
	code, _, stderr = runCmd(t, e, "ctl", "--central", proxy.URL, "statement", "p1", "EUR", today, "not-a-date")
	if code != exitError || !strings.Contains(stderr, "(field: to)") {
		t.Errorf("statement with a bad to = %d %q, want %d naming to", code, stderr, exitError)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlBackOffice drives the back-office commands of `storeline ctl
// --central` against a `storeline central` started in the test.
func TestCtlBackOffice(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, args := range [][]string{
		{"PUT", "/v1/price_lists/retail", `{"currency":"EUR"}`},
		{"PUT", "/v1/groups/food", `{"name":"Food"}`},
		{"PUT", "/v1/stores/s1", `{"time_zone":"UTC","currency":"EUR","departments":[{"id":"main"}],"price_lists":["retail"]}`},
		{"PUT", "/v1/suppliers/p1", `{"name":"Dairy"}`},
		{"PUT", "/v1/banks/b1", `{"name":"First Bank"}`},
		{"PUT", "/v1/items/milk", `{"sku":"MILK","name":"Milk","group":"food","dept":"main","unit":"pcs","vat_rate":"10"}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	expiry := time.Now().UTC().AddDate(0, 0, 3).Format(time.DateOnly)
	today := time.Now().UTC().Format(time.DateOnly)
	path := filepath.Join(dir, "inv1.json")
	doc := `{"type":"incoming_invoice","store":"s1","supplier":"p1","lines":[{"item":"milk","qty":"10","purchase_price":"1.10","batch":"B1","expiry":"` + expiry + `"}]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"document", "inv1", path}, 0, `"status":"draft"`},
		{[]string{"cancel", "inv1"}, 1, `(field: status)`},
		{[]string{"post", "inv1"}, 0, `"status":"posted"`},
		{[]string{"post", "inv1"}, 1, `(field: status)`},
		{[]string{"stock", "s1", "milk"}, 0, `"qty":"10","value":"10"`},
		{[]string{"expiring", "s1", "7"}, 0, `"batch":"B1"`},
		{[]string{"drafts", "s1"}, 0, `"drafts":[]`},
		{[]string{"cost-of-sales", "s1"}, 0, `"costed":0`},
		{[]string{"cancel", "inv1"}, 0, `"status":"cancelled"`},
		{[]string{"show", "inv1"}, 0, `"status":"cancelled"`},
		{[]string{"stock", "s1"}, 0, `"stock":[]`},
		{[]string{"document-from-draft", "x1", "s1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}, 1, `(field: draft.event)`},
		{[]string{"stock"}, 2, `bad command`},
		{[]string{"reservations", "s1"}, 0, `"reservations":[]`},
		{[]string{"reservations", "s1", "milk"}, 0, `"store":"s1"`},
		{[]string{"reservations", "nowhere"}, 1, `(field: store)`},
		{[]string{"reservations"}, 2, `bad command`},
		// Settlements: the cancelled invoice owes nothing; a payment is
		// an advance (the chain is owed 5.00), and a retry is harmless.
		{[]string{"pay-supplier", "pay1", "p1", "b1", "5.00", "EUR", today}, 0, `"amount":"5.00"`},
		{[]string{"pay-supplier", "pay1", "p1", "b1", "5", "EUR", today}, 0, `"amount":"5.00"`},
		{[]string{"pay-supplier", "pay1", "p1", "b1", "6", "EUR", today}, 1, `(field: id)`},
		{[]string{"pay-supplier", "pay2", "p1", "nobank", "1", "EUR"}, 1, `(field: bank)`},
		{[]string{"statement", "p1", "EUR", today, today}, 0, `"closing":"-5.00"`},
		{[]string{"statement", "p1", "EUR", today}, 2, `bad command`},
		// Turnover: nothing sold is one total row of zeros; a period
		// over central's 366 days is read in parts and summed.
		{[]string{"turnover", "s1", today, today}, 0, `"rows":[{"key":{},"receipts":0,"returns":0,"qty":"0","revenue":"0","net":"0","vat":"0"}]`},
		{[]string{"turnover", "s1", "2019-01-01", today, "seller,item"}, 0, `"by":["seller","item"],"rows":[]`},
		{[]string{"turnover", "s1", today, today, "colour"}, 1, `(field: by)`},
		{[]string{"turnover", "nowhere", today, today}, 1, `(field: store)`},
		{[]string{"turnover", "s1", today, "2019-01-01"}, 1, `(field: to)`},
		{[]string{"turnover", "s1", today}, 2, `bad command`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
}

// TestCtlTurnoverSumsPages: ctl turnover reads every page of every part
// of the period (central answers 366 days at most) and prints the rows
// summed by key, sorted, whatever order the pages gave them in.
func TestCtlTurnoverSumsPages(t *testing.T) {
	type page struct {
		rows []string // key:seller receipts returns qty revenue net vat
		next string
	}
	// By "from to after".
	pages := map[string]page{
		"2019-01-01 2020-01-01 ":    {[]string{"bob 1 0 1 1.50 1.36 0.14", "carol 0 1 -1 -2.00 -1.82 -0.18"}, "1/2"},
		"2019-01-01 2020-01-01 1/2": {[]string{"alice 1 0 2 3.00 2.73 0.27", "bob 1 0 3.5 7.00 6.36 0.64"}, ""},
		"2020-01-02 2020-03-01 ":    {[]string{"alice 2 1 0.500 1.1 1.00 0.10"}, ""},
	}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		k := q.Get("from") + " " + q.Get("to") + " " + q.Get("after")
		asked = append(asked, k)
		p, ok := pages[k]
		if r.URL.Path != "/v1/turnover" || q.Get("store") != "s1" || q.Get("by") != "seller" || !ok {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusTeapot)
			return
		}
		rows := []map[string]any{}
		for _, row := range p.rows {
			var seller string
			var rec, ret int
			var qty, rev, net, vat string
			fmt.Sscan(row, &seller, &rec, &ret, &qty, &rev, &net, &vat)
			rows = append(rows, map[string]any{"key": map[string]string{"seller": seller}, "receipts": rec, "returns": ret,
				"qty": qty, "revenue": rev, "net": net, "vat": vat})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"store": "s1", "by": []string{"seller"}, "rows": rows, "more": p.next != "", "next": p.next})
	}))
	defer srv.Close()
	var stdout, stderr syncBuffer
	code := ctlCentral(context.Background(), srv.URL, "k", 5*time.Second, []string{"turnover", "s1", "2019-01-01", "2020-03-01", "seller"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	want := `{"store":"s1","from":"2019-01-01","to":"2020-03-01","by":["seller"],"rows":[` +
		`{"key":{"seller":"alice"},"receipts":3,"returns":1,"qty":"2.5","revenue":"4.1","net":"3.73","vat":"0.37"},` +
		`{"key":{"seller":"bob"},"receipts":2,"returns":0,"qty":"4.5","revenue":"8.5","net":"7.72","vat":"0.78"},` +
		`{"key":{"seller":"carol"},"receipts":0,"returns":1,"qty":"-1","revenue":"-2","net":"-1.82","vat":"-0.18"}],"pages":3}` + "\n"
	if stdout.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", stdout.String(), want)
	}
	if len(asked) != 3 {
		t.Errorf("asked %q", asked)
	}
}

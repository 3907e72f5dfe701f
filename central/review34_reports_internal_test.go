package central

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/storeline/storeline"
)

// review34CSV answers answer through the source's CSV shape and reads it
// back.
func review34CSV(t *testing.T, src string, answer string) ([][]string, *httptest.ResponseRecorder) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(answer), &m); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := writeReportCSV(w, src, reportSources[src].csv, m); err != nil {
		t.Fatalf("%s CSV: %v", src, err)
	}
	recs, err := csv.NewReader(bytes.NewReader(w.Body.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("%s CSV: %v\n%s", src, err, w.Body)
	}
	return recs, w
}

// TestReview34MarginCSVHeaderStable: a margin page's CSV header does not
// depend on whether its first sale is costed (an uncosted sale lacks
// cost and margin), so pages and runs of one report line up.
func TestReview34MarginCSVHeaderStable(t *testing.T) {
	costed := `{"event":"e1","kind":"receipt","date":"2020-01-02","revenue":"3.00","cost":"2.00","margin":"1.00"}`
	uncosted := `{"event":"e2","kind":"receipt","date":"2020-01-03","revenue":"4.00"}`
	recost := `{"date":"2020-01-05","document":"inv1","kind":"invoice","item":"milk","cost":"0.50"}`
	a, _ := review34CSV(t, "margin", `{"sales":[`+costed+`,`+uncosted+`],"recosts":[`+recost+`],"next":""}`)
	b, _ := review34CSV(t, "margin", `{"sales":[`+uncosted+`,`+costed+`],"recosts":[],"next":""}`)
	c, _ := review34CSV(t, "margin", `{"sales":[],"recosts":[`+recost+`],"next":""}`)
	wholesale := `{"date":"2020-01-06","document":"out1","kind":"outgoing_invoice","buyer":"b1","revenue":"9.00","cost":"6.00","margin":"3.00"}`
	d, _ := review34CSV(t, "margin", `{"sales":[],"recosts":[],"wholesale":[`+wholesale+`],"next":""}`)
	if !reflect.DeepEqual(a[0], b[0]) || !reflect.DeepEqual(a[0], c[0]) || !reflect.DeepEqual(a[0], d[0]) {
		t.Fatalf("margin CSV headers differ by page:\n%v\n%v\n%v\n%v", a[0], b[0], c[0], d[0])
	}
	want := []string{"row", "date", "event", "kind", "revenue", "cost", "margin", "document", "item", "buyer"}
	if !reflect.DeepEqual(a[0], want) {
		t.Fatalf("margin CSV header %v, want %v", a[0], want)
	}
	if got := a[2]; !reflect.DeepEqual(got, []string{"sale", "2020-01-03", "e2", "receipt", "4.00", "", "", "", "", ""}) {
		t.Fatalf("uncosted sale row %v", got)
	}
	if got := d[1]; !reflect.DeepEqual(got, []string{"wholesale", "2020-01-06", "", "outgoing_invoice", "9.00", "6.00", "3.00", "out1", "", "b1"}) {
		t.Fatalf("wholesale row %v", got)
	}
}

// TestReview34CSVQuotingAndHeaders: a value with a comma, a quote or a
// newline reads back as itself; decimals stay strings as JSON spells them;
// the page's next is in X-Next, the type text/csv.
func TestReview34CSVQuotingAndHeaders(t *testing.T) {
	recs, w := review34CSV(t, "excise", `{"movements":[{"date":"2020-01-02","source":"event","ref":"r1","kind":"sale","item":"vodka","qty":"-1.000","serial":"a,\"b\"\nc"}],"next":"2020-01-02/7"}`)
	want := [][]string{{"date", "source", "ref", "kind", "item", "qty", "serial"}, {"2020-01-02", "event", "r1", "sale", "vodka", "-1.000", "a,\"b\"\nc"}}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("excise CSV %q, want %q", recs, want)
	}
	if ct, next := w.Header().Get("Content-Type"), w.Header().Get("X-Next"); ct != "text/csv; charset=utf-8" || next != "2020-01-02/7" {
		t.Fatalf("Content-Type %q X-Next %q", ct, next)
	}
}

// TestReview34PeriodEdges: the rules at the year's and months' edges,
// from and to both inclusive as /v1/turnover takes them.
func TestReview34PeriodEdges(t *testing.T) {
	for _, c := range []struct {
		rule, day, from, to string
	}{
		{"month_to_date", "2025-01-01", "2025-01-01", "2025-01-01"},
		{"previous_month", "2025-01-01", "2024-12-01", "2024-12-31"},
		{"previous_month", "2025-03-31", "2025-02-01", "2025-02-28"},
		{"yesterday", "2025-01-01", "2024-12-31", "2024-12-31"},
		{"last_7_days", "2025-01-03", "2024-12-28", "2025-01-03"},
		{"last_30_days", "2024-04-15", "2024-03-17", "2024-04-15"}, // across Riga's DST change of 2024-03-31
		{"today", "9999-12-31", "9999-12-31", "9999-12-31"},
		{"previous_month", "0001-01-15", "0000-12-01", "0000-12-31"},
	} {
		d := savedReport{ID: "r", Title: "t", Source: "turnover", Period: c.rule}
		from, to := d.resolve(dayOf(storeline.Date(c.day)))
		if string(from) != c.from || string(to) != c.to {
			t.Errorf("%s on %s: %s..%s, want %s..%s", c.rule, c.day, from, to, c.from, c.to)
		}
	}
	d := savedReport{ID: "r", Title: "t", Source: "turnover", Period: "fixed", From: "2025-02-01", To: "2025-01-31"}
	var se *storeline.Error
	if err := d.Validate(); !errors.As(err, &se) || se.Field != "to" {
		t.Fatalf("fixed from after to: %v", err)
	}
	d = savedReport{ID: "r", Title: "t", Source: "turnover", Period: "fixed", From: "2024-01-01", To: "2024-12-31"}
	if err := d.Validate(); err != nil {
		t.Fatalf("fixed, a leap year's 366 days: %v", err)
	}
}

// TestReview34CSVNeutralisesFormulas: a text cell a spreadsheet would
// take for a formula (= + - @, tab, CR first: an excise serial is the
// shop's scan) is written with a leading apostrophe; a decimal keeps its
// sign.
func TestReview34CSVNeutralisesFormulas(t *testing.T) {
	recs, _ := review34CSV(t, "excise", `{"movements":[
		{"date":"2020-01-02","source":"event","ref":"r1","kind":"sale","item":"vodka","qty":"-1.000","serial":"=HYPERLINK(\"http://x\")"},
		{"date":"2020-01-02","source":"event","ref":"r2","kind":"sale","item":"vodka","qty":"+2","serial":"@SUM(A1)"},
		{"date":"2020-01-02","source":"event","ref":"r3","kind":"sale","item":"vodka","qty":"1","serial":"-2+3"}],"next":""}`)
	for i, want := range [][2]string{{"-1.000", `'=HYPERLINK("http://x")`}, {"+2", "'@SUM(A1)"}, {"1", "'-2+3"}} {
		if got := [2]string{recs[i+1][5], recs[i+1][6]}; got != want {
			t.Errorf("row %d qty, serial %q, want %q", i, got, want)
		}
	}
}

// TestReview34TitleInCharacters: openapi.yaml's maxLength 200 counts
// characters (as for Idempotency-Key, api.go), so a title of 150
// two-byte letters is one the spec allows; 201 characters are not.
func TestReview34TitleInCharacters(t *testing.T) {
	d := savedReport{ID: "r", Title: strings.Repeat("ж", 150), Source: "stock"}
	if err := d.Validate(); err != nil {
		t.Fatalf("a title of 150 characters (300 bytes): %v", err)
	}
	d.Title = strings.Repeat("a", 201)
	var se *storeline.Error
	if err := d.Validate(); !errors.As(err, &se) || se.Field != "title" {
		t.Fatalf("a title of 201 characters: %v", err)
	}
}

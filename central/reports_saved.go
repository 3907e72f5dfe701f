package central

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// Saved reports: a head office names a report it runs again and again (a
// source among the fixed reports, its fixed parameters, a period relative
// to the day it is run) and runs it by name, as JSON or as CSV for a
// spreadsheet, without a new build.
//
// A definition is head-office data that no shop needs, so it is not a
// master-data kind: a kind goes down every shop's change feed (its
// tombstones to every shop), and a shop of a version that does not know
// the kind would refuse its whole pull. Definitions are kept in the FSM's
// state under reportDefKey by two ops of FSM level levelSavedReports
// (levels.go), which a mixed-version cluster refuses until every node
// applies them.
//
// What applyReportPut accepts is savedReport.Validate against
// reportSources and turnoverDims: a version that adds a source, a
// parameter or a grouping changes what the op accepts, so it needs an FSM
// level of its own (checked where Validate is), or an old node would
// refuse a definition a new one stores.
//
// Running one delegates to the report's own handler with the resolved
// parameters, so a saved report answers exactly what the report answers
// (paging included) and there is no second implementation of any report.
// A run may replace the period by dates of its own (from and to), but
// only repeat what the definition fixes (store, by, item); any other
// query parameter is refused rather than dropped.

// The saved-report ops of the FSM.
const (
	OpReportPut    = "report.put"
	OpReportDelete = "report.delete"
)

// levelSavedReports is the FSM level that introduced saved reports.
const levelSavedReports = 7

// reportDefKey prefixes the stored definitions, by id.
const reportDefKey = "reportdef/"

// maxReportTitle bounds a definition's title, in characters as
// openapi.yaml's maxLength counts them.
const maxReportTitle = 200

// savedReport is a saved report definition, as the API and the FSM carry it.
// Store empty leaves it to the run; Period is empty exactly for a source
// without a period (stock); From and To are the "fixed" rule's.
type savedReport struct {
	ID     string            `msgpack:"i"`
	Title  string            `msgpack:"t"`
	Source string            `msgpack:"s"`
	Store  storeline.StoreID `msgpack:"st,omitempty"`
	By     []string          `msgpack:"b,omitempty"`
	Item   storeline.ItemID  `msgpack:"it,omitempty"`
	Period string            `msgpack:"p,omitempty"`
	From   storeline.Date    `msgpack:"f,omitempty"`
	To     storeline.Date    `msgpack:"to,omitempty"`
}

// reportSource is a fixed report a definition may run.
type reportSource struct {
	run func(n *Node) func(http.ResponseWriter, *http.Request) error
	// period: the report takes from and to; maxDays bounds them.
	period  bool
	maxDays int
	by      bool // takes by (turnoverDims)
	item    bool // takes item
	csv     csvShape
}

// csvShape is how a report's answer becomes CSV.
type csvShape struct {
	// tables are the answer's arrays of rows that its CSV holds, in
	// order; with more than one, a first column "row" names the table.
	tables []csvTable
	// columns are the CSV's first columns, given the answer (a row
	// lacking an omitempty field still has its column); columns a row
	// has beyond them follow in the order they first appear.
	columns func(answer map[string]json.RawMessage) []string
}

type csvTable struct{ field, label string }

// reportSources are the fixed reports a definition may run.
var reportSources = map[string]reportSource{
	"turnover": {run: func(n *Node) func(http.ResponseWriter, *http.Request) error { return n.getTurnover },
		period: true, maxDays: maxTurnoverDays, by: true, csv: turnoverCSV},
	"margin": {run: func(n *Node) func(http.ResponseWriter, *http.Request) error { return n.getMargin },
		// Every column named: an uncosted sale lacks cost and margin, a
		// page without sales, re-costs or wholesale their fields, and the
		// header must not change with the page.
		period: true, csv: csvShape{tables: []csvTable{{"sales", "sale"}, {"recosts", "recost"}, {"wholesale", "wholesale"}},
			columns: func(map[string]json.RawMessage) []string {
				return []string{"row", "date", "event", "kind", "revenue", "cost", "margin", "document", "item", "buyer"}
			}}},
	"excise": {run: func(n *Node) func(http.ResponseWriter, *http.Request) error { return n.getExcise },
		period: true, maxDays: maxExciseDays, csv: csvShape{tables: []csvTable{{"movements", ""}},
			columns: func(map[string]json.RawMessage) []string {
				return []string{"date", "source", "ref", "kind", "item", "qty", "serial"}
			}}},
	"stock": {run: func(n *Node) func(http.ResponseWriter, *http.Request) error { return n.getStock },
		item: true, csv: csvShape{tables: []csvTable{{"stock", ""}},
			columns: func(map[string]json.RawMessage) []string {
				return []string{"dept", "item", "qty", "value", "reserved"}
			}}},
}

// turnoverCSV is the turnover report's CSV: a column per dimension of by,
// in its order, then the measures.
var turnoverCSV = csvShape{tables: []csvTable{{"rows", ""}},
	columns: func(a map[string]json.RawMessage) []string {
		var by []string
		_ = json.Unmarshal(a["by"], &by)
		return append(by, "receipts", "returns", "qty", "revenue", "net", "vat")
	}}

// periodRules are the rules of a definition's period, relative to the
// day it is run for.
var periodRules = []string{"today", "yesterday", "last_7_days", "last_30_days", "month_to_date", "previous_month", "fixed"}

func sourceNames() string {
	names := make([]string, 0, len(reportSources))
	for s := range reportSources {
		names = append(names, s)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Validate checks a definition against its source; it is what the API
// checks before submitting and what the FSM checks again when it applies.
func (d *savedReport) Validate() error {
	if err := storeline.CheckID("id", d.ID); err != nil {
		return err
	}
	if strings.TrimSpace(d.Title) == "" || utf8.RuneCountInString(d.Title) > maxReportTitle {
		return storeline.Invalidf("title", "a report needs a title of 1-%d characters", maxReportTitle)
	}
	src, ok := reportSources[d.Source]
	if !ok {
		return storeline.Invalidf("source", "unknown report %q: want one of %s", d.Source, sourceNames())
	}
	if d.Store != "" {
		if err := storeline.CheckID("store", string(d.Store)); err != nil {
			return err
		}
	}
	if len(d.By) > 0 && !src.by {
		return storeline.Invalidf("by", "the %s report takes no by", d.Source)
	}
	for i, dim := range d.By {
		if _, ok := turnoverDims[dim]; !ok {
			return storeline.Invalidf(fmt.Sprintf("by[%d]", i), "unknown grouping %q: want date, month, item, group, top_group, dept, seller or terminal", dim)
		}
		if slices.Contains(d.By[:i], dim) {
			return storeline.Invalidf(fmt.Sprintf("by[%d]", i), "%q twice", dim)
		}
	}
	if d.Item != "" {
		if !src.item {
			return storeline.Invalidf("item", "the %s report takes no item", d.Source)
		}
		if err := storeline.CheckID("item", string(d.Item)); err != nil {
			return err
		}
	}
	if !src.period {
		if d.Period != "" || d.From != "" || d.To != "" {
			return storeline.Invalidf("period", "the %s report is of the day it is run, not of a period", d.Source)
		}
		return nil
	}
	if !slices.Contains(periodRules, d.Period) {
		return storeline.Invalidf("period", "%q: want one of %s", d.Period, strings.Join(periodRules, ", "))
	}
	if d.Period != "fixed" {
		if d.From != "" || d.To != "" {
			return storeline.Invalidf("from", "from and to go with period fixed only")
		}
		return nil
	}
	from, err := storeline.ParseDate("from", string(d.From))
	if err != nil {
		return err
	}
	to, err := storeline.ParseDate("to", string(d.To))
	if err != nil {
		return err
	}
	return src.checkPeriod(d.Source, from, to, storeline.Invalidf)
}

// json is d as the API answers it: the fields it has.
func (d *savedReport) json() map[string]any {
	m := map[string]any{"id": d.ID, "title": d.Title, "source": d.Source}
	for k, v := range map[string]string{"store": string(d.Store), "item": string(d.Item), "period": d.Period, "from": string(d.From), "to": string(d.To)} {
		if v != "" {
			m[k] = v
		}
	}
	if len(d.By) > 0 {
		m["by"] = d.By
	}
	return m
}

// dayOf is a valid date as midnight UTC.
func dayOf(d storeline.Date) time.Time {
	t, _ := time.Parse(time.DateOnly, string(d))
	return t
}

func dateOf(t time.Time) storeline.Date { return storeline.Date(t.Format(time.DateOnly)) }

// resolve returns the business dates d's period covers when it is run
// for day (midnight UTC of the date).
func (d *savedReport) resolve(day time.Time) (from, to storeline.Date) {
	switch d.Period {
	case "today":
		return dateOf(day), dateOf(day)
	case "yesterday":
		y := day.AddDate(0, 0, -1)
		return dateOf(y), dateOf(y)
	case "last_7_days":
		return dateOf(day.AddDate(0, 0, -6)), dateOf(day)
	case "last_30_days":
		return dateOf(day.AddDate(0, 0, -29)), dateOf(day)
	case "month_to_date":
		return dateOf(time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)), dateOf(day)
	case "previous_month":
		first := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
		return dateOf(first.AddDate(0, -1, 0)), dateOf(first.AddDate(0, 0, -1))
	}
	return d.From, d.To // fixed
}

func applyReportPut(tx *Tx, payload []byte) ([]byte, error) {
	var d savedReport
	if err := msgpack.Unmarshal(payload, &d); err != nil {
		return nil, storeline.Invalidf("", "undecodable report definition: %v", err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return nil, tx.SetMeta(reportDefKey+d.ID, payload)
}

func applyReportDelete(tx *Tx, payload []byte) ([]byte, error) {
	id := string(payload)
	v, err := tx.Meta(reportDefKey + id)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, noReport(id)
	}
	return nil, tx.SetMeta(reportDefKey+id, nil)
}

func noReport(id string) error {
	return &storeline.Error{Op: "central.report", Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no report %q", id)}
}

func (n *Node) savedReportRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/reports", false, n.listReports)
	h("GET /v1/reports/{id}", false, n.getReport)
	h("PUT /v1/reports/{id}", true, n.putReport)
	h("DELETE /v1/reports/{id}", true, n.deleteReport)
	h("GET /v1/reports/{id}/run", false, n.runReport)
}

func (n *Node) putReport(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var d savedReport
	if err := decodeWire(body, &d); err != nil {
		return err
	}
	if d.ID != "" && d.ID != id {
		return errMalformed("id", "%q differs from the path's %q", d.ID, id)
	}
	d.ID = id
	if err := d.Validate(); err != nil {
		return err
	}
	payload, err := msgpack.Marshal(&d)
	if err != nil {
		return storeline.E("central.report", storeline.Internal, err)
	}
	res, err := n.Submit(r.Context(), OpReportPut, key, payload)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"duplicate": res.Duplicate, "report": d.json()})
	return nil
}

func (n *Node) deleteReport(w http.ResponseWriter, r *http.Request) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	res, err := n.Submit(r.Context(), OpReportDelete, key, []byte(r.PathValue("id")))
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"duplicate": res.Duplicate})
	return nil
}

// reportDef reads definition id.
func (n *Node) reportDef(id string) (*savedReport, error) {
	var d savedReport
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		v, err := rt.Meta(reportDefKey + id)
		if err != nil {
			return err
		}
		if v == nil {
			return noReport(id)
		}
		return msgpack.Unmarshal(v, &d)
	})
	return &d, err
}

func (n *Node) getReport(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	d, err := n.reportDef(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d.json())
	return nil
}

// listReports pages through the definitions in id order.
func (n *Node) listReports(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after := r.URL.Query().Get("after")
	if after != "" && !storeline.ValidID(after) {
		return errMalformed("after", "%.80q is not a report id", after)
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	return servePage(n, w, "reports", reportDefKey, "report definition", after, limit,
		func(_ string, d *savedReport) (any, bool) { return d.json(), true })
}

// runReport runs a definition: the store (the definition's, else the
// query's), the period resolved for date (the query's, else today in the
// store's zone) or the query's from and to, the definition's fixed
// parameters, and the query's paging, handed to the report's own
// handler; its answer plus the definition's id and the resolved from and
// to, as JSON or CSV. A query parameter it would not use is refused
// (checkRunQuery): a run answering other than what its query asked would
// be taken for what was asked.
func (n *Node) runReport(w http.ResponseWriter, r *http.Request) error {
	asCSV, err := wantsCSV(r)
	if err != nil {
		return err
	}
	q, err := readRunQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	// Before the definition is read, not only in the report's handler: a
	// linearizable run on a follower must see a definition just stored.
	if err := n.readConsistency(r); err != nil {
		return err
	}
	d, err := n.reportDef(r.PathValue("id"))
	if err != nil {
		return err
	}
	src, ok := reportSources[d.Source]
	if !ok {
		return storeline.Errorf(storeline.Internal, "central.report", "report %s runs unknown source %q", d.ID, d.Source)
	}
	if err := d.checkRunQuery(src, q); err != nil {
		return err
	}
	store := d.Store
	switch s := q.Get("store"); {
	case store == "":
		id, err := storeParam(r)
		if err != nil {
			return err
		}
		store = id
	case s != "" && s != string(store):
		return errMalformed("store", "report %s is of store %s; %q cannot override it", d.ID, store, s)
	}
	inner := url.Values{"store": {string(store)}}
	for _, p := range []string{"limit", "after"} {
		if v := q.Get(p); v != "" {
			inner.Set(p, v)
		}
	}
	if len(d.By) > 0 {
		inner.Set("by", strings.Join(d.By, ","))
	}
	if d.Item != "" {
		inner.Set("item", string(d.Item))
	}
	var from, to storeline.Date
	switch {
	case src.period && q.Has("from"):
		// checkRunQuery saw both, valid; the report checks them again.
		from, to = storeline.Date(q.Get("from")), storeline.Date(q.Get("to"))
	case src.period:
		day, err := n.runDay(r, store)
		if err != nil {
			return err
		}
		from, to = d.resolve(day)
	}
	if src.period {
		inner.Set("from", string(from))
		inner.Set("to", string(to))
	}
	ir := r.Clone(r.Context())
	ir.URL.RawQuery = inner.Encode()
	ir.Header.Del("Accept")
	rec := &bufferedResponse{header: http.Header{}}
	if err := src.run(n)(rec, ir); err != nil {
		return err
	}
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(rec.body.Bytes(), &answer); err != nil {
		return storeline.E("central.report", storeline.Internal, fmt.Errorf("the %s report's answer: %w", d.Source, err))
	}
	answer["report"], _ = json.Marshal(d.ID)
	if src.period {
		answer["from"], _ = json.Marshal(from)
		answer["to"], _ = json.Marshal(to)
	}
	if asCSV {
		return writeReportCSV(w, d.ID, src.csv, answer)
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// runParams are the query parameters a run takes; any other is refused
// naming it. by and item are there to be refused when they differ from
// the definition's.
var runParams = []string{"store", "date", "from", "to", "by", "item", "after", "limit", "format", "consistency"}

// readRunQuery reads a run's query, refusing (400 naming it) a pair
// url.Values would drop without a word (a ";" in it, a bad %-escape):
// ?date=2020-02-15;x=1 would run the period of today.
func readRunQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err == nil {
		return q, nil
	}
	for _, pair := range strings.Split(raw, "&") {
		if _, perr := url.ParseQuery(pair); perr != nil {
			name, _, _ := strings.Cut(pair, "=")
			name, _, _ = strings.Cut(name, ";")
			if unescaped, uerr := url.QueryUnescape(name); uerr == nil {
				name = unescaped
			}
			return nil, errMalformed(name, "%.100q: %v (parameters are separated by &)", pair, perr)
		}
	}
	return nil, errMalformed("", "%v", err)
}

// checkRunQuery refuses (400 naming the parameter) what a run of d would
// otherwise drop: a parameter given twice, an unknown one, one the
// definition fixes given another value, a period for a report of now,
// and a period override that is not two dates the report takes (checked
// as Validate checks a fixed period, and as the report checks its own).
func (d *savedReport) checkRunQuery(src reportSource, q url.Values) error {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names) // the same parameter named on every try
	for _, name := range names {
		if !slices.Contains(runParams, name) {
			return errMalformed(name, "unknown parameter: a run takes %s", strings.Join(runParams, ", "))
		}
		if len(q[name]) > 1 {
			return errMalformed(name, "given %d times", len(q[name]))
		}
	}
	if q.Has("by") {
		var by []string
		if s := q.Get("by"); s != "" {
			by = strings.Split(s, ",")
		}
		switch {
		case !src.by && len(by) > 0:
			return errMalformed("by", "the %s report takes no by", d.Source)
		case !slices.Equal(by, d.By):
			return errMalformed("by", "report %s's definition fixes by to %q: a run cannot change it", d.ID, strings.Join(d.By, ","))
		}
	}
	if q.Has("item") && q.Get("item") != string(d.Item) {
		if !src.item {
			return errMalformed("item", "the %s report takes no item", d.Source)
		}
		return errMalformed("item", "report %s's definition fixes item to %q (empty: every item): a run cannot change it", d.ID, d.Item)
	}
	if !src.period {
		for _, p := range []string{"from", "to", "date"} {
			if q.Has(p) {
				return errMalformed(p, "the %s report is of the moment it is run: it takes no period and no date", d.Source)
			}
		}
		return nil
	}
	if !q.Has("from") && !q.Has("to") {
		return nil
	}
	if q.Has("date") {
		return errMalformed("date", "from and to give the period: a date would resolve report %s's own %s, which they replace", d.ID, d.Period)
	}
	for _, p := range []string{"from", "to"} {
		if !q.Has(p) {
			return errMalformed(p, "a run's period needs both from and to")
		}
	}
	from, err := storeline.ParseDate("from", q.Get("from"))
	if err != nil {
		return errMalformed("from", "%v", errMessage(err))
	}
	to, err := storeline.ParseDate("to", q.Get("to"))
	if err != nil {
		return errMalformed("to", "%v", errMessage(err))
	}
	return src.checkPeriod(d.Source, from, to, errMalformed)
}

// checkPeriod is the rule of src's periods, refused with fail: a
// definition's fixed period is a 422, a run's override a 400.
func (src reportSource) checkPeriod(source string, from, to storeline.Date, fail func(field, format string, args ...any) error) error {
	if to < from {
		return fail("to", "%s is before from %s", to, from)
	}
	if src.maxDays > 0 && dayOf(to).Sub(dayOf(from)) >= time.Duration(src.maxDays)*24*time.Hour {
		return fail("to", "%s..%s spans more than the %s report's %d days", from, to, source, src.maxDays)
	}
	return nil
}

// runDay is the day a run's period is relative to: the query's date, or
// today in the store's zone (UTC for a store gone from the master data,
// whose sales the reports still answer). An empty date is refused, not
// taken for none: it would answer today's period.
func (n *Node) runDay(r *http.Request, store storeline.StoreID) (time.Time, error) {
	if r.URL.Query().Has("date") {
		d, err := dateParam(r, "date")
		return dayOf(d), err
	}
	loc := time.UTC
	var st storeline.Store
	switch err := n.rep.GetMaster(storeline.KindStore, string(store), &st); {
	case err == nil:
		l, err := st.Location()
		if err != nil {
			return time.Time{}, err
		}
		loc = l
	case storeline.KindOf(err) != storeline.NotFound:
		return time.Time{}, err
	}
	now := n.now().In(loc)
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), nil
}

// bufferedResponse keeps a report handler's answer for runReport to add
// to.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

// wantsCSV says whether r asks for CSV: format=csv or json, else the
// type Accept (RFC 9110 12.5.1) gives the higher quality of JSON and
// CSV, each taking the q of the most specific range that matches it
// (application/json, application/*, */*; text/csv, text/*, */*), the
// one named first on a tie; JSON without an Accept (or one with no
// range that parses). An Accept that takes neither is errNotAcceptable,
// a 406 naming Accept (writeProblem): answering a type the
// client refused would be read as the one it asked for. But only one
// read whole: a range that does not parse (Java's default "*; q=.2,
// */*; q=.2") may have taken JSON, so an Accept with one is then
// disregarded (RFC 9110 12.5.1 allows it) and JSON answers.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, errMalformed("format", "%q: want json or csv", f)
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	jsonAccept, csvAccept := acceptance{"application", "json", -1, 0, 0}, acceptance{"text", "csv", -1, 0, 0}
	parsed, unreadable := false, false
	for i, part := range strings.Split(accept, ",") {
		if strings.TrimSpace(part) == "" {
			continue // an empty list element (RFC 9110 5.6.1)
		}
		mt, params, err := mime.ParseMediaType(part)
		q, ok := qValue(params["q"])
		if err != nil || !ok || !strings.Contains(mt, "/") {
			unreadable = true // it takes nothing, and refuses nothing
			continue
		}
		parsed = true
		jsonAccept.offer(mt, q, i)
		csvAccept.offer(mt, q, i)
	}
	switch {
	case !parsed:
		return false, nil
	case jsonAccept.q == 0 && csvAccept.q == 0 && unreadable:
		return false, nil
	case jsonAccept.q == 0 && csvAccept.q == 0:
		return false, errMalformed("Accept", "%.100q: %w", accept, errNotAcceptable)
	case csvAccept.q != jsonAccept.q:
		return csvAccept.q > jsonAccept.q, nil
	}
	return csvAccept.pos < jsonAccept.pos, nil
}

// errNotAcceptable: a request's Accept takes neither JSON nor CSV.
var errNotAcceptable = errors.New("takes neither application/json nor text/csv (nor */*): want either, or format=json or csv")

// acceptance is what an Accept header says of one media type: the
// quality (in thousandths) of the most specific range matching it, and
// that range's position.
type acceptance struct {
	typ, sub string
	spec     int // -1: no range matched; 0 */*, 1 type/*, 2 type/sub
	q, pos   int
}

// offer weighs the range mt (lower case, as mime.ParseMediaType gives
// it) of quality q at position pos: a more specific range decides.
func (a *acceptance) offer(mt string, q, pos int) {
	spec := -1
	switch mt {
	case "*/*":
		spec = 0
	case a.typ + "/*":
		spec = 1
	case a.typ + "/" + a.sub:
		spec = 2
	}
	if spec > a.spec {
		a.spec, a.q, a.pos = spec, q, pos
	}
}

// qValue reads an Accept q parameter (RFC 9110 12.4.2: 0 to 1, up to
// three decimals) as thousandths; absent is 1.
func qValue(s string) (int, bool) {
	if s == "" {
		return 1000, true
	}
	whole, frac, _ := strings.Cut(s, ".")
	if (whole != "0" && whole != "1") || len(frac) > 3 {
		return 0, false
	}
	q := 0
	for i := range 3 {
		q *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, false
			}
			q += int(frac[i] - '0')
		}
	}
	if whole == "1" {
		q += 1000
	}
	return q, q <= 1000
}

// writeTurnoverCSV answers a turnover page as CSV.
func writeTurnoverCSV(w http.ResponseWriter, answer any) error {
	b, err := json.Marshal(answer)
	if err != nil {
		return storeline.E("central.turnover", storeline.Internal, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return storeline.E("central.turnover", storeline.Internal, err)
	}
	return writeReportCSV(w, "turnover", turnoverCSV, m)
}

// writeReportCSV answers a report page as CSV (RFC 4180): a header row,
// then one row per row of the answer's tables, each value as the JSON
// answer spells it (a decimal as its string, "12.50"), a nested object's
// fields as columns of their own (turnover's key: one per dimension). A
// page's cursor is in the header X-Next (empty: the last page), as the
// JSON's next. It comes as a download, name.csv (name is an ID: nothing
// to escape).
func writeReportCSV(w http.ResponseWriter, name string, src csvShape, answer map[string]json.RawMessage) error {
	cols := src.columns(answer)
	type row map[string]string
	var rows []row
	for _, t := range src.tables {
		var raws []json.RawMessage
		if err := json.Unmarshal(answer[t.field], &raws); err != nil && len(answer[t.field]) > 0 {
			return storeline.E("central.report", storeline.Internal, fmt.Errorf("the answer's %s: %w", t.field, err))
		}
		for _, raw := range raws {
			cells := row{}
			order, err := flattenJSON(raw, "", cells)
			if err != nil {
				return storeline.E("central.report", storeline.Internal, err)
			}
			if len(src.tables) > 1 {
				cells["row"] = t.label
			}
			for _, c := range order {
				if !slices.Contains(cols, c) {
					cols = append(cols, c)
				}
			}
			rows = append(rows, cells)
		}
	}
	var next string
	_ = json.Unmarshal(answer["next"], &next)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	w.Header().Set("X-Next", next)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(cols)
	rec := make([]string, len(cols))
	for _, rw := range rows {
		for i, c := range cols {
			rec[i] = rw[c]
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
	return nil
}

// neutraliseFormula keeps a spreadsheet from executing a text cell (a
// shop's excise serial is whatever it scanned): one it would take for a
// formula gets a leading apostrophe, as OWASP advises. A number (a
// decimal: JSON spells them as strings) is no formula and keeps its sign.
func neutraliseFormula(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := decimal.NewFromString(s); err == nil {
		return s
	}
	return "'" + s
}

// flattenJSON puts the fields of the JSON object raw into cells, in the
// order they come: a string as itself, null as "", a number or a bool as
// written, an array as its JSON; a nested object's fields as columns of
// their own, named field.sub (the fields of a turnover row's key by
// their dimension alone). It returns the columns in that order.
func flattenJSON(raw json.RawMessage, path string, cells map[string]string) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("a report row %.40s: want an object", raw)
	}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		col := name
		if path != "" {
			col = path + "." + name
		}
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && v[0] == '{':
			sub := col
			if path == "" && name == "key" {
				sub = ""
			}
			o, err := flattenJSON(v, sub, cells)
			if err != nil {
				return nil, err
			}
			order = append(order, o...)
			continue
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, err
			}
			cells[col] = neutraliseFormula(s)
		case string(v) == "null":
			cells[col] = ""
		default:
			cells[col] = string(v)
		}
		order = append(order, col)
	}
	_, err := io.Copy(io.Discard, dec.Buffered())
	return order, err
}

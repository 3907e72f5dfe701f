package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

const ctlCentralUsage = `usage: storeline ctl --central URL [--token KEY] <command> [args]

The API key is read from --token or STORELINE_CENTRAL_KEY.

commands:
  cluster                          members, leader, Raft state per node
  import-items FILE.csv            items: id,sku,name,group,dept,unit,vat_rate[,barcode]
  import-prices FILE.csv           prices: list,item,from(RFC 3339),price
  price LIST ITEM PRICE [FROM]     set one price (FROM defaults to now)
  seller ID NAME ROLE PIN          add or update a seller (role: cashier or manager)
  document ID FILE.json            create a draft stock document (JSON as PUT /v1/documents/{id})
  document-from-draft ID STORE EVENT
                                   create a document of a till's draft (storeline ctl drafts STORE)
  post ID | cancel ID | show ID    post, cancel or show a document
  drafts STORE                     document drafts the store's tills sent
  stock STORE [ITEM]               stock per department and item: units and value at cost
  reservations STORE [ITEM]        goods the store holds for customers: its active reservations
                                   (until, for whom, lines) and units reserved per item (ITEM: id or SKU)
  expiring STORE DAYS              batches expiring within DAYS days
  cost-of-sales STORE              cost the store's sales central has not costed yet
  pay-supplier ID SUPPLIER BANK AMOUNT CURRENCY [PAID_ON]
                                   book a payment to a supplier from a bank (PAID_ON:
                                   YYYY-MM-DD, default today); again with the same ID is harmless
  pay-cancel ID REASON [DAY]       cancel a payment booked by mistake (its postings reversed; quote
                                   a REASON of several words), booked on DAY (YYYY-MM-DD, default
                                   the UTC day); again with the same REASON and DAY is harmless
  statement SUPPLIER CURRENCY FROM TO
                                   a supplier's settlement statement for business dates FROM..TO
  pay-buyer ID BUYER BANK AMOUNT CURRENCY [PAID_ON]
                                   book a buyer's payment into a bank (PAID_ON: YYYY-MM-DD,
                                   default today); again with the same ID is harmless
  buyer-pay-cancel ID REASON [DAY] cancel a buyer's payment booked by mistake, as pay-cancel
  buyer-statement BUYER CURRENCY FROM TO
                                   a buyer's settlement statement for business dates FROM..TO
  receivables [AS_OF]              what every buyer owes, its overdue part by days past due as of
                                   AS_OF (YYYY-MM-DD, default today)
  turnover STORE FROM TO [BY]      the store's sales less returns for business dates FROM..TO, summed
                                   by BY: comma-separated date, month, item, group, top_group, dept,
                                   seller, terminal (none: one total); every page of central's answer,
                                   a period of any length
  report-define ID FILE.json       save a report definition (JSON as PUT /v1/reports/{id}: title,
                                   source, store, by, item, period, from, to)
  reports                          every saved report definition (every page, printed as one answer)
  report-run ID [STORE] [DATE] [--csv]
                                   run a saved report for STORE (when it leaves the store open), its
                                   period relative to DATE (default today in the store's zone); every
                                   page: JSON one page a line, or with --csv one CSV table (a
                                   turnover's rows summed by key across pages, as turnover prints them)
  order FILE.json                  create a purchase order (JSON as POST /v1/orders); again is harmless
  show-order ID | orders STORE     an order (ordered, received, outstanding per line); a store's orders
  order-cancel ID REASON           cancel an order that received nothing; again is harmless
  order-close ID [REASON]          close an order: what is outstanding is no longer expected
  promotion ID FILE.json           create or replace a promotion (JSON as PUT /v1/promotions/{id})
  price-policy ID FILE.json        create or replace a price policy (a customer-group discount)
  loyalty-programme ID FILE.json   create or replace a loyalty programme
  rules                            the promotions, price policies and loyalty programmes
  price-basket STORE FILE.json     price a basket as the shop would, with central's copy of its
                                   master data (JSON as POST /v1/stores/{id}/baskets/price)
  internal-barcode ITEM            give an item without a manufacturer's barcode an internal EAN-13
                                   (the chain's in-store prefix); again answers the same code
  labels STORE ITEM[,ITEM...] FILE [COPIES]
                                   printable labels (name, the store's price, EAN-13 bars) into FILE:
                                   ZPL for a label printer when FILE ends in .zpl, else SVG

Imports are sent in batches of 10,000 rows, each with an idempotency key
derived from the file's contents, so running an import again is harmless.
`

// ctlBatchRows is the number of CSV rows per import request; central
// splits each request into bounded Raft entries.
const ctlBatchRows = 10000

func ctlCentral(ctx context.Context, base, key string, timeout time.Duration, rest []string, stdout, stderr io.Writer) int {
	c := &adminClient{base: strings.TrimRight(base, "/"), token: key, timeout: timeout}
	want := map[string][2]int{"cluster": {0, 0}, "import-items": {1, 1}, "import-prices": {1, 1}, "price": {3, 4}, "seller": {4, 4},
		"document": {2, 2}, "document-from-draft": {3, 3}, "post": {1, 1}, "cancel": {1, 1}, "show": {1, 1},
		"drafts": {1, 1}, "stock": {1, 2}, "reservations": {1, 2}, "expiring": {2, 2}, "cost-of-sales": {1, 1},
		"pay-supplier": {5, 6}, "pay-cancel": {2, 3}, "order": {1, 1}, "show-order": {1, 1}, "orders": {1, 1},
		"order-cancel": {2, 2}, "order-close": {1, 2}, "statement": {4, 4}, "turnover": {3, 4},
		"pay-buyer": {5, 6}, "buyer-pay-cancel": {2, 3}, "buyer-statement": {4, 4}, "receivables": {0, 1},
		"promotion": {2, 2}, "price-policy": {2, 2}, "loyalty-programme": {2, 2}, "rules": {0, 0}, "price-basket": {2, 2},
		"internal-barcode": {1, 1}, "labels": {3, 4}}
	if len(rest) == 1 && (rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help") {
		// The -central flag's help points here.
		fmt.Fprint(stdout, ctlCentralUsage)
		return 0
	}
	if cmd := first(rest); cmd == "report-define" || cmd == "reports" || cmd == "report-run" {
		return ctlSavedReports(ctx, c, rest, stdout, stderr)
	}
	lim, ok := want[first(rest)]
	if !ok || len(rest)-1 < lim[0] || len(rest)-1 > lim[1] {
		fmt.Fprintf(stderr, "storeline ctl --central: bad command %q\n\n%s", strings.Join(rest, " "), ctlCentralUsage)
		return exitUsage
	}
	a := rest[1:]
	var err error
	switch rest[0] {
	case "cluster":
		err = c.do(ctx, "GET", "/v1/cluster", nil, stdout)
	case "import-items":
		err = importCSV(ctx, c, a[0], 7, stdout, stderr, func(rows [][]string) (string, []byte, error) {
			items := make([]map[string]any, len(rows))
			for i, r := range rows {
				it := map[string]any{"id": r[0], "sku": r[1], "name": r[2], "group": r[3], "dept": r[4], "unit": r[5], "vat_rate": r[6]}
				if len(r) > 7 && r[7] != "" {
					it["barcodes"] = []any{map[string]any{"code": r[7]}}
				}
				items[i] = it
			}
			b, err := json.Marshal(map[string]any{"items": items})
			return "/v1/import", b, err
		})
	case "import-prices":
		err = importCSV(ctx, c, a[0], 4, stdout, stderr, func(rows [][]string) (string, []byte, error) {
			ps := make([]map[string]any, len(rows))
			for i, r := range rows {
				ps[i] = map[string]any{"list": r[0], "item": r[1], "from": r[2], "price": r[3]}
			}
			b, err := json.Marshal(map[string]any{"prices": ps})
			return "/v1/prices", b, err
		})
	case "price":
		from := time.Now().UTC().Format(time.RFC3339)
		if len(a) > 3 {
			from = a[3]
		}
		b, _ := json.Marshal(map[string]any{"prices": []any{map[string]any{"list": a[0], "item": a[1], "from": from, "price": a[2]}}})
		err = c.do(ctx, "POST", "/v1/prices", b, stdout)
	case "seller":
		b, _ := json.Marshal(map[string]any{"name": a[1], "role": a[2], "pin": a[3]})
		err = c.do(ctx, "PUT", "/v1/sellers/"+a[0], b, stdout)
	case "internal-barcode", "labels":
		err = ctlLabels(ctx, c, rest[0], a, stdout)
	case "promotion", "price-policy", "loyalty-programme", "rules", "price-basket":
		err = ctlPricing(ctx, c, rest[0], a, stdout)
	default:
		err = ctlBackOffice(ctx, c, rest[0], a, stdout)
	}
	if isNotFound(err) {
		// Central's API answers /v1/cluster (or refuses the key) and never
		// 404: the 404 came from another server (a node's admin listener,
		// central's own), not from a record central lacks.
		if _, perr := c.call(ctx, "GET", "/v1/cluster", nil); isNotFound(perr) {
			err = &wrongServerError{URL: c.base, Want: "central's API",
				Hint: `--central takes the "api" URL storeline central prints; a store node is ctl --node`, Err: err}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline ctl --central %s: %v\n", rest[0], err)
		return exitError
	}
	return exitOK
}

// isNotFound reports whether err is a 404 answer.
func isNotFound(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.Code == http.StatusNotFound
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// importCSV reads a CSV file (a header row is skipped when its first cell
// is "id" or "list"), sends it in batches built by build, and draws a
// progress line on stderr.
func importCSV(ctx context.Context, c *adminClient, path string, minCols int, stdout, stderr io.Writer,
	build func([][]string) (string, []byte, error)) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	fileKey := hex.EncodeToString(sum[:8])
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) > 0 && (rows[0][0] == "id" || rows[0][0] == "list") {
		rows = rows[1:]
	}
	for i, row := range rows {
		if len(row) < minCols {
			return fmt.Errorf("%s: row %d has %d columns, want at least %d", path, i+1, len(row), minCols)
		}
	}
	start := time.Now()
	for off := 0; off < len(rows); off += ctlBatchRows {
		end := min(off+ctlBatchRows, len(rows))
		p, body, err := build(rows[off:end])
		if err != nil {
			return err
		}
		if err := c.post(ctx, p, body, fmt.Sprintf("%s-%d", fileKey, off/ctlBatchRows)); err != nil {
			fmt.Fprintln(stderr)
			return fmt.Errorf("rows %d-%d (earlier rows are in; rerun to resume): %w", off+1, end, err)
		}
		fmt.Fprintf(stderr, "\r%s %6.1f%%  %d/%d rows  %s", bar(end, len(rows)), 100*float64(end)/float64(len(rows)), end, len(rows), time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintln(stderr)
	fmt.Fprintf(stdout, "imported %d rows from %s in %s\n", len(rows), path, time.Since(start).Round(time.Millisecond))
	return nil
}

func bar(done, total int) string {
	const width = 30
	n := width * done / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// post sends one batch with an idempotency key, retrying an unavailable
// answer with the same key (the outcome may be unknown; the key makes the
// retry safe).
func (c *adminClient) post(ctx context.Context, path string, body []byte, key string) error {
	_, err := c.postKeyed(ctx, path, body, key)
	return err
}

// postKeyed is post returning a 2xx answer's body.
func (c *adminClient) postKeyed(ctx context.Context, path string, body []byte, key string) ([]byte, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		req, err := http.NewRequestWithContext(rctx, "POST", c.base+path, bytes.NewReader(body))
		if err != nil {
			cancel()
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			last = err
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		switch {
		case resp.StatusCode/100 == 2:
			return b, nil
		case resp.StatusCode == http.StatusServiceUnavailable:
			last = responseError(resp, b)
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		default:
			return nil, responseError(resp, b)
		}
	}
	return nil, errors.Join(errors.New("gave up after 5 attempts"), last)
}

// ctlBackOffice runs the back-office commands (documents, stock).
func ctlBackOffice(ctx context.Context, c *adminClient, cmd string, a []string, stdout io.Writer) error {
	esc := url.PathEscape
	switch cmd {
	case "document":
		b, err := os.ReadFile(a[1])
		if err != nil {
			return err
		}
		return c.do(ctx, "PUT", "/v1/documents/"+esc(a[0]), b, stdout)
	case "document-from-draft":
		b, _ := json.Marshal(map[string]any{"draft": map[string]any{"store": a[1], "event": a[2]}})
		return c.do(ctx, "PUT", "/v1/documents/"+esc(a[0]), b, stdout)
	case "post", "cancel":
		return c.do(ctx, "POST", "/v1/documents/"+esc(a[0])+"/"+cmd, nil, stdout)
	case "show":
		return c.do(ctx, "GET", "/v1/documents/"+esc(a[0]), nil, stdout)
	case "drafts":
		return c.do(ctx, "GET", "/v1/drafts?store="+url.QueryEscape(a[0]), nil, stdout)
	case "stock":
		q := "store=" + url.QueryEscape(a[0])
		if len(a) > 1 {
			q += "&item=" + url.QueryEscape(a[1])
		}
		return c.do(ctx, "GET", "/v1/stock?"+q, nil, stdout)
	case "reservations":
		q := "store=" + url.QueryEscape(a[0])
		if len(a) > 1 {
			q += "&item=" + url.QueryEscape(a[1])
		}
		return c.do(ctx, "GET", "/v1/reservations?"+q, nil, stdout)
	case "expiring":
		return c.do(ctx, "GET", "/v1/batches?store="+url.QueryEscape(a[0])+"&expiring_within_days="+url.QueryEscape(a[1]), nil, stdout)
	case "cost-of-sales":
		return c.do(ctx, "POST", "/v1/cost_of_sales?store="+url.QueryEscape(a[0]), nil, stdout)
	case "pay-supplier":
		paidOn := time.Now().Format(time.DateOnly)
		if len(a) > 5 {
			paidOn = a[5]
		}
		b, _ := json.Marshal(map[string]any{"id": a[0], "supplier": a[1], "bank": a[2], "amount": a[3], "currency": a[4], "paid_on": paidOn})
		return c.do(ctx, "POST", "/v1/supplier_payments", b, stdout)
	case "pay-buyer":
		paidOn := time.Now().Format(time.DateOnly)
		if len(a) > 5 {
			paidOn = a[5]
		}
		b, _ := json.Marshal(map[string]any{"id": a[0], "buyer": a[1], "bank": a[2], "amount": a[3], "currency": a[4], "paid_on": paidOn})
		return c.do(ctx, "POST", "/v1/buyer_payments", b, stdout)
	case "pay-cancel", "buyer-pay-cancel":
		// The key derives from the payment and the reason, so running the
		// command again (or its retry of a 503) gets the first answer; a
		// cancel with another reason is refused as cancelled already.
		path, prefix := "/v1/supplier_payments/", "pay-cancel-"
		if cmd == "buyer-pay-cancel" {
			path, prefix = "/v1/buyer_payments/", "buyer-pay-cancel-"
		}
		body := map[string]any{"reason": a[1]}
		key := a[0] + "\x00" + a[1]
		if len(a) > 2 {
			body["cancelled_on"] = a[2]
			key += "\x00" + a[2]
		}
		sum := sha256.Sum256([]byte(key))
		b, _ := json.Marshal(body)
		out, err := c.postKeyed(ctx, path+esc(a[0])+"/cancel", b, prefix+hex.EncodeToString(sum[:16]))
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	case "statement":
		return ctlStatement(ctx, c, "/v1/suppliers/"+url.PathEscape(a[0])+"/statement?", a[1], a[2], a[3], stdout)
	case "buyer-statement":
		return ctlStatement(ctx, c, "/v1/buyers/"+url.PathEscape(a[0])+"/statement?", a[1], a[2], a[3], stdout)
	case "receivables":
		q := ""
		if len(a) > 0 {
			q = "?as_of=" + url.QueryEscape(a[0])
		}
		return c.do(ctx, "GET", "/v1/receivables"+q, nil, stdout)
	case "turnover":
		by := ""
		if len(a) > 3 {
			by = a[3]
		}
		return ctlTurnover(ctx, c, a[0], a[1], a[2], by, stdout)
	case "order":
		b, err := os.ReadFile(a[0])
		if err != nil {
			return err
		}
		return c.do(ctx, "POST", "/v1/orders", b, stdout)
	case "show-order":
		return c.do(ctx, "GET", "/v1/orders/"+esc(a[0]), nil, stdout)
	case "orders":
		return c.do(ctx, "GET", "/v1/orders?store="+url.QueryEscape(a[0]), nil, stdout)
	case "order-cancel", "order-close":
		// Keyed by the command and its words, as pay-cancel: running it
		// again gets the first answer rather than "cancelled already".
		reason := ""
		if len(a) > 1 {
			reason = a[1]
		}
		b, _ := json.Marshal(map[string]any{"reason": reason})
		sum := sha256.Sum256([]byte(cmd + "\x00" + a[0] + "\x00" + reason))
		action := strings.TrimPrefix(cmd, "order-")
		out, err := c.postKeyed(ctx, "/v1/orders/"+esc(a[0])+"/"+action, b, cmd+"-"+hex.EncodeToString(sum[:16]))
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// ctlStatementPage is the rows per page ctl asks a statement in (central
// answers at most 5000): one answer for a long period could outgrow what
// ctl reads of an answer, and the request timeout.
var ctlStatementPage = 5000

// ctlStatementTries bounds the reads of a statement that a movement
// booked meanwhile changed.
const ctlStatementTries = 3

// ctlStatement reads a statement (a supplier's or a buyer's: path, up
// to its query) page by page, following
// next, and prints it once, whole, as one answer without a limit would
// be. Every page carries the whole period's opening, closing and totals:
// a page whose differ from the first's was read after a movement of the
// period was booked, so the statement is read again.
func ctlStatement(ctx context.Context, c *adminClient, path, currency, from, to string, stdout io.Writer) error {
	var err error
	for try := 0; try < ctlStatementTries; try++ {
		var st map[string]json.RawMessage
		if st, err = readStatement(ctx, c, path, currency, from, to); err == nil {
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			_, err = stdout.Write(append(b, '\n'))
			return err
		}
		if !errors.Is(err, errStatementChanged) {
			return err
		}
	}
	return fmt.Errorf("%w, %d times: run again", err, ctlStatementTries)
}

// errStatementChanged: a movement of the period was booked between two
// pages of a statement.
var errStatementChanged = errors.New("the statement changed while it was read")

// readStatement reads every page of a statement and returns the first
// page with every page's rows.
func readStatement(ctx context.Context, c *adminClient, path, currency, from, to string) (map[string]json.RawMessage, error) {
	var (
		first map[string]json.RawMessage
		rows  []json.RawMessage
		after string
	)
	for page := 1; ; page++ {
		q := url.Values{"currency": {currency}, "from": {from}, "to": {to}, "limit": {strconv.Itoa(ctlStatementPage)}}
		if after != "" {
			q.Set("after", after)
		}
		b, err := c.call(ctx, "GET", path+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var st map[string]json.RawMessage
		var pageRows []json.RawMessage
		var next string
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("statement page %d: %w", page, err)
		}
		if err := json.Unmarshal(st["rows"], &pageRows); err != nil {
			return nil, fmt.Errorf("statement page %d: rows: %w", page, err)
		}
		if err := json.Unmarshal(st["next"], &next); err != nil {
			return nil, fmt.Errorf("statement page %d: next: %w", page, err)
		}
		if first == nil {
			first = st
		} else {
			for _, k := range []string{"opening", "closing", "unindexed", "totals"} {
				if !bytes.Equal(st[k], first[k]) {
					return nil, fmt.Errorf("%w (%s of page %d)", errStatementChanged, k, page)
				}
			}
		}
		rows = append(rows, pageRows...)
		if next == "" {
			break
		}
		if next == after || len(pageRows) == 0 {
			return nil, fmt.Errorf("statement page %d: next %q does not move on", page, next)
		}
		after = next
	}
	all, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		all = []byte("[]")
	}
	first["rows"], first["next"] = all, json.RawMessage(`""`)
	return first, nil
}

// ctlTurnoverDays is the longest period central answers a turnover
// request for (both ends count): ctl asks a longer one in parts.
const ctlTurnoverDays = 366

// turnoverRow is a row of central's turnover report, as ctl sums it.
type turnoverRow struct {
	Key      map[string]string `json:"key"`
	Receipts int               `json:"receipts"`
	Returns  int               `json:"returns"`
	Qty      decimal.Decimal   `json:"qty"`
	Revenue  decimal.Decimal   `json:"revenue"`
	Net      decimal.Decimal   `json:"net"`
	VAT      decimal.Decimal   `json:"vat"`
}

// ctlTurnover reads a store's turnover for FROM..TO in parts central
// answers (ctlTurnoverDays each), every page of each, and prints the
// rows summed by key, sorted by key, as one answer for the whole period.
// A page's rows are the sums of the events it read, so the period's are
// their sums: a receipt is on one page of one part.
func ctlTurnover(ctx context.Context, c *adminClient, store, from, to, by string, stdout io.Writer) error {
	ft, err1 := time.Parse(time.DateOnly, from)
	tt, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || tt.Before(ft) {
		// Central names the bad field.
		return ctlTurnoverPart(ctx, c, store, from, to, by, nil, new(int))
	}
	dims := []string{}
	if by != "" {
		dims = strings.Split(by, ",")
	}
	sums := map[string]*turnoverRow{}
	pages := 0
	for start := ft; !start.After(tt); start = start.AddDate(0, 0, ctlTurnoverDays) {
		end := start.AddDate(0, 0, ctlTurnoverDays-1)
		if end.After(tt) {
			end = tt
		}
		err := ctlTurnoverPart(ctx, c, store, start.Format(time.DateOnly), end.Format(time.DateOnly), by, func(r turnoverRow) {
			vals := make([]string, len(dims))
			for i, d := range dims {
				vals[i] = r.Key[d]
			}
			k := strings.Join(vals, "\x00")
			sum, ok := sums[k]
			if !ok {
				sum = &turnoverRow{Key: r.Key}
				sums[k] = sum
			}
			sum.Receipts += r.Receipts
			sum.Returns += r.Returns
			sum.Qty, sum.Revenue, sum.Net, sum.VAT = sum.Qty.Add(r.Qty), sum.Revenue.Add(r.Revenue), sum.Net.Add(r.Net), sum.VAT.Add(r.VAT)
		}, &pages)
		if err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]*turnoverRow, len(keys))
	for i, k := range keys {
		rows[i] = sums[k]
	}
	b, err := json.Marshal(struct {
		Store string         `json:"store"`
		From  string         `json:"from"`
		To    string         `json:"to"`
		By    []string       `json:"by"`
		Rows  []*turnoverRow `json:"rows"`
		Pages int            `json:"pages"`
	}{store, from, to, dims, rows, pages})
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

// ctlTurnoverPart reads every page of store's turnover for from..to,
// giving each row to add and counting the pages.
func ctlTurnoverPart(ctx context.Context, c *adminClient, store, from, to, by string, add func(turnoverRow), pages *int) error {
	after := ""
	for {
		q := url.Values{"store": {store}, "from": {from}, "to": {to}, "limit": {"5000"}}
		if by != "" {
			q.Set("by", by)
		}
		if after != "" {
			q.Set("after", after)
		}
		b, err := c.call(ctx, "GET", "/v1/turnover?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		*pages++
		var page struct {
			Rows []turnoverRow `json:"rows"`
			Next string        `json:"next"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("turnover %s..%s page %d: %w", from, to, *pages, err)
		}
		if add != nil {
			for _, r := range page.Rows {
				add(r)
			}
		}
		if page.Next == "" {
			return nil
		}
		if page.Next == after {
			return fmt.Errorf("turnover %s..%s page %d: next %q does not move on", from, to, *pages, page.Next)
		}
		after = page.Next
	}
}

// pricingCollections are the head-office collections of pricing rules by
// ctl command.
var pricingCollections = map[string]string{
	"promotion": "promotions", "price-policy": "price_policies", "loyalty-programme": "loyalty_programmes",
}

// ctlPricing runs the pricing commands: rules are written whole from a
// JSON file (central validates them and names the bad field), and a
// basket is priced as the shop would price it.
func ctlPricing(ctx context.Context, c *adminClient, cmd string, a []string, stdout io.Writer) error {
	switch cmd {
	case "rules":
		for _, coll := range []string{"promotions", "price_policies", "loyalty_programmes"} {
			fmt.Fprintf(stdout, "%s: ", coll)
			if err := c.do(ctx, "GET", "/v1/"+coll+"?limit=5000", nil, stdout); err != nil {
				return err
			}
		}
		return nil
	case "price-basket":
		b, err := os.ReadFile(a[1])
		if err != nil {
			return err
		}
		return c.do(ctx, "POST", "/v1/stores/"+url.PathEscape(a[0])+"/baskets/price", b, stdout)
	}
	b, err := os.ReadFile(a[1])
	if err != nil {
		return err
	}
	return c.do(ctx, "PUT", "/v1/"+pricingCollections[cmd]+"/"+url.PathEscape(a[0]), b, stdout)
}

// ctlLabels runs internal-barcode and labels.
func ctlLabels(ctx context.Context, c *adminClient, cmd string, a []string, stdout io.Writer) error {
	switch cmd {
	case "internal-barcode":
		// Central answers an item its code again whatever the key; the key
		// only lets this run's retries of a 503 get the first answer. One
		// per run: a key kept across runs would replay a refusal (an item
		// not created yet) after its cause is gone.
		out, err := c.postKeyed(ctx, "/v1/items/"+url.PathEscape(a[0])+"/internal_barcode", nil, "internal-barcode-"+a[0]+"-"+rand.Text())
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	case "labels":
		q := url.Values{"store": {a[0]}, "items": {a[1]}, "format": {"svg"}}
		if strings.HasSuffix(strings.ToLower(a[2]), ".zpl") {
			q.Set("format", "zpl")
		}
		if len(a) > 3 {
			q.Set("copies", a[3])
		}
		b, err := c.call(ctx, "GET", "/v1/labels?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		if err := os.WriteFile(a[2], b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s labels to %s (%d bytes)\n", q.Get("format"), a[2], len(b))
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// ctlSavedReports runs the saved-report commands: report-define,
// reports and report-run.
func ctlSavedReports(ctx context.Context, c *adminClient, rest []string, stdout, stderr io.Writer) int {
	cmd, a := rest[0], rest[1:]
	asCSV := false
	if i := slices.Index(a, "--csv"); i >= 0 && cmd == "report-run" {
		asCSV, a = true, slices.Delete(slices.Clone(a), i, i+1)
	}
	lim := map[string][2]int{"report-define": {2, 2}, "reports": {0, 0}, "report-run": {1, 3}}[cmd]
	if len(a) < lim[0] || len(a) > lim[1] {
		fmt.Fprintf(stderr, "storeline ctl --central: bad command %q\n\n%s", strings.Join(rest, " "), ctlCentralUsage)
		return exitUsage
	}
	var err error
	switch cmd {
	case "report-define":
		var b []byte
		if b, err = os.ReadFile(a[1]); err == nil {
			err = c.do(ctx, "PUT", "/v1/reports/"+url.PathEscape(a[0]), b, stdout)
		}
	case "reports":
		err = ctlReports(ctx, c, stdout)
	case "report-run":
		q := url.Values{"limit": {"5000"}}
		if len(a) > 1 && a[1] != "" {
			q.Set("store", a[1])
		}
		if len(a) > 2 && a[2] != "" { // central refuses an empty date
			q.Set("date", a[2])
		}
		err = ctlRunReport(ctx, c, "/v1/reports/"+url.PathEscape(a[0])+"/run", q, asCSV, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline ctl --central %s: %v\n", cmd, err)
		return exitError
	}
	return exitOK
}

// ctlReportsPage is the definitions per page ctl asks for (central
// answers at most 5000).
var ctlReportsPage = 5000

// ctlReports reads every page of the definitions, following next, and
// prints them as one answer, as a page holding them all would be.
func ctlReports(ctx context.Context, c *adminClient, stdout io.Writer) error {
	all := []json.RawMessage{} // none: an empty list, not null
	after := ""
	// Every cursor followed: a server whose cursors go round would
	// otherwise be asked for ever.
	followed := map[string]bool{}
	for page := 1; ; page++ {
		q := url.Values{"limit": {strconv.Itoa(ctlReportsPage)}}
		if after != "" {
			q.Set("after", after)
		}
		b, err := c.call(ctx, "GET", "/v1/reports?"+q.Encode(), nil)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		var p struct {
			Reports []json.RawMessage `json:"reports"`
			Next    string            `json:"next"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		all = append(all, p.Reports...)
		if p.Next == "" {
			break
		}
		if followed[p.Next] {
			return fmt.Errorf("page %d: next %q does not move on: it was followed before", page, p.Next)
		}
		followed[p.Next] = true
		after = p.Next
	}
	b, err := json.Marshal(map[string]any{"reports": all, "next": ""})
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

// ctlRunReport reads every page of a run. As JSON it prints each page as
// central answers it, one a line; as CSV it prints one table: the pages'
// rows under the union of their headers (a page's columns are those its
// rows have), a row's cell for a column its page lacks empty.
func ctlRunReport(ctx context.Context, c *adminClient, path string, q url.Values, asCSV bool, stdout io.Writer) error {
	var header []string
	var rows []map[string]string
	followed := map[string]bool{} // as ctlReports: cursors that go round
	for page := 1; ; page++ {
		next := ""
		if asCSV {
			q.Set("format", "csv")
			h, rs, n, err := ctlCSVPage(ctx, c, path+"?"+q.Encode())
			if err != nil {
				return fmt.Errorf("page %d: %w", page, err)
			}
			for _, col := range h {
				if !slices.Contains(header, col) {
					header = append(header, col)
				}
			}
			for _, r := range rs {
				m := make(map[string]string, len(h))
				for i, col := range h {
					if i < len(r) {
						m[col] = r[i]
					}
				}
				rows = append(rows, m)
			}
			next = n
		} else {
			b, err := c.call(ctx, "GET", path+"?"+q.Encode(), nil)
			if err != nil {
				return fmt.Errorf("page %d: %w", page, err)
			}
			var p struct {
				Next string `json:"next"`
			}
			_ = json.Unmarshal(b, &p)
			if _, err := stdout.Write(append(bytes.TrimSpace(b), '\n')); err != nil {
				return err
			}
			next = p.Next
		}
		if next == "" {
			break
		}
		if followed[next] {
			return fmt.Errorf("page %d: next %q does not move on: it was followed before", page, next)
		}
		followed[next] = true
		q.Set("after", next)
	}
	if !asCSV {
		return nil
	}
	rows, err := sumTurnoverRows(header, rows)
	if err != nil {
		return err
	}
	w := csv.NewWriter(stdout)
	_ = w.Write(header)
	rec := make([]string, len(header))
	for _, m := range rows {
		for i, col := range header {
			rec[i] = m[col]
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return w.Error()
}

// turnoverMeasures are the columns of a turnover CSV after its key's.
var turnoverMeasures = []string{"receipts", "returns", "qty", "revenue", "net", "vat"}

// sumTurnoverRows sums a turnover run's rows by key, sorted by key, as
// ctlTurnover does: a turnover page's rows are the sums of the events it
// read, so a key recurs on the pages after. A run of another report (its
// header does not end in the measures) is returned as it is.
func sumTurnoverRows(header []string, rows []map[string]string) ([]map[string]string, error) {
	if len(header) < len(turnoverMeasures) || !slices.Equal(header[len(header)-len(turnoverMeasures):], turnoverMeasures) {
		return rows, nil
	}
	dims := header[:len(header)-len(turnoverMeasures)]
	sums := map[string]map[string]string{}
	for _, r := range rows {
		vals := make([]string, len(dims))
		for i, d := range dims {
			vals[i] = r[d]
		}
		k := strings.Join(vals, "\x00")
		sum, ok := sums[k]
		if !ok {
			sums[k] = r
			continue
		}
		for _, m := range turnoverMeasures {
			a, err := decimal.NewFromString(sum[m])
			if err != nil {
				return nil, fmt.Errorf("turnover row %q: %s %q: %w", vals, m, sum[m], err)
			}
			b, err := decimal.NewFromString(r[m])
			if err != nil {
				return nil, fmt.Errorf("turnover row %q: %s %q: %w", vals, m, r[m], err)
			}
			// As many places as the terms have: "3.00", not "3".
			sum[m] = a.Add(b).StringFixed(max(-a.Exponent(), -b.Exponent(), 0))
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys) // central's order of a page's rows
	out := make([]map[string]string, len(keys))
	for i, k := range keys {
		out[i] = sums[k]
	}
	return out, nil
}

// ctlCSVPage reads one CSV page: its header, rows and X-Next.
func ctlCSVPage(ctx context.Context, c *adminClient, path string) (header []string, rows [][]string, next string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.request(ctx, "GET", path, nil)
	if err != nil {
		return nil, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCtlAnswer+1))
	if err != nil {
		return nil, nil, "", err
	}
	if resp.StatusCode/100 != 2 {
		return nil, nil, "", responseError(resp, b[:min(len(b), maxCtlAnswer)])
	}
	if len(b) > maxCtlAnswer {
		return nil, nil, "", fmt.Errorf("GET %s: the answer is longer than %d MiB", path, maxCtlAnswer>>20)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, nil, "", fmt.Errorf("GET %s: the CSV answer: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil, resp.Header.Get("X-Next"), nil
	}
	return recs[0], recs[1:], resp.Header.Get("X-Next"), nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

const ctlUsage = `usage: storeline ctl --node URL [--token TOKEN] <command> [args]

The node's URL is read from --node or STORELINE_NODE; with --central (or
STORELINE_CENTRAL) ctl talks to central instead, and a flag wins over the
environment (--node and --central together are refused). The admin token
is read from --token or STORELINE_ADMIN_TOKEN. An error answer is shown as
its status, its detail and the field at fault.

commands:
  health                       GET /healthz
  import FILE.json             import master data: {"records":[{"kind":"item","record":{...}}]},
                               sent in batches of at most 4096 records (the ledger's limit)
  terminal ID [NAME]           issue a terminal token (printed once)
  seller ID NAME ROLE PIN      set a seller (role: cashier or manager)
  backup FILE                  write an online backup to FILE
  conservation                 check that every asset's balances sum to zero

flags:
`

func cmdCtl(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodeURL := fs.String("node", getenv("STORELINE_NODE"), "admin URL of the node (env STORELINE_NODE)")
	token := fs.String("token", "", "admin token (default from "+envName("admin-token")+")")
	timeout := fs.Duration("timeout", time.Minute, "request timeout (a backup has none)")
	centralURL := fs.String("central", getenv("STORELINE_CENTRAL"), "head-office API URL of a central node (env STORELINE_CENTRAL); see ctl --central URL help")
	fs.Usage = func() {
		fmt.Fprint(stderr, ctlUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *timeout <= 0 {
		// Every request would end at once in "context deadline exceeded".
		fmt.Fprintf(stderr, "storeline ctl: -timeout %v: want a positive duration\n", *timeout)
		return exitUsage
	}
	// A flag wins over the environment: --node given alone talks to the
	// node even with STORELINE_CENTRAL set. Both given is ambiguous.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case given["node"] && given["central"]:
		fmt.Fprintln(stderr, "storeline ctl: give --node or --central, not both")
		return exitUsage
	case given["node"]:
		*centralURL = ""
	}
	if *centralURL != "" {
		if *token == "" {
			*token = getenv("STORELINE_CENTRAL_KEY")
		}
		return ctlCentral(ctx, *centralURL, *token, *timeout, fs.Args(), stdout, stderr)
	}
	if *token == "" {
		*token = getenv(envName("admin-token"))
	}
	rest := fs.Args()
	if *nodeURL == "" || len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	c := &adminClient{base: strings.TrimRight(*nodeURL, "/"), token: *token, timeout: *timeout}
	want := map[string][2]int{ // min, max arguments
		"health": {0, 0}, "import": {1, 1}, "terminal": {1, 2}, "seller": {4, 4},
		"backup": {1, 1}, "conservation": {0, 0},
	}
	lim, ok := want[rest[0]]
	if !ok || len(rest)-1 < lim[0] || len(rest)-1 > lim[1] {
		fmt.Fprintf(stderr, "storeline ctl: bad command %q\n", strings.Join(rest, " "))
		fs.Usage()
		return exitUsage
	}
	a := rest[1:]
	var err error
	switch rest[0] {
	case "health":
		var b []byte
		if b, err = c.storeHealth(ctx); err == nil {
			_, err = stdout.Write(b)
		}
	case "conservation":
		err = c.do(ctx, "GET", "/admin/v1/conservation", nil, stdout)
	case "import":
		err = ctlImport(ctx, c, a[0], stdout, stderr)
	case "terminal":
		req := node.TerminalRequest{ID: storeline.TerminalID(a[0])}
		if len(a) > 1 {
			req.Name = a[1]
		}
		b, _ := json.Marshal(req)
		err = c.do(ctx, "POST", "/admin/v1/terminals", b, stdout)
	case "seller":
		b, _ := json.Marshal(node.SellerRequest{ID: storeline.SellerID(a[0]), Name: a[1], Role: storeline.Role(a[2]), PIN: a[3]})
		err = c.do(ctx, "POST", "/admin/v1/sellers", b, stdout)
	case "backup":
		err = c.backup(ctx, a[0])
		if err == nil {
			fmt.Fprintf(stdout, "backup written to %s\n", a[0])
		}
	}
	var wrong *wrongServerError
	if isNotFound(err) && !errors.As(err, &wrong) {
		// Every admin path is a node's route: a 404 is most likely
		// another server's answer (central's), which alone reads like a
		// missing record.
		if _, herr := c.storeHealth(ctx); errors.As(herr, &wrong) {
			err = wrong.answer(err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline ctl %s: %v\n", rest[0], err)
		return exitError
	}
	return exitOK
}

// wrongServerError: the URL ctl was given answers, but is not the server
// the command talks to: central's admin listener given as --node answers
// /healthz too (and a health check passed), a node's admin listener given
// as --central answers 404 to everything.
type wrongServerError struct {
	URL, Want, Hint string
	Err             error // the answer that showed it
}

func (e *wrongServerError) Error() string {
	msg := fmt.Sprintf("%s is not %s (%s)", e.URL, e.Want, e.Hint)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *wrongServerError) Unwrap() error { return e.Err }

// answer is e with the command's own answer as its cause, rather than
// the probe's.
func (e *wrongServerError) answer(err error) *wrongServerError {
	e2 := *e
	e2.Err = err
	return &e2
}

// storeHealth asks /healthz, which a store node answers naming its
// store, healthy (200) or poisoned (503, an *httpError). Any other answer
// (central's admin listener names a leader instead; central's API has no
// /healthz) is a *wrongServerError.
func (c *adminClient) storeHealth(ctx context.Context) ([]byte, error) {
	b, err := c.call(ctx, "GET", "/healthz", nil)
	var he *httpError
	switch {
	case err == nil:
	case errors.As(err, &he):
		b = []byte(he.Body) // a node's 503 is JSON, not a problem
	default:
		return nil, err
	}
	var h struct {
		Store string `json:"store"`
	}
	if json.Unmarshal(b, &h) == nil && h.Store != "" {
		return b, err
	}
	if err == nil {
		err = fmt.Errorf("its /healthz answer names no store: %s", bytes.TrimSpace(b))
	}
	return nil, &wrongServerError{URL: c.base, Want: "a store node's admin listener",
		Hint: `--node takes the "admin" URL storeline node prints; central is ctl --central with its "api" URL`, Err: err}
}

// adminClient speaks to a node's admin listener.
type adminClient struct {
	base, token string
	timeout     time.Duration
}

func (c *adminClient) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return http.DefaultClient.Do(req)
}

// do sends a request and copies a 2xx answer to out, or returns the
// error answer.
func (c *adminClient) do(ctx context.Context, method, path string, body []byte, out io.Writer) error {
	b, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// call sends a request and returns a 2xx answer's body, or the error
// answer as an *httpError.
func (c *adminClient) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCtlAnswer+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, responseError(resp, b[:min(len(b), maxCtlAnswer)])
	}
	if len(b) > maxCtlAnswer {
		// Printed cut short, it would pass for the whole answer.
		return nil, fmt.Errorf("%s %s: the answer is longer than %d MiB: ask for less (a limit, a narrower filter)", method, path, maxCtlAnswer>>20)
	}
	return b, nil
}

// maxCtlAnswer bounds what ctl reads of an answer.
const maxCtlAnswer = 16 << 20

// httpError is an error answer. A problem+json body (the nodes' admin
// API, the tills' API, central) is shown as its detail and field; any
// other body as it came.
type httpError struct {
	Status string // "400 Bad Request"
	Code   int
	// Title, Detail and Field are the problem's; Body is the raw body of
	// an answer that is not a problem.
	Title, Detail, Field string
	Body                 string
}

func responseError(resp *http.Response, body []byte) *httpError {
	e := &httpError{Status: resp.Status, Code: resp.StatusCode}
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Field  string `json:"field"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && json.Unmarshal(body, &p) == nil {
		e.Title, e.Detail, e.Field = p.Title, p.Detail, p.Field
	} else {
		e.Body = strings.TrimSpace(string(body))
	}
	return e
}

func (e *httpError) Error() string {
	if e.Body != "" || (e.Detail == "" && e.Field == "" && e.Title == "") {
		return strings.TrimSpace(e.Status + ": " + e.Body)
	}
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if e.Field != "" {
		msg += " (field: " + e.Field + ")"
	}
	return e.Status + ": " + msg
}

// recordIndex matches the record an import error names ("records[3]").
var recordIndex = regexp.MustCompile(`records\[(\d+)\]`)

// shiftRecords renumbers the record an import batch's error names by the
// batch's offset in the file, so the error names the file's record.
func (e *httpError) shiftRecords(off int) {
	if off == 0 {
		return
	}
	shift := func(s string) string {
		return recordIndex.ReplaceAllStringFunc(s, func(m string) string {
			i, err := strconv.Atoi(recordIndex.FindStringSubmatch(m)[1])
			if err != nil {
				return m
			}
			return fmt.Sprintf("records[%d]", i+off)
		})
	}
	e.Field, e.Detail = shift(e.Field), shift(e.Detail)
}

// ctlImportBatch is the most records ctl import sends in one request: the
// ledger stores one request in one PutMaster call, which takes at most
// this many (the node refuses more, 413).
const ctlImportBatch = ledger.MaxMasterRecords

// ctlImport sends a master-data import file in batches of at most
// ctlImportBatch records, in the file's order, drawing progress on stderr
// and printing the totals on stdout: {"version":V,"count":N,"batches":B}.
// A batch the node finds too large in bytes (413) is split in two and
// sent again (the node stored none of it). Each batch is stored whole or
// not at all; when one fails, the batches before it are stored, and
// running the import again is harmless (it writes the same records).
func ctlImport(ctx context.Context, c *adminClient, path string, stdout, stderr io.Writer) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// The file is checked as the node checks a body: decoding it here
	// would keep the last of a key given twice, and the batches sent
	// would no longer show it.
	if err := node.CheckAdminBody(raw); err != nil {
		return fmt.Errorf("%s: %w (field %s)", path, err, storeline.FieldOf(err))
	}
	var imp node.MasterImport
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&imp); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: data after the JSON object", path)
	}
	total := len(imp.Records)
	var res struct {
		Version uint64 `json:"version"`
		Count   int    `json:"count"`
		Batches int    `json:"batches"`
	}
	start := time.Now()
	var send func(off, end int) error
	send = func(off, end int) error {
		body, err := json.Marshal(node.MasterImport{Records: imp.Records[off:end]})
		if err != nil {
			return err
		}
		b, err := c.call(ctx, "POST", "/admin/v1/master", body)
		var he *httpError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge && end-off > 1 {
			mid := off + (end-off)/2
			if err := send(off, mid); err != nil {
				return err
			}
			return send(mid, end)
		}
		if err != nil {
			if he != nil {
				he.shiftRecords(off)
			}
			if total > 0 {
				fmt.Fprintln(stderr)
			}
			if off == 0 {
				return err
			}
			return fmt.Errorf("records %d-%d of %d (the %d before are imported; importing the file again is harmless): %w", off+1, end, total, off, err)
		}
		var got struct {
			Version uint64 `json:"version"`
			Count   int    `json:"count"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			return fmt.Errorf("records %d-%d: answer %q: %w", off+1, end, b, err)
		}
		res.Version, res.Count, res.Batches = got.Version, res.Count+got.Count, res.Batches+1
		if total > 0 {
			fmt.Fprintf(stderr, "\r%s %6.1f%%  %d/%d records  %s", bar(end, total), 100*float64(end)/float64(total), end, total, time.Since(start).Round(time.Millisecond))
		}
		return nil
	}
	if total == 0 {
		if err := send(0, 0); err != nil {
			return err
		}
	}
	for off := 0; off < total; off += ctlImportBatch {
		if err := send(off, min(off+ctlImportBatch, total)); err != nil {
			return err
		}
	}
	if total > 0 {
		fmt.Fprintln(stderr)
	}
	out, _ := json.Marshal(res)
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// backup writes the stream to a temporary file beside path and renames it
// into place only when the whole stream arrived, so a cut connection never
// leaves a file that looks like a backup.
func (c *adminClient) backup(ctx context.Context, path string) error {
	// The file first: a stream the node sends to nowhere is a failed
	// backup in its log ("broken pipe").
	f, err := os.CreateTemp(filepath.Dir(path), ".backup-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot write a file in %s: %w", filepath.Dir(path), err)
	}
	defer os.Remove(f.Name())
	resp, err := c.request(ctx, "GET", "/admin/v1/backup", nil)
	if err != nil {
		f.Close()
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return responseError(resp, b)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("stream cut: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is: a power cut right
	// after "backup written" must not take the file's name away.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

const ctlUsage = `usage: storeline ctl --node URL [--token TOKEN] <command> [args]

The admin token is read from --token or STORELINE_ADMIN_TOKEN.

commands:
  health                       GET /healthz
  import FILE.json             import master data: {"records":[{"kind":"item","record":{...}}]}
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
		err = c.do(ctx, "GET", "/healthz", nil, stdout)
	case "conservation":
		err = c.do(ctx, "GET", "/admin/v1/conservation", nil, stdout)
	case "import":
		var b []byte
		if b, err = os.ReadFile(a[0]); err == nil {
			err = c.do(ctx, "POST", "/admin/v1/master", b, stdout)
		}
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
	if err != nil {
		fmt.Fprintf(stderr, "storeline ctl %s: %v\n", rest[0], err)
		return exitError
	}
	return exitOK
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
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = out.Write(b)
	return err
}

// backup writes the stream to a temporary file beside path and renames it
// into place only when the whole stream arrived, so a cut connection never
// leaves a file that looks like a backup.
func (c *adminClient) backup(ctx context.Context, path string) error {
	resp, err := c.request(ctx, "GET", "/admin/v1/backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
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
	return os.Rename(f.Name(), path)
}

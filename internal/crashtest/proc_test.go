package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/storeline/storeline/internal/proctest"
)

// child is one run of the node in a child process, with the addresses
// it bound.
type child struct {
	*proctest.Proc
	till, admin string
}

// startChild runs the node on dir and waits until it is serving.
func startChild(t *testing.T, dir string, run int) *child {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(dir), fmt.Sprintf("child-%03d.log", run))
	p := proctest.Start(t, fmt.Sprintf("child run %d", run), logPath, childEnv+"=1", dataEnv+"="+dir)
	if len(p.ReadyArgs) != 2 {
		t.Fatalf("child run %d: ready line %q, want the till and admin URLs", run, p.ReadyArgs)
	}
	return &child{Proc: p, till: p.ReadyArgs[0], admin: p.ReadyArgs[1]}
}

// adminDo calls the child's admin API and decodes a JSON answer into out
// (unless out is nil), returning the status.
func adminDo(ctx context.Context, c *child, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.admin+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// child is one run of the node in a child process.
type child struct {
	cmd         *exec.Cmd
	till, admin string
	logPath     string
	done        chan struct{} // closed when the process has exited
}

// startTimeout bounds a child's start, WAL replay included.
const startTimeout = 2 * time.Minute

// startChild runs the node on dir and waits until it is serving.
func startChild(t *testing.T, dir string, run int) *child {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(dir), fmt.Sprintf("child-%03d.log", run))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", dataEnv+"="+dir)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				ready <- sc.Text()
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.kill() })
	select {
	case line := <-ready:
		f := strings.Fields(line)
		c.till, c.admin = f[1], f[2]
		return c
	case <-c.done:
		t.Fatalf("child run %d exited before it was ready:\n%s", run, c.logTail())
	case <-time.After(startTimeout):
		t.Fatalf("child run %d not ready after %v:\n%s", run, startTimeout, c.logTail())
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		t.Fatalf("child did not stop on SIGTERM:\n%s", c.logTail())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("child exited %d after SIGTERM:\n%s", code, c.logTail())
	}
}

func (c *child) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
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

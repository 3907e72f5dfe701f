package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/node"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// runCmd runs the CLI to completion.
func runCmd(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

// nodeProc is `storeline node` running in a goroutine.
type nodeProc struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
	admin, till    string
}

func startNode(t *testing.T, getenv func(string) string, args ...string) *nodeProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &nodeProc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, append([]string{"node"}, args...), getenv, p.stdout, p.stderr) }()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, "node to print its addresses", 30*time.Second, func() bool {
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("node exited %d:\n%s", code, p.stderr.String())
		default:
		}
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "admin "); ok {
				p.admin = v
			}
			if v, ok := strings.CutPrefix(line, "till "); ok {
				p.till = v
			}
		}
		return p.admin != "" && p.till != ""
	})
	return p
}

func (p *nodeProc) stop(t *testing.T) int {
	t.Helper()
	if p.cancel == nil {
		return 0
	}
	p.cancel()
	p.cancel = nil
	select {
	case code := <-p.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not stop:\n%s", p.stderr.String())
	}
	return -1
}

const testToken = "test-admin-token-0123456789"

func TestVersionAndUsage(t *testing.T) {
	code, out, _ := runCmd(t, env(nil), "version")
	if code != 0 || !strings.HasPrefix(out, "storeline ") {
		t.Errorf("version = %d %q", code, out)
	}
	if code, _, errOut := runCmd(t, env(nil), "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command = %d %q", code, errOut)
	}
	if code, _, _ := runCmd(t, env(nil)); code != exitUsage {
		t.Errorf("no command = %d, want %d", code, exitUsage)
	}
}

// TestNodeConfigErrors: a bad config names every bad setting by its flag
// and exits 2.
func TestNodeConfigErrors(t *testing.T) {
	code, _, errOut := runCmd(t, env(nil), "node", "-store", "bad/id", "-till-addr", "nope", "-pin-attempts", "0")
	if code != exitUsage {
		t.Errorf("exit = %d, want %d", code, exitUsage)
	}
	for _, f := range []string{"\n  store: ", "\n  data: ", "\n  till-addr: ", "\n  admin-token: ", "\n  pin-attempts: "} {
		if !strings.Contains(errOut, f) {
			t.Errorf("error does not name %s:\n%s", f, errOut)
		}
	}
}

// TestConfigPrecedence: defaults < file < environment < flags.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "node.json")
	os.WriteFile(file, []byte(`{"store":"from-file","data":"/file","till-addr":":1111","admin-addr":"127.0.0.1:2222",
		"pin-attempts":7,"session-ttl":"1h","weighed-prefixes":["21","22"],"terminals":"T1=tokentokentoken1"}`), 0o644)
	getenv := env(map[string]string{"STORELINE_TILL_ADDR": ":3333", "STORELINE_ADMIN_TOKEN": testToken, "STORELINE_DATA": "/env"})
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, _, err := loadNodeConfig(fs, []string{"-config", file, "-data", "/flag"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	want := node.DefaultConfig()
	want.StoreID, want.DataDir, want.TillAddr, want.AdminAddr = "from-file", "/flag", ":3333", "127.0.0.1:2222"
	want.AdminToken, want.PINAttempts, want.SessionTTL = testToken, 7, time.Hour
	want.WeighedLayout.Prefixes = []string{"21", "22"}
	want.Terminals = []node.TerminalToken{{ID: "T1", Token: "tokentokentoken1"}}
	if cfg.String() != want.String() || cfg.AdminToken != want.AdminToken || cfg.Terminals[0] != want.Terminals[0] {
		t.Errorf("config =\n%s\nwant\n%s", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}

	os.WriteFile(file, []byte(`{"no-such-key": 1}`), 0o644)
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	if _, _, err := loadNodeConfig(fs, []string{"-config", file}, env(nil)); err == nil || !strings.Contains(err.Error(), "no-such-key") {
		t.Errorf("unknown key: err = %v", err)
	}
}

// TestEndToEnd runs a node and drives it with ctl: health, master import,
// terminal, seller, conservation, backup; stops it; restores the backup
// into a new directory and starts a node on it.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"STORELINE_ADMIN_TOKEN": testToken})
	p := startNode(t, getenv, "-store", "shop-1", "-data", filepath.Join(dir, "data"), "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")

	ctl := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCmd(t, getenv, append([]string{"ctl", "--node", p.admin}, args...)...)
		if code != 0 {
			t.Fatalf("ctl %v = %d: %s", args, code, errOut)
		}
		return out
	}
	if out := ctl("health"); !strings.Contains(out, `"ok"`) {
		t.Errorf("health = %q", out)
	}

	// Master data: the sample chain, written as an import file.
	chain := sample.New("shop-1")
	imp := node.MasterImport{}
	for _, r := range chain.Records(nil) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		imp.Records = append(imp.Records, node.MasterEntry{Kind: r.MasterKind(), Record: b})
	}
	impFile := filepath.Join(dir, "master.json")
	b, _ := json.Marshal(imp)
	os.WriteFile(impFile, b, 0o644)
	var got struct{ Version, Count int }
	if err := json.Unmarshal([]byte(ctl("import", impFile)), &got); err != nil || got.Count != len(imp.Records) || got.Version == 0 {
		t.Errorf("import = %+v, %v; want count %d", got, err, len(imp.Records))
	}

	var term node.TerminalResponse
	if err := json.Unmarshal([]byte(ctl("terminal", "till-9", "Till nine")), &term); err != nil || term.ID != "till-9" || len(term.Token) < node.MinTokenLen {
		t.Errorf("terminal = %+v, %v", term, err)
	}
	ctl("seller", "cashier-9", "Nina", "cashier", "4321")
	if code, _, errOut := runCmd(t, getenv, "ctl", "--node", p.admin, "seller", "x", "X", "cashier", "12"); code != exitError || !strings.Contains(errOut, "pin") {
		t.Errorf("seller with a 2-digit PIN = %d %q, want an error naming pin", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "ctl", "--node", p.admin, "conservation"); code != exitError || !strings.Contains(errOut, "401") {
		t.Errorf("ctl without a token = %d %q, want 401", code, errOut)
	}
	if out := ctl("conservation"); !strings.Contains(out, `"ok":true`) {
		t.Errorf("conservation = %q", out)
	}
	backup := filepath.Join(dir, "shop-1.backup")
	ctl("backup", backup)
	if code := p.stop(t); code != 0 {
		t.Fatalf("node exit = %d:\n%s", code, p.stderr.String())
	}

	restored := filepath.Join(dir, "restored")
	// What a restore killed midway leaves (its staging directory) does not
	// stand in the way of the retry.
	if err := os.MkdirAll(filepath.Join(restored, "badger.restoring"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, env(nil), "restore", "-data", restored, backup); code != 0 {
		t.Fatalf("restore = %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, env(nil), "restore", "-data", restored, backup); code != exitError || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore into a non-empty dir = %d %q", code, errOut)
	}
	p2 := startNode(t, getenv, "-store", "shop-1", "-data", restored, "-till-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	var h struct {
		MasterVersion int `json:"master_version"`
	}
	code, out, errOut := runCmd(t, getenv, "ctl", "--node", p2.admin, "health")
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || h.MasterVersion < got.Version {
		t.Errorf("restored health = %d %q %q, want master_version >= %d", code, out, errOut, got.Version)
	}
	if code := p2.stop(t); code != 0 {
		t.Errorf("restored node exit = %d", code)
	}
}

// runCentral runs `storeline central` on dataDir (a one-node cluster on
// loopback, short Raft timers) until stop is called; it waits for the node
// to lead and returns its API address and the admin key it printed.
func runCentral(t *testing.T, dataDir string) (api, key string, stop func()) {
	t.Helper()
	api, key, _, stop = runCentralEnv(t, dataDir, env(nil))
	return api, key, stop
}

// runCentralEnv is runCentral with an environment (STORELINE_SHOP_TOKENS),
// also returning the URL of central's replication listener.
func runCentralEnv(t *testing.T, dataDir string, getenv func(string) string) (api, key, repl string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"central", "-data", dataDir, "-heartbeat", "100ms", "-election", "100ms", "-lease", "50ms"}, getenv, out, errb)
	}()
	stop = func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("central exited %d:\n%s", code, errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("central did not stop")
		}
	}
	waitFor(t, "central to print its addresses", 30*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("central exited %d:\n%s", code, errb.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "api "); ok {
				api = v
			}
			if v, ok := strings.CutPrefix(line, "admin-key "); ok {
				key = v
			}
			if v, ok := strings.CutPrefix(line, "replication "); ok {
				repl = v
			}
		}
		return api != "" && key != "" && repl != ""
	})
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	waitFor(t, "a leader", 10*time.Second, func() bool {
		code, stdout, _ := runCmd(t, e, "ctl", "--central", api, "cluster")
		return code == 0 && strings.Contains(stdout, `"leader":"central-1"`)
	})
	return api, key, repl, stop
}

package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemoCommand runs `storeline demo` briefly with a tiny chain and no
// scripted moments: it prints where everything listens, the tills' summary
// and a passing closing check, and exits 0. (The chain run that the
// metrics and Prometheus tests share is internal/chain's TestChain.)
func TestDemoCommand(t *testing.T) {
	code, out, errOut := runCmd(t, env(nil), "demo", "-duration", "2s", "-items", "60", "-customers", "20", "-tills", "1", "-no-moments",
		"-data", filepath.Join(t.TempDir(), "chain"))
	if code != exitOK {
		t.Fatalf("demo = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := len(regexp.MustCompile(`(?m)^metrics\s+http://127\.0\.0\.1:\d+/metrics`).FindAllString(out, -1)); n != 5 {
		t.Errorf("demo printed %d metrics addresses, want 5 (3 central nodes, 2 shops)", n)
	}
	for _, want := range []string{"head office", "tills' API", "till simulator:", "closing check:", "PASS: stock and receipts agree", "3 nodes each hold"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoFlags: bad flags are usage errors naming the problem, before
// anything starts.
func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "-items", "0"},
		{"demo", "-tills", "0"},
		{"demo", "-duration", "-1s"},
		{"demo", "extra"},
		{"demo", "-data", t.TempDir() + "/.."},
	} {
		code, _, errOut := runCmd(t, env(nil), args...)
		if code != exitUsage || !strings.Contains(errOut, "storeline demo") {
			t.Errorf("%v = %d %q, want %d with a message", args, code, errOut, exitUsage)
		}
	}
	if code, _, errOut := runCmd(t, env(nil), "demo", "-h"); code != exitOK || !strings.Contains(errOut, "-duration") {
		t.Errorf("demo -h = %d %q", code, errOut)
	}
}

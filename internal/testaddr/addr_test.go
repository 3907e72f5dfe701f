package testaddr

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const childEnv = "TESTADDR_CHILD_DIR"

// TestMain lets the test binary act as a second test process: it claims
// ports from the same base as its parent and holds them until its stdin
// closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		lockDir = dir
		next.Store(20000)
		for range 5 {
			os.Stdout.WriteString(Stable(false) + "\n")
		}
		os.Stdout.WriteString("held\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Two processes starting from the same port must not be handed the same
// addresses: each checked port is free until its owner binds it, so the
// bind check alone gives both the same ones.
func TestProcessesStartingAtTheSameBaseGetDisjointPorts(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	childPorts := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "held" {
		childPorts[sc.Text()] = true
	}
	if len(childPorts) != 5 {
		t.Fatalf("child handed out %d addresses, want 5 (scan: %v)", len(childPorts), sc.Err())
	}

	saved, savedDir := next.Load(), lockDir
	defer func() { next.Store(saved); lockDir = savedDir }()
	lockDir = dir
	next.Store(20000)
	for range 5 {
		a := Stable(false)
		if childPorts[a] {
			t.Fatalf("%s handed to both processes", a)
		}
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("address %q is not loopback", a)
		}
	}
}

// Within one process every call gets a new port.
func TestStableNeverRepeatsWithinAProcess(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := Stable(true)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}

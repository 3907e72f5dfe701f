// Package proctest runs a test binary's own code in child processes for
// the tests that kill real processes (internal/crashtest,
// internal/chaostest): it re-executes the test binary with an environment
// that selects the child's role, waits for the child's "ready" line on its
// standard output, keeps its standard error in a log file, and stops it
// with SIGKILL or SIGTERM. It also holds the small helpers those tests
// share: free loopback addresses and polling a condition with a deadline.
//
// The child side is the test's TestMain: when its environment says so it
// runs the role, calls Ready once it serves, and exits when it is killed
// or gets SIGTERM.
package proctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds a child's start, WAL and Raft replay included.
const StartTimeout = 2 * time.Minute

// Proc is one run of a child process.
type Proc struct {
	// Name is what the failure messages call the child.
	Name string
	// ReadyArgs are the words after "ready" on the child's ready line (a
	// child that binds port 0 reports its addresses there).
	ReadyArgs []string
	// LogPath holds the child's standard error.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Start re-executes the test binary with env added to this process's
// environment (so it runs no tests, only what TestMain does for env),
// sends its standard error to logPath, and waits until it prints its
// ready line. The child is killed when the test ends if it is still up.
func Start(t testing.TB, name, logPath string, env ...string) *Proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == "ready" {
				select {
				case ready <- f[1:]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	select {
	case p.ReadyArgs = <-ready:
		return p
	case <-p.done:
		t.Fatalf("%s exited before it was ready:\n%s", name, p.LogTail())
	case <-time.After(StartTimeout):
		t.Fatalf("%s not ready after %v:\n%s", name, StartTimeout, p.LogTail())
	}
	return nil
}

// Ready is the child's side of Start: it prints the ready line, with args
// (no spaces in them) after the word.
func Ready(w io.Writer, args ...string) {
	fmt.Fprintln(w, strings.Join(append([]string{"ready"}, args...), " "))
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for the process to exit, failing the test
// unless it exits 0 within a minute.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.Name, p.LogTail())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM:\n%s", p.Name, code, p.LogTail())
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// LogTail is the last 4 kB of the child's standard error.
func (p *Proc) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// FreeAddrs returns n loopback addresses whose TCP and UDP ports were
// free a moment ago (memberlist binds both on one port). A child that is
// restarted must bind the same address again, so it cannot use port 0.
// The ports are drawn below the kernel's ephemeral range: a port from it
// could be taken, between this check and the child's bind, by any
// outgoing connection on the machine (the other test packages running
// alongside make thousands) or by another test's listener on port 0.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	var out []string
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no free port among %d tries in [%d, %d)", tries, lo, hi)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		held = append(held, ln)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue // UDP side taken: draw another port
		}
		held = append(held, pc)
		out = append(out, addr)
	}
	return out
}

// ephemeralLow is the lowest port the kernel hands to port-0 binds and
// outgoing connections (32768 where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 10000+1000 {
		return 32768
	}
	return low
}

// ErrNotYet marks a condition not met yet.
var ErrNotYet = errors.New("not yet")

// WaitFor polls cond every 10 ms until it returns nil, or fails the test
// after d with cond's last error.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

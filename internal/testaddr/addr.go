// Package testaddr hands tests loopback addresses that stay free across
// a restart. A node stopped and started again on the port it had must
// find it free; a port the kernel gave out for ":0" is in its ephemeral
// range, where any process's outgoing connection may take it in between
// ("bind: address already in use"). These come from below that range.
//
// A port handed out is reserved for the life of the process: checking
// that nobody listens on it is not enough, since `go test -p 3` runs
// several test binaries at once and another one could check the same
// free port before this one binds it. Each port is claimed with an
// exclusive lock on a file named after it in a directory shared by all
// processes (claim), which the kernel drops when the process ends, even
// by SIGKILL.
package testaddr

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// next is the last port tried, from a base spread by process so that
// test processes running at once rarely contend for the same claims.
var next atomic.Int32

func init() { next.Store(int32(10000 + os.Getpid()%100*200)) }

const (
	lowPort  = 10000
	highPort = 32000 // below Linux's ephemeral range (32768 on)
)

var (
	claimsMu sync.Mutex
	claims   []*os.File // held open: closing one would drop its lock
)

// lockDir is where the claims' files live; a var so a test can give
// processes a directory of their own.
var lockDir = filepath.Join(os.TempDir(), "storeline-testaddr")

// Stable returns a loopback address (127.0.0.1:port, port in
// 10000–31999, below Linux's ephemeral range) no one listens on and no
// other test process was given: TCP, and UDP too when udp (memberlist
// binds both on one port).
func Stable(udp bool) string {
	for {
		p := next.Add(1)
		if p >= highPort {
			next.CompareAndSwap(p, lowPort)
			continue
		}
		if !claim(p) {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // keep the claim: whoever listens there keeps it busy
		}
		ln.Close()
		if udp {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			pc.Close()
		}
		return addr
	}
}

// claim takes port p for this process for the rest of its life, or
// reports that another process holds it.
func claim(p int32) bool {
	if err := os.MkdirAll(lockDir, 0o777); err != nil {
		return true // no shared directory: fall back to the bind check alone
	}
	f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprint(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if !tryLock(f) {
		f.Close()
		return false
	}
	claimsMu.Lock()
	claims = append(claims, f)
	claimsMu.Unlock()
	return true
}

// Package testaddr hands tests loopback addresses that stay free across
// a restart. A node stopped and started again on the port it had must
// find it free; a port the kernel gave out for ":0" is in its ephemeral
// range, where any process's outgoing connection may take it in between
// ("bind: address already in use"). These come from below that range.
package testaddr

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

// next is the last port tried, from a base spread by process so that
// test processes running at once rarely try the same ones.
var next atomic.Int32

func init() { next.Store(int32(10000 + os.Getpid()%100*200)) }

// Stable returns a loopback address (127.0.0.1:port, port in
// 10000–31999, below Linux's ephemeral range) no one listens on: TCP, and
// UDP too when udp (memberlist binds both on one port).
func Stable(udp bool) string {
	for {
		p := next.Add(1)
		if p >= 32000 {
			next.CompareAndSwap(p, 10000)
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
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

package central

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is Raft's TCP stream layer with a switch that cuts the node
// off: while cut, dials fail, accepted connections are closed at once and
// open ones are closed. Tests use it to partition a node; an operator could
// use it to fence one.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr

	mu    sync.Mutex
	cut   bool
	conns map[*trackedConn]struct{}
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, advertise string) (*streamLayer, error) {
	s := &streamLayer{ln: ln, advertise: ln.Addr(), conns: map[*trackedConn]struct{}{}}
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			return nil, err
		}
		s.advertise = a
	}
	return s, nil
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

func (s *streamLayer) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return nil, false
	}
	t := &trackedConn{Conn: c, s: s}
	s.conns[t] = struct{}{}
	return t, true
}

var errCut = errors.New("central: raft transport cut off")

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut {
		return nil, errCut
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	t, ok := s.track(c)
	if !ok {
		c.Close()
		return nil, errCut
	}
	return t, nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		if t, ok := s.track(c); ok {
			return t, nil
		}
		c.Close()
	}
}

// Close stops accepting and closes every open connection, dialed or
// accepted: raft's NetworkTransport.Close closes neither its pooled
// connections nor those it serves, whose goroutines would otherwise
// block in a read for as long as the peer keeps its end open.
func (s *streamLayer) Close() error {
	s.setCut(true)
	return s.ln.Close()
}
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// setCut cuts the node off (true) or reconnects it (false).
func (s *streamLayer) setCut(cut bool) {
	s.mu.Lock()
	s.cut = cut
	var open []*trackedConn
	if cut {
		for c := range s.conns {
			open = append(open, c)
		}
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// unpipelined is the Raft transport with pipelined replication turned off.
// In hashicorp/raft v1.8 a pipeline can deadlock when a follower answers
// Success=false: the response decoder exits, the sender parks on the full
// in-flight channel, and the leader never replicates to that follower again
// nor finishes Shutdown (a central test hung in Close on exactly this stack).
// With batched entries pipelining buys little (hashicorp/raft#541), so every
// AppendEntries goes synchronously, under the transport's I/O deadline.
type unpipelined struct{ *raft.NetworkTransport }

func (unpipelined) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

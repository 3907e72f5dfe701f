package central

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is Raft's TCP stream layer with a switch that cuts the node
// off: while cut, dials fail, accepted connections are closed at once and
// open ones are closed. Tests use it to partition a node; an operator could
// use it to fence one.
//
// Every connection is authenticated by the cluster secret (requireSecret):
// the acceptor sends a random challenge, the dialer answers its HMAC. A
// peer that could otherwise reach the port would play a leader of a
// higher term and write anything into the log (AppendEntries), or replace
// the state (InstallSnapshot). A layer without a secret takes no peers.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte // HMAC key from the cluster secret; nil: no peers

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

var (
	errCut      = errors.New("central: raft transport cut off")
	errNoSecret = errors.New("central: raft peers need the cluster secret")
	errPeerAuth = errors.New("central: raft peer failed the cluster-secret challenge")
)

const (
	raftAuthContext = "storeline raft peer v1"
	raftChallenge   = 32
	raftAuthTimeout = 10 * time.Second
)

// requireSecret makes the layer take and dial only peers that hold secret.
func (s *streamLayer) requireSecret(secret string) {
	if secret == "" {
		s.key = nil
		return
	}
	k := sha256.Sum256([]byte(secret))
	s.key = k[:]
}

func (s *streamLayer) answer(challenge []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(raftAuthContext))
	m.Write(challenge)
	return m.Sum(nil)
}

// prove answers the acceptor's challenge on a dialed connection.
func (s *streamLayer) prove(c net.Conn, timeout time.Duration) error {
	if timeout <= 0 || timeout > raftAuthTimeout {
		timeout = raftAuthTimeout
	}
	c.SetDeadline(time.Now().Add(timeout))
	ch := make([]byte, raftChallenge)
	if _, err := io.ReadFull(c, ch); err != nil {
		return err
	}
	if _, err := c.Write(s.answer(ch)); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// challenge checks an accepted connection's peer.
func (s *streamLayer) challenge(c net.Conn) error {
	c.SetDeadline(time.Now().Add(raftAuthTimeout))
	ch := make([]byte, raftChallenge)
	if _, err := rand.Read(ch); err != nil {
		return err
	}
	if _, err := c.Write(ch); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !hmac.Equal(got, s.answer(ch)) {
		return errPeerAuth
	}
	return c.SetDeadline(time.Time{})
}

// checkedConn is an accepted connection whose peer is challenged before
// its first byte is read or written. Lazily, in the goroutine raft
// serves the connection in, so a slow peer does not hold up Accept.
type checkedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
	err  error
}

func (c *checkedConn) check() error {
	c.once.Do(func() {
		if c.err = c.s.challenge(c.Conn); c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *checkedConn) Read(p []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *checkedConn) Write(p []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut {
		return nil, errCut
	}
	if s.key == nil {
		return nil, errNoSecret
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if err := s.prove(c, timeout); err != nil {
		c.Close()
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
		if s.key == nil {
			c.Close()
			continue
		}
		if t, ok := s.track(c); ok {
			return &checkedConn{Conn: t, s: s}, nil
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

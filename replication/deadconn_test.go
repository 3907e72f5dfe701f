package replication_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// freezingProxy forwards TCP connections to an upstream until freeze: the
// connections open then stop carrying bytes either way and stay open, as
// a NAT that forgot its mapping or a link that went dark leaves them. New
// connections are forwarded again.
type freezingProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	live  []chan struct{} // closed by freeze, one per connection
	conns []net.Conn
}

func newFreezingProxy(t *testing.T, upstream string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, upstream: upstream}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *freezingProxy) serve() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		frozen := make(chan struct{})
		p.mu.Lock()
		p.live = append(p.live, frozen)
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		go pipeUntil(up, down, frozen)
		go pipeUntil(down, up, frozen)
	}
}

// pipeUntil copies src to dst until frozen is closed; bytes read after
// that are dropped, and the connections stay open.
func pipeUntil(dst io.Writer, src io.Reader, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
		default:
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.live {
		close(c)
	}
	p.live = nil
}

// TestDeadConnectionIsLeft: a shop's connection to central that goes
// dark without a FIN or RST (a NAT or firewall dropping its state) is
// noticed and left, and the shop reconnects. HTTP/2 multiplexes every
// request over one connection, and a request timing out does not close
// it: without a health check, the shop would keep sending into the dead
// connection until the kernel gives up on it (about 15 minutes of
// retransmissions) while its receipts wait.
func TestDeadConnectionIsLeft(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(3)...)
	pki := newPKI(t)
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sawHTTP2 atomic.Bool
	h := s.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			sawHTTP2.Store(true)
		}
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, "central-1", true)},
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	defer func() {
		// A handler may still wait for a request body the frozen proxy
		// holds back (the proxy's cleanup runs after this): Close would
		// wait for it forever, so its connections are cut first.
		srv.CloseClientConnections()
		srv.Close()
	}()
	proxy := newFreezingProxy(t, srv.Listener.Addr().String())

	l, _ := shopLedger(t, 0)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central = shop, []string{"https://" + proxy.ln.Addr().String()}
	cc.TLS = &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.leaf(t, "s1", false)}, MinVersion: tls.VersionTLS13}
	cc.PushInterval, cc.PollWait, cc.BackoffMin, cc.BackoffMax = 10*time.Millisecond, 200*time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	cc.RequestTimeout = 500 * time.Millisecond
	cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	defer cl.Stop()
	sell(t, l, 5)
	waitFor(t, "the first pushes", 10*time.Second, func() bool {
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 5}
	})
	if !sawHTTP2.Load() {
		t.Fatal("the client did not speak HTTP/2 to central: this test is about HTTP/2's shared connection")
	}

	proxy.freeze()
	sell(t, l, 5)
	// A health check noticing the dead connection within a few request
	// timeouts; without one the shop stays on it for many minutes.
	waitFor(t, "the pushes after the connection went dark", 30*time.Second, func() bool {
		return cl.Status().Acked == replication.Position{Epoch: 1, Seq: 10}
	})
}

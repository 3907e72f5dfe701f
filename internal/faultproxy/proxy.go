// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and a server on loopback: it can cut the link (sever
// every connection and refuse new ones), delay what it forwards, sever a
// connection after some bytes (mid-request or mid-answer), and send every
// byte the client sends twice, over a second connection to the server
// whose answers are thrown away (so each request arrives twice, the copy
// possibly later than the requests after it).
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from its own loopback address to Target.
type Proxy struct {
	target string
	ln     net.Listener

	mu         sync.Mutex
	conns      map[net.Conn]struct{}
	cut        bool
	delay      time.Duration
	severAfter int64
	dup        bool
	dupLag     time.Duration

	// Accepted counts connections accepted; Severed connections cut by
	// SeverAfter or Cut; Duplicated bytes sent twice.
	Accepted, Severed, Duplicated atomic.Int64

	wg sync.WaitGroup
}

// New listens on 127.0.0.1 with an ephemeral port and forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Cut severs every connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
		p.Severed.Add(1)
	}
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// SetDelay delays every chunk forwarded, each way, by d.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// SeverAfter makes each new connection close after n bytes forwarded in
// total, both ways (0 turns it off): a request or an answer cut midway.
func (p *Proxy) SeverAfter(n int64) {
	p.mu.Lock()
	p.severAfter = n
	p.mu.Unlock()
}

// Duplicate makes each new connection also copy what the client sends to a
// second connection to the target, lag later, whose answers are dropped.
func (p *Proxy) Duplicate(on bool, lag time.Duration) {
	p.mu.Lock()
	p.dup, p.dupLag = on, lag
	p.mu.Unlock()
}

// Close stops the proxy and severs everything.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.Accepted.Add(1)
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	defer server.Close()

	p.mu.Lock()
	delay, budget, dup, lag := p.delay, p.severAfter, p.dup, p.dupLag
	p.mu.Unlock()
	var left *atomic.Int64
	if budget > 0 {
		left = new(atomic.Int64)
		left.Store(budget)
	}
	var shadow chan []byte
	if dup {
		shadow = make(chan []byte, 1024)
		p.wg.Add(1)
		go p.shadow(shadow, lag)
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client, delay, left, shadow); done <- struct{}{} }()
	go func() { p.pipe(client, server, delay, left, nil); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	if shadow != nil {
		close(shadow)
	}
}

// pipe copies src to dst until either fails or the byte budget runs out.
func (p *Proxy) pipe(dst, src net.Conn, delay time.Duration, left *atomic.Int64, shadow chan []byte) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if left != nil {
				rest := left.Add(-int64(n))
				if rest < 0 {
					keep := int64(n) + rest
					if keep > 0 {
						_, _ = dst.Write(chunk[:keep])
					}
					p.Severed.Add(1)
					return
				}
			}
			if delay > 0 {
				time.Sleep(delay) // the fault being injected, not synchronisation
			}
			if shadow != nil {
				select {
				case shadow <- append([]byte(nil), chunk...):
					p.Duplicated.Add(int64(n))
				default:
				}
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// shadow sends a copy of the client's bytes to the target, lag later,
// and drains the answers.
func (p *Proxy) shadow(in chan []byte, lag time.Duration) {
	defer p.wg.Done()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for chunk := range in {
		if lag > 0 {
			time.Sleep(lag) // the fault being injected
		}
		if conn == nil {
			c, err := net.Dial("tcp", p.target)
			if err != nil {
				continue
			}
			if !p.track(c) {
				c.Close()
				continue
			}
			conn = c
			go func() {
				_, _ = io.Copy(io.Discard, c)
				p.untrack(c)
			}()
		}
		if _, err := conn.Write(chunk); err != nil && !errors.Is(err, net.ErrClosed) {
			conn.Close()
			conn = nil
		}
	}
}

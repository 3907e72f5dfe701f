package simtest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// reorderer is the part of a shop's link to central that reorders
// messages: every request the shop sends to any central node (pushes,
// pulls, loyalty calls) passes through it, over HTTP, before the node's
// fault proxy. Armed by the schedule, it holds the next request and sends
// it on only once a drawn number of later requests from the same shop
// have been answered by central, so central sees it after them. What the
// shop sees is drawn too: either it waits for the late answer, or its
// answer is lost at once (the connection dropped, as a failed link would
// drop it) and the shop moves on (retries, fails over to another central
// node, pushes what follows) while the old request is still on its way.
// faultproxy's duplicate sends a late copy besides the original; this
// sends the original itself late. Healing sends whatever is still held.
type reorderer struct {
	mu     sync.Mutex
	armed  *holdPlan // the next request is held per this plan, if set
	held   []*heldReq
	passed int // requests from the shop central answered so far
	closed bool
	links  []*reorderLink
	wg     sync.WaitGroup
	// late sends held requests, each on a connection of its own: a
	// message sent late travels apart from the shop's connections.
	late *http.Client
	// counts are the released requests by outcome (FaultReorder: after
	// later ones), read once the run is over.
	counts map[string]int
}

// holdPlan is what the schedule drew for the next held request.
type holdPlan struct {
	after int  // later requests central must answer first
	lose  bool // drop the shop's connection at once (else it waits)
	path  string
}

type heldReq struct {
	link    *reorderLink
	method  string
	path    string
	header  http.Header
	body    []byte
	release int // passed count at which it goes
	passed  int // passed count when it was held
	done    chan struct{}
	status  int
	answer  []byte
	ansHead http.Header
	err     error
	lose    bool
}

// reorderLink is the reorderer's listener for one central node: the shop
// is configured with its URL, and it forwards to target (the fault
// proxy's URL).
type reorderLink struct {
	r      *reorderer
	target string
	ln     net.Listener
	srv    *http.Server
}

// maxHeldBody bounds a request body the reorderer reads: a push batch is
// at most the shop's MaxBatchBytes (256 KiB in the simulation).
const maxHeldBody = 4 << 20

func newReorderer() *reorderer {
	return &reorderer{
		late:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		counts: map[string]int{},
	}
}

// upstreamKey carries, in a shop connection's context, the transport
// that forwards its requests: one connection onward per connection from
// the shop, so the fault proxy's per-connection faults (severed after n
// bytes, duplicated) hit the shop's connections as they did without the
// reorderer, and a connection the proxy severs fails the shop's.
type upstreamKey struct{}

// link starts a listener forwarding to target.
func (r *reorderer) link(target string) (*reorderLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &reorderLink{r: r, target: target, ln: ln}
	var trs sync.Map // net.Conn → *http.Transport
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}
			trs.Store(c, tr)
			return context.WithValue(ctx, upstreamKey{}, tr)
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				if tr, ok := trs.LoadAndDelete(c); ok {
					tr.(*http.Transport).CloseIdleConnections()
				}
			}
		}}
	r.mu.Lock()
	r.links = append(r.links, l)
	r.mu.Unlock()
	r.wg.Go(func() { _ = l.srv.Serve(ln) })
	return l, nil
}

func (l *reorderLink) URL() string { return "http://" + l.ln.Addr().String() }

// arm makes the reorderer hold the next request whose path has the
// prefix path ("" any).
func (r *reorderer) arm(p holdPlan) {
	r.mu.Lock()
	if r.armed != nil {
		r.counts[FaultHoldUnused]++
	}
	r.armed = &p
	r.mu.Unlock()
}

func (l *reorderLink) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	r := l.r
	body, err := io.ReadAll(io.LimitReader(q.Body, maxHeldBody))
	if err != nil {
		drop(w)
		return
	}
	r.mu.Lock()
	if p := r.armed; p != nil && !r.closed && strings.HasPrefix(q.URL.Path, p.path) {
		r.armed = nil
		h := &heldReq{link: l, method: q.Method, path: q.URL.RequestURI(), header: q.Header.Clone(), body: body,
			release: r.passed + p.after, passed: r.passed, done: make(chan struct{}), lose: p.lose}
		r.held = append(r.held, h)
		r.mu.Unlock()
		if h.lose {
			// The answer is lost: the shop sees its connection drop now,
			// and central sees the request later.
			drop(w)
			return
		}
		select {
		case <-h.done:
			writeAnswer(w, h.status, h.ansHead, h.answer, h.err)
		case <-q.Context().Done():
			// The shop gave up waiting; the request still goes later.
		}
		return
	}
	r.mu.Unlock()
	hc := &http.Client{Transport: q.Context().Value(upstreamKey{}).(*http.Transport)}
	st, head, ans, err := l.forward(q.Context(), hc, q.Method, q.URL.RequestURI(), q.Header, body)
	writeAnswer(w, st, head, ans, err)
	if err == nil {
		r.answered()
	}
}

func writeAnswer(w http.ResponseWriter, st int, head http.Header, ans []byte, err error) {
	if err != nil {
		drop(w) // as the fault proxy behind failed: no answer at all
		return
	}
	for k, v := range head {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" {
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(st)
	_, _ = w.Write(ans)
}

func (l *reorderLink) forward(ctx context.Context, hc *http.Client, method, uri string, header http.Header, body []byte) (int, http.Header, []byte, error) {
	q, err := http.NewRequestWithContext(ctx, method, l.target+uri, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		if k == "Connection" || k == "Content-Length" {
			continue
		}
		q.Header[k] = v
	}
	resp, err := hc.Do(q)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, ans, err
}

// answered counts a request central answered and sends on, in the order
// they were held, the held requests whose turn has come: after the
// answer, so central has seen the later request first.
func (r *reorderer) answered() {
	r.mu.Lock()
	r.passed++
	if r.closed {
		r.mu.Unlock()
		return // close sends what is held
	}
	var due []*heldReq
	keep := r.held[:0]
	for _, h := range r.held {
		if r.passed >= h.release {
			due = append(due, h)
		} else {
			keep = append(keep, h)
		}
	}
	r.held = keep
	r.mu.Unlock()
	for _, h := range due {
		r.wg.Go(func() { r.send(h) })
	}
}

// send forwards a held request now and hands its answer to the shop if it
// still waits.
func (r *reorderer) send(h *heldReq) {
	r.mu.Lock()
	later := r.passed - h.passed
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.status, h.ansHead, h.answer, h.err = h.link.forward(ctx, r.late, h.method, h.path, h.header, h.body)
	kind := FaultReorder
	switch {
	case h.err != nil:
		kind = FaultReorderLost // the link was cut meanwhile: a lost request
	case later == 0:
		kind = FaultReorderInOrder // released at healing, nothing passed it
	}
	r.mu.Lock()
	r.counts[kind]++
	r.mu.Unlock()
	close(h.done)
}

// stats adds the released requests by outcome to faults.
func (r *reorderer) stats(faults map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.counts {
		faults[k] += v
	}
}

// release sends every held request now (healing: nothing stays held past
// the schedule), in the order they were held.
func (r *reorderer) release() {
	r.mu.Lock()
	due := r.held
	if r.armed != nil {
		r.counts[FaultHoldUnused]++
	}
	r.held, r.armed = nil, nil
	r.mu.Unlock()
	for _, h := range due {
		r.send(h)
	}
}

// close releases what is held and stops the listeners.
func (r *reorderer) close() {
	r.mu.Lock()
	r.closed = true
	links := r.links
	r.mu.Unlock()
	r.release()
	for _, l := range links {
		_ = l.srv.Close()
	}
	r.wg.Wait()
}

// drop closes the shop's connection without an answer: what the shop sees
// of a link that failed (a 502 would tell it central was reachable).
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	http.Error(w, "simtest: link failed", http.StatusBadGateway)
}

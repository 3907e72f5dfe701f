package replication

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
)

// Backend is what the replication handlers need from central. Central's
// cluster implements it (a follower forwards pushes to the leader); tests
// use a reference backend over a ledger.
type Backend interface {
	// Push ingests a batch the server has validated: every event is the
	// caller's, of b.Epoch, dense and in order, of kinds this build
	// knows. It calls Ingest inside its own
	// transaction. If Push returns an error the outcome is unknown;
	// resending the batch is safe, because Ingest skips what it has.
	Push(ctx context.Context, b Batch) (PushResult, error)
	// Pull returns the next page for q (at most q.MaxItems items); an
	// empty page (no items, no resync) means nothing is new.
	Pull(ctx context.Context, q PullQuery) (Page, error)
	// Wait returns when the store may have changes after cursor, or when
	// ctx ends (returning ctx.Err()).
	Wait(ctx context.Context, store storeline.StoreID, cursor uint64) error
}

// PushResult is a backend's answer to a push.
type PushResult struct {
	IngestResult
	// Marks holds every epoch's mark of the store.
	Marks []Position
}

// PullQuery is a validated pull.
type PullQuery struct {
	Store    storeline.StoreID
	Cursor   uint64
	Epoch    uint64
	Own      []Position
	Snapshot *SnapshotPos
	MaxItems int
	// Incarnation is the shop's: central's incarnation its cursor
	// belongs to ("" unknown). A backend that knows its own answers a
	// different one with a resync from scratch.
	Incarnation string
}

// Page is one page of changes for a store.
type Page struct {
	Cursor     uint64
	More       bool
	Changes    []Change
	Events     []storeline.Event
	Rejections []Rejection
	Resync     *Resync
	// Incarnation is the backend's ("" if it has none yet); Marks the
	// store's marks in the state the page was read from, sent only with
	// an incarnation (see PullResponse).
	Incarnation string
	Marks       []Position
}

func (p *Page) empty() bool {
	return p.Resync == nil && len(p.Changes) == 0 && len(p.Events) == 0 && len(p.Rejections) == 0
}

// ServerConfig configures the handlers.
type ServerConfig struct {
	Backend Backend
	// Tokens maps a shop's bearer token to its store (tests, and setups
	// without client certificates). Secret: only hashes are kept.
	Tokens map[string]storeline.StoreID
	// MaxRequestBytes bounds a request body (413 beyond).
	MaxRequestBytes int64
	// MaxWait caps a pull's long poll, whatever the shop asks.
	MaxWait time.Duration
	// MaxPageItems caps a page's items, whatever the shop asks.
	MaxPageItems int
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
}

// DefaultServerConfig returns production limits; set Backend and Tokens.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{MaxRequestBytes: 16 << 20, MaxWait: 30 * time.Second, MaxPageItems: 1000}
}

// Validate names every bad field.
func (c ServerConfig) Validate() error {
	var errs []error
	bad := func(f, format string, a ...any) { errs = append(errs, storeline.Invalidf(f, format, a...)) }
	if c.Backend == nil {
		bad("Backend", "required")
	}
	if c.MaxRequestBytes < 1<<10 || c.MaxRequestBytes > 1<<30 {
		bad("MaxRequestBytes", "%d out of [1 KiB, 1 GiB]", c.MaxRequestBytes)
	}
	if c.MaxWait <= 0 || c.MaxWait > 10*time.Minute {
		bad("MaxWait", "%v out of (0, 10m]", c.MaxWait)
	}
	if c.MaxPageItems < 1 || c.MaxPageItems > MaxWireEvents {
		bad("MaxPageItems", "%d out of [1, %d]", c.MaxPageItems, MaxWireEvents)
	}
	for tok, s := range c.Tokens {
		if len(tok) < 16 {
			bad("Tokens", "a token of store %s is shorter than 16 characters", s)
		}
		if err := storeline.CheckID("Tokens", string(s)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return storeline.E("replication.ServerConfig.Validate", storeline.Invalid, errors.Join(errs...))
	}
	return nil
}

// Server serves the replication API: POST /v1/replication/push and
// POST /v1/replication/pull, msgpack bodies.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	tokens map[[32]byte]storeline.StoreID
	reqs   *prometheus.CounterVec
	bytes  *prometheus.CounterVec
}

// NewServer checks cfg and builds the handlers.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, tokens: map[[32]byte]storeline.StoreID{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for tok, st := range cfg.Tokens {
		s.tokens[sha256.Sum256([]byte(tok))] = st
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storeline_replication_server_requests_total",
		Help: "Replication requests served, by operation and HTTP status.",
	}, []string{"op", "code"})
	s.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storeline_replication_server_bytes_total",
		Help: "Replication body bytes, by direction (in: from shops, out: to shops).",
	}, []string{"direction"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.reqs, s.bytes} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("replication: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/replication/push", s.wrap("push", s.push))
	mux.HandleFunc("POST /v1/replication/pull", s.wrap("pull", s.pull))
	return mux
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, caller storeline.StoreID) (any, error)

func (s *Server) wrap(op string, fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, err := s.authenticate(r)
		var out any
		if err == nil {
			out, err = fn(w, r, caller)
		}
		if err == nil {
			var b []byte
			if b, err = Encode(out); err == nil {
				w.Header().Set("Content-Type", contentType)
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(b)
				s.bytes.WithLabelValues("out").Add(float64(len(b)))
				s.reqs.WithLabelValues(op, "200").Inc()
				return
			}
		}
		code := s.problem(w, r, err)
		s.reqs.WithLabelValues(op, fmt.Sprint(code)).Inc()
	}
}

// StoreFromCert returns the store a client certificate names: its URI SAN
// "storeline:store:<id>" if present, else its subject common name.
func StoreFromCert(c *x509.Certificate) (storeline.StoreID, bool) {
	for _, u := range c.URIs {
		if u.Scheme == "storeline" {
			if id, ok := strings.CutPrefix(u.Opaque, "store:"); ok && storeline.ValidID(id) {
				return storeline.StoreID(id), true
			}
		}
	}
	if storeline.ValidID(c.Subject.CommonName) {
		return storeline.StoreID(c.Subject.CommonName), true
	}
	return "", false
}

// authenticate returns the caller's store: from a verified client
// certificate (the listener's tls.Config requires and verifies it), else
// from the bearer token.
func (s *Server) authenticate(r *http.Request) (storeline.StoreID, error) {
	const op = "replication.authenticate"
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if st, ok := StoreFromCert(r.TLS.VerifiedChains[0][0]); ok {
			return st, nil
		}
		return "", storeline.Errorf(storeline.Forbidden, op, "client certificate names no store")
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", storeline.Errorf(storeline.Unauthorized, op, "a client certificate or a bearer token is required")
	}
	st, ok := s.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		return "", storeline.Errorf(storeline.Unauthorized, op, "unknown token")
	}
	return st, nil
}

// Authenticate returns the store that sent r, as the replication handlers
// authenticate it, for other calls served on the same listener.
func (s *Server) Authenticate(r *http.Request) (storeline.StoreID, error) { return s.authenticate(r) }

func (s *Server) readBody(r *http.Request, v any) error {
	const op = "replication.readBody"
	if ct := r.Header.Get("Content-Type"); ct != contentType {
		return &storeline.Error{Op: op, Kind: storeline.Invalid, Field: "Content-Type", Err: fmt.Errorf("%q, want %s", ct, contentType)}
	}
	b, err := readAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxRequestBytes), r.ContentLength, s.cfg.MaxRequestBytes)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return storeline.Errorf(storeline.TooLarge, op, "body over %d bytes", s.cfg.MaxRequestBytes)
	}
	if err != nil {
		return storeline.E(op, storeline.Invalid, err)
	}
	s.bytes.WithLabelValues("in").Add(float64(len(b)))
	return Decode(b, v)
}

// readAll is io.ReadAll into a buffer sized by the request's
// Content-Length (within limit), so a push of megabytes is not copied
// through a dozen growing buffers.
func readAll(r io.Reader, length, limit int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, min(length, limit)+1) // +1: the read that sees EOF
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow as ReadAll does
		}
	}
}

func (s *Server) push(w http.ResponseWriter, r *http.Request, caller storeline.StoreID) (any, error) {
	var req PushRequest
	if err := s.readBody(r, &req); err != nil {
		return nil, err
	}
	b, err := CheckPush(caller, &req)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Backend.Push(r.Context(), b)
	if err != nil {
		return nil, fmt.Errorf("replication: push %s/%d: %w", caller, req.Epoch, err)
	}
	// Answered in the request's version (checked): a shop one release
	// behind refuses a newer version than its own.
	// The latest epochs, within the wire's bound, as PageToWire sends
	// them: the shop refuses an answer naming more, and an older epoch
	// left out reads as mark 0 there and costs it one resent batch.
	out := PushResponse{V: req.V, Acked: res.Acked, Gap: res.Gap, Marks: res.Marks[max(0, len(res.Marks)-MaxWireMarks):],
		Applied: res.Applied, Duplicates: res.Duplicates}
	for _, rj := range res.Rejections {
		out.Rejections = append(out.Rejections, RejectionToWire(rj))
	}
	return &out, nil
}

// CheckPush validates a push from caller whole and converts it: a batch
// naming another store or holding another origin's event is Forbidden;
// anything malformed (a bad version, a gap inside the batch, an event of
// another epoch, an undecodable body, postings that do not balance) is
// Invalid naming the field, and so is an event of a kind this build does
// not know.
func CheckPush(caller storeline.StoreID, req *PushRequest) (Batch, error) {
	return checkPush(caller, req, true)
}

// CheckPushEntry is CheckPush for a push that a node has already checked
// whole (central's FSM, applying the log entry that node wrote): the same
// checks but for the event bodies, which it leaves undecoded (Body nil)
// for the caller to read what it needs of them. Decoding every body again
// on every replica was most of the cost of applying a push.
func CheckPushEntry(caller storeline.StoreID, req *PushRequest) (Batch, error) {
	return checkPush(caller, req, false)
}

func checkPush(caller storeline.StoreID, req *PushRequest, decodeBodies bool) (Batch, error) {
	const op = "replication.push"
	if err := CheckVersion(req.V); err != nil {
		return Batch{}, err
	}
	if storeline.StoreID(req.Store) != caller {
		return Batch{}, &storeline.Error{Op: op, Kind: storeline.Forbidden, Field: "st",
			Err: fmt.Errorf("caller %s pushes for store %q", caller, req.Store)}
	}
	if req.Epoch == 0 {
		return Batch{}, &storeline.Error{Op: op, Kind: storeline.Invalid, Field: "e", Err: errors.New("epochs start at 1")}
	}
	b := Batch{Store: caller, Epoch: req.Epoch, Events: make([]storeline.Event, 0, len(req.Events))}
	if len(req.Events) > 0 && req.Events[0].Wire() != nil {
		b.Wire = make([][]byte, 0, len(req.Events))
	}
	for i, we := range req.Events {
		f := fmt.Sprintf("ev[%d]", i)
		if storeline.StoreID(we.Origin) != caller {
			return Batch{}, &storeline.Error{Op: op, Kind: storeline.Forbidden, Field: f + ".origin",
				Err: fmt.Errorf("caller %s sends an event of origin %q", caller, we.Origin)}
		}
		// An event of a kind unknown here is malformed, as a corrupted
		// one is: the batch is refused and nothing of it consumed, so the
		// shop's next send of the same positions applies. A shop a release
		// ahead of head office cannot send one: it speaks a protocol
		// version central refuses (upgrade head office first).
		ev, unknown, err := eventFromWire(we, decodeBodies)
		if err == nil {
			err = unknown
		}
		if err != nil {
			return Batch{}, &storeline.Error{Op: op, Kind: storeline.Invalid, Field: f + "." + storeline.FieldOf(err), Err: err}
		}
		if ev.Epoch != req.Epoch {
			return Batch{}, &storeline.Error{Op: op, Kind: storeline.Invalid, Field: f + ".epoch",
				Err: fmt.Errorf("event of epoch %d in a batch of epoch %d", ev.Epoch, req.Epoch)}
		}
		if i > 0 && ev.Seq != b.Events[i-1].Seq+1 {
			return Batch{}, &storeline.Error{Op: op, Kind: storeline.Invalid, Field: f + ".seq",
				Err: fmt.Errorf("seq %d after %d: a batch is dense", ev.Seq, b.Events[i-1].Seq)}
		}
		b.Events = append(b.Events, ev)
		if b.Wire != nil {
			if we.Wire() == nil {
				b.Wire = nil
			} else {
				b.Wire = append(b.Wire, we.Wire())
			}
		}
	}
	return b, nil
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request, caller storeline.StoreID) (any, error) {
	const op = "replication.pull"
	var req PullRequest
	if err := s.readBody(r, &req); err != nil {
		return nil, err
	}
	if err := CheckVersion(req.V); err != nil {
		return nil, err
	}
	if storeline.StoreID(req.Store) != caller {
		return nil, &storeline.Error{Op: op, Kind: storeline.Forbidden, Field: "st",
			Err: fmt.Errorf("caller %s pulls for store %q", caller, req.Store)}
	}
	if req.WaitMillis < 0 {
		return nil, &storeline.Error{Op: op, Kind: storeline.Invalid, Field: "w", Err: errors.New("negative wait")}
	}
	q := PullQuery{Store: caller, Cursor: req.Cursor, Epoch: req.Epoch, Own: req.Own, Snapshot: req.Snapshot,
		MaxItems: s.cfg.MaxPageItems, Incarnation: req.Incarnation}
	if req.MaxItems > 0 && req.MaxItems < q.MaxItems {
		q.MaxItems = req.MaxItems
	}
	ctx := r.Context()
	page, err := s.cfg.Backend.Pull(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("replication: pull %s after %d: %w", caller, req.Cursor, err)
	}
	if page.empty() && req.WaitMillis > 0 {
		wait := min(time.Duration(req.WaitMillis)*time.Millisecond, s.cfg.MaxWait)
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		for page.empty() {
			// The page may have moved the cursor past changes of other
			// shops: wait after it, or Wait would return at once.
			q.Cursor = max(q.Cursor, page.Cursor)
			if err := s.cfg.Backend.Wait(wctx, caller, q.Cursor); err != nil || wctx.Err() != nil {
				break // the poll timed out (or the shop left): answer what we have
			}
			if page, err = s.cfg.Backend.Pull(ctx, q); err != nil {
				return nil, fmt.Errorf("replication: pull %s after %d: %w", caller, req.Cursor, err)
			}
		}
	}
	out, err := PageToWire(page)
	if err != nil {
		return nil, err
	}
	out.V = req.V // the request's version, as for a push
	return out, nil
}

// PageToWire converts a page.
func PageToWire(p Page) (*PullResponse, error) {
	out := &PullResponse{V: ProtocolVersion, Cursor: p.Cursor, More: p.More, Resync: p.Resync, Incarnation: p.Incarnation}
	if p.Incarnation != "" {
		// The latest epochs, within the wire's bound: an older epoch left
		// out reads as mark 0 at the shop and costs it one probe.
		out.Marks = p.Marks[max(0, len(p.Marks)-MaxWireMarks):]
	}
	for _, c := range p.Changes {
		wr, err := ChangeToWire(c)
		if err != nil {
			return nil, err
		}
		out.Records = append(out.Records, wr)
	}
	for _, ev := range p.Events {
		we, err := EventToWire(ev)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, we)
	}
	for _, rj := range p.Rejections {
		out.Rejections = append(out.Rejections, RejectionToWire(rj))
	}
	return out, nil
}

// problem writes err as application/problem+json and returns the status.
// Internal detail, and the text of a failed file operation, is logged,
// never sent.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) int {
	kind := storeline.KindOf(err)
	code := statusOf(kind)
	detail := err.Error()
	switch {
	case kind == storeline.Internal:
		s.log.Error("replication: internal error", "path", r.URL.Path, "err", err)
		detail = "internal error"
	case storeline.IsIOError(err):
		// A failed file operation of head office (a poisoned ledger, a
		// full disk) names its data directory's files and the system's
		// error: the log keeps them, the shop learns the kind.
		s.log.Error("replication: file operation failed", "path", r.URL.Path, "kind", kind.String(), "err", err)
		detail = storeline.IOErrorDetail(kind, "head office")
	}
	body := map[string]any{
		"type":   "https://storeline.dev/problems/" + kind.String(),
		"title":  kind.String(),
		"status": code,
		"detail": detail,
		"kind":   kind.String(),
	}
	if f := storeline.FieldOf(err); f != "" {
		body["field"] = f
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
	return code
}

func statusOf(k storeline.Kind) int {
	switch k {
	case storeline.Invalid:
		return http.StatusBadRequest
	case storeline.NotFound:
		return http.StatusNotFound
	case storeline.Conflict:
		return http.StatusConflict
	case storeline.Unauthorized:
		return http.StatusUnauthorized
	case storeline.Forbidden:
		return http.StatusForbidden
	case storeline.TooLarge:
		return http.StatusRequestEntityTooLarge
	case storeline.RateLimited:
		return http.StatusTooManyRequests
	case storeline.InsufficientStorage:
		return http.StatusInsufficientStorage
	case storeline.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

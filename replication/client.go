package replication

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storeline/storeline"
)

// Meta keys the client keeps in the node's ledger.
const (
	// AckKey holds the highest position central acknowledged (msgpack
	// Position): the push resumes after it.
	AckKey = "replication.ack"
	// CursorKey holds the pull cursor (msgpack cursorState), written with
	// each page in one transaction.
	CursorKey = "replication.cursor"
	// RejectionPrefix + event ID (hex) holds a rejection (msgpack
	// WireRejection) that came down. Only the latest
	// ClientConfig.KeepRejections are kept (the metrics count them all).
	RejectionPrefix = "replication.rejection."
	// rejectionLogPrefix + arrival number (16 hex digits) holds the event
	// ID of the rejection that came down with that number, and
	// rejectionNextKey the next number (8 bytes, big-endian): the pruning
	// order. A stored rejection has exactly one entry; those stored
	// before the log was kept have none and stay.
	rejectionLogPrefix = "replication.rejections.log."
	rejectionNextKey   = "replication.rejections.next"
	// SkippedKindsKey holds the kinds of pulled records and events this
	// build skipped as unknown (msgpack SkippedKinds), written with the
	// page that skipped them. Their records and events are lost to this
	// build only: a later one that knows one of the kinds pulls again
	// from cursor 0 at its first pull and drops the kind from the mark.
	SkippedKindsKey = "replication.skipped_kinds"
)

// SkippedKinds is the value at SkippedKindsKey.
type SkippedKinds struct {
	Master []storeline.MasterKind `msgpack:"m,omitempty"`
	Events []storeline.EventKind  `msgpack:"e,omitempty"`
}

// maxSkippedKinds bounds each list of SkippedKinds: a central sending
// more unknown kinds than that is not one release ahead, and its pages
// fail as bad ones rather than grow the mark without end.
const maxSkippedKinds = 64

// pageSkips counts a pulled page's records and events of kinds this build
// does not know, by kind.
type pageSkips struct {
	master map[storeline.MasterKind]int
	events map[storeline.EventKind]int
}

// knownMasterKind reports whether this build has a record type for k.
func knownMasterKind(k storeline.MasterKind) bool {
	_, err := storeline.NewRecord(k)
	return err == nil
}

// DefaultKeepRejections is how many rejections a shop keeps when
// ClientConfig.KeepRejections is zero.
const DefaultKeepRejections = 10000

// Local is what the client needs from the node: its journal, its meta
// values and a way to apply a pulled page atomically. Package node adapts
// *ledger.Ledger to it.
type Local interface {
	// Epoch is the node's current epoch; Position its last own event.
	Epoch() uint64
	Position() Position
	// OwnEvents returns up to limit own events at positions at or after
	// from, in (epoch, seq) order.
	OwnEvents(from Position, limit int) ([]storeline.Event, error)
	// OwnEpochs returns the last own position held in each epoch.
	OwnEpochs() ([]Position, error)
	Meta(key string) ([]byte, bool, error)
	SetMeta(ctx context.Context, key string, val []byte) error
	// MasterVersion is the node-local version of the last master change.
	MasterVersion() uint64
	// ApplyPage applies a page and moves the cursor at CursorKey from From
	// to To in one durable transaction; a From that is not the stored
	// value is a Conflict and changes nothing.
	ApplyPage(ctx context.Context, p LocalPage) (PageResult, error)
}

// LocalPage is a pulled page in domain types.
type LocalPage struct {
	CursorKey string
	From, To  []byte
	Changes   []Change
	Events    []storeline.Event
	// Meta sets meta values; a nil value deletes the key, in the page's
	// transaction.
	Meta map[string][]byte
	// Sweep, if set, removes the master records of SweptKinds with
	// node-local versions in (After, Below] (see ledger.PulledSweep).
	Sweep *Sweep
}

// Sweep ends a resync: records the snapshot did not rewrite (versions at
// or below the one before its first page) no longer concern the shop.
type Sweep struct {
	After, Below uint64
	Limit        int
}

// PageResult is what applying a page did.
type PageResult struct {
	// MasterVersion is the node-local master version after the page.
	MasterVersion uint64
	// Swept counts records the sweep removed; SweptTo is the last version
	// it looked at (Below when it is done).
	Swept   int
	SweptTo uint64
}

// SweptKinds are the kinds a resync's sweep removes: central authors
// them all and scopes some to shops (prices by the shop's lists). Kinds a
// node's own admin API issues in a replicating shop (terminals, sellers,
// pricing rules) are left alone.
var SweptKinds = []storeline.MasterKind{
	storeline.KindStore, storeline.KindGroup, storeline.KindItem, storeline.KindPriceList, storeline.KindPrice,
	storeline.KindCustomerGroup, storeline.KindCustomer, storeline.KindCard, storeline.KindMessage,
}

// ClientConfig configures a Client. Every timer is a field.
type ClientConfig struct {
	Store storeline.StoreID
	// Central lists the base URLs of central's replication listeners; the
	// client fails over between them.
	Central []string
	// Token is the shop's bearer token (tests); TLS the client
	// certificate setup (production). Token is secret: String redacts it.
	Token string
	TLS   *tls.Config
	// MaxBatchEvents and MaxBatchBytes bound one push.
	MaxBatchEvents int
	MaxBatchBytes  int
	// MaxResponseBytes bounds an answer's body.
	MaxResponseBytes int64
	// PageItems is the page size asked for.
	PageItems int
	// PushInterval is how often an idle push loop looks at the journal
	// (Nudge wakes it earlier).
	PushInterval time.Duration
	// PollWait is the long poll asked of central; RequestTimeout bounds
	// a request beyond it.
	PollWait       time.Duration
	RequestTimeout time.Duration
	// BackoffMin doubles per failure up to BackoffMax, with jitter; a
	// refusal that retrying cannot fix waits BackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// KeepRejections is how many of central's rejections of the shop's
	// events the shop keeps (RejectionPrefix), the latest to come down;
	// older ones are deleted with the page that brings a newer one. Zero
	// means DefaultKeepRejections.
	KeepRejections int
	Logger         *slog.Logger
	Now            func() time.Time
}

// DefaultClientConfig returns production defaults; set Store, Central and
// Token or TLS.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		MaxBatchEvents: 500, MaxBatchBytes: 1 << 20, MaxResponseBytes: 32 << 20, PageItems: 1000,
		PushInterval: 250 * time.Millisecond, PollWait: 25 * time.Second, RequestTimeout: 30 * time.Second,
		BackoffMin: 250 * time.Millisecond, BackoffMax: 30 * time.Second, Now: time.Now,
	}
}

// Validate names every bad field.
func (c ClientConfig) Validate() error {
	var errs []error
	bad := func(f, format string, a ...any) { errs = append(errs, storeline.Invalidf(f, format, a...)) }
	if err := storeline.CheckID("Store", string(c.Store)); err != nil {
		errs = append(errs, err)
	}
	if len(c.Central) == 0 {
		bad("Central", "at least one central URL is required")
	}
	for i, u := range c.Central {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(fmt.Sprintf("Central[%d]", i), "%q is not an http(s) URL", u)
		} else if c.TLS != nil && p.Scheme != "https" {
			// The client certificate would never be presented.
			bad(fmt.Sprintf("Central[%d]", i), "%q: a TLS client certificate is set, so central's URL must be https", u)
		}
	}
	if c.Token == "" && c.TLS == nil {
		bad("Token", "a token or a TLS client certificate is required")
	}
	if c.Token != "" && (strings.TrimSpace(c.Token) != c.Token || strings.ContainsFunc(c.Token, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		// A header cannot carry it (each request would fail as if central
		// were down) or central would never see it as sent.
		bad("Token", "leading or trailing white space or a control character (a newline read from a file?)")
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > MaxWireEvents {
		bad("MaxBatchEvents", "%d out of [1, %d]", c.MaxBatchEvents, MaxWireEvents)
	}
	if c.MaxBatchBytes < 4<<10 || c.MaxBatchBytes > 64<<20 {
		bad("MaxBatchBytes", "%d out of [4 KiB, 64 MiB]", c.MaxBatchBytes)
	}
	if c.MaxResponseBytes < 64<<10 || c.MaxResponseBytes > 1<<30 {
		bad("MaxResponseBytes", "%d out of [64 KiB, 1 GiB]", c.MaxResponseBytes)
	}
	if c.PageItems < 1 || c.PageItems > MaxWireEvents {
		bad("PageItems", "%d out of [1, %d]", c.PageItems, MaxWireEvents)
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{{"PushInterval", c.PushInterval}, {"PollWait", c.PollWait}, {"RequestTimeout", c.RequestTimeout},
		{"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax}} {
		if d.v <= 0 || d.v > time.Hour {
			bad(d.f, "%v out of (0, 1h]", d.v)
		}
	}
	if c.BackoffMax < c.BackoffMin {
		bad("BackoffMax", "%v below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	if c.KeepRejections < 0 || c.KeepRejections > maxKeepRejections {
		bad("KeepRejections", "%d out of [0, %d]", c.KeepRejections, maxKeepRejections)
	}
	if c.Now == nil {
		bad("Now", "a clock is required")
	}
	if len(errs) > 0 {
		return storeline.E("replication.ClientConfig.Validate", storeline.Invalid, errors.Join(errs...))
	}
	return nil
}

// String renders the config for the start-up log, the token redacted.
func (c ClientConfig) String() string {
	tok := ""
	if c.Token != "" {
		tok = "REDACTED"
	}
	return fmt.Sprintf("Store=%s Central=[%s] Token=%s TLS=%t MaxBatchEvents=%d MaxBatchBytes=%d PageItems=%d PushInterval=%v PollWait=%v RequestTimeout=%v Backoff=%v..%v KeepRejections=%d",
		c.Store, strings.Join(c.Central, ","), tok, c.TLS != nil, c.MaxBatchEvents, c.MaxBatchBytes, c.PageItems,
		c.PushInterval, c.PollWait, c.RequestTimeout, c.BackoffMin, c.BackoffMax, c.KeepRejections)
}

// Status is the client's view of replication, for /v1/health.
type Status struct {
	// State is "online" (the last push and the last pull both
	// succeeded), "offline" (either failed, or none succeeded yet) or
	// "resync" (a snapshot is being pulled, pushes going through).
	State string
	// Reachable reports whether the last answer was central's own (a
	// message, or a problem document of central's): a proxy's page in
	// front of it is not.
	Reachable bool
	// LastPush and LastPull are the times of the last successful push
	// and pull; LastSync the later of the two.
	LastPush, LastPull, LastSync time.Time
	Acked                        Position
	Cursor                       uint64
}

// Client runs a node's push and pull loops.
type Client struct {
	cfg   ClientConfig
	local Local
	log   *slog.Logger
	hc    *http.Client
	met   *Metrics
	addr  atomic.Uint32
	nudge chan struct{}
	// probe asks the push loop to learn central's marks even with nothing
	// new to send: a pull answer showed central lost what it acknowledged
	// (its marks below ours, or a new incarnation).
	probe chan struct{}

	mu     sync.Mutex
	status Status
	// centralEpochs are the epochs central's answers named marks of
	// (push answers, pull answers with an incarnation), in order, at
	// most MaxWireMarks: an older epoch than the current one that the
	// journal holds nothing of (the shop restored from a backup taken
	// before an earlier restore) is asked for whole (ownRequest).
	centralEpochs []uint64
	// pushDown and pullDown: the loop's last exchange failed; synced: an
	// exchange succeeded; resyncing: the stored cursor is mid-snapshot.
	// State is derived from them (setState).
	pushDown, pullDown, synced, resyncing bool
	// skipLogged holds the kinds whose skipping was logged (the pull
	// loop's alone): once per kind and run, however many come down.
	skipLogged map[string]bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CheckClientConfig checks cfg as NewClient does (its fields, and that
// its client certificate names cfg.Store), for a caller to refuse a bad
// one before it opens anything.
func CheckClientConfig(cfg ClientConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return checkClientCert(cfg)
}

// NewClient checks cfg and builds a client over local; met may be nil
// (NewMetrics(nil)).
func NewClient(cfg ClientConfig, local Local, met *Metrics) (*Client, error) {
	if err := CheckClientConfig(cfg); err != nil {
		return nil, err
	}
	if met == nil {
		met, _ = NewMetrics(nil)
	}
	c := &Client{cfg: cfg, local: local, log: cfg.Logger, met: met, nudge: make(chan struct{}, 1), probe: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	tr := NewTransport(cfg.TLS, cfg.RequestTimeout)
	tr.ResponseHeaderTimeout = cfg.PollWait + cfg.RequestTimeout
	// Central never redirects: a redirect comes from whatever else
	// answers at its address, and following it would send the token
	// and the shop's events there (in clear to an http:// target on the
	// same host). It is answered as an answer that is not central's.
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.status.State = "offline"
	return c, nil
}

// checkClientCert refuses a TLS client certificate that names another
// store than cfg.Store (as central reads it, StoreFromCert) or none:
// central would answer every push and pull 403, and the shop would run
// "offline" for good without a word about its files.
func checkClientCert(cfg ClientConfig) error {
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 || len(cfg.TLS.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := cfg.TLS.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0]); err != nil {
			return &storeline.Error{Op: "replication.NewClient", Kind: storeline.Invalid, Field: "TLS",
				Err: fmt.Errorf("the client certificate does not parse: %w", err)}
		}
	}
	if st, ok := StoreFromCert(leaf); !ok || st != cfg.Store {
		return &storeline.Error{Op: "replication.NewClient", Kind: storeline.Invalid, Field: "TLS",
			Err: fmt.Errorf("the client certificate names store %q, not this shop's %q: central would refuse every push and pull (storeline certs issue -store %s)", st, cfg.Store, cfg.Store)}
	}
	return nil
}

// Start runs the loops until Stop.
func (c *Client) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.pushLoop(ctx) }()
	go func() { defer c.wg.Done(); c.pullLoop(ctx) }()
}

// Stop ends the loops and waits for them. An exchange cut short is safe:
// a push is resent from the acknowledged position, a page not applied is
// pulled again.
func (c *Client) Stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	c.hc.CloseIdleConnections()
}

// Nudge wakes the push loop (a new event was appended).
func (c *Client) Nudge() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// askProbe wakes the push loop to ask central for its marks.
func (c *Client) askProbe() {
	select {
	case c.probe <- struct{}{}:
	default:
	}
}

// Status returns the current status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Client) setStatus(fn func(*Status)) {
	c.mu.Lock()
	fn(&c.status)
	c.mu.Unlock()
}

// exchanged records how a push (push true) or pull exchange ended and
// derives State: one loop failing is enough for "offline", since a shop
// whose pulls go through while its pushes fail is not replicating.
func (c *Client) exchanged(push, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if push {
		c.pushDown = !ok
	} else {
		c.pullDown = !ok
	}
	c.synced = c.synced || ok
	c.setState()
}

// setState derives State; c.mu is held.
func (c *Client) setState() {
	switch {
	case !c.synced || c.pushDown || c.pullDown:
		c.status.State = "offline"
	case c.resyncing:
		c.status.State = "resync"
	default:
		c.status.State = "online"
	}
}

// backoff is exponential with jitter and a ceiling.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	// Doubled step by step, stopping at the ceiling: min<<n overflows
	// (and goes negative) long before n reaches 32 for a min of seconds.
	d := max(b.min, 1)
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if d < b.max {
		b.n++
	}
	// Half fixed, half random: spread retries of many shops after an
	// outage without ever waiting less than half the step.
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// shrinker is the size of the next push batch or pull page: halved when
// the exchange is refused as too large (413, an answer over
// MaxResponseBytes, a page over the node's commit batch), grown back by
// doubling after growAfter exchanges in a row went through, so one big
// record does not leave the link at one item per request for good.
type shrinker struct {
	max, cur, ok int
}

const growAfter = 16

func newShrinker(max int) shrinker { return shrinker{max: max, cur: max} }

// shrink halves the size below n, the size just refused; false if it is
// already 1 (the item alone is too large: retrying cannot help).
func (s *shrinker) shrink(n int) bool {
	s.ok = 0
	if n <= 1 {
		return false
	}
	s.cur = max(1, min(s.cur, n)/2)
	return true
}

func (s *shrinker) success() {
	if s.cur == s.max {
		return
	}
	if s.ok++; s.ok >= growAfter {
		s.cur, s.ok = min(s.max, 2*s.cur), 0
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryable reports whether retrying the same request may succeed: a
// transport error, a timeout, central unavailable or overloaded, a node
// that cannot serve us (post moves to the next and says Unavailable).
// Anything else (a refusal of the request: 400, a 403 naming a field,
// 413 of a single item) needs an operator, so the loop waits the ceiling
// before trying again.
func retryable(err error) bool {
	if errors.Is(err, errOtherNode) {
		return true // post moved to the next node, which may take it
	}
	switch storeline.KindOf(err) {
	case storeline.Invalid, storeline.Unauthorized, storeline.Forbidden, storeline.TooLarge, storeline.NotFound:
		return false
	}
	return true
}

func (c *Client) wait(ctx context.Context, b *backoff, err error) bool {
	d := b.next()
	if !retryable(err) {
		d = c.cfg.BackoffMax
	}
	return sleep(ctx, d)
}

// pullPath is the pull's route (post treats a proxy's 413 on it apart).
const pullPath = "/v1/replication/pull"

// post sends in to path at the current central address and decodes the
// answer into out. A transport error, or an answer saying this node cannot
// serve us (see refusal) or that is not a message, moves to the next
// address.
func (c *Client) post(ctx context.Context, path string, timeout time.Duration, in, out any) error {
	const op = "replication.post"
	body, err := Encode(in)
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	i := c.addr.Load()
	base := c.cfg.Central[int(i)%len(c.cfg.Central)]
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.failover(i)
		c.setStatus(func(s *Status) { s.Reachable = false })
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("%s: %w", base, err))
	}
	defer resp.Body.Close()
	c.met.BytesUp.Add(float64(len(body)))
	rb, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		c.failover(i)
		c.setStatus(func(s *Status) { s.Reachable = false })
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("%s: read answer: %w", base, err))
	}
	c.met.BytesDown.Add(float64(len(rb)))
	if resp.StatusCode == http.StatusOK && int64(len(rb)) > c.cfg.MaxResponseBytes {
		// A smaller page fits: the pull loop shrinks it on TooLarge.
		// Whose answer it is cannot be told: Reachable stays as it was.
		return storeline.Errorf(storeline.TooLarge, op, "%s: answer over %d bytes", base, c.cfg.MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		// An error page over MaxResponseBytes (cut short, so not a
		// problem document) is classified by its status like any other.
		var p struct {
			Kind, Detail, Field string
		}
		isProblem := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && json.Unmarshal(rb, &p) == nil
		// Only central's own answers say central is reachable, not a
		// proxy's page in front of it.
		c.setStatus(func(s *Status) { s.Reachable = isProblem })
		kind := storeline.ParseKind(p.Kind)
		if !isProblem {
			p = struct{ Kind, Detail, Field string }{Detail: snippet(rb)}
			kind = storeline.Internal
		}
		var moved error
		if resp.StatusCode == http.StatusRequestEntityTooLarge && !isProblem && path == pullPath {
			// A proxy's limit on a pull, whose request is a few bytes
			// whatever page it asks for: a smaller page cannot pass, so
			// this node cannot serve us (try the next, backing off).
			c.failover(i)
			return storeline.E(op, storeline.Unavailable, fmt.Errorf("%s%s: HTTP 413 of a proxy on a pull: %s", base, path, p.Detail))
		}
		if resp.StatusCode == http.StatusRequestEntityTooLarge {
			kind = storeline.TooLarge // whoever said it: a smaller batch may pass
			if !isProblem && len(c.cfg.Central) > 1 {
				// A proxy's limit, not central's: the next node may not
				// sit behind it, even for a single item.
				c.failover(i)
				moved = errOtherNode
			}
		}
		if !Refusal(resp.StatusCode, isProblem, kind, p.Field) {
			// This node cannot serve us, whatever we send: try the next
			// one, as for a network error, after the usual backoff.
			c.failover(i)
			if !retryable(&storeline.Error{Kind: kind}) || kind == storeline.Internal {
				kind = storeline.Unavailable
			}
		}
		cause := fmt.Errorf("%s%s: HTTP %d (%s): %s", base, path, resp.StatusCode, strings.ToLower(http.StatusText(resp.StatusCode)), p.Detail)
		if moved != nil {
			cause = fmt.Errorf("%w (%w)", cause, moved)
		}
		return &storeline.Error{Op: op, Kind: kind, Field: p.Field, Err: cause}
	}
	if err := Decode(rb, out); err != nil {
		// Not a message of central's (a proxy's page, a node of another
		// protocol): another node may answer properly.
		c.failover(i)
		c.setStatus(func(s *Status) { s.Reachable = false })
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("%s%s: HTTP 200 with %q: %w", base, path, resp.Header.Get("Content-Type"), err))
	}
	c.setStatus(func(s *Status) { s.Reachable = true })
	return nil
}

// Refusal reports whether a non-200 answer refuses the request itself, so
// that every central node would answer the same and moving to the next
// cannot help: a 413 (the loops halve the batch or page), or a 4xx
// problem document of central's refusing the content (Invalid, Conflict,
// or naming the field at fault: another origin's event is Forbidden on
// "ev[0].origin" everywhere). Anything else says this node cannot serve
// us: a 5xx, a 429, a route or method it does not serve (404, 405), its
// token list or certificate setup lacking the shop (401, a 403 naming no
// field), a proxy's page. isProblem says the answer is an
// application/problem+json document, kind and field its own. The node's
// loyalty calls, on the same listener, classify answers by it too.
func Refusal(code int, isProblem bool, kind storeline.Kind, field string) bool {
	switch {
	case code == http.StatusRequestEntityTooLarge:
		return true
	case code < 400 || code >= 500 || code == http.StatusTooManyRequests || !isProblem:
		return false
	}
	return kind == storeline.Invalid || kind == storeline.Conflict || field != ""
}

// snippet is the start of an answer that is not a problem document, for
// the log: a proxy's page says who answered.
func snippet(b []byte) string {
	const n = 120
	s := strings.ToValidUTF8(string(b[:min(len(b), n)]), "?")
	if len(b) > n {
		s += "..."
	}
	return fmt.Sprintf("%q", s)
}

// errOtherNode marks a refusal after which post moved to the next
// address: retrying there may succeed, so the loop backs off as usual
// rather than waiting the ceiling.
var errOtherNode = errors.New("trying the next central address")

// failover moves to the next address unless another loop already did.
func (c *Client) failover(from uint32) {
	if len(c.cfg.Central) > 1 {
		c.addr.CompareAndSwap(from, from+1)
	}
}

func (c *Client) loadAck() (Position, error) {
	v, ok, err := c.local.Meta(AckKey)
	if err != nil || !ok {
		return Position{}, err
	}
	var p Position
	if err := Decode(v, &p); err != nil {
		return Position{}, fmt.Errorf("replication: stored ack: %w", err)
	}
	return p, nil
}

// pushLoop sends the journal from the acknowledged position, forever.
func (c *Client) pushLoop(ctx context.Context) {
	bo := backoff{min: c.cfg.BackoffMin, max: c.cfg.BackoffMax}
	var ack Position
	for {
		var err error
		if ack, err = c.loadAck(); err == nil {
			break
		}
		c.log.Error("replication: load ack", "err", err)
		if !sleep(ctx, bo.next()) {
			return
		}
	}
	bo.reset()
	c.setStatus(func(s *Status) { s.Acked = ack })
	size := newShrinker(c.cfg.MaxBatchEvents)
	next := ack // central holds everything up to next; send what follows
	// probing: the next answer's marks are compared with the whole
	// journal, and with nothing new to send an empty batch asks for them.
	probing := false
	for ctx.Err() == nil {
		select {
		case <-c.probe:
			probing = true
		default:
		}
		evs, err := c.local.OwnEvents(Position{next.Epoch, next.Seq + 1}, size.cur)
		if errors.Is(err, storeline.ErrPruned) {
			// Central asks again for events it acknowledged (restored from
			// a backup older than the shop's journal retention): the shop
			// no longer holds them, and no retry will bring them back.
			// Pushing stops here, counted and logged, until an operator
			// restores central or this shop; it never skips them.
			c.met.PushErrors.Inc()
			c.log.Error("replication: central asks for events the journal's retention pruned; restore central from a newer backup",
				"from", next, "err", err)
		} else if err != nil {
			c.log.Error("replication: read journal", "from", next, "err", err)
		}
		if err != nil {
			if !c.wait(ctx, &bo, err) {
				return
			}
			continue
		}
		c.gaugeWaiting(ack, evs)
		if len(evs) == 0 && !probing {
			select {
			case <-ctx.Done():
				return
			case <-c.nudge:
			case <-c.probe:
				probing = true
			case <-time.After(c.cfg.PushInterval):
			}
			continue
		}
		var req *PushRequest
		if len(evs) == 0 {
			if next.Epoch == 0 {
				probing = false // nothing was ever acknowledged: nothing to lose
				continue
			}
			req = &PushRequest{V: ProtocolVersion, Store: string(c.cfg.Store), Epoch: next.Epoch}
		} else if req, err = c.batch(evs); err != nil {
			c.log.Error("replication: build batch", "err", err)
			if !c.wait(ctx, &bo, err) {
				return
			}
			continue
		}
		var resp PushResponse
		if err := c.post(ctx, "/v1/replication/push", c.cfg.RequestTimeout, req, &resp); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.met.PushErrors.Inc()
			if storeline.KindOf(err) != storeline.TooLarge || len(req.Events) <= 1 {
				c.exchanged(true, false) // a batch about to be halved is not an outage
			}
			from := Position{Epoch: req.Epoch}
			if len(req.Events) > 0 {
				from.Seq = req.Events[0].Seq
			}
			c.log.Warn("replication: push failed", "from", from, "events", len(req.Events), "err", err)
			if storeline.KindOf(err) == storeline.TooLarge && size.shrink(len(req.Events)) {
				c.met.Shrunk.Inc()
				if !sleep(ctx, bo.next()) {
					return
				}
				continue
			}
			if !c.wait(ctx, &bo, err) {
				return
			}
			continue
		}
		if err := CheckVersion(resp.V); err != nil {
			// As for a pull answer: a message of a protocol this build
			// does not speak says nothing it can trust, its Acked least.
			c.met.PushErrors.Inc()
			c.exchanged(true, false)
			c.log.Error("replication: bad push answer from central", "err", err)
			if !sleep(ctx, c.cfg.BackoffMax) {
				return
			}
			continue
		}
		size.success()
		now := c.cfg.Now()
		c.noteMarks(resp.Marks)
		c.met.Rejections.Add(float64(len(resp.Rejections)))
		if resp.Gap != nil {
			gap := *resp.Gap
			if gap.Seq == 0 {
				// Central names its mark plus one: a gap at 0 is a bad
				// answer, nothing was applied, and resending cannot help.
				c.met.PushErrors.Inc()
				c.exchanged(true, false)
				c.log.Error("replication: bad push answer from central: a gap at seq 0", "gap", gap)
				if !sleep(ctx, c.cfg.BackoffMax) {
					return
				}
				continue
			}
			c.exchanged(true, true)
			c.met.LastPush.Set(float64(now.UnixNano()) / 1e9)
			c.met.Gaps.Inc()
			if !ack.Less(Position{gap.Epoch, gap.Seq}) {
				c.met.WentBack.Inc()
				c.log.Error("replication: central needs a position it acknowledged: it went back in time; resending from there", "gap", gap, "acked", ack)
			}
			bo.reset()
			next = Position{gap.Epoch, gap.Seq - 1}
			continue
		}
		acked := resp.Acked
		if acked.Less(ack) {
			c.met.WentBack.Inc()
			c.log.Error("replication: central acknowledges less than it did: it went back in time; resending from there", "acked", acked, "before", ack)
		}
		if ack.Less(acked) {
			v, err := Encode(acked)
			if err == nil {
				err = c.local.SetMeta(ctx, AckKey, v)
			}
			if err != nil {
				// Not persisted: the next start resends from the old
				// ack, which central skips. Nothing is lost, but nothing
				// after this batch goes up: a failed push.
				c.met.PushErrors.Inc()
				c.exchanged(true, false)
				c.log.Error("replication: persist ack", "acked", acked, "err", err)
				if !c.wait(ctx, &bo, err) {
					return
				}
				continue
			}
			ack = acked
		}
		// Reset only now: an answer the node could not persist is a
		// failure like any other, and backs off.
		c.exchanged(true, true)
		c.met.LastPush.Set(float64(now.UnixNano()) / 1e9)
		bo.reset()
		next = acked
		if probing {
			probing = false
			if p, ok := c.lostBelow(resp.Marks, next); ok {
				c.met.WentBack.Inc()
				c.log.Error("replication: central lacks own events it acknowledged: it went back in time; resending from there", "from", p, "acked", ack)
				next = p
				continue
			}
		}
		c.setStatus(func(s *Status) {
			s.Acked, s.LastPush, s.LastSync, s.Reachable = ack, now, now, true
		})
		c.gaugeWaiting(ack, nil)
	}
}

// lostBelow returns where to push from when central's marks (a push
// answer's, every epoch of the store) are below what the journal holds at
// or before next, which central acknowledged: the earliest such epoch's
// mark. ok is false when central lacks nothing there.
func (c *Client) lostBelow(marks []Position, next Position) (Position, bool) {
	held, err := c.local.OwnEpochs()
	if err != nil {
		// The current epoch was checked by the answer's Acked; the older
		// ones are checked again at the next probe.
		c.log.Error("replication: read own epochs", "err", err)
		return Position{}, false
	}
	return firstLost(marks, held, next)
}

// firstLost is lostBelow's decision: held is the last own position of each
// epoch, marks central's. An epoch after next's is not pushed yet; next's
// is owed up to next; an older one whole. An epoch central has no mark of
// has mark 0.
func firstLost(marks, held []Position, next Position) (Position, bool) {
	mark := make(map[uint64]uint64, len(marks))
	for _, m := range marks {
		mark[m.Epoch] = max(mark[m.Epoch], m.Seq)
	}
	for _, h := range held { // in epoch order
		if next.Less(Position{h.Epoch, 0}) {
			break
		}
		owed := h.Seq
		if h.Epoch == next.Epoch {
			owed = min(owed, next.Seq)
		}
		if m := mark[h.Epoch]; m < owed {
			return Position{h.Epoch, m}, true
		}
	}
	return Position{}, false
}

// centralLost reports whether a pull answer's marks show central lacking
// own events it acknowledged: below ack in ack's epoch, or below what the
// journal holds in an older one (own, the pull loop's older epochs).
// Marks from a node that lags the one the shop pushed to can say so
// falsely; that costs one empty push, whose answer (from the leader)
// decides.
func centralLost(marks, own []Position, ack Position) bool {
	if ack.Epoch == 0 {
		return false
	}
	mark := make(map[uint64]uint64, len(marks))
	for _, m := range marks {
		mark[m.Epoch] = max(mark[m.Epoch], m.Seq)
	}
	if mark[ack.Epoch] < ack.Seq {
		return true
	}
	for _, p := range own {
		if p.Epoch < ack.Epoch && mark[p.Epoch] < p.Seq {
			return true
		}
	}
	return false
}

// gaugeWaiting sets the waiting-events and oldest-age gauges; evs are the
// unacknowledged events just read (the oldest first), if any. Every
// epoch's events after ack wait, not only the current epoch's (a restored
// shop's older ones): the journal's epochs are read only while ack is not
// in the current epoch, since pushes go in (epoch, seq) order.
func (c *Client) gaugeWaiting(ack Position, evs []storeline.Event) {
	pos := c.local.Position()
	waiting := pos.Seq - min(ack.Seq, pos.Seq)
	if pos.Epoch != ack.Epoch {
		held, err := c.local.OwnEpochs()
		if err != nil {
			// The gauge keeps its last value; the next pass reads again.
			c.log.Error("replication: read own epochs", "err", err)
			return
		}
		waiting = unacked(held, ack)
	}
	c.met.Waiting.Set(float64(waiting))
	if len(evs) > 0 {
		c.met.OldestAge.Set(c.cfg.Now().Sub(evs[0].OccurredAt).Seconds())
	} else if waiting == 0 {
		c.met.OldestAge.Set(0)
	}
}

// unacked counts the events after ack in a journal whose epochs end at
// held (seqs dense from 1 in each epoch).
func unacked(held []Position, ack Position) uint64 {
	var n uint64
	for _, h := range held {
		switch {
		case h.Epoch > ack.Epoch:
			n += h.Seq
		case h.Epoch == ack.Epoch:
			n += h.Seq - min(ack.Seq, h.Seq)
		}
	}
	return n
}

// batch builds a push of the leading events of one epoch, within
// MaxBatchBytes.
func (c *Client) batch(evs []storeline.Event) (*PushRequest, error) {
	req := &PushRequest{V: ProtocolVersion, Store: string(c.cfg.Store), Epoch: evs[0].Epoch}
	size := 64
	for _, ev := range evs {
		if ev.Epoch != req.Epoch {
			break
		}
		we, err := EventToWire(ev)
		if err != nil {
			return nil, err
		}
		n := len(we.Body) + 40*len(we.Postings) + 96
		for _, p := range we.Postings {
			n += len(p.Account) + len(p.Asset)
		}
		if len(req.Events) > 0 && size+n > c.cfg.MaxBatchBytes {
			break
		}
		size += n
		req.Events = append(req.Events, we)
	}
	return req, nil
}

// cursorState is the stored pull cursor: the cursor, how far a resync
// has got, and the sweep that ends it.
type cursorState struct {
	Cursor   uint64       `msgpack:"c"`
	Snapshot *SnapshotPos `msgpack:"s,omitempty"`
	// Base is the node's master version before the resync's first page:
	// every record the snapshot sends is written above it.
	Base uint64 `msgpack:"b,omitempty"`
	// Sweep, once the snapshot is done, is the Base whose older records
	// are still to be removed (0: none). It is cleared by the page that
	// finishes the sweep, so a restart resumes it.
	Sweep uint64 `msgpack:"w,omitempty"`
	// Incarnation is central's incarnation Cursor and Snapshot belong
	// to ("" unknown), stored with them in one transaction.
	Incarnation string `msgpack:"n,omitempty"`
}

func (c *Client) loadCursor() (cursorState, []byte, error) {
	v, ok, err := c.local.Meta(CursorKey)
	if err != nil || !ok {
		return cursorState{}, nil, err
	}
	var st cursorState
	if err := Decode(v, &st); err != nil {
		return cursorState{}, nil, fmt.Errorf("replication: stored cursor: %w", err)
	}
	return st, v, nil
}

// ownBehind returns the last own position held per epoch older than the
// current one, for central to send what a restore lost.
func (c *Client) ownBehind() ([]Position, error) {
	ps, err := c.local.OwnEpochs()
	if err != nil {
		return nil, err
	}
	cur := c.local.Epoch()
	out := ps[:0]
	for _, p := range ps {
		if p.Epoch < cur {
			out = append(out, p)
		}
	}
	if len(out) > MaxWireMarks {
		out = out[len(out)-MaxWireMarks:]
	}
	return out, nil
}

// noteMarks records the epochs of central's marks (an answer's).
func (c *Client) noteMarks(marks []Position) {
	if len(marks) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.centralEpochs
	for _, m := range marks {
		if i, found := slices.BinarySearch(es, m.Epoch); !found && m.Seq > 0 {
			es = slices.Insert(es, i, m.Epoch)
		}
	}
	c.centralEpochs = es[max(0, len(es)-MaxWireMarks):]
}

// ownRequest is a pull's Own: held (ownBehind's), plus position 0 of each
// epoch older than cur that central has marks of and the journal holds
// nothing of, so central sends it whole. Without it a shop restored
// twice from the same backup never gets back what it sold between the
// two restores: it names only the epochs it holds.
func (c *Client) ownRequest(held []Position, cur uint64) []Position {
	c.mu.Lock()
	es := slices.Clone(c.centralEpochs)
	c.mu.Unlock()
	out := slices.Clone(held)
	for _, e := range es {
		if e >= cur {
			continue
		}
		if !slices.ContainsFunc(held, func(p Position) bool { return p.Epoch == e }) {
			out = append(out, Position{Epoch: e})
		}
	}
	slices.SortFunc(out, func(a, b Position) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return out[max(0, len(out)-MaxWireMarks):]
}

// pullLoop long-polls for pages and applies each with its cursor, forever.
func (c *Client) pullLoop(ctx context.Context) {
	bo := backoff{min: c.cfg.BackoffMin, max: c.cfg.BackoffMax}
	var (
		st    cursorState
		stb   []byte
		own   []Position
		fresh = true // reload cursor and own epochs before the next pull
		size  = newShrinker(c.cfg.PageItems)
		// sweptTo is how far the sweep got since the start (a restart
		// looks again from the beginning: the sweep is idempotent).
		sweptTo uint64
		// pollWait is the long poll the next pull asks: none for the
		// first after a start or a failed pull, so a shop with nothing
		// to pull learns at once that central answers (its state and
		// the loyalty broker's online rules follow it) rather than when
		// a long poll ends, PollWait later.
		pollWait time.Duration
		// skippedChecked: the mark of kinds an older build skipped was
		// looked at (once a run, outside a resync: see resyncSkipped).
		skippedChecked bool
	)
	for ctx.Err() == nil {
		if fresh {
			var err error
			if st, stb, err = c.loadCursor(); err == nil {
				own, err = c.ownBehind()
			}
			if err != nil {
				c.log.Error("replication: load pull state", "err", err)
				if !c.wait(ctx, &bo, err) {
					return
				}
				continue
			}
			fresh = false
		}
		if st.Sweep != 0 {
			// A resync ended: remove what it did not rewrite before
			// pulling on, so tills never see a list the shop left.
			if err := c.sweep(ctx, &st, &stb, &sweptTo, size.cur); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Error("replication: sweep after resync", "below", st.Sweep, "err", err)
				fresh = true
				if k := storeline.KindOf(err); k != storeline.Conflict && (k != storeline.TooLarge || size.cur <= 1) {
					// A sweep the node cannot store is a pull that failed,
					// as a page is: nothing more is pulled until it is done.
					c.met.PullErrors.Inc()
					c.exchanged(false, false)
				}
				if storeline.KindOf(err) == storeline.TooLarge && size.shrink(size.cur) {
					c.met.Shrunk.Inc()
					continue
				}
				if !c.wait(ctx, &bo, err) {
					return
				}
			}
			continue
		}
		if !skippedChecked && st.Snapshot == nil {
			if err := c.resyncSkipped(ctx, &st, &stb); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Error("replication: kinds an older build skipped", "err", err)
				fresh = true
				c.met.PullErrors.Inc()
				c.exchanged(false, false)
				if !c.wait(ctx, &bo, err) {
					return
				}
				continue
			}
			skippedChecked = true
		}
		cur := c.local.Epoch()
		req := PullRequest{V: ProtocolVersion, Store: string(c.cfg.Store), Cursor: st.Cursor, Epoch: cur,
			Own: c.ownRequest(own, cur), WaitMillis: pollWait.Milliseconds(), MaxItems: size.cur, Snapshot: st.Snapshot,
			Incarnation: st.Incarnation}
		var resp PullResponse
		if err := c.post(ctx, pullPath, pollWait+c.cfg.RequestTimeout, &req, &resp); err != nil {
			if ctx.Err() != nil {
				return
			}
			pollWait = 0
			c.met.PullErrors.Inc()
			if storeline.KindOf(err) != storeline.TooLarge || size.cur <= 1 {
				c.exchanged(false, false)
			}
			c.log.Warn("replication: pull failed", "cursor", st.Cursor, "items", size.cur, "err", err)
			if st.Snapshot != nil && storeline.KindOf(err) == storeline.Invalid && storeline.FieldOf(err) == "sn.a" {
				// Central cannot read the resync's position (restored, or
				// upgraded to another form of it): start the resync over.
				// Its first page counts in resyncs_total; the stored
				// cursor is replaced with the first page applied.
				c.log.Warn("replication: central refused the resync's position; starting the resync over",
					"snapshot", st.Snapshot.ID, "after", st.Snapshot.After)
				st.Snapshot, st.Base = nil, 0
				if !sleep(ctx, bo.next()) {
					return
				}
				continue
			}
			if storeline.KindOf(err) == storeline.TooLarge && size.shrink(size.cur) {
				c.met.Shrunk.Inc()
				if !sleep(ctx, bo.next()) {
					return
				}
				continue
			}
			if !c.wait(ctx, &bo, err) {
				return
			}
			continue
		}
		page, next, skips, err := c.localPage(st, &resp)
		if err == nil {
			err = c.markSkipped(&page, skips)
		}
		if err != nil {
			c.met.PullErrors.Inc()
			c.exchanged(false, false)
			c.log.Error("replication: bad page from central", "cursor", st.Cursor, "err", err)
			if !sleep(ctx, c.cfg.BackoffMax) {
				return
			}
			continue
		}
		now := c.cfg.Now()
		reborn := newIncarnation(st.Incarnation, resp.Incarnation)
		// A resync starts with this page: counted once it is stored, as
		// are the page's rejections, since a page the node fails to store
		// is pulled again and would count again.
		starts := resp.Resync != nil && (st.Snapshot == nil || reborn)
		if starts {
			c.log.Warn("replication: resync", "reason", resp.Resync.Reason, "snapshot", resp.Resync.ID, "cursor", st.Cursor,
				"incarnation", resp.Incarnation, "was", st.Incarnation)
		}
		// Central restored from a backup may lack own events it
		// acknowledged; with nothing new to push the shop would not learn
		// it until its next sale.
		if resp.Incarnation != "" {
			c.noteMarks(resp.Marks)
		}
		if resp.Incarnation != "" && (reborn || centralLost(resp.Marks, own, c.Status().Acked)) {
			c.askProbe()
		}
		newRejections := 0
		if len(resp.Rejections) > 0 {
			var err error
			if newRejections, err = c.keepRejections(&page, resp.Rejections); err != nil {
				c.met.PullErrors.Inc()
				c.exchanged(false, false)
				c.log.Error("replication: rejections: reading the node's ledger", "cursor", st.Cursor, "err", err)
				if !c.wait(ctx, &bo, err) {
					return
				}
				continue
			}
		}
		if next == st && len(page.Changes)+len(page.Events)+len(page.Meta) == 0 {
			bo.reset()
			// Central answered: the next pull long-polls again. Left at
			// none (after a start or a failed pull), every pull was
			// answered at once with nothing new, as fast as the network
			// allows, until a page moved the cursor.
			pollWait = c.cfg.PollWait
			c.pulled(now, st)
			continue // the long poll ended with nothing new
		}
		nb, err := Encode(&next)
		if err != nil {
			c.log.Error("replication: encode cursor", "err", err)
			return
		}
		page.CursorKey, page.From, page.To = CursorKey, stb, nb
		if _, err := c.local.ApplyPage(ctx, page); err != nil {
			if ctx.Err() != nil {
				return
			}
			// A Conflict means the stored cursor is not ours: reload.
			c.log.Error("replication: apply page", "cursor", st.Cursor, "items", size.cur, "err", err)
			fresh = true
			n := len(page.Changes) + len(page.Events) + len(page.Meta)
			if k := storeline.KindOf(err); k != storeline.Conflict && (k != storeline.TooLarge || n <= 1) {
				// A page the node cannot store is a pull that failed,
				// however well central answered.
				c.met.PullErrors.Inc()
				c.exchanged(false, false)
			}
			if storeline.KindOf(err) == storeline.TooLarge && size.shrink(n) {
				// Over the node's commit batch: ask for fewer items.
				c.met.Shrunk.Inc()
				continue
			}
			if !c.wait(ctx, &bo, err) {
				return
			}
			continue
		}
		st, stb = next, nb
		pollWait = c.cfg.PollWait
		if starts {
			c.met.Resyncs.Inc()
		}
		// Those the shop did not hold: a pull from the start (resyncSkipped)
		// sends again rejections it already keeps.
		c.met.RejectionsDown.Add(float64(newRejections))
		c.skipped(skips)
		bo.reset() // only once the page is stored: a node that cannot store it backs off
		size.success()
		for _, ev := range page.Events {
			if ev.Origin == c.cfg.Store {
				fresh = true // own events came back: recompute what we hold
				break
			}
		}
		c.pulled(now, st)
	}
}

// markSkipped adds to p the kinds it skipped that SkippedKindsKey does
// not name yet, so the mark is stored in the page's transaction: the
// records are never skipped without it. The pull loop is the only writer
// of the key.
func (c *Client) markSkipped(p *LocalPage, skips pageSkips) error {
	if len(skips.master)+len(skips.events) == 0 {
		return nil
	}
	var mark SkippedKinds
	v, ok, err := c.local.Meta(SkippedKindsKey)
	if err != nil {
		return fmt.Errorf("read %s: %w", SkippedKindsKey, err)
	}
	if ok {
		if err := Decode(v, &mark); err != nil {
			return fmt.Errorf("read %s: %w", SkippedKindsKey, err)
		}
	}
	added := false
	for _, k := range slices.Sorted(maps.Keys(skips.master)) {
		if !slices.Contains(mark.Master, k) {
			mark.Master, added = append(mark.Master, k), true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(skips.events)) {
		if !slices.Contains(mark.Events, k) {
			mark.Events, added = append(mark.Events, k), true
		}
	}
	if !added {
		return nil
	}
	if len(mark.Master) > maxSkippedKinds || len(mark.Events) > maxSkippedKinds {
		return fmt.Errorf("over %d master or event kinds unknown to this build (%v, %v): central is more than a release ahead",
			maxSkippedKinds, mark.Master, mark.Events)
	}
	b, err := Encode(&mark)
	if err != nil {
		return err
	}
	if p.Meta == nil {
		p.Meta = make(map[string][]byte, 1)
	}
	p.Meta[SkippedKindsKey] = b
	return nil
}

// skipped counts a stored page's skipped records and events, and logs
// each kind the first time it comes down in this run.
func (c *Client) skipped(skips pageSkips) {
	logOnce := func(what, kind string, n int) {
		if c.skipLogged == nil {
			c.skipLogged = map[string]bool{}
		}
		if key := what + " " + kind; !c.skipLogged[key] {
			c.skipLogged[key] = true
			c.log.Warn("replication: skipped pulled "+what+"s of a kind this build does not know; a build that knows it pulls them again",
				"kind", kind, "count", n)
		}
	}
	for k, n := range skips.master {
		c.met.SkippedUnknown.WithLabelValues("master").Add(float64(n))
		logOnce("master", string(k), n)
	}
	for k, n := range skips.events {
		c.met.SkippedUnknown.WithLabelValues("event").Add(float64(n))
		logOnce("event", string(k), n)
	}
}

// resyncSkipped moves the cursor back to 0 when SkippedKindsKey names a
// kind this build knows: an older build skipped records or events of it,
// and only a pull from the start brings them all (a resync sends records
// again, but events only from the shop's cursor on). The mark keeps the
// kinds still unknown, in the transaction that moves the cursor, so a
// restart in between neither loses the pull from 0 nor repeats it. It
// runs outside a resync: one under way ends first (sweep included).
func (c *Client) resyncSkipped(ctx context.Context, st *cursorState, stb *[]byte) error {
	v, ok, err := c.local.Meta(SkippedKindsKey)
	if err != nil || !ok {
		return err
	}
	var mark, still SkippedKinds
	if err := Decode(v, &mark); err != nil {
		return fmt.Errorf("read %s: %w", SkippedKindsKey, err)
	}
	var known []string
	for _, k := range mark.Master {
		if knownMasterKind(k) {
			known = append(known, "master "+string(k))
		} else {
			still.Master = append(still.Master, k)
		}
	}
	for _, k := range mark.Events {
		if CheckKind(k) == nil {
			known = append(known, "event "+string(k))
		} else {
			still.Events = append(still.Events, k)
		}
	}
	if len(known) == 0 {
		return nil
	}
	var left []byte // nil deletes the mark
	if len(still.Master)+len(still.Events) > 0 {
		if left, err = Encode(&still); err != nil {
			return err
		}
	}
	next := cursorState{Incarnation: st.Incarnation}
	nb, err := Encode(&next)
	if err != nil {
		return err
	}
	if _, err := c.local.ApplyPage(ctx, LocalPage{CursorKey: CursorKey, From: *stb, To: nb,
		Meta: map[string][]byte{SkippedKindsKey: left}}); err != nil {
		return fmt.Errorf("move the cursor back to 0: %w", err)
	}
	c.log.Warn("replication: pulling again from the start: this build knows kinds an older one skipped",
		"kinds", known, "cursor", st.Cursor)
	*st, *stb = next, nb
	return nil
}

// sweep applies one sweep page: the records of SweptKinds a resync left
// at versions at or below st.Sweep get tombstones, at most limit of them.
// The page that finds the range done also clears st.Sweep.
func (c *Client) sweep(ctx context.Context, st *cursorState, stb *[]byte, sweptTo *uint64, limit int) error {
	next := *st
	if *sweptTo >= st.Sweep {
		next.Sweep = 0
	}
	nb, err := Encode(&next)
	if err != nil {
		return err
	}
	res, err := c.local.ApplyPage(ctx, LocalPage{CursorKey: CursorKey, From: *stb, To: nb,
		Sweep: &Sweep{After: min(*sweptTo, st.Sweep), Below: st.Sweep, Limit: limit}})
	if err != nil {
		return err
	}
	c.met.Swept.Add(float64(res.Swept))
	if res.Swept > 0 {
		c.log.Info("replication: removed records the resync no longer sends", "count", res.Swept, "below", st.Sweep)
	}
	*st, *stb = next, nb
	*sweptTo = res.SweptTo
	if next.Sweep == 0 {
		*sweptTo = 0
	}
	return nil
}

// pulled records a successful pull: its page, if any, is stored.
func (c *Client) pulled(now time.Time, st cursorState) {
	c.met.LastPull.Set(float64(now.UnixNano()) / 1e9)
	c.mu.Lock()
	c.status.LastPull, c.status.LastSync, c.status.Reachable, c.status.Cursor = now, now, true, st.Cursor
	c.resyncing = st.Snapshot != nil
	c.mu.Unlock()
	c.exchanged(false, true)
}

// newIncarnation reports whether an answer's incarnation shows central's
// history is not the one the stored cursor belongs to. Either unknown
// ("": a shop that never saw one, a central older than version 3 or not
// yet given one) tells nothing.
func newIncarnation(stored, answer string) bool {
	return stored != "" && answer != "" && answer != stored
}

// localPage converts a page and works out the cursor after it. Records
// and events of kinds this build does not know are left out and counted
// in skips: a head office a release ahead (README: shops may lag it by
// one) sends kinds it added, and failing the page for them would stop
// every later change at the shop.
func (c *Client) localPage(st cursorState, resp *PullResponse) (LocalPage, cursorState, pageSkips, error) {
	var skips pageSkips
	if err := CheckVersion(resp.V); err != nil {
		return LocalPage{}, st, skips, err
	}
	var p LocalPage
	inc := st.Incarnation
	if resp.Incarnation != "" {
		inc = resp.Incarnation // an answer without one (an older central) tells nothing
	}
	reborn := newIncarnation(st.Incarnation, resp.Incarnation)
	next := cursorState{Cursor: resp.Cursor, Incarnation: inc}
	if rs := resp.Resync; rs != nil {
		base := st.Base
		cursor := st.Cursor
		if st.Snapshot == nil || reborn {
			// The resync starts (again, if central's history changed
			// under it): whatever this node holds now is at or below
			// base, whatever the snapshot sends is written above it.
			base = c.local.MasterVersion()
		}
		if reborn {
			// The cursor is a place in a history central no longer has:
			// central answered as for cursor 0, and so must the rest of
			// the resync's pages ask.
			cursor = 0
		}
		next = cursorState{Cursor: cursor, Snapshot: &SnapshotPos{ID: rs.ID, After: rs.Next}, Base: base, Incarnation: inc}
		if rs.Done {
			next = cursorState{Cursor: rs.ID, Sweep: base, Incarnation: inc}
		}
	} else if reborn {
		return p, st, skips, fmt.Errorf("central's incarnation changed from %q to %q without a resync", st.Incarnation, resp.Incarnation)
	} else if resp.Cursor < st.Cursor {
		return p, st, skips, fmt.Errorf("cursor %d before ours %d without a resync", resp.Cursor, st.Cursor)
	}
	// Outside a resync, a page holds what follows the shop's cursor up to
	// its own: a change at or below the cursor (the shop holds it, or a
	// newer state of the record) would roll master data back for good,
	// and one past the page's cursor would be sent again. Only the shop's
	// own events of older epochs (PullRequest.Own) come without the
	// cursor moving.
	fixed := resp.Resync == nil && resp.Cursor == st.Cursor
	for i, w := range resp.Records {
		if resp.Resync == nil && (w.Version <= st.Cursor || w.Version > resp.Cursor) {
			return p, st, skips, fmt.Errorf("records[%d]: %s %s at version %d outside the page's span (%d, %d] without a resync",
				i, w.Kind, w.ID, w.Version, st.Cursor, resp.Cursor)
		}
		if k := storeline.MasterKind(w.Kind); !knownMasterKind(k) {
			if err := storeline.CheckID("kind", w.Kind); err != nil {
				return p, st, skips, fmt.Errorf("records[%d]: %w", i, err)
			}
			if skips.master == nil {
				skips.master = map[storeline.MasterKind]int{}
			}
			skips.master[k]++
			continue
		}
		ch, err := ChangeFromWire(w)
		if err != nil {
			return p, st, skips, fmt.Errorf("records[%d]: %w", i, err)
		}
		p.Changes = append(p.Changes, ch)
	}
	for i, w := range resp.Events {
		if fixed && storeline.StoreID(w.Origin) != c.cfg.Store {
			return p, st, skips, fmt.Errorf("events[%d]: an event of %s with the cursor still at %d, without a resync", i, w.Origin, st.Cursor)
		}
		ev, refused, err := eventFromWire(w, true)
		if err != nil {
			return p, st, skips, fmt.Errorf("events[%d]: %w", i, err)
		}
		if refused != nil {
			// Well formed, of a kind this build cannot apply (CheckKind).
			if err := storeline.CheckID("kind", w.Kind); err != nil {
				return p, st, skips, fmt.Errorf("events[%d]: %w", i, err)
			}
			if skips.events == nil {
				skips.events = map[storeline.EventKind]int{}
			}
			skips.events[ev.Kind]++
			continue
		}
		p.Events = append(p.Events, ev)
	}
	if fixed && len(resp.Rejections) > 0 {
		return p, st, skips, fmt.Errorf("%d rejections with the cursor still at %d, without a resync", len(resp.Rejections), st.Cursor)
	}
	return p, next, skips, nil
}

// maxKeepRejections bounds ClientConfig.KeepRejections.
const maxKeepRejections = 1 << 24

// keepRejections adds to p the meta values that store rejections and
// delete the oldest stored ones past ClientConfig.KeepRejections, so both
// happen in the page's transaction. A rejection stored already (central
// sent it again) keeps its place. The pull loop is the only writer of
// these keys, and a page applies only on the cursor it was built on, so
// what is read here is what the page applies to. It returns how many the
// shop did not hold.
func (c *Client) keepRejections(p *LocalPage, rejs []WireRejection) (fresh int, err error) {
	keep := uint64(c.cfg.KeepRejections)
	if keep == 0 {
		keep = DefaultKeepRejections
	}
	if p.Meta == nil {
		p.Meta = make(map[string][]byte, 3*len(rejs)+1)
	}
	// get reads through what the page writes already.
	get := func(k string) ([]byte, bool, error) {
		if v, ok := p.Meta[k]; ok {
			return v, v != nil, nil
		}
		return c.local.Meta(k)
	}
	v, _, err := get(rejectionNextKey)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", rejectionNextKey, err)
	}
	var next uint64
	if len(v) == 8 {
		next = binary.BigEndian.Uint64(v)
	}
	before := next
	for _, w := range rejs {
		b, err := Encode(&w)
		if err != nil {
			return 0, err
		}
		key := RejectionPrefix + hex.EncodeToString(w.ID[:])
		_, had, err := get(key)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", key, err)
		}
		p.Meta[key] = b
		if had {
			continue
		}
		p.Meta[rejectionLogKey(next)] = append([]byte(nil), w.ID[:]...)
		if next >= keep {
			lk := rejectionLogKey(next - keep)
			old, ok, err := get(lk)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", lk, err)
			}
			if ok {
				p.Meta[lk] = nil
				if len(old) == len(w.ID) {
					p.Meta[RejectionPrefix+hex.EncodeToString(old)] = nil
				}
			}
		}
		next++
	}
	if next != before {
		p.Meta[rejectionNextKey] = binary.BigEndian.AppendUint64(nil, next)
	}
	return int(next - before), nil
}

func rejectionLogKey(n uint64) string { return fmt.Sprintf("%s%016x", rejectionLogPrefix, n) }

package posbridge

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPI returns the tills' API specification (OpenAPI 3), as served at
// GET /v1/openapi.yaml.
func OpenAPI() []byte { return append([]byte(nil), openAPISpec...) }

// Ledger is what posbridge needs of the store node's ledger. Every
// signature uses root types only, so *ledger.Ledger satisfies it as it is;
// the two ledger calls that return ledger-owned types (Balances and
// MasterChanges) come in through Config as functions instead (see doc.go).
type Ledger interface {
	// Append stores a till's fact. The caller sets ID, Kind, Body,
	// OccurredAt and BusinessDate; the ledger the rest. The same ID with
	// the same body returns the original and created=false; the same ID
	// with another body fails with storeline.Conflict.
	Append(ctx context.Context, ev storeline.Event) (stored storeline.Event, created bool, err error)
	Event(origin storeline.StoreID, id storeline.EventID) (storeline.Event, error)
	Balance(account string, asset storeline.Asset) (decimal.Decimal, error)
	// BalancesAcross calls fn with the balance of asset on every account
	// prefix+part+suffix, part one path segment: one item's stock in
	// every department ("stock/<store>/", "/<item>").
	BalancesAcross(prefix, suffix string, asset storeline.Asset, fn func(part string, amount decimal.Decimal)) error
	EventsByDate(from, to storeline.Date, fn func(storeline.Event) error) error
	// PrunedDate is the latest business date of which the journal's
	// retention removed events ("" if none): EventsByDate no longer holds
	// all of that date and earlier ones.
	PrunedDate() (storeline.Date, error)
	// ShiftTotals returns the running totals of a shift at a terminal,
	// kept by the ledger with each event, so a close reads one record
	// however long the journal is.
	ShiftTotals(terminal storeline.TerminalID, shift storeline.ShiftID) (storeline.ShiftTotals, error)
	// OpenShifts returns the totals of a terminal's shifts opened and
	// not closed.
	OpenShifts(terminal storeline.TerminalID) ([]storeline.ShiftTotals, error)
	ReturnsOf(original storeline.EventID) ([]storeline.Event, error)
	GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error
	LookupMaster(kind storeline.MasterKind, uniqueKey string, into storeline.Record) error
	ScanMaster(kind storeline.MasterKind, idPrefix string, fn func(storeline.Record) error) error
	MasterVersion() uint64
}

// Balance is the sum of one asset on one account; the same fields as
// ledger.Balance, so node converts with a plain struct conversion.
type Balance struct {
	Account string
	Asset   storeline.Asset
	Amount  decimal.Decimal
}

// MasterChange is one change of master data at a node-local version; the
// same fields as ledger.MasterChange.
type MasterChange struct {
	Version uint64
	Kind    storeline.MasterKind
	ID      string
	Deleted bool
	Record  storeline.Record
}

// Config configures a Server. Build it with DefaultConfig and fill in the
// store, the ledger and its two adapter functions.
type Config struct {
	// Store is the shop this node serves; every event it appends has this
	// origin and every terminal must belong to it.
	Store storeline.StoreID
	// Ledger is the node's ledger.
	Ledger Ledger
	// Balances returns the balances of accounts starting with prefix
	// (ledger.Ledger.Balances, converted).
	Balances func(prefix string) ([]Balance, error)
	// MasterChanges returns up to limit master-data changes after version
	// after, in version order (ledger.Ledger.MasterChanges, converted).
	MasterChanges func(after uint64, limit int) ([]MasterChange, error)
	// Now is the clock; NewID makes the IDs of events the node authors
	// itself (a shift close whose till gave no ID).
	Now   func() time.Time
	NewID func() storeline.EventID
	// WeighedLayout is the chain's in-store weighed barcode layout.
	WeighedLayout storeline.WeighedLayout
	// Registerer receives the API's metrics; nil registers none.
	Registerer prometheus.Registerer
	// MaxBodyBytes bounds a request body (413 beyond). MaxJSONDepth bounds
	// its nesting.
	MaxBodyBytes int64
	MaxJSONDepth int
	// PINAttempts failed logins of one seller at one terminal within
	// PINWindow lock further attempts until the oldest failure leaves the
	// window (429 with Retry-After).
	PINAttempts int
	PINWindow   time.Duration
	// SessionTTL is how long a seller's session lasts; MaxSessions bounds
	// the sessions (and lockout records) held in memory.
	SessionTTL  time.Duration
	MaxSessions int
	// MaxShiftDays is how many business days a shift may stay open: a
	// shift whose opening's business date is further back cannot be
	// closed. (It no longer bounds a scan: the close reads the ledger's
	// shift totals.)
	MaxShiftDays int
	// MaxStatsDays bounds the date range of GET /v1/stats/sales.
	MaxStatsDays int
	// MaxPageSize bounds GET /v1/catalog/changes?limit=.
	MaxPageSize int
	// Logger receives the API's logs (internal errors in full); nil
	// discards them.
	Logger *slog.Logger
	// Replication reports the replication state for /v1/health
	// ("standalone" while the node has no central to talk to).
	Replication func() string
	// ReplicationSync reports whether central was reachable at the last
	// attempt and when the last successful sync was (zero: never); nil
	// for a standalone node, and /v1/health then omits both.
	ReplicationSync func() (reachable bool, lastSync time.Time)
	// Version is the build's version, reported by /v1/health.
	Version string
	// Points reaches head office for loyalty rights (loyalty.go); nil for
	// a standalone node. PointsFloat is the rights per customer a shop
	// keeps when it hands the rest back to central.
	Points      PointsBroker
	PointsFloat int64
	// Orders reaches head office for the shop's expected deliveries
	// (orders.go); nil for a standalone node, whose GET /v1/orders is a
	// 404.
	Orders OrderSource
	// MaxReservationDays bounds how many business days after it is made
	// a reservation may hold goods (at most storeline.MaxReservationDays,
	// what head office accepts).
	MaxReservationDays int
}

// DefaultConfig returns production-sane limits; the caller sets Store,
// Ledger, Balances and MasterChanges.
func DefaultConfig() Config {
	return Config{
		Now:           time.Now,
		NewID:         storeline.NewEventID,
		WeighedLayout: storeline.DefaultWeighedLayout(),
		MaxBodyBytes:  1 << 20,
		MaxJSONDepth:  16,
		PINAttempts:   5,
		PINWindow:     5 * time.Minute,
		SessionTTL:    12 * time.Hour,
		MaxSessions:   10000,
		MaxShiftDays:  3,
		MaxStatsDays:  366,
		MaxPageSize:   5000,
		Replication:   func() string { return "standalone" },
		Version:       "dev",
		PointsFloat:   100,

		MaxReservationDays: storeline.MaxReservationDays,
	}
}

// Validate names every bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, storeline.Invalidf(field, format, args...))
	}
	if err := storeline.CheckID("Store", string(c.Store)); err != nil {
		errs = append(errs, err)
	}
	if c.Ledger == nil {
		bad("Ledger", "a ledger is required")
	}
	if c.Balances == nil {
		bad("Balances", "a balances function is required")
	}
	if c.MasterChanges == nil {
		bad("MasterChanges", "a master-changes function is required")
	}
	if c.Now == nil {
		bad("Now", "a clock is required")
	}
	if c.NewID == nil {
		bad("NewID", "an ID generator is required")
	}
	if err := c.WeighedLayout.Validate(); err != nil {
		errs = append(errs, storeline.Invalidf("WeighedLayout", "%v", err))
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 64<<20 {
		bad("MaxBodyBytes", "%d out of [1 KiB, 64 MiB]", c.MaxBodyBytes)
	}
	if c.MaxJSONDepth < 4 || c.MaxJSONDepth > 64 {
		bad("MaxJSONDepth", "%d out of [4, 64]", c.MaxJSONDepth)
	}
	if c.PINAttempts < 1 || c.PINAttempts > 100 {
		bad("PINAttempts", "%d out of [1, 100]", c.PINAttempts)
	}
	if c.PINWindow < time.Second || c.PINWindow > 24*time.Hour {
		bad("PINWindow", "%s out of [1s, 24h]", c.PINWindow)
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour {
		bad("SessionTTL", "%s out of [1m, 168h]", c.SessionTTL)
	}
	if c.MaxSessions < 1 || c.MaxSessions > 1_000_000 {
		bad("MaxSessions", "%d out of [1, 1000000]", c.MaxSessions)
	}
	if c.MaxShiftDays < 1 || c.MaxShiftDays > 31 {
		bad("MaxShiftDays", "%d out of [1, 31]", c.MaxShiftDays)
	}
	if c.MaxStatsDays < 1 || c.MaxStatsDays > 3660 {
		bad("MaxStatsDays", "%d out of [1, 3660]", c.MaxStatsDays)
	}
	if c.MaxPageSize < 1 || c.MaxPageSize > 100000 {
		bad("MaxPageSize", "%d out of [1, 100000]", c.MaxPageSize)
	}
	if c.Replication == nil {
		bad("Replication", "a replication state function is required")
	}
	if c.PointsFloat < 0 || c.PointsFloat > storeline.MaxPoints {
		bad("PointsFloat", "%d out of [0, %d]", c.PointsFloat, int64(storeline.MaxPoints))
	}
	if c.MaxReservationDays < 0 || c.MaxReservationDays > storeline.MaxReservationDays {
		bad("MaxReservationDays", "%d out of [0, %d]", c.MaxReservationDays, storeline.MaxReservationDays)
	}
	if len(errs) > 0 {
		return storeline.E("posbridge.Config.Validate", storeline.Invalid, errors.Join(errs...))
	}
	return nil
}

// Server serves the tills' API. It holds sessions and PIN lockouts in
// memory; everything else lives in the ledger.
type Server struct {
	cfg      Config
	led      Ledger
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	m        metrics
	// cat and engine price from the ledger's master data (pricing.go).
	cat     *pricing.MasterCatalog
	engine  *pricing.Engine
	points  pointsLocks    // loyalty.go
	returns returnLocks    // sales.go
	lm      loyaltyMetrics // loyalty.go
	// storeAt caches the store's record (catalog.go, store).
	storeAt atomic.Pointer[storeRecord]
	// shiftDays remembers the days shifts opened on (shifts.go).
	shiftDays shiftDays
	// reserving makes a reservation's availability check and its append
	// one step among reservations (reservations.go, reserve).
	reserving sync.Mutex
}

type metrics struct {
	duration      *prometheus.HistogramVec
	committed     prometheus.Counter
	discrepancies prometheus.Counter
	pointsRefused prometheus.Counter
	// afterClose counts receipts and returns stored in a shift already
	// closed: stored (the sale or refund happened), in no Z report.
	afterClose *prometheus.CounterVec
	// reservations counts reservations of goods made, refused for too few
	// available, and ended (collected, released, lapsed); retries not
	// counted (reservations.go).
	reservations *prometheus.CounterVec
}

// New checks the config and builds a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:      cfg,
		led:      cfg.Ledger,
		log:      log,
		sessions: newSessions(cfg.PINAttempts, cfg.PINWindow, cfg.SessionTTL, cfg.MaxSessions),
		cat:      pricing.NewMasterCatalog(cfg.Ledger),
	}
	s.engine = pricing.New(s.cat)
	s.m = metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "storeline_http_request_duration_seconds",
			Help:    "Duration of till API requests by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "code"}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_receipts_committed_total",
			Help: "Receipts appended to the ledger (retries not counted).",
		}),
		discrepancies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_receipt_discrepancies_total",
			Help: "Receipt lines whose till price or discount differed from the node's.",
		}),
		pointsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_loyalty_points_refused_total",
			Help: "Receipts refused for paying more points than the shop may take.",
		}),
		afterClose: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storeline_shift_facts_after_close_total",
			Help: "Receipts and returns stored in a shift already closed, so in no Z report (retries not counted), by kind.",
		}, []string{"kind"}),
	}
	s.m.reservations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storeline_reservations_total",
		Help: "Reservations of goods made, refused for too few available, and ended (collected, released, lapsed), retries not counted.",
	}, []string{"outcome"})
	for _, k := range []string{"receipt", "return"} {
		s.m.afterClose.WithLabelValues(k)
	}
	for _, o := range []string{reservationMade, reservationRefused, string(storeline.ReservationCollected), string(storeline.ReservationReleased), string(storeline.ReservationLapsed)} {
		s.m.reservations.WithLabelValues(o)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.m.duration, s.m.committed, s.m.discrepancies, s.m.pointsRefused, s.m.afterClose, s.m.reservations} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, storeline.E("posbridge.New", storeline.Internal, fmt.Errorf("register metrics: %w", err))
			}
		}
	}
	var err error
	if s.lm, err = newLoyaltyMetrics(cfg.Registerer); err != nil {
		return nil, storeline.E("posbridge.New", storeline.Internal, err)
	}
	s.routes()
	return s, nil
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP serves one request and records its duration by route pattern.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	route := r.Pattern // set by the mux on r
	if route == "" {
		route = "unmatched"
	}
	s.m.duration.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
}

type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// handler is an API handler; an error it returns becomes a problem answer.
type handler func(w http.ResponseWriter, r *http.Request, c *caller) error

// access says what a route needs beyond a terminal token.
type access int

const (
	public      access = iota // no credentials (health, spec)
	terminal                  // a terminal token
	withSession               // a terminal token and a seller session
	manager                   // a terminal token and a manager's session
)

func (s *Server) routes() {
	m := http.NewServeMux()
	h := func(pattern string, a access, fn handler) { m.Handle(pattern, s.wrap(a, false, fn)) }
	// A route that posts a fact checks the session's rights for a new
	// fact only: a retry is answered from the stored fact (authenticate).
	f := func(pattern string, a access, fn handler) { m.Handle(pattern, s.wrap(a, true, fn)) }
	h("GET /v1/health", public, s.health)
	h("GET /v1/openapi.yaml", public, s.spec)
	h("POST /v1/sessions", terminal, s.login)
	h("DELETE /v1/sessions/current", withSession, s.logout)
	h("GET /v1/items/{sku}", terminal, s.getItem)
	h("GET /v1/barcodes/{code}", terminal, s.getBarcode)
	h("GET /v1/catalog/changes", terminal, s.catalogChanges)
	h("GET /v1/cards/{code}", terminal, s.getCard)
	h("GET /v1/stock/{sku}", terminal, s.getStock)
	h("POST /v1/receipts", terminal, s.postReceipt)
	h("GET /v1/receipts/{id}", terminal, s.getReceipt)
	f("POST /v1/returns", manager, s.postReturn)
	f("POST /v1/cash", withSession, s.postCash)
	f("POST /v1/shifts", withSession, s.openShift)
	f("POST /v1/shifts/{id}/close", withSession, s.closeShift)
	f("POST /v1/documents", withSession, s.postDocument)
	f("POST /v1/customers", withSession, s.postCustomer)
	f("POST /v1/baskets", withSession, s.postBasket)
	h("POST /v1/baskets/price", terminal, s.priceBasket)
	h("GET /v1/baskets/{id}", terminal, s.getBasket)
	f("POST /v1/reservations", withSession, s.postReservation)
	h("GET /v1/reservations", terminal, s.listReservations)
	h("GET /v1/reservations/{id}", terminal, s.getReservation)
	f("POST /v1/reservations/{id}/release", withSession, s.releaseReservation)
	f("POST /v1/reservations/{id}/collect", withSession, s.collectReservation)
	h("GET /v1/orders", terminal, s.listOrders)
	h("GET /v1/sellers", terminal, s.getSellers)
	h("GET /v1/messages", terminal, s.getMessages)
	h("GET /v1/stats/sales", withSession, s.salesStats)
	m.Handle("/", s.wrap(public, false, func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		return storeline.Errorf(storeline.NotFound, "", "no route %s %s", r.Method, r.URL.Path)
	}))
	s.mux = m
}

// wrap authenticates the caller as a needs (on a route that posts a fact,
// for a new fact only: authenticate) and turns a returned error into a
// problem answer.
func (s *Server) wrap(a access, fact bool, fn handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c *caller
		var err error
		if a != public {
			c, err = s.authenticate(r, a, fact)
		}
		if err == nil {
			err = fn(w, r, c)
		}
		if err != nil {
			s.problem(w, r, err)
		}
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *caller) error {
	h := healthJSON{
		Store:       s.cfg.Store,
		Version:     s.cfg.Version,
		Replication: s.cfg.Replication(),
	}
	if s.cfg.ReplicationSync != nil {
		reachable, last := s.cfg.ReplicationSync()
		h.CentralReachable = &reachable
		if !last.IsZero() {
			t := last.UTC()
			h.LastSync = &t
		}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

type healthJSON struct {
	Store            storeline.StoreID `json:"store"`
	Version          string            `json:"version"`
	Replication      string            `json:"replication"`
	CentralReachable *bool             `json:"central_reachable,omitempty"`
	LastSync         *time.Time        `json:"last_sync,omitempty"`
}

func (s *Server) spec(w http.ResponseWriter, r *http.Request, _ *caller) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPISpec)
	return nil
}

package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// Node is a running store node. Build it with New, then call Run (or Start
// and later Stop).
type Node struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	met    *trackedRegisterer // reg, remembering what the node registered (metrics.go)
	clock  *crdt.Clock
	ledger *ledger.Ledger
	repl   *replication.Client // nil when standalone

	tillLn, adminLn net.Listener
	till, admin     *http.Server

	mu      sync.Mutex
	started bool
	stopped bool
	serveWG sync.WaitGroup
	serveCh chan error    // the first fatal serve error
	done    chan struct{} // closed once the node is stopped (markStopped)

	loySweep   *periodic     // loyalty.go
	retention  *periodic     // retention.go
	lapse      *periodic     // reservations.go
	points     *pointsBroker // loyalty.go; nil when standalone
	orders     *ordersClient // orders.go; nil when standalone
	ordersCopy *periodic     // orders.go

	seams    *ledger.Seams // the ledger's I/O seams; set by this package's tests only
	runWaits func()        // tests: Run is about to wait for its end
}

// New checks cfg and returns a node that has opened nothing yet. reg is the
// registry /metrics serves; nil means a fresh registry with the Go and
// process collectors. logger nil means slog.Default().
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "storeline_node_info",
		Help:        "Always 1; its labels are the node's store and build version.",
		ConstLabels: prometheus.Labels{"store": string(cfg.StoreID), "version": cfg.Version},
	})
	info.Set(1)
	met := &trackedRegisterer{reg: reg}
	if err := met.Register(info); err != nil {
		return nil, fmt.Errorf("node: register metrics: %w", err)
	}
	return &Node{
		cfg:     cfg,
		log:     logger.With("store", string(cfg.StoreID)),
		reg:     reg,
		met:     met,
		clock:   crdt.NewClock(wallClock(cfg.Clock), cfg.MaxClockSkew),
		serveCh: make(chan error, 2),
		done:    make(chan struct{}),
	}, nil
}

// wallClock is the configured clock, or time.Now.
func wallClock(c func() time.Time) func() time.Time {
	if c == nil {
		return time.Now
	}
	return c
}

// Start opens the ledger, provisions the configured terminals, binds both
// listeners and starts serving. On error everything opened is closed again.
func (n *Node) Start() (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("node: already started")
	}
	if n.stopped {
		// Stop before Start: a node is started at most once, and Stop
		// would not close what this Start opened.
		return errors.New("node: stopped")
	}
	n.started = true
	n.log.Info("starting", "config", n.cfg.String())

	o := n.cfg.ledgerOptions(n.clock)
	o.Registerer = n.met
	o.Logger = n.log
	o.Seams = n.seams
	if err := o.Validate(); err != nil {
		n.markStopped() // nothing opened, nothing for Stop to do
		n.met.unregisterAll()
		return fmt.Errorf("node: ledger options: %w", err)
	}
	// The replication certificate and CA are read before the ledger opens,
	// so a missing or bad file fails the start having opened nothing.
	tlsConf, err := n.cfg.Replication.loadClientTLS()
	if err == nil && n.cfg.Replication.Enabled() {
		// A certificate naming another store too: the start fails with
		// the data directory as it found it (a restore may still go in).
		if err = replication.CheckClientConfig(n.cfg.clientConfig(tlsConf)); err != nil {
			err = fmt.Errorf("node: replication: %w", err)
		}
	}
	if err != nil {
		n.markStopped()
		n.met.unregisterAll()
		return err
	}
	l, err := ledger.Open(o)
	if err != nil {
		n.markStopped()
		n.met.unregisterAll()
		return fmt.Errorf("node: open ledger in %s: %w", n.cfg.DataDir, err)
	}
	n.ledger = l
	defer func() {
		if err != nil {
			n.closeAll()
			n.markStopped() // nothing left for Stop to do
		}
	}()
	if err := n.provisionTerminals(context.Background()); err != nil {
		return err
	}
	if n.cfg.Replication.Enabled() {
		cc := n.cfg.clientConfig(tlsConf)
		cc.Logger = n.log.With("component", "replication")
		met, err := replication.NewMetrics(n.met)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		if n.repl, err = replication.NewClient(cc, LedgerLocal(n.ledger, cc.Logger), met); err != nil {
			return fmt.Errorf("node: replication: %w", err)
		}
	}

	tillHandler, err := n.tillHandler()
	if err != nil {
		return err
	}
	if n.tillLn, err = net.Listen("tcp", n.cfg.TillAddr); err != nil {
		return fmt.Errorf("node: till listener: %w", err)
	}
	if n.adminLn, err = net.Listen("tcp", n.cfg.AdminAddr); err != nil {
		return fmt.Errorf("node: admin listener: %w", err)
	}
	errLog := slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)
	n.till = &http.Server{
		Handler:           tillHandler,
		ReadHeaderTimeout: n.cfg.ReadHeaderTimeout,
		ReadTimeout:       n.cfg.ReadTimeout,
		WriteTimeout:      n.cfg.WriteTimeout,
		IdleTimeout:       n.cfg.IdleTimeout,
		ErrorLog:          errLog,
	}
	// Neither ReadTimeout nor WriteTimeout on the admin listener: an
	// online backup may stream for minutes, and a request body's reading
	// is bounded where it is read (admin.go, decode).
	n.admin = &http.Server{
		Handler:           n.adminHandler(),
		ReadHeaderTimeout: n.cfg.ReadHeaderTimeout,
		IdleTimeout:       n.cfg.IdleTimeout,
		ErrorLog:          errLog,
	}
	n.serve(n.till, n.tillLn)
	n.serve(n.admin, n.adminLn)
	if n.repl != nil {
		n.repl.Start()
	}
	n.startJournalRetention() // retention.go
	n.log.Info("serving", "till", n.TillURL(), "admin", n.AdminURL())
	return nil
}

func (n *Node) serve(s *http.Server, ln net.Listener) {
	n.serveWG.Add(1)
	go func() {
		defer n.serveWG.Done()
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.serveCh <- err
		}
	}()
}

// provisionTerminals stores the configured terminals' token hashes. The
// store is the node's own; a token is never stored, only its hash.
func (n *Node) provisionTerminals(ctx context.Context) error {
	if len(n.cfg.Terminals) == 0 {
		return nil
	}
	recs := make([]storeline.Record, 0, len(n.cfg.Terminals))
	for _, t := range n.cfg.Terminals {
		name := t.Name
		if name == "" {
			name = string(t.ID)
		}
		recs = append(recs, &storeline.Terminal{ID: t.ID, Store: n.cfg.StoreID, Name: name, TokenHash: storeline.TokenHash(t.Token)})
	}
	if _, err := n.ledger.PutMaster(ctx, recs); err != nil {
		return fmt.Errorf("node: provision terminals: %w", err)
	}
	return nil
}

// Run starts the node (unless Start was called) and serves until ctx ends,
// a listener fails or the node is stopped (Stop), then stops it cleanly.
// A node already stopped (or whose Start failed) is an error.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	started, stopped := n.started, n.stopped
	n.mu.Unlock()
	if stopped {
		return errors.New("node: stopped")
	}
	if !started {
		if err := n.Start(); err != nil {
			return err
		}
	}
	var serveErr error
	if n.runWaits != nil {
		n.runWaits()
	}
	select {
	case <-ctx.Done():
	case <-n.done:
	case serveErr = <-n.serveCh:
		n.log.Error("listener failed", "err", serveErr)
	}
	if err := n.Stop(); err != nil {
		return errors.Join(serveErr, err)
	}
	return serveErr
}

// Stop drains both listeners (bounded by ShutdownTimeout), then closes the
// ledger and takes the node's metrics off the registry, so a node started
// again on it registers them anew. It is safe to call more than once; a
// node stopped before Start does not start.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || !n.started {
		n.markStopped()
		n.met.unregisterAll()
		return nil
	}
	n.markStopped()
	n.log.Info("stopping", "timeout", n.cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	servers := []*http.Server{n.till, n.admin}
	errs := make([]error, len(servers), len(servers)+1)
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				// The drain timed out: cut the rest off before closing the ledger.
				s.Close()
				errs[i] = fmt.Errorf("node: drain: %w", err)
			}
		}()
	}
	wg.Wait()
	n.serveWG.Wait()
	n.stopPointsSweep()      // loyalty.go
	n.stopJournalRetention() // retention.go
	n.stopReservationLapse() // reservations.go
	n.stopOrdersCopy()       // orders.go
	n.closePoints()          // loyalty.go
	if n.repl != nil {
		// Whatever is in flight is cut short: a push is resent from the
		// acknowledged position, a page not applied is pulled again.
		n.repl.Stop()
	}
	if err := n.ledger.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: close ledger: %w", err))
	}
	n.met.unregisterAll()
	n.log.Info("stopped")
	return errors.Join(errs...)
}

// markStopped records that the node is stopped for good and wakes Run;
// n.mu is held.
func (n *Node) markStopped() {
	if !n.stopped {
		n.stopped = true
		close(n.done)
	}
}

// closeAll undoes a failed Start.
func (n *Node) closeAll() {
	for _, ln := range []net.Listener{n.tillLn, n.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
	n.stopPointsSweep()      // loyalty.go
	n.stopJournalRetention() // retention.go
	n.stopReservationLapse() // reservations.go
	n.stopOrdersCopy()       // orders.go
	n.closePoints()          // loyalty.go
	if n.ledger != nil {
		n.ledger.Close()
	}
	n.met.unregisterAll()
}

// Ledger returns the node's ledger, for tests and embedders. It is nil
// before Start.
func (n *Node) Ledger() *ledger.Ledger { return n.ledger }

// Registry returns the registry /metrics serves.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// TillURL is the base URL of the tills' API, with the port actually bound.
func (n *Node) TillURL() string { return listenURL(n.tillLn) }

// AdminURL is the base URL of the admin listener, with the port actually
// bound.
func (n *Node) AdminURL() string { return listenURL(n.adminLn) }

func listenURL(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	a := ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

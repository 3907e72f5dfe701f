package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// ReplicationConfig is the node's link to central. Empty Central means
// standalone: no client runs and /v1/health says "standalone".
type ReplicationConfig struct {
	// Central lists the base URLs of central's replication listeners.
	Central []string
	// Token authenticates the shop (tests, trials). Secret: String
	// redacts it.
	Token string
	// CAFile, CertFile and KeyFile set up mutual TLS (production): the
	// chain CA that signed central's certificate, and the shop's own
	// certificate and key (storeline certs issue).
	CAFile, CertFile, KeyFile string
	// Limits and timers, see replication.ClientConfig.
	MaxBatchEvents int
	MaxBatchBytes  int
	PageItems      int
	PushInterval   time.Duration
	PollWait       time.Duration
	RequestTimeout time.Duration
	BackoffMin     time.Duration
	BackoffMax     time.Duration
	// KeepRejections is how many of central's rejections of the shop's
	// events the shop keeps, the latest (replication.ClientConfig); zero
	// means replication.DefaultKeepRejections.
	KeepRejections int
	// LoyaltyTimeout bounds a call to central made while a till waits (a
	// points reservation, a card's balance, the expected deliveries); past
	// it the shop is offline for loyalty (loyalty.go) and the tills are
	// told head office cannot be reached. Zero means the default, one
	// second.
	LoyaltyTimeout time.Duration
}

// Enabled reports whether the node replicates.
func (r ReplicationConfig) Enabled() bool { return len(r.Central) > 0 }

func defaultReplication() ReplicationConfig {
	d := replication.DefaultClientConfig()
	return ReplicationConfig{
		MaxBatchEvents: d.MaxBatchEvents, MaxBatchBytes: d.MaxBatchBytes, PageItems: d.PageItems,
		PushInterval: d.PushInterval, PollWait: d.PollWait, RequestTimeout: d.RequestTimeout,
		BackoffMin: d.BackoffMin, BackoffMax: d.BackoffMax, KeepRejections: d.KeepRejections,
		LoyaltyTimeout: defaultLoyaltyTimeout,
	}
}

// clientConfig returns the replication client's config; tlsConf is nil
// unless the TLS files are set.
func (c Config) clientConfig(tlsConf *tls.Config) replication.ClientConfig {
	r := c.Replication
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token, cc.TLS = c.StoreID, r.Central, r.Token, tlsConf
	cc.MaxBatchEvents, cc.MaxBatchBytes, cc.PageItems = r.MaxBatchEvents, r.MaxBatchBytes, r.PageItems
	cc.PushInterval, cc.PollWait, cc.RequestTimeout = r.PushInterval, r.PollWait, r.RequestTimeout
	cc.BackoffMin, cc.BackoffMax = r.BackoffMin, r.BackoffMax
	cc.KeepRejections = r.KeepRejections
	return cc
}

// replicationString renders the Replication section for the start-up
// log, the token redacted.
func (c Config) replicationString() string {
	r := c.Replication
	cc := c.clientConfig(nil)
	if r.CAFile != "" || r.CertFile != "" || r.KeyFile != "" {
		cc.TLS = &tls.Config{} // stands in for the files, loaded at Start
	}
	s := cc.String()
	if cc.TLS != nil {
		s += fmt.Sprintf(" CAFile=%q CertFile=%q KeyFile=%q", r.CAFile, r.CertFile, r.KeyFile)
	}
	return s + fmt.Sprintf(" LoyaltyTimeout=%v", r.LoyaltyTimeout)
}

// validateReplication names every bad field of the Replication section.
func (c Config) validateReplication() error {
	r := c.Replication
	if !r.Enabled() {
		// Credentials without a central are a mistake, not standalone.
		if r.Token != "" || r.CAFile != "" || r.CertFile != "" || r.KeyFile != "" {
			return errors.New("Replication.Central: required when Token, CAFile, CertFile or KeyFile is set (empty Central runs standalone)")
		}
		return nil
	}
	var errs []error
	tlsSet := r.CAFile != "" || r.CertFile != "" || r.KeyFile != ""
	if tlsSet && (r.CAFile == "" || r.CertFile == "" || r.KeyFile == "") {
		errs = append(errs, errors.New("Replication.CAFile, CertFile, KeyFile: set all three or none"))
	}
	cc := c.clientConfig(nil)
	if tlsSet {
		cc.TLS = &tls.Config{} // stands in for the files, loaded at Start
	}
	if err := cc.Validate(); err != nil {
		// The client joins one error a bad field: each names the section,
		// not only the first (cmd/storeline names each by its flag).
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				errs = append(errs, fmt.Errorf("Replication: %w", e))
			}
		} else {
			errs = append(errs, fmt.Errorf("Replication: %w", err))
		}
	}
	if r.LoyaltyTimeout < 0 || r.LoyaltyTimeout > maxLoyaltyTimeout {
		errs = append(errs, fmt.Errorf("Replication.LoyaltyTimeout: %v out of range [0, %v] (0: %v)", r.LoyaltyTimeout, maxLoyaltyTimeout, defaultLoyaltyTimeout))
	}
	return errors.Join(errs...)
}

// loadClientTLS reads the shop's certificate and the chain CA.
func (r ReplicationConfig) loadClientTLS() (*tls.Config, error) {
	if r.CAFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("node: replication certificate (replication-cert %s, replication-key %s): %w", r.CertFile, r.KeyFile, err)
	}
	ca, err := os.ReadFile(r.CAFile)
	if err != nil {
		return nil, fmt.Errorf("node: replication CA (replication-ca): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("node: replication CA %s holds no PEM certificate", r.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// LedgerLocal adapts a ledger to the replication client's Local. Events
// of a page the ledger refuses (the same ID with another body) are logged
// to log (nil: discarded); the rest of the page applies.
func LedgerLocal(l *ledger.Ledger, log *slog.Logger) replication.Local {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return ledgerLocal{l, log}
}

type ledgerLocal struct {
	l   *ledger.Ledger
	log *slog.Logger
}

func (a ledgerLocal) Epoch() uint64 { return a.l.Epoch() }

func (a ledgerLocal) Position() replication.Position {
	p := a.l.Position()
	return replication.Position{Epoch: p.Epoch, Seq: p.Seq}
}

func (a ledgerLocal) OwnEvents(from replication.Position, limit int) ([]storeline.Event, error) {
	return a.l.Journal(a.l.Origin(), ledger.Position{Epoch: from.Epoch, Seq: from.Seq}, limit)
}

func (a ledgerLocal) OwnEpochs() ([]replication.Position, error) {
	ps, err := a.l.OwnEpochs()
	out := make([]replication.Position, len(ps))
	for i, p := range ps {
		out[i] = replication.Position{Epoch: p.Epoch, Seq: p.Seq}
	}
	return out, err
}

func (a ledgerLocal) Meta(key string) ([]byte, bool, error) { return a.l.Meta(key) }

func (a ledgerLocal) SetMeta(ctx context.Context, key string, val []byte) error {
	return a.l.SetMeta(ctx, key, val)
}

func (a ledgerLocal) MasterVersion() uint64 { return a.l.MasterVersion() }

func (a ledgerLocal) ApplyPage(ctx context.Context, p replication.LocalPage) (replication.PageResult, error) {
	pp := ledger.PulledPage{CursorKey: p.CursorKey, From: p.From, To: p.To, Events: p.Events, Meta: p.Meta}
	pp.Records = make([]ledger.PulledRecord, len(p.Changes))
	for i, c := range p.Changes {
		pp.Records[i] = ledger.PulledRecord{Kind: c.Kind, ID: c.ID, Record: c.Record}
	}
	if sw := p.Sweep; sw != nil {
		pp.Sweep = &ledger.PulledSweep{After: sw.After, Below: sw.Below, Kinds: replication.SweptKinds, Limit: sw.Limit}
	}
	res, err := a.l.ApplyPulled(ctx, pp)
	if err != nil {
		return replication.PageResult{}, err
	}
	for _, e := range res.Refused {
		// A refused event disagrees with what this node holds (the same
		// ID with another body): reported, never retried.
		a.log.Error("replication: pulled event refused", "err", e)
	}
	return replication.PageResult{MasterVersion: res.MasterVersion, Swept: res.Swept, SweptTo: res.SweptTo}, nil
}

// replicationState is what /v1/health reports.
func (n *Node) replicationState() string {
	if n.repl == nil {
		return "standalone"
	}
	return n.repl.Status().State
}

// Replication returns the replication client, nil when standalone or
// before Start.
func (n *Node) Replication() *replication.Client { return n.repl }

package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

// Config is the whole configuration of a store node. Every limit and every
// timer is a field, so tests can scale time down; DefaultConfig gives a
// production-sane value for each, and Validate checks each against a bound.
type Config struct {
	// StoreID is the shop this node serves; it is the origin of every event
	// the node authors.
	StoreID storeline.StoreID
	// DataDir holds the ledger (WAL and Badger). One node per directory.
	DataDir string

	// TillAddr is where the tills' API listens (the shop LAN). AdminAddr is
	// the admin listener (/metrics, /healthz, /admin/v1/...), loopback by
	// default. Both are host:port with a numeric port in [0, 65535] and an
	// empty host, an IP or a host name. Port 0 picks a free port; TillURL
	// and AdminURL report it.
	TillAddr  string
	AdminAddr string
	// AdminToken guards the admin API (Authorization: Bearer). /metrics and
	// /healthz are open. Secret: String redacts it.
	AdminToken string
	// Terminals are provisioned (their token hashes stored as master data)
	// each time the node starts; optional. Secret tokens: String redacts them.
	Terminals []TerminalToken

	// MaxBodyBytes bounds a till request body; MaxImportBytes bounds an
	// admin master-data import.
	MaxBodyBytes   int64
	MaxImportBytes int64

	// HTTP timers of both listeners. WriteTimeout applies to the tills' API
	// only: an online backup on the admin listener may stream for minutes.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests on stop; the
	// ledger is closed after it either way.
	ShutdownTimeout time.Duration

	// PINAttempts failed seller logins within PINWindow lock a seller out
	// at a till until the window passes. SessionTTL is how long a seller's
	// till session lasts.
	PINAttempts int
	PINWindow   time.Duration
	SessionTTL  time.Duration

	// MaxSessions bounds the seller sessions (and PIN lock-out records)
	// held in memory.
	MaxSessions int
	// MaxJSONDepth bounds the nesting of a till request body.
	MaxJSONDepth int
	// MaxShiftDays is how many business days back a shift close looks for
	// the shift's opening.
	MaxShiftDays int
	// MaxStatsDays bounds the date range of the tills' sales statistics.
	MaxStatsDays int
	// MaxPageSize bounds a page of catalogue changes served to a till.
	MaxPageSize int
	// PointsFloat is the loyalty rights per customer the shop keeps when
	// it hands the rest back to central (online, after a receipt).
	PointsFloat int64

	// PointsSweepInterval is how often the shop, once central is
	// reachable, hands back rights that receipts earned offline: 0 means
	// DefaultPointsSweep, negative only at the next earning receipt
	// online.
	PointsSweepInterval time.Duration

	// JournalRetention is how long the shop keeps its journal's events
	// after central acknowledged them (events of other origins: after
	// their time), then prunes them (retention.go): 0 means
	// DefaultJournalRetention, negative keeps everything.
	// JournalPruneInterval is how often it looks (0: the default).
	JournalRetention     time.Duration
	JournalPruneInterval time.Duration

	// ReservationLapseInterval is how often the node lapses the
	// reservations whose date has passed (reservations.go); 0 means
	// DefaultReservationLapse.
	ReservationLapseInterval time.Duration

	// OrdersCopyInterval is how often a replicating node refreshes its
	// copy of the shop's orders from head office (orders.go); 0 means
	// DefaultOrdersCopyInterval.
	OrdersCopyInterval time.Duration

	// WeighedLayout is the chain's in-store weighed barcode layout.
	WeighedLayout storeline.WeighedLayout

	// MaxClockSkew is how far ahead of the local wall clock a remote HLC
	// time may be before it is clamped and reported rather than adopted.
	MaxClockSkew time.Duration
	// Clock is the node's wall clock, read by its HLC (nil: time.Now). The
	// simulation (internal/simtest) gives each shop a skewed one.
	Clock func() time.Time

	// Ledger limits, passed to ledger.Options (see there): the size of a
	// preallocated WAL segment, the events and bytes committed by one
	// fsync, the requests waiting for the committer, the WAL written
	// between checkpoints (which bounds replay at start), and the longest
	// the committer waits for a batch to fill (never longer than the last
	// WAL sync took; 0 never waits).
	WALSegmentBytes int64
	MaxBatchEvents  int
	MaxBatchBytes   int
	QueueDepth      int
	CheckpointBytes int64
	GroupCommitWait time.Duration
	// MemTableBytes is Badger's memtable size (0: the ledger's default,
	// 64 MiB). The ledger requires at least 8 × MaxBatchBytes, so bigger
	// batches need a bigger memtable. The simulation runs many nodes at
	// once with small ones.
	MemTableBytes int64

	// Replication is the link to central; empty Central is standalone.
	Replication ReplicationConfig

	// Version is the build's version, reported by the tills' /v1/health.
	// Not configuration proper: cmd/storeline sets it from the binary.
	Version string
}

// TerminalToken is a till provisioned from configuration: its ID, a
// display name, and its bearer token (at least MinTokenLen characters).
type TerminalToken struct {
	ID    storeline.TerminalID
	Name  string
	Token string
}

// Bounds checked by Validate.
const (
	MinTokenLen       = 16
	MinBodyBytes      = 1 << 10
	MaxBodyBytesLimit = 64 << 20
	MaxImportLimit    = 1 << 30
	MaxTimer          = 24 * time.Hour
	MaxPINAttempts    = 100
	// MinPointsSweep is the shortest positive PointsSweepInterval.
	MinPointsSweep = 10 * time.Millisecond
	maxTerminals   = 1000
)

// DefaultConfig returns the defaults. StoreID, DataDir and AdminToken have
// none and must be set.
func DefaultConfig() Config {
	lo := ledger.DefaultOptions("", "")
	bc := posbridge.DefaultConfig()
	return Config{
		MaxSessions:       bc.MaxSessions,
		MaxJSONDepth:      bc.MaxJSONDepth,
		MaxShiftDays:      bc.MaxShiftDays,
		MaxStatsDays:      bc.MaxStatsDays,
		MaxPageSize:       bc.MaxPageSize,
		PointsFloat:       bc.PointsFloat,
		WALSegmentBytes:   lo.WALSegmentBytes,
		MaxBatchEvents:    lo.MaxBatchEvents,
		MaxBatchBytes:     lo.MaxBatchBytes,
		QueueDepth:        lo.QueueDepth,
		CheckpointBytes:   lo.CheckpointBytes,
		GroupCommitWait:   lo.GroupCommitWait,
		TillAddr:          ":8080",
		AdminAddr:         "127.0.0.1:9090",
		MaxBodyBytes:      1 << 20,
		MaxImportBytes:    256 << 20,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   10 * time.Second,
		PINAttempts:       5,
		PINWindow:         5 * time.Minute,
		SessionTTL:        12 * time.Hour,
		WeighedLayout:     storeline.DefaultWeighedLayout(),
		MaxClockSkew:      time.Minute,
		Replication:       defaultReplication(),
	}
}

// Validate checks every field and returns one error naming every bad one.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.StoreID == storeline.Central {
		bad("StoreID", "%q is reserved for head office", c.StoreID)
	} else if !storeline.ValidID(string(c.StoreID)) {
		bad("StoreID", "%q is not a valid identifier (1-64 of A-Z a-z 0-9 . _ : -)", c.StoreID)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("DataDir", "required")
	}
	for _, a := range []struct {
		field, addr string
	}{{"TillAddr", c.TillAddr}, {"AdminAddr", c.AdminAddr}} {
		if err := checkListenAddr(a.addr); err != nil {
			bad(a.field, "%q is not host:port: %v", a.addr, err)
		}
	}
	if len(c.AdminToken) < MinTokenLen {
		bad("AdminToken", "at least %d characters required", MinTokenLen)
	} else if !sendableToken(c.AdminToken) {
		bad("AdminToken", "%s", unsendableToken)
	}
	if len(c.Terminals) > maxTerminals {
		bad("Terminals", "%d terminals, at most %d", len(c.Terminals), maxTerminals)
	}
	seen := map[storeline.TerminalID]bool{}
	tokens := map[string]int{} // token → the index of the terminal holding it
	for i, t := range c.Terminals {
		f := fmt.Sprintf("Terminals[%d]", i)
		if !storeline.ValidID(string(t.ID)) {
			bad(f+".ID", "%q is not a valid identifier", t.ID)
		}
		if seen[t.ID] {
			bad(f+".ID", "terminal %q listed twice", t.ID)
		}
		seen[t.ID] = true
		if len(t.Token) < MinTokenLen {
			bad(f+".Token", "at least %d characters required", MinTokenLen)
		} else if !sendableToken(t.Token) {
			bad(f+".Token", "%s", unsendableToken)
		} else if j, ok := tokens[t.Token]; ok {
			// A token is a unique key of terminals: the start would fail.
			bad(f+".Token", "the same token as Terminals[%d]: each terminal needs its own", j)
		} else {
			tokens[t.Token] = i
		}
	}
	if c.MaxBodyBytes < MinBodyBytes || c.MaxBodyBytes > MaxBodyBytesLimit {
		bad("MaxBodyBytes", "%d out of range [%d, %d]", c.MaxBodyBytes, MinBodyBytes, MaxBodyBytesLimit)
	}
	if c.MaxImportBytes < MinBodyBytes || c.MaxImportBytes > MaxImportLimit {
		bad("MaxImportBytes", "%d out of range [%d, %d]", c.MaxImportBytes, MinBodyBytes, MaxImportLimit)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout},
		{"PINWindow", c.PINWindow},
		{"SessionTTL", c.SessionTTL},
		{"MaxClockSkew", c.MaxClockSkew},
	} {
		if d.v <= 0 || d.v > MaxTimer {
			bad(d.field, "%v out of range (0, %v]", d.v, MaxTimer)
		}
	}
	if c.PointsSweepInterval > MaxTimer || (c.PointsSweepInterval > 0 && c.PointsSweepInterval < MinPointsSweep) {
		bad("PointsSweepInterval", "%v out of range [%v, %v] (0: %v; negative: only at the next earning receipt online)",
			c.PointsSweepInterval, MinPointsSweep, MaxTimer, DefaultPointsSweep)
	}
	if r := c.JournalRetention; r > 0 && (r < MinJournalRetention || r > MaxJournalRetention) {
		bad("JournalRetention", "%v out of range [%v, %v] (0: %v; negative: keep everything)",
			r, MinJournalRetention, MaxJournalRetention, DefaultJournalRetention)
	}
	if p := c.JournalPruneInterval; p < 0 || p > MaxTimer || (p > 0 && p < time.Second) {
		bad("JournalPruneInterval", "%v out of range [1s, %v] (0: %v)", p, MaxTimer, DefaultJournalPruneInterval)
	}
	if p := c.ReservationLapseInterval; p < 0 || p > MaxTimer || (p > 0 && p < time.Second) {
		bad("ReservationLapseInterval", "%v out of range [1s, %v] (0: %v)", p, MaxTimer, DefaultReservationLapse)
	}
	if p := c.OrdersCopyInterval; p < 0 || p > MaxTimer || (p > 0 && p < time.Second) {
		bad("OrdersCopyInterval", "%v out of range [1s, %v] (0: %v)", p, MaxTimer, DefaultOrdersCopyInterval)
	}
	if c.MemTableBytes < 0 {
		bad("MemTableBytes", "%d is negative (0: the ledger's default)", c.MemTableBytes)
	}
	if c.PINAttempts < 1 || c.PINAttempts > MaxPINAttempts {
		bad("PINAttempts", "%d out of range [1, %d]", c.PINAttempts, MaxPINAttempts)
	}
	if err := c.WeighedLayout.Validate(); err != nil {
		bad("WeighedLayout."+fieldName(storeline.FieldOf(err)), "%v", err)
	}
	// The ledger checks its own limits; only its errors about them are
	// ours to report (Dir and Origin are DataDir and StoreID, checked above).
	lo := c.ledgerOptions(nil)
	lo.Dir, lo.Origin = "x", "x"
	if err := lo.Validate(); err != nil {
		errs = append(errs, err)
	}
	// Likewise the tills' API checks its limits (MaxSessions, MaxJSONDepth,
	// MaxShiftDays, MaxStatsDays, MaxPageSize, and tighter bounds on the
	// PIN and session timers); a nil *ledger.Ledger stands in for the
	// ledger, which Validate only checks for presence.
	bc := c.bridgeConfig(nil)
	bc.Store = "x"
	if err := bc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateReplication(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("node: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// sendableToken reports whether a bearer token survives an Authorization
// header: a header value loses its outer white space and cannot hold a
// control character, so a token with either could never be presented
// (the admin API or the till would answer every request 401).
func sendableToken(tok string) bool {
	return strings.Trim(tok, " \t") == tok && !strings.ContainsFunc(tok, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// unsendableToken is Validate's complaint about a token sendableToken
// refuses; it never quotes the token.
const unsendableToken = "leading or trailing white space or a control character (a newline read from a file?): no request could present it"

// checkListenAddr checks a listen address: host:port, the port decimal in
// [0, 65535], the host empty (every interface), an IP or a host name.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number in [0, 65535]", port)
	}
	if host == "" || net.ParseIP(host) != nil || validHostName(host) {
		return nil
	}
	return fmt.Errorf("host %q is not an IP address or a host name", host)
}

// validHostName reports whether h is a DNS host name: dot-separated labels
// of letters, digits and hyphens, 1-63 characters each, 253 in all.
func validHostName(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// fieldName turns the layout's API spelling ("weight_decimals") into the
// Go field name used by the rest of the config's messages.
func fieldName(api string) string {
	var b strings.Builder
	for _, part := range strings.Split(api, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// ledgerOptions returns the ledger's options for this config.
func (c Config) ledgerOptions(clock *crdt.Clock) ledger.Options {
	o := ledger.DefaultOptions(c.DataDir, c.StoreID)
	if clock != nil {
		o.Clock = clock
	}
	o.WALSegmentBytes = c.WALSegmentBytes
	o.MaxBatchEvents = c.MaxBatchEvents
	o.MaxBatchBytes = c.MaxBatchBytes
	o.QueueDepth = c.QueueDepth
	o.CheckpointBytes = c.CheckpointBytes
	o.GroupCommitWait = c.GroupCommitWait
	if c.MemTableBytes > 0 {
		o.MemTableBytes = c.MemTableBytes
	}
	return o
}

const redacted = "REDACTED"

// String renders the config on one line for the start-up log, with the
// admin token and terminal tokens redacted.
func (c Config) String() string {
	var b strings.Builder
	kv := func(k string, v any) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", k, v)
	}
	kv("StoreID", c.StoreID)
	kv("DataDir", fmt.Sprintf("%q", c.DataDir))
	kv("TillAddr", c.TillAddr)
	kv("AdminAddr", c.AdminAddr)
	tok := ""
	if c.AdminToken != "" {
		tok = redacted
	}
	kv("AdminToken", tok)
	terms := make([]string, len(c.Terminals))
	for i, t := range c.Terminals {
		terms[i] = string(t.ID) + "=" + redacted
	}
	kv("Terminals", "["+strings.Join(terms, ",")+"]")
	kv("MaxBodyBytes", c.MaxBodyBytes)
	kv("MaxImportBytes", c.MaxImportBytes)
	kv("ReadHeaderTimeout", c.ReadHeaderTimeout)
	kv("ReadTimeout", c.ReadTimeout)
	kv("WriteTimeout", c.WriteTimeout)
	kv("IdleTimeout", c.IdleTimeout)
	kv("ShutdownTimeout", c.ShutdownTimeout)
	kv("PINAttempts", c.PINAttempts)
	kv("PINWindow", c.PINWindow)
	kv("SessionTTL", c.SessionTTL)
	kv("MaxSessions", c.MaxSessions)
	kv("MaxJSONDepth", c.MaxJSONDepth)
	kv("MaxShiftDays", c.MaxShiftDays)
	kv("MaxStatsDays", c.MaxStatsDays)
	kv("MaxPageSize", c.MaxPageSize)
	kv("PointsFloat", c.PointsFloat)
	kv("PointsSweepInterval", c.PointsSweepInterval)
	kv("JournalRetention", c.JournalRetention)
	kv("JournalPruneInterval", c.JournalPruneInterval)
	kv("ReservationLapseInterval", c.ReservationLapseInterval)
	kv("OrdersCopyInterval", c.OrdersCopyInterval)
	kv("WeighedLayout", fmt.Sprintf("%s/%s/%d", strings.Join(c.WeighedLayout.Prefixes, ","), c.WeighedLayout.Pattern, c.WeighedLayout.WeightDecimals))
	kv("MaxClockSkew", c.MaxClockSkew)
	kv("WALSegmentBytes", c.WALSegmentBytes)
	kv("MaxBatchEvents", c.MaxBatchEvents)
	kv("MaxBatchBytes", c.MaxBatchBytes)
	kv("QueueDepth", c.QueueDepth)
	kv("CheckpointBytes", c.CheckpointBytes)
	kv("GroupCommitWait", c.GroupCommitWait)
	kv("MemTableBytes", c.MemTableBytes)
	if c.Replication.Enabled() {
		kv("Replication", "{"+c.replicationString()+"}")
	} else {
		kv("Replication", "standalone")
	}
	return b.String()
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// The node's configuration has one set of names, the flag names. A JSON
// config file uses them as keys ({"till-addr": ":8080", "shutdown-timeout":
// "10s"}), and the environment as STORELINE_<NAME> with dashes as
// underscores (STORELINE_ADMIN_TOKEN). Precedence, lowest first: defaults,
// the file, the environment, flags. The file itself is named by -config or
// STORELINE_CONFIG (the flag wins).

// envName returns the environment variable of a flag.
func envName(flagName string) string {
	return "STORELINE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// nodeFlags binds the node's config to a flag set.
func nodeFlags(fs *flag.FlagSet, c *node.Config, logLevel *slog.Level) {
	fs.Var((*storeIDValue)(&c.StoreID), "store", "store ID this node serves (required)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (required)")
	fs.StringVar(&c.TillAddr, "till-addr", c.TillAddr, "tills' API listen address (shop LAN)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin listen address (/metrics, /healthz, /admin/v1)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin API bearer token (prefer the environment: "+envName("admin-token")+")")
	fs.Var(&terminalsValue{&c.Terminals}, "terminals", "terminals to provision at start: ID=TOKEN,ID=TOKEN (prefer the environment or the file)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest till request body")
	fs.Int64Var(&c.MaxImportBytes, "max-import-bytes", c.MaxImportBytes, "largest admin master-data import body")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "HTTP read header timeout")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "HTTP read timeout")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "HTTP write timeout (tills' API)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "HTTP keep-alive idle timeout")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a stop drains requests")
	fs.IntVar(&c.PINAttempts, "pin-attempts", c.PINAttempts, "failed PIN attempts per seller within pin-window before lock-out")
	fs.DurationVar(&c.PINWindow, "pin-window", c.PINWindow, "PIN attempt window")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "seller session lifetime at a till")
	fs.IntVar(&c.MaxSessions, "max-sessions", c.MaxSessions, "seller sessions held in memory, at most")
	fs.IntVar(&c.MaxJSONDepth, "max-json-depth", c.MaxJSONDepth, "nesting of a till request body, at most")
	fs.IntVar(&c.MaxShiftDays, "max-shift-days", c.MaxShiftDays, "business days a shift close looks back for the opening")
	fs.IntVar(&c.MaxStatsDays, "max-stats-days", c.MaxStatsDays, "date range of the tills' sales statistics, at most")
	fs.IntVar(&c.MaxPageSize, "max-page-size", c.MaxPageSize, "catalogue changes per page, at most")
	fs.Int64Var(&c.PointsFloat, "points-float", c.PointsFloat, "loyalty rights per customer the shop keeps when it hands the rest back to central")
	fs.DurationVar(&c.PointsSweepInterval, "points-sweep-interval", c.PointsSweepInterval, "how often rights earned offline are handed back to central once it is reachable (0: "+node.DefaultPointsSweep.String()+"; negative: only at the next earning receipt)")
	fs.Var(&listValue{&c.WeighedLayout.Prefixes}, "weighed-prefixes", "weighed barcode prefixes, comma-separated")
	fs.StringVar(&c.WeighedLayout.Pattern, "weighed-pattern", c.WeighedLayout.Pattern, "weighed barcode layout (P prefix, I item, W weight, C check)")
	fs.Var((*int32Value)(&c.WeighedLayout.WeightDecimals), "weighed-decimals", "weight decimals in weighed barcodes")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", c.MaxClockSkew, "remote HLC times further ahead are clamped")
	fs.Int64Var(&c.WALSegmentBytes, "wal-segment-bytes", c.WALSegmentBytes, "size of a preallocated WAL segment")
	fs.IntVar(&c.MaxBatchEvents, "max-batch-events", c.MaxBatchEvents, "events committed by one fsync, at most")
	fs.IntVar(&c.MaxBatchBytes, "max-batch-bytes", c.MaxBatchBytes, "bytes committed by one fsync, at most")
	fs.IntVar(&c.QueueDepth, "queue-depth", c.QueueDepth, "appends waiting for the committer, at most")
	fs.Int64Var(&c.CheckpointBytes, "checkpoint-bytes", c.CheckpointBytes, "WAL bytes between checkpoints")
	fs.DurationVar(&c.GroupCommitWait, "group-commit-wait", c.GroupCommitWait, "longest wait for a batch to fill, never longer than the last WAL sync (0: never wait)")
	fs.Int64Var(&c.MemTableBytes, "mem-table-bytes", c.MemTableBytes, "Badger memtable size, at least 8 × max-batch-bytes (0: the ledger's default, 64 MiB)")
	replicationFlags(fs, &c.Replication)
	fs.TextVar(logLevel, "log-level", *logLevel, "log level: debug, info, warn, error")
}

// replicationFlags binds the node's link to central (node.Config's
// Replication section). Without replication-central the node is
// standalone.
func replicationFlags(fs *flag.FlagSet, r *node.ReplicationConfig) {
	fs.Var(&listValue{&r.Central}, "replication-central", "base URLs of central's replication listeners, comma-separated (none: standalone)")
	fs.StringVar(&r.Token, "replication-token", r.Token, "the shop's bearer token at central (prefer the environment: "+envName("replication-token")+"), or mutual TLS: replication-ca, -cert, -key")
	fs.StringVar(&r.CAFile, "replication-ca", r.CAFile, "chain CA that signed central's certificate (PEM; with replication-cert and -key)")
	fs.StringVar(&r.CertFile, "replication-cert", r.CertFile, "the shop's client certificate (PEM, storeline certs issue -store)")
	fs.StringVar(&r.KeyFile, "replication-key", r.KeyFile, "the shop's client key (PEM)")
	fs.IntVar(&r.MaxBatchEvents, "replication-max-batch-events", r.MaxBatchEvents, "events per push, at most")
	fs.IntVar(&r.MaxBatchBytes, "replication-max-batch-bytes", r.MaxBatchBytes, "bytes per push, at most")
	fs.IntVar(&r.PageItems, "replication-page-items", r.PageItems, "items per pulled page, at most")
	fs.DurationVar(&r.PushInterval, "replication-push-interval", r.PushInterval, "how often new events are pushed")
	fs.DurationVar(&r.PollWait, "replication-poll-wait", r.PollWait, "long-poll wait of a pull")
	fs.DurationVar(&r.RequestTimeout, "replication-request-timeout", r.RequestTimeout, "timeout of one replication request")
	fs.DurationVar(&r.BackoffMin, "replication-backoff-min", r.BackoffMin, "first retry delay after a failure")
	fs.DurationVar(&r.BackoffMax, "replication-backoff-max", r.BackoffMax, "longest retry delay")
	fs.DurationVar(&r.LoyaltyTimeout, "replication-loyalty-timeout", r.LoyaltyTimeout, "longest a till waits for a loyalty call to central before the shop treats it as offline")
}

// loadNodeConfig parses args and applies the config file and environment
// under them. It returns the config unvalidated.
func loadNodeConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (node.Config, slog.Level, error) {
	cfg := node.DefaultConfig()
	level := slog.LevelInfo
	nodeFlags(fs, &cfg, &level)
	file := fs.String("config", "", "JSON config file; keys are the flag names (env "+envName("config")+")")
	if err := fs.Parse(args); err != nil {
		return cfg, level, err
	}
	if fs.NArg() > 0 {
		return cfg, level, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })
	path := *file
	if _, set := explicit["config"]; !set {
		path = getenv(envName("config"))
	}
	if path != "" {
		if err := applyFile(fs, path); err != nil {
			return cfg, level, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	// Flags win: set them again over the file and the environment.
	delete(explicit, "config")
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			errs = append(errs, fmt.Errorf("-%s: %w", name, err))
		}
	}
	return cfg, level, errors.Join(errs...)
}

// applyFile sets flags from a JSON object whose keys are flag names.
// Values may be strings, numbers, booleans or arrays of strings (joined
// with commas). Nothing but white space may follow the object.
func applyFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var se *storeline.JSONShapeError
	if err := storeline.CheckJSONShape(b, 8, nil); errors.As(err, &se) {
		// The decoder would keep the last of a key given twice.
		if se.Field != "" {
			return fmt.Errorf("%s: %q: %s", path, se.Field, se.Reason)
		}
		return fmt.Errorf("%s: %s", path, se.Reason)
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: data after the JSON object (which ends at byte %d): want one object, then only white space", path, end)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if k == "config" || fs.Lookup(k) == nil {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", path, k))
			continue
		}
		v, err := rawString(m[k])
		if err == nil {
			err = fs.Set(k, v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", path, k, err))
		}
	}
	return errors.Join(errs...)
}

func rawString(raw json.RawMessage) (string, error) {
	// Unmarshal takes null into any of the below as a no-op: refuse it
	// rather than read it as "".
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", fmt.Errorf("null: want a string, a number, a boolean or an array of strings")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ","), nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return strconv.FormatBool(b), nil
	}
	return "", fmt.Errorf("want a string, a number, a boolean or an array of strings")
}

// Every flag's String must round-trip through Set: loadNodeConfig sets
// explicit flags again over the file and the environment.

// storeIDValue is a store ID flag.
type storeIDValue storeline.StoreID

func (v *storeIDValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}
func (v *storeIDValue) Set(s string) error { *v = storeIDValue(s); return nil }

// int32Value is an int32 flag.
type int32Value int32

func (v *int32Value) String() string {
	if v == nil {
		return "0"
	}
	return strconv.Itoa(int(*v))
}

func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	*v = int32Value(n)
	return err
}

// listValue is a comma-separated list; Set replaces the list.
type listValue struct{ p *[]string }

func (v *listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v *listValue) Set(s string) error {
	*v.p = nil
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*v.p = append(*v.p, x)
		}
	}
	return nil
}

// terminalsValue is ID=TOKEN,ID=TOKEN; Set replaces the list. String
// round-trips through Set (loadNodeConfig re-applies explicit flags); -h
// prints only the default, which is empty.
type terminalsValue struct{ p *[]node.TerminalToken }

func (v *terminalsValue) String() string {
	if v.p == nil {
		return ""
	}
	var parts []string
	for _, t := range *v.p {
		parts = append(parts, string(t.ID)+"="+t.Token)
	}
	return strings.Join(parts, ",")
}

func (v *terminalsValue) Set(s string) error {
	*v.p = nil
	for i, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x == "" {
			continue
		}
		id, tok, ok := strings.Cut(x, "=")
		if !ok {
			// Not the entry itself: it holds a token, and this error
			// goes to the log.
			return fmt.Errorf("entry %d is not ID=TOKEN", i+1)
		}
		*v.p = append(*v.p, node.TerminalToken{ID: storeline.TerminalID(id), Token: tok})
	}
	return nil
}

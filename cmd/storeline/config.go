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
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
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
	fs.DurationVar(&c.JournalRetention, "journal-retention", c.JournalRetention, "how long the journal is kept after central acknowledged it, then pruned (0: "+node.DefaultJournalRetention.String()+"; negative: keep everything)")
	fs.DurationVar(&c.JournalPruneInterval, "journal-prune-interval", c.JournalPruneInterval, "how often the journal's retention runs (0: "+node.DefaultJournalPruneInterval.String()+")")
	fs.DurationVar(&c.ReservationLapseInterval, "reservation-lapse-interval", c.ReservationLapseInterval, "how often reservations of goods whose date has passed are lapsed, also once at start (0: "+node.DefaultReservationLapse.String()+")")
	fs.DurationVar(&c.OrdersCopyInterval, "orders-copy-interval", c.OrdersCopyInterval, "how often a replicating shop refreshes its copy of head office's orders for it, also once at start (0: "+node.DefaultOrdersCopyInterval.String()+")")
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
	fs.IntVar(&r.KeepRejections, "replication-keep-rejections", r.KeepRejections, "head-office rejections of the shop's events kept, the latest (0: "+strconv.Itoa(replication.DefaultKeepRejections)+")")
	fs.DurationVar(&r.LoyaltyTimeout, "replication-loyalty-timeout", r.LoyaltyTimeout, "longest a till waits for a loyalty call to central before the shop treats it as offline, and for head office's expected deliveries")
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

// nodeFlagFields maps each node.Config field a flag sets, by its path in
// the struct ("MaxPageSize", "WeighedLayout.Pattern", "Replication.Token"),
// to the flag's name: Validate names fields, an operator knows flags.
// Found by address: the flag's value points at the field it sets.
func nodeFlagFields() map[string]string {
	var c node.Config
	var level slog.Level
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	nodeFlags(fs, &c, &level)
	paths := map[uintptr]string{}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := range t.NumField() {
			p := t.Field(i).Name
			if path != "" {
				p = path + "." + p
			}
			f := v.Field(i)
			paths[f.Addr().Pointer()] = p
			if f.Kind() == reflect.Struct {
				walk(f, p) // a struct's first field shares its address: the field wins
			}
		}
	}
	walk(reflect.ValueOf(&c).Elem(), "")
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		v := reflect.ValueOf(f.Value)
		if v.Kind() != reflect.Pointer {
			return
		}
		ptr := v.Pointer()
		if e := v.Elem(); e.Kind() == reflect.Struct && e.NumField() > 0 && e.Field(0).Kind() == reflect.Pointer {
			ptr = e.Field(0).Pointer() // listValue{&field} and the like
		}
		if p, ok := paths[ptr]; ok {
			out[p] = f.Name
		}
	})
	return out
}

// configErrorsByFlag rewrites a config's Validate error (one bad field a
// line, as "Replication: replication.ClientConfig.Validate: invalid:
// Central[0]: ...", some checked twice: by the node and by the tills' API
// it configures) as lines naming each bad setting by its flag, once.
func configErrorsByFlag(err error, flags map[string]string) []string {
	var out, done []string // done: the field paths reported
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, "node: invalid config: ")
		// The field's path is the leading segments that name fields;
		// "x.Config.Validate" and "invalid" only say who checked.
		var path []string
		msg := line
		for {
			seg, rest, ok := strings.Cut(msg, ": ")
			if !ok {
				break
			}
			if seg == "invalid" || strings.HasSuffix(seg, ".Validate") {
				msg = rest
				continue
			}
			if !isFieldList(seg) {
				break
			}
			path, msg = append(path, seg), rest
		}
		if len(path) == 0 {
			out = append(out, line)
			continue
		}
		// "Replication.CAFile, CertFile, KeyFile": fields of one parent.
		parts := strings.Split(strings.Join(path, "."), ", ")
		parent := parts[0][:strings.LastIndex(parts[0], ".")+1]
		for i := 1; i < len(parts); i++ {
			parts[i] = parent + parts[i]
		}
		if slices.ContainsFunc(done, func(d string) bool { return within(d, parts[0]) }) {
			continue // reported already, as itself or as one of its fields
		}
		done = append(done, parts...)
		for i, field := range parts {
			parts[i] = flagOf(field, flags)
		}
		out = append(out, strings.Join(parts, ", ")+": "+msg)
	}
	return out
}

// isFieldList reports whether s names fields: "MaxPageSize",
// "Terminals[0].Token", "Replication.CAFile, CertFile, KeyFile".
func isFieldList(s string) bool {
	for _, f := range strings.Split(s, ", ") {
		if f == "" || strings.ContainsAny(f, " \t\"'") || !unicode.IsUpper(rune(f[0])) {
			return false
		}
	}
	return true
}

// within reports whether field path d is p or lies in it.
func within(d, p string) bool {
	return d == p || strings.HasPrefix(d, p+".") || strings.HasPrefix(d, p+"[")
}

// flagOf names field by its flag: the flag of the longest path field is
// or lies in, then the rest of the path ("terminals[0].Token"); field
// itself when no flag sets it.
func flagOf(field string, flags map[string]string) string {
	best := ""
	for p := range flags {
		if within(field, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return field
	}
	return flags[best] + field[len(best):]
}

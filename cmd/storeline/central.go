package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

const centralUsage = `usage: storeline central [flags]

Runs one node of the central cluster. With no flags it bootstraps a
single-node cluster on loopback with data in ./central-data and prints a
fresh admin API key. Every flag may also be set as STORELINE_CENTRAL_<FLAG>
(dashes as underscores); flags win. The cluster secret is read from
STORELINE_CLUSTER_SECRET only, never from a flag.

API keys are configured as hashes (hex SHA-256): --admin-key-hashes and
--viewer-key-hashes, comma-separated.

Shops replicate over --replication. Each shop authenticates with its
token, registered as STORELINE_SHOP_TOKENS="store=token,store=token"
(environment only, never a flag), or with a certificate the chain CA
signed (--replication-ca, with --replication-cert and --replication-key
for central's own certificate).

flags:
`

// flagsFromEnv sets each flag of fs not given on the command line from
// the environment variable prefix + its name in capitals, dashes as
// underscores: every flag, by the flag's own parser, so a bad value is
// refused naming the variable.
func flagsFromEnv(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if given[f.Name] || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
		}
	})
	return errors.Join(errs...)
}

func cmdCentral(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline central", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, centralUsage)
		fs.PrintDefaults()
	}
	cfg := central.DefaultConfig("central-data")
	fs.StringVar(&cfg.NodeID, "id", cfg.NodeID, "node id (never changes)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.RaftAddr, "raft", cfg.RaftAddr, "Raft listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "Raft address peers dial (default: the bound one)")
	fs.StringVar(&cfg.APIAddr, "api", cfg.APIAddr, "head-office API listen address")
	fs.StringVar(&cfg.APIAdvertise, "api-advertise", "", "API address other nodes forward to (default: the bound one)")
	fs.StringVar(&cfg.AdminAddr, "admin", cfg.AdminAddr, "admin listener (/metrics, /healthz), loopback by default")
	fs.StringVar(&cfg.GossipAddr, "gossip", cfg.GossipAddr, "gossip (memberlist) bind address")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of running nodes to join")
	var bootstrap optBool
	fs.Var(&bootstrap, "bootstrap", "true to form a new cluster (default: true when no seeds are given); ignored with -seeds or an existing Raft log")
	fs.IntVar(&cfg.MaxVoters, "max-voters", cfg.MaxVoters, "odd number of voters; later nodes join as non-voters")
	adminHashes := fs.String("admin-key-hashes", "", "comma-separated SHA-256 (hex) of admin API keys")
	viewerHashes := fs.String("viewer-key-hashes", "", "comma-separated SHA-256 (hex) of viewer API keys")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat", cfg.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&cfg.ElectionTimeout, "election", cfg.ElectionTimeout, "Raft election timeout")
	fs.DurationVar(&cfg.LeaderLeaseTimeout, "lease", cfg.LeaderLeaseTimeout, "Raft leader lease timeout")
	fs.DurationVar(&cfg.ProbeInterval, "probe-interval", cfg.ProbeInterval, "gossip probe interval")
	fs.DurationVar(&cfg.ProbeTimeout, "probe-timeout", cfg.ProbeTimeout, "gossip probe timeout")
	fs.DurationVar(&cfg.DeadNodeRemoveAfter, "dead-node-remove-after", 0, "remove a node dead this long from Raft (0: never)")
	fs.DurationVar(&cfg.ChangeRetention, "change-retention", cfg.ChangeRetention, "how long the change feed keeps tombstones")
	fs.StringVar(&cfg.ReplicationAddr, "replication", cfg.ReplicationAddr, "shops' replication listen address (\"\" turns it off)")
	replCert := fs.String("replication-cert", "", "central's TLS certificate for the replication listener (PEM)")
	replKey := fs.String("replication-key", "", "its key (PEM)")
	replCA := fs.String("replication-ca", "", "chain CA whose shop certificates are accepted (mutual TLS)")
	fs.StringVar(&cfg.InternalBarcodes.Prefix, "internal-barcode-prefix", cfg.InternalBarcodes.Prefix, "in-store prefix (20-29) of the EAN-13s head office allocates to items")
	fs.Var(&listValue{&cfg.InternalBarcodes.WeighedLayout.Prefixes}, "weighed-prefixes", "weighed barcode prefixes the shops' tills read, comma-separated: the internal prefix must be none of them")
	level := slog.LevelInfo
	fs.TextVar(&level, "log-level", level, "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "storeline central: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if err := flagsFromEnv(fs, "STORELINE_CENTRAL_", getenv); err != nil {
		fmt.Fprintf(stderr, "storeline central: %v\n", err)
		return exitUsage
	}
	if *seeds != "" {
		// Trimmed like the key hashes ("a:7946, b:7946"); an empty entry
		// stays, for Validate to refuse.
		for _, s := range strings.Split(*seeds, ",") {
			cfg.Seeds = append(cfg.Seeds, strings.TrimSpace(s))
		}
	}
	cfg.Bootstrap = bootstrap.set && bootstrap.v || (!bootstrap.set && len(cfg.Seeds) == 0)
	cfg.ClusterSecret = getenv("STORELINE_CLUSTER_SECRET")
	for _, kr := range []struct {
		list string
		role central.Role
	}{{*adminHashes, central.RoleAdmin}, {*viewerHashes, central.RoleViewer}} {
		for i, h := range strings.Split(kr.list, ",") {
			if h = strings.TrimSpace(h); h != "" {
				cfg.APIKeys = append(cfg.APIKeys, central.APIKey{Name: fmt.Sprintf("%s-%d", kr.role, i), Hash: strings.ToLower(h), Role: kr.role})
			}
		}
	}
	tokens, err := parseShopTokens(getenv("STORELINE_SHOP_TOKENS"))
	if err != nil {
		fmt.Fprintf(stderr, "storeline central: STORELINE_SHOP_TOKENS: %v\n", err)
		return exitUsage
	}
	cfg.ReplicationTokens = tokens
	if *replCert != "" || *replKey != "" || *replCA != "" {
		tc, err := replicationTLS(*replCert, *replKey, *replCA)
		if err != nil {
			fmt.Fprintf(stderr, "storeline central: %v\n", err)
			return exitUsage
		}
		cfg.ReplicationTLS = tc
	}
	// With no keys configured the node gets a fresh admin key, validated
	// with the rest, but printed only once the node has started: a key
	// printed for a configuration that is then refused (or a node that
	// cannot open) would never work.
	var generatedKey string
	if len(cfg.APIKeys) == 0 {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		generatedKey = hex.EncodeToString(b)
		cfg.APIKeys = []central.APIKey{{Name: "generated", Hash: storeline.TokenHash(generatedKey), Role: central.RoleAdmin}}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "storeline central: %v\n", err)
		return exitUsage
	}
	n, err := central.Open(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "storeline central: %v\n", err)
		return exitError
	}
	if generatedKey != "" {
		fmt.Fprintf(stdout, "admin-key %s\n", generatedKey)
	}
	// The addresses actually bound, for supervisors and tests on port 0.
	fmt.Fprintf(stdout, "api http://%s\nadmin http://%s\nraft %s\ngossip %s\n", n.APIAddr(), n.AdminAddr(), n.RaftAddr(), n.GossipAddr())
	if u := n.ReplicationURL(); u != "" {
		fmt.Fprintf(stdout, "replication %s\n", u)
	}
	select {
	case <-ctx.Done():
	case err := <-n.Failed():
		// Deaf on a listener: exit with an error so the supervisor
		// restarts the node, rather than run on unreachable.
		log.Error("central failed; stopping", "err", err)
		if cerr := n.Close(); cerr != nil {
			log.Error("close", "err", cerr)
		}
		return exitError
	}
	if err := n.Close(); err != nil {
		log.Error("close", "err", err)
		return exitError
	}
	return exitOK
}

// optBool is a boolean flag that may be left unset (-bootstrap: its
// default depends on -seeds). It takes a value (-bootstrap true), which
// strconv.ParseBool must accept, or "" for the default: a typo is refused,
// not taken as false.
type optBool struct{ set, v bool }

func (b *optBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatBool(b.v)
}

func (b *optBool) Set(s string) error {
	if s == "" {
		*b = optBool{}
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	b.set, b.v = true, v
	return nil
}

// parseShopTokens parses "store=token,store=token" into the token → store
// map central's replication listener authenticates shops with.
func parseShopTokens(s string) (map[string]storeline.StoreID, error) {
	out := map[string]storeline.StoreID{}
	for i, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		store, tok, ok := strings.Cut(kv, "=")
		if !ok || store == "" || tok == "" {
			// Not the entry itself: it holds a token, and this error
			// goes to the log.
			return nil, fmt.Errorf("entry %d is not store=token", i+1)
		}
		if prev, dup := out[tok]; dup && prev != storeline.StoreID(store) {
			// Kept for one store only, the other shop would authenticate
			// as it. Not the token: this error goes to the log.
			return nil, fmt.Errorf("entry %d gives store %s the token of store %s: each shop needs its own token", i+1, store, prev)
		}
		out[tok] = storeline.StoreID(store)
	}
	return out, nil
}

// replicationTLS loads central's certificate and, if ca is set, requires
// shops to present a certificate it signed.
func replicationTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, errors.New("--replication-cert and --replication-key go together (and --replication-ca needs them)")
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("replication certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS13}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("replication CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("replication CA %s holds no PEM certificate", ca)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

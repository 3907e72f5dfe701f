package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the command's flags.
type config struct {
	rounds, warmup int
	slice, timeout time.Duration
	clients        []int
	centralClients []int
	batch          int
	contenders     []string
	pgDSN          string
	etcd           []string
	startPeers     bool
	dir            string
	keep           bool
	out            string
	cpuProfile     string
	// unregistered leaves the central contender's shops out of the
	// master data.
	unregistered bool
	// raftPipeline turns pipelined replication on in the raw Raft
	// harness (central runs without it).
	raftPipeline bool
}

// allContenders is every contender key, in table order.
var allContenders = []string{"probe", "ledger", "node", "postgres", "sqlite", "etcd", "raft", "central"}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.IntVar(&c.rounds, "rounds", 20, "counted rounds (each runs every mode for one slice)")
	fs.IntVar(&c.warmup, "warmup", 1, "uncounted rounds first")
	fs.DurationVar(&c.slice, "slice", 300*time.Millisecond, "length of one mode's slice")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on one commit")
	clients := fs.String("clients", "1,8,64", "concurrent tills of the store contenders")
	central := fs.String("central-clients", "1,8,64", "concurrent shops of the central ingest contenders")
	fs.IntVar(&c.batch, "batch", 100, "shop events per central batch (etcd allows at most 128)")
	which := fs.String("contenders", strings.Join(allContenders, ","), "contenders to run")
	fs.StringVar(&c.pgDSN, "pg", "", "PostgreSQL DSN of a running server (default: start a throwaway one when -start-peers)")
	etcd := fs.String("etcd", "", "comma-separated etcd client URLs of a running 3-member cluster (default: start one when -start-peers)")
	fs.BoolVar(&c.startPeers, "start-peers", true, "start PostgreSQL and etcd in throwaway directories when no -pg / -etcd is given")
	fs.StringVar(&c.dir, "dir", "", "scratch directory (default: a new one under $TMPDIR, removed at exit)")
	fs.BoolVar(&c.keep, "keep", false, "keep the scratch directory (logs, data)")
	fs.StringVar(&c.out, "out", "", "also write the report to this file")
	fs.BoolVar(&c.unregistered, "central-unregistered", false, "leave the central contender's shops out of its master data (central queues their sales for costing instead of costing them in the push's entry; the path before a shop is registered)")
	fs.BoolVar(&c.raftPipeline, "raft-pipeline", false, "let the raw Raft harness replicate with hashicorp/raft's pipeline, which central turns off (central/transport.go)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the rounds (this process: not etcd or PostgreSQL) to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	var err error
	if c.clients, err = parseInts(*clients); err != nil {
		errs = append(errs, fmt.Errorf("-clients: %w", err))
	}
	if c.centralClients, err = parseInts(*central); err != nil {
		errs = append(errs, fmt.Errorf("-central-clients: %w", err))
	}
	for _, k := range strings.Split(*which, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(allContenders, k) {
			errs = append(errs, fmt.Errorf("-contenders: unknown %q (known: %s)", k, strings.Join(allContenders, ", ")))
		}
		c.contenders = append(c.contenders, k)
	}
	if *etcd != "" {
		c.etcd = strings.Split(*etcd, ",")
	}
	if c.rounds < 1 {
		errs = append(errs, errors.New("-rounds: at least 1"))
	}
	if c.warmup < 0 {
		errs = append(errs, errors.New("-warmup: not negative"))
	}
	if c.slice < 10*time.Millisecond {
		errs = append(errs, errors.New("-slice: at least 10ms"))
	}
	if c.batch < 1 || c.batch > 128 {
		errs = append(errs, errors.New("-batch: 1 to 128"))
	}
	return c, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := bench(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// bench starts the peers it needs, opens every contender, runs the rounds,
// checks what each contender stored, prints the report and stops the peers.
func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	dir := cfg.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "storeline-bench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	}
	if cfg.keep {
		fmt.Fprintf(stderr, "scratch directory %s\n", dir)
	}
	has := func(k string) bool { return slices.Contains(cfg.contenders, k) }
	w := newWorkload()
	load0 := loadAvg()

	if has("postgres") && cfg.pgDSN == "" {
		if !cfg.startPeers {
			return errors.New("bench: postgres needs -pg or -start-peers")
		}
		fmt.Fprintln(stderr, "starting postgres ...")
		pg, err := startPostgres(ctx, cfg.keep)
		if err != nil {
			return err
		}
		if cfg.keep {
			fmt.Fprintf(stderr, "postgres directory %s\n", pg.dir)
		}
		defer func() {
			if e := pg.Stop(); e != nil && err == nil {
				err = e
			}
		}()
		cfg.pgDSN = pg.DSN
	}
	if has("etcd") && len(cfg.etcd) == 0 {
		if !cfg.startPeers {
			return errors.New("bench: etcd needs -etcd or -start-peers")
		}
		fmt.Fprintln(stderr, "starting a 3-member etcd cluster ...")
		ec, err := startEtcd(ctx, mkdir(dir, "etcd"), 3)
		if err != nil {
			return err
		}
		defer func() {
			if e := ec.Stop(); e != nil && err == nil {
				err = e
			}
		}()
		cfg.etcd = ec.Endpoints
	}

	// Contenders in table order; each is opened with the most clients any
	// of its modes uses.
	type entry struct {
		con     Contender
		clients []int
	}
	var entries []entry
	for _, k := range cfg.contenders {
		switch k {
		case "probe":
			entries = append(entries, entry{newProbe(mkdir(dir, "probe")), []int{1}})
		case "ledger":
			entries = append(entries, entry{newLedgerContender(mkdir(dir, "ledger"), w), cfg.clients})
		case "node":
			entries = append(entries, entry{newNodeContender(mkdir(dir, "node"), w), cfg.clients})
		case "postgres":
			entries = append(entries, entry{newPGContender(cfg.pgDSN, w), cfg.clients})
		case "sqlite":
			entries = append(entries, entry{newSQLiteContender(mkdir(dir, "sqlite"), w), cfg.clients})
		case "etcd":
			entries = append(entries, entry{newEtcdContender(cfg.etcd, w, cfg.batch), cfg.centralClients})
		case "raft":
			entries = append(entries, entry{newRaftContender(mkdir(dir, "raft"), w, cfg.batch, cfg.raftPipeline), cfg.centralClients})
		case "central":
			entries = append(entries, entry{newCentralContender(mkdir(dir, "central"), w, cfg.batch, !cfg.unregistered), cfg.centralClients})
		}
	}
	for _, e := range entries {
		defer func() {
			if cerr := e.con.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("bench: close %s: %w", e.con.Name(), cerr)
			}
		}()
		fmt.Fprintf(stderr, "opening %s ...\n", e.con.Name())
		if err := e.con.Open(ctx, slices.Max(e.clients)); err != nil {
			return fmt.Errorf("bench: open %s: %w", e.con.Name(), err)
		}
	}

	// Modes run grouped by concurrency, so the modes a ratio compares run
	// next to each other in time; store contenders first, central after.
	h := &harness{slice: cfg.slice, rounds: cfg.rounds, warmup: cfg.warmup, timeout: cfg.timeout}
	for _, unit := range []string{"receipt", "event"} {
		var cs []int
		for _, e := range entries {
			if e.con.Unit() == unit {
				cs = append(cs, e.clients...)
			}
		}
		slices.Sort(cs)
		for _, c := range slices.Compact(cs) {
			for _, e := range entries {
				if e.con.Unit() == unit && slices.Contains(e.clients, c) {
					h.modes = append(h.modes, &mode{con: e.con, c: c})
				}
			}
		}
	}
	h.progress = func(r, of int) { fmt.Fprintf(stderr, "round %d/%d\n", r, of) }
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: -cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: -cpuprofile: %w", err)
		}
	}
	start := time.Now()
	err = h.run(ctx)
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	took := time.Since(start)

	var rep bytes.Buffer
	fmt.Fprintf(&rep, "Run: %s UTC, %d rounds of %v slices (+%d warm-up), %d modes, %v.\n", start.UTC().Format("2006-01-02 15:04"),
		cfg.rounds, cfg.slice, cfg.warmup, len(h.modes), took.Round(time.Second))
	fmt.Fprintf(&rep, "Machine: %d CPU (%s), %s, Go %s %s/%s; load average %s at start, %s at end.\n\n",
		runtime.NumCPU(), cpuModel(), kernel(), strings.TrimPrefix(runtime.Version(), "go"), runtime.GOOS, runtime.GOARCH, load0, loadAvg())
	fmt.Fprintln(&rep, "Durability as read back from each contender:")
	fmt.Fprintln(&rep)
	for _, e := range entries {
		if d, ok := e.con.(Describer); ok {
			s, err := d.Describe(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(&rep, "- %s: %s\n", e.con.Name(), s)
		}
	}
	fmt.Fprintln(&rep)
	if err := h.report(&rep); err != nil {
		return err
	}
	fmt.Fprintln(&rep)
	fmt.Fprintln(&rep, "Checks after the run (every acknowledged unit stored, stock decremented by what was sold):")
	fmt.Fprintln(&rep)
	var failed []string
	for _, e := range entries {
		ck, ok := e.con.(Checker)
		if !ok {
			continue
		}
		var acked int64
		for _, m := range h.modes {
			if m.con == e.con {
				acked += m.units
			}
		}
		if err := ck.Check(ctx, acked); err != nil {
			fmt.Fprintf(&rep, "- %s: FAILED: %v\n", e.con.Name(), err)
			failed = append(failed, e.con.Name())
		} else {
			fmt.Fprintf(&rep, "- %s: ok (%d %ss)\n", e.con.Name(), acked, e.con.Unit())
		}
	}
	stdout.Write(rep.Bytes())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, rep.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench: checks failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func mkdir(parent, name string) string {
	d := filepath.Join(parent, name)
	os.MkdirAll(d, 0o755)
	return d
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "linux " + strings.TrimSpace(string(b))
}

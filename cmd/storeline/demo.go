package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/storeline/storeline/internal/chain"
	"github.com/storeline/storeline/internal/sample"
)

const demoUsage = `usage: storeline demo [flags]

Runs a whole chain on this machine: a 3-node central cluster (head office)
and 2 shops on loopback ports, with data in a temporary directory. It loads
a sample chain through central's head-office API, runs simulated tills at
both shops, shows a live status (receipts per second per shop, replication
backlog, central leader) and plays three scripted moments: the central
leader is stopped and the cluster keeps going, a shop is cut off from
central and catches up, a price change at head office reaches both shops.
It stops after -duration or on Ctrl-C, then prints a closing check
(receipts, returns, stock, money and loyalty agree at the tills, the shops
and central); the exit code is 1 if the check fails.

flags:
`

// cmdDemo runs the chain demo (internal/chain).
func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.PrintDefaults()
	}
	def := chain.DefaultConfig("")
	duration := fs.Duration("duration", def.Duration, "how long the tills sell (0: until Ctrl-C)")
	items := fs.Int("items", def.Size.Items, "items in the sample chain")
	customers := fs.Int("customers", def.Size.Customers, "customers, each with a loyalty card")
	tills := fs.Int("tills", def.TillsPerShop, "simulated tills per shop")
	rate := fs.Float64("rate", 0, "receipts per second over all tills (0: as fast as they go)")
	data := fs.String("data", "", "data directory (default: a temporary one, removed at exit)")
	noMoments := fs.Bool("no-moments", false, "skip the scripted moments")
	verbose := fs.Bool("v", false, "log the nodes' warnings and errors to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "storeline demo: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if *data == "" {
		dir, err := os.MkdirTemp("", "storeline-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "storeline demo: %v\n", err)
			return exitError
		}
		defer os.RemoveAll(dir)
		*data = dir
	} else if ents, err := os.ReadDir(*data); err == nil && len(ents) > 0 {
		// A chain's nodes bind new ports each run, and central's Raft
		// configuration remembers the old ones: a second run cannot reuse
		// the first one's data.
		fmt.Fprintf(stderr, "storeline demo: -data %s is not empty; give a new or empty directory\n", *data)
		return exitUsage
	} else if err := os.MkdirAll(*data, 0o755); err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		return exitError
	}

	out := newStatusWriter(stdout)
	cfg := chain.DefaultConfig(*data)
	cfg.Duration, cfg.TillsPerShop, cfg.Rate = *duration, *tills, *rate
	cfg.Size = sample.Size{Stores: def.Size.Stores, Items: *items, Customers: *customers}
	cfg.Moments = !*noMoments
	cfg.Narrate = out.line
	cfg.OnStatus = func(s chain.Status) { out.status(s.String()) }
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "Storeline demo: a %d-node central cluster and %d shops in %s\n\n", cfg.Centrals, cfg.Size.Stores, *data)
	c, err := chain.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		if c != nil {
			c.Close()
		}
		return exitError
	}
	printChain(stdout, c)
	rep, runErr := c.Run(ctx)
	out.done()
	fmt.Fprintln(stdout)
	rep.Write(stdout)
	closeErr := c.Close()
	switch {
	case runErr != nil:
		fmt.Fprintf(stderr, "storeline demo: %v\n", runErr)
		return exitError
	case closeErr != nil:
		fmt.Fprintf(stderr, "storeline demo: stopping: %v\n", closeErr)
		return exitError
	case !rep.OK():
		fmt.Fprintln(stderr, "storeline demo: the closing check failed")
		return exitError
	}
	return exitOK
}

// printChain shows where everything listens and how to try it by hand.
func printChain(w io.Writer, c *chain.Chain) {
	d := c.Data()
	fmt.Fprintf(w, "\nsample chain   %d items in %d groups (nested), %d prices in 2 lists, %d customers with cards, %d promotions, loyalty programme %q\n",
		len(d.Items), len(d.Groups), len(d.Prices), len(d.Customers), len(d.Promotions), d.Programme.ID)
	api := c.CentralAPIs()
	if len(api) > 0 {
		fmt.Fprintf(w, "head office    %s/v1   (API key %s; spec: central/openapi.yaml)\n", api[0], c.AdminKey)
	}
	for _, t := range c.Targets() {
		fmt.Fprintf(w, "metrics        http://%s/metrics   (%s)\n", t.Addr, t.Name)
	}
	for _, s := range c.Shops() {
		fmt.Fprintf(w, "shop %-9s tills' API %s/v1, terminal chain-check token %s, admin %s (token %s)\n",
			s.ID, s.Node.TillURL(), s.CheckToken, s.Node.AdminURL(), s.AdminToken)
	}
	for _, s := range d.Sellers {
		fmt.Fprintf(w, "seller         %s (%s), PIN %s\n", s.ID, s.Role, s.PIN)
	}
	if len(api) > 0 && len(c.Shops()) > 0 {
		s := c.Shops()[0]
		fmt.Fprintf(w, "\nTry, while it runs:\n  curl -s -H 'Authorization: Bearer %s' %s/v1/cluster\n", c.ViewerKey, api[0])
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/items/%s\n", s.CheckToken, s.Node.TillURL(), d.Items[0].SKU)
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/barcodes/%s\n", s.CheckToken, s.Node.TillURL(), d.Items[0].Barcodes[0].Code)
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/reservations      # goods held for customers\n", s.CheckToken, s.Node.TillURL())
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/orders            # expected deliveries, asked of head office\n", s.CheckToken, s.Node.TillURL())
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' '%s/v1/reservations?store=%s'\n", c.ViewerKey, api[0], s.ID)
	}
	fmt.Fprintln(w, "\nPress Ctrl-C to stop early.")
	fmt.Fprintln(w)
}

// statusWriter keeps one live status line at the bottom of a terminal
// (redrawn in place) with narration lines printed above it; on anything
// but a terminal it prints the status every tenth time, as plain lines.
type statusWriter struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	last string
	n    int
}

func newStatusWriter(w io.Writer) *statusWriter {
	s := &statusWriter{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			s.tty = true
		}
	}
	return s
}

func (s *statusWriter) line(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp := time.Now().Format("15:04:05")
	if s.tty {
		fmt.Fprintf(s.w, "\r\033[K%s  %s\n%s", stamp, msg, s.last)
		return
	}
	fmt.Fprintf(s.w, "%s  %s\n", stamp, msg)
}

func (s *statusWriter) status(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.tty {
		s.last = line
		fmt.Fprintf(s.w, "\r\033[K%s", line)
		return
	}
	if s.n%10 == 1 {
		fmt.Fprintln(s.w, strings.TrimSpace(line))
	}
}

// done ends the live line.
func (s *statusWriter) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty && s.last != "" {
		fmt.Fprintln(s.w)
		s.last = ""
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/storeline/storeline/internal/tillsim"
)

const tillUsage = `usage: storeline till -shop SHOP [-shop SHOP ...] [flags]

Simulates tills against store nodes over the public tills' API and prints
a summary (receipts/s, latency percentiles per endpoint, errors by status).
A live progress line goes to stderr while it runs.

SHOP is the node's tills' API URL followed by either its terminals,
  http://127.0.0.1:8080,till-1=TOKEN,till-2=TOKEN
or its admin URL, to provision -tills terminals there (admin token from
-admin-token or STORELINE_ADMIN_TOKEN):
  http://127.0.0.1:8080,admin=http://127.0.0.1:9090

flags:
`

// shopFlags collects repeated -shop values.
type shopFlags []string

func (s *shopFlags) String() string     { return strings.Join(*s, " ") }
func (s *shopFlags) Set(v string) error { *s = append(*s, v); return nil }

func cmdTill(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	def := tillsim.DefaultConfig()
	fs := flag.NewFlagSet("storeline till", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var shops shopFlags
	fs.Var(&shops, "shop", "a shop: URL,TERMINAL=TOKEN,... or URL,admin=ADMIN_URL (repeatable)")
	adminToken := fs.String("admin-token", "", "admin token for shops given with admin= (default from "+envName("admin-token")+")")
	tills := fs.Int("tills", def.TillsPerShop, "tills per shop (terminals provisioned, or at most this many of those listed; 0: all listed)")
	duration := fs.Duration("duration", 0, "stop starting receipts after this long (0: no limit)")
	receipts := fs.Int("receipts", 0, "stop after this many receipts over all shops (0: no limit)")
	rate := fs.Float64("rate", 0, "receipts per second over all tills (0: as fast as possible)")
	seed := fs.Int64("seed", def.Seed, "seed of every random choice (baskets, tenders, returns)")
	sellerList := fs.String("sellers", "", "sellers as ID:PIN,... (default: the sample chain's cashier-1:1234,manager-1:9876)")
	cards := fs.String("cards", "", "loyalty card codes customers show, comma-separated")
	perShift := fs.Int("shift-receipts", def.ReceiptsPerShift, "receipts per shift before its Z report")
	returnRate := fs.Float64("return-rate", def.ReturnRate, "chance of a return after a receipt")
	cardRate := fs.Float64("card-rate", def.CardRate, "chance a receipt is paid by card")
	pointsRate := fs.Float64("points-rate", def.PointsRate, "chance a customer with points to spend pays part of a receipt with them")
	reservationRate := fs.Float64("reservation-rate", def.ReservationRate, "chance a customer asks the till to hold a few items after a receipt")
	timeout := fs.Duration("timeout", def.RequestTimeout, "timeout of one HTTP attempt")
	quiet := fs.Bool("quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprint(stderr, tillUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *adminToken == "" {
		*adminToken = getenv(envName("admin-token"))
	}
	if len(shops) == 0 || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg := def
	cfg.TillsPerShop, cfg.Duration, cfg.Receipts, cfg.Rate, cfg.Seed = *tills, *duration, *receipts, *rate, *seed
	cfg.ReceiptsPerShift, cfg.ReturnRate, cfg.CardRate, cfg.RequestTimeout = *perShift, *returnRate, *cardRate, *timeout
	cfg.PointsRate, cfg.ReservationRate = *pointsRate, *reservationRate
	var sellers []tillsim.Seller
	if *sellerList != "" {
		for _, s := range strings.Split(*sellerList, ",") {
			id, pin, _ := strings.Cut(strings.TrimSpace(s), ":")
			sellers = append(sellers, tillsim.Seller{ID: id, PIN: pin})
		}
	}
	var cardCodes []string
	if *cards != "" {
		for _, c := range strings.Split(*cards, ",") {
			cardCodes = append(cardCodes, strings.TrimSpace(c))
		}
	}
	for _, spec := range shops {
		sh, err := parseShop(spec, *adminToken)
		if err != nil {
			fmt.Fprintf(stderr, "storeline till: %v\n", err)
			return exitUsage
		}
		sh.Sellers, sh.Cards = sellers, cardCodes
		cfg.Shops = append(cfg.Shops, sh)
	}
	if !*quiet {
		cfg.Progress, cfg.ProgressEvery = progressPrinter(stderr)
	}
	sim, err := tillsim.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "storeline till: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "storeline till: %s\n", cfg)
	sum, err := sim.Run(ctx)
	if cfg.Progress != nil && isTerminal(stderr) {
		fmt.Fprintln(stderr) // end the \r line
	}
	sum.Write(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "storeline till: %v\n", err)
		return exitError
	}
	if sum.ShiftMismatches > 0 || sum.Unknown > 0 {
		fmt.Fprintf(stderr, "storeline till: warning: %d Z reports disagree with the tills' drawer counts, %d facts have an unknown outcome\n", sum.ShiftMismatches, sum.Unknown)
	}
	return exitOK
}

// parseShop parses URL,TERMINAL=TOKEN,... or URL,admin=ADMIN_URL.
func parseShop(spec, adminToken string) (tillsim.Shop, error) {
	parts := strings.Split(spec, ",")
	sh := tillsim.Shop{URL: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k == "" || v == "" {
			return sh, fmt.Errorf("-shop %q: %q is not TERMINAL=TOKEN or admin=URL", spec, p)
		}
		if k == "admin" {
			sh.AdminURL, sh.AdminToken = v, adminToken
			continue
		}
		sh.Terminals = append(sh.Terminals, tillsim.Terminal{ID: k, Token: v})
	}
	return sh, nil
}

// progressPrinter refreshes one line with \r on a terminal and prints a
// line every few seconds otherwise (a log file, CI).
func progressPrinter(w io.Writer) (func(tillsim.Progress), time.Duration) {
	if isTerminal(w) {
		return func(p tillsim.Progress) { fmt.Fprintf(w, "\r%s\x1b[K", p) }, 500 * time.Millisecond
	}
	return func(p tillsim.Progress) { fmt.Fprintln(w, p) }, 5 * time.Second
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

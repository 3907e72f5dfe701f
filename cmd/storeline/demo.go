package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

// cmdDemo runs one store node with a sample chain in a temporary data
// directory, prints how to reach it, and runs until Ctrl-C or -duration.
func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", "shop-1", "store ID")
	data := fs.String("data", "", "data directory (default: a temporary one, removed at exit)")
	tillAddr := fs.String("till-addr", "127.0.0.1:8080", "tills' API address (port 0 picks one)")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "admin address (port 0 picks one)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	verbose := fs.Bool("v", false, "log every request's outcome at info level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
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
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	termToken := node.NewToken()
	cfg := node.DefaultConfig()
	cfg.StoreID = storeline.StoreID(*store)
	cfg.DataDir = *data
	cfg.TillAddr = *tillAddr
	cfg.AdminAddr = *adminAddr
	cfg.AdminToken = node.NewToken()
	cfg.Terminals = []node.TerminalToken{{ID: "till-1", Name: "Till 1", Token: termToken}}
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Version = versionString()
	n, err := node.New(cfg, log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		return exitError
	}
	if err := n.Start(); err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		return exitError
	}
	chain := sample.New(cfg.StoreID)
	recs, err := sampleRecords(chain)
	if err == nil {
		_, err = n.Ledger().PutMaster(ctx, recs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline demo: load the sample chain: %v\n", err)
		n.Stop()
		return exitError
	}
	printDemo(stdout, n, cfg, chain, termToken)

	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := n.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "storeline demo: %v\n", err)
		return exitError
	}
	return exitOK
}

// sampleRecords returns the sample chain's records with the sellers' PINs
// hashed.
func sampleRecords(c *sample.Chain) ([]storeline.Record, error) {
	var err error
	recs := c.Records(func(s sample.SellerPIN) *storeline.Seller {
		rec, e := node.SellerRecord(node.SellerRequest{ID: s.ID, Name: s.Name, Role: s.Role, PIN: s.PIN})
		if e != nil {
			err = e
			return &storeline.Seller{ID: s.ID}
		}
		return rec
	})
	return recs, err
}

func printDemo(w io.Writer, n *node.Node, cfg node.Config, c *sample.Chain, termToken string) {
	fmt.Fprintf(w, "Storeline demo: store %s, %d items in %d groups, price list %q\n\n", cfg.StoreID, len(c.Items), len(c.Groups), c.List.ID)
	fmt.Fprintf(w, "tills' API     %s/v1   (spec: posbridge/openapi.yaml)\n", n.TillURL())
	fmt.Fprintf(w, "terminal       till-1, token %s\n", termToken)
	for _, s := range c.Sellers {
		fmt.Fprintf(w, "seller         %s (%s), PIN %s\n", s.ID, s.Role, s.PIN)
	}
	fmt.Fprintf(w, "admin          %s   (token %s)\n", n.AdminURL(), cfg.AdminToken)
	fmt.Fprintf(w, "data           %s\n\n", cfg.DataDir)
	fmt.Fprintf(w, "Try:\n%s\n", demoCurl(n.TillURL(), n.AdminURL(), termToken, cfg.AdminToken))
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

// demoCurl shows a till's first calls: look an item up by its barcode, post
// a receipt (posting it again with the same id is a harmless retry), and
// the admin side.
func demoCurl(till, admin, termToken, adminToken string) string {
	milk := sample.EAN13("400000000001")
	return fmt.Sprintf(`  T=%[2]s
  curl -s %[1]s/v1/health
  curl -s -H "Authorization: Bearer $T" %[1]s/v1/barcodes/%[3]s
  curl -s -H "Authorization: Bearer $T" -H 'Content-Type: application/json' %[1]s/v1/receipts -d '{
    "id": "'$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)'", "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
    "occurred_at": "'$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)'",
    "lines": [{"barcode": "%[3]s", "qty": "2", "price": "1.19"}],
    "payments": [{"method": "cash", "amount": "5.00"}]}'
  curl -s -H "Authorization: Bearer %[5]s" %[4]s/admin/v1/conservation
  curl -s %[4]s/metrics | grep -E '^storeline_(receipts|ledger_events|node)'
`, till, termToken, milk, admin, adminToken)
}

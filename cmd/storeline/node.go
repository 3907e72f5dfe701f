package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/storeline/storeline/node"
)

const nodeUsage = `usage: storeline node [flags]

Every flag may also be set as a key of the -config JSON file or as the
environment variable STORELINE_<FLAG> (dashes as underscores); the file
itself may be named by STORELINE_CONFIG. Precedence: defaults < file <
environment < flags.

To replicate with head office, give -replication-central (central's
replication URLs) and either -replication-token (better in the
environment: STORELINE_REPLICATION_TOKEN) or -replication-ca,
-replication-cert and -replication-key (mutual TLS). Without
-replication-central the node runs standalone.

flags:`

func cmdNode(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storeline node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, nodeUsage)
		fs.PrintDefaults()
	}
	cfg, level, err := loadNodeConfig(fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeline node: %v\n", err)
		return exitUsage
	}
	cfg.Version = versionString()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "storeline node: invalid config:\n  %s\n", strings.Join(configErrorsByFlag(err, nodeFlagFields()), "\n  "))
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	n, err := node.New(cfg, log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "storeline node: %v\n", err)
		return exitError
	}
	if err := n.Start(); err != nil {
		log.Error("start failed", "err", err)
		return exitError
	}
	// The addresses actually bound, for supervisors and tests that start
	// the node on port 0.
	fmt.Fprintf(stdout, "till %s\nadmin %s\n", n.TillURL(), n.AdminURL())
	if err := n.Run(ctx); err != nil {
		log.Error("node failed", "err", err)
		return exitError
	}
	return exitOK
}

package crashtest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/proctest"
	"github.com/storeline/storeline/node"
)

// The child is this test binary re-executed with childEnv set: it runs a
// node on the data directory the parent names, prints "ready TILL ADMIN"
// once both listeners are bound, and runs until it is killed.
const (
	childEnv   = "STORELINE_CRASHTEST_CHILD"
	dataEnv    = "STORELINE_CRASHTEST_DATA"
	store      = storeline.StoreID("shop-1")
	adminToken = "crashtest-admin-token"
	termID     = storeline.TerminalID("till-1")
	termToken  = "crashtest-terminal-token"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// childConfig is the node's config in the child: small WAL segments and
// checkpoints, so kills land in every phase (append, checkpoint, segment
// roll) within a short test.
func childConfig(dir string) node.Config {
	c := node.DefaultConfig()
	c.StoreID = store
	c.DataDir = dir
	c.TillAddr = "127.0.0.1:0"
	c.AdminAddr = "127.0.0.1:0"
	c.AdminToken = adminToken
	c.Terminals = []node.TerminalToken{{ID: termID, Token: termToken}}
	c.MaxBatchBytes = 256 << 10
	c.WALSegmentBytes = 2 << 20
	c.CheckpointBytes = 128 << 10
	c.ShutdownTimeout = 5 * time.Second
	return c
}

func childMain(stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := node.New(childConfig(os.Getenv(dataEnv)), log, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := n.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	proctest.Ready(stdout, n.TillURL(), n.AdminURL())
	if err := n.Run(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

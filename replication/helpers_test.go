package replication_test

import (
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/storeline/storeline/node"
)

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// testutilCounter reads a counter or gauge of the node's registry.
func testutilCounter(t testing.TB, n *node.Node, name string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

var verboseLogs = flag.Bool("repl.logs", false, "print the nodes' logs")

func testLogger(t testing.TB) *slog.Logger {
	if !*verboseLogs {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

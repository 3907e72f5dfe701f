package central_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeline/storeline/central"
)

// TestOpenFailingLateCleansUp: a node whose API port is taken fails after
// its stores and Raft are up; Open answers the error (it used to panic in
// its own cleanup), and everything it opened is closed again, so the same
// directory opens at once when the port is free.
func TestOpenFailingLateCleansUp(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "c1", filepath.Join(t.TempDir(), "n1"))
	cfg.APIAddr = taken.Addr().String()
	if n, err := central.Open(cfg); err == nil {
		n.Close()
		t.Fatal("Open succeeded on a taken API port")
	} else if !strings.Contains(err.Error(), "api listener") {
		t.Fatalf("Open: %v; want the api listener's error", err)
	}
	taken.Close()
	cfg.APIAddr = "127.0.0.1:0"
	openNode(t, cfg) // Badger's directory lock would refuse a store left open
}

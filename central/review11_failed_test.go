package central_test

import (
	"strings"
	"testing"
	"time"
)

// TestFailedReportsADeadListener: a node whose API listener stops
// accepting (not closed by Close) reports it on Failed, so `storeline
// central` exits with an error and its supervisor restarts it; before,
// the process ran on, deaf, and exited 0 at the next SIGTERM. A node
// closed normally reports nothing.
func TestFailedReportsADeadListener(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	if err := n.CloseAPIListener(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.Failed():
		if err == nil || !strings.Contains(err.Error(), "api listener") {
			t.Fatalf("Failed = %v, want the api listener named", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a dead API listener was not reported on Failed")
	}

	d := startCluster(t, 1)
	m := d.nodes[0]
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-m.Failed():
		t.Fatalf("a node closed normally reported %v", err)
	default:
	}
}

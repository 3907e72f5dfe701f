package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/node"
)

func validConfig() node.Config {
	c := node.DefaultConfig()
	c.StoreID = "shop-1"
	c.DataDir = "/tmp/x"
	c.AdminToken = "admin-token-0123456789"
	return c
}

func TestDefaultConfigNeedsOnlyIdentity(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
	err := node.DefaultConfig().Validate()
	for _, f := range []string{"StoreID", "DataDir", "AdminToken"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("DefaultConfig().Validate() = %v, want it to name %s", err, f)
		}
	}
}

// TestValidateNamesEveryBadField breaks every field at once and expects
// each to be named.
func TestValidateNamesEveryBadField(t *testing.T) {
	c := validConfig()
	c.StoreID = "central"
	c.DataDir = " "
	c.TillAddr = "no-port"
	c.AdminAddr = ""
	c.AdminToken = "short"
	c.Terminals = []node.TerminalToken{{ID: "a/b", Token: "x"}}
	c.MaxBodyBytes = 1
	c.MaxImportBytes = 1 << 40
	c.ReadHeaderTimeout = 0
	c.ReadTimeout = -1
	c.WriteTimeout = 48 * time.Hour
	c.IdleTimeout = 0
	c.ShutdownTimeout = 0
	c.PINAttempts = 0
	c.PINWindow = 0
	c.SessionTTL = 0
	c.WeighedLayout.Pattern = "XX"
	c.MaxClockSkew = 0
	c.MaxBatchEvents = 0
	c.QueueDepth = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate = nil")
	}
	for _, f := range []string{"StoreID", "DataDir", "TillAddr", "AdminAddr", "AdminToken", "Terminals[0].ID", "Terminals[0].Token",
		"MaxBodyBytes", "MaxImportBytes", "ReadHeaderTimeout", "ReadTimeout", "WriteTimeout", "IdleTimeout", "ShutdownTimeout",
		"PINAttempts", "PINWindow", "SessionTTL", "WeighedLayout.Pattern", "MaxClockSkew", "MaxBatchEvents", "QueueDepth"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Validate does not name %s:\n%v", f, err)
		}
	}
}

func TestStringRedactsSecrets(t *testing.T) {
	c := validConfig()
	c.Terminals = []node.TerminalToken{{ID: "till-1", Token: "terminal-secret-123456"}}
	s := c.String()
	for _, secret := range []string{c.AdminToken, "terminal-secret-123456"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() leaks %q: %s", secret, s)
		}
	}
	for _, want := range []string{"StoreID=shop-1", "AdminToken=REDACTED", "till-1=REDACTED", "ShutdownTimeout=10s"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q: %s", want, s)
		}
	}
}

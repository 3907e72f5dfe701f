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

// TestValidateAddresses: a listen address is host:port with a numeric
// port in [0, 65535]; anything else is refused naming the field, before
// Start opens anything.
func TestValidateAddresses(t *testing.T) {
	for _, tc := range []struct{ till, admin, bad string }{
		{":99999", "127.0.0.1:9090", "TillAddr"},
		{":8080", "127.0.0.1:notaport", "AdminAddr"},
		{":-1", "127.0.0.1:9090", "TillAddr"},
		{":8080", "127.0.0.1:", "AdminAddr"},
		{":http", "127.0.0.1:9090", "TillAddr"},
		{"bad host:80", "127.0.0.1:9090", "TillAddr"},
		{":8080", "127.0.0.1:65536", "AdminAddr"},
	} {
		c := validConfig()
		c.TillAddr, c.AdminAddr = tc.till, tc.admin
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("TillAddr %q AdminAddr %q: Validate = %v, want it to name %s", tc.till, tc.admin, err, tc.bad)
		}
	}
	for _, ok := range []string{":0", ":65535", "0.0.0.0:8080", "[::1]:9090", "localhost:9090", "till-lan.shop-1.example:80"} {
		c := validConfig()
		c.TillAddr, c.AdminAddr = ok, ok
		if err := c.Validate(); err != nil {
			t.Errorf("%q: Validate = %v, want nil", ok, err)
		}
	}
}

// TestValidateReplicationAndLedgerExtras: the replication section, the
// loyalty settings and the memtable size are checked, naming the field.
func TestValidateReplicationAndLedgerExtras(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*node.Config)
		want string // "" means valid
	}{
		{"token", func(c *node.Config) {
			c.Replication.Central, c.Replication.Token = []string{"https://central-1.example:8444"}, "shop-1-replication-token"
		}, ""},
		{"mutual TLS", func(c *node.Config) {
			c.Replication.Central = []string{"https://c1:8444", "https://c2:8444"}
			c.Replication.CAFile, c.Replication.CertFile, c.Replication.KeyFile = "/pki/ca.pem", "/pki/shop-1.pem", "/pki/shop-1.key"
		}, ""},
		{"token without central", func(c *node.Config) { c.Replication.Token = "orphan-token-0123456789" }, "Replication.Central"},
		{"TLS without central", func(c *node.Config) { c.Replication.CAFile = "/pki/ca.pem" }, "Replication.Central"},
		{"no credentials", func(c *node.Config) { c.Replication.Central = []string{"https://c1:8444"} }, "Token"},
		{"not a URL", func(c *node.Config) {
			c.Replication.Central, c.Replication.Token = []string{"ftp://c1"}, "tok-0123456789abcdef"
		}, "Central[0]"},
		{"half TLS", func(c *node.Config) {
			c.Replication.Central, c.Replication.CAFile = []string{"https://c1:8444"}, "/pki/ca.pem"
		}, "Replication.CAFile"},
		{"bad poll wait", func(c *node.Config) {
			c.Replication.Central, c.Replication.Token, c.Replication.PollWait = []string{"https://c1"}, "tok-0123456789abcdef", 0
		}, "PollWait"},
		{"negative memtable", func(c *node.Config) { c.MemTableBytes = -1 }, "MemTableBytes"},
		{"big batches need a big memtable", func(c *node.Config) {
			c.MaxBatchBytes, c.WALSegmentBytes = 16<<20, 64<<20
		}, "MemTableBytes"},
		{"big batches with a big memtable", func(c *node.Config) {
			c.MaxBatchBytes, c.WALSegmentBytes, c.MemTableBytes = 16<<20, 64<<20, 128<<20
		}, ""},
		{"negative points float", func(c *node.Config) { c.PointsFloat = -1 }, "PointsFloat"},
		{"sweep too slow", func(c *node.Config) { c.PointsSweepInterval = 48 * time.Hour }, "PointsSweepInterval"},
		{"sweep too fast", func(c *node.Config) { c.PointsSweepInterval = time.Microsecond }, "PointsSweepInterval"},
		{"sweep off", func(c *node.Config) { c.PointsSweepInterval = -1 }, ""},
		{"retention under a week", func(c *node.Config) { c.JournalRetention = 24 * time.Hour }, "JournalRetention"},
		{"retention over ten years", func(c *node.Config) { c.JournalRetention = 20 * 366 * 24 * time.Hour }, "JournalRetention"},
		{"retention off", func(c *node.Config) { c.JournalRetention = -1 }, ""},
		{"retention a week", func(c *node.Config) { c.JournalRetention = node.MinJournalRetention }, ""},
		{"prune interval negative", func(c *node.Config) { c.JournalPruneInterval = -time.Second }, "JournalPruneInterval"},
		{"prune interval too fast", func(c *node.Config) { c.JournalPruneInterval = time.Millisecond }, "JournalPruneInterval"},
		{"prune interval a day", func(c *node.Config) { c.JournalPruneInterval = 24 * time.Hour }, ""},
	} {
		c := validConfig()
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Validate = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Validate = %v, want it to name %s", tc.name, err, tc.want)
		}
	}
}

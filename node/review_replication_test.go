package node_test

import (
	"strings"
	"testing"

	"github.com/storeline/storeline/node"
)

// TestReviewReplicationConfigErrorsSurface: a replication setup that can
// never work is refused by Validate naming the field, not left to fail
// quietly at run time: client certificate files with a plain http:// central
// (the certificate would never be presented, and central's TLS listener
// answers a plaintext request with a bare 400), and a token that carries a
// newline (read from a file) that no HTTP header can carry.
func TestReviewReplicationConfigErrorsSurface(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*node.Config)
		want string
	}{
		{"TLS files over http", func(c *node.Config) {
			c.Replication.Central = []string{"https://c1:8444", "http://c2:8444"}
			c.Replication.CAFile, c.Replication.CertFile, c.Replication.KeyFile = "/pki/ca.pem", "/pki/shop-1.pem", "/pki/shop-1.key"
		}, "Central[1]"},
		{"token with a newline", func(c *node.Config) {
			c.Replication.Central, c.Replication.Token = []string{"https://c1:8444"}, "shop-1-replication-token\n"
		}, "Token"},
	} {
		c := validConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want it to name %s", tc.name, err, tc.want)
		}
	}
}

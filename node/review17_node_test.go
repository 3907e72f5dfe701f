package node_test

// Review 17: how many head-office rejections a shop keeps is a setting
// of the node's replication section.

import (
	"strings"
	"testing"

	"github.com/storeline/storeline/node"
)

// TestReview17KeepRejectionsReachesTheClient: replication.ClientConfig
// has KeepRejections (how many of central's rejections the shop keeps),
// but node.ReplicationConfig had no field for it, so every shop kept the
// default 10,000 whatever its operator wanted. The field reaches the
// client's config (shown in the start-up log line) and is validated.
func TestReview17KeepRejectionsReachesTheClient(t *testing.T) {
	c := validConfig()
	c.Replication.Central, c.Replication.Token = []string{"https://central-1.example:8444"}, "shop-1-replication-token"
	if def := node.DefaultConfig().Replication.KeepRejections; def != 0 {
		t.Errorf("default KeepRejections = %d, want 0 (the client's default)", def)
	}
	c.Replication.KeepRejections = 500
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate with KeepRejections 500 = %v", err)
	}
	if s := c.String(); !strings.Contains(s, "KeepRejections=500") {
		t.Errorf("the client is not given KeepRejections 500: %s", s)
	}
	for _, bad := range []int{-1, 1 << 30} {
		c.Replication.KeepRejections = bad
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "Replication: ") || !strings.Contains(err.Error(), "KeepRejections: ") {
			t.Errorf("Validate with KeepRejections %d = %v, want an error naming Replication's KeepRejections", bad, err)
		}
	}
}

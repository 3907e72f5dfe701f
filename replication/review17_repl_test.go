package replication_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReview17RejectionsPruned: every head-office rejection of a shop's
// event was stored at the shop for good, so a shop whose events central
// keeps rejecting grew its ledger without end. The shop keeps the latest
// KeepRejections of them: central rejects five receipts, one push each,
// and with two kept only the last two sold remain.
func TestReview17RejectionsPruned(t *testing.T) {
	c := newRefCentral(t) // no items: every receipt is rejected
	srv := c.serve(t, tokens())
	l, sold := shopLedger(t, 5)
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.MaxBatchEvents = 1
		cc.BackoffMax = 10 * time.Millisecond
		cc.KeepRejections = 2
	})
	waitFor(t, "the rejections received", 10*time.Second, func() bool {
		return cl.Status().Acked.Seq == 5 && metricValue(t, reg, "storeline_replication_rejections_received_total") == 5
	})
	for i, ev := range sold {
		_, ok, err := l.Meta(replication.RejectionPrefix + hex.EncodeToString(ev.ID[:]))
		if err != nil {
			t.Fatal(err)
		}
		if want := i >= 3; ok != want {
			t.Errorf("rejection of receipt %d (%s) stored: %t, want %t", i, ev.ID, ok, want)
		}
	}
}

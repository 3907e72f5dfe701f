package replication_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReview25RejectionsPulledAgainNotCounted: a shop that pulls again
// from the start (a later build knows a kind an older one skipped) is sent
// the rejections it already holds; rejections_received_total counts the
// rejections the shop newly holds, so the second pull adds none (it added
// them all again: an alert on rejections fired for rejections that were
// not new).
func TestReview25RejectionsPulledAgainNotCounted(t *testing.T) {
	c := newRefCentral(t) // no items: every receipt is rejected
	srv := c.serve(t, tokens())
	l, sold := shopLedger(t, 3)
	held := func() bool {
		for _, ev := range sold {
			if _, ok, _ := l.Meta(replication.RejectionPrefix + hex.EncodeToString(ev.ID[:])); !ok {
				return false
			}
		}
		return true
	}
	first, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, nil)
	waitFor(t, "the rejections stored at the shop", 10*time.Second, func() bool { return held() && first.Status().Acked.Seq == 3 })
	if got := metricValue(t, reg, "storeline_replication_rejections_received_total"); got != 3 {
		t.Fatalf("first pull: rejections_received_total = %v, want 3", got)
	}
	first.Stop()

	b, err := replication.Encode(&replication.SkippedKinds{Master: []storeline.MasterKind{storeline.KindItem}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetMeta(context.Background(), replication.SkippedKindsKey, b); err != nil {
		t.Fatal(err)
	}
	again, reg2 := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, nil)
	waitFor(t, "the pull from the start", 10*time.Second, func() bool {
		_, marked, _ := l.Meta(replication.SkippedKindsKey)
		return !marked && again.Status().Cursor > 0 && metricValue(t, reg2, "storeline_replication_pull_errors_total") == 0 &&
			again.Status().LastSync.After(time.Time{})
	})
	if got := metricValue(t, reg2, "storeline_replication_rejections_received_total"); got != 0 {
		t.Errorf("pulled again from the start: rejections_received_total = %v, want 0 (all already held)", got)
	}
}

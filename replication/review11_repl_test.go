package replication_test

import (
	"context"
	"encoding/hex"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// firstPagesFail is a node whose disk refuses the first `fail` pulled
// pages that carry anything (records, events or rejections), then stores
// every page: a transient failure (a full disk an operator cleared, a
// page over the commit batch the client halves).
type firstPagesFail struct {
	replication.Local
	fail    int32
	refused *atomic.Int32
	kind    storeline.Kind
}

func (l firstPagesFail) ApplyPage(ctx context.Context, p replication.LocalPage) (replication.PageResult, error) {
	if len(p.Changes)+len(p.Events)+len(p.Meta) > 0 && l.refused.Load() < l.fail {
		l.refused.Add(1)
		return replication.PageResult{}, storeline.Errorf(l.kind, "test", "page refused")
	}
	return l.Local.ApplyPage(ctx, p)
}

// TestReview11RejectionsReceivedCountedOnce: central rejects three of the
// shop's receipts (their items are unknown there) and the rejections come
// down in a pulled page, which the node fails to store once and stores on
// the next pull. rejections_received_total must say three: before, the
// page was counted when it was converted, before it was stored, so every
// retry of a page the node could not store counted its rejections again
// (an alert on rejections fired for rejections that never were).
func TestReview11RejectionsReceivedCountedOnce(t *testing.T) {
	c := newRefCentral(t) // no items: every receipt is rejected
	srv := c.serve(t, tokens())
	l, sold := shopLedger(t, 3)
	var refused atomic.Int32
	local := firstPagesFail{Local: node.LedgerLocal(l, nil), fail: 2, refused: &refused, kind: storeline.InsufficientStorage}
	cl, reg := startTestClient(t, local, []string{srv.URL},
		func(cc *replication.ClientConfig) { cc.BackoffMax = 10 * time.Millisecond })
	waitFor(t, "the rejections stored at the shop", 10*time.Second, func() bool {
		for _, ev := range sold {
			if _, ok, _ := l.Meta(replication.RejectionPrefix + hex.EncodeToString(ev.ID[:])); !ok {
				return false
			}
		}
		return cl.Status().Acked.Seq == 3
	})
	if refused.Load() != 2 {
		t.Fatalf("%d pages refused, want 2", refused.Load())
	}
	if got := metricValue(t, reg, "storeline_replication_rejections_received_total"); got != 3 {
		t.Errorf("rejections_received_total = %v, want 3 (3 rejections, stored once)", got)
	}
}

// TestReview11ResyncCountedOnceWhenItsFirstPageIsRetried: a shop's cursor
// is older than central's history, so it resyncs; the first snapshot page
// is over the node's commit batch (TooLarge), so the client halves the
// page and pulls it again. That is one resync: resyncs_total must say 1.
// Before, the counter moved when the page was read, before it was stored,
// and the stored cursor still said "no snapshot", so each retry of the
// first page counted a new resync.
func TestReview11ResyncCountedOnceWhenItsFirstPageIsRetried(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(20)...)
	c.mu.Lock()
	c.horizon = 5 // a new shop (cursor 0) resyncs
	c.mu.Unlock()
	srv := c.serve(t, tokens())
	l, _ := shopLedger(t, 1)
	var refused atomic.Int32
	local := firstPagesFail{Local: node.LedgerLocal(l, nil), fail: 2, refused: &refused, kind: storeline.TooLarge}
	cl, reg := startTestClient(t, local, []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.BackoffMax = 10 * time.Millisecond
		cc.PageItems = 8
	})
	waitFor(t, "the snapshot at the shop", 10*time.Second, func() bool {
		var it storeline.Item
		return l.GetMaster(storeline.KindItem, "i19", &it) == nil && cl.Status().Cursor >= 20
	})
	if refused.Load() != 2 {
		t.Fatalf("%d pages refused, want 2", refused.Load())
	}
	if got := metricValue(t, reg, "storeline_replication_resyncs_total"); got != 1 {
		t.Errorf("resyncs_total = %v, want 1", got)
	}
	if got := metricValue(t, reg, "storeline_replication_shrinks_total"); got != 2 {
		t.Errorf("shrinks_total = %v, want 2", got)
	}
}

// manyEpochs is the reference central for a store that has pushed in
// more epochs than a message may name (MaxWireMarks): each restore of a
// shop starts an epoch, and central keeps every epoch's mark.
type manyEpochs struct{ *refCentral }

func (m manyEpochs) Push(ctx context.Context, b replication.Batch) (replication.PushResult, error) {
	res, err := m.refCentral.Push(ctx, b)
	old := make([]replication.Position, 0, replication.MaxWireMarks+100)
	for e := range uint64(replication.MaxWireMarks + 100) {
		old = append(old, replication.Position{Epoch: 1 + e, Seq: 7})
	}
	// The shop's epochs sort last (epochs only grow, restore after
	// restore): here the real epoch 1 is renumbered after the old ones.
	res.Marks = append(old[1:], res.Marks...)
	return res, err
}

// TestReview11PushAnswerWithinTheWiresMarks: central holds more epochs
// of a store than a message may name. Its push answers must still be
// messages the shop reads, as its pull answers are (PageToWire sends the
// latest MaxWireMarks): before, the push handler sent every mark, the
// shop refused each answer as "not central's" (over MaxWireMarks) and
// failed over for good, so nothing it sold reached head office.
func TestReview11PushAnswerWithinTheWiresMarks(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	srv := serveBackend(t, manyEpochs{c})
	l, _ := shopLedger(t, 5)
	cl, _ := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL},
		func(cc *replication.ClientConfig) { cc.BackoffMax = 10 * time.Millisecond })
	pushes := func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.batches }
	waitFor(t, "the journal acknowledged, or three pushes", 10*time.Second, func() bool {
		return cl.Status().Acked.Seq == 5 || pushes() >= 3
	})
	if got := cl.Status().Acked; got != (replication.Position{Epoch: 1, Seq: 5}) {
		t.Errorf("acknowledged %v after %d pushes, want 1/5", got, pushes())
	}
}

// TestReview11ReachableAtStartWithoutWaitingOutTheLongPoll: a shop with
// nothing to push or pull, started (or restarted) against a reachable
// central, said "offline" and central_reachable false until its first
// long poll ended, up to PollWait (25 s by default): its loyalty broker
// applied offline rules for that long after every restart. The first
// pull after a start asks no wait, so central's answer comes at once.
func TestReview11ReachableAtStartWithoutWaitingOutTheLongPoll(t *testing.T) {
	c := newRefCentral(t)
	cfg := replication.DefaultServerConfig()
	cfg.Backend, cfg.Tokens, cfg.MaxWait = c, tokens(), 10*time.Minute
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	l, _ := shopLedger(t, 0)
	cc := replication.DefaultClientConfig()
	cc.Store, cc.Central, cc.Token = shop, []string{srv.URL}, shopToken
	cc.PollWait = 10 * time.Minute // a long poll that does not end within the test
	cl, err := replication.NewClient(cc, node.LedgerLocal(l, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Start()
	t.Cleanup(cl.Stop)
	waitFor(t, "central reachable after the start", 20*time.Second, func() bool { return cl.Status().Reachable })
}

package replication_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// staleCentral is the reference central gone wrong (restored from an old
// backup without a new incarnation, or simply broken): once armed, it
// answers every pull with page(q), whatever the shop asked.
type staleCentral struct {
	*refCentral
	armed  atomic.Bool
	served atomic.Int32
	page   func(q replication.PullQuery) replication.Page
}

func (s *staleCentral) Pull(ctx context.Context, q replication.PullQuery) (replication.Page, error) {
	if !s.armed.Load() {
		return s.refCentral.Pull(ctx, q)
	}
	s.served.Add(1)
	return s.page(q), nil
}

func namedItem(id, name string) *storeline.Item {
	return &storeline.Item{ID: storeline.ItemID(id), SKU: "sku-" + id, Name: name, Group: "g", Dept: "food",
		Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}
}

// TestReview11PageNotAfterTheCursorIsRefused: the shop holds item i0 as
// renamed at version 2 (cursor 2). A broken central then answers a pull
// with i0's older state (version 1) and a cursor that did not move past
// the shop's (or went behind it), without a resync. Applying it would roll
// i0 back for good: the cursor says version 2 is held, so the newer state
// is never sent again. The client must refuse the page (pull_errors_total
// counts it) and keep the newer record. Before, a page whose cursor equalled
// the shop's was applied whatever it carried.
func TestReview11PageNotAfterTheCursorIsRefused(t *testing.T) {
	for name, cursor := range map[string]func(uint64) uint64{
		"cursor equal":  func(c uint64) uint64 { return c },
		"cursor behind": func(c uint64) uint64 { return c - 1 },
		// A cursor that moves on while the page carries a change the shop
		// already holds (version at or below its cursor).
		"cursor ahead, change behind": func(c uint64) uint64 { return c + 1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := newRefCentral(t)
			c.putMaster(namedItem("i0", "Old"))
			c.putMaster(namedItem("i0", "New"))
			s := &staleCentral{refCentral: c, page: func(q replication.PullQuery) replication.Page {
				return replication.Page{Cursor: cursor(q.Cursor), Changes: []replication.Change{
					{Version: 1, Kind: storeline.KindItem, ID: "i0", Record: namedItem("i0", "Old")}}}
			}}
			srv := serveBackend(t, s)
			l, _ := shopLedger(t, 0)
			cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
				cc.BackoffMax = 10 * time.Millisecond
			})
			waitFor(t, "the shop at cursor 2", 10*time.Second, func() bool { return cl.Status().Cursor == 2 })
			s.armed.Store(true)
			// The third stale answer is asked for after the first two were
			// dealt with.
			waitFor(t, "three stale answers", 10*time.Second, func() bool { return s.served.Load() >= 3 })
			var it storeline.Item
			if err := l.GetMaster(storeline.KindItem, "i0", &it); err != nil || it.Name != "New" {
				t.Errorf("i0 after the stale pages: %q, %v; want %q (the older state was applied)", it.Name, err, "New")
			}
			if got := cl.Status().Cursor; got != 2 {
				t.Errorf("cursor %d after the stale pages, want 2", got)
			}
			if n := gathered(t, reg, "storeline_replication_pull_errors_total"); n == 0 {
				t.Errorf("pull_errors_total = 0 after stale pages were refused")
			}
		})
	}
}

// TestReview11ResyncStillMovesTheCursorBack: central restored from an old
// backup answers a shop whose cursor is past its history with a resync
// that ends below the shop's cursor. That page goes back legitimately and
// must still be applied (the check above is for pages without a resync).
func TestReview11ResyncStillMovesTheCursorBack(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(5)...)
	srv := serveBackend(t, c)
	l, _ := shopLedger(t, 0)
	cl, _ := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.BackoffMax = 10 * time.Millisecond
	})
	waitFor(t, "the shop at cursor 5", 10*time.Second, func() bool { return cl.Status().Cursor == 5 })
	// Central loses its feed past 3 (restored) and gets a new change; any
	// cursor from 3 on is answered with a resync whose snapshot is 4.
	c.mu.Lock()
	c.feed = c.feed[:3]
	c.horizon = 100
	c.mu.Unlock()
	c.putMaster(namedItem("i9", "After the restore"))
	waitFor(t, "the resync applied", 10*time.Second, func() bool {
		var it storeline.Item
		return cl.Status().Cursor == 4 && l.GetMaster(storeline.KindItem, "i9", &it) == nil
	})
}

// openShopLedger opens the shop's ledger in dir, as shopLedger does.
func openShopLedger(t testing.TB, dir string) *ledger.Ledger {
	t.Helper()
	o := ledger.DefaultOptions(dir, shop)
	o.Clock = crdt.NewClock(time.Now, time.Minute)
	o.WALSegmentBytes = 8 << 20
	o.MaxBatchBytes = 1 << 20
	o.MemTableBytes = 16 << 20
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// firstPushOnly is the reference central taking the first push, then down.
type firstPushOnly struct {
	*refCentral
	pushes atomic.Int32
}

func (f *firstPushOnly) Push(ctx context.Context, b replication.Batch) (replication.PushResult, error) {
	if f.pushes.Add(1) > 1 {
		return replication.PushResult{}, storeline.Errorf(storeline.Unavailable, "test", "central is down")
	}
	return f.refCentral.Push(ctx, b)
}

// TestReview11WaitingCountsEveryEpoch: a shop restored from a backup (a
// new epoch, 2) holds five events of epoch 1, of which central
// acknowledged three before going down, and sells two in epoch 2. Seven
// events wait: events_waiting must say 4 (two of epoch 1, two of epoch 2).
// Before, it counted the current epoch only (2), and 0 for a restored shop
// that had sold nothing since, while its older events waited.
func TestReview11WaitingCountsEveryEpoch(t *testing.T) {
	old, _ := shopLedger(t, 5)
	var backup bytes.Buffer
	if err := old.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &backup, 2); err != nil {
		t.Fatal(err)
	}
	l := openShopLedger(t, dir)
	if l.Epoch() != 2 {
		t.Fatalf("epoch after the restore %d, want 2", l.Epoch())
	}
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	f := &firstPushOnly{refCentral: c}
	srv := serveBackend(t, f)
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.MaxBatchEvents = 3
		cc.BackoffMax = 10 * time.Millisecond
	})
	waitFor(t, "three acknowledged, then two pushes refused", 10*time.Second, func() bool {
		return cl.Status().Acked == (replication.Position{Epoch: 1, Seq: 3}) && f.pushes.Load() >= 3
	})
	if got := gauge(t, reg, "storeline_replication_events_waiting"); got != 2 {
		t.Errorf("events_waiting = %v with epoch 1's 4 and 5 unacknowledged, want 2", got)
	}
	sell(t, l, 2)
	want := f.pushes.Load() + 2
	waitFor(t, "two more pushes refused", 10*time.Second, func() bool { return f.pushes.Load() >= want })
	if got := gauge(t, reg, "storeline_replication_events_waiting"); got != 4 {
		t.Errorf("events_waiting = %v with 2 of epoch 1 and 2 of epoch 2 unacknowledged, want 4", got)
	}
}

// TestReview11PushAnswerOfAnotherVersionIsRefused: something answers the
// shop's pushes with a message of a protocol version the shop does not
// speak. Its acknowledgement cannot be trusted: the shop must not store
// it (it would never resend those events) and must count a failed push,
// as it refuses such a pull answer. Before, push answers' versions were
// not looked at.
func TestReview11PushAnswerOfAnotherVersionIsRefused(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(10)...)
	cfg := replication.DefaultServerConfig()
	cfg.Backend, cfg.Tokens, cfg.MaxWait = c, tokens(), 2*time.Second
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int32
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/replication/push" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var resp replication.PushResponse
		if rec.Code == http.StatusOK && replication.Decode(rec.Body.Bytes(), &resp) == nil {
			resp.V = replication.ProtocolVersion + 1
			b, err := replication.Encode(&resp)
			if err != nil {
				t.Error(err)
				return
			}
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = io.Copy(w, bytes.NewReader(b))
			answered.Add(1)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	l, _ := shopLedger(t, 3)
	cl, reg := startTestClient(t, node.LedgerLocal(l, nil), []string{srv.URL}, func(cc *replication.ClientConfig) {
		cc.MaxBatchEvents = 1 // three answers whether they are taken or not
		cc.BackoffMax = 10 * time.Millisecond
	})
	waitFor(t, "three push answers of another version", 10*time.Second, func() bool { return answered.Load() >= 3 })
	if got := cl.Status().Acked; got != (replication.Position{}) {
		t.Errorf("acknowledged %v by answers of version %d", got, replication.ProtocolVersion+1)
	}
	if _, ok, err := l.Meta(replication.AckKey); ok || err != nil {
		t.Errorf("an acknowledgement was stored (%v) from answers of another version", err)
	}
	if n := gathered(t, reg, "storeline_replication_push_errors_total"); n == 0 {
		t.Errorf("push_errors_total = 0 after answers of another version")
	}
}

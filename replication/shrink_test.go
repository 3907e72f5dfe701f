package replication_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// TestClientShrinksWhatIsRefusedAsTooLarge: central refuses push bodies
// over 4 KiB (its own MaxRequestBytes, 413) and, through a limit in front
// of it, pulls asking for more than 7 items (413). The client halves its
// batches and pages until they pass, and the shop converges: every item
// comes down, every receipt goes up.
func TestClientShrinksWhatIsRefusedAsTooLarge(t *testing.T) {
	c := newRefCentral(t)
	c.putMaster(items(60)...)
	cfg := replication.DefaultServerConfig()
	cfg.Backend = c
	cfg.Tokens = tokens()
	cfg.MaxWait = 2 * time.Second
	cfg.MaxRequestBytes = 4 << 10
	s, err := replication.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const maxItems = 7
	var refusedPulls, biggestPull atomic.Int64
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/replication/pull" {
			b, _ := io.ReadAll(r.Body)
			var req replication.PullRequest
			if err := replication.Decode(b, &req); err == nil && req.MaxItems > maxItems {
				refusedPulls.Add(1)
				biggestPull.Store(max(biggestPull.Load(), int64(req.MaxItems)))
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				_ = json.NewEncoder(w).Encode(map[string]any{"status": 413, "kind": storeline.TooLarge.String(), "detail": "page too large"})
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	rc := fastReplication(srv.URL)
	rc.LoyaltyTimeout = time.Second
	n := startShop(t, t.TempDir(), rc)
	l := n.Ledger()
	sold := sell(t, l, 80)
	waitFor(t, "every item at the shop", 20*time.Second, func() bool {
		var it storeline.Item
		return l.GetMaster(storeline.KindItem, "i59", &it) == nil
	})
	waitFor(t, "every receipt acknowledged", 20*time.Second, func() bool { return caughtUp(n) })
	checkExactlyOnce(t, c, sold, nil)
	if refusedPulls.Load() == 0 {
		t.Errorf("no pull was refused: the test did not exercise shrinking pages")
	}
	if got := testutilCounter(t, n, "storeline_replication_shrinks_total"); got < 2 {
		t.Errorf("shrinks_total = %v, want at least one push and one pull shrink", got)
	}
	if c.batches < 80/50 {
		t.Errorf("central took %d batches for 80 receipts", c.batches)
	}
	t.Logf("pulls refused: %d (largest asked %d items); shrinks: %v; push entries: %d",
		refusedPulls.Load(), biggestPull.Load(), testutilCounter(t, n, "storeline_replication_shrinks_total"), c.batches)
}

package replication_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// review13PullGate is a proxy in front of central's replication listener
// that lets pushes through and either refuses every pull (503, a problem
// document of central's kind) or holds it unanswered until the shop gives
// up on it.
func review13PullGate(t *testing.T, target string, hang bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/pull") {
			if hang {
				select {
				case <-r.Context().Done():
				case <-done:
				}
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"kind":"unavailable","detail":"pulls held by the test"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}

// TestReview13PushesGoThroughWhilePullsFail: a shop whose pulls fail at
// every central address (refused, or held unanswered) must still push its
// sales: the push and pull loops are independent (doc.go, invariant 5).
func TestReview13PushesGoThroughWhilePullsFail(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%t", hang), func(t *testing.T) {
			c := newRefCentral(t)
			c.putMaster(items(10)...)
			srv := c.serve(t, tokens())
			urls := []string{review13PullGate(t, srv.URL, hang), review13PullGate(t, srv.URL, hang)}
			l, sold := shopLedger(t, 120)
			cl, _ := startTestClient(t, node.LedgerLocal(l, nil), urls, func(cc *replication.ClientConfig) {
				cc.MaxBatchEvents, cc.BackoffMax, cc.RequestTimeout = 25, 20*time.Millisecond, 2*time.Second
			})
			waitFor(t, "every sale acknowledged with pulls failing", 30*time.Second, func() bool {
				return cl.Status().Acked == replication.Position{Epoch: 1, Seq: uint64(len(sold))}
			})
			if got := len(c.journalIDs(t, shop)); got != len(sold) {
				t.Errorf("central holds %d of the shop's events, want %d", got, len(sold))
			}
		})
	}
}

package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/storeline/storeline"
)

// TestReview14LoyaltyCallFollowsNoRedirect: a loyalty call to central
// answered by a redirect (a proxy or portal at central's address) does
// not follow it: the shop's token and its request go nowhere else, and
// the call counts as central unavailable.
func TestReview14LoyaltyCallFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	cfg := DefaultConfig()
	cfg.StoreID, cfg.DataDir = "s1", t.TempDir()
	cfg.Replication.Central, cfg.Replication.Token = []string{redirector.URL}, "shop-1-replication-token"
	n := &Node{cfg: cfg}
	b, err := n.pointsBroker()
	if err != nil {
		t.Fatal(err)
	}
	var st pointsStatus
	err = b.call(context.Background(), pathLoyaltyPoints, pointsRequest{Programme: "club", Customer: "c1"}, &st)
	if storeline.KindOf(err) != storeline.Unavailable {
		t.Errorf("a loyalty call answered by a redirect = %v, want Unavailable", err)
	}
	if k := elsewhere.Load(); k != 0 {
		t.Fatalf("the redirect was followed: %d requests, with the shop's token, reached another server", k)
	}
}

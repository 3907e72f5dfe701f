package central_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/node"
)

// sellerLogin tries the seller's PIN at the shop's till and returns the
// status of POST /v1/sessions.
func sellerLogin(t testing.TB, n *node.Node, s shopSpec, seller, pin string) int {
	t.Helper()
	return tillCall(t, n, "POST", "/v1/sessions", s.terminal, "", map[string]string{"seller": seller, "pin": pin}, nil)
}

// heldSeller reports whether the shop holds a record of the seller that
// still lets them work at its store.
func heldSeller(t testing.TB, n *node.Node, store storeline.StoreID, id string) bool {
	t.Helper()
	var sel storeline.Seller
	err := n.Ledger().GetMaster(storeline.KindSeller, id, &sel)
	if err != nil && storeline.KindOf(err) != storeline.NotFound {
		t.Fatal(err)
	}
	return err == nil && sel.WorksAt(store)
}

// putMarker writes a message for store through head office's API; the
// shop holding it has applied every change before it (the feed is in
// version order, a snapshot sends sellers before messages).
func putMarker(t testing.TB, addr, id string, store storeline.StoreID) {
	t.Helper()
	mustOK(t, apiDo(t, "PUT", addr, "/v1/messages/"+id, adminKey,
		map[string]any{"text": "marker " + id, "stores": []string{string(store)}, "from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, nil))
}

func hasMessage(n *node.Node, id string) bool {
	var m storeline.Message
	return n.Ledger().GetMaster(storeline.KindMessage, id, &m) == nil
}

// TestSellerMovedOffShopCannotLogInThere: head office edits a seller of
// shop s1 to work at s2 only. s1 pulls its feed; the seller must no
// longer open a session at s1's tills with their PIN.
func TestSellerMovedOffShopCannotLogInThere(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(1, time.Now().Add(-time.Hour))...)
	a := c.waitLeader().APIAddr()
	s := testShops[0]
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/mover", adminKey,
		map[string]any{"name": "Mo", "role": "cashier", "pin": "1234", "stores": []string{string(s.store)}}, nil))

	shop := startShopNode(t, s, t.TempDir(), shopReplication([]string{"http://" + c.nodes[0].ReplicationAddr()}, s.token))
	waitFor(t, "the seller at "+string(s.store), 15*time.Second, func() bool { return heldSeller(t, shop, s.store, "mover") })
	if got := sellerLogin(t, shop, s, "mover", "1234"); got != http.StatusCreated {
		t.Fatalf("login of the seller at %s = %d, want 201", s.store, got)
	}

	// Moved to s2 (the PIN is kept).
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/mover", adminKey,
		map[string]any{"name": "Mo", "role": "cashier", "stores": []string{"s2"}}, nil))
	putMarker(t, a, "after-move", s.store)
	waitFor(t, "the marker at the shop", 15*time.Second, func() bool { return hasMessage(shop, "after-move") })

	if heldSeller(t, shop, s.store, "mover") {
		t.Errorf("shop %s still holds the seller as working there after head office moved them to s2", s.store)
	}
	if got := sellerLogin(t, shop, s, "mover", "1234"); got != http.StatusUnauthorized {
		t.Errorf("login of a seller moved off %s = %d, want 401", s.store, got)
	}
}

// TestSellerMovedOffShopGoneAfterResync: the same edit made while the
// shop is cut off and past the history window; the shop resyncs and
// must not keep the seller (sellers are not swept by a resync: the
// snapshot must say so).
func TestSellerMovedOffShopGoneAfterResync(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	ctx := context.Background()
	c.put(t, "seed", masterData(1, time.Now().Add(-time.Hour))...)
	a := c.waitLeader().APIAddr()
	s := testShops[0]
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/mover", adminKey,
		map[string]any{"name": "Mo", "role": "cashier", "pin": "1234", "stores": []string{string(s.store)}}, nil))
	px, err := faultproxy.New(c.nodes[0].ReplicationAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	shop := startShopNode(t, s, t.TempDir(), shopReplication([]string{px.URL()}, s.token))
	waitFor(t, "the seller at "+string(s.store), 15*time.Second, func() bool { return heldSeller(t, shop, s.store, "mover") })
	if got := sellerLogin(t, shop, s, "mover", "1234"); got != http.StatusCreated {
		t.Fatalf("login of the seller at %s = %d, want 201", s.store, got)
	}

	px.Cut()
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/mover", adminKey,
		map[string]any{"name": "Mo", "role": "cashier", "stores": []string{"s2"}}, nil))
	// A deletion, so the prune has a tombstone to drop and raises the
	// floor above the shop's cursor.
	mustOK(t, apiDo(t, "PUT", a, "/v1/messages/gone", adminKey,
		map[string]any{"text": "gone", "from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, nil))
	if r := apiDo(t, "DELETE", a, "/v1/messages/gone", adminKey, nil, nil); r.status/100 != 2 {
		t.Fatalf("DELETE message: %d %s", r.status, r.body)
	}
	retryUnavailable(t, func() error {
		_, err := c.waitLeader().PruneHistory(ctx, time.Now().Add(2*time.Hour))
		return err
	})
	putMarker(t, a, "after-resync", s.store)
	px.Heal()
	waitFor(t, "the marker at the shop", 20*time.Second, func() bool { return hasMessage(shop, "after-resync") })
	if got := shopCounter(t, shop, "storeline_replication_resyncs_total"); got < 1 {
		t.Fatalf("resyncs_total = %v, want a resync", got)
	}
	if heldSeller(t, shop, s.store, "mover") {
		t.Errorf("shop %s still holds the seller as working there after a resync", s.store)
	}
	if got := sellerLogin(t, shop, s, "mover", "1234"); got != http.StatusUnauthorized {
		t.Errorf("login of a seller moved off %s = %d after a resync, want 401", s.store, got)
	}
}

// TestHTTPSnapshotPagesAreNotShortOfRecords: the head-office API's
// snapshot has no place for the sellers' tombstones a shop's resync gets,
// so they must not count towards its page limit: pages of sellers of
// other shops came back empty with a next token, and a client stopping at
// an empty page stopped early.
func TestHTTPSnapshotPagesAreNotShortOfRecords(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 1)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s2", adminKey, map[string]any{"name": "Shop 2", "time_zone": "UTC", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}}, nil))
	for i := range 6 {
		mustOK(t, apiDo(t, "PUT", a, fmt.Sprintf("/v1/sellers/other%d", i), adminKey,
			map[string]any{"name": "Other", "role": "cashier", "pin": "1234", "stores": []string{"s2"}}, nil))
	}
	page := ""
	for range 100 {
		snap := mustOK(t, apiDo(t, "GET", a, "/v1/snapshot?store=s1&limit=2&page="+url.QueryEscape(page), viewerKey, nil, nil)).json(t)
		recs, _ := snap["records"].([]any)
		next, _ := snap["next"].(string)
		if next == "" {
			return
		}
		if len(recs) == 0 {
			t.Fatalf("a snapshot page with no records and next %q", next)
		}
		page = next
	}
	t.Fatal("the snapshot did not end in 100 pages")
}

package central_test

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline/central"
)

// wantOrderIndex checks that node n's store indexes of purchase orders
// are what its orders' records make.
func wantOrderIndex(t *testing.T, n *central.Node) map[string]string {
	t.Helper()
	live, rebuilt, err := n.OrderIndex()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(live, rebuilt) {
		t.Fatalf("node %s's order index:\n live    %q\n records %q", n.APIAddr(), live, rebuilt)
	}
	return live
}

// milkOrder is an order of qty milk from p1 for store.
func milkOrder(id, store, qty string) map[string]any {
	return orderBody(id, store, "p1", map[string]any{"item": "milk", "qty": qty})
}

// TestReview23ShopOrdersFromIndex: a shop's page of open orders, and
// GET /v1/orders of one store, read that store's orders alone: with
// more orders of another store ahead of them in ID order than a page
// examines, the page comes back full, not empty with a next.
func TestReview23ShopOrdersFromIndex(t *testing.T) {
	central.SetOrderScanBound(t, 5)
	n := shopOrdersNode(t)
	a, repl := n.APIAddr(), n.ReplicationAddr()
	for i := range 8 {
		createOrder(t, a, milkOrder(fmt.Sprintf("a%02d", i), "s2", "1"))
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		createOrder(t, a, milkOrder(id, "s1", "2"))
	}
	wantPage(t, shopOrders(t, repl, "s1", "", 3),
		"b1 open p1/Dairy [milk 2/0/2]", "b2 open p1/Dairy [milk 2/0/2]", "b3 open p1/Dairy [milk 2/0/2]", "next=")
	if p := listOrders(t, a, "?store=s1&limit=3"); p.ids() != "b1,b2,b3" || p.Next != "" {
		t.Fatalf("store s1: %s next %q, want b1,b2,b3 and no next", p.ids(), p.Next)
	}
	if p := listOrders(t, a, "?store=s1&status=open&limit=2"); p.ids() != "b1,b2" || p.Next != "b2" {
		t.Fatalf("store s1 open, limit 2: %s next %q, want b1,b2 next b2", p.ids(), p.Next)
	}
	// The store's page is bounded by its own orders: past the bound, a
	// next where it stopped.
	if p := listOrders(t, a, "?store=s2&status=closed"); p.ids() != "" || p.Next != "a04" {
		t.Fatalf("store s2 closed: %s next %q, want none, next a04", p.ids(), p.Next)
	}
	// Without a store the listing scans every order as it did.
	if p := listOrders(t, a, "?status=open&limit=20"); len(p.Orders) != 11 || p.Next != "" {
		t.Fatalf("open orders of every store: %s next %q, want all 11", p.ids(), p.Next)
	}
	wantOrderIndex(t, n)
}

// TestReview23OrderIndexFollowsStatus: every write that changes an
// order's status (create, an invoice's post and cancel, close, cancel)
// moves it into or out of its shop's open orders, on every replica
// alike, and the store's listings by status agree with the orders.
func TestReview23OrderIndexFollowsStatus(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	l := c.waitLeader()
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		lv, err := l.ClusterLevel()
		return err == nil && lv >= 4
	})
	a, repl := l.APIAddr(), l.ReplicationAddr()
	seedBackOffice(t, a)
	milk := func(qty string) map[string]any {
		return map[string]any{"item": "milk", "qty": qty, "purchase_price": "1.00"}
	}
	for _, id := range []string{"o1", "o2", "o3", "o4", "o5"} {
		createOrder(t, a, milkOrder(id, "s1", "4"))
	}
	createOrder(t, a, milkOrder("o6", "s2", "4"))
	open := func(want ...string) {
		t.Helper()
		wantPage(t, shopOrders(t, repl, "s1", "", 10), append(want, "next=")...)
	}
	open("o1 open p1/Dairy [milk 4/0/4]", "o2 open p1/Dairy [milk 4/0/4]", "o3 open p1/Dairy [milk 4/0/4]",
		"o4 open p1/Dairy [milk 4/0/4]", "o5 open p1/Dairy [milk 4/0/4]")

	createAndPost(t, a, "inv1", invoice("s1", "p1", "o1", milk("1")))
	createAndPost(t, a, "inv2", invoice("s1", "p1", "o2", milk("4")))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o3/close", adminKey, nil, nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o4/cancel", adminKey, map[string]any{"reason": "by mistake"}, nil))
	open("o1 partial p1/Dairy [milk 4/1/3]", "o5 open p1/Dairy [milk 4/0/4]")

	// The received order's invoice is cancelled: it expects goods again.
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv2/cancel", adminKey, nil, nil))
	open("o1 partial p1/Dairy [milk 4/1/3]", "o2 open p1/Dairy [milk 4/0/4]", "o5 open p1/Dairy [milk 4/0/4]")
	// A partial order closed: no more.
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o1/close", adminKey, nil, nil))
	createAndPost(t, a, "inv5", invoice("s1", "p1", "o5", milk("4")))
	open("o2 open p1/Dairy [milk 4/0/4]")

	for q, want := range map[string]string{
		"?store=s1":                  "o1,o2,o3,o4,o5",
		"?store=s1&status=open":      "o2",
		"?store=s1&status=partial":   "",
		"?store=s1&status=received":  "o5",
		"?store=s1&status=closed":    "o1,o3",
		"?store=s1&status=cancelled": "o4",
		"?store=s2&status=open":      "o6",
		"?store=s1&supplier=p2":      "",
		"?store=s1&limit=2&after=o2": "o3,o4",
	} {
		if got := listOrders(t, a, q).ids(); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
	}
	if p := listOrders(t, a, "?store=s1&status=closed&limit=1"); p.ids() != "o1" || p.Next != "o2" {
		// next is the last order examined, filtered out or not.
		t.Errorf("store s1 closed, limit 1: %s next %q, want o1 next o2", p.ids(), p.Next)
	}

	want := wantOrderIndex(t, l)
	for _, n := range c.nodes {
		// A follower applies the entries a moment after the leader.
		waitFor(t, "the same order index on "+n.APIAddr(), 10*time.Second, func() bool {
			live, _, err := n.OrderIndex()
			return err == nil && maps.Equal(live, want)
		})
		wantOrderIndex(t, n)
	}
}

// TestReview23OrdersBeforeTheIndex: orders a build before the store
// index wrote are listed as they were, by a scan; the first order write
// indexes them all, and the listings read the index from then on.
func TestReview23OrdersBeforeTheIndex(t *testing.T) {
	central.SetOrderScanBound(t, 5)
	cfg := testConfig(t, "c1", t.TempDir())
	cfg.ReplicationTokens = replTokens()
	n, err := central.Open(cfg, central.UnindexOrdersOp())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		lv, err := n.ClusterLevel()
		return n.IsLeader() && err == nil && lv >= 4
	})
	a, repl := n.APIAddr(), n.ReplicationAddr()
	seedBackOffice(t, a)
	for i := range 6 {
		createOrder(t, a, milkOrder(fmt.Sprintf("a%02d", i), "s2", "1"))
	}
	createOrder(t, a, milkOrder("b1", "s1", "2"))
	createOrder(t, a, milkOrder("b2", "s1", "2"))
	retryUnavailable(t, func() error {
		res, err := n.SubmitPastLevel(central.OpUnindexOrders, nil)
		if err == nil {
			err = res.Err()
		}
		return err
	})
	if live, _, err := n.OrderIndex(); err != nil || len(live) != 0 {
		t.Fatalf("index after dropping it: %q %v", live, err)
	}

	// The old scan: bounded by every store's orders, but complete.
	first := shopOrders(t, repl, "s1", "", 10)
	wantPage(t, first, "next=a04")
	wantPage(t, shopOrders(t, repl, "s1", first.Next, 10), "b1 open p1/Dairy [milk 2/0/2]", "b2 open p1/Dairy [milk 2/0/2]", "next=")
	if p := listOrders(t, a, "?store=s1&after=a04"); p.ids() != "b1,b2" || p.Next != "" {
		t.Fatalf("store s1 after a04, unindexed: %s next %q, want b1,b2", p.ids(), p.Next)
	}

	// One order write indexes every order, in its own entry.
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/b1/close", adminKey, nil, nil))
	wantOrderIndex(t, n)
	wantPage(t, shopOrders(t, repl, "s1", "", 10), "b2 open p1/Dairy [milk 2/0/2]", "next=")
	if p := listOrders(t, a, "?store=s1"); p.ids() != "b1,b2" || p.Next != "" {
		t.Fatalf("store s1, indexed: %s next %q, want b1,b2", p.ids(), p.Next)
	}
	if p := listOrders(t, a, "?store=s2&limit=3"); p.ids() != "a00,a01,a02" || p.Next != "a02" {
		t.Fatalf("store s2, indexed: %s next %q, want a00,a01,a02 next a02", p.ids(), p.Next)
	}
	if code := apiDo(t, "GET", a, "/v1/orders?store=s3", viewerKey, nil, nil).status; code != http.StatusOK {
		t.Fatalf("a store without orders: %d", code)
	}
}

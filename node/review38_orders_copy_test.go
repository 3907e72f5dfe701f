package node_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// copyCentral speaks central's side of replication.PathShopOrders over a
// list of orders set by the test. Down, it answers as a proxy with no
// central behind it (502: head office out of reach); refusing, it refuses
// the request (422 naming after: replication.Refusal). With a page of one, each page holds at most one order
// and, as central's bounded scans may, still names a next page after the
// last one: an empty page ends the list.
type copyCentral struct {
	mu        sync.Mutex
	ids       []string
	down      bool
	refuse    bool
	pageOfOne bool
	note      string        // each order's note
	hold      chan struct{} // when set, a whole-list read waits for it (or the node to go)
	held      chan struct{} // told of a whole-list read held
	refreshes int           // whole-list reads begun (the node's copy)
}

func (c *copyCentral) set(f func(c *copyCentral)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *copyCentral) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "no upstream")
		return
	}
	if c.refuse || r.URL.Path != replication.PathShopOrders {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"kind":"invalid","field":"after","detail":"not an order ID"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var rq replication.ShopOrdersRequest
	if err := replication.Decode(body, &rq); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rq.Limit == replication.MaxShopOrders && rq.After == "" {
		c.refreshes++
		if c.hold != nil {
			hold, held := c.hold, c.held
			c.mu.Unlock()
			held <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			c.mu.Lock()
		}
	}
	limit := rq.Limit
	if c.pageOfOne {
		limit = 1
	}
	page := replication.ShopOrdersPage{Orders: []replication.ShopOrder{}}
	ids := slices.Sorted(slices.Values(c.ids))
	for _, id := range ids {
		if id <= rq.After {
			continue
		}
		if len(page.Orders) == limit {
			page.Next = page.Orders[len(page.Orders)-1].ID
			break
		}
		page.Orders = append(page.Orders, replication.ShopOrder{ID: id, Supplier: "sup-1", Status: "open", Note: c.note,
			Lines: []replication.ShopOrderLine{{Item: "x", Ordered: decimal.NewFromInt(1), Received: decimal.Zero, Outstanding: decimal.NewFromInt(1)}}})
	}
	if c.pageOfOne && page.Next == "" && len(page.Orders) > 0 {
		page.Next = page.Orders[0].ID
	}
	out, err := replication.Encode(page)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/msgpack")
	w.Write(out)
}

func (c *copyCentral) refreshCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshes
}

// copyTaken waits until the node has stored a copy of its orders taken
// after at least want whole-list reads of central.
func copyTaken(t *testing.T, n *node.Node, c *copyCentral, want int) {
	t.Helper()
	testwait.For(t, "the node's copy of its orders", 10*time.Second, func() bool {
		_, ok, err := n.Ledger().Meta("orders.copy")
		return err == nil && ok && c.refreshCount() >= want
	})
}

func ids(p copyPage) []string {
	out := []string{}
	for _, o := range p.Orders {
		out = append(out, o.ID)
	}
	return out
}

// TestReview38EmptyCopyIsServed: a shop with no open orders copies an
// empty list, and while head office is out of reach the tills are told
// "nothing expected as of T", not a 503.
func TestReview38EmptyCopyIsServed(t *testing.T) {
	central := &copyCentral{}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	code, p := listOrders(t, n, token, "")
	if code != 200 || p.Source != "copy" || p.AsOf == "" || len(p.Orders) != 0 || p.Next != "" {
		t.Fatalf("empty copy, head office down: %d %+v, want 200, no orders, source copy with as_of", code, p)
	}
}

// TestReview38CopyPagesAsCentral: the copy pages as central does: after
// an ID it no longer holds starts at the next one, after its last is
// empty, a limit over its size is all of it, and next is the page's last
// ID only when more follow.
func TestReview38CopyPagesAsCentral(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1", "po-2", "po-4", "po-5"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	for _, tc := range []struct {
		query string
		want  []string
		next  string
	}{
		{"", []string{"po-1", "po-2", "po-4", "po-5"}, ""},
		{"?limit=500", []string{"po-1", "po-2", "po-4", "po-5"}, ""},
		{"?limit=2", []string{"po-1", "po-2"}, "po-2"},
		{"?after=po-2&limit=2", []string{"po-4", "po-5"}, ""},
		{"?after=po-3&limit=1", []string{"po-4"}, "po-4"},
		{"?after=po-5", []string{}, ""},
		{"?after=po-9", []string{}, ""},
		{"?after=a", []string{"po-1", "po-2", "po-4", "po-5"}, ""},
	} {
		code, p := listOrders(t, n, token, tc.query)
		if code != 200 || p.Source != "copy" || !slices.Equal(ids(p), tc.want) || p.Next != tc.next {
			t.Errorf("GET /v1/orders%s from the copy = %d %v next %q source %q, want %v next %q", tc.query, code, ids(p), p.Next, p.Source, tc.want, tc.next)
		}
	}
}

// TestReview38RefreshFollowsShortPages: a refresh follows central's short
// pages, even an empty one naming a next page, to the end of the list.
func TestReview38RefreshFollowsShortPages(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1", "po-2", "po-3"}, pageOfOne: true}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	code, p := listOrders(t, n, token, "")
	if code != 200 || p.Source != "copy" || !slices.Equal(ids(p), []string{"po-1", "po-2", "po-3"}) {
		t.Fatalf("copy of central's short pages: %d %+v, want po-1..po-3", code, p)
	}
}

// TestReview38RefusalNotMaskedByCopy: head office refusing the request
// is its answer, not the copy's.
func TestReview38RefusalNotMaskedByCopy(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.refuse = true })
	if code, body := call(t, "GET", n.TillURL()+"/v1/orders", token, nil); code != 422 {
		t.Fatalf("head office refuses the request: %d %s, want its 422", code, body)
	}
}

// TestReview38CorruptCopy: a copy that cannot be read is no answer: the
// tills get the 503 of head office out of reach.
func TestReview38CorruptCopy(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	n, token := ordersNode(t, []string{srv.URL})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	if err := n.Ledger().SetMeta(t.Context(), "orders.copy", []byte{0xc1}); err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, "GET", n.TillURL()+"/v1/orders", token, nil); code != 503 {
		t.Fatalf("corrupt copy, head office down: %d %s, want 503", code, body)
	}
}

// TestReview38AsOfIsTheNodesClock: as_of is the node's clock when the copy
// was taken, in UTC.
func TestReview38AsOfIsTheNodesClock(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	dir := t.TempDir()
	n, token := ordersNodeAt(t, dir, nil)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("east", 5*3600))
	n = startNode(t, dir, func(c *node.Config) {
		c.Replication.Central, c.Replication.Token = []string{srv.URL}, ordersReplToken
		c.Clock = func() time.Time { return at }
	})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	if code, p := listOrders(t, n, token, ""); code != 200 || p.AsOf != "2030-01-01T22:04:05Z" {
		t.Fatalf("as_of = %d %+v, want 2030-01-01T22:04:05Z", code, p)
	}
}

// TestReview38OversizedListKeepsThePreviousCopy: a list over the copy's
// bound is not copied: the previous copy stays, with its own time.
func TestReview38OversizedListKeepsThePreviousCopy(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	dir := t.TempDir()
	n, token := ordersNodeAt(t, dir, nil)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, func(c *node.Config) {
		c.Replication.Central, c.Replication.Token = []string{srv.URL}, ordersReplToken
		c.OrdersCopyInterval = time.Second
	})
	copyTaken(t, n, central, 1)
	central.set(func(c *copyCentral) { c.down = true })
	_, first := listOrders(t, n, token, "")
	central.set(func(c *copyCentral) {
		c.down = false
		c.ids = []string{"po-1", "po-2", "po-3"}
		c.note = strings.Repeat("n", 400<<10)
	})
	// The third whole-list read starts once the second has ended.
	copyTaken(t, n, central, 3)
	central.set(func(c *copyCentral) { c.down = true })
	if code, p := listOrders(t, n, token, ""); code != 200 || p.Source != "copy" || p.AsOf != first.AsOf || !slices.Equal(ids(p), []string{"po-1"}) {
		t.Fatalf("after a list over 1 MiB: %d %v as of %s, want the previous copy, po-1 as of %s", code, ids(p), p.AsOf, first.AsOf)
	}
}

// TestReview38TooManyPagesKeepsThePreviousCopy: a refresh reads a bounded
// number of pages; a list central never ends is not copied.
func TestReview38TooManyPagesKeepsThePreviousCopy(t *testing.T) {
	central := &copyCentral{ids: []string{"po-1"}}
	srv := httptest.NewServer(central)
	defer srv.Close()
	dir := t.TempDir()
	n, token := ordersNodeAt(t, dir, nil)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, func(c *node.Config) {
		c.Replication.Central, c.Replication.Token = []string{srv.URL}, ordersReplToken
		c.OrdersCopyInterval = time.Second
	})
	copyTaken(t, n, central, 1)
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("po-%03d", i))
	}
	central.set(func(c *copyCentral) { c.ids, c.pageOfOne = many, true })
	copyTaken(t, n, central, 3)
	central.set(func(c *copyCentral) { c.down = true })
	if code, p := listOrders(t, n, token, ""); code != 200 || p.Source != "copy" || !slices.Equal(ids(p), []string{"po-1"}) {
		t.Fatalf("after a list of more pages than read: %d %v, want the previous copy, po-1", code, ids(p))
	}
}

// TestReview38StopEndsARefresh: Stop does not wait on a refresh held by
// central: it ends it and the node closes.
func TestReview38StopEndsARefresh(t *testing.T) {
	central := &copyCentral{hold: make(chan struct{}), held: make(chan struct{}, 1)}
	srv := httptest.NewServer(central)
	defer srv.Close()
	defer close(central.hold)
	n, _ := ordersNode(t, []string{srv.URL})
	<-central.held
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waits on a refresh of the orders copy")
	}
}

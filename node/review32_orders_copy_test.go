package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// switchedCentral is fakeCentralOrders behind a switch: down, it answers
// as a proxy with no central behind it (502), which the node takes as
// head office out of reach.
type switchedCentral struct {
	fakeCentralOrders
	down atomic.Bool
}

func (s *switchedCentral) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "no upstream")
		return
	}
	s.fakeCentralOrders.ServeHTTP(w, r)
}

type copyPage struct {
	Orders []struct{ ID string }
	Next   string
	Source string
	AsOf   string `json:"as_of"`
}

func listOrders(t *testing.T, n *node.Node, token, query string) (int, copyPage) {
	t.Helper()
	code, body := call(t, "GET", n.TillURL()+"/v1/orders"+query, token, nil)
	var p copyPage
	if code == 200 {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("GET /v1/orders%s: %v: %s", query, err, body)
		}
	}
	return code, p
}

// TestReview32OrdersCopyWhileHeadOfficeUnreachable: a replicating shop
// copies its orders at start; while head office cannot be reached the
// tills get that copy, paged as head office pages, marked as the copy
// with the time it was taken, also after a restart; once head office is
// back, its own answer again. (A shop that never reached head office has
// no copy: TestReview21OrdersCentralUnreachable's 503.)
func TestReview32OrdersCopyWhileHeadOfficeUnreachable(t *testing.T) {
	central := &switchedCentral{}
	srv := httptest.NewServer(central)
	defer srv.Close()
	before := time.Now().UTC().Truncate(time.Second)
	dir := t.TempDir()
	n, token := ordersNodeAt(t, dir, []string{srv.URL})
	if code, p := listOrders(t, n, token, ""); code != 200 || p.Source != "head_office" || p.AsOf != "" || len(p.Orders) != 2 {
		t.Fatalf("head office up: %d %+v, want its 2 orders, source head_office, no as_of", code, p)
	}
	testwait.For(t, "the node's copy of its orders", 10*time.Second, func() bool {
		for _, r := range central.requests() {
			if r.Limit == replication.MaxShopOrders {
				return true
			}
		}
		return false
	})

	central.down.Store(true)
	var p copyPage
	var code int
	// The refresh asked; its durable write may not have landed yet.
	testwait.For(t, "the tills served from the copy", 10*time.Second, func() bool {
		code, p = listOrders(t, n, token, "?limit=1")
		return code == 200
	})
	if p.Source != "copy" || len(p.Orders) != 1 || p.Orders[0].ID != "po-1" || p.Next != "po-1" {
		t.Fatalf("first page of the copy = %+v, want po-1, next po-1, source copy", p)
	}
	asOf, err := time.Parse(time.RFC3339, p.AsOf)
	if err != nil || asOf.Before(before) || asOf.After(time.Now()) {
		t.Fatalf("as_of %q (%v), want the time the copy was taken, after %v", p.AsOf, err, before)
	}
	if code, p := listOrders(t, n, token, "?after=po-1"); code != 200 || p.Source != "copy" || len(p.Orders) != 1 || p.Orders[0].ID != "po-2" || p.Next != "" {
		t.Fatalf("second page of the copy = %d %+v, want po-2 alone", code, p)
	}

	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, func(c *node.Config) {
		c.Replication.Central, c.Replication.Token = []string{srv.URL}, ordersReplToken
	})
	if code, p := listOrders(t, n, token, ""); code != 200 || p.Source != "copy" || p.AsOf != asOf.Format(time.RFC3339) || len(p.Orders) != 2 {
		t.Fatalf("after a restart with head office down: %d %+v, want the same copy", code, p)
	}

	central.down.Store(false)
	if code, p := listOrders(t, n, token, ""); code != 200 || p.Source != "head_office" || len(p.Orders) != 2 {
		t.Fatalf("head office back: %d %+v, want its answer", code, p)
	}
}

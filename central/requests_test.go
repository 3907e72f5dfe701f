package central_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// pushDraftAs sends a till's document draft as store's event at seq,
// authenticated as the shop with token.
func pushDraftAs(t *testing.T, addr, token string, store storeline.StoreID, seq uint64, dr *storeline.DocumentDraft) storeline.EventID {
	t.Helper()
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindDocumentDraft, Body: dr, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"}
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: 1, Events: []replication.WireEvent{w}})
	if err != nil {
		t.Fatal(err)
	}
	status, prob, resp := pushRaw(t, addr, token, b)
	if status != http.StatusOK || resp.Gap != nil || len(resp.Rejections) != 0 {
		t.Fatalf("push of %s's draft: status %d %v %+v", store, status, prob, resp)
	}
	return ev.ID
}

// requestOf is a till's request for qty pieces of milk.
func requestOf(qty string) *storeline.DocumentDraft {
	return &storeline.DocumentDraft{Type: storeline.DocRequest, Terminal: "till-1", Seller: "alice", Currency: "EUR", Note: "weekend",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec(qty)}}}
}

// reqRef names a request draft in an order's requests.
func reqRef(store storeline.StoreID, ev storeline.EventID) map[string]any {
	return map[string]any{"store": string(store), "event": ev.String()}
}

// withRequests is an order body of store s1 from p1 for 24 milk
// answering refs.
func withRequests(id string, refs ...map[string]any) map[string]any {
	b := orderBody(id, "s1", "p1", map[string]any{"item": "milk", "qty": "24"})
	b["requests"] = refs
	return b
}

// draftsByEvent lists s1's drafts by event id.
func draftsByEvent(t *testing.T, a string) map[string]map[string]any {
	t.Helper()
	ds := mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s1", viewerKey, nil, nil)).json(t)["drafts"].([]any)
	out := map[string]map[string]any{}
	for _, d := range ds {
		m := d.(map[string]any)
		out[m["event"].(string)] = m
	}
	return out
}

// orderRequests is the requests an order answer lists, as "store/event".
func orderRequests(t *testing.T, r response, status int) []string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var o struct {
		Requests []struct{ Store, Event string }
	}
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatalf("order %s: %v", r.body, err)
	}
	out := []string{}
	for _, rq := range o.Requests {
		out = append(out, rq.Store+"/"+rq.Event)
	}
	return out
}

// TestRequestAnsweredByOrder: shops' requests for goods reach head
// office as till drafts of type request, are listed with the drafts, and
// are answered by a purchase order that names them: each must be a
// request draft of the order's store, is answered once, and is never made
// a stock document. A refused order writes nothing: no request it named
// is marked answered.
func TestRequestAnsweredByOrder(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	waitFor(t, "the FSM level of purchase orders", 20*time.Second, func() bool {
		l, err := n.ClusterLevel()
		return err == nil && l >= 4
	})
	a := n.APIAddr()
	seedBackOffice(t, a)
	ra := n.ReplicationAddr()
	req1 := pushDraftAs(t, ra, testShops[0].token, "s1", 1, requestOf("24"))
	inv := pushDraftAs(t, ra, testShops[0].token, "s1", 2, &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice,
		Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("6"), PurchasePrice: dec("0.55")}}})
	req2 := pushDraftAs(t, ra, testShops[0].token, "s1", 3, requestOf("12"))
	req3 := pushDraftAs(t, ra, testShops[0].token, "s1", 4, requestOf("6"))
	reqS2 := pushDraftAs(t, ra, testShops[1].token, "s2", 1, requestOf("6"))

	ds := draftsByEvent(t, a)
	if d := ds[req1.String()]; d == nil || d["type"] != "request" || d["note"] != "weekend" || d["order"] != nil {
		t.Fatalf("request draft as listed = %v", d)
	}

	// Refused, naming the request at fault; nothing written.
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"not a request", withRequests("o-bad", reqRef("s1", req1), reqRef("s1", inv)), http.StatusUnprocessableEntity, "requests[1]"},
		{"another store's request", withRequests("o-bad", reqRef("s2", reqS2)), http.StatusUnprocessableEntity, "requests[0]"},
		{"another store's event named as ours", withRequests("o-bad", reqRef("s1", reqS2)), http.StatusUnprocessableEntity, "requests[0]"},
		{"no such event", withRequests("o-bad", reqRef("s1", req1), reqRef("s1", storeline.NewEventID())), http.StatusUnprocessableEntity, "requests[1]"},
		{"the same request twice", withRequests("o-bad", reqRef("s1", req1), reqRef("s1", req1)), http.StatusUnprocessableEntity, "requests[1]"},
		{"no event", withRequests("o-bad", map[string]any{"store": "s1", "event": ""}), http.StatusUnprocessableEntity, "requests[0].event"},
		{"event not an id", withRequests("o-bad", map[string]any{"store": "s1", "event": "nope"}), http.StatusBadRequest, "requests[0].event"},
	} {
		t.Run(c.name, func(t *testing.T) {
			problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, c.body, nil), c.status, c.field)
		})
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/orders/o-bad", viewerKey, nil, nil), http.StatusNotFound, "id")
	if d := draftsByEvent(t, a)[req1.String()]; d["order"] != nil {
		t.Fatalf("a refused order marked request 1 answered: %v", d)
	}

	// Answered: recorded on the order, shown on the draft; the same
	// order again is a 200, with other requests a conflict on id.
	body := withRequests("o1", reqRef("s1", req1))
	want := "s1/" + req1.String()
	if got := orderRequests(t, apiDo(t, "POST", a, "/v1/orders", adminKey, body, nil), http.StatusCreated); len(got) != 1 || got[0] != want {
		t.Fatalf("order o1 answers %v, want [%s]", got, want)
	}
	if got := orderRequests(t, apiDo(t, "POST", a, "/v1/orders", adminKey, body, nil), http.StatusOK); len(got) != 1 || got[0] != want {
		t.Fatalf("order o1 again answers %v, want [%s]", got, want)
	}
	if got := orderRequests(t, apiDo(t, "GET", a, "/v1/orders/o1", viewerKey, nil, nil), http.StatusOK); len(got) != 1 || got[0] != want {
		t.Fatalf("GET order o1 answers %v, want [%s]", got, want)
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, withRequests("o1", reqRef("s1", req2)), nil), http.StatusConflict, "id")
	ds = draftsByEvent(t, a)
	if ds[req1.String()]["order"] != "o1" || ds[req2.String()]["order"] != nil || ds[inv.String()]["order"] != nil {
		t.Fatalf("drafts after o1: request 1 %v, request 2 %v, invoice %v", ds[req1.String()], ds[req2.String()], ds[inv.String()])
	}

	// A request is answered by one order: another naming it is a conflict,
	// and the request it named before that one is not marked either.
	problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, withRequests("o2", reqRef("s1", req1)), nil), http.StatusConflict, "requests[0]")
	problemOf(t, apiDo(t, "POST", a, "/v1/orders", adminKey, withRequests("o2", reqRef("s1", req2), reqRef("s1", req1)), nil), http.StatusConflict, "requests[1]")
	if d := draftsByEvent(t, a)[req2.String()]; d["order"] != nil {
		t.Fatalf("a refused order marked request 2 answered: %v", d)
	}
	orderRequests(t, apiDo(t, "POST", a, "/v1/orders", adminKey, withRequests("o2", reqRef("s1", req2)), nil), http.StatusCreated)
	if d := draftsByEvent(t, a)[req2.String()]; d["order"] != "o2" {
		t.Fatalf("request 2 after o2: %v", d)
	}

	// A request is never made a stock document, answered or not, copied
	// from the draft or typed by hand naming it.
	for _, ev := range []storeline.EventID{req1, req3} {
		problemOf(t, apiDo(t, "PUT", a, "/v1/documents/doc-req", adminKey,
			map[string]any{"draft": map[string]any{"store": "s1", "event": ev.String()}}, nil), http.StatusUnprocessableEntity, "draft")
	}
	for _, ev := range []storeline.EventID{req1, req3} {
		problemOf(t, apiDo(t, "PUT", a, "/v1/documents/doc-req", adminKey, map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
			"draft": map[string]any{"store": "s1", "event": ev.String()},
			"lines": lines(map[string]any{"item": "milk", "qty": "24", "purchase_price": "0.55"})}, nil), http.StatusUnprocessableEntity, "draft")
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/doc-req", viewerKey, nil, nil), http.StatusNotFound, "")
	// The till's invoice draft is still made a document as before.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv-1", adminKey, map[string]any{"draft": map[string]any{"store": "s1", "event": inv.String()}}, nil))

	// A cancelled order gives its requests back: unanswered again, a new
	// order may answer them; the cancelled one still lists them.
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o2/cancel", adminKey, map[string]any{"reason": "supplier out of stock"}, nil))
	if d := draftsByEvent(t, a)[req2.String()]; d["order"] != nil {
		t.Fatalf("request 2 after its order was cancelled: %v", d)
	}
	if got := orderRequests(t, apiDo(t, "GET", a, "/v1/orders/o2", viewerKey, nil, nil), http.StatusOK); len(got) != 1 {
		t.Fatalf("cancelled order o2 lists %v, want its request", got)
	}
	orderRequests(t, apiDo(t, "POST", a, "/v1/orders", adminKey, withRequests("o3", reqRef("s1", req2)), nil), http.StatusCreated)
	if d := draftsByEvent(t, a)[req2.String()]; d["order"] != "o3" {
		t.Fatalf("request 2 after o3: %v", d)
	}
	// A closed order keeps them.
	mustOK(t, apiDo(t, "POST", a, "/v1/orders/o1/close", adminKey, map[string]any{"reason": "enough"}, nil))
	if d := draftsByEvent(t, a)[req1.String()]; d["order"] != "o1" {
		t.Fatalf("request 1 after its order was closed: %v", d)
	}
}

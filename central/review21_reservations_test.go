package central_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// pushShopEvent sends one event of shop (testShops[shop]) at seq, with
// the postings given, and returns central's answer.
func pushShopEvent(t *testing.T, addr string, shop int, seq uint64, id storeline.EventID, body storeline.Body, ps []storeline.Posting) *replication.PushResponse {
	t.Helper()
	store := testShops[shop].store
	ev := storeline.Event{ID: id, Origin: store, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		Kind: body.EventKind(), Body: body, Postings: ps, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"}
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: 1, Events: []replication.WireEvent{w}})
	if err != nil {
		t.Fatal(err)
	}
	status, prob, resp := pushRaw(t, addr, testShops[shop].token, b)
	if status != http.StatusOK || resp.Gap != nil {
		t.Fatalf("push of %s's %s: status %d %v %+v", store, body.EventKind(), status, prob, resp)
	}
	return resp
}

// reserve pushes a reservation of shop holding qty pieces of milk for
// customer c1 until 2026-12-03, as the shop's node posts it.
func reserve(t *testing.T, addr string, shop int, seq uint64, qty string) storeline.EventID {
	t.Helper()
	id := storeline.NewEventID()
	r := &storeline.Reservation{Terminal: "till-1", Seller: "alice", Customer: "c1", Contact: "+371 2000 0000", Until: "2026-12-03",
		Lines: []storeline.BasketLine{{Item: "milk", Unit: storeline.Piece, Qty: dec(qty)}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	ps, err := storeline.DeriveEventPostings(testShops[shop].store, id, r)
	if err != nil {
		t.Fatal(err)
	}
	if resp := pushShopEvent(t, addr, shop, seq, id, r, ps); len(resp.Rejections) != 0 {
		t.Fatalf("reservation refused: %+v", resp.Rejections)
	}
	return id
}

type reservationsOut struct {
	Store        string
	Reservations []struct {
		ID, Terminal, Seller, Customer, Contact, Until string
		BusinessDate                                   string    `json:"business_date"`
		OccurredAt                                     time.Time `json:"occurred_at"`
		Held                                           []struct{ Item, Qty string }
		Lines                                          []struct{ Item, Unit, Qty string }
	}
	Reserved map[string]decimal.Decimal
	Next     string
}

func getReservations(t *testing.T, a, query string) reservationsOut {
	t.Helper()
	var out reservationsOut
	r := mustOK(t, apiDo(t, "GET", a, "/v1/reservations?"+query, viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("reservations %s: %v", r.body, err)
	}
	return out
}

// stockRow is one item's row of the stock report (qty and reserved).
func stockRow(t *testing.T, a, store, item string) (qty, reserved string) {
	t.Helper()
	var body struct {
		Stock []struct{ Item, Qty, Reserved string }
	}
	r := mustOK(t, apiDo(t, "GET", a, "/v1/stock?store="+store+"&item="+item, viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Stock) != 1 {
		t.Fatalf("stock of %s: %s (%v)", item, r.body, err)
	}
	return body.Stock[0].Qty, body.Stock[0].Reserved
}

// TestReview21Reservations: a shop's reservation reaches head office
// through replication and is listed as active with its details, the
// item's reserved units at the store in both the list and the stock
// report (stock itself untouched); its end takes it off the list and
// the units back to none. Another shop's reservations are its own, an
// unknown store is a 404, and a reservation that posts stock is refused
// without moving anything.
func TestReview21Reservations(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a, ra := n.APIAddr(), n.ReplicationAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "20", "purchase_price": "1.10"})})
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"})})

	r1 := reserve(t, ra, 0, 1, "2")
	r2 := reserve(t, ra, 0, 2, "1.000")
	other := reserve(t, ra, 1, 1, "4")

	got := getReservations(t, a, "store=s1")
	if len(got.Reservations) != 2 || got.Next != "" || len(got.Reserved) != 1 || !got.Reserved["milk"].Equal(dec("3")) {
		t.Fatalf("s1's reservations = %+v, want r1 and r2 holding 3 milk", got)
	}
	for _, res := range got.Reservations {
		if res.ID != r1.String() && res.ID != r2.String() {
			t.Fatalf("s1 lists %s, not one of its reservations (s2's is %s)", res.ID, other)
		}
		if res.Until != "2026-12-03" || res.Customer != "c1" || res.Contact == "" || res.Seller != "alice" || res.Terminal != "till-1" ||
			res.BusinessDate != "2026-11-29" || res.OccurredAt.IsZero() || len(res.Lines) != 1 || res.Lines[0].Unit != "pcs" ||
			len(res.Held) != 1 || res.Held[0].Item != "milk" {
			t.Fatalf("reservation %s without its details: %+v", res.ID, res)
		}
	}
	// The memo accounts hold units of the item like any account: every
	// asset still sums to zero over all of them (balances checks).
	if b := balances(t, a); !b["reserved/s1/milk item:milk"].Equal(dec("3")) || !b["stock/s1/main/milk item:milk"].Equal(dec("20")) {
		t.Fatalf("balances with active reservations: %v", b)
	}
	if q, r := stockRow(t, a, "s1", "milk"); q != "20" || r != "3" {
		t.Fatalf("s1's milk: qty %s reserved %s, want 20 in stock of which 3 reserved", q, r)
	}
	if s2 := getReservations(t, a, "store=s2&item=MILK"); len(s2.Reservations) != 1 || s2.Reservations[0].ID != other.String() || !s2.Reserved["milk"].Equal(dec("4")) {
		t.Fatalf("s2's reservations of MILK = %+v, want its own one of 4", s2)
	}
	if none := getReservations(t, a, "store=s1&item=bread"); len(none.Reservations) != 0 || len(none.Reserved) != 0 {
		t.Fatalf("s1's reservations of bread = %+v, want none", none)
	}
	page := getReservations(t, a, "store=s1&limit=1")
	if len(page.Reservations) != 1 || page.Next != page.Reservations[0].ID {
		t.Fatalf("first page of 1 = %+v", page)
	}
	if rest := getReservations(t, a, "store=s1&limit=1&after="+page.Next); len(rest.Reservations) != 1 || rest.Next != "" || rest.Reservations[0].ID == page.Next {
		t.Fatalf("second page of 1 = %+v", rest)
	}

	// r1 released: off the list, its units no longer reserved.
	end := &storeline.ReservationEnd{Reservation: r1, Outcome: storeline.ReservationReleased, Terminal: "till-1", Seller: "alice",
		Lines: []storeline.BasketLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("2")}}}
	ps, err := storeline.DeriveEventPostings("s1", storeline.ReservationEndID(r1), end)
	if err != nil {
		t.Fatal(err)
	}
	if resp := pushShopEvent(t, ra, 0, 3, storeline.ReservationEndID(r1), end, ps); len(resp.Rejections) != 0 {
		t.Fatalf("end refused: %+v", resp.Rejections)
	}
	got = getReservations(t, a, "store=s1")
	if len(got.Reservations) != 1 || got.Reservations[0].ID != r2.String() || !got.Reserved["milk"].Equal(dec("1")) {
		t.Fatalf("after r1's end: %+v, want r2 alone holding 1 milk", got)
	}
	end.Reservation, end.Lines[0].Qty = r2, dec("1")
	if ps, err = storeline.DeriveEventPostings("s1", storeline.ReservationEndID(r2), end); err != nil {
		t.Fatal(err)
	}
	pushShopEvent(t, ra, 0, 4, storeline.ReservationEndID(r2), end, ps)
	if got = getReservations(t, a, "store=s1"); len(got.Reservations) != 0 || len(got.Reserved) != 0 {
		t.Fatalf("after every end: %+v, want none", got)
	}
	if q, r := stockRow(t, a, "s1", "milk"); q != "20" || r != "" {
		t.Fatalf("s1's milk after the ends: qty %s reserved %q, want 20 and none reserved", q, r)
	}

	// A reservation that takes the goods out of stock is refused: no
	// balance moves (every asset still sums to zero: balances checks).
	before := balances(t, a)
	id := storeline.NewEventID()
	bad := &storeline.Reservation{Terminal: "till-1", Seller: "alice", Contact: "desk", Until: "2026-12-03",
		Lines: []storeline.BasketLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("1")}}}
	ps, err = storeline.DeriveEventPostings("s1", id, bad)
	if err != nil {
		t.Fatal(err)
	}
	ps[0].Account = "stock/s1/main/milk"
	if resp := pushShopEvent(t, ra, 0, 5, id, bad, ps); len(resp.Rejections) != 1 {
		t.Fatalf("a reservation posting stock: %+v, want it rejected", resp)
	}
	sameBalances(t, "after a refused reservation", balances(t, a), before)
	if got = getReservations(t, a, "store=s1"); len(got.Reservations) != 0 {
		t.Fatalf("a refused reservation is listed: %+v", got)
	}

	problemOf(t, apiDo(t, "GET", a, "/v1/reservations?store=nowhere", viewerKey, nil, nil), http.StatusNotFound, "store")
	problemOf(t, apiDo(t, "GET", a, "/v1/reservations", viewerKey, nil, nil), http.StatusBadRequest, "store")
	problemOf(t, apiDo(t, "GET", a, "/v1/reservations?store=s1&limit=0", viewerKey, nil, nil), http.StatusBadRequest, "limit")
	problemOf(t, apiDo(t, "GET", a, "/v1/reservations?store=s1&item=NO-SUCH", viewerKey, nil, nil), http.StatusNotFound, "item")
}

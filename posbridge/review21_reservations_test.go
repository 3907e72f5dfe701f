package posbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

func reservationBody(id, until string, lines ...map[string]any) map[string]any {
	return map[string]any{"id": id, "occurred_at": t0.Format(time.RFC3339), "terminal": "t1",
		"contact": "+49 30 1234567", "until": until, "lines": lines}
}

func conserved(t *testing.T, e *env) {
	t.Helper()
	if err := e.led.CheckConservation(); err != nil {
		t.Fatalf("conservation: %v", err)
	}
}

func reservedStock(t *testing.T, e *env, sku string) (onHand, reserved, available string) {
	t.Helper()
	st := e.must(e.do(req{method: "GET", path: "/v1/stock/" + sku, token: tokenT1}), 200)
	return st["on_hand"].(string), st["reserved"].(string), st["available"].(string)
}

// TestReview21ReservationHoldsWhatIsAvailable: a reservation holds goods
// on memo accounts (stock shows them reserved, on hand unchanged), is
// answered again on a retry and refused under its id with another body;
// one holding more than is available, or until a date out of range, or
// naming an unknown card is refused naming the field, and writes nothing.
func TestReview21ReservationHoldsWhatIsAvailable(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("5"))
	id := newID()
	body := reservationBody(id, "2026-03-12", map[string]any{"sku": "MILK", "qty": "2"}, map[string]any{"barcode": milkEAN, "qty": "1"})
	m := e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 201)
	if m["status"] != "active" || m["seller"] != "alice" || m["until"] != "2026-03-12" {
		t.Fatalf("reservation = %v", m)
	}
	if l := m["lines"].([]any)[0].(map[string]any); l["sku"] != "MILK" || l["qty"] != "2" {
		t.Fatalf("line = %v", l)
	}
	if on, res, av := reservedStock(t, e, "MILK"); on != "5" || res != "3" || av != "2" {
		t.Fatalf("stock on hand %s reserved %s available %s, want 5, 3, 2", on, res, av)
	}
	again := e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 200)
	if again["seq"] != m["seq"] {
		t.Fatalf("retry = %v, first %v", again, m)
	}
	body["until"] = "2026-03-13"
	e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 409, "id")

	pos := e.led.Position()
	over := reservationBody(newID(), "2026-03-12", map[string]any{"sku": "MILK", "qty": "2"}, map[string]any{"sku": "MILK", "qty": "1"})
	r := e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: over})
	e.problem(r, 422, "lines[1].qty")
	if !strings.Contains(string(r.body), "only 2 is available") {
		t.Fatalf("detail does not say how many are available: %s", r.body)
	}
	for _, until := range []string{"2026-03-09", "2026-04-10", "2026-13-01"} {
		e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(newID(), until, map[string]any{"sku": "MILK", "qty": "1"}), invalid: until == "2026-13-01"}), 422, "until")
	}
	last := reservationBody(newID(), "2026-04-09", map[string]any{"sku": "MILK", "qty": "1"})
	last["card"] = "NOSUCHCARD"
	e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: last}), 404, "card")
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused reservations moved the journal: %v → %v", pos, got)
	}
	last["card"] = "CARD0001"
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: last}), 201)
	list := e.must(e.do(req{method: "GET", path: "/v1/reservations", token: tokenT1}), 200)
	rs := list["reservations"].([]any)
	if len(rs) != 2 || rs[0].(map[string]any)["id"] != id {
		t.Fatalf("active reservations = %v, want 2, %s first", rs, id)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/reservations?limit=0", token: tokenT1, invalid: true}), 422, "limit")
	conserved(t, e)
}

// TestReview21ReservationEndsOnce: a reservation has one end. Released,
// its goods are available again; the same release again is a 200; a
// collection after it is a 409 saying it was released. A collection
// names a receipt of the shop, else it is refused naming receipt.
func TestReview21ReservationEndsOnce(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("4"))
	at := t0.Add(time.Hour).Format(time.RFC3339)
	a, b := newID(), newID()
	for _, id := range []string{a, b} {
		e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, "2026-03-11", map[string]any{"sku": "MILK", "qty": "2"})}), 201)
	}
	release := map[string]any{"terminal": "t1", "occurred_at": at, "reason": "customer called"}
	m := e.must(e.do(req{method: "POST", path: "/v1/reservations/" + a + "/release", token: tokenT1, session: alice, body: release}), 201)
	if m["status"] != "released" || m["outcome"] != "released" || m["reason"] != "customer called" || m["ended_at"] == nil {
		t.Fatalf("released = %v", m)
	}
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + a + "/release", token: tokenT1, session: alice, body: release}), 200)
	if _, res, av := reservedStock(t, e, "MILK"); res != "2" || av != "2" {
		t.Fatalf("after the release reserved %s available %s, want 2, 2", res, av)
	}
	rc := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rc,
		[]map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "2.38"}})}), 201)
	collect := map[string]any{"terminal": "t1", "occurred_at": at, "receipt": rc}
	r := e.do(req{method: "POST", path: "/v1/reservations/" + a + "/collect", token: tokenT1, session: alice, body: collect})
	e.problem(r, 409, "id")
	if !strings.Contains(string(r.body), "released") {
		t.Fatalf("the conflict does not say how it ended: %s", r.body)
	}
	pos := e.led.Position()
	collect["receipt"] = newID()
	e.problem(e.do(req{method: "POST", path: "/v1/reservations/" + b + "/collect", token: tokenT1, session: alice, body: collect}), 404, "receipt")
	collect["receipt"] = a // a reservation, not a receipt
	e.problem(e.do(req{method: "POST", path: "/v1/reservations/" + b + "/collect", token: tokenT1, session: alice, body: collect}), 422, "receipt")
	e.problem(e.do(req{method: "POST", path: "/v1/reservations/" + newID() + "/release", token: tokenT1, session: alice, body: release}), 404, "id")
	e.problem(e.do(req{method: "GET", path: "/v1/reservations/" + newID(), token: tokenT1}), 404, "id")
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused ends moved the journal: %v → %v", pos, got)
	}
	collect["receipt"] = rc
	m = e.must(e.do(req{method: "POST", path: "/v1/reservations/" + b + "/collect", token: tokenT1, session: alice, body: collect}), 201)
	if m["status"] != "collected" || m["receipt"] != rc {
		t.Fatalf("collected = %v", m)
	}
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + b + "/collect", token: tokenT1, session: alice, body: collect}), 200)
	r = e.do(req{method: "POST", path: "/v1/reservations/" + b + "/release", token: tokenT1, session: alice, body: release})
	e.problem(r, 409, "id")
	if !strings.Contains(string(r.body), "collected by receipt "+rc) {
		t.Fatalf("the conflict does not say how it ended: %s", r.body)
	}
	if on, res, av := reservedStock(t, e, "MILK"); on != "2" || res != "0" || av != "2" {
		t.Fatalf("after the sale on hand %s reserved %s available %s, want 2, 0, 2", on, res, av)
	}
	got := e.must(e.do(req{method: "GET", path: "/v1/reservations/" + b, token: tokenT1}), 200)
	if got["status"] != "collected" {
		t.Fatalf("GET = %v", got)
	}
	if l := e.must(e.do(req{method: "GET", path: "/v1/reservations", token: tokenT1}), 200); len(l["reservations"].([]any)) != 0 {
		t.Fatalf("ended reservations listed as active: %v", l)
	}
	conserved(t, e)
}

// TestReview21ReservationLastUnitsRace: tills reserving the last units at
// once: exactly one succeeds, the rest are refused as over what is
// available, and nothing is held beyond the stock.
func TestReview21ReservationLastUnitsRace(t *testing.T) {
	e := newEnv(t)
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("1"))
	const tills = 8
	alice := e.login(tokenT1, "alice", "1234")
	codes := make([]int, tills)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(reservationBody(newID(), "2026-03-10", map[string]any{"sku": "MILK", "qty": "1"}))
			rq, err := http.NewRequest("POST", e.http.URL+"/v1/reservations", bytes.NewReader(b))
			if err != nil {
				return
			}
			rq.Header.Set("Authorization", "Bearer "+tokenT1)
			rq.Header.Set("X-Session", alice)
			<-start
			resp, err := http.DefaultClient.Do(rq)
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 201:
			won++
		case 422:
		default:
			t.Fatalf("answers %v, want one 201 and the rest 422", codes)
		}
	}
	if won != 1 {
		t.Fatalf("answers %v: %d reservations of the last unit succeeded, want 1", codes, won)
	}
	if _, res, av := reservedStock(t, e, "MILK"); res != "1" || av != "0" {
		t.Fatalf("reserved %s available %s, want 1, 0", res, av)
	}
	conserved(t, e)
}

// TestReview21LapseReservations: the node lapses the reservations whose
// date has passed and leaves the others; a till ending a lapsed one is
// told so; a reservation retention pruned lapses too (its date is gone).
func TestReview21LapseReservations(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"cheese"}, dec("2.5"))
	due, later := newID(), newID()
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(due, "2026-03-10", map[string]any{"sku": "CHS", "qty": "0.75"})}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(later, "2026-03-12", map[string]any{"sku": "CHS", "qty": "1.25"})}), 201)
	// 23:30 in Berlin on the 10th is still the 10th: nothing is due.
	if n, err := e.srv.LapseReservations(context.Background(), time.Date(2026, 3, 10, 22, 30, 0, 0, time.UTC)); err != nil || n != 0 {
		t.Fatalf("lapse on the day = %d, %v; want 0", n, err)
	}
	next := time.Date(2026, 3, 10, 23, 30, 0, 0, time.UTC) // the 11th in Berlin
	if n, err := e.srv.LapseReservations(context.Background(), next); err != nil || n != 1 {
		t.Fatalf("lapse = %d, %v; want 1", n, err)
	}
	if n, err := e.srv.LapseReservations(context.Background(), next); err != nil || n != 0 {
		t.Fatalf("lapse again = %d, %v; want 0", n, err)
	}
	got := e.must(e.do(req{method: "GET", path: "/v1/reservations/" + due, token: tokenT1}), 200)
	if got["status"] != "lapsed" || got["ended_terminal"] != nil {
		t.Fatalf("due = %v", got)
	}
	if got := e.must(e.do(req{method: "GET", path: "/v1/reservations/" + later, token: tokenT1}), 200); got["status"] != "active" {
		t.Fatalf("later = %v", got)
	}
	r := e.do(req{method: "POST", path: "/v1/reservations/" + due + "/release", token: tokenT1, session: alice,
		body: map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}})
	e.problem(r, 409, "id")
	if !strings.Contains(string(r.body), "lapsed") {
		t.Fatalf("the conflict does not say how it ended: %s", r.body)
	}
	if _, res, av := reservedStock(t, e, "CHS"); !dec(res).Equal(dec("1.25")) || !dec(av).Equal(dec("1.25")) {
		t.Fatalf("reserved %s available %s, want 1.25, 1.25", res, av)
	}
	conserved(t, e)

	if _, err := e.led.PruneJournal(context.Background(), ledger.PruneJournal{Before: time.Now().Add(time.Hour), Acked: e.led.Position()}); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/reservations/" + later, token: tokenT1}), 404, "id")
	if n, err := e.srv.LapseReservations(context.Background(), t0); err != nil || n != 1 {
		t.Fatalf("lapse after the prune = %d, %v; want the pruned one", n, err)
	}
	if _, res, _ := reservedStock(t, e, "CHS"); !dec(res).IsZero() {
		t.Fatalf("reserved %s after every reservation ended, want 0", res)
	}
	if l := e.must(e.do(req{method: "GET", path: "/v1/reservations", token: tokenT1}), 200); len(l["reservations"].([]any)) != 0 {
		t.Fatalf("active after the lapse: %v", l)
	}
	conserved(t, e)
}

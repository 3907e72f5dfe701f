package posbridge_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// staleRead answers the next read of one event ID as not found, once: a
// request that read before another request's append of that ID landed.
type staleRead struct {
	posbridge.Ledger
	hide atomic.Pointer[storeline.EventID]
}

func (l *staleRead) Event(origin storeline.StoreID, id storeline.EventID) (storeline.Event, error) {
	if h := l.hide.Load(); h != nil && *h == id && l.hide.CompareAndSwap(h, nil) {
		return storeline.Event{}, storeline.Errorf(storeline.NotFound, "test", "event %s not yet stored", id)
	}
	return l.Ledger.Event(origin, id)
}

func newStaleEnv(t *testing.T) (*env, *staleRead) {
	var w *staleRead
	e := newEnvWith(t, func(l posbridge.Ledger) posbridge.Ledger { w = &staleRead{Ledger: l}; return w })
	return e, w
}

// TestReview22ReservationRetryRacingFirstTry: a till's retry that read
// its reservation as not stored while the first try was being appended
// (both under way at once) is a retry all the same: 200 with the stored
// reservation, not a 422 saying the goods it holds itself are not
// available.
func TestReview22ReservationRetryRacingFirstTry(t *testing.T) {
	e, w := newStaleEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("2"))
	id := newID()
	body := reservationBody(id, "2026-03-12", map[string]any{"sku": "MILK", "qty": "2"})
	first := e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 201)
	eid, err := storeline.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	w.hide.Store(&eid)
	again := e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 200)
	if again["seq"] != first["seq"] || again["status"] != "active" {
		t.Fatalf("retry = %v, first %v", again, first)
	}
	// Another body under the id, read as stale the same way: a 409.
	body["until"] = "2026-03-13"
	w.hide.Store(&eid)
	e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: body}), 409, "id")
	conserved(t, e)
}

// TestReview22ReservationEndRaceOtherTime: two releases of a reservation
// by the same till at once, at different times: the second is not the
// same end (its occurred_at differs), so it is a 409 as when it comes
// after the first, not a 200 answering the first's end as its own.
func TestReview22ReservationEndRaceOtherTime(t *testing.T) {
	e, w := newStaleEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("2"))
	id := newID()
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(id, "2026-03-12", map[string]any{"sku": "MILK", "qty": "1"})}), 201)
	release := map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice, body: release}), 201)
	eid, err := storeline.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	end := storeline.ReservationEndID(eid)
	release["occurred_at"] = t0.Add(2 * time.Hour).Format(time.RFC3339)
	w.hide.Store(&end)
	r := e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice, body: release})
	e.problem(r, 409, "id")
	if !strings.Contains(string(r.body), "released at terminal t1") {
		t.Fatalf("the conflict does not say how it ended: %s", r.body)
	}
	// The same end again, read as stale: still the retry it is.
	release["occurred_at"] = t0.Add(time.Hour).Format(time.RFC3339)
	w.hide.Store(&end)
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice, body: release}), 200)
}

// TestReview22ReservationEndsAfterUnitChange: an item weighed when it was
// reserved (0.75 kg of cheese) and sold by the piece since: the
// reservation still ends, at a till and by the node's lapse, giving back
// what it holds in the unit it was reserved in, not refused as a
// fraction of a piece (no till could ever end it, and the goods stayed
// reserved for good).
func TestReview22ReservationEndsAfterUnitChange(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"cheese"}, dec("2.5"))
	released, lapsing := newID(), newID()
	for _, id := range []string{released, lapsing} {
		e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, "2026-03-10", map[string]any{"sku": "CHS", "qty": "0.75"})}), 201)
	}
	byPiece := &storeline.Item{ID: "cheese", SKU: "CHS", Name: "cheese", Group: "g-food", Dept: "food", Unit: storeline.Piece, VATRate: dec("10")}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{byPiece}); err != nil {
		t.Fatal(err)
	}
	m := e.must(e.do(req{method: "POST", path: "/v1/reservations/" + released + "/release", token: tokenT1, session: alice,
		body: map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}}), 201)
	if m["status"] != "released" {
		t.Fatalf("released = %v", m)
	}
	if n, err := e.srv.LapseReservations(context.Background(), t0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("lapse = %d, %v; want 1", n, err)
	}
	if _, res, _ := reservedStock(t, e, "CHS"); !dec(res).IsZero() {
		t.Fatalf("reserved %s after both ended, want 0", res)
	}
	conserved(t, e)
}

// TestReview22ReservationUntilByNodeClock: a till whose clock runs days
// ahead cannot hold goods past what the node's own date allows: the node
// lapses a hold the day after its date, and the journal's retention
// (which ages entries by the node's clock) must not prune it first, so
// the bound is counted from the earlier of the two dates.
func TestReview22ReservationUntilByNodeClock(t *testing.T) {
	e := newEnv(t) // the node's clock reads t0: 2026-03-10 in Berlin
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("2"))
	ahead := reservationBody(newID(), "2026-04-13", map[string]any{"sku": "MILK", "qty": "1"})
	ahead["occurred_at"] = t0.Add(4 * 24 * time.Hour).Format(time.RFC3339) // the till's 2026-03-14
	e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: ahead}), 422, "until")
	ahead["until"] = "2026-04-09" // 30 days after the node's date
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice, body: ahead}), 201)
}

// TestReview22LapseRacingTill: a reservation the lapse job listed as
// active and a till released before the job reached it is skipped (the
// till's end stands), not an end of nothing that fails the whole run and
// leaves the other due reservations held.
func TestReview22LapseRacingTill(t *testing.T) {
	var stale atomic.Pointer[[]posbridge.Balance]
	var balances func(string) ([]posbridge.Balance, error)
	e := newEnvConfig(t, nil, func(c *posbridge.Config) {
		balances = c.Balances
		c.Balances = func(prefix string) ([]posbridge.Balance, error) {
			if bs := stale.Load(); bs != nil && prefix == storeline.ReservationAccountPrefix("s1") {
				return *bs, nil
			}
			return balances(prefix)
		}
	})
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("4"))
	ids := []string{newID(), newID(), newID()}
	for _, id := range ids {
		e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, "2026-03-10", map[string]any{"sku": "MILK", "qty": "1"})}), 201)
	}
	// What the job lists: all three active, as they were before the
	// tills released two of them.
	listed, err := balances(storeline.ReservationAccountPrefix("s1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:2] {
		e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice,
			body: map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}}), 201)
	}
	stale.Store(&listed)
	if n, err := e.srv.LapseReservations(context.Background(), t0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("lapse = %d, %v; want 1 (the one no till ended)", n, err)
	}
	stale.Store(nil)
	if _, res, _ := reservedStock(t, e, "MILK"); !dec(res).IsZero() {
		t.Fatalf("reserved %s after every reservation ended, want 0", res)
	}
	conserved(t, e)
}

// TestReview22ReservationEndRaceSameBody: two releases by the same till
// at once, each having read the reservation as active and its account as
// holding the goods: the second append finds the same body stored. Sent
// at another time it is not the same end (409); at the same time it is
// the retry it is (200).
func TestReview22ReservationEndRaceSameBody(t *testing.T) {
	var w *staleRead
	var stale atomic.Pointer[[]posbridge.Balance]
	var balances func(string) ([]posbridge.Balance, error)
	e := newEnvConfig(t, func(l posbridge.Ledger) posbridge.Ledger { w = &staleRead{Ledger: l}; return w }, func(c *posbridge.Config) {
		balances = c.Balances
		c.Balances = func(prefix string) ([]posbridge.Balance, error) {
			if bs := stale.Swap(nil); bs != nil {
				return *bs, nil
			}
			return balances(prefix)
		}
	})
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("2"))
	id := newID()
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(id, "2026-03-12", map[string]any{"sku": "MILK", "qty": "1"})}), 201)
	eid, err := storeline.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	held, err := balances(storeline.ReservationAccount("s1", eid))
	if err != nil {
		t.Fatal(err)
	}
	release := map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice, body: release}), 201)
	end := storeline.ReservationEndID(eid)
	for _, c := range []struct {
		at     time.Time
		status int
	}{{t0.Add(2 * time.Hour), 409}, {t0.Add(time.Hour), 200}} {
		release["occurred_at"] = c.at.Format(time.RFC3339)
		w.hide.Store(&end)
		stale.Store(&held)
		r := e.do(req{method: "POST", path: "/v1/reservations/" + id + "/release", token: tokenT1, session: alice, body: release})
		if c.status == 409 {
			e.problem(r, 409, "id")
		} else if m := e.must(r, 200); m["status"] != "released" {
			t.Fatalf("retry = %v", m)
		}
	}
	conserved(t, e)
}

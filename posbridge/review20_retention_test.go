package posbridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview20StatsAfterFutureDatedPrune: a till whose clock ran years
// ahead (2031, a time CheckEventTime accepts) sold once; once retention
// pruned that receipt with the rest, the shop's statistics for the days
// it holds are answered, not refused as pruned until 2031.
func TestReview20StatsAfterFutureDatedPrune(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	pays := []map[string]any{{"method": "cash", "amount": "1.19"}}
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1,
		body: sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, pays)}), 201)
	ahead := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, pays)
	ahead["shift"] = "sh-ahead" // no opening here: dated by its occurred_at
	ahead["occurred_at"] = "2031-01-01T10:00:00Z"
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: ahead}), 201)

	res, err := e.led.PruneJournal(context.Background(), ledger.PruneJournal{Before: time.Now().Add(time.Hour), Acked: e.led.Position()})
	if err != nil || res.Pruned != 2 {
		t.Fatalf("PruneJournal = %+v, %v; want both receipts pruned", res, err)
	}
	stats := func(from, to string) resp {
		return e.do(req{method: "GET", path: "/v1/stats/sales?from=" + from + "&to=" + to, token: tokenT1, session: alice})
	}
	e.problem(stats("2026-03-10", "2026-03-10"), 422, "from")
	// The receipts went into the ledger now (its clock is the real one):
	// days from the day after tomorrow on are held whole, but for the
	// one receipt of 2031 a till's wrong clock dated.
	after := time.Now().UTC().AddDate(0, 0, 2)
	e.must(stats(after.Format(time.DateOnly), after.AddDate(0, 0, 1).Format(time.DateOnly)), 200)
}

// TestReview20EveryFactRetryAfterPrune: on every route a till posts facts
// to, a retry of a fact whose event retention pruned is answered as
// already recorded (409 naming id), before anything is checked again that
// changed since the first try (the session ended, the items deleted), and
// nothing is stored twice.
func TestReview20EveryFactRetryAfterPrune(t *testing.T) {
	for _, rt := range retryRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t)
			bob := e.login(tokenT1, "bob", "9999")
			if rt.prep != nil {
				rt.prep(e, bob)
			}
			id := newID()
			first := e.do(req{method: "POST", path: rt.path, token: tokenT1, session: bob, body: rt.body(id)})
			if first.status != 201 {
				t.Fatalf("first try: %d %s", first.status, first.body)
			}
			before := e.led.Position()
			res, err := e.led.PruneJournal(context.Background(), ledger.PruneJournal{Before: time.Now().Add(time.Hour), Acked: before})
			if err != nil || res.Pruned == 0 {
				t.Fatalf("PruneJournal = %+v, %v", res, err)
			}
			e.must(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: bob}), 204)
			for _, item := range []string{"milk", "wine"} {
				if _, err := e.led.DeleteMaster(context.Background(), storeline.KindItem, item); err != nil {
					t.Fatal(err)
				}
			}
			e.problem(e.do(req{method: "POST", path: rt.path, token: tokenT1, session: bob, body: rt.body(id)}), 409, "id")
			if after := e.led.Position(); after != before {
				t.Errorf("the retry stored something: position %v, was %v", after, before)
			}
		})
	}
}

// TestReview20LapseHandbackPrunedThenGrant: a lapsed customer's rights
// were handed back but the mark of their last visit was not moved (a
// failed write), and retention pruned the hand-back since. When head
// office then grants them points here, the next lapse pass takes the
// pruned hand-back for the one it made (the window starts again), as it
// does a stored one: it appended the same ID again, refused as pruned,
// and the pass stopped there at every sweep, for every customer after.
func TestReview20LapseHandbackPrunedThenGrant(t *testing.T) {
	e, b := pregrantEnv(t) // cust1: 300 here, last seen at t0
	b.mu.Lock()
	seen := b.seen["cust1"]
	b.mu.Unlock()
	e.clock.Add(100 * 24 * time.Hour)
	if n := sweep(t, e); n != 200 {
		t.Fatalf("lapse pass: handed back %d, want 200", n)
	}
	b.mu.Lock()
	b.seen["cust1"] = seen // the write that moved it on was lost
	b.mu.Unlock()
	res, err := e.led.PruneJournal(context.Background(), ledger.PruneJournal{Before: time.Now().Add(time.Hour), Acked: e.led.Position()})
	if err != nil || res.Pruned == 0 {
		t.Fatalf("PruneJournal = %+v, %v", res, err)
	}
	preGrant(t, e, 2, 50)
	e.clock.Add(24 * time.Hour) // the next day's lapse pass
	if n, err := e.srv.SweepPoints(context.Background()); err != nil || n != 0 {
		t.Fatalf("SweepPoints = %d, %v; want 0 handed back, the lapse's hand-back taken as made", n, err)
	}
	if e.rights() != 150 {
		t.Fatalf("rights %d, want 150: the float and the new grant", e.rights())
	}
}

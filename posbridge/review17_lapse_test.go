package posbridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// grantMany applies central's pre-grants of n points to each of custs at
// s1, in events of at most 1024 customers, from seq on; it returns the
// next seq.
func grantMany(t *testing.T, e *env, seq uint64, custs []storeline.CustomerID, n int64) uint64 {
	t.Helper()
	at := e.clock.Now()
	pts := storeline.PointsAsset("club")
	for len(custs) > 0 {
		k := min(len(custs), 1024)
		var ps []storeline.Posting
		for _, c := range custs[:k] {
			ps = append(ps,
				storeline.Posting{Account: storeline.PointsAccount("club", c, storeline.Central), Asset: pts, Amount: decimal.NewFromInt(-n)},
				storeline.Posting{Account: storeline.PointsAccount("club", c, "s1"), Asset: pts, Amount: decimal.NewFromInt(n)})
		}
		if _, err := e.led.ApplyRemote(context.Background(), storeline.Event{
			ID: storeline.NewEventID(), Origin: storeline.Central, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
			Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "loyalty pre-grant to a usual shop"},
			OccurredAt: at, BusinessDate: storeline.Date(at.Format(time.DateOnly)), Postings: ps,
		}); err != nil {
			t.Fatalf("pre-grants from seq %d: %v", seq, err)
		}
		custs, seq = custs[k:], seq+1
	}
	return seq
}

// TestReview17LapsedPassResumesAcrossDays: the lapse pass over a shop's
// customers holding more than the float goes 4096 customers a call. A
// pass not finished by the end of the business day (a sweep interval of
// hours, the longest allowed is 24h, or central unreachable for the rest
// of the day) started again from the first customer the next day, so
// with more than 4096 regulars holding pre-grants, the customers after
// them by ID were never examined: their lapsed rights stayed here for
// good.
func TestReview17LapsedPassResumesAcrossDays(t *testing.T) {
	e, b := pregrantEnv(t) // cust1: 300 here, last seen at t0
	day := 24 * time.Hour
	e.clock.Add(100 * day)
	today := storeline.DateOf(e.clock.Now(), time.UTC)
	// 4096 regulars seen today, each holding 200 here, all before cust1
	// by ID.
	regulars := make([]storeline.CustomerID, 4096)
	b.mu.Lock()
	for i := range regulars {
		regulars[i] = storeline.CustomerID(fmt.Sprintf("a%05d", i))
		b.seen[regulars[i]] = today
	}
	b.mu.Unlock()
	grantMany(t, e, 2, regulars, 200)
	if n := sweep(t, e); n != 0 {
		t.Fatalf("first call (the regulars): handed back %d, want 0", n)
	}
	// The node's next sweep comes a day later (points-sweep-interval 24h).
	e.clock.Add(day)
	if n := sweep(t, e); n != 200 || e.rights() != 100 {
		t.Fatalf("the next day's call: handed back %d, cust1's rights %d; want 200 of the lapsed cust1, the float 100 kept", n, e.rights())
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReview17LapsedDebtorBelowFloat: a customer who owes points here
// hands back all their rights when they lapse (as after a receipt), so
// central can net them against the debt. The pass looked only at
// customers holding more than the float, so a lapsed debtor's rights at
// or below it stayed here for good, and the debt was never paid by them.
func TestReview17LapsedDebtorBelowFloat(t *testing.T) {
	e, _ := pregrantEnv(t) // cust1: 300 here, last seen at t0
	// Spent all 300 here, then a return without its receipt takes back
	// 143 points: all owed.
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: spendSale("t1", 300)}), 201)
	bob := e.login(tokenT1, "bob", "9999")
	e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339),
		"reason": "no receipt", "card": "CARD0001",
		"lines":   []map[string]any{line("sku", "WINE", "qty", "2", "price", "7.19")},
		"refunds": []map[string]any{line("method", "cash", "amount", "14.38")},
	}}), 201)
	debt := func() int64 {
		d, err := e.led.Balance(storeline.PointsDebtAccount("club", "cust1", "s1"), storeline.PointsAsset("club"))
		if err != nil {
			t.Fatal(err)
		}
		return d.IntPart()
	}
	if e.rights() != 0 || debt() != -143 {
		t.Fatalf("rights %d, debt %d; want 0, -143", e.rights(), debt())
	}
	// Head office grants 80 here (POST /v1/loyalty/grants).
	preGrant(t, e, 2, 80)
	e.clock.Add(100 * 24 * time.Hour)
	if n := sweep(t, e); n != 80 || e.rights() != 0 {
		t.Fatalf("sweep 100 days after a debtor's last visit: handed back %d, rights %d; want all 80, 0 kept", n, e.rights())
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

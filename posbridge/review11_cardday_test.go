package posbridge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// dayCentral is a PointsBroker whose central is unreachable: the shop
// spends offline, and the points it paid are counted per business date.
type dayCentral struct {
	mu    sync.Mutex
	spent map[storeline.Date]int64
}

func (*dayCentral) Online() bool { return false }
func (*dayCentral) Reserve(context.Context, storeline.ProgrammeID, storeline.CustomerID, storeline.EventID, int64) (int64, int64, error) {
	return 0, 0, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (*dayCentral) Points(context.Context, storeline.ProgrammeID, storeline.CustomerID) (posbridge.CentralPoints, bool, error) {
	return posbridge.CentralPoints{}, false, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (c *dayCentral) OfflineSpent(_ storeline.ProgrammeID, _ storeline.CustomerID, d storeline.Date) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spent[d], nil
}
func (c *dayCentral) AddOfflineSpent(_ context.Context, _ storeline.ProgrammeID, _ storeline.CustomerID, d storeline.Date, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spent[d] += n
	return nil
}

// TestReviewCardSpendableByShiftDay: offline, a points payment counts
// against the daily cap of its shift's business date (the day the shift
// opened, for a shift that crosses midnight). After midnight on a shift
// opened the evening before, GET /v1/cards/{code} at that till used to
// show the whole cap of the new calendar day while a receipt of the shift
// paying those points was refused (409): the card's spendable_now must be
// what a receipt of the calling till's open shift may take now, and, at
// a till with no open shift, what today's date allows.
func TestReviewCardSpendableByShiftDay(t *testing.T) {
	central := &dayCentral{spent: map[storeline.Date]int64{}}
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.Points = central })
	e.addPricing()
	e.addClub()
	club := &storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("10"),
		ExcludeItems: []storeline.ItemID{"cola"}, PointValue: dec("0.01"), MaxShare: dec("100"), DailyOfflineCap: 100}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{club}); err != nil {
		t.Fatal(err)
	}

	// 22:00 in Berlin on 10 March: t1 opens the evening shift.
	e.clock.Add(12 * time.Hour)
	at := func() string { return e.clock.Now().Format(time.RFC3339) }
	alice := e.login(tokenT1, "alice", "1234")
	open := openShiftBody(newID(), "eve", "100.00")
	open["occurred_at"] = at()
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: open}), 201)

	earn := earnSale("10")
	earn["shift"], earn["occurred_at"] = "eve", at()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earn}), 201)
	spend := func(token, term, shift string, pts int64) resp {
		b := spendSale(term, pts)
		b["shift"], b["occurred_at"] = shift, at()
		return e.do(req{method: "POST", path: "/v1/receipts", token: token, body: b})
	}
	spendable := func(token string) int64 {
		t.Helper()
		m := e.must(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: token}), 200)
		return int64(m["points"].(map[string]any)["spendable_now"].(float64))
	}
	if got := spendable(tokenT1); got != 100 {
		t.Fatalf("before any spend, spendable_now = %d, want the daily cap 100", got)
	}
	// The whole cap of 10 March is spent in the evening shift.
	e.must(spend(tokenT1, "t1", "eve", 100), 201)
	if got := spendable(tokenT1); got != 0 {
		t.Fatalf("after the cap was spent, spendable_now = %d, want 0", got)
	}

	// 00:30 on 11 March: the shift still belongs to 10 March.
	e.clock.Add(150 * time.Minute)
	got := spendable(tokenT1)
	r := spend(tokenT1, "t1", "eve", 1)
	if got != 0 || r.status != 409 {
		t.Fatalf("after midnight in the shift of 10 March: card shows spendable_now %d, a 1-point receipt of the shift answered %d %s; want 0 and 409 (the shift's day's cap is used up)",
			got, r.status, r.body)
	}

	// t2 has no open shift: today's date, 11 March, with its whole cap.
	if got := spendable(tokenT2); got != 100 {
		t.Fatalf("at a till with no open shift, spendable_now = %d, want 100 (the cap of 11 March)", got)
	}
	e.must(spend(tokenT2, "t2", "night", 100), 201)
	if got := spendable(tokenT2); got != 0 {
		t.Fatalf("after 11 March's cap was spent, spendable_now = %d, want 0", got)
	}

	// Once t1's shift closes, t1 answers by today's date as well.
	e.must(e.do(req{method: "POST", path: "/v1/shifts/eve/close", token: tokenT1, session: alice,
		body: map[string]any{"id": newID()}}), 201)
	if got := spendable(tokenT1); got != 0 {
		t.Fatalf("after the close, spendable_now at t1 = %d, want 0 (11 March's cap is spent)", got)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

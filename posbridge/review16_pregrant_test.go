package posbridge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// seenCentral is a PointsBroker always online that keeps the customers'
// last visits in memory (posbridge.SeenMarks) under a 90-day usual-shop
// window. Central grants nothing on request (a reservation is
// Unavailable, so a shortfall is refused as offline with no cap). onSeen,
// if set, runs once, at the first LastSeen call after it is set, with
// the mark as read.
type seenCentral struct {
	mu     sync.Mutex
	seen   map[storeline.CustomerID]storeline.Date
	onSeen func(storeline.Date)
}

func (*seenCentral) Online() bool { return true }
func (*seenCentral) Reserve(context.Context, storeline.ProgrammeID, storeline.CustomerID, storeline.EventID, int64) (int64, int64, error) {
	return 0, 0, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (*seenCentral) Points(context.Context, storeline.ProgrammeID, storeline.CustomerID) (posbridge.CentralPoints, bool, error) {
	return posbridge.CentralPoints{}, false, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (*seenCentral) OfflineSpent(storeline.ProgrammeID, storeline.CustomerID, storeline.Date) (int64, error) {
	return 0, nil
}
func (*seenCentral) AddOfflineSpent(context.Context, storeline.ProgrammeID, storeline.CustomerID, storeline.Date, int64) error {
	return nil
}
func (b *seenCentral) LastSeen(_ storeline.ProgrammeID, c storeline.CustomerID) (storeline.Date, error) {
	b.mu.Lock()
	d, hook := b.seen[c], b.onSeen
	b.onSeen = nil
	b.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return d, nil
}
func (b *seenCentral) SetLastSeen(_ context.Context, _ storeline.ProgrammeID, c storeline.CustomerID, d storeline.Date) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[c] = d
	return nil
}
func (*seenCentral) UsualWindowDays() int { return 90 }

func (b *seenCentral) hook(fn func(storeline.Date)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onSeen = fn
}

// pregrantEnv is a shop online with a float of 100 where cust1 earned 719
// at t0 (handing 619 back) and central then pre-granted 200 more, as its
// sweep does for a usual shop: 300 of cust1's rights here.
func pregrantEnv(t *testing.T) (*env, *seenCentral) {
	t.Helper()
	b := &seenCentral{seen: map[storeline.CustomerID]storeline.Date{}}
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.Points = b })
	e.addPricing()
	e.addClub()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	if got := e.rights(); got != 100 {
		t.Fatalf("rights after earning 719 online = %d, want the float 100", got)
	}
	preGrant(t, e, 1, 200)
	return e, b
}

// preGrant applies central's transfer of n of cust1's points from its
// rights to the shop's, as a pulled pre-grant does.
func preGrant(t *testing.T, e *env, seq uint64, n int64) {
	t.Helper()
	at := e.clock.Now()
	pts := storeline.PointsAsset("club")
	if _, err := e.led.ApplyRemote(context.Background(), storeline.Event{
		ID: storeline.NewEventID(), Origin: storeline.Central, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "loyalty pre-grant to a usual shop"},
		OccurredAt: at, BusinessDate: storeline.Date(at.Format(time.DateOnly)),
		Postings: []storeline.Posting{
			{Account: storeline.PointsAccount("club", "cust1", storeline.Central), Asset: pts, Amount: decimal.NewFromInt(-n)},
			{Account: storeline.PointsAccount("club", "cust1", "s1"), Asset: pts, Amount: decimal.NewFromInt(n)},
		},
	}); err != nil {
		t.Fatalf("pre-grant %d: %v", n, err)
	}
}

// centralRights is cust1's rights at central as the shop's ledger knows
// them (its hand-backs, less what it saw central grant).
func centralRights(t *testing.T, e *env) int64 {
	t.Helper()
	b, err := e.led.Balance(storeline.PointsAccount("club", "cust1", storeline.Central), storeline.PointsAsset("club"))
	if err != nil {
		t.Fatal(err)
	}
	return b.IntPart()
}

func sweep(t *testing.T, e *env) int64 {
	t.Helper()
	n, err := e.srv.SweepPoints(context.Background())
	if err != nil {
		t.Fatalf("SweepPoints: %v", err)
	}
	return n
}

// nowSale is body dated at the env's clock, in a shift of that day.
func nowSale(e *env, body map[string]any) map[string]any {
	now := e.clock.Now()
	body["occurred_at"], body["shift"] = now.Format(time.RFC3339), "sh-"+now.Format("20060102")
	return body
}

// TestReview16PreGrantStrandedAtFormerUsualShop: rights central
// pre-granted to a shop while it was a customer's usual shop went back
// to central only at the customer's next earning receipt there; a
// customer who stopped coming left them there for good, out of reach of
// every other shop online (central may not take them back). Now the
// shop's sweep hands back the rights above its float of a customer not
// seen here for longer than central's usual-shop window plus a day (when
// central counts the shop usual no more, so it grants them where the
// customer shops now), once, and keeps rights granted again for a whole
// window.
func TestReview16PreGrantStrandedAtFormerUsualShop(t *testing.T) {
	e, _ := pregrantEnv(t)
	day := 24 * time.Hour
	if n := sweep(t, e); n != 0 || e.rights() != 300 {
		t.Fatalf("sweep the day of the visit: handed back %d, rights %d; want 0, 300", n, e.rights())
	}
	e.clock.Add(91 * day) // still within 90 days plus a day
	if n := sweep(t, e); n != 0 || e.rights() != 300 {
		t.Fatalf("sweep 91 days after the visit: handed back %d, rights %d; want 0, 300", n, e.rights())
	}
	e.clock.Add(day)
	if n := sweep(t, e); n != 200 || e.rights() != 100 {
		t.Fatalf("sweep 92 days after the last visit: handed back %d, rights %d; want 200, the float 100 kept", n, e.rights())
	}
	if got := centralRights(t, e); got != 619+200-200 {
		t.Errorf("central's rights as the shop knows them = %d, want %d", got, 619)
	}
	if n := sweep(t, e); n != 0 {
		t.Errorf("a second sweep the same day handed back %d more", n)
	}
	// Central grants here again (its window was longer): kept a window.
	preGrant(t, e, 2, 200)
	for range 3 {
		e.clock.Add(30 * day)
		if n := sweep(t, e); n != 0 || e.rights() != 300 {
			t.Fatalf("sweep %s after the hand-back: handed back %d, rights %d; want 0, 300", e.clock.Now().Sub(t0), n, e.rights())
		}
	}
	e.clock.Add(3 * day)
	if n := sweep(t, e); n != 200 || e.rights() != 100 {
		t.Fatalf("sweep 93 days after the grant again: handed back %d, rights %d; want 200", n, e.rights())
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReview16VisitKeepsPreGrant: a receipt with the card, even one that
// earns nothing, is a visit: the window starts again from it.
func TestReview16VisitKeepsPreGrant(t *testing.T) {
	e, _ := pregrantEnv(t)
	day := 24 * time.Hour
	e.clock.Add(80 * day)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: nowSale(e, spendSale("t1", 50))}), 201)
	e.clock.Add(80 * day)
	if n := sweep(t, e); n != 0 || e.rights() != 250 {
		t.Fatalf("sweep 80 days after a visit: handed back %d, rights %d; want 0, 250", n, e.rights())
	}
	e.clock.Add(12 * day)
	if n := sweep(t, e); n != 150 || e.rights() != 100 {
		t.Fatalf("sweep 92 days after the last visit: handed back %d, rights %d; want 150", n, e.rights())
	}
}

// TestReview16CustomerArrivesAsPreGrantHandedBack: the customer shows up
// at the till just as the sweep finds their rights lapsed. A receipt
// noted before the shop decides keeps the rights here; a points payment
// arriving while the hand-back is appended waits for it and reads the
// rights it leaves: the 300 are never both spent here and handed back.
func TestReview16CustomerArrivesAsPreGrantHandedBack(t *testing.T) {
	t.Run("visit before the decision", func(t *testing.T) {
		e, b := pregrantEnv(t)
		e.clock.Add(100 * 24 * time.Hour)
		var paid resp
		b.hook(func(storeline.Date) {
			paid = e.do(req{method: "POST", path: "/v1/receipts", token: tokenT2, body: nowSale(e, spendSale("t2", 50))})
		})
		if n := sweep(t, e); n != 0 {
			t.Errorf("handed back %d of a customer at the till", n)
		}
		if paid.status != 201 || e.rights() != 250 {
			t.Errorf("paying 50 of 300 as the sweep ran = %d %s, rights %d; want 201, 250 kept here", paid.status, paid.body, e.rights())
		}
		if err := e.led.CheckConservation(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("payment during the hand-back", func(t *testing.T) {
		e, b := pregrantEnv(t)
		e.clock.Add(100 * 24 * time.Hour)
		// The first LastSeen is the sweep's unlocked look; the second,
		// under the customer's lock, starts the payment.
		done := make(chan resp, 1)
		started := false
		b.hook(func(storeline.Date) {
			b.hook(func(storeline.Date) {
				started = true
				body := nowSale(e, spendSale("t2", 250))
				go func() { done <- e.do(req{method: "POST", path: "/v1/receipts", token: tokenT2, body: body}) }()
			})
		})
		if n := sweep(t, e); n != 200 || !started {
			t.Fatalf("handed back %d (deciding under the customer's lock: %v), want 200", n, started)
		}
		paid := <-done
		if paid.status != 409 || e.rights() != 100 {
			t.Errorf("paying 250 while 200 of 300 were handed back = %d %s, rights %d; want 409, the float 100", paid.status, paid.body, e.rights())
		}
		if err := e.led.CheckConservation(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReview16LapsedHandbackOncePerLapse: the hand-back's ID derives
// from the customer and their last visit; a crash after it was appended
// but before the shop moved the mark on finds it and hands back nothing
// more (here: the mark set back, and central's grant applied since).
func TestReview16LapsedHandbackOncePerLapse(t *testing.T) {
	e, b := pregrantEnv(t)
	seen := b.seen["cust1"]
	e.clock.Add(100 * 24 * time.Hour)
	if n := sweep(t, e); n != 200 {
		t.Fatalf("handed back %d, want 200", n)
	}
	b.mu.Lock()
	b.seen["cust1"] = seen // as if the mark's write was lost
	b.mu.Unlock()
	preGrant(t, e, 2, 50)
	e.clock.Add(24 * time.Hour)
	if n := sweep(t, e); n != 0 || e.rights() != 150 {
		t.Fatalf("sweep after a lost mark: handed back %d, rights %d; want 0, 150", n, e.rights())
	}
	hb := 0
	if err := e.led.EventsByDate(storeline.DateOf(t0, time.UTC), storeline.DateOf(e.clock.Now(), time.UTC), func(ev storeline.Event) error {
		if ev.Kind == storeline.KindPointsHandback {
			hb++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := 2; hb != want { // the receipt's and the lapse's
		t.Errorf("%d hand-backs in the journal, want %d", hb, want)
	}
}

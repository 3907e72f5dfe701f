package node

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview12TillClockAheadDoesNotLockOutOffline: a till whose clock runs
// ten days ahead opens its shift on a business date ten days away and
// takes a points payment offline. The customer's offline cap record must
// still count today's payments as they are: the shop's other tills, on
// today's date, may go on taking points offline up to the daily cap,
// and the card shows the cap left, not a customer locked out until the
// calendar catches up with the wrong clock.
func TestReview12TillClockAheadDoesNotLockOutOffline(t *testing.T) {
	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "s1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	b := &pointsBroker{led: led, now: func() time.Time { return now }}
	ctx := context.Background()
	today, ahead := storeline.Date("2026-11-30"), storeline.Date("2026-12-10")
	if err := b.AddOfflineSpent(ctx, "club", "c1", today, 30); err != nil {
		t.Fatal(err)
	}
	if err := b.AddOfflineSpent(ctx, "club", "c1", ahead, 20); err != nil {
		t.Fatal(err)
	}
	if got, err := b.OfflineSpent("club", "c1", today); err != nil || got != 30 {
		t.Fatalf("after a payment dated %s by a till ahead, offline spent on %s = %d %v, want 30", ahead, today, got, err)
	}
	if err := b.AddOfflineSpent(ctx, "club", "c1", today, 5); err != nil {
		t.Fatal(err)
	}
	if got, err := b.OfflineSpent("club", "c1", today); err != nil || got != 35 {
		t.Errorf("offline spent on %s = %d %v, want 35", today, got, err)
	}
	if got, err := b.OfflineSpent("club", "c1", ahead); err != nil || got != 20 {
		t.Errorf("offline spent on %s = %d %v, want 20", ahead, got, err)
	}
	// Still bounded: days pass, the record keeps a week back from today.
	for i := 1; i <= 30; i++ {
		now = now.AddDate(0, 0, 1)
		if err := b.AddOfflineSpent(ctx, "club", "c1", storeline.DateOf(now, time.UTC), 1); err != nil {
			t.Fatal(err)
		}
	}
	days, err := b.offlineDays("club", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(days) > OfflineCapDays+1 {
		t.Errorf("the record holds %d dates, want at most %d", len(days), OfflineCapDays+1)
	}
	if got, _ := b.OfflineSpent("club", "c1", today); got != storeline.MaxPoints {
		t.Errorf("a month on, a date the record dropped counts %d, want the whole cap", got)
	}
}

package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestOfflineCapCountersPruned: the points a customer paid offline are
// counted per business date in one record that keeps OfflineCapDays back
// from the latest date: it stays bounded however many days pass, the
// dates it keeps count exactly, a date it dropped counts as the whole cap
// spent (a late receipt cannot pay points offline), and a counter of the
// per-date format before it is still read.
func TestOfflineCapCountersPruned(t *testing.T) {
	led, err := ledger.Open(ledger.DefaultOptions(t.TempDir(), "s1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	b := &pointsBroker{led: led}
	ctx := context.Background()
	day := func(i int) storeline.Date { return storeline.Date(fmt.Sprintf("2026-10-%02d", i)) }
	for i := 1; i <= 30; i++ {
		for range 2 {
			if err := b.AddOfflineSpent(ctx, "club", "c1", day(i), int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		days, err := b.offlineDays("club", "c1")
		if err != nil {
			t.Fatal(err)
		}
		if len(days) > OfflineCapDays+1 {
			t.Fatalf("after %d days the record holds %d dates, want at most %d", i, len(days), OfflineCapDays+1)
		}
	}
	for i, want := range map[int]int64{30: 60, 23: 46, 22: storeline.MaxPoints, 1: storeline.MaxPoints} {
		if got, err := b.OfflineSpent("club", "c1", day(i)); err != nil || got != want {
			t.Errorf("offline spent on %s = %d %v, want %d", day(i), got, err, want)
		}
	}
	if got, _ := b.OfflineSpent("club", "c2", day(1)); got != 0 {
		t.Errorf("another customer's count = %d", got)
	}
	// A counter an older build wrote for today still counts.
	if err := led.SetMeta(ctx, offlineKey("club", "c1", day(30)), ledger.PutU64(5)); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.OfflineSpent("club", "c1", day(30)); got != 65 {
		t.Errorf("with an old-format counter of 5 = %d, want 65", got)
	}
}

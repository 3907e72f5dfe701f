package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

// TestReview21ReservationLapseAtStart: a node started after a
// reservation's date has passed lapses it at once (the job's first run is
// at start, not an interval later), and leaves one still due alone; its
// goods are no longer reserved.
func TestReview21ReservationLapseAtStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	day := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	clock := day
	n := startNode(t, dir, func(c *node.Config) { c.Clock = func() time.Time { return clock } })
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	reserve := func(until storeline.Date) storeline.EventID {
		t.Helper()
		ev, _, err := n.Ledger().Append(ctx, storeline.Event{ID: storeline.NewEventID(), OccurredAt: day, BusinessDate: "2026-03-10",
			Body: &storeline.Reservation{Terminal: "till-1", Seller: "s1", Contact: "+49 30 1234567", Until: until,
				Lines: []storeline.BasketLine{{Item: sample.MilkItem, Unit: storeline.Piece, Qty: decimal.NewFromInt(2)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	due, later := reserve("2026-03-10"), reserve("2026-03-13")
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	clock = day.Add(24 * time.Hour)
	n = startNode(t, dir, func(c *node.Config) { c.Clock = func() time.Time { return clock } })
	l := n.Ledger()
	ev, err := l.Event("shop-1", storeline.ReservationEndID(due))
	if err != nil {
		t.Fatalf("the due reservation's end after the start: %v", err)
	}
	if end := ev.Body.(*storeline.ReservationEnd); end.Outcome != storeline.ReservationLapsed || end.Reservation != due {
		t.Fatalf("end = %+v", end)
	}
	if _, err := l.Event("shop-1", storeline.ReservationEndID(later)); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("the later reservation's end: %v, want none", err)
	}
	held, err := l.Balance(storeline.ReservedAccount("shop-1", sample.MilkItem), storeline.ItemAsset(sample.MilkItem))
	if err != nil || !held.Equal(decimal.NewFromInt(2)) {
		t.Fatalf("reserved = %s, %v; want the later one's 2", held, err)
	}
	if err := l.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReview21ReservationLapseIntervalValidated: the lapse job's interval
// is checked like the other jobs' (0: the default).
func TestReview21ReservationLapseIntervalValidated(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		bad   bool
	}{{0, false}, {time.Second, false}, {24 * time.Hour, false}, {-time.Second, true}, {time.Millisecond, true}, {48 * time.Hour, true}} {
		c := validConfig()
		c.ReservationLapseInterval = tc.every
		err := c.Validate()
		if got := err != nil && strings.Contains(err.Error(), "ReservationLapseInterval"); got != tc.bad {
			t.Errorf("ReservationLapseInterval %v: Validate = %v, want refused %v", tc.every, err, tc.bad)
		}
	}
}

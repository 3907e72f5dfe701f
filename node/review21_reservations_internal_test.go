package node

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// TestReview21ReservationHoldEndsBeforeRetention: a reservation may hold
// goods no longer than ends it (lapsed the day after its date) two days
// before the journal's retention could prune its event, and never longer
// than the domain's bound.
func TestReview21ReservationHoldEndsBeforeRetention(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		retention time.Duration
		want      int
	}{
		{0, storeline.MaxReservationDays}, // the default, 90 days
		{-1, storeline.MaxReservationDays},
		{MinJournalRetention, 5},
		{20 * day, 18},
		{32 * day, 30},
		{10 * 365 * day, storeline.MaxReservationDays},
	} {
		cfg := Config{JournalRetention: c.retention}
		if got := cfg.maxReservationDays(); got != c.want {
			t.Errorf("retention %v: hold at most %d days, want %d", c.retention, got, c.want)
		}
		if got := cfg.bridgeConfig(nil).MaxReservationDays; got != c.want {
			t.Errorf("retention %v: the tills' API holds at most %d days, want %d", c.retention, got, c.want)
		}
	}
}

package node

import (
	"context"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// Reservations of goods lapse at the shop: once a reservation's date has
// passed (or retention pruned it), the node ends it, giving its goods
// back to what the tills may reserve (posbridge.LapseReservations). It
// runs once at start, for the days the node was down, then every
// Config.ReservationLapseInterval.

// DefaultReservationLapse is the lapse job's interval when the
// configuration leaves it zero: a reservation holds until the end of a
// business day, so minutes late is soon enough.
const DefaultReservationLapse = 10 * time.Minute

// maxReservationDays bounds a reservation's hold so that it ends (the
// lapse job ends it the day after its date) two days before the journal's
// retention could prune it: a live reservation never loses its details.
func (c Config) maxReservationDays() int {
	days := storeline.MaxReservationDays
	if r := c.journalRetention(); r > 0 {
		days = min(days, int(r/(24*time.Hour))-2)
	}
	return max(days, 0)
}

func (c Config) reservationLapseInterval() time.Duration {
	if c.ReservationLapseInterval == 0 {
		return DefaultReservationLapse
	}
	return c.ReservationLapseInterval
}

// startReservationLapse lapses what is due now, then starts the periodic
// job. A failed first run is logged, not fatal: the job tries again.
func (n *Node) startReservationLapse(s *posbridge.Server) {
	now := time.Now
	if n.cfg.Clock != nil {
		now = n.cfg.Clock
	}
	every := n.cfg.reservationLapseInterval()
	timeout := max(every, time.Minute)
	lapse := func(ctx context.Context) error {
		k, err := s.LapseReservations(ctx, now())
		if k > 0 {
			n.log.Info("reservations lapsed", "count", k)
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	if err := lapse(ctx); err != nil {
		n.log.Warn("reservations: lapse", "err", err)
	}
	cancel()
	n.lapse = n.startPeriodic("reservations: lapse", every, timeout, lapse)
}

func (n *Node) stopReservationLapse() {
	n.lapse.end()
	n.lapse = nil
}

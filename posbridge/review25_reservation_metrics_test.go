package posbridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// TestReview25ReservationMetrics: storeline_reservations_total counts a
// reservation made once (its retry not), one refused for too few
// available, and each end by its outcome.
func TestReview25ReservationMetrics(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("3"))
	a, b, c := newID(), newID(), newID()
	reserve := func(id string) resp {
		return e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, "2026-03-10", map[string]any{"sku": "MILK", "qty": "1"})})
	}
	e.must(reserve(a), 201)
	e.must(reserve(a), 200) // the retry is not counted
	e.must(reserve(b), 201)
	e.problem(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(c, "2026-03-10", map[string]any{"sku": "MILK", "qty": "2"})}), 422, "lines[0].qty")
	release := map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + a + "/release", token: tokenT1, session: alice, body: release}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + a + "/release", token: tokenT1, session: alice, body: release}), 200)
	if n, err := e.srv.LapseReservations(context.Background(), t0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("lapse = %d, %v", n, err)
	}
	for outcome, want := range map[string]float64{"made": 2, "refused": 1, "released": 1, "lapsed": 1, "collected": 0} {
		if got := metricOf(t, e, "storeline_reservations_total", outcome); got != want {
			t.Errorf("storeline_reservations_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

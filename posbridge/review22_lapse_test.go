package posbridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestReview22LapseGoesOnPastOneItCannotEnd: a reservation whose account
// holds what no end can give back (here a transfer from head office over-
// credited it) is reported by the lapse run, and the other due ones still
// lapse: one bad account never keeps every other hold on the shelf.
func TestReview22LapseGoesOnPastOneItCannotEnd(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("4"))
	bad, good := newID(), newID()
	for _, id := range []string{bad, good} {
		e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, "2026-03-10", map[string]any{"sku": "MILK", "qty": "1"})}), 201)
	}
	badID, err := storeline.ParseEventID(bad)
	if err != nil {
		t.Fatal(err)
	}
	milk := storeline.ItemAsset("milk")
	if _, err := e.led.ApplyRemote(context.Background(), storeline.Event{
		ID: storeline.NewEventID(), Origin: storeline.Central, Epoch: 1, Seq: 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "a correction gone wrong"},
		OccurredAt: t0, BusinessDate: "2026-03-10",
		Postings: []storeline.Posting{
			{Account: storeline.ReservationAccount("s1", badID), Asset: milk, Amount: decimal.NewFromInt(3)},
			{Account: storeline.ReservedAccount("s1", "milk"), Asset: milk, Amount: decimal.NewFromInt(-3)},
		},
	}); err != nil {
		t.Fatal(err)
	}
	n, err := e.srv.LapseReservations(context.Background(), t0.Add(24*time.Hour))
	if n != 1 || err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("lapse = %d, %v; want the good one lapsed and the bad one reported", n, err)
	}
	got := e.must(e.do(req{method: "GET", path: "/v1/reservations/" + good, token: tokenT1}), 200)
	if got["status"] != "lapsed" {
		t.Fatalf("the good reservation is %v, want lapsed", got["status"])
	}
	conserved(t, e)
}

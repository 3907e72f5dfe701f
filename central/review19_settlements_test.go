package central_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/storeline/storeline/central"
)

// TestReview19IdempotencyKeyCountsCharacters: openapi.yaml bounds
// Idempotency-Key with maxLength 128, which counts characters, and the
// refusal says "at most 128 characters"; the bound counted bytes, so a
// key of 100 Cyrillic letters (200 bytes), valid by the spec, was
// refused.
func TestReview19IdempotencyKeyCountsCharacters(t *testing.T) {
	c := startCluster(t, 1)
	a := c.waitLeader().APIAddr()
	for _, tc := range []struct {
		key  string
		want int
	}{
		{strings.Repeat("ж", 100), http.StatusOK},
		{strings.Repeat("ж", 128), http.StatusOK},
		{strings.Repeat("k", 128), http.StatusOK},
		{strings.Repeat("ж", 129), http.StatusBadRequest},
		{strings.Repeat("k", 129), http.StatusBadRequest},
	} {
		r := apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"},
			map[string]string{"Idempotency-Key": tc.key})
		if r.status/100 != tc.want/100 {
			t.Errorf("a key of %d characters (%d bytes): %d %s, want %d", len([]rune(tc.key)), len(tc.key), r.status, r.body, tc.want)
			continue
		}
		if tc.want == http.StatusBadRequest && !strings.Contains(string(r.body), `"field":"Idempotency-Key"`) {
			t.Errorf("a key of %d characters: %s, want a problem naming Idempotency-Key", len([]rune(tc.key)), r.body)
		}
	}
}

// TestReview19PayCancelOnItsDay: a payment cancel is booked on the UTC
// day it is applied unless the request names its day (cancelled_on), as
// the operator's calendar has it: near midnight the UTC day is another
// month's for a head office in Vladivostok. A day that is today nowhere
// is a 400 naming cancelled_on and changes nothing; a cluster below FSM
// level 4 (whose old nodes would book the UTC day) answers 503.
func TestReview19PayCancelOnItsDay(t *testing.T) {
	t.Parallel()
	c, clock := payCancelSetup(t, 1, nil)
	a := c.waitLeader().APIAddr()
	bookPayment(t, a, payBody("pay1", "5.00", clock.day(-3)))
	bookPayment(t, a, payBody("pay2", "5.00", clock.day(-3)))
	bookPayment(t, a, payBody("pay3", "5.00", clock.day(-3)))

	for _, on := range []string{clock.day(2), clock.day(-2)} {
		problemOf(t, cancelPayment(t, a, "pay1", "", map[string]any{"reason": "typo", "cancelled_on": on}), http.StatusUnprocessableEntity, "cancelled_on")
	}
	got := mustOK(t, cancelPayment(t, a, "pay1", "", map[string]any{"reason": "typo", "cancelled_on": clock.day(1)})).json(t)
	if got["status"] != "cancelled" || got["cancelled_on"] != clock.day(1) {
		t.Fatalf("cancel naming tomorrow (UTC) = %v, want cancelled on %s", got, clock.day(1))
	}
	got = mustOK(t, cancelPayment(t, a, "pay2", "", map[string]any{"reason": "typo"})).json(t)
	if got["cancelled_on"] != clock.day(0) {
		t.Fatalf("cancel naming no day = %v, want cancelled on the UTC day %s", got, clock.day(0))
	}

	old, oldClock := payCancelSetup(t, 1, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 3) })
	oa := old.waitLeader().APIAddr()
	bookPayment(t, oa, payBody("pay3", "5.00", oldClock.day(-3)))
	if status, body := rawPost(t, oa, "/v1/supplier_payments/pay3/cancel", map[string]any{"reason": "typo", "cancelled_on": oldClock.day(0)}); status != http.StatusServiceUnavailable || !strings.Contains(body, "level 4") {
		t.Fatalf("cancel naming its day at level 3 = %d %s, want 503 naming level 4", status, body)
	}
	if got := mustOK(t, cancelPayment(t, oa, "pay3", "", map[string]any{"reason": "typo"})).json(t); got["cancelled_on"] != oldClock.day(0) {
		t.Fatalf("cancel at level 3 = %v, want booked on the UTC day", got)
	}
}

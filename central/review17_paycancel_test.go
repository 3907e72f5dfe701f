package central_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// payCancelSetup starts a cluster of size nodes (mod changes each
// node's config), waits for the FSM level of supplier payments, and
// writes the back office's master data, a bank b1 and an invoice of
// 11.00 EUR from p1 at s1 on the clock's day 0.
func payCancelSetup(t *testing.T, size int, mod func(*central.Config)) (*cluster, *testClock) {
	t.Helper()
	now := time.Now().UTC()
	clock := &testClock{base: time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC)}
	c := startClusterWith(t, size, func(cfg *central.Config) {
		cfg.Now = clock.Now
		if mod != nil {
			mod(cfg)
		}
	})
	waitFor(t, "every node at the FSM level of supplier payments", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if l, err := n.ClusterLevel(); err != nil || l < 2 {
				return false
			}
		}
		return true
	})
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	return c, clock
}

func payBody(id, amount, paidOn string) map[string]any {
	return map[string]any{"id": id, "supplier": "p1", "bank": "b1", "currency": "EUR", "amount": amount,
		"paid_on": paidOn, "reference": "PP-" + id}
}

func bookPayment(t *testing.T, a string, body map[string]any) {
	t.Helper()
	if r := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, body, nil); r.status != http.StatusCreated {
		t.Fatalf("payment %v: %d %s, want 201", body["id"], r.status, r.body)
	}
}

func cancelPayment(t *testing.T, a, id, key string, body any) response {
	t.Helper()
	var hdr map[string]string
	if key != "" {
		hdr = map[string]string{"Idempotency-Key": key}
	}
	return apiDo(t, "POST", a, "/v1/supplier_payments/"+id+"/cancel", adminKey, body, hdr)
}

// rawPost sends one request and does not retry a 503 (apiDo does).
func rawPost(t *testing.T, addr, path string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestReview17PayCancel: a payment booked by mistake is cancelled with a
// reason. The cancel reverses its postings (payable and bank back where
// they were before it), marks it cancelled (status, cancelled_at, reason
// on GET), and adds a payment_cancel row to the statement, dated the
// later of its paid_on and the day it was cancelled, with the running
// balance and totals consistent and the closing balance the payable's. A
// retry with the same key answers the same; cancelling it again with
// another key is a 409 naming status; bad input is refused naming the
// field and changes nothing.
func TestReview17PayCancel(t *testing.T) {
	c, clock := payCancelSetup(t, 1, nil)
	a := c.waitLeader().APIAddr()
	bookPayment(t, a, payBody("pay1", "4.00", clock.day(0)))
	bookPayment(t, a, payBody("pay2", "3.00", clock.day(0)))
	bookPayment(t, a, payBody("pay3", "1.50", clock.day(5))) // dated ahead
	booked := balances(t, a)
	if got := booked["payable/p1 cur:EUR"]; !got.Equal(dec("-2.50")) {
		t.Fatalf("payable/p1 = %s, want -2.50 (11.00 invoiced, 8.50 paid)", got)
	}

	clock.days.Store(1)
	reason := "wrong supplier: Молочный завод"
	r := cancelPayment(t, a, "pay1", "cancel-pay1", map[string]any{"reason": reason})
	if r.status != http.StatusOK {
		t.Fatalf("cancel pay1: %d %s, want 200", r.status, r.body)
	}
	got := r.json(t)
	if got["status"] != "cancelled" || got["reason"] != reason || got["cancelled_at"] == nil ||
		got["cancelled_on"] != clock.day(1) || got["amount"] != "4.00" || got["cancel_event"] == nil {
		t.Fatalf("cancel answered %s", r.body)
	}
	after := balances(t, a)
	if got := after["payable/p1 cur:EUR"]; !got.Equal(dec("-6.50")) {
		t.Fatalf("payable/p1 = %s after the cancel, want -6.50 (pay1's 4.00 owed again)", got)
	}
	if got := after["bank/b1 cur:EUR"]; !got.Equal(dec("-4.50")) {
		t.Fatalf("bank/b1 = %s after the cancel, want -4.50", got)
	}

	// The same request again with its key: the same answer, nothing moved.
	again := cancelPayment(t, a, "pay1", "cancel-pay1", map[string]any{"reason": reason})
	if again.status != http.StatusOK || !bytes.Equal(again.body, r.body) {
		t.Fatalf("retry: %d %s, want 200 %s", again.status, again.body, r.body)
	}
	sameBalances(t, "after a retried cancel", balances(t, a), after)
	// Another key: it is cancelled already.
	for _, body := range []map[string]any{{"reason": reason}, {"reason": "again"}} {
		r := cancelPayment(t, a, "pay1", "", body)
		problemOf(t, r, http.StatusConflict, "status")
		if !strings.Contains(string(r.body), "pay1") {
			t.Fatalf("409 does not name the payment: %s", r.body)
		}
		sameBalances(t, "after a second cancel", balances(t, a), after)
	}
	// GET shows it cancelled; the other payments stay booked.
	g := mustOK(t, apiDo(t, "GET", a, "/v1/supplier_payments/pay1", viewerKey, nil, nil))
	if !bytes.Equal(g.body, r.body) {
		t.Fatalf("GET pay1 = %s, want what the cancel answered %s", g.body, r.body)
	}
	if s := mustOK(t, apiDo(t, "GET", a, "/v1/supplier_payments/pay2", viewerKey, nil, nil)).json(t)["status"]; s != "booked" {
		t.Fatalf("pay2 status %v, want booked", s)
	}
	// The payment booked again with the same content: the cancelled one.
	rb := apiDo(t, "POST", a, "/v1/supplier_payments", adminKey, payBody("pay1", "4.00", clock.day(0)), nil)
	if rb.status != http.StatusOK || rb.json(t)["status"] != "cancelled" {
		t.Fatalf("pay1 booked again: %d %s, want 200 with the cancelled payment", rb.status, rb.body)
	}
	sameBalances(t, "after booking a cancelled payment again", balances(t, a), after)

	// Refusals: each names its field, and writes nothing.
	for _, tc := range []struct {
		name, id string
		body     any
		status   int
		field    string
	}{
		{"unknown payment", "nosuch", map[string]any{"reason": "x"}, 404, "id"},
		{"bad id", "a:b:" + strings.Repeat("x", 70), map[string]any{"reason": "x"}, 422, "id"},
		{"no reason", "pay2", map[string]any{}, 422, "reason"},
		{"blank reason", "pay2", map[string]any{"reason": " \n "}, 422, "reason"},
		{"reason too long", "pay2", map[string]any{"reason": strings.Repeat("ё", 1025)}, 422, "reason"},
		{"control in reason", "pay2", map[string]any{"reason": "a\x01b"}, 422, "reason"},
		{"reason a number", "pay2", map[string]any{"reason": 5}, 400, "reason"},
		{"unknown field", "pay2", map[string]any{"reason": "x", "amount": "1"}, 400, ""},
	} {
		r := cancelPayment(t, a, tc.id, "", tc.body)
		if r.status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
		problemOf(t, r, tc.status, tc.field)
		sameBalances(t, "after "+tc.name, balances(t, a), after)
	}
	if r := apiDo(t, "POST", a, "/v1/supplier_payments/pay2/cancel", viewerKey, map[string]any{"reason": "x"}, nil); r.status != http.StatusForbidden {
		t.Fatalf("a viewer cancels: %d %s, want 403", r.status, r.body)
	}
	if s := mustOK(t, apiDo(t, "GET", a, "/v1/supplier_payments/pay2", viewerKey, nil, nil)).json(t)["status"]; s != "booked" {
		t.Fatalf("pay2 status %v after refusals, want booked", s)
	}

	// A reason is bounded in characters: 1,024 Cyrillic letters (2,048
	// bytes) pass. pay3, dated day 5, is cancelled on day 1: its row is
	// dated day 5, never before the payment it reverses.
	long := strings.Repeat("ё", 1024)
	if r := cancelPayment(t, a, "pay3", "", map[string]any{"reason": long}); r.status != http.StatusOK ||
		r.json(t)["reason"] != long || r.json(t)["cancelled_on"] != clock.day(5) {
		t.Fatalf("cancel pay3 with a 1024-letter reason: %d %.300s", r.status, r.body)
	}

	s := statement(t, a, "p1", clock.day(0), clock.day(9), "")
	s.wantRows(t,
		"invoice inv1 "+clock.day(0)+" 11.00 11.00",
		"payment pay1 "+clock.day(0)+" -4.00 7.00",
		"payment pay2 "+clock.day(0)+" -3.00 4.00",
		"payment_cancel pay1 "+clock.day(1)+" 4.00 8.00",
		"payment pay3 "+clock.day(5)+" -1.50 6.50",
		"payment_cancel pay3 "+clock.day(5)+" 1.50 8.00",
	)
	s.wantTotals(t, map[string]string{"invoice": "11.00", "invoice_cancel": "0.00", "return": "0.00",
		"return_cancel": "0.00", "payment": "-8.50", "payment_cancel": "5.50", "transfer": "0.00"})
	if s.Opening != "0.00" || s.Closing != "8.00" || s.Unindexed != "0.00" {
		t.Fatalf("opening %s closing %s unindexed %s, want 0.00, 8.00, 0.00", s.Opening, s.Closing, s.Unindexed)
	}
	if got := payableOf(t, a, "p1"); !got.Neg().Equal(dec(s.Closing)) {
		t.Fatalf("payable/p1 = %s, statement closes at %s", got, s.Closing)
	}
	if r := s.Rows[3]; r.Bank != "b1" || r.Reference != "PP-pay1" {
		t.Fatalf("pay1's cancel row: bank %q reference %q", r.Bank, r.Reference)
	}
	// A period before the cancel still shows the payment as it was.
	statement(t, a, "p1", clock.day(0), clock.day(0), "").wantRows(t,
		"invoice inv1 "+clock.day(0)+" 11.00 11.00",
		"payment pay1 "+clock.day(0)+" -4.00 7.00",
		"payment pay2 "+clock.day(0)+" -3.00 4.00")
	if got := balances(t, a)["bank/b1 cur:EUR"]; !got.Equal(dec("-3.00")) {
		t.Fatalf("bank/b1 = %s, want -3.00 (pay2 alone stands)", got)
	}
}

// cancelPayload is OpSupplierPaymentCancel's payload as a node of level
// 3 would put it in the log.
type cancelPayload struct {
	ID     string `msgpack:"i"`
	Reason string `msgpack:"w"`
}

// TestReview17PayCancelLevelGate: cancelling a payment is an op of FSM
// level 3. In a cluster with a member of level 2 the route answers 503
// naming the levels, and an entry that holds the op all the same is
// answered on every replica as an unknown op, changing nothing; once the
// member is upgraded the cluster's level is raised to 3 (without
// indexing the payables a second time) and the cancel applies on every
// replica.
func TestReview17PayCancelLevelGate(t *testing.T) {
	if central.FSMLevel < 3 {
		t.Fatalf("FSMLevel = %d, want 3 (cancelling a supplier payment)", central.FSMLevel)
	}
	// A cluster of the version before cancels (level 2), of which c1 and
	// c2 are upgraded: c3 holds the cluster at level 2.
	c, clock := payCancelSetup(t, 3, func(cfg *central.Config) { *cfg = central.WithFSMLevel(*cfg, 2) })
	upgrade := func(i int) {
		t.Helper()
		c.stopNode(i)
		// To level 3, the version that brought cancels: the binary's own
		// level may be higher (it raises the cluster straight there).
		c.cfgs[i] = central.WithFSMLevel(c.cfgs[i], 3)
		c.startNode(i, []string{c.nodes[(i+1)%len(c.nodes)].GossipAddr()})
		c.waitVoters(len(c.nodes))
	}
	upgrade(0)
	upgrade(1)
	for _, n := range c.nodes {
		if l, err := n.ClusterLevel(); err != nil || l != 2 {
			t.Fatalf("%s: cluster level %d (%v), want 2 while c3 runs level 2", n.ID(), l, err)
		}
	}
	a := c.waitLeader().APIAddr()
	bookPayment(t, a, payBody("pay1", "4.00", clock.day(0)))
	before := balances(t, a)

	for _, n := range c.nodes {
		var status int
		var body string
		// 503 also while a leader is elected: wait for the level's.
		waitFor(t, n.ID()+" to refuse the cancel for its level", 15*time.Second, func() bool {
			status, body = rawPost(t, n.APIAddr(), "/v1/supplier_payments/pay1/cancel", map[string]any{"reason": "early"})
			return status != http.StatusServiceUnavailable || strings.Contains(body, "level")
		})
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "level 3") {
			t.Fatalf("%s: cancel at level 2 = %d %s, want 503 naming level 3", n.ID(), status, body)
		}
	}
	payload, err := msgpack.Marshal(&cancelPayload{ID: "pay1", Reason: "past the level"})
	if err != nil {
		t.Fatal(err)
	}
	var res *central.Result
	retryUnavailable(t, func() error {
		l := c.leader()
		if l == nil {
			return storeline.Errorf(storeline.Unavailable, "test", "no leader")
		}
		var err error
		res, err = l.SubmitPastLevel(central.OpSupplierPaymentCancel, payload)
		return err
	})
	var se *storeline.Error
	if err := res.Err(); !errors.As(err, &se) || se.Kind != storeline.Invalid || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("a level-3 entry applied at level 2 = %v, want the unknown-op answer", err)
	}
	c.waitSettled()
	for _, n := range c.nodes {
		p := mustOK(t, apiDo(t, "GET", n.APIAddr(), "/v1/supplier_payments/pay1", viewerKey, nil, nil)).json(t)
		if p["status"] != "booked" {
			t.Fatalf("%s: pay1 %v after a level-3 entry at level 2, want booked", n.ID(), p)
		}
		if v, err := n.Balance("bank/b1", storeline.MoneyAsset("EUR")); err != nil || !v.Equal(dec("-4.00")) {
			t.Fatalf("%s: bank/b1 = %s (%v), want -4.00", n.ID(), v, err)
		}
	}
	sameBalances(t, "after a level-3 entry at level 2", balances(t, a), before)

	upgrade(2)
	waitFor(t, "the cluster at level 3 on every node", 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if l, err := n.ClusterLevel(); err != nil || l != 3 {
				return false
			}
		}
		return true
	})
	a = c.waitLeader().APIAddr()
	clock.days.Store(1)
	r := cancelPayment(t, a, "pay1", "gate-cancel", map[string]any{"reason": "wrong amount"})
	if r.status != http.StatusOK {
		t.Fatalf("cancel at level 3: %d %s", r.status, r.body)
	}
	c.waitSettled()
	for _, n := range c.nodes {
		p := mustOK(t, apiDo(t, "GET", n.APIAddr(), "/v1/supplier_payments/pay1", viewerKey, nil, nil)).json(t)
		if p["status"] != "cancelled" || p["reason"] != "wrong amount" {
			t.Fatalf("%s: pay1 %v, want cancelled", n.ID(), p)
		}
		if v, err := n.Balance("bank/b1", storeline.MoneyAsset("EUR")); err != nil || !v.IsZero() {
			t.Fatalf("%s: bank/b1 = %s (%v), want 0", n.ID(), v, err)
		}
		s := statement(t, n.APIAddr(), "p1", clock.day(0), clock.day(1), "")
		s.wantRows(t,
			"invoice inv1 "+clock.day(0)+" 11.00 11.00",
			"payment pay1 "+clock.day(0)+" -4.00 7.00",
			"payment_cancel pay1 "+clock.day(1)+" 4.00 11.00")
		if s.Closing != "11.00" || s.Unindexed != "0.00" {
			t.Fatalf("%s: closing %s unindexed %s, want 11.00 and 0.00", n.ID(), s.Closing, s.Unindexed)
		}
	}
}

package central_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// r19pEvent is a receipt of milk at seq, dated date and occurred at at,
// with the postings the shop derives (ps, when not nil, replaces them).
func r19pEvent(t *testing.T, seq uint64, date storeline.Date, at time.Time, body storeline.Body, ps []storeline.Posting) storeline.Event {
	t.Helper()
	if body == nil {
		body = milkReceipt(t, "1")
	}
	if ps == nil {
		var err error
		if ps, err = storeline.DerivePostings("s1", body); err != nil {
			t.Fatal(err)
		}
	}
	return storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		Kind: body.EventKind(), Body: body, OccurredAt: at, BusinessDate: date, Postings: ps}
}

func r19pEncode(t *testing.T, evs ...storeline.Event) []byte {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: "s1", Epoch: 1}
	for _, ev := range evs {
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, w)
	}
	b, err := replication.Encode(&req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// r19pCheck pushes evs (seq 1..) and wants every one acknowledged, the
// seqs in bad rejected as Invalid naming field, and only the rest's milk
// sold at head office.
func r19pCheck(t *testing.T, n *central.Node, field string, bad map[uint64]bool, evs ...storeline.Event) {
	t.Helper()
	status, prob, resp := pushRaw(t, n.ReplicationAddr(), testShops[0].token, r19pEncode(t, evs...))
	if status != http.StatusOK {
		t.Fatalf("push: status %d %v: a business error in one event must not refuse the batch", status, prob)
	}
	if resp.Gap != nil || resp.Acked.Seq != uint64(len(evs)) {
		t.Fatalf("push acked %+v gap %v, want every event acknowledged", resp.Acked, resp.Gap)
	}
	got := map[uint64]bool{}
	for _, rj := range resp.Rejections {
		got[rj.Seq] = true
		if !bad[rj.Seq] {
			t.Errorf("seq %d rejected (%s %s: %s), want it applied", rj.Seq, rj.Kind, rj.Field, rj.Reason)
			continue
		}
		if rj.Kind != "invalid" || rj.Field != field {
			t.Errorf("seq %d rejected as %s naming %q (%s), want invalid naming %q", rj.Seq, rj.Kind, rj.Field, rj.Reason, field)
		}
	}
	for seq := range bad {
		if !got[seq] {
			t.Errorf("seq %d (%s) accepted, want it rejected naming %q", seq, evs[seq-1].BusinessDate, field)
		}
	}
	want := decimal.NewFromInt(int64(len(bad) - len(evs)))
	if b := balances(t, n.APIAddr())["stock/s1/main/milk item:milk"]; !b.Equal(want) {
		t.Errorf("milk stock at head office %s, want %s: only the valid receipts move it", b, want)
	}
}

func r19pNode(t *testing.T) *central.Node {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	seedBackOffice(t, n.APIAddr())
	return n
}

// TestReview19PushRejectsBadBusinessDate: a business date every report
// selects sales by must be a calendar date of a plausible year; an empty,
// foreign-format, impossible or absurd one is a rejection of that event
// (naming business_date), and the rest of the batch applies.
func TestReview19PushRejectsBadBusinessDate(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	dates := []storeline.Date{today, "", "29.11.2026", "2026-13-45", "0001-01-01", "9999-12-31", "2026-02-30", today}
	var evs []storeline.Event
	bad := map[uint64]bool{}
	for i, d := range dates {
		evs = append(evs, r19pEvent(t, uint64(i+1), d, at, nil, nil))
		if d != today {
			bad[uint64(i+1)] = true
		}
	}
	r19pCheck(t, n, "business_date", bad, evs...)
}

// TestReview19PushRejectsBadOccurredAt: an event with no time (a zero
// time.Time, or the Unix epoch a zero on the wire reads as) is rejected
// naming occurred_at.
func TestReview19PushRejectsBadOccurredAt(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	evs := []storeline.Event{
		r19pEvent(t, 1, today, at, nil, nil),
		r19pEvent(t, 2, today, time.Time{}, nil, nil),
		r19pEvent(t, 3, today, time.Unix(0, 0).UTC(), nil, nil),
		r19pEvent(t, 4, today, at, nil, nil),
	}
	r19pCheck(t, n, "occurred_at", map[uint64]bool{2: true, 3: true}, evs...)
}

// TestReview19PushRejectsMoneyBeyondCurrency: a posting of euros in
// thousandths of a cent (balanced, so the postings check passes) would
// leave head office's cash and revenue with amounts no euro has.
func TestReview19PushRejectsMoneyBeyondCurrency(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	good := r19pEvent(t, 1, today, at, nil, nil)
	odd := append([]storeline.Posting(nil), good.Postings...)
	odd = append(odd,
		storeline.Posting{Account: storeline.CashAccount("s1", "till-1"), Asset: storeline.MoneyAsset("EUR"), Amount: dec("0.001")},
		storeline.Posting{Account: storeline.RevenueAccount("s1"), Asset: storeline.MoneyAsset("EUR"), Amount: dec("-0.001")})
	evs := []storeline.Event{good, r19pEvent(t, 2, today, at, nil, storeline.MergePostings(odd)), r19pEvent(t, 3, today, at, nil, nil)}
	r19pCheck(t, n, "postings[0].amount", map[uint64]bool{2: true}, evs...)
}

// TestReview19PushRejectsReceiptIntoStock: a receipt of -1 milk (which
// the shop's Compute refuses) derives postings that put a unit into the
// shop's stock out of sold: a sale must take units out of stock, never
// add them, and a return never take them out.
func TestReview19PushRejectsReceiptIntoStock(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	neg := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec("-1"), Price: dec("1.50"), VATRate: dec("10"),
			Total: dec("-1.50"), VAT: dec("-0.14")}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("-1.50")}}, Total: dec("-1.50")}
	if err := neg.Compute(); err == nil {
		t.Fatal("the shop's Compute takes a receipt of -1 milk; the test needs one it refuses")
	}
	evs := []storeline.Event{r19pEvent(t, 1, today, at, nil, nil), r19pEvent(t, 2, today, at, neg, nil), r19pEvent(t, 3, today, at, nil, nil)}
	r19pCheck(t, n, "postings[4].amount", map[uint64]bool{2: true}, evs...)
}

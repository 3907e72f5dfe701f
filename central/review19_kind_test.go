package central_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// r19kPush pushes wire events of s1 (epoch 1) as they are.
func r19kPush(t *testing.T, addr string, evs ...replication.WireEvent) (int, map[string]any, *replication.PushResponse) {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: "s1", Epoch: 1, Events: evs}
	b, err := replication.Encode(&req)
	if err != nil {
		t.Fatal(err)
	}
	return pushRaw(t, addr, testShops[0].token, b)
}

func r19kWire(t *testing.T, ev storeline.Event) replication.WireEvent {
	t.Helper()
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// r19kGiftCard is an event at seq of a kind this build does not know, as
// a shop one release ahead would push it: a body of its own, no postings.
func r19kGiftCard(t *testing.T, seq uint64, at time.Time) replication.WireEvent {
	t.Helper()
	w := r19kWire(t, r19pEvent(t, seq, storeline.Date(at.Format(time.DateOnly)), at, nil, nil))
	w.Kind, w.Postings = "gift_card", nil
	body, err := msgpack.Marshal(map[string]any{"Code": "GC-1", "Amount": "25.00", "Currency": "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	w.Body = body
	return w
}

// r19kRejections pulls s1's feed to its end and returns the rejections
// it holds.
func r19kRejections(t *testing.T, addr string) []replication.WireRejection {
	t.Helper()
	var out []replication.WireRejection
	q := replication.PullRequest{Store: "s1", Epoch: 1, MaxItems: 1000}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		p := riPull(t, addr, testShops[0].token, q)
		out = append(out, p.Rejections...)
		q.Incarnation = p.Incarnation
		if p.Resync != nil && !p.Resync.Done {
			q.Snapshot = &replication.SnapshotPos{ID: p.Resync.ID, After: p.Resync.Next}
			continue
		}
		q.Snapshot, q.Cursor = nil, p.Cursor
		if p.Resync == nil && !p.More && len(p.Records)+len(p.Events)+len(p.Rejections) == 0 {
			return out
		}
	}
}

// TestReview19PushUnknownKindIsRejected: a shop one release ahead pushes
// an event of a kind head office does not know among good receipts. It is
// that event's rejection (Invalid naming kind), not a 400 for the batch
// that the shop would resend forever: the receipts apply, the batch is
// acknowledged whole, and the rejection flows back down to the shop.
func TestReview19PushUnknownKindIsRejected(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	evs := []replication.WireEvent{
		r19kWire(t, r19pEvent(t, 1, today, at, nil, nil)),
		r19kGiftCard(t, 2, at),
		r19kWire(t, r19pEvent(t, 3, today, at, nil, nil)),
	}
	status, prob, resp := r19kPush(t, n.ReplicationAddr(), evs...)
	if status != http.StatusOK {
		t.Fatalf("push: status %d %v: one event of an unknown kind must not refuse (and so wedge) the batch", status, prob)
	}
	if resp.Gap != nil || resp.Acked.Seq != 3 || resp.Applied != 3 {
		t.Fatalf("push acked %+v gap %v applied %d, want all 3 acknowledged", resp.Acked, resp.Gap, resp.Applied)
	}
	if len(resp.Rejections) != 1 || resp.Rejections[0].Seq != 2 || resp.Rejections[0].Kind != "invalid" || resp.Rejections[0].Field != "kind" {
		t.Fatalf("rejections %+v, want seq 2 alone, invalid naming kind", resp.Rejections)
	}
	if b := balances(t, n.APIAddr())["stock/s1/main/milk item:milk"]; !b.Equal(dec("-2")) {
		t.Errorf("milk stock at head office %s, want -2: both receipts apply", b)
	}
	// The rejection reaches the shop as any other does.
	rjs := r19kRejections(t, n.ReplicationAddr())
	if len(rjs) != 1 || rjs[0].Seq != 2 || rjs[0].Field != "kind" || rjs[0].ID != evs[1].ID {
		t.Fatalf("pulled rejections %+v, want the gift card's, naming kind", rjs)
	}
	// Resent (the shop did not hear the answer): below the mark, nothing new.
	status, prob, resp = r19kPush(t, n.ReplicationAddr(), evs...)
	if status != http.StatusOK || resp.Acked.Seq != 3 || resp.Applied != 0 || len(resp.Rejections) != 0 {
		t.Fatalf("resent batch: status %d %v %+v, want acknowledged with nothing applied", status, prob, resp)
	}
}

// TestReview19PushUnknownKindMalformedBatch: an unknown kind does not
// excuse a batch that is malformed whole: a gap inside it, or an event
// with no ID, is still the batch's 400, and nothing applies.
func TestReview19PushUnknownKindMalformedBatch(t *testing.T) {
	n := r19pNode(t)
	at := time.Now().UTC()
	today := storeline.Date(at.Format(time.DateOnly))
	noID := r19kGiftCard(t, 2, at)
	noID.ID = [16]byte{}
	for name, evs := range map[string][]replication.WireEvent{
		"gap":   {r19kWire(t, r19pEvent(t, 1, today, at, nil, nil)), r19kGiftCard(t, 3, at)},
		"no id": {r19kWire(t, r19pEvent(t, 1, today, at, nil, nil)), noID},
	} {
		if status, prob, _ := r19kPush(t, n.ReplicationAddr(), evs...); status != http.StatusBadRequest {
			t.Errorf("%s: status %d %v, want 400 for the batch", name, status, prob)
		}
	}
	if b := balances(t, n.APIAddr())["stock/s1/main/milk item:milk"]; !b.IsZero() {
		t.Errorf("milk stock at head office %s, want 0: a malformed batch applies nothing", b)
	}
}

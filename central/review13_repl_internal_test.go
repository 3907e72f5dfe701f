package central

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// TestReview13OwnEventsSkipsRejectedRangeBySeek: a restored shop asks for
// its own events of an older epoch after the last one it holds (q.Own).
// Central's mark there is far ahead, and everything between was rejected
// (never stored) but for one event at the end. ownEvents read every seq
// of the range one key at a time, on every pull (and every wake of a long
// poll), forever while the range's tail stays rejected: the cost of a
// pull grew with the shop's rejections. It must find the stored events
// by seeking, whatever the rejected range's length.
func TestReview13OwnEventsSkipsRejectedRangeBySeek(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	const store, epoch = storeline.StoreID("s1"), uint64(7)
	const mark = uint64(1) << 40 // stands in for a long run of rejections
	r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
		Lines:    []storeline.Line{{Item: "milk", Dept: "food", Unit: storeline.Piece, Qty: decimal.RequireFromString("1"), Price: decimal.RequireFromString("4"), VATRate: decimal.RequireFromString("10")}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: decimal.RequireFromString("4")}}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	ps, err := storeline.DerivePostings(store, r)
	if err != nil {
		t.Fatal(err)
	}
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: epoch, Seq: mark - 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindReceipt, OccurredAt: time.Unix(1, 0).UTC(), BusinessDate: "1970-01-01", Body: r, Postings: ps}
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := replication.Encode(&w)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Apply(1, func(tx *ledger.ReplicaTxn) error {
		if err := tx.SetMeta(markKey(store, epoch), ledger.PutU64(mark)); err != nil {
			return err
		}
		// Another epoch's and another store's events must not be taken.
		if err := tx.SetMeta(eventKey(store, epoch+1, 1), raw); err != nil {
			return err
		}
		if err := tx.SetMeta(eventKey("s10", epoch, 5), raw); err != nil {
			return err
		}
		return tx.SetMeta(eventKey(store, epoch, mark-1), raw)
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var page replication.Page
	go func() {
		done <- rep.View(func(rt *ledger.ReplicaTxn) error {
			return ownEvents(rt, &page, replication.PullQuery{Store: store, MaxItems: 10,
				Own: []replication.Position{{Epoch: epoch, Seq: 3}}})
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ownEvents still reading the rejected range one seq at a time after 30 s")
	}
	if len(page.Events) != 1 || page.Events[0].Seq != mark-1 || page.Events[0].Epoch != epoch {
		t.Fatalf("ownEvents sent %d events (%+v), want the one stored at %d/%d", len(page.Events), page.Events, epoch, mark-1)
	}
}

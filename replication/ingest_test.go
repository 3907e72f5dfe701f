package replication_test

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// TestIngestProperties: whatever batches arrive (cut anywhere, duplicated,
// reordered, across epochs, with a till's retry of an old event in a new
// epoch), once the whole stream has been delivered in order every distinct
// (origin, ID) was applied exactly once, each epoch's mark is its last
// seq, a gap applies nothing, and a mark never moves back.
func TestIngestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const store = storeline.StoreID("s1")
		epochs := rapid.IntRange(1, 3).Draw(t, "epochs")
		var stream [][]storeline.Event // per epoch
		var ids []storeline.EventID
		poison := map[storeline.EventID]bool{}
		for e := 1; e <= epochs; e++ {
			n := rapid.IntRange(0, 30).Draw(t, fmt.Sprintf("len%d", e))
			var evs []storeline.Event
			for s := 1; s <= n; s++ {
				var id storeline.EventID
				if len(ids) > 0 && rapid.IntRange(0, 9).Draw(t, "retry") == 0 {
					id = ids[rapid.IntRange(0, len(ids)-1).Draw(t, "which")] // a retry after a restore
				} else {
					id = storeline.NewEventID()
					ids = append(ids, id)
					if rapid.IntRange(0, 19).Draw(t, "poison") == 0 {
						poison[id] = true
					}
				}
				evs = append(evs, storeline.Event{ID: id, Origin: store, Epoch: uint64(e), Seq: uint64(s)})
			}
			stream = append(stream, evs)
		}
		st := replication.NewIngestState()
		applied := map[storeline.EventID]int{}
		apply := func(evs []storeline.Event) ([]error, error) {
			errs := make([]error, len(evs))
			for i, ev := range evs {
				applied[ev.ID]++
				if poison[ev.ID] {
					errs[i] = storeline.Errorf(storeline.NotFound, "test", "unknown item")
				}
			}
			return errs, nil
		}
		marks := map[uint64]uint64{}
		deliver := func(e int, from, to int) {
			evs := stream[e][from:to]
			before := len(applied)
			total := 0
			for _, c := range applied {
				total += c
			}
			res, err := replication.Ingest(st, replication.Batch{Store: store, Epoch: uint64(e + 1), Events: evs},
				time.Now().UnixMilli(), time.Hour, apply)
			if err != nil {
				t.Fatalf("Ingest: %v", err)
			}
			mark := marks[uint64(e+1)]
			if len(evs) > 0 && evs[0].Seq > mark+1 {
				if res.Gap == nil || *res.Gap != (replication.Position{Epoch: uint64(e + 1), Seq: mark + 1}) {
					t.Fatalf("batch %d/%d..%d after mark %d: gap %v, want %d", e+1, evs[0].Seq, evs[len(evs)-1].Seq, mark, res.Gap, mark+1)
				}
				after := 0
				for _, c := range applied {
					after += c
				}
				if after != total || len(applied) != before {
					t.Fatalf("a gap applied %d events", after-total)
				}
				return
			}
			if res.Gap != nil {
				t.Fatalf("gap %v for a batch starting at %d after mark %d", res.Gap, evs[0].Seq, mark)
			}
			if res.Acked.Seq < mark {
				t.Fatalf("mark moved back from %d to %d", mark, res.Acked.Seq)
			}
			if len(evs) > 0 && res.Acked.Seq != max(mark, evs[len(evs)-1].Seq) {
				t.Fatalf("acked %d after batch ending at %d, mark %d", res.Acked.Seq, evs[len(evs)-1].Seq, mark)
			}
			for _, rj := range res.Rejections {
				if !poison[rj.ID] {
					t.Fatalf("rejection of a good event %s", rj.ID)
				}
			}
			marks[uint64(e+1)] = res.Acked.Seq
		}
		// Random batches: cut anywhere, any order, repeated.
		for range rapid.IntRange(0, 40).Draw(t, "batches") {
			e := rapid.IntRange(0, epochs-1).Draw(t, "epoch")
			n := len(stream[e])
			from := rapid.IntRange(0, n).Draw(t, "from")
			to := rapid.IntRange(from, n).Draw(t, "to")
			deliver(e, from, to)
		}
		// Then the client's in-order resend of everything, in batches.
		for e := range stream {
			size := rapid.IntRange(1, 10).Draw(t, "size")
			for from := 0; from < len(stream[e]); from += size {
				deliver(e, from, min(from+size, len(stream[e])))
			}
		}
		for _, id := range ids {
			if applied[id] != 1 {
				t.Fatalf("event %s applied %d times, want 1", id, applied[id])
			}
		}
		for e, evs := range stream {
			if want := uint64(len(evs)); marks[uint64(e+1)] != want {
				t.Fatalf("mark of epoch %d = %d, want %d", e+1, marks[uint64(e+1)], want)
			}
		}
	})
}

// TestIngestRetention: a retry of an event seen longer ago than the
// retention period is applied again (the period bounds the index), one
// seen within it is not.
func TestIngestRetention(t *testing.T) {
	st := replication.NewIngestState()
	id := storeline.NewEventID()
	n := 0
	apply := func(evs []storeline.Event) ([]error, error) { n += len(evs); return make([]error, len(evs)), nil }
	day := 24 * time.Hour
	ev := func(epoch uint64) storeline.Event {
		return storeline.Event{ID: id, Origin: "s1", Epoch: epoch, Seq: 1}
	}
	if _, err := replication.Ingest(st, replication.Batch{Store: "s1", Epoch: 1, Events: []storeline.Event{ev(1)}}, 0, 90*day, apply); err != nil {
		t.Fatal(err)
	}
	if _, err := replication.Ingest(st, replication.Batch{Store: "s1", Epoch: 2, Events: []storeline.Event{ev(2)}}, (89 * day).Milliseconds(), 90*day, apply); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("applied %d times within retention, want 1", n)
	}
	if got := st.Expire((91 * day).Milliseconds(), 90*day); got != 1 {
		t.Errorf("Expire dropped %d, want 1", got)
	}
	if _, err := replication.Ingest(st, replication.Batch{Store: "s1", Epoch: 3, Events: []storeline.Event{ev(3)}}, (91 * day).Milliseconds(), 90*day, apply); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("applied %d times after retention, want 2", n)
	}
}

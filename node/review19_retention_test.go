package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// TestReview19PruneJournalBefore: PruneJournalBefore is PruneJournal at a
// cutoff the caller names instead of now less the retention (for a
// harness whose clock does not run for days): it removes the events older
// than the cutoff up to the position central acknowledged and no further,
// keeps everything younger than the cutoff, and a standalone node prunes
// nothing, whatever the cutoff.
func TestReview19PruneJournalBefore(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir(), func(c *node.Config) {
		c.Replication.Central = []string{"http://127.0.0.1:1"} // never answers: the test sets the ack
		c.Replication.Token = "shop-1-replication-token"
	})
	l := n.Ledger()
	var sold []storeline.Event
	for range 6 {
		ev, _, err := l.Append(ctx, storeline.Event{ID: storeline.NewEventID(), Body: &storeline.Transfer{Reason: "test"},
			OccurredAt: time.Now(), BusinessDate: storeline.DateOf(time.Now(), time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		sold = append(sold, ev)
	}
	ack := func(ev storeline.Event) {
		t.Helper()
		v, err := replication.Encode(&replication.Position{Epoch: ev.Epoch, Seq: ev.Seq})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.SetMeta(ctx, replication.AckKey, v); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(from int) {
		t.Helper()
		for i, ev := range sold {
			_, err := l.Event(ev.Origin, ev.ID)
			if i < from && !errors.Is(err, storeline.ErrPruned) {
				t.Errorf("event %d: %v, want it pruned", i, err)
			}
			if i >= from && err != nil {
				t.Errorf("event %d: %v, want it kept", i, err)
			}
		}
	}
	future := time.Now().Add(time.Hour)

	ack(sold[3])
	if got, err := n.PruneJournal(ctx); err != nil || got != 0 {
		t.Fatalf("PruneJournal with the default retention = %d, %v; want nothing (every event is young)", got, err)
	}
	if got, err := n.PruneJournalBefore(ctx, future); err != nil || got != 4 {
		t.Fatalf("PruneJournalBefore(an hour on) acked through the 4th = %d, %v; want the 4 acknowledged", got, err)
	}
	kept(4)

	ack(sold[5])
	if got, err := n.PruneJournalBefore(ctx, time.Now().Add(-time.Hour)); err != nil || got != 0 {
		t.Fatalf("PruneJournalBefore(an hour ago) = %d, %v; want nothing older", got, err)
	}
	kept(4)
	if got, err := n.PruneJournalBefore(ctx, future); err != nil || got != 2 {
		t.Fatalf("PruneJournalBefore(an hour on) acked through the 6th = %d, %v; want the 2 left", got, err)
	}
	kept(6)

	alone := startNode(t, t.TempDir(), nil)
	if _, _, err := alone.Ledger().Append(ctx, storeline.Event{ID: storeline.NewEventID(), Body: &storeline.Transfer{Reason: "test"},
		OccurredAt: time.Now(), BusinessDate: storeline.DateOf(time.Now(), time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if got, err := alone.PruneJournalBefore(ctx, future); err != nil || got != 0 {
		t.Fatalf("standalone PruneJournalBefore = %d, %v; want 0 (nobody else holds its events)", got, err)
	}
}

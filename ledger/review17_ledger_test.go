package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

var review17Base = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// review17Clock is a shop clock stopped at review17Base, taking remote
// times up to a minute ahead of it.
func review17Clock() *crdt.Clock {
	return crdt.NewClock(func() time.Time { return review17Base }, time.Minute)
}

func review17Options(dir string) ledger.Options {
	o := testOptions(dir)
	o.Clock = review17Clock()
	return o
}

// hqAt is head office's event seq, stamped at review17Base + ahead.
func hqAt(seq uint64, ahead time.Duration) storeline.Event {
	ev := transferFrom("hq", seq, 1)
	ev.HLC = uint64(crdt.MakeTimestamp(review17Base.Add(ahead).UnixMilli(), 3))
	return ev
}

// TestReview17RemoteHLCAdvancesClock: a shop whose wall clock is behind
// head office's stamps the events it writes after seeing head office's
// later (applied by ApplyRemote or in a pulled page), so a causal
// successor orders after what it saw; a remote time beyond the skew
// guard is not adopted, neither live nor after a reopen.
func TestReview17RemoteHLCAdvancesClock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, review17Options(dir))

	remote := hqAt(1, 30*time.Second)
	if _, err := l.ApplyRemote(ctx, remote); err != nil {
		t.Fatal(err)
	}
	own := mustAppend(t, l, receiptEvent(eid(1), 1, 1))
	if own.HLC <= remote.HLC {
		t.Errorf("own event after ApplyRemote at %s: HLC %s, want above %s", own.ID, crdtTS(own.HLC), crdtTS(remote.HLC))
	}

	pulled := hqAt(2, 40*time.Second)
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Events: []storeline.Event{pulled}}); err != nil {
		t.Fatal(err)
	}
	own = mustAppend(t, l, receiptEvent(eid(2), 1, 2))
	if own.HLC <= pulled.HLC {
		t.Errorf("own event after a pulled page: HLC %s, want above %s", crdtTS(own.HLC), crdtTS(pulled.HLC))
	}

	wild := hqAt(3, time.Hour)
	if _, err := l.ApplyRemote(ctx, wild); err != nil {
		t.Fatal(err)
	}
	own = mustAppend(t, l, receiptEvent(eid(3), 1, 3))
	if own.HLC >= wild.HLC {
		t.Errorf("own event after a remote an hour ahead: HLC %s, want it refused by the skew guard", crdtTS(own.HLC))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with a fresh clock: what was adopted is kept, what the
	// guard refused is not adopted by the reload either.
	l2 := open(t, review17Options(dir))
	own2 := mustAppend(t, l2, receiptEvent(eid(4), 1, 4))
	if own2.HLC <= own.HLC {
		t.Errorf("after reopen: HLC %s, want above %s", crdtTS(own2.HLC), crdtTS(own.HLC))
	}
	if own2.HLC >= wild.HLC {
		t.Errorf("after reopen: HLC %s, the refused remote %s was adopted", crdtTS(own2.HLC), crdtTS(wild.HLC))
	}
}

// TestReview17RemoteHLCReplay: the clock a batch of remote events left is
// what WAL replay restores (Badger left behind the WAL, as a crash would).
func TestReview17RemoteHLCReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := review17Options(dir)
	var failApply atomic.Bool
	o.Seams = &ledger.Seams{Apply: func(uint64) error {
		if failApply.Load() {
			return errors.New("test: crash before the Badger apply")
		}
		return nil
	}}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	first := mustAppend(t, l, receiptEvent(eid(1), 1, 1))
	// The append was answered at its WAL sync, maybe before its Badger
	// apply: a read waits for that apply, so the failure planted next
	// hits the remote event's batch only (not the receipt's, which
	// poisoned the ledger before the remote event came, now and then).
	if _, err := l.Event(first.Origin, first.ID); err != nil {
		t.Fatal(err)
	}
	failApply.Store(true)
	remote := hqAt(1, 30*time.Second)
	if _, err := l.ApplyRemote(ctx, remote); err != nil {
		t.Fatal(err)
	}
	l.CloseAsCrash()

	l2 := open(t, review17Options(dir))
	if got, err := l2.Event("hq", remote.ID); err != nil || got.HLC != remote.HLC {
		t.Fatalf("remote event after replay: %+v, %v", got, err)
	}
	own := mustAppend(t, l2, receiptEvent(eid(2), 1, 2))
	if own.HLC <= remote.HLC {
		t.Errorf("own event after replay: HLC %s, want above %s", crdtTS(own.HLC), crdtTS(remote.HLC))
	}
}

// TestReview17RestoreRaisesHLC: a restore's new epoch is an HLC time, and
// the restored node's own events (in that epoch) are stamped after it,
// even by a wall clock behind the restore's.
func TestReview17RestoreRaisesHLC(t *testing.T) {
	src := open(t, review17Options(t.TempDir()))
	mustAppend(t, src, receiptEvent(eid(1), 1, 1))
	var buf bytes.Buffer
	if err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	epoch := uint64(crdt.MakeTimestamp(review17Base.Add(10*time.Minute).UnixMilli(), 0))
	dir := t.TempDir()
	if err := ledger.Restore(dir, &buf, epoch); err != nil {
		t.Fatal(err)
	}
	l := open(t, review17Options(dir))
	got := mustAppend(t, l, receiptEvent(eid(2), 1, 2))
	if got.Epoch != epoch {
		t.Fatalf("epoch %d, want %d", got.Epoch, epoch)
	}
	if got.HLC <= epoch {
		t.Errorf("first event of epoch %s stamped %s, before the epoch", crdtTS(epoch), crdtTS(got.HLC))
	}
}

// TestReview17PulledMetaDelete: a nil value in a pulled page's Meta deletes
// the key in the page's transaction, at apply and at WAL replay, and the
// read-back of a reopen after a power loss does not bring it back; an
// empty value is still a value.
func TestReview17PulledMetaDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := testOptions(dir)
	boot := "boot 1"
	var failApply atomic.Bool
	o.Seams = &ledger.Seams{
		BootID: func() string { return boot },
		Apply: func(uint64) error {
			if failApply.Load() {
				return errors.New("test: crash before the Badger apply")
			}
			return nil
		},
	}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"),
		Meta: map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c1"), To: []byte("c2"),
		Meta: map[string][]byte{"a": nil, "e": {}}}); err != nil {
		t.Fatal(err)
	}
	check := func(l *ledger.Ledger, when string, gone ...string) {
		t.Helper()
		for _, k := range gone {
			if v, ok, err := l.Meta(k); ok || err != nil {
				t.Errorf("%s: meta %q = %q, %v, want deleted", when, k, v, err)
			}
		}
		if _, ok, _ := l.Meta("e"); !ok {
			t.Errorf("%s: meta e (empty value) missing", when)
		}
	}
	check(l, "applied", "a")
	// The next page is only in the WAL when the node stops.
	failApply.Store(true)
	if _, err := l.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", From: []byte("c2"), To: []byte("c3"),
		Meta: map[string][]byte{"b": nil}}); err == nil {
		t.Fatal("ApplyPulled answered although its apply failed")
	}
	l.CloseAsCrash()
	boot = "boot 2" // a power loss: Open reads back what the WAL wrote since the last sync
	o.Seams.Apply = nil
	l2 := open(t, o)
	check(l2, "after replay", "a", "b")
	if v, _, _ := l2.Meta("cur"); string(v) != "c3" {
		t.Errorf("cursor %q after replay, want c3", v)
	}
	if v, _, _ := l2.Meta("c"); string(v) != "3" {
		t.Errorf("meta c = %q, want 3", v)
	}
}

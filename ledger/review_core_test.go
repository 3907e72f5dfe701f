package ledger_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// shiftCloseEvent is a close whose counted cash is written as counted.
func shiftCloseEvent(id storeline.EventID, counted string) storeline.Event {
	c := dec(counted)
	return storeline.Event{
		ID: id, Kind: storeline.KindShiftClose,
		Body: &storeline.ShiftClose{Terminal: "t9", Shift: "sh9", Seller: "alice", CountedCash: &c,
			Report: storeline.ZReport{Currency: "EUR", Sales: dec("0"), ExpectedCash: dec("10.00")}},
		OccurredAt:   time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		BusinessDate: "2026-11-28",
	}
}

// TestReviewAppendSameBodyOtherExponents: a retry whose decimals are
// written with other exponents (1 vs 1.000, 10.0 vs 10.00) is the same
// body: it returns the original, not a Conflict.
func TestReviewAppendSameBodyOtherExponents(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))

	first := mustAppend(t, l, shiftCloseEvent(eid(1), "10.0"))
	again, created, err := l.Append(ctx, shiftCloseEvent(eid(1), "10.00"))
	if err != nil || created || again.Seq != first.Seq {
		t.Fatalf("retry of a close with 10.00 for 10.0 = seq %d, %v, %v; want the original (seq %d)", again.Seq, created, err, first.Seq)
	}
	if _, _, err := l.Append(ctx, shiftCloseEvent(eid(1), "10.01")); !isKind(err, storeline.Conflict) {
		t.Fatalf("close with another amount = %v, want Conflict", err)
	}

	ev := receiptEvent(eid(2), 2, 0)
	mustAppend(t, l, ev)
	ev2 := receiptEvent(eid(2), 2, 0)
	r := ev2.Body.(*storeline.Receipt)
	r.Lines[0].Qty = dec("1.000")
	r.Lines[1].Price = r.Lines[1].Price.Round(4) // 1.01 as 1.0100
	r.Lines[1].VATRate = dec("10.0")
	if _, created, err := l.Append(ctx, ev2); err != nil || created {
		t.Fatalf("retry of a receipt with other exponents = %v, %v; want the original", created, err)
	}
	checkConservation(t, l)
}

// TestReviewApplyRemoteDuplicateEquivalent: a second delivery of a remote
// event whose postings come in another order, with other exponents, and
// whose body's decimals are written otherwise, is the same event.
func TestReviewApplyRemoteDuplicateEquivalent(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	ev := remoteClose("s2", 1, 1, "10.0")
	if ok, err := l.ApplyRemote(ctx, ev); err != nil || !ok {
		t.Fatalf("ApplyRemote = %v, %v", ok, err)
	}
	// Postings reordered, exponents changed.
	dup := ev
	dup.Postings = []storeline.Posting{
		{Account: "b/x", Asset: "cur:EUR", Amount: dec("-5.000")},
		{Account: "a/x", Asset: "cur:EUR", Amount: dec("5.0")},
	}
	if ok, err := l.ApplyRemote(ctx, dup); err != nil || ok {
		t.Fatalf("ApplyRemote(postings reordered) = %v, %v; want known", ok, err)
	}
	// Body with another exponent.
	dup2 := remoteClose("s2", 1, 1, "10.00")
	if ok, err := l.ApplyRemote(ctx, dup2); err != nil || ok {
		t.Fatalf("ApplyRemote(body 10.00 for 10.0) = %v, %v; want known", ok, err)
	}
	// A second copy at a new position, equal by value.
	dup3 := remoteClose("s2", 2, 1, "10.000")
	dup3.Postings = dup.Postings
	if ok, err := l.ApplyRemote(ctx, dup3); err != nil || ok {
		t.Fatalf("ApplyRemote(copy at 2/1) = %v, %v; want known", ok, err)
	}
	// Other postings still conflict.
	bad := ev
	bad.Postings = []storeline.Posting{
		{Account: "a/x", Asset: "cur:EUR", Amount: dec("6")},
		{Account: "b/x", Asset: "cur:EUR", Amount: dec("-6")},
	}
	if _, err := l.ApplyRemote(ctx, bad); !isKind(err, storeline.Conflict) {
		t.Fatalf("ApplyRemote(other postings) = %v, want Conflict", err)
	}
	bal, err := l.Balance("a/x", "cur:EUR")
	if err != nil || !bal.Equal(dec("5")) {
		t.Fatalf("Balance(a/x) = %s, %v, want 5", bal, err)
	}
	j, err := l.Journal("s2", ledger.Position{}, 0)
	if err != nil || len(j) != 2 {
		t.Fatalf("Journal(s2) = %d events, %v; want 2", len(j), err)
	}
	checkConservation(t, l)
}

func remoteClose(origin storeline.StoreID, epoch, seq uint64, counted string) storeline.Event {
	ev := shiftCloseEvent(eid(500), counted)
	ev.Origin, ev.Epoch, ev.Seq, ev.SchemaVersion = origin, epoch, seq, 1
	ev.Postings = []storeline.Posting{
		{Account: "a/x", Asset: "cur:EUR", Amount: dec("5")},
		{Account: "b/x", Asset: "cur:EUR", Amount: dec("-5")},
	}
	return ev
}

// TestReviewJournalEpochBoundaryAndLimits: a journal read by pages crosses
// epochs without skipping or repeating, whatever the limit.
func TestReviewJournalEpochBoundaryAndLimits(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	var want []ledger.Position
	n := uint64(0)
	for _, p := range []ledger.Position{{1, 1}, {1, 2}, {1, 3}, {2, 1}, {2, 2}, {7, 1}, {math.MaxUint64, 1}, {math.MaxUint64, math.MaxUint64}} {
		n++
		ev := transferFrom("s3", 0, int64(n))
		ev.ID = eid(2000 + n)
		ev.Epoch, ev.Seq = p.Epoch, p.Seq
		if ok, err := l.ApplyRemote(ctx, ev); err != nil || !ok {
			t.Fatalf("ApplyRemote at %v = %v, %v", p, ok, err)
		}
		want = append(want, p)
	}
	for _, limit := range []int{1, 2, 3, math.MaxInt, 0, -1, math.MinInt} {
		var got []ledger.Position
		from := ledger.Position{}
		for range 20 {
			page, err := l.Journal("s3", from, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				got = append(got, ledger.Position{Epoch: e.Epoch, Seq: e.Seq})
			}
			last := page[len(page)-1]
			if last.Seq == math.MaxUint64 {
				if last.Epoch == math.MaxUint64 {
					break
				}
				from = ledger.Position{Epoch: last.Epoch + 1}
			} else {
				from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: journal %v, want %v", limit, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("limit %d: journal %v, want %v", limit, got, want)
			}
		}
	}
	// Balances by prefix: a longer account sharing the prefix is not
	// under the shop's subtree.
	bs, err := l.Balances("stock/s1/")
	if err != nil || len(bs) != 1 {
		t.Fatalf("Balances(stock/s1/) = %v, %v", bs, err)
	}
}

func isKind(err error, k storeline.Kind) bool {
	return err != nil && storeline.KindOf(err) == k
}

// TestReviewApplyRemoteOwnEchoIsKnown: deduplication by (origin, ID) comes
// first: the node's own event of the current epoch coming back (a relay
// echoing it) at its own position is known and has no effect; a copy at
// a new position of the current epoch is still refused.
func TestReviewApplyRemoteOwnEchoIsKnown(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	ev := mustAppend(t, l, receiptEvent(eid(1), 2, 0))
	if ok, err := l.ApplyRemote(ctx, ev); err != nil || ok {
		t.Fatalf("ApplyRemote(own event at its position) = %v, %v; want known", ok, err)
	}
	moved := ev
	moved.Seq = 7
	if _, err := l.ApplyRemote(ctx, moved); !isKind(err, storeline.Invalid) {
		t.Fatalf("ApplyRemote(own event at a new position of the current epoch) = %v, want Invalid", err)
	}
	fresh := ev
	fresh.ID = eid(9)
	fresh.Seq = 2
	if _, err := l.ApplyRemote(ctx, fresh); !isKind(err, storeline.Invalid) {
		t.Fatalf("ApplyRemote(new own event of the current epoch) = %v, want Invalid", err)
	}
	if p := l.Position(); p.Seq != 1 {
		t.Fatalf("Position = %v, want seq 1", p)
	}
	mustAppend(t, l, receiptEvent(eid(2), 1, 0))
	checkConservation(t, l)
}

// TestReviewBusinessDateChecked: a business date that is not YYYY-MM-DD
// is refused by Append and ApplyRemote and writes nothing (the date index
// orders events by it).
func TestReviewBusinessDateChecked(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	pos := l.Position()
	ev := receiptEvent(eid(1), 2, 1)
	ev.BusinessDate = "28.11.2026"
	if _, _, err := l.Append(context.Background(), ev); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("Append with business date %q = %v, want Invalid", ev.BusinessDate, err)
	}
	o := testOptions(t.TempDir())
	o.Origin = "s2"
	remote := mustAppend(t, open(t, o), receiptEvent(eid(2), 2, 1))
	remote.BusinessDate = "2026-13-01"
	if _, err := l.ApplyRemote(context.Background(), remote); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("ApplyRemote with business date %q = %v, want Invalid", remote.BusinessDate, err)
	}
	if got := l.Position(); got != pos {
		t.Fatalf("refused events moved the position: %v → %v", pos, got)
	}
}

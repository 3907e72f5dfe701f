package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestAppendDedupsOwnEventsPulledBack: a shop restored from a backup gets
// back, from head office, the own events appended after that backup (an
// older epoch: ApplyRemote and a pulled page both carry them); a till
// retrying one of those receipts must find it, however Append looks IDs
// up (dedup.go): before the filter of own IDs is filled, once it is
// installed with the IDs applied while it was being filled (after its
// snapshot of Badger), and after a reopen fills it from Badger.
func TestAppendDedupsOwnEventsPulledBack(t *testing.T) {
	ctx := context.Background()
	l := open(t, testOptions(t.TempDir()))
	mustAppend(t, l, receiptEvent(eid(1), 2, 1))
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	var after []storeline.Event
	for i := uint64(2); i <= 3; i++ {
		after = append(after, mustAppend(t, l, receiptEvent(eid(i), 2, int(i))))
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &buf, 7); err != nil {
		t.Fatal(err)
	}
	// The fill holds its snapshot (the restored backup: receipt 1 alone)
	// until the pulled events are applied.
	snapshot, release, filled := make(chan struct{}), make(chan struct{}), make(chan struct{})
	o := testOptions(dir)
	o.Seams = &ledger.Seams{
		FillOwnIDs: func() { close(snapshot); <-release },
		Filled:     func() { close(filled) },
	}
	r := open(t, o)
	<-snapshot
	if applied, err := r.ApplyRemote(ctx, after[0]); err != nil || !applied {
		t.Fatalf("ApplyRemote(own event of epoch 1) = %v, %v; want applied", applied, err)
	}
	if _, err := r.ApplyPulled(ctx, ledger.PulledPage{CursorKey: "cur", To: []byte("c1"), Events: after[1:]}); err != nil {
		t.Fatal(err)
	}
	stock, err := r.Balance("stock/"+string(store)+"/food/i0", "item:i0")
	if err != nil {
		t.Fatal(err)
	}
	retry := func(r *ledger.Ledger, when string) {
		t.Helper()
		for i := uint64(1); i <= 3; i++ {
			got, created, err := r.Append(ctx, receiptEvent(eid(i), 2, int(i)))
			if err != nil || created {
				t.Fatalf("%s: retry of receipt %d: created %v, err %v; want the stored one", when, i, created, err)
			}
			if got.Epoch != 1 || got.Seq != i {
				t.Errorf("%s: retry of receipt %d answered %d/%d, want 1/%d", when, i, got.Epoch, got.Seq, i)
			}
			if _, _, err := r.Append(ctx, receiptEvent(eid(i), 3, int(i))); !errors.Is(err, storeline.Conflict) {
				t.Fatalf("%s: receipt %d with another body: %v, want Conflict", when, i, err)
			}
		}
		if b, _ := r.Balance("stock/"+string(store)+"/food/i0", "item:i0"); !b.Equal(stock) {
			t.Fatalf("%s: stock of i0 %s after the retries, want %s", when, b, stock)
		}
		checkConservation(t, r)
	}
	retry(r, "filter not filled")
	close(release)
	<-filled
	retry(r, "filter installed") // its first batch installs it
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	filledAgain := make(chan struct{})
	o.Seams = &ledger.Seams{Filled: func() { close(filledAgain) }}
	r = open(t, o)
	<-filledAgain
	retry(r, "reopened")
}

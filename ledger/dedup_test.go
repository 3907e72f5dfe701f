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
// retrying one of those receipts must find it, before and after a reopen,
// however Append looks IDs up (dedup.go: the filter of own IDs must hold
// the IDs these paths add, not only Append's).
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
	r := open(t, testOptions(dir))
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
	retry := func(r *ledger.Ledger) {
		t.Helper()
		for i := uint64(1); i <= 3; i++ {
			got, created, err := r.Append(ctx, receiptEvent(eid(i), 2, int(i)))
			if err != nil || created {
				t.Fatalf("retry of receipt %d: created %v, err %v; want the stored one", i, created, err)
			}
			if got.Epoch != 1 || got.Seq != i {
				t.Errorf("retry of receipt %d answered %d/%d, want 1/%d", i, got.Epoch, got.Seq, i)
			}
			if _, _, err := r.Append(ctx, receiptEvent(eid(i), 3, int(i))); !errors.Is(err, storeline.Conflict) {
				t.Fatalf("receipt %d with another body: %v, want Conflict", i, err)
			}
		}
		if b, _ := r.Balance("stock/"+string(store)+"/food/i0", "item:i0"); !b.Equal(stock) {
			t.Fatalf("stock of i0 %s after the retries, want %s", b, stock)
		}
		checkConservation(t, r)
	}
	retry(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	retry(open(t, testOptions(dir)))
}

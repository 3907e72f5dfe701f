package central

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/replication"
)

// TestReviewC4BadResyncRecordsToken: a resync position "r:<token>" whose
// token is not one central gave is Invalid naming the field it came in,
// the pull's snapshot position (sn.a), not the head-office snapshot's
// "page" parameter.
func TestReviewC4BadResyncRecordsToken(t *testing.T) {
	n := openSingle(t)
	putShop(t, n)
	_, err := backend{n}.Pull(context.Background(), replication.PullQuery{Store: "s1", Epoch: 1, MaxItems: 10,
		Snapshot: &replication.SnapshotPos{ID: n.topVersion(), After: "r:nosuchkind:x"}})
	if !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "sn.a" {
		t.Fatalf("pull with a bad records token: err %v (field %q), want Invalid naming sn.a", err, storeline.FieldOf(err))
	}
}

// opForgetKeys is a test op that prunes idempotency records as if
// idemRetainEntries entries had been applied since.
const opForgetKeys = "test.forget-keys"

// TestReviewC4TransferRetryAfterKeyPruned: a head-office transfer retried
// after its idempotency record was pruned answers the transfer's real
// position, applying nothing again; the same ID with other postings is a
// Conflict naming the ID.
func TestReviewC4TransferRetryAfterKeyPruned(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	n, err := Open(cfg, Op{Name: opForgetKeys, Apply: func(tx *Tx, _ []byte) ([]byte, error) {
		return nil, pruneIdem(tx.ReplicaTxn, tx.Index+idemRetainEntries)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testwait.For(t, "a leader", 10*time.Second, n.IsLeader)
	ctx := context.Background()
	putShop(t, n)
	deliver(t, n, 2) // the transfer under test is not the first
	id := storeline.NewEventID()
	ps := []storeline.Posting{
		{Account: storeline.StockAccount("s1", "food", "i1"), Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(7)},
		{Account: "warehouse/i1", Asset: storeline.ItemAsset("i1"), Amount: decimal.NewFromInt(-7)},
	}
	first, err := n.Transfer(ctx, id, "delivery", "DN-7", ps)
	if err != nil || first.Seq == 0 {
		t.Fatalf("transfer: %+v, %v", first, err)
	}
	forget := func() {
		t.Helper()
		if res, err := n.Submit(ctx, opForgetKeys, "", nil); err != nil || res.Err() != nil {
			t.Fatalf("prune idempotency records: %v %v", err, res.Err())
		}
		if v, err := n.rep.Meta(idemKey("transfer/" + id.String())); err != nil || v != nil {
			t.Fatalf("the transfer's idempotency record is still there (%v)", err)
		}
	}
	forget()
	bal := func() decimal.Decimal {
		b, err := n.Balance("warehouse/i1", storeline.ItemAsset("i1"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	was := bal()
	again, err := n.Transfer(ctx, id, "delivery", "DN-7", ps)
	if err != nil || again != first {
		t.Fatalf("retry after the key was pruned: %+v, %v; want the transfer's position %+v", again, err, first)
	}
	if got := bal(); !got.Equal(was) {
		t.Fatalf("the retry moved stock: warehouse %s, was %s", got, was)
	}
	forget()
	other := []storeline.Posting{ps[0], ps[1]}
	other[0].Amount, other[1].Amount = decimal.NewFromInt(8), decimal.NewFromInt(-8)
	if _, err := n.Transfer(ctx, id, "delivery", "DN-7", other); !errors.Is(err, storeline.Conflict) || storeline.FieldOf(err) != "id" {
		t.Fatalf("the same ID with other postings after the key was pruned: %v (field %q), want a Conflict naming id", err, storeline.FieldOf(err))
	}
	if got := bal(); !got.Equal(was) {
		t.Fatalf("the conflicting retry moved stock: warehouse %s, was %s", got, was)
	}
}

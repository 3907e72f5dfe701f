package central

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
)

// TestReview12APIBulkRefusedMidwaySaysWhatApplied: a bulk write split over
// several entries passes the checks made before it is submitted, then
// another write (here a delete of the group its items name) commits
// between its first and second entries. The second entry is refused
// while the first stays applied: the answer must say so, not read as "a
// refused request changes nothing".
func TestReview12APIBulkRefusedMidwaySaysWhatApplied(t *testing.T) {
	var (
		n     *Node
		armed atomic.Bool
		mu    sync.Mutex
		done  bool
	)
	cfg := DefaultConfig(t.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	cfg.ImportChunk = 1
	// Every entry submitted reads the clock first: once the bulk's first
	// entry is applied, the next reader deletes the group in an entry of
	// its own before it goes on, and any other reader waits for that.
	cfg.Now = func() time.Time {
		if armed.Load() {
			mu.Lock()
			defer mu.Unlock()
			if !done && n.rep.GetMaster(storeline.KindItem, "a", new(storeline.Item)) == nil {
				done = true
				p, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindGroup, ID: "g"})
				c, _ := msgpack.Marshal(&command{Op: OpMasterDelete, AtMs: time.Now().UnixMilli(), Payload: p})
				if err := n.raft.Apply(c, 5*time.Second).Error(); err != nil {
					t.Errorf("delete between entries: %v", err)
				}
			}
		}
		return time.Now()
	}
	var err error
	n, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testwait.For(t, "a leader", 10*time.Second, n.IsLeader)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "key:setup", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}}); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	_, err = n.PutRecords(ctx, "key:bulk",
		&storeline.Item{ID: "a", SKU: "A", Name: "A", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")},
		&storeline.Item{ID: "b", SKU: "B", Name: "B", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")})
	if !done {
		t.Fatal("the group was not deleted between the entries")
	}
	if err == nil {
		t.Fatal("the second entry, naming a deleted group, was applied")
	}
	if n.rep.GetMaster(storeline.KindItem, "a", new(storeline.Item)) != nil {
		t.Skip("the bulk was refused whole")
	}
	if !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "records[1].group" {
		t.Fatalf("err = %v (field %q), want Invalid naming records[1].group", err, storeline.FieldOf(err))
	}
	if msg := errMessage(err); !strings.Contains(msg, "applied in part") || !strings.Contains(msg, "1 of 2 records") {
		t.Fatalf("a bulk refused after its first entry was applied answers %q, which does not say so", msg)
	}
}

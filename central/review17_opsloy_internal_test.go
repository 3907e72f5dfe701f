package central

// Review 17: pruning of the change history, the loyalty points lookup and
// the clamped-clock count, each defect shown by a test here before it was
// fixed.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// review17Tombstones counts the deletion markers the node still holds.
func review17Tombstones(t *testing.T, n *Node) int {
	t.Helper()
	cs, err := n.rep.MasterChanges(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, c := range cs {
		if c.Deleted {
			dead++
		}
	}
	return dead
}

// TestReview17PruneResumesPastItsLimit: one prune entry removes at most
// its limit of tombstones (MaxChangesPerEntry in production, 2 here).
// It used to drop the hourly index it found them by and raise the floor
// all the same, so the tombstones past the limit were never removed: the
// next prunes found no hour left to prune and did nothing. Each prune
// must go on where the previous one stopped, until none is left.
func TestReview17PruneResumesPastItsLimit(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"}); err != nil {
		t.Fatal(err)
	}
	const deleted = 5
	for i := 0; i < deleted; i++ {
		id := fmt.Sprintf("i%d", i)
		if _, err := n.PutRecords(ctx, "", &storeline.Item{ID: storeline.ItemID(id), SKU: id, Name: id, Group: "g", Dept: "food",
			Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < deleted; i++ {
		p, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindItem, ID: fmt.Sprintf("i%d", i)})
		if res, err := n.Submit(ctx, OpMasterDelete, "", p); err != nil || res.Err() != nil {
			t.Fatalf("delete: %v %v", err, res)
		}
	}
	if got := review17Tombstones(t, n); got != deleted {
		t.Fatalf("%d tombstones before the prune, want %d", got, deleted)
	}
	floor := func() uint64 {
		v, err := n.rep.Meta(floorKey)
		if err != nil {
			t.Fatal(err)
		}
		return ledger.U64(v)
	}
	// The history window passes (nothing is written meanwhile, as on a
	// quiet night): every prune run has the same hours to look at.
	pp, _ := msgpack.Marshal(&prunePayload{Before: time.Now().Add(2 * time.Hour), Limit: 2})
	want := []int{3, 1, 0, 0}
	var last uint64
	for run, left := range want {
		if res, err := n.Submit(ctx, OpMasterPrune, "", pp); err != nil || res.Err() != nil {
			t.Fatalf("prune %d: %v %v", run, err, res)
		}
		if got := review17Tombstones(t, n); got != left {
			t.Fatalf("after prune run %d: %d tombstones left, want %d", run+1, got, left)
		}
		f := floor()
		if f == 0 || f < last {
			t.Fatalf("after prune run %d the floor is %d (before %d): it must rise and never fall", run+1, f, last)
		}
		last = f
	}
}

// review17PointsState opens a replica holding, for customer c1 of
// programme p, rights at central and at s1 and debts at several shops
// (store IDs that sort around each other), plus what is not c1's: c10's
// and c1's in another programme, and customer c2's debt at s1, stored
// unreadable. Points(p, c1) reads none of it unless it reads other
// customers' records.
func review17PointsState(t testing.TB, debtors int, unreadable bool) *Node {
	t.Helper()
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	const prog = storeline.ProgrammeID("p")
	asset := string(storeline.PointsAsset(prog))
	bal := func(acct string) string { return rpBal + acct + "\x00" + asset }
	if _, err := rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		set := map[string]string{
			bal(storeline.PointsAccount(prog, "c1", storeline.Central)):     "10",
			bal(storeline.PointsAccount(prog, "c1", "s1")):                  "4",
			bal(storeline.PointsDebtAccount(prog, "c1", "s1")):              "-3",
			bal(storeline.PointsDebtAccount(prog, "c1", "s1.x")):            "-2",
			bal(storeline.PointsDebtAccount(prog, "c1", "s10")):             "-1",
			bal(storeline.PointsDebtAccount(prog, "c1", "a-shop")):          "-7",
			bal(storeline.PointsDebtAccount(prog, "c10", "s1")):             "-100",
			bal(storeline.PointsDebtAccount("p2", "c1", "s1")):              "-100",
			bal(storeline.PointsDebtAccount(prog, "c2", "s2")):              "-4",
			rpBal + storeline.PointsDebtAccount(prog, "c1", "s1") + "\x00x": "-100", // another asset
		}
		if unreadable {
			set[bal(storeline.PointsDebtAccount(prog, "c2", "s1"))] = "not a number"
		}
		for k, v := range set {
			if err := rt.SetMeta(k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Other customers' debts, readable, in entries of a size Badger takes.
	const chunk = 10_000
	for i, idx := 0, uint64(2); i < debtors; i, idx = i+chunk, idx+1 {
		if _, err := rep.Apply(idx, func(rt *ledger.ReplicaTxn) error {
			for j := i; j < min(i+chunk, debtors); j++ {
				k := bal(storeline.PointsDebtAccount(prog, storeline.CustomerID(fmt.Sprintf("d%07d", j)), storeline.StoreID(fmt.Sprintf("s%d", j%50))))
				if err := rt.SetMeta(k, []byte("-1")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return &Node{rep: rep}
}

// TestReview17PointsReadsOnlyItsCustomer: a shop asks central for a
// customer's points at every card scan, under a 1 s timeout. Points read
// every customer's debt in the chain to find this one's (10M customers
// at chain scale), so one unreadable debt record of another customer
// failed every customer's lookup. It reads the customer's own records
// only, and still finds each of its debts.
func TestReview17PointsReadsOnlyItsCustomer(t *testing.T) {
	n := review17PointsState(t, 0, true)
	st, err := n.Points("p", "c1")
	if err != nil {
		t.Fatalf("Points(c1) = %v: it read another customer's debt", err)
	}
	wantDebts := map[string]int64{"s1": 3, "s1.x": 2, "s10": 1, "a-shop": 7}
	if st.Debt != 13 || len(st.Debts) != len(wantDebts) {
		t.Errorf("Points(c1) debt %d by shop %v, want 13 by shop %v", st.Debt, st.Debts, wantDebts)
	}
	for s, v := range wantDebts {
		if st.Debts[s] != v {
			t.Errorf("Points(c1) debt at %s = %d, want %d", s, st.Debts[s], v)
		}
	}
	if st.Balance != 14 || st.Rights["central"] != 10 || st.Rights["s1"] != 4 {
		t.Errorf("Points(c1) = %+v, want balance 14 (10 at central, 4 at s1)", st)
	}
	if st, err := n.Points("p", "nobody"); err != nil || st.Debt != 0 || st.Debts != nil {
		t.Errorf("Points(nobody) = %+v, %v; want no debt", st, err)
	}
}

// BenchmarkReview17Points: a card scan's lookup with 200,000 other
// customers owing points at 50 shops.
func BenchmarkReview17Points(b *testing.B) {
	n := review17PointsState(b, 200_000, false)
	b.ResetTimer()
	for b.Loop() {
		if _, err := n.Points("p", "c1"); err != nil {
			b.Fatal(err)
		}
	}
}

// review17Scrape returns the value of series on the node's real /metrics.
func review17Scrape(t *testing.T, n *Node, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestReview17ClampedClocksOnMetrics: DESIGN.md says a till clock too
// far ahead is "clamped and reported". Central clamped it and counted it
// in its state, but no metric reported it, so ops never learnt of a shop
// whose clock ran a year ahead. The count is on /metrics, the same on
// every node (FSM state).
func TestReview17ClampedClocksOnMetrics(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	cfg.Registerer = prometheus.NewRegistry() // as `storeline central` does
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testwait.For(t, "a leader", 10*time.Second, n.IsLeader)
	series := `storeline_central_customer_registrations_clamped_total{node="` + cfg.NodeID + `"}`
	if v, ok := review17Scrape(t, n, series); !ok || v != 0 {
		t.Errorf("before any registration: %s = %v (present %v), want 0", series, v, ok)
	}
	b := backend{n}
	reg := func(seq uint64, hlc crdt.Timestamp) {
		t.Helper()
		ev := storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
			HLC: uint64(hlc), Kind: storeline.KindCustomerRegistered, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29",
			Body: &storeline.CustomerRegistered{Terminal: "t1", Seller: "ann", Customer: storeline.Customer{ID: "cust-9", Name: "Ann"}}}
		res, err := b.Push(context.Background(), replication.Batch{Store: "s1", Epoch: 1, Events: []storeline.Event{ev}})
		if err != nil || len(res.Rejections) != 0 || res.Gap != nil {
			t.Fatalf("push: %+v, %v", res, err)
		}
	}
	reg(1, crdt.MakeTimestamp(time.Now().UnixMilli(), 0))                       // a right clock
	reg(2, crdt.MakeTimestamp(time.Now().Add(365*24*time.Hour).UnixMilli(), 0)) // a year ahead
	if v, ok := review17Scrape(t, n, series); !ok || v != 1 {
		t.Errorf("after one registration a year ahead: %s = %v (present %v), want 1", series, v, ok)
	}
}

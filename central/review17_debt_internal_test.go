package central

// Review 17: storeline_loyalty_debt_points read every debt record of the
// chain on each scrape. It reads a running total kept in FSM state; these
// tests show the cost, then that the total is what a full scan gives
// after random debt movements through the real FSM, replays and snapshot
// restores included.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// review17DebtScan is what the metric used to read: every points-debt
// balance of the replica, summed as owed points (positive).
func review17DebtScan(t testing.TB, rep *ledger.Replica) int64 {
	t.Helper()
	var sum int64
	if err := rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(rpBal+"points-debt/", func(k string, v []byte) (bool, error) {
			d, err := decimal.NewFromString(string(v))
			if err != nil {
				return false, fmt.Errorf("%q: %w", k, err)
			}
			sum -= d.IntPart()
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return sum
}

// review17DebtMetric is storeline_loyalty_debt_points as the node's
// collector reports it (false: the series is missing).
func review17DebtMetric(t testing.TB, n *Node) (int64, bool) {
	t.Helper()
	m := newLoyaltyMetrics(n)
	ch := make(chan prometheus.Metric, 8)
	m.Collect(ch)
	close(ch)
	for x := range ch {
		if x.Desc() != m.debt {
			continue
		}
		var out dto.Metric
		if err := x.Write(&out); err != nil {
			t.Fatal(err)
		}
		return int64(out.GetGauge().GetValue()), true
	}
	return 0, false
}

// review17DebtTransferLog is a central transfer of amount of asset from
// one account to another.
func review17DebtTransferLog(t testing.TB, index uint64, at time.Time, asset storeline.Asset, from, to string, amount decimal.Decimal) *raft.Log {
	t.Helper()
	pos, _ := amount.MarshalBinary()
	neg, _ := amount.Neg().MarshalBinary()
	return entryLog(t, index, at, OpReplicationTransfer, &transferPayload{ID: storeline.NewEventID(), Reason: "test", Postings: []replication.WirePosting{
		{Account: from, Asset: string(asset), Amount: neg},
		{Account: to, Asset: string(asset), Amount: pos},
	}})
}

// review17DebtFSM opens an FSM (replication and loyalty ops) over rep.
func review17DebtFSM(t testing.TB, rep *ledger.Replica, ws []ledger.MasterWrite) *FSM {
	t.Helper()
	f, err := newFSM(rep, slog.New(slog.NewTextHandler(io.Discard, nil)), append(append(replicationOps(), seedOp(ws)), loyaltyAutoOps()...))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// review17DebtersState is review17PointsState's replica (state written
// before the total existed) with one debt posted through the FSM after,
// so the total exists if the FSM keeps one.
func review17DebtorsState(t testing.TB, debtors int) *Node {
	t.Helper()
	n := review17PointsState(t, debtors, false)
	f := review17DebtFSM(t, n.rep, nil)
	l := review17DebtTransferLog(t, n.rep.AppliedIndex()+1, time.Now(), storeline.PointsAsset("p"),
		storeline.PointsDebtAccount("p", "late", "s1"), storeline.IssuedPointsAccount("s1"), decimal.NewFromInt(5))
	if r := f.ApplyBatch([]*raft.Log{l})[0].(*Result); r.Err() != nil {
		t.Fatal(r.Err())
	}
	return n
}

// TestReview17DebtScrapeReadsNoDebtRecords: at chain scale (10M
// customers) a scrape every 15 s read every debt record on every central
// node. With 20,000 debtors a scrape must cost what it costs with none:
// allocations count the records it decodes.
func TestReview17DebtScrapeReadsNoDebtRecords(t *testing.T) {
	const debtors = 20_000
	n := review17DebtorsState(t, debtors)
	want := review17DebtScan(t, n.rep)
	if got, ok := review17DebtMetric(t, n); !ok || got != want {
		t.Fatalf("metric = %d (present %v), a full scan %d", got, ok, want)
	}
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := n.LoyaltyDebt(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 200 {
		t.Errorf("one scrape of the debt makes %.0f allocations with %d debtors: it reads every debt record", allocs, debtors)
	}
}

// BenchmarkReview17DebtScrape: one scrape's debt read with 200,000
// customers owing points at 50 shops.
func BenchmarkReview17DebtScrape(b *testing.B) {
	n := review17DebtorsState(b, 200_000)
	b.ResetTimer()
	for b.Loop() {
		if _, err := n.LoyaltyDebt(); err != nil {
			b.Fatal(err)
		}
	}
}

// review17DebtLog is a random history of debt movements: central
// transfers between debt accounts, shops' and central's points accounts
// (in two assets, fractions included, some taking a balance to zero),
// shops' returns owing points (pushes of s1 and s2) and empty loyalty
// sweeps, from index first on.
func review17DebtLog(t *testing.T, rng *rand.Rand, first uint64, entries int) []*raft.Log {
	t.Helper()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	stores := []storeline.StoreID{"s1", "s2", "s3"}
	progs := []storeline.ProgrammeID{"p", "q"}
	custs := []storeline.CustomerID{"c1", "c2", "c3"}
	debt := func() string {
		return storeline.PointsDebtAccount(progs[rng.IntN(2)], custs[rng.IntN(3)], stores[rng.IntN(3)])
	}
	other := func() string {
		switch rng.IntN(3) {
		case 0:
			return storeline.IssuedPointsAccount(stores[rng.IntN(3)])
		case 1:
			return storeline.PointsAccount(progs[rng.IntN(2)], custs[rng.IntN(3)], storeline.Central)
		}
		return debt()
	}
	// model: what the balances the transfers move will be, so some take
	// one back to zero.
	model := map[string]decimal.Decimal{}
	seq := map[storeline.StoreID]uint64{}
	sweep := map[storeline.StoreID]int{}
	var logs []*raft.Log
	for i := range entries {
		idx := first + uint64(i)
		asset := storeline.PointsAsset(progs[rng.IntN(2)])
		switch r := rng.IntN(10); {
		case r < 6:
			from, to := other(), debt()
			if rng.IntN(2) == 0 {
				from, to = to, from
			}
			if from == to {
				to = storeline.IssuedPointsAccount("s3")
			}
			amt := decimal.NewFromInt(int64(1 + rng.IntN(40)))
			switch rng.IntN(6) {
			case 0:
				amt = decimal.New(int64(1+rng.IntN(30)), -1) // 0.1 … 3.0
			case 1:
				// to's balance back to zero (deleted), if it is not.
				if b := model[to+"\x00"+string(asset)]; !b.IsZero() {
					amt = b.Neg()
				}
			}
			model[from+"\x00"+string(asset)] = model[from+"\x00"+string(asset)].Sub(amt)
			model[to+"\x00"+string(asset)] = model[to+"\x00"+string(asset)].Add(amt)
			logs = append(logs, review17DebtTransferLog(t, idx, at, asset, from, to, amt))
		case r < 9:
			s := stores[rng.IntN(2)]
			var evs [][]byte
			for range 1 + rng.IntN(3) {
				seq[s]++
				owed := decimal.NewFromInt(int64(1 + rng.IntN(20)))
				acct := storeline.PointsDebtAccount(progs[rng.IntN(2)], custs[rng.IntN(3)], s)
				if rng.IntN(3) == 0 {
					owed = owed.Neg() // later earnings paying a debt
				}
				ps := []storeline.Posting{
					{Account: acct, Asset: asset, Amount: owed.Neg()},
					{Account: storeline.IssuedPointsAccount(s), Asset: asset, Amount: owed},
				}
				w, err := replication.EventToWire(storeline.Event{ID: storeline.NewEventID(), Origin: s, Epoch: 1, Seq: seq[s],
					SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindReturn, Body: &storeline.Return{Terminal: "t1", Currency: "EUR"},
					Postings: ps, OccurredAt: at, BusinessDate: "2026-11-28"})
				if err != nil {
					t.Fatal(err)
				}
				enc, err := msgpack.Marshal(&w)
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, enc)
			}
			logs = append(logs, pushLog(t, idx, at, s, 1, evs))
		default:
			s := stores[rng.IntN(3)]
			from := ""
			if sweep[s] > 0 {
				from = fmt.Sprintf("%04d", sweep[s])
			}
			sweep[s]++
			logs = append(logs, entryLog(t, idx, at, OpLoyaltySweep, &sweepPayload{Store: s, From: from, To: fmt.Sprintf("%04d", sweep[s]),
				Policy: grantPolicy{Shops: 3, WindowDays: 90, Share: 50}}))
		}
	}
	return logs
}

// review17DebtReplica is a fresh replica holding debts written before the
// total existed (at index 1) and an FSM over it.
func review17DebtReplica(t *testing.T) (*FSM, *ledger.Replica) {
	t.Helper()
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	if _, err := rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		for k, v := range map[string]string{
			balKey(storeline.PointsDebtAccount("p", "c1", "s1"), storeline.PointsAsset("p")):  "-30",
			balKey(storeline.PointsDebtAccount("q", "c2", "s2"), storeline.PointsAsset("q")):  "-7.5",
			balKey(storeline.PointsDebtAccount("p", "old", "s9"), storeline.PointsAsset("p")): "-1000",
			balKey(storeline.IssuedPointsAccount("s1"), storeline.PointsAsset("p")):           "30",
		} {
			if err := rt.SetMeta(k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return review17DebtFSM(t, rep, review17DebtStores()), rep
}

func review17DebtStores() []ledger.MasterWrite {
	var ws []ledger.MasterWrite
	for i, s := range []storeline.StoreID{"s1", "s2", "s3"} {
		ws = append(ws, ledger.MasterWrite{Version: Version{1, uint16(1 + i)}.Pack(), Record: &storeline.Store{ID: s, Name: "S", TimeZone: "UTC",
			Currency: "EUR", Departments: []storeline.Department{{ID: "food"}}}})
	}
	return ws
}

// review17DebtApply applies logs as one batch, every entry above the
// applied index succeeding (those at or below it are skipped: nil).
func review17DebtApply(t *testing.T, f *FSM, logs []*raft.Log) {
	t.Helper()
	for i, o := range f.ApplyBatch(logs) {
		r, _ := o.(*Result)
		if r == nil {
			continue
		}
		if r.Err() != nil {
			t.Fatalf("entry %d: %v", logs[i].Index, r.Err())
		}
		var c command
		if err := msgpack.Unmarshal(logs[i].Data, &c); err != nil {
			t.Fatal(err)
		}
		if c.Op != OpReplicationPush {
			continue
		}
		var po pushOutcome
		if err := msgpack.Unmarshal(r.Body, &po); err != nil {
			t.Fatal(err)
		}
		if len(po.Rejections) > 0 || po.Gap != nil || po.Applied == 0 {
			t.Fatalf("push entry %d: %+v", logs[i].Index, po)
		}
	}
}

// review17DebtCheck: the metric and the node's LoyaltyDebt are the full
// scan's figure.
func review17DebtCheck(t *testing.T, what string, rep *ledger.Replica) {
	t.Helper()
	n := &Node{rep: rep}
	want := review17DebtScan(t, rep)
	got, err := n.LoyaltyDebt()
	if err != nil || got != want {
		t.Fatalf("%s (applied %d): LoyaltyDebt = %d, %v; a full scan gives %d", what, rep.AppliedIndex(), got, err, want)
	}
	if m, ok := review17DebtMetric(t, n); !ok || m != want {
		t.Fatalf("%s (applied %d): metric = %d (present %v), a full scan gives %d", what, rep.AppliedIndex(), m, ok, want)
	}
}

// review17DebtSnapshot is rep's state as a Raft snapshot streams it.
func review17DebtSnapshot(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.(fsmSnapshot).rep.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReview17DebtTotalMatchesScan: random debt movements (2 seeds, 4
// with -central.long) through the real FSM, from state written before the
// total existed. After every entry the metric equals a full scan of the
// debt balances; the same log applied in other batchings, with entries
// replayed, from a snapshot taken midway, or from a snapshot without a
// total, leaves byte for byte the same state (the total included) and the
// same figure.
func TestReview17DebtTotalMatchesScan(t *testing.T) {
	for seed := range modelSeeds(2, 4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			seedLog := &raft.Log{Index: 2, Type: raft.LogCommand, Data: seedEntry(t)}
			logs := append([]*raft.Log{seedLog}, review17DebtLog(t, rng, 3, 120)...)

			// A: one entry per batch, checked after each.
			fa, ra := review17DebtReplica(t)
			legacy := review17DebtSnapshot(t, fa) // at index 1: no total
			review17DebtCheck(t, "before any entry", ra)
			mid := 1 + rng.IntN(len(logs)-1)
			var midSnap []byte
			for i, l := range logs {
				review17DebtApply(t, fa, []*raft.Log{l})
				review17DebtCheck(t, fmt.Sprintf("A after entry %d", l.Index), ra)
				var c command
				if err := msgpack.Unmarshal(l.Data, &c); err != nil {
					t.Fatal(err)
				}
				if v, err := ra.Meta(rpDebtOwed); err != nil || (v == nil && c.Op == OpLoyaltySweep) {
					t.Fatalf("after sweep entry %d: total %x, %v; a sweep writes it", l.Index, v, err)
				}
				if i+1 == mid {
					midSnap = review17DebtSnapshot(t, fa)
				}
			}
			want := metaState(t, ra)
			if _, ok := want[rpDebtOwed]; !ok {
				t.Fatalf("no total of the points owed after %d entries", len(logs))
			}

			// B: random batches, each followed by a replay of entries
			// already applied (Raft replaying its log after a restart).
			fb, rb := review17DebtReplica(t)
			for i := 0; i < len(logs); {
				j := min(len(logs), i+1+rng.IntN(6))
				review17DebtApply(t, fb, logs[i:j])
				review17DebtCheck(t, "B", rb)
				back := rng.IntN(j + 1)
				review17DebtApply(t, fb, logs[back:j])
				review17DebtCheck(t, "B after a replay", rb)
				i = j
			}
			sameState(t, "batched and replayed", want, metaState(t, rb))

			// C: restored from a snapshot taken midway, then the rest.
			// D: restored from the snapshot without a total, then all.
			for _, c := range []struct {
				name string
				snap []byte
				from int
			}{{"restored midway", midSnap, mid}, {"restored from a state without a total", legacy, 0}} {
				fc, rc := review17DebtReplica(t)
				review17DebtApply(t, fc, logs[:1+rng.IntN(len(logs))]) // state the restore replaces
				if err := fc.Restore(io.NopCloser(bytes.NewReader(c.snap))); err != nil {
					t.Fatal(err)
				}
				review17DebtCheck(t, c.name, rc)
				for _, l := range logs[c.from:] {
					review17DebtApply(t, fc, []*raft.Log{l})
				}
				review17DebtCheck(t, c.name+", then the log", rc)
				sameState(t, c.name, want, metaState(t, rc))
			}
		})
	}
}

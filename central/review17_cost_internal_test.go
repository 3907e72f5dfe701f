package central

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// review17DroppedLog is a shop's life as a log: 10 milk worth 10.00 (1.00
// each) delivered to the bar, 10 worth 30.00 (3.00 each) to main, then the
// bar dropped from the store record (its stock stays there until moved).
// big adds 100 other items' stock in main, so the store holds more stock
// balances than a cost pass prefetches (the path of big stores).
func review17DroppedLog(t *testing.T, big bool) (ws []ledger.MasterWrite, logs []*raft.Log, at time.Time) {
	t.Helper()
	d := decimal.RequireFromString
	store := &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR",
		Departments: []storeline.Department{{ID: "bar"}, {ID: "main"}}}
	ws = []ledger.MasterWrite{
		{Version: Version{1, 1}.Pack(), Record: store},
		{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
		{Version: Version{1, 3}.Pack(), Record: &storeline.Item{ID: "milk", SKU: "milk", Name: "Milk", Group: "g", Dept: "main",
			Unit: storeline.Piece, VATRate: d("10")}},
	}
	at = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	logs = []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(t)}}
	add := func(l *raft.Log) { l.Index = logs[len(logs)-1].Index + 1; logs = append(logs, l) }
	transfer := func(n byte, ps []storeline.Posting) {
		var p transferPayload
		p.ID, p.Reason = storeline.EventID{n, 0x17, 0, 0, 0, 0, 0x40, 0, 0x80}, "delivery"
		for _, ps := range ps {
			amt, _ := ps.Amount.MarshalBinary()
			p.Postings = append(p.Postings, replication.WirePosting{Account: ps.Account, Asset: string(ps.Asset), Amount: amt})
		}
		add(entryLog(t, 0, at, OpReplicationTransfer, &p))
	}
	deliver := func(dept storeline.DeptID, item storeline.ItemID, units, value string) []storeline.Posting {
		stock := storeline.StockAccount("s1", dept, item)
		return []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset(item), Amount: d(units)},
			{Account: "warehouse/x", Asset: storeline.ItemAsset(item), Amount: d(units).Neg()},
			{Account: stock, Asset: "cur:EUR", Amount: d(value)},
			{Account: "warehouse/x", Asset: "cur:EUR", Amount: d(value).Neg()},
		}
	}
	transfer(1, deliver("bar", "milk", "10", "10.00"))
	transfer(2, deliver("main", "milk", "10", "30.00"))
	if big {
		var ps []storeline.Posting
		for i := range 100 {
			id := storeline.ItemID(fmt.Sprintf("x%03d", i))
			ws = append(ws, ledger.MasterWrite{Version: Version{2, uint16(1 + i)}.Pack(), Record: &storeline.Item{ID: id, SKU: string(id),
				Name: "Other", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("10")}})
			ps = append(ps, deliver("main", storeline.ItemID(fmt.Sprintf("x%03d", i)), "1", "1.00")...)
		}
		transfer(3, ps)
	}
	dropped := *store
	dropped.Departments = []storeline.Department{{ID: "main"}}
	rec, err := encodeRecord(&dropped, "")
	if err != nil {
		t.Fatal(err)
	}
	add(entryLog(t, 0, at, OpMasterPut, &putPayload{Records: []wireRecord{rec}}))
	return ws, logs, at
}

// review17Sale is a pushed receipt of qty milk sold from main.
func review17Sale(t *testing.T, seq uint64, at time.Time, qty string) []byte {
	t.Helper()
	return review17SaleFrom(t, seq, at, "main", qty)
}

// review17SaleFrom is a pushed receipt of qty milk sold from dept.
func review17SaleFrom(t *testing.T, seq uint64, at time.Time, dept storeline.DeptID, qty string) []byte {
	t.Helper()
	d := decimal.RequireFromString
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{{Item: "milk", Dept: dept, Unit: storeline.Piece, Qty: d(qty), Price: d("5.00"), VATRate: d("10")}}}
	r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: d(qty).Mul(d("5.00"))}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	ps, err := storeline.DerivePostings("s1", r)
	if err != nil {
		t.Fatal(err)
	}
	id := storeline.EventID{0xbb, byte(seq), 0, 0, 0, 0, 0x40, 0, 0x80}
	w, err := replication.EventToWire(storeline.Event{ID: id, Origin: "s1", Epoch: 1, Seq: seq,
		SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindReceipt, Body: r, Postings: ps,
		OccurredAt: at, BusinessDate: storeline.Date(at.Format("2006-01-02"))})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := msgpack.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func review17Balance(t *testing.T, rep *ledger.Replica, acct string, a storeline.Asset) decimal.Decimal {
	t.Helper()
	v, err := rep.Meta(balKey(acct, a))
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return decimal.Decimal{}
	}
	return decimal.RequireFromString(string(v))
}

// TestReview17DroppedDepartmentInPushCost: a sale pushed after the bar,
// holding 10 milk at 1.00, was dropped from the store record is costed at
// the shop's moving average over all of its stock (2.00 each), not over
// main's alone (3.00): the 5 sold cost 10.00. For a small store (the pass
// reads all of its stock balances) and a big one (it does not), with the
// shortcuts and without (slowBooks), and a second sale costed in a pass
// of its own, the first's cost pending no more.
func TestReview17DroppedDepartmentInPushCost(t *testing.T) {
	for _, big := range []bool{false, true} {
		for _, slow := range []bool{false, true} {
			t.Run(fmt.Sprintf("big=%v/slow=%v", big, slow), func(t *testing.T) {
				ws, logs, at := review17DroppedLog(t, big)
				next := logs[len(logs)-1].Index + 1
				logs = append(logs, pushLog(t, next, at, "s1", 1, [][]byte{review17Sale(t, 1, at, "5")}))
				logs = append(logs, pushLog(t, next+1, at, "s1", 1, [][]byte{review17Sale(t, 2, at, "5")}))
				slowBooks.Store(slow)
				defer slowBooks.Store(false)
				f, rep := fullFSM(t, ws)
				applyAll(t, f, logs[:len(logs)-1])
				if c := review17Balance(t, rep, storeline.COGSAccount("s1", "milk"), "cur:EUR"); !c.Equal(decimal.RequireFromString("10")) {
					t.Errorf("5 milk sold from main cost %s, want 10.00 (2.00 each over the shop's 20 worth 40.00)", c)
				}
				applyAll(t, f, logs[len(logs)-1:])
				if c := review17Balance(t, rep, storeline.COGSAccount("s1", "milk"), "cur:EUR"); !c.Equal(decimal.RequireFromString("20")) {
					t.Errorf("10 milk sold from main cost %s, want 20.00", c)
				}
			})
		}
	}
}

// TestReview17DroppedDepartmentInDocumentCost: a write-off of 5 milk from
// main, posted after the bar (10 at 1.00) was dropped, is costed at 2.00
// each, as a sale is.
func TestReview17DroppedDepartmentInDocumentCost(t *testing.T) {
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("big=%v", big), func(t *testing.T) {
			ws, logs, at := review17DroppedLog(t, big)
			add := func(l *raft.Log) { l.Index = logs[len(logs)-1].Index + 1; logs = append(logs, l) }
			add(entryLog(t, 0, at, OpDocCreate, &storeline.Document{ID: "wo1", Type: storeline.DocWriteOff, Store: "s1", Reason: "spoiled",
				Lines: []storeline.DocumentLine{{Item: "milk", Dept: "main", Qty: decimal.RequireFromString("5")}}}))
			add(entryLog(t, 0, at, OpDocPost, &docIDPayload{ID: "wo1"}))
			f, rep := fullFSM(t, ws)
			applyAll(t, f, logs)
			if c := review17Balance(t, rep, storeline.WriteOffAccount("s1", "milk"), "cur:EUR"); !c.Equal(decimal.RequireFromString("10")) {
				t.Errorf("5 milk written off from main cost %s, want 10.00 (2.00 each over the shop's 20 worth 40.00)", c)
			}
		})
	}
}

// TestReview17DroppedDepartmentBacklogSameState: a shop still selling
// from the dropped bar (offline, its record not yet pulled), with a
// backlog (one sale costed per pass, so the bar's sale is costed with its
// units in the stored add-back sums, the bar's units balance at zero and
// deleted): 1 milk from main at 2.00, then the bar's 10 at 2.00 (19 worth
// 38.00), 22.00 in all; and the same state with the shortcuts, without
// the FSM's read cache, and without any (slowBooks), for a small store
// and a big one.
func TestReview17DroppedDepartmentBacklogSameState(t *testing.T) {
	SetCostPassLimit(t, 1)
	defer checkPushCache.Store(checkPushCache.Swap(true)) // as it was: TestMain sets it for the package
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("big=%v", big), func(t *testing.T) {
			ws, logs, at := review17DroppedLog(t, big)
			add := func(l *raft.Log) { l.Index = logs[len(logs)-1].Index + 1; logs = append(logs, l) }
			add(pushLog(t, 0, at, "s1", 1, [][]byte{review17SaleFrom(t, 1, at, "main", "1"), review17SaleFrom(t, 2, at, "bar", "10")}))
			add(entryLog(t, 0, at, OpCostCatchUp, &catchUpPayload{Store: "s1"}))
			add(pushLog(t, 0, at, "s1", 1, [][]byte{review17SaleFrom(t, 3, at, "main", "1")}))
			var states []map[string]string
			for i, slow := range []bool{false, false, true} {
				slowBooks.Store(slow)
				noPushCache.Store(i == 1)
				f, rep := fullFSM(t, ws)
				applyAll(t, f, logs[:len(logs)-1])
				slowBooks.Store(false)
				noPushCache.Store(false)
				if c := review17Balance(t, rep, storeline.COGSAccount("s1", "milk"), "cur:EUR"); !c.Equal(decimal.RequireFromString("22")) {
					t.Errorf("run %d: 1 milk from main and 10 from the bar cost %s, want 22.00 (2.00 each)", i, c)
				}
				slowBooks.Store(slow)
				noPushCache.Store(i == 1)
				applyAll(t, f, logs[len(logs)-1:])
				slowBooks.Store(false)
				noPushCache.Store(false)
				// 9 left in main worth 28.00, the bar's -10.00: 2.00 each.
				if c := review17Balance(t, rep, storeline.COGSAccount("s1", "milk"), "cur:EUR"); !c.Equal(decimal.RequireFromString("24")) {
					t.Errorf("run %d: after one more from main, cost %s, want 24.00", i, c)
				}
				states = append(states, metaState(t, rep))
			}
			sameState(t, "without the read cache", states[0], states[1])
			sameState(t, "slowBooks", states[0], states[2])
		})
	}
}

// BenchmarkReview17BigStorePush: push entries of 50 one-line receipts of
// a store of 4 departments holding 400 items' stock (1600 stock balances:
// more than a cost pass prefetches), each pass costing at the moving
// average read department by department. Reports ns/entry.
func BenchmarkReview17BigStorePush(b *testing.B) {
	const items, per, entries = 400, 50, 20
	d := decimal.RequireFromString
	depts := []storeline.DeptID{"a", "b", "c", "d"}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ws := []ledger.MasterWrite{
		{Version: Version{1, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}}},
		{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
	}
	var p transferPayload
	p.ID, p.Reason = storeline.EventID{0x17, 0x17, 0, 0, 0, 0, 0x40, 0, 0x80}, "delivery"
	for i := range items {
		id := storeline.ItemID(fmt.Sprintf("i%03d", i))
		ws = append(ws, ledger.MasterWrite{Version: Version{2, uint16(1 + i)}.Pack(), Record: &storeline.Item{ID: id, SKU: string(id),
			Name: "Item", Group: "g", Dept: depts[i%4], Unit: storeline.Piece, VATRate: d("10")}})
		for _, dp := range depts {
			stock := storeline.StockAccount("s1", dp, id)
			for _, x := range []struct {
				acct  string
				asset storeline.Asset
				amt   string
			}{{stock, storeline.ItemAsset(id), "1000"}, {"warehouse/x", storeline.ItemAsset(id), "-1000"}, {stock, "cur:EUR", "1234.56"}, {"warehouse/x", "cur:EUR", "-1234.56"}} {
				amt, _ := d(x.amt).MarshalBinary()
				p.Postings = append(p.Postings, replication.WirePosting{Account: x.acct, Asset: string(x.asset), Amount: amt})
			}
		}
	}
	mk := func() ([]*raft.Log, error) {
		logs := []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(b)}, entryLog(b, 2, at, OpReplicationTransfer, &p)}
		seq := uint64(0)
		for e := range entries {
			var evs [][]byte
			for k := range per {
				seq++
				it := storeline.ItemID(fmt.Sprintf("i%03d", (e*per+k*7)%items))
				r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
					Lines: []storeline.Line{{Item: it, Dept: depts[(e+k)%4], Unit: storeline.Piece, Qty: d("1"), Price: d("5.00"), VATRate: d("10")}}}
				r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: d("5.00")}}
				if err := r.Compute(); err != nil {
					return nil, err
				}
				ps, err := storeline.DerivePostings("s1", r)
				if err != nil {
					return nil, err
				}
				w, err := replication.EventToWire(storeline.Event{ID: storeline.EventID{0xcc, byte(seq >> 8), byte(seq), 0, 0, 0, 0x40, 0, 0x80}, Origin: "s1", Epoch: 1, Seq: seq,
					SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindReceipt, Body: r, Postings: ps,
					OccurredAt: at, BusinessDate: storeline.Date(at.Format("2006-01-02"))})
				if err != nil {
					return nil, err
				}
				enc, err := msgpack.Marshal(&w)
				if err != nil {
					return nil, err
				}
				evs = append(evs, enc)
			}
			logs = append(logs, pushLog(b, uint64(3+e), at, "s1", 1, evs))
		}
		return logs, nil
	}
	logs, err := mk()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rep, err := ledger.OpenReplica(b.TempDir(), ledger.ReplicaOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := newFSM(rep, slog.New(slog.NewTextHandler(io.Discard, nil)), append(replicationOps(), seedOp(ws)))
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range f.ApplyBatch(logs[:2]) {
			if r := o.(*Result); r.Err() != nil {
				b.Fatal(r.Err())
			}
		}
		b.StartTimer()
		for _, l := range logs[2:] {
			if r := f.ApplyBatch([]*raft.Log{l})[0].(*Result); r.Err() != nil {
				b.Fatal(r.Err())
			}
		}
		b.StopTimer()
		rep.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries), "ns/entry")
}

package central

import (
	"bytes"
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

// Tests of the push path's shortcuts (issue 9): the seen set's expiry
// records, the cost pass's book shortcuts and the recheck's reuse of the
// pass's prefetch.

// entryLog is a Raft entry of op with payload at leader time at.
func entryLog(tb testing.TB, index uint64, at time.Time, op string, payload any) *raft.Log {
	tb.Helper()
	body, err := msgpack.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := msgpack.Marshal(&command{Op: op, AtMs: at.UnixMilli(), Payload: body})
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: c}
}

// fullFSM is a fresh replica with the replication ops (and the master and
// back-office ops every FSM has) and
// seedOp seeding ws.
func fullFSM(t *testing.T, ws []ledger.MasterWrite) (*FSM, *ledger.Replica) {
	t.Helper()
	return fsmWith(t, ws, 0)
}

// fsmWith is fullFSM over a replica of memtable bytes mem (0: the
// default), with extra ops.
func fsmWith(t *testing.T, ws []ledger.MasterWrite, mem int64, extra ...Op) (*FSM, *ledger.Replica) {
	t.Helper()
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{MemTableBytes: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	f, err := newFSM(rep, slog.New(slog.NewTextHandler(io.Discard, nil)), append(append(replicationOps(), seedOp(ws)), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return f, rep
}

// metaState is every metadata key of rep and its value.
func metaState(t *testing.T, rep *ledger.Replica) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta("", func(k string, v []byte) (bool, error) {
			out[k] = string(v)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameState(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	n := 0
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			if n++; n <= 5 {
				t.Errorf("%s: key %q: %x (present %v), want %x", what, k, w, ok, v)
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("%s: key %q not in the reference state", what, k)
			}
		}
	}
	if n > 0 {
		t.Fatalf("%s: %d keys differ (of %d)", what, n, len(a))
	}
}

// costLog is a shop's life as a log: two departments, stock delivered at
// awkward values (so averages have many digits), then sales of several
// lines over both departments, a return, and cost catch-ups, with a pass
// limit the caller sets low enough to leave backlogs.
func costLog(t *testing.T) ([]ledger.MasterWrite, []*raft.Log) {
	t.Helper()
	d := decimal.RequireFromString
	ws := []ledger.MasterWrite{
		{Version: Version{1, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food"}, {ID: "drink"}}}},
		{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
	}
	dept := func(i int) storeline.DeptID {
		if i%2 == 0 {
			return "food"
		}
		return "drink"
	}
	for i := range 6 {
		ws = append(ws, ledger.MasterWrite{Version: Version{1, uint16(3 + i)}.Pack(), Record: &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%d", i)),
			SKU: fmt.Sprintf("sku%d", i), Name: "Item", Group: "g", Dept: dept(i), Unit: storeline.Piece, VATRate: d("10")}})
	}
	ws = append(ws, ledger.MasterWrite{Version: Version{1, 9}.Pack(), Record: &storeline.Supplier{ID: "p1", Name: "P"}})
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	logs := []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(t)}}
	next := func() uint64 { return logs[len(logs)-1].Index + 1 }
	// delivery books units of item i worth 10.00 + i/3 into its
	// department (item 1 with a sliver of value, 0.0001, in the other, so
	// the stock sums' exponents vary).
	delivery := func(i int, units decimal.Decimal) {
		item := storeline.ItemID(fmt.Sprintf("i%d", i))
		stock := storeline.StockAccount("s1", dept(i), item)
		val := d("10").Add(decimal.NewFromInt(int64(i)).DivRound(d("3"), 2))
		var p transferPayload
		p.ID, p.Reason = storeline.EventID{byte(len(logs)), 0x70, 0, 0, 0, 0, 0x40, 0, 0x80}, "delivery"
		ps := []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset(item), Amount: units},
			{Account: "warehouse/x", Asset: storeline.ItemAsset(item), Amount: units.Neg()},
			{Account: stock, Asset: "cur:EUR", Amount: val},
			{Account: "warehouse/x", Asset: "cur:EUR", Amount: val.Neg()},
		}
		if i == 1 {
			ps = append(ps, storeline.Posting{Account: storeline.StockAccount("s1", dept(i+1), item), Asset: "cur:EUR", Amount: d("0.0001")},
				storeline.Posting{Account: "warehouse/y", Asset: "cur:EUR", Amount: d("-0.0001")})
		}
		for _, ps := range ps {
			amt, _ := ps.Amount.MarshalBinary()
			p.Postings = append(p.Postings, replication.WirePosting{Account: ps.Account, Asset: string(ps.Asset), Amount: amt})
		}
		logs = append(logs, entryLog(t, next(), at, OpReplicationTransfer, &p))
	}
	// Deliveries: items 0-3 only (4 and 5 go negative), 7 units each,
	// item 3's written 7.000.
	for i := range 4 {
		units := d("7")
		if i == 3 {
			units = d("7.000")
		}
		delivery(i, units)
	}
	seq := uint64(0)
	event := func(kind storeline.EventKind, body storeline.Body, ps []storeline.Posting) []byte {
		seq++
		id := storeline.EventID{0xaa, byte(seq >> 8), byte(seq), 0, 0, 0, 0x40, 0, 0x80}
		w, err := replication.EventToWire(storeline.Event{ID: id, Origin: "s1", Epoch: 1, Seq: seq,
			SchemaVersion: storeline.SchemaVersion, Kind: kind, Body: body, Postings: ps,
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
	receipt := func(k int) []byte {
		r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR"}
		for j := range 3 {
			i := (k + 2*j) % 6
			r.Lines = append(r.Lines, storeline.Line{Item: storeline.ItemID(fmt.Sprintf("i%d", i)), Dept: dept(i),
				Unit: storeline.Piece, Qty: decimal.NewFromInt(int64(1 + (k+j)%2)), Price: d("2.99"), VATRate: d("10")})
		}
		total := decimal.Zero
		for _, ln := range r.Lines {
			total = total.Add(ln.Qty.Mul(ln.Price))
		}
		r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: total}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		ps, err := storeline.DerivePostings("s1", r)
		if err != nil {
			t.Fatal(err)
		}
		return event(storeline.KindReceipt, r, ps)
	}
	for e := range 6 {
		at = at.Add(time.Minute)
		var evs [][]byte
		for k := range 2 + e {
			evs = append(evs, receipt(e*7+k))
		}
		logs = append(logs, pushLog(t, next(), at, "s1", 1, evs))
		if e == 1 {
			// A delivery between pushes: the stock balances a push
			// finds are not those the one before it left.
			delivery(2, d("3"))
		}
		if e == 2 {
			// An invoice of one unit of i4, whose stock stays below
			// zero: the pushes after cost its sales at this last cost,
			// not at the zero the ones before read.
			logs = append(logs, entryLog(t, next(), at, OpDocCreate, &storeline.Document{ID: "inv1", Type: storeline.DocIncomingInvoice,
				Store: "s1", Supplier: "p1", Lines: []storeline.DocumentLine{{Item: "i4", Qty: d("1"), PurchasePrice: d("2.50")},
					// A batch of i0, which the pushes before read as
					// having none (the read cache): the pushes after
					// sell from it.
					{Item: "i0", Qty: d("50"), PurchasePrice: d("2.00"), Batch: "b1", Expiry: "2026-12-31"}}}))
			logs = append(logs, entryLog(t, next(), at, OpDocPost, &docIDPayload{ID: "inv1"}))
		}
		if e == 3 {
			logs = append(logs, entryLog(t, next(), at, OpCostCatchUp, &catchUpPayload{Store: "s1"}))
		}
	}
	for range 4 {
		logs = append(logs, entryLog(t, next(), at, OpCostCatchUp, &catchUpPayload{Store: "s1"}))
	}
	return ws, logs
}

func applyAll(t *testing.T, f *FSM, logs []*raft.Log) {
	t.Helper()
	for _, l := range logs {
		if r := f.ApplyBatch([]*raft.Log{l})[0].(*Result); r.Err() != nil {
			t.Fatalf("entry %d: %v", l.Index, r.Err())
		}
	}
}

// TestCostShortcutsSameState: one log of deliveries, multi-line sales over
// two departments and catch-ups, with backlogs, leaves byte for byte the
// same state on two fresh replicas, and the same as the general path
// (slowBooks: no scan before the batch, every balance the applier moves
// read by key, every decimal sum computed, no memo, the recheck's own
// scan, StockOf by each department's balances rather than
// txBook.ItemStock, every balance the applier writes summed, printed and
// parsed with decimal rather than on int64s, every batch marker read by
// key) leaves, and the same as a replica without the FSM's
// stock cache (a scan in every push) leaves: the shortcuts change no
// value, exponent or key.
func TestCostShortcutsSameState(t *testing.T) {
	SetCostPassLimit(t, 4)
	ws, logs := costLog(t)
	var states []map[string]string
	for i, slow := range []bool{false, false, true} {
		slowBooks.Store(slow)
		noPushCache.Store(i == 1) // the second replica scans every push
		f, rep := fullFSM(t, ws)
		applyAll(t, f, logs)
		slowBooks.Store(false)
		noPushCache.Store(false)
		// Pushes whose pass books costs stamp two things in one entry
		// (the push's IDs, the cost event's): the record lists both.
		if s, x := seenIDs(t, rep); s != x || s == 0 {
			t.Fatalf("%d seen IDs, %d in the expiry order", s, x)
		}
		states = append(states, metaState(t, rep))
	}
	if n := len(states[0]); n < 100 {
		t.Fatalf("only %d keys: the log did not apply", n)
	}
	// The log must have costed something and left a stock position
	// negative, or the comparison proves little.
	costs, neg := 0, 0
	for k, v := range states[0] {
		if bytes.HasPrefix([]byte(k), []byte(boMargin)) && v != "0" {
			costs++
		}
		if bytes.HasPrefix([]byte(k), []byte(boNeg)) {
			neg++
		}
	}
	if costs == 0 || neg == 0 {
		t.Fatalf("%d non-zero sale costs, %d negative positions: want some of each", costs, neg)
	}
	// The pushes after the invoice sold from its batch.
	var b storeline.Batch
	if err := msgpack.Unmarshal([]byte(states[0][batchKey(storeline.Batch{Store: "s1", Item: "i0", Batch: "b1", Expiry: "2026-12-31"})]), &b); err != nil {
		t.Fatalf("batch b1: %v", err)
	}
	if !b.Qty.LessThan(decimal.NewFromInt(50)) {
		t.Fatalf("batch b1 holds %s of the 50 received: no sale consumed it", b.Qty)
	} else if b.Qty.IsZero() {
		t.Fatal("batch b1 ran out: the comparison cannot see a sale that skipped it")
	}
	sameState(t, "second replica, no stock cache", states[0], states[1])
	sameState(t, "general path", states[0], states[2])
}

// receiptWithID is wireReceipt with the event ID id.
func receiptWithID(t *testing.T, seq uint64, at time.Time, id byte) []byte {
	t.Helper()
	var w replication.WireEvent
	if err := msgpack.Unmarshal(wireReceipt(t, "s1", 1, seq, at), &w); err != nil {
		t.Fatal(err)
	}
	w.ID = [16]byte{id, 0, 0, 0, 0, 0, 0x40, 0, 0x80}
	enc, err := msgpack.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// expiryKeys counts the keys of the seen set's expiry order.
func expiryKeys(t *testing.T, rep *ledger.Replica) (n int) {
	t.Helper()
	if err := rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(rpSeenX, func(string, []byte) (bool, error) { n++; return true, nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSeenExpiryRecords: a push writes one expiry record for the IDs it
// stamps, not a key per ID, and the record, once due, forgets them as a
// unit; state written before the records (a key per ID, seen entries of
// eight bytes) is pruned as before; an ID ingested again beyond the
// retention (a new record) is not forgotten when its old record expires.
func TestSeenExpiryRecords(t *testing.T) {
	f, rep := testFSM(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	seq := uint64(0)
	push := func(index uint64, at time.Time, ids ...byte) pushOutcome {
		t.Helper()
		var evs [][]byte
		for _, id := range ids {
			seq++
			evs = append(evs, receiptWithID(t, seq, at, id))
		}
		return applyOK(t, f, pushLog(t, index, at, "s1", 1, evs))
	}
	check := func(when string, seen, keys int) {
		t.Helper()
		s, x := seenIDs(t, rep)
		if s != seen || x != seen {
			t.Fatalf("%s: %d seen IDs, %d in the expiry order, want %d and %d", when, s, x, seen, seen)
		}
		if k := expiryKeys(t, rep); k != keys {
			t.Fatalf("%s: %d expiry keys, want %d", when, k, keys)
		}
	}
	push(10, t0, 'A', 'B', 'C')
	// D and E as an older build stamped them at t0+1d: a key each.
	if _, err := rep.Apply(11, func(rt *ledger.ReplicaTxn) error {
		for _, id := range []byte{'D', 'E'} {
			oid := "s1\x00" + string((&[16]byte{id, 0, 0, 0, 0, 0, 0x40, 0, 0x80})[:])
			at8 := string(ledger.PutU64(uint64(t0.Add(day).UnixMilli())))
			if err := rt.SetMeta(rpSeen+oid, []byte(at8)); err != nil {
				return err
			}
			if err := rt.SetMeta(rpSeenX+at8+oid, []byte{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	push(20, t0.Add(2*day), 'F', 'G')
	check("before any expiry", 7, 4)
	// A again, beyond its retention: applied, stamped anew; the same
	// entry prunes A's old record, which must forget B and C only.
	if o := push(30, t0.Add(seenRetention+12*time.Hour), 'A'); o.Applied != 1 || o.Duplicates != 0 {
		t.Fatalf("A beyond retention: %+v, want applied", o)
	}
	check("after the first record expired", 5, 4)
	// D again, beyond its retention (old form): its old key goes; E's,
	// due, is pruned.
	if o := push(40, t0.Add(day+seenRetention+12*time.Hour), 'D'); o.Applied != 1 || o.Duplicates != 0 {
		t.Fatalf("D beyond retention: %+v, want applied", o)
	}
	check("after the old keys expired", 4, 3)
	// A and D are remembered: duplicates now.
	if o := push(50, t0.Add(day+seenRetention+13*time.Hour), 'A', 'D', 'H'); o.Applied != 1 || o.Duplicates != 2 {
		t.Fatalf("A, D again and H: %+v, want 2 duplicates and 1 applied", o)
	}
	check("at the end", 5, 4)
}

// TestItemCacheFollowsMasterChanges: the FSM's item cache answers what
// the state does. An item deleted between two pushes is unknown to the
// second (its sale rejected), one restored is known again, with its
// excise flag as the new record has it; and a log mixing pushes and
// master changes leaves the same state with and without the cache.
func TestItemCacheFollowsMasterChanges(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	del := entryLog(t, 0, at, OpMasterDelete, &deletePayload{Kind: storeline.KindItem, ID: "i1"})
	item := &storeline.Item{ID: "i1", SKU: "sku1", Name: "Item", Group: "g", Dept: "food", Unit: storeline.Piece,
		VATRate: decimal.NewFromInt(10), Excise: true}
	rec, err := encodeRecord(item, "")
	if err != nil {
		t.Fatal(err)
	}
	put := entryLog(t, 0, at, OpMasterPut, &putPayload{Records: []wireRecord{rec}})
	var logs []*raft.Log
	next := func(l *raft.Log) { l.Index = uint64(len(logs) + 2); logs = append(logs, l) }
	epoch := uint64(0)
	push := func() *raft.Log { // one sale of i1 (wireReceipt sells i<seq%10>), in a new epoch
		epoch++
		return pushLog(t, 0, at, "s1", epoch, [][]byte{wireReceipt(t, "s1", epoch, 1, at)})
	}
	next(push())
	next(del)
	next(push())
	next(put)
	next(push())
	for _, off := range []bool{false, true} {
		noItemCache.Store(off)
		f, rep := testFSM(t)
		var outs []pushOutcome
		for _, l := range logs {
			r := f.ApplyBatch([]*raft.Log{l})[0].(*Result)
			if r.Err() != nil {
				t.Fatalf("entry %d: %v", l.Index, r.Err())
			}
			var o pushOutcome
			if len(r.Body) > 0 {
				if err := msgpack.Unmarshal(r.Body, &o); err != nil {
					t.Fatal(err)
				}
				outs = append(outs, o)
			}
		}
		noItemCache.Store(false)
		if len(outs) != 3 || len(outs[0].Rejections) != 0 || len(outs[1].Rejections) != 1 || len(outs[2].Rejections) != 0 {
			t.Fatalf("cache off %v: rejections per push %d, %d, %d (of %d pushes), want 0, 1, 0", off, len(outs[0].Rejections), len(outs[1].Rejections), len(outs[2].Rejections), len(outs))
		}
		// The restored item is excise: the back office's excise journal
		// counts the third push's sale, and only it.
		var n string
		if err := rep.View(func(rt *ledger.ReplicaTxn) error {
			v, err := rt.Meta(boExcise + "s1")
			n = string(v)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n != "1" {
			t.Fatalf("cache off %v: excise rows of s1 %q, want 1", off, n)
		}
	}
}

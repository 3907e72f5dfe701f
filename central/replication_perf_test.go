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

// pushEntries returns Raft entries from index first on: a seedOp entry,
// then push entries of per receipts each
// of store s1, epoch 1, seq from 1.
func pushEntries(tb testing.TB, first uint64, entries, per int) []*raft.Log {
	tb.Helper()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	logs := []*raft.Log{{Index: first, Type: raft.LogCommand, Data: seedEntry(tb)}}
	seq := uint64(0)
	for e := range entries {
		var evs [][]byte
		for range per {
			seq++
			evs = append(evs, wireReceipt(tb, "s1", 1, seq, at))
		}
		logs = append(logs, pushLog(tb, first+1+uint64(e), at, "s1", 1, evs))
	}
	return logs
}

// wireReceipt is the wire bytes of a one-line cash receipt of origin at
// (epoch, seq), selling item i<seq%10>.
func wireReceipt(tb testing.TB, origin storeline.StoreID, epoch, seq uint64, at time.Time) []byte {
	tb.Helper()
	d := decimal.NewFromInt
	price := d(int64(100 + seq%50)).Shift(-2)
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines: []storeline.Line{{Item: storeline.ItemID(fmt.Sprintf("i%d", seq%10)), Dept: "food", Unit: storeline.Piece,
			Qty: d(1), Price: price, VATRate: d(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: price}}}
	if err := r.Compute(); err != nil {
		tb.Fatal(err)
	}
	ps, err := storeline.DerivePostings(origin, r)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := replication.EventToWire(storeline.Event{ID: storeline.NewEventID(), Origin: origin, Epoch: epoch, Seq: seq,
		SchemaVersion: storeline.SchemaVersion, Kind: storeline.KindReceipt, Body: r, Postings: ps,
		OccurredAt: at, BusinessDate: storeline.Date(at.Format("2006-01-02"))})
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := msgpack.Marshal(&w)
	if err != nil {
		tb.Fatal(err)
	}
	return enc
}

// pushLog is the Raft entry Push submits for evs, at leader time at.
func pushLog(tb testing.TB, index uint64, at time.Time, store storeline.StoreID, epoch uint64, evs [][]byte) *raft.Log {
	tb.Helper()
	p := pushPayload{Store: string(store), Epoch: epoch}
	for _, e := range evs {
		p.Events = append(p.Events, e)
	}
	body, err := msgpack.Marshal(&p)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := msgpack.Marshal(&command{Op: OpReplicationPush, AtMs: at.UnixMilli(), Payload: body})
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: c}
}

// seedEntry is the command of seedOp.
func seedEntry(tb testing.TB) []byte {
	tb.Helper()
	c, err := msgpack.Marshal(&command{Op: "test.seed"})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// seedOp puts master records, as an import does.
func seedOp(ws []ledger.MasterWrite) Op {
	return Op{"test.seed", func(tx *Tx, _ []byte) ([]byte, error) {
		return nil, tx.PutMasters(ws)
	}}
}

// BenchmarkApplyPush measures one replica's FSM applying push entries of
// 500 receipts (what the upload benchmark's batches are), without Raft or
// the network: the CPU a node spends per pushed event. It reports
// ns/event; allocations are per entry.
func BenchmarkApplyPush(b *testing.B) {
	const per, entries = 500, 8
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		logs := pushEntries(b, 1, entries, per)
		ws := masterWritesOf(b)
		rep, err := ledger.OpenReplica(b.TempDir(), ledger.ReplicaOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := newFSM(rep, slog.New(slog.NewTextHandler(io.Discard, nil)), append(replicationOps(), seedOp(ws)))
		if err != nil {
			b.Fatal(err)
		}
		f.ApplyBatch(logs[:1])
		b.StartTimer()
		// As Raft hands them over: a few entries per batch.
		for j := 1; j < len(logs); j += 2 {
			out := f.ApplyBatch(logs[j:min(j+2, len(logs))])
			for _, o := range out {
				if r := o.(*Result); r.Err() != nil {
					b.Fatal(r.Err())
				}
			}
		}
		b.StopTimer()
		st, err := func() (ShopStats, error) {
			var s ShopStats
			v, err := rep.Meta(rpStat + "s1")
			if err != nil || v == nil {
				return s, err
			}
			return s, msgpack.Unmarshal(v, &s)
		}()
		if err != nil {
			b.Fatal(err)
		}
		if st.Events != entries*per || st.Rejections != 0 {
			b.Fatalf("stats %+v, want %d events, no rejections", st, entries*per)
		}
		rep.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries*per), "ns/event")
}

// masterWritesOf is one store and ten items, i0..i9.
func masterWritesOf(tb testing.TB) []ledger.MasterWrite {
	d := decimal.NewFromInt
	ws := []ledger.MasterWrite{
		{Version: Version{1, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food"}}}},
		{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
	}
	for i := range 10 {
		ws = append(ws, ledger.MasterWrite{Version: Version{1, uint16(3 + i)}.Pack(), Record: &storeline.Item{ID: storeline.ItemID(fmt.Sprintf("i%d", i)),
			SKU: fmt.Sprintf("sku%d", i), Name: "Item", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d(10)}})
	}
	return ws
}

// testFSM is a replica with the replication ops and seedOp, seeded at
// index 1 with masterWritesOf.
func testFSM(t *testing.T) (*FSM, *ledger.Replica) {
	t.Helper()
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	f, err := newFSM(rep, slog.New(slog.NewTextHandler(io.Discard, nil)), append(replicationOps(), seedOp(masterWritesOf(t))))
	if err != nil {
		t.Fatal(err)
	}
	f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(t)}})
	return f, rep
}

func applyOK(t *testing.T, f *FSM, l *raft.Log) pushOutcome {
	t.Helper()
	r := f.ApplyBatch([]*raft.Log{l})[0].(*Result)
	if err := r.Err(); err != nil {
		t.Fatalf("entry %d: %v", l.Index, err)
	}
	var o pushOutcome
	if err := msgpack.Unmarshal(r.Body, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// seenIDs counts the seen set's IDs and the IDs its expiry order lists
// (a record lists an entry's; a key of the old form, one).
func seenIDs(t *testing.T, rep *ledger.Replica) (seen, expiry int) {
	t.Helper()
	err := rep.View(func(rt *ledger.ReplicaTxn) error {
		if err := rt.ScanMeta(rpSeen, func(string, []byte) (bool, error) { seen++; return true, nil }); err != nil {
			return err
		}
		return rt.ScanMeta(rpSeenX, func(k string, v []byte) (bool, error) {
			if k[len(rpSeenX)+8] != 0 {
				expiry++
				return true, nil
			}
			expiry += len(expiryIDs(v))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, expiry
}

// TestPushForgetsExpiredSeen: a push forgets the (origin, ID)s first
// ingested longer than the retention before its time, and only those,
// whether or not the state holds the lower bound that lets a push skip
// the scan (state written before it existed has none); an ID stamped
// earlier than the bound (a leader with a slower clock) lowers it.
func TestPushForgetsExpiredSeen(t *testing.T) {
	for _, dropLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropLow=%v", dropLow), func(t *testing.T) {
			f, rep := testFSM(t)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			day := 24 * time.Hour
			seq := uint64(0)
			push := func(index uint64, at time.Time, n int) {
				var evs [][]byte
				for range n {
					seq++
					evs = append(evs, wireReceipt(t, "s1", 1, seq, at))
				}
				if o := applyOK(t, f, pushLog(t, index, at, "s1", 1, evs)); o.Applied != n {
					t.Fatalf("entry %d applied %d of %d", index, o.Applied, n)
				}
				if dropLow {
					if _, err := rep.Apply(index+1, func(rt *ledger.ReplicaTxn) error { return rt.SetMeta(rpSeenLow, nil) }); err != nil {
						t.Fatal(err)
					}
				}
			}
			push(10, t0.Add(2*day), 3)
			push(20, t0.Add(day), 2) // a slower clock: below the bound
			push(30, t0.Add(5*day), 4)
			if s, x := seenIDs(t, rep); s != 9 || x != 9 {
				t.Fatalf("seen %d, expiry entries %d, want 9 and 9", s, x)
			}
			// 90 days and a half after t0+1d: the two of that day expire.
			push(40, t0.Add(day+seenRetention+12*time.Hour), 1)
			if s, x := seenIDs(t, rep); s != 8 || x != 8 {
				t.Fatalf("after the first expiry: seen %d, expiry entries %d, want 8 and 8", s, x)
			}
			// Then the three of t0+2d, not the four of t0+5d.
			push(50, t0.Add(2*day+seenRetention+12*time.Hour), 1)
			if s, x := seenIDs(t, rep); s != 6 || x != 6 {
				t.Fatalf("after the second expiry: seen %d, expiry entries %d, want 6 and 6", s, x)
			}
		})
	}
}

// TestPushMarksWithoutEpochIndex: a push answers every epoch's mark,
// also from state written before the epoch index existed.
func TestPushMarksWithoutEpochIndex(t *testing.T) {
	f, rep := testFSM(t)
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	applyOK(t, f, pushLog(t, 2, at, "s1", 1, [][]byte{wireReceipt(t, "s1", 1, 1, at), wireReceipt(t, "s1", 1, 2, at)}))
	applyOK(t, f, pushLog(t, 3, at, "s1", 3, [][]byte{wireReceipt(t, "s1", 3, 1, at)}))
	// As an older build left it: marks, no index.
	if _, err := rep.Apply(4, func(rt *ledger.ReplicaTxn) error { return rt.SetMeta(rpEpochs+"s1", nil) }); err != nil {
		t.Fatal(err)
	}
	o := applyOK(t, f, pushLog(t, 5, at, "s1", 2, [][]byte{wireReceipt(t, "s1", 2, 1, at)}))
	want := replication.WireMarks{{Epoch: 1, Seq: 2}, {Epoch: 2, Seq: 1}, {Epoch: 3, Seq: 1}}
	if fmt.Sprint(o.Marks) != fmt.Sprint(want) {
		t.Fatalf("marks %v, want %v", o.Marks, want)
	}
	// An empty push (asking for the marks) reads the same.
	if o := applyOK(t, f, pushLog(t, 6, at, "s1", 2, nil)); fmt.Sprint(o.Marks) != fmt.Sprint(want) {
		t.Fatalf("marks of an empty push %v, want %v", o.Marks, want)
	}
}

// TestDecodePushPayload: the one-pass decoding of a push entry gives the
// events and their exact wire bytes, and gives up (for the general
// decoding) on what Push does not write.
func TestDecodePushPayload(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	evs := [][]byte{wireReceipt(t, "s1", 4, 7, at), wireReceipt(t, "s1", 4, 8, at)}
	l := pushLog(t, 1, at, "s1", 4, evs)
	var c command
	if err := msgpack.Unmarshal(l.Data, &c); err != nil {
		t.Fatal(err)
	}
	p, ws, ok := decodePushPayload(c.Payload)
	if !ok || p.Store != "s1" || p.Epoch != 4 || len(p.Events) != 2 || len(ws) != 2 {
		t.Fatalf("decoded %v %+v %d events", ok, p, len(ws))
	}
	for i := range evs {
		again, err := msgpack.Marshal(&ws[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Events[i]) != string(evs[i]) || string(again) != string(evs[i]) {
			t.Fatalf("event %d differs from its wire form", i)
		}
	}
	// An unknown key is skipped, as the general decoding does.
	other, _ := msgpack.Marshal(map[string]any{"s": "s1", "e": 1, "x": 1})
	if p, ws, ok := decodePushPayload(other); !ok || p.Store != "s1" || p.Epoch != 1 || len(ws) != 0 {
		t.Errorf("unknown key: decoded %v %+v", ok, p)
	}
	many := pushPayload{Store: "s1", Epoch: 1, Events: make([]msgpack.RawMessage, maxPushEntryEvents+1)}
	for i := range many.Events {
		many.Events[i] = evs[0]
	}
	tooMany, _ := msgpack.Marshal(&many)
	for name, b := range map[string][]byte{"not a map": {0x91, 0x01}, "cut short": c.Payload[:len(c.Payload)-3], "too many": tooMany} {
		if _, _, ok := decodePushPayload(b); ok {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestReceiptItems: the items a receipt sells, read from its body without
// decoding it, are those of the decoded receipt, line by line; a body that
// is not a receipt's map is an error.
func TestReceiptItems(t *testing.T) {
	d := decimal.NewFromInt
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR", Card: "c1",
		Lines: []storeline.Line{
			{Item: "i1", Dept: "food", Unit: storeline.Piece, Barcode: "123", Qty: d(2), Price: d(3), VATRate: d(10)},
			{Item: "i7", Dept: "food", Unit: storeline.Piece, Qty: d(1), Price: d(5), VATRate: d(10)},
			{Item: "i1", Dept: "food", Unit: storeline.Piece, Qty: d(1), Price: d(3), VATRate: d(10)}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d(14)}}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	body, err := msgpack.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := receiptItems(body)
	if err != nil {
		t.Fatal(err)
	}
	var back storeline.Receipt
	if err := msgpack.Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(back.Lines) {
		t.Fatalf("%d items, %d lines", len(got), len(back.Lines))
	}
	for j, ln := range back.Lines {
		if got[j] != ln.Item {
			t.Errorf("item %d: %q, want %q", j, got[j], ln.Item)
		}
	}
	for name, b := range map[string][]byte{"not a map": {0x91, 0x01}, "cut short": body[:len(body)/2], "empty": nil} {
		if _, err := receiptItems(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestHasMaster: the existence check a push makes per item (reading only
// the tombstone flag) agrees with GetMaster: a live item, an unknown one,
// and one deleted since.
func TestHasMaster(t *testing.T) {
	_, rep := testFSM(t)
	has := func(id string) bool {
		t.Helper()
		var ok bool
		err := rep.View(func(rt *ledger.ReplicaTxn) error {
			var err error
			ok, err = rt.HasMaster(storeline.KindItem, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !has("i3") || has("nope") {
		t.Fatalf("i3 %v, nope %v; want true, false", has("i3"), has("nope"))
	}
	if _, err := rep.Apply(2, func(rt *ledger.ReplicaTxn) error {
		return rt.PutMasters([]ledger.MasterWrite{{Version: Version{2, 1}.Pack(), Kind: storeline.KindItem, ID: "i3"}})
	}); err != nil {
		t.Fatal(err)
	}
	if has("i3") || !has("i4") {
		t.Fatalf("after deleting i3: i3 %v, i4 %v; want false, true", has("i3"), has("i4"))
	}
}

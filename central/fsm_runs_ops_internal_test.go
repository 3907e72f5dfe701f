package central

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// reviewFill writes n meta keys of 120 bytes from a payload of a few
// bytes: an op whose writes dwarf its payload (a cost pass, a document's
// posting, a prune), so a run under the byte budget still overflows one
// Badger transaction and is applied again entry by entry.
func reviewFill() Op {
	return Op{"test.fill", func(tx *Tx, payload []byte) ([]byte, error) {
		var n int
		if err := msgpack.Unmarshal(payload, &n); err != nil {
			return nil, storeline.Invalidf("", "undecodable fill: %v", err)
		}
		val := bytes.Repeat([]byte{'v'}, 120)
		for i := range n {
			if err := tx.SetMeta(fmt.Sprintf("test/fill/%d/%06d", tx.Index, i), val); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}}
}

// reviewPad carries a big payload and writes one key of its hash: an
// entry over the run budget alone, so runs start and end around it.
func reviewPad() Op {
	return Op{"test.pad", func(tx *Tx, payload []byte) ([]byte, error) {
		return nil, tx.SetMeta(fmt.Sprintf("test/pad/%d", tx.Index), []byte(fmt.Sprint(len(payload))))
	}}
}

// keyedLog is an entry of op with an idempotency key.
func keyedLog(tb testing.TB, index uint64, at time.Time, op, key string, payload any) *raft.Log {
	tb.Helper()
	body, err := msgpack.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := msgpack.Marshal(&command{Op: op, Key: key, AtMs: at.UnixMilli(), Payload: body})
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: c}
}

// reviewLog is costLog with master changes, keyed commands, a refused
// command, pads and fills spread through it, renumbered.
func reviewLog(t *testing.T) ([]ledger.MasterWrite, []*raft.Log) {
	t.Helper()
	ws, base := costLog(t)
	at := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	item := func(id, name string) wireRecord {
		r, err := encodeRecord(&storeline.Item{ID: storeline.ItemID(id), SKU: "sku-" + id, Name: name, Group: "g", Dept: "food",
			Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var logs []*raft.Log
	add := func(l *raft.Log) {
		l.Index = uint64(len(logs) + 1)
		logs = append(logs, l)
	}
	pad := bytes.Repeat([]byte{'p'}, 600<<10)
	for i, l := range base {
		add(l)
		switch i % 5 {
		case 0:
			add(entryLog(t, 0, at, "test.fill", 4500))
		case 1:
			add(keyedLog(t, 0, at, OpMasterPut, fmt.Sprintf("put-%d", i), &putPayload{Records: []wireRecord{
				item(fmt.Sprintf("n%d", i), "New"), item("i0", fmt.Sprintf("Renamed %d", i))}}))
		case 2:
			add(entryLog(t, 0, at, "test.fill", 4500))
		case 3:
			add(entryLog(t, 0, at, "test.pad", pad))
		case 4:
			add(entryLog(t, 0, at, OpMasterDelete, &deletePayload{Kind: storeline.KindItem, ID: fmt.Sprintf("n%d", i-3)}))
		}
	}
	// A retry of the first keyed put (a duplicate), the same key with
	// another payload (a conflict), a delete of nothing (NotFound), and
	// three fills in a row.
	add(keyedLog(t, 0, at, OpMasterPut, "put-1", &putPayload{Records: []wireRecord{item("n1", "New"), item("i0", "Renamed 1")}}))
	add(keyedLog(t, 0, at, OpMasterPut, "put-1", &putPayload{Records: []wireRecord{item("n1", "Other")}}))
	add(entryLog(t, 0, at, OpMasterDelete, &deletePayload{Kind: storeline.KindItem, ID: "no-such"}))
	for range 3 {
		add(entryLog(t, 0, at, "test.fill", 4500))
	}
	return ws, logs
}

// masterState is every master change of rep (the latest of each record),
// in version order, printed.
func masterState(t *testing.T, rep *ledger.Replica) map[string]string {
	t.Helper()
	cs, err := rep.MasterChanges(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		data, err := msgpack.Marshal(c.Record)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%s/%s", c.Kind, c.ID)] = fmt.Sprintf("%d %v %x", c.Version, c.Deleted, data)
	}
	return out
}

func resultsOf(t *testing.T, out []interface{}) []string {
	t.Helper()
	s := make([]string, len(out))
	for i, o := range out {
		r, ok := o.(*Result)
		if !ok {
			t.Fatalf("result %d: %T", i, o)
		}
		s[i] = fmt.Sprintf("%d %d %v %s %s %s %x", r.Index, r.Version.Pack(), r.Duplicate, r.ErrKind, r.ErrField, r.ErrMsg, r.Body)
	}
	return s
}

// TestRunsSameStateEveryOp: a log of every kind of entry the test can
// build (pushes, transfers, documents, cost catch-ups, master puts and
// deletes, keyed commands and a keyed retry, a business error, entries
// much bigger than the run budget and entries that write far more than
// they carry) leaves the same state, byte for byte, and the same results,
// whether Raft hands it over one entry per batch or in batches the FSM
// cuts into runs, some of which Badger refuses and the FSM applies entry
// by entry. (An op writing its transaction's applied index, which differs
// by grouping, failed it.)
func TestRunsSameStateEveryOp(t *testing.T) {
	SetCostPassLimit(t, 4)
	ws, logs := reviewLog(t)
	open := func(mem int64) (*FSM, *ledger.Replica) {
		t.Helper()
		return fsmWith(t, ws, mem, reviewFill(), reviewPad())
	}

	// The reference: one entry per batch, on a replica big enough for
	// any one entry.
	ref, refRep := open(32 << 20)
	var want []string
	for _, l := range logs {
		want = append(want, resultsOf(t, ref.ApplyBatch([]*raft.Log{l}))...)
	}
	errs := 0
	for _, w := range want {
		if strings.Contains(w, " not_found ") || strings.Contains(w, " conflict ") || strings.Contains(w, " true ") {
			errs++
		}
	}
	if errs < 3 {
		t.Fatalf("only %d duplicates or refusals in the reference results: the log does not cover them\n%s", errs, strings.Join(want, "\n"))
	}
	wantMeta, wantMaster := metaState(t, refRep), masterState(t, refRep)

	for _, c := range []struct {
		name  string
		mem   int64
		batch int
	}{{"one batch, 8 MiB memtable", 8 << 20, len(logs)}, {"batches of 7, 8 MiB memtable", 8 << 20, 7}} {
		t.Run(c.name, func(t *testing.T) {
			f, rep := open(c.mem)
			var got []string
			for i := 0; i < len(logs); i += c.batch {
				got = append(got, resultsOf(t, f.ApplyBatch(logs[i:min(i+c.batch, len(logs))]))...)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("entry %d: result %q, want %q", logs[i].Index, got[i], want[i])
				}
			}
			if f.split.Load() < 3 {
				t.Errorf("%d runs refused by Badger: the fallback after pushes went untested", f.split.Load())
			}
			if f.Applies() != ref.Applies() {
				t.Errorf("%d commands applied, want %d", f.Applies(), ref.Applies())
			}
			if rep.AppliedIndex() != refRep.AppliedIndex() {
				t.Errorf("applied index %d, want %d", rep.AppliedIndex(), refRep.AppliedIndex())
			}
			sameState(t, c.name+": meta", wantMeta, metaState(t, rep))
			sameState(t, c.name+": master data", wantMaster, masterState(t, rep))
			t.Logf("%d entries, %d runs refused and applied entry by entry", len(logs), f.split.Load())
		})
	}
}

package central

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// review35FSM is a replica holding items "x" and "y" without barcodes and
// held items h1..hN holding the internal codes of serials 1..N (typed in
// by hand), with applyInternalBarcode as op "test.alloc" (level 1).
func review35FSM(t *testing.T, held int) *FSM {
	t.Helper()
	ws := []ledger.MasterWrite{{Version: Version{1, 1}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}}}
	piece := func(id string, codes ...string) *storeline.Item {
		it := &storeline.Item{ID: storeline.ItemID(id), SKU: "sku-" + id, Name: id, Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)}
		for _, c := range codes {
			it.Barcodes = append(it.Barcodes, storeline.ItemBarcode{Code: "0" + c, Factor: decimal.NewFromInt(1)})
		}
		return it
	}
	ws = append(ws, ledger.MasterWrite{Version: Version{1, 2}.Pack(), Record: piece("x")},
		ledger.MasterWrite{Version: Version{1, 3}.Pack(), Record: piece("y")})
	for k := 1; k <= held; k++ {
		code, err := storeline.InternalEAN13(storeline.DefaultInternalPrefix, uint64(k))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, ledger.MasterWrite{Version: Version{1, uint16(3 + k)}.Pack(), Record: piece(fmt.Sprintf("h%d", k), code)})
	}
	f, _ := fsmWith(t, ws, 0, Op{"test.alloc", applyInternalBarcode})
	applyAll(t, f, []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: seedEntry(t)}})
	return f
}

func review35Alloc(t *testing.T, index uint64, item string) *raft.Log {
	return entryLog(t, index, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), "test.alloc",
		&internalBarcodePayload{Item: storeline.ItemID(item), Prefix: storeline.DefaultInternalPrefix})
}

func review35Answer(t *testing.T, r *Result) internalBarcodeAnswer {
	t.Helper()
	if r.Err() != nil {
		t.Fatalf("allocation: %v", r.Err())
	}
	var a internalBarcodeAnswer
	if err := msgpack.Unmarshal(r.Body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// A run of hand-typed codes longer than one entry passes over is refused
// with "retry to go on past them": the retry must go on past them, not
// meet the same run from the same serial for ever.
func TestInternalBarcodeRetryGoesOnPastHeldRun(t *testing.T) {
	f := review35FSM(t, maxSerialSkips)
	r := f.ApplyBatch([]*raft.Log{review35Alloc(t, 2, "x")})[0].(*Result)
	if storeline.KindOf(r.Err()) != storeline.Conflict {
		t.Fatalf("allocation past %d held serials: %v; want a conflict", maxSerialSkips, r.Err())
	}
	a := review35Answer(t, f.ApplyBatch([]*raft.Log{review35Alloc(t, 3, "x")})[0].(*Result))
	want, _ := storeline.InternalEAN13(storeline.DefaultInternalPrefix, maxSerialSkips+1)
	if !a.Allocated || a.Barcode != want {
		t.Fatalf("retry = %+v; want %s allocated", a, want)
	}
}

// Two allocations in one applied batch get distinct codes, the second
// reading the counter the first raised in the same transaction.
func TestInternalBarcodesInOneBatchDistinct(t *testing.T) {
	f := review35FSM(t, 1)
	out := f.ApplyBatch([]*raft.Log{review35Alloc(t, 2, "x"), review35Alloc(t, 3, "y"), review35Alloc(t, 4, "x")})
	ax, ay, again := review35Answer(t, out[0].(*Result)), review35Answer(t, out[1].(*Result)), review35Answer(t, out[2].(*Result))
	c2, _ := storeline.InternalEAN13(storeline.DefaultInternalPrefix, 2)
	c3, _ := storeline.InternalEAN13(storeline.DefaultInternalPrefix, 3)
	if ax.Barcode != c2 || ay.Barcode != c3 || again.Barcode != c2 || again.Allocated {
		t.Fatalf("x %+v, y %+v, x again %+v; want %s, %s, %s not allocated", ax, ay, again, c2, c3, c2)
	}
}

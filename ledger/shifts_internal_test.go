package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// BenchmarkFoldShift measures what the shift totals add to the committer
// for one 5-line receipt: read, fold and write the shift's record in a
// Badger transaction, with the body the caller gave (live appends) and
// decoded from its bytes (WAL replay, pulled events).
//
//	go test -run '^$' -bench FoldShift ./ledger/
func BenchmarkFoldShift(b *testing.B) {
	db, err := openBadger(b.TempDir(), 8<<20, defaultValueThreshold, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := newVersions(db, true)
	r := &storeline.Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR"}
	for i := range 5 {
		r.Lines = append(r.Lines, storeline.Line{Item: storeline.ItemID(fmt.Sprintf("i%d", i)), Dept: "food", Unit: storeline.Piece,
			Qty: decimal.NewFromInt(1), Price: decimal.New(int64(100+i), -2), VATRate: decimal.NewFromInt(10)})
	}
	r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: decimal.NewFromInt(20)}}
	if err := r.Compute(); err != nil {
		b.Fatal(err)
	}
	ev := storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r, OccurredAt: time.Now(), BusinessDate: "2026-11-29"}
	body, err := encodeBody(r)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"live", "replay"} {
		b.Run(mode, func(b *testing.B) {
			se := toStored(&ev, body)
			if mode == "replay" {
				se.body = nil
			}
			txn := v.begin(true)
			defer func() { v.end(txn) }()
			n := 0
			for b.Loop() {
				se.Seq = uint64(n)
				if err := foldShift(plainTxn{txn}, se); err != nil {
					b.Fatal(err)
				}
				n++
				if n%1000 == 0 { // keep the transaction small, as a batch is
					if err := v.commit(txn); err != nil {
						b.Fatal(err)
					}
					v.end(txn)
					txn = v.begin(true)
				}
			}
		})
	}
}

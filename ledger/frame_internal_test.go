package ledger

import (
	"bytes"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// TestFrameCodecMatchesMarshal checks that the committer's reused-buffer
// encoding gives the bytes of msgpack.Marshal and frameBytes, for events
// and batches of several sizes, one after another through one codec (a
// reused buffer must not leak one frame into the next).
func TestFrameCodecMatchesMarshal(t *testing.T) {
	var c frameCodec
	for n := range 6 {
		var wb walBatch
		wb.HLC = uint64(1000 + n)
		for i := range n * n {
			r := &storeline.Receipt{Terminal: "t1", Shift: "s", Seller: "alice", Currency: "EUR"}
			body, err := msgpack.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			se := &storedEvent{ID: [16]byte{byte(n), byte(i)}, Origin: "s1", Epoch: 1, Seq: uint64(i + 1), Kind: "receipt", Body: body,
				Postings: []storedPosting{{Account: "cash:s1", Asset: "EUR", Amount: decimal.RequireFromString("12.34")}, {Account: "sales:s1", Asset: "EUR", Amount: decimal.RequireFromString("-12.34")}}}
			got, err := c.event(se)
			if err != nil {
				t.Fatal(err)
			}
			want, err := msgpack.Marshal(se)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("event %d/%d: codec %x, Marshal %x", n, i, got, want)
			}
			wb.Recs = append(wb.Recs, walRec{T: recEvent, Ev: got})
		}
		got, err := c.frame(uint64(n+1), &wb)
		if err != nil {
			t.Fatal(err)
		}
		body, err := msgpack.Marshal(&wb)
		if err != nil {
			t.Fatal(err)
		}
		if want := frameBytes(uint64(n+1), body); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: codec and frameBytes differ", n)
		}
	}
}

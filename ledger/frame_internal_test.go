package ledger

import (
	"strings"
	"time"

	"bytes"
	"pgregory.net/rapid"
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

// TestFrameCodecMatchesMarshalRandom checks the hand-written encoders
// against msgpack.Marshal on drawn values: integers at every width, times
// before 1970 and after 2514 (each msgpack timestamp form), long strings,
// huge and tiny decimals, nil and empty bodies and postings, and every
// WAL record type in one frame.
func TestFrameCodecMatchesMarshalRandom(t *testing.T) {
	var c frameCodec
	rapid.Check(t, func(t *rapid.T) {
		str := func(name string) string {
			if rapid.Bool().Draw(t, name+"Drawn") {
				return rapid.StringN(0, 40, -1).Draw(t, name)
			}
			// Byte lengths at msgpack's format boundaries, in two-byte
			// runes and one-byte padding.
			n := rapid.SampledFrom([]int{0, 31, 32, 255, 256, 65535, 65536}).Draw(t, name+"Len")
			return strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
		}
		u64 := func(name string) uint64 {
			return rapid.Uint64().Draw(t, name) >> rapid.IntRange(0, 63).Draw(t, name+"Shift")
		}
		se := &storedEvent{
			Origin: str("origin"), Epoch: u64("epoch"), Seq: u64("seq"), Schema: rapid.Uint16().Draw(t, "schema"),
			HLC: u64("hlc"), Date: str("date"), Kind: str("kind"),
			Occurred: time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "secs"), rapid.Int64Range(0, 999_999_999).Draw(t, "nanos")).UTC(),
		}
		copy(se.ID[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "id"))
		bodyForm := rapid.IntRange(0, 2).Draw(t, "bodyForm")
		switch bodyForm {
		case 1: // no bytes at all: not msgpack, so not decoded below
			se.Body = []byte{}
		case 2:
			b, _ := msgpack.Marshal(str("body"))
			se.Body = b
		}
		if np := rapid.SampledFrom([]int{-1, 0, 1, 2, 5, 15, 16}).Draw(t, "postings"); np >= 0 {
			se.Postings = make([]storedPosting, np)
			for i := range se.Postings {
				amt := decimal.New(rapid.Int64().Draw(t, "coef"), int32(rapid.IntRange(-40, 40).Draw(t, "exp")))
				if rapid.Bool().Draw(t, "huge") {
					amt = amt.Mul(amt).Mul(amt)
				}
				se.Postings[i] = storedPosting{Account: str("account"), Asset: str("asset"), Amount: amt}
			}
		}
		got, err := c.event(se)
		if err != nil {
			t.Fatal(err)
		}
		want, err := msgpack.Marshal(se)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event: codec %x, Marshal %x", got, want)
		}
		if bodyForm != 1 {
			back, err := decodeStored(got)
			if err != nil || back.Seq != se.Seq || back.HLC != se.HLC || !back.Occurred.Equal(se.Occurred) || len(back.Postings) != len(se.Postings) {
				t.Fatalf("decoded back %+v (%v), want %+v", back, err, se)
			}
		}

		wb := walBatch{HLC: u64("batchHLC")}
		if n := rapid.IntRange(-1, 6).Draw(t, "recs"); n >= 0 {
			wb.Recs = []walRec{}
			for range n {
				var r walRec
				switch rapid.IntRange(0, 4).Draw(t, "recType") {
				case 0:
					r = walRec{T: recEvent, Ev: got}
				case 1:
					r = walRec{T: recEvent} // empty Ev: the reflective path
				case 2:
					r = walRec{T: recCopy, Origin: se.Origin, ID: se.ID, Epoch: se.Epoch, Seq: se.Seq}
				case 3:
					r = walRec{T: recMaster, Kind: str("mkind"), MID: str("mid"), Master: &masterVal{Version: u64("mver"), Data: []byte("x")}}
				case 4:
					r = walRec{T: recMeta, Key: str("key"), Val: []byte(str("val"))}
				}
				wb.Recs = append(wb.Recs, r)
			}
		}
		lsn := u64("lsn")
		frame, err := c.frame(lsn, &wb)
		if err != nil {
			t.Fatal(err)
		}
		body, err := msgpack.Marshal(&wb)
		if err != nil {
			t.Fatal(err)
		}
		if want := frameBytes(lsn, body); !bytes.Equal(frame, want) {
			t.Fatalf("frame: codec %x, Marshal %x", frame, want)
		}
	})
}

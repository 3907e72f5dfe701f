package ledger

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
)

// TestStoredEventKey: the read-back's key of a stored event, read from its
// first two fields, is the key decoding the whole event gives, for both
// encoders and origins at msgpack's string-length boundaries; bytes of
// another layout fall back to the whole decode.
func TestStoredEventKey(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.SampledFrom([]int{1, 2, 31, 32, 64, 255, 256, 300}).Draw(t, "originLen")
		se := &storedEvent{Origin: strings.Repeat("o", n), Epoch: 1, Seq: rapid.Uint64().Draw(t, "seq"), Kind: "receipt", Body: msgpack.RawMessage{0xc0}}
		copy(se.ID[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "id"))
		want := eventKey(storeline.StoreID(se.Origin), storeline.EventID(se.ID))
		viaCodec, err := appendStoredEvent(nil, se)
		if err != nil {
			t.Fatal(err)
		}
		viaMarshal, err := msgpack.Marshal(se)
		if err != nil {
			t.Fatal(err)
		}
		for name, enc := range map[string][]byte{"codec": viaCodec, "Marshal": viaMarshal} {
			got, ok := storedEventKeyQuick(enc)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("%s: quick key %q (ok %v), want %q", name, got, ok, want)
			}
		}
	})
	if _, ok := storedEventKeyQuick([]byte{0x81, 0xa1, 'o', 0xa1, 'x'}); ok {
		t.Fatal("a map without the ID first read as a stored event")
	}
	// A map of one field whose next bytes happen to look like an origin.
	oneField := append(append([]byte{0x81, 0xa1, 'i', 0xc4, 16}, make([]byte, 16)...), 0xa1, 'o', 0xa1, 'x')
	if _, ok := storedEventKeyQuick(oneField); ok {
		t.Fatal("a one-field map read as a stored event with an origin past its end")
	}
	if _, err := storedEventKey([]byte{0xc1}); err == nil {
		t.Fatal("storedEventKey of garbage: no error")
	}
}

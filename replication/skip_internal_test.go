package replication

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// skipByMsgpack is what skipValue must agree with: the length msgpack's
// Decoder.Skip consumes, or its failure.
func skipByMsgpack(b []byte) (int, bool) {
	r := bytes.NewReader(b)
	if err := msgpack.NewDecoder(r).Skip(); err != nil {
		return 0, false
	}
	return len(b) - r.Len(), true
}

func skipSeeds(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, v := range []any{
		nil, true, 1, -1, 200, -200, 70000, -70000, 1 << 40, 1.5, float32(2.5), "", "abc",
		string(make([]byte, 40)), string(make([]byte, 300)), string(make([]byte, 70000)),
		[]byte{1, 2}, make([]byte, 300), make([]byte, 70000), []int{1, 2, 3}, make([]int, 20), make([]int, 70000),
		map[string]any{"a": 1, "b": []any{"x", map[string]int{"c": 2}}}, map[int]int{1: 2, 3: 4},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// Maps past 15 and 65,535 entries, ext values of every form, an
	// unused code.
	big := map[string]int{}
	for i := range 20 {
		big[string(rune('a'+i))] = i
	}
	b, _ := msgpack.Marshal(big)
	out = append(out, b, testWireEvent(t, 1),
		[]byte{0xd4, 1, 2}, []byte{0xd5, 1, 2, 3}, []byte{0xd6, 1, 0, 0, 0, 0}, []byte{0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), []byte{0xc7, 2, 1, 9, 9}, []byte{0xc8, 0, 2, 1, 9, 9},
		[]byte{0xc9, 0, 0, 0, 2, 1, 9, 9}, []byte{0xc1}, []byte{0xde, 0, 1, 0xa1, 'k', 0x01}, []byte{0xdf, 0, 0, 0, 1, 0x01, 0x02},
		[]byte{0xdc, 0, 2, 1, 2}, []byte{0xdd, 0, 0, 0, 1, 0xc0})
	return out
}

// TestSkipValue: on every form of value, whole, truncated at every byte
// and with bytes after it, skipValue consumes what msgpack's Skip does,
// and fails where it fails.
func TestSkipValue(t *testing.T) {
	for _, seed := range skipSeeds(t) {
		for _, b := range [][]byte{seed, append(append([]byte(nil), seed...), 0xc0, 0x01)} {
			for cut := len(b); cut >= 0 && cut >= len(b)-40; cut-- {
				checkSkip(t, b[:cut])
			}
		}
	}
}

func checkSkip(t *testing.T, b []byte) {
	t.Helper()
	want, ok := skipByMsgpack(b)
	got, err := SkipValue(b)
	switch {
	case ok && err != nil:
		t.Fatalf("% x: msgpack skips %d bytes, skipValue fails: %v", b[:min(len(b), 32)], want, err)
	case !ok && err == nil:
		t.Fatalf("% x: msgpack fails, skipValue skips %d bytes", b[:min(len(b), 32)], got)
	case ok && got != want:
		t.Fatalf("% x: skipValue skips %d bytes, msgpack %d", b[:min(len(b), 32)], got, want)
	}
}

// FuzzSkipValue: on any bytes, skipValue and msgpack's Skip agree.
func FuzzSkipValue(f *testing.F) {
	for _, s := range skipSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSkip(t, b) })
}

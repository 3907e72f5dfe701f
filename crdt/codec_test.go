package crdt_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline/crdt"
)

// TestEncodingsAreStable pins the bytes of small values of every type. If
// this test fails, the encoding changed: stored states and checksums made
// with the old one no longer match. Bump formatVersion and keep decoding the
// old layout rather than editing the expected bytes.
func TestEncodingsAreStable(t *testing.T) {
	pn := &crdt.PNCounter{}
	pn.Add("b", dec("12.30"))
	pn.Add("a", dec("-0.50"))

	bc := &crdt.BoundedCounter{}
	_, _ = bc.Increment("s", 300)
	_, _ = bc.Transfer("s", "c", 200)
	_, _ = bc.Decrement("s", 1)

	reg := &crdt.LWWRegister{}
	reg.Set([]byte("v"), crdt.Stamp{Time: ts(1, 2), Origin: "o"})

	m := &crdt.LWWMap{}
	m.Set("k2", []byte("v"), crdt.Stamp{Time: ts(5, 0), Origin: "o"})
	m.Delete("k1", crdt.Stamp{Time: ts(4, 0), Origin: "o"})
	m.Delete("k0", crdt.Stamp{Time: ts(1, 0), Origin: "o"})
	m.Purge(ts(2, 0))

	sc := &crdt.SerialCounts{}
	sc.Sell("S", "b")
	sc.Sell("S", "a")
	sc.Return("S", "a")

	tests := []struct {
		name string
		v    any
		want string
	}{
		{"Timestamp", ts(1, 2), "ce00010002"},
		{"Stamp", crdt.Stamp{Time: ts(0, 7), Origin: "o"}, "9207a16f"},
		{"PNCounter", pn, "920182a16192a130a3302e35a16292a431322e33a130"},
		{"PNDelta", pn.Row("b"), "9401a162a431322e33a130"},
		{"BoundedCounter", bc, "920181a17393cd012c0181a163ccc8"},
		{"LWWRegister", reg, "9501ce00010002a16f01c40176"},
		{"LWWMap", m, "9301ce0002000082a26b3194ce00040000a16f02c0a26b3294ce00050000a16f01c40176"},
		{"SerialCounts", sc, "920181a15382a161920101a162920100"},
		{"SerialDelta", sc.Row("S", "a"), "9501a153a1610101"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(encode(t, tt.v)); got != tt.want {
			t.Errorf("%s encodes as %s, want %s", tt.name, got, tt.want)
		}
	}
}

// raw builds msgpack bytes by hand, for inputs the encoders never write.
func raw(t *testing.T, f func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodersRejectMalformed(t *testing.T) {
	enc := func(vs ...any) func(e *msgpack.Encoder) error {
		return func(e *msgpack.Encoder) error {
			for _, v := range vs {
				var err error
				switch v := v.(type) {
				case arr:
					err = e.EncodeArrayLen(int(v))
				case mp:
					err = e.EncodeMapLen(int(v))
				default:
					err = e.Encode(v)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
	}
	tests := []struct {
		name string
		into any
		b    []byte
	}{
		{"PNCounter unknown version", &crdt.PNCounter{}, raw(t, enc(arr(2), 2, mp(0)))},
		{"PNCounter keys out of order", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, mp(2), "b", arr(2), "1", "0", "a", arr(2), "1", "0"))},
		{"PNCounter duplicate key", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, mp(2), "a", arr(2), "1", "0", "a", arr(2), "1", "0"))},
		{"PNCounter non-canonical decimal", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(2), "1.50", "0"))},
		{"PNCounter negative", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(2), "-1", "0"))},
		{"PNCounter empty row", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(2), "0", "0"))},
		{"PNCounter nil map", &crdt.PNCounter{}, raw(t, enc(arr(2), 1, nil))},
		{"BoundedCounter spend without rights", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), 0, 5, mp(0)))},
		{"BoundedCounter transfer without rights", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), 1, 0, mp(1), "b", 2))},
		{"BoundedCounter self transfer", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), 5, 0, mp(1), "a", 2))},
		{"BoundedCounter zero transfer", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), 5, 0, mp(1), "b", 0))},
		{"BoundedCounter empty row", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), 0, 0, mp(0)))},
		{"BoundedCounter negative cell", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), -1, 0, mp(0)))},
		{"BoundedCounter cell above MaxAmount", &crdt.BoundedCounter{}, raw(t, enc(arr(2), 1, mp(1), "a", arr(3), uint64(crdt.MaxAmount)+1, 0, mp(0)))},
		{"LWWRegister bad state", &crdt.LWWRegister{}, raw(t, enc(arr(5), 1, 1, "o", 3, nil))},
		{"LWWRegister live without value", &crdt.LWWRegister{}, raw(t, enc(arr(5), 1, 1, "o", 1, nil))},
		{"LWWRegister tombstone with value", &crdt.LWWRegister{}, raw(t, enc(arr(5), 1, 1, "o", 2, []byte("x")))},
		{"LWWMap tombstone below horizon", &crdt.LWWMap{}, raw(t, enc(arr(3), 1, 10, mp(1), "k", arr(4), 5, "o", 2, nil))},
		{"LWWMap unwritten entry", &crdt.LWWMap{}, raw(t, enc(arr(3), 1, 0, mp(1), "k", arr(4), 0, "", 0, nil))},
		{"LWWMap wrong arity", &crdt.LWWMap{}, raw(t, enc(arr(2), 1, 0))},
		{"SerialCounts empty row", &crdt.SerialCounts{}, raw(t, enc(arr(2), 1, mp(1), "S", mp(1), "a", arr(2), 0, 0))},
		{"SerialCounts serial without rows", &crdt.SerialCounts{}, raw(t, enc(arr(2), 1, mp(1), "S", mp(0)))},
	}
	for _, tt := range tests {
		err := msgpack.Unmarshal(tt.b, tt.into)
		if !errors.Is(err, crdt.ErrMalformed) {
			t.Errorf("%s: Unmarshal(%x) error = %v, want ErrMalformed", tt.name, tt.b, err)
		}
	}
}

type (
	arr int
	mp  int
)

// FuzzDecode feeds arbitrary bytes to every decoder. None may panic, and
// whatever one accepts must re-encode to a fixed point and keep its
// invariants.
func FuzzDecode(f *testing.F) {
	pn := &crdt.PNCounter{}
	pn.Add("shop-1", dec("1.5"))
	bc := &crdt.BoundedCounter{}
	_, _ = bc.Increment("s", 10)
	_, _ = bc.Transfer("s", "c", 4)
	m := &crdt.LWWMap{}
	m.Set("k", []byte("v"), st(3, "o"))
	m.Delete("j", st(4, "o"))
	sc := &crdt.SerialCounts{}
	sc.Sell("S", "a")
	for _, v := range []any{pn, bc, m, sc, &crdt.LWWRegister{}} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fresh := range []func() any{
			func() any { return &crdt.PNCounter{} },
			func() any { return &crdt.PNDelta{} },
			func() any { return &crdt.BoundedCounter{} },
			func() any { return &crdt.LWWRegister{} },
			func() any { return &crdt.LWWMap{} },
			func() any { return &crdt.SerialCounts{} },
			func() any { return &crdt.SerialDelta{} },
			func() any { return new(crdt.Stamp) },
		} {
			v := fresh()
			if msgpack.Unmarshal(b, v) != nil {
				continue
			}
			if c, ok := v.(*crdt.BoundedCounter); ok {
				if c.Value() < 0 || len(c.Overdrawn()) > 0 {
					t.Fatalf("decoded a BoundedCounter with Value() = %d, Overdrawn() = %v", c.Value(), c.Overdrawn())
				}
			}
			switch v.(type) {
			case *crdt.BoundedCounter, *crdt.LWWMap, *crdt.SerialCounts:
				if err := crdt.CheckDerived(v); err != nil {
					t.Fatalf("decoded %T: %v", v, err)
				}
			}
			once := encode(t, v)
			w := fresh()
			if err := msgpack.Unmarshal(once, w); err != nil {
				t.Fatalf("%T re-encoding %x does not decode: %v", v, once, err)
			}
			if twice := encode(t, w); !bytes.Equal(once, twice) {
				t.Fatalf("%T encoding is not a fixed point: %x then %x", v, once, twice)
			}
		}
	})
}

// TestDecodersBoundAllocation feeds decoders short inputs whose string and
// bin headers claim hundreds of megabytes. Memory must follow the bytes
// present, not the claimed length (see readBytes in codec.go).
func TestDecodersBoundAllocation(t *testing.T) {
	const claimed = "\xdb\x30\x30\x30\x30"    // str32 of 808 MB
	const claimedBin = "\xc6\x30\x30\x30\x30" // bin32 of 808 MB
	inputs := []struct {
		into func() any
		b    string
	}{
		{func() any { return new(crdt.Stamp) }, "\x92\x01" + claimed + "xy"},
		{func() any { return &crdt.PNCounter{} }, "\x92\x01\x81" + claimed + "xy"},
		{func() any { return &crdt.PNCounter{} }, "\x92\x01\x81\xa1a\x92" + claimed + "xy"},
		{func() any { return &crdt.BoundedCounter{} }, "\x92\x01\x81" + claimed + "xy"},
		{func() any { return &crdt.LWWRegister{} }, "\x95\x01\x01\xa1o\x01" + claimedBin + "xy"},
		{func() any { return &crdt.LWWMap{} }, "\x93\x01\x00\x81" + claimed + "xy"},
		{func() any { return &crdt.SerialCounts{} }, "\x92\x01\x81" + claimed + "xy"},
		{func() any { return &crdt.SerialDelta{} }, "\x95\x01" + claimed + "xy"},
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 5 {
		for _, in := range inputs {
			if err := msgpack.Unmarshal([]byte(in.b), in.into()); err == nil {
				t.Fatalf("Unmarshal(%q) succeeded", in.b)
			}
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("decoding %d forged inputs allocated %d MB, want under 8", 5*len(inputs), got>>20)
	}
}

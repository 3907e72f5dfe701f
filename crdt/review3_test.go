package crdt_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline/crdt"
)

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReview3NegativeTimestampsRefused: a time written as a negative
// integer is not a Timestamp; before, msgpack's DecodeUint64 took -1 for
// 2^64-1 (the largest Timestamp: a register no later write could beat).
func TestReview3NegativeTimestampsRefused(t *testing.T) {
	for _, neg := range []int64{-1, -100, -40000, math.MinInt32, math.MinInt64} {
		cases := map[string]struct {
			b []byte
			v any
		}{
			"Timestamp":      {mustMarshal(t, neg), new(crdt.Timestamp)},
			"Stamp":          {mustMarshal(t, []any{neg, "shop-1"}), new(crdt.Stamp)},
			"LWWRegister":    {mustMarshal(t, []any{1, neg, "shop-1", 1, []byte("v")}), new(crdt.LWWRegister)},
			"LWWMap horizon": {mustMarshal(t, []any{1, neg, map[string]any{}}), new(crdt.LWWMap)},
			"LWWMap entry":   {mustMarshal(t, []any{1, 0, map[string]any{"k": []any{neg, "shop-1", 1, []byte("v")}}}), new(crdt.LWWMap)},
		}
		for what, c := range cases {
			if err := msgpack.Unmarshal(c.b, c.v); !errors.Is(err, crdt.ErrMalformed) {
				t.Errorf("%s with time %d: Unmarshal = %v (decoded %v), want ErrMalformed", what, neg, err, c.v)
			}
		}
	}
}

// longDecimal is 10^-(n-2): "0.00...1", n characters.
func longDecimal(n int) decimal.Decimal { return decimal.New(1, -int32(n-2)) }

// TestReview3PNCounterWritesOnlyWhatDecodes: the decoders read decimals
// of at most 100 characters, so PNCounter.Add and Apply refuse an amount,
// or a row total, whose canonical text is longer, naming it, and leave the
// counter as it was; and the encoders refuse such a value in a PNDelta
// built by hand. Before, Add took them, and the state it wrote could not
// be read back.
func TestReview3PNCounterWritesOnlyWhatDecodes(t *testing.T) {
	var c crdt.PNCounter
	if _, err := c.Add("shop-1", dec("2.5")); err != nil {
		t.Fatal(err)
	}
	before := mustMarshal(t, &c)
	for what, add := range map[string][]decimal.Decimal{
		"amount of 101 characters":          {longDecimal(101)},
		"negative amount of 101 characters": {longDecimal(101).Neg()},
		"amount of a billion digits":        {decimal.New(1, 1_000_000_000)},
		"inc total over 100 characters":     {decimal.New(1, 60), decimal.New(1, -40)},
		"dec total over 100 characters":     {decimal.New(-1, 60), decimal.New(-1, -40)},
		"amount of exactly 100, on a row":   {longDecimal(100)},                      // 2.5 + 0.0..01 is 100 characters too: accepted
		"amount of exactly 100, zero 1e200": {longDecimal(100), decimal.New(0, 200)}, // zero is "0", whatever its exponent
	} {
		t.Run(what, func(t *testing.T) {
			c := new(crdt.PNCounter)
			if err := msgpack.Unmarshal(before, c); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, a := range add {
				if _, err = c.Add("shop-1", a); err != nil {
					break
				}
			}
			b := mustMarshal(t, c)
			var back crdt.PNCounter
			if derr := msgpack.Unmarshal(b, &back); derr != nil {
				t.Fatalf("Add = %v, then the counter does not decode: %v", err, derr)
			}
			if strings.HasPrefix(what, "amount of exactly 100") {
				if err != nil {
					t.Fatalf("Add of a decimal that decodes: %v", err)
				}
				return
			}
			if !errors.Is(err, crdt.ErrInvalidAmount) || !strings.Contains(err.Error(), `"shop-1"`) ||
				!strings.Contains(err.Error(), "100") {
				t.Errorf("Add = %v, want ErrInvalidAmount naming the origin and the limit", err)
			}
			if len(add) == 1 && !bytes.Equal(b, before) {
				t.Errorf("a refused Add changed the counter")
			}
		})
	}

	var a crdt.PNCounter
	for what, d := range map[string]crdt.PNDelta{
		"inc": {Origin: "shop-2", Inc: longDecimal(101)},
		"dec": {Origin: "shop-2", Inc: dec("1"), Dec: longDecimal(120)},
	} {
		if err := a.Apply(d); !errors.Is(err, crdt.ErrInvalidAmount) || !strings.Contains(err.Error(), what) {
			t.Errorf("Apply of a row whose %s is too long = %v, want ErrInvalidAmount naming it", what, err)
		}
		if _, err := msgpack.Marshal(&d); !errors.Is(err, crdt.ErrInvalidAmount) || !strings.Contains(err.Error(), what) {
			t.Errorf("Marshal of a PNDelta whose %s is too long = %v, want ErrInvalidAmount naming it", what, err)
		}
	}
	if len(a.Origins()) != 0 {
		t.Errorf("refused rows applied: %v", a.Origins())
	}
	if _, err := msgpack.Marshal(&crdt.PNDelta{Origin: "shop-2", Inc: dec("-1")}); !errors.Is(err, crdt.ErrInvalidAmount) {
		t.Errorf("Marshal of a PNDelta with a negative inc = %v, want ErrInvalidAmount (the decoder refuses it)", err)
	}
}

package storeline

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

// TestDecimalSumMatchesAdd checks DecimalSum against a chain of
// decimal.Add on random addends, the fast path and its fall back past an
// int64 alike: the ledger stores the sum's MarshalBinary as a balance, so
// its bytes must be the chain's, exponent included, at every step and
// after a copy is continued (the ledger's hot balances).
func TestDecimalSumMatchesAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 8))
	for range 3000 {
		first := randFxDec(rng)
		want := first
		s := SumOf(first)
		for range rng.IntN(12) {
			d := randFxDec(rng)
			want = want.Add(d)
			if rng.IntN(3) == 0 {
				c := s // continue a copy; the original must not move
				c.Add(d)
				s = c
			} else {
				s.Add(d)
			}
			got := s.Decimal()
			if !sameDec(t, got, want) {
				t.Fatalf("sum %s [%d], chain %s [%d]", got, got.Exponent(), want, want.Exponent())
			}
			bin, err := want.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if b := s.AppendBinary([]byte{7}); !bytes.Equal(b[1:], bin) || b[0] != 7 {
				t.Fatalf("AppendBinary of %s [%d] = %x, MarshalBinary %x", want, want.Exponent(), b, bin)
			}
		}
	}
	// A copy taken before further adds keeps its own value.
	a := SumOf(decimal.RequireFromString("1.50"))
	b := a
	b.Add(decimal.RequireFromString("2"))
	if got := a.Decimal().String(); got != "1.5" {
		t.Fatalf("copy changed the original: %s", got)
	}
}

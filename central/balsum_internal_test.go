package central

import (
	"fmt"
	"math"
	"testing"

	"github.com/shopspring/decimal"
)

// balanceSumByDecimal is balanceSum done with decimal alone, as
// applier.flush did it before balanceSum64.
func balanceSumByDecimal(cur, delta decimal.Decimal) (decimal.Decimal, []byte, decimal.Decimal) {
	sum := cur.Add(delta)
	if sum.IsZero() {
		return sum, nil, decimal.Zero
	}
	s := sum.String()
	return sum, []byte(s), decimal.RequireFromString(s)
}

func sameBalanceSum(t *testing.T, cur, delta decimal.Decimal) {
	t.Helper()
	sum, stored, read, ok := balanceSum64(cur, delta)
	if !ok {
		return // balanceSum falls back to decimal
	}
	wsum, wstored, wread := balanceSumByDecimal(cur, delta)
	form := func(d decimal.Decimal) string { return fmt.Sprintf("%s e%d", d.String(), d.Exponent()) }
	if form(sum) != form(wsum) || string(stored) != string(wstored) || (stored == nil) != (wstored == nil) || form(read) != form(wread) {
		t.Fatalf("%s + %s: int64s give %s %q %s, decimal %s %q %s", form(cur), form(delta),
			form(sum), stored, form(read), form(wsum), wstored, form(wread))
	}
}

// TestBalanceSum64: the int64 path gives what decimal gives (the sum's
// value and exponent, the stored string, the value a read parses) over
// signs, exponents on both sides of 0, trailing zeros, sums that cancel,
// the zero Decimal and the edges of int64.
func TestBalanceSum64(t *testing.T) {
	coefs := []int64{0, 1, -1, 5, -5, 10, -10, 150, -150, 1000, 1050, -1050, 7, 999, -999, 123456789,
		999999999999999999, -999999999999999999, 100000000000000000, math.MaxInt64 / 10}
	var ds []decimal.Decimal
	for _, c := range coefs {
		for e := int32(-8); e <= 4; e++ {
			ds = append(ds, decimal.New(c, e))
		}
	}
	ds = append(ds, decimal.Decimal{}, decimal.RequireFromString("12345678901234567890.5"), decimal.New(1, 18), decimal.New(-1, -19))
	fast := 0
	for _, a := range ds {
		for _, b := range ds {
			sameBalanceSum(t, a, b)
			sameBalanceSum(t, a, a.Neg())
			if _, _, _, ok := balanceSum64(a, b); ok {
				fast++
			}
		}
	}
	if fast < len(ds)*len(ds)/2 {
		t.Fatalf("only %d of %d sums on int64s", fast, len(ds)*len(ds))
	}
}

func FuzzBalanceSum64(f *testing.F) {
	f.Add(int64(150), int32(-2), int64(-5), int32(-1))
	f.Add(int64(-3), int32(2), int64(7), int32(-4))
	f.Fuzz(func(t *testing.T, c1 int64, e1 int32, c2 int64, e2 int32) {
		e1, e2 = e1%24, e2%24
		sameBalanceSum(t, decimal.New(c1, e1), decimal.New(c2, e2))
	})
}

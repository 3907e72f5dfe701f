package central

import (
	"strconv"

	"github.com/shopspring/decimal"
)

// balanceSum is what applier.flush makes of a balance cur moved by delta:
// sum is cur.Add(delta) (value and exponent), stored is sum.String() (nil
// when the sum is zero: the balance is deleted), and read is what
// decimal.NewFromString gives of stored (decimal.Zero when nil), the value
// a later read of the balance parses. Done with decimal, that is three
// big.Int operations, a string and a parse per balance a push moves; on
// int64s (balanceSum64) when the figures fit.
func balanceSum(cur, delta decimal.Decimal) (sum decimal.Decimal, stored []byte, read decimal.Decimal, err error) {
	if !slowBooks.Load() { // slowBooks: the general path tests compare with
		if sum, stored, read, ok := balanceSum64(cur, delta); ok {
			return sum, stored, read, nil
		}
	}
	sum = cur.Add(delta)
	if sum.IsZero() {
		return sum, nil, decimal.Zero, nil
	}
	s := sum.String()
	if read, err = decimal.NewFromString(s); err != nil {
		return sum, nil, read, err
	}
	return sum, []byte(s), read, nil
}

// balanceSum64 is balanceSum on int64s, each step mirroring decimal's:
// Add takes the smaller exponent; String (with the package's default
// settings) writes the sum without its fraction's trailing zeros, an
// exponent above 0 as that many zeros; parsing that string gives the
// digits written at the exponent of the last one. ok is false when a
// coefficient has more than 18 digits, a step would overflow, or
// decimal's string settings are not its defaults.
func balanceSum64(cur, delta decimal.Decimal) (sum decimal.Decimal, stored []byte, read decimal.Decimal, ok bool) {
	if !decimal.TrimTrailingZeros || decimal.UseScientificNotation || cur.NumDigits() > 18 || delta.NumDigits() > 18 {
		return sum, nil, read, false
	}
	c1, e1 := cur.CoefficientInt64(), cur.Exponent()
	c2, e2 := delta.CoefficientInt64(), delta.Exponent()
	e := min(e1, e2)
	if c1, ok = scale64(c1, e1-e); !ok {
		return sum, nil, read, false
	}
	if c2, ok = scale64(c2, e2-e); !ok {
		return sum, nil, read, false
	}
	c := c1 + c2
	if (c2 > 0 && c < c1) || (c2 < 0 && c > c1) {
		return sum, nil, read, false
	}
	sum = decimal.New(c, e)
	if c == 0 {
		return sum, nil, decimal.Zero, true
	}
	// The string's digits: trailing zeros of the fraction dropped, an
	// exponent above 0 written out.
	e0 := e
	if e > 0 {
		if c, ok = scale64(c, e); !ok {
			return sum, nil, read, false
		}
		e = 0
	}
	for e < 0 && c%10 == 0 {
		c /= 10
		e++
	}
	if read = sum; e != e0 {
		// Decimals are never changed in place: read may share sum's
		// value when it is sum, exponent included.
		read = decimal.New(c, e)
	}
	if e == 0 {
		return sum, strconv.AppendInt(make([]byte, 0, 20), c, 10), read, true
	}
	var buf [24]byte
	u := uint64(c)
	if c < 0 {
		u = -u
	}
	digits := strconv.AppendUint(buf[:0], u, 10)
	frac := int(-e)
	out := make([]byte, 0, len(digits)+frac+3)
	if c < 0 {
		out = append(out, '-')
	}
	if len(digits) > frac {
		out = append(out, digits[:len(digits)-frac]...)
		out = append(out, '.')
		out = append(out, digits[len(digits)-frac:]...)
	} else {
		out = append(out, '0', '.')
		for range frac - len(digits) {
			out = append(out, '0')
		}
		out = append(out, digits...)
	}
	return sum, out, read, true
}

// pow10s holds 10^0 … 10^18, the powers that fit an int64.
var pow10s = func() (t [19]int64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// scale64 is c × 10^n (n ≥ 0), false on overflow.
func scale64(c int64, n int32) (int64, bool) {
	if n == 0 || c == 0 {
		return c, true
	}
	if n >= int32(len(pow10s)) {
		return 0, false
	}
	p := pow10s[n]
	r := c * p
	if r/p != c {
		return 0, false
	}
	return r, true
}

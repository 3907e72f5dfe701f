package storeline

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync/atomic"

	"github.com/shopspring/decimal"
)

// fx is a decimal whose coefficient fits an int64: c × 10^e. The receipt
// arithmetic runs on it because every decimal.Decimal operation allocates
// big.Ints, and a till's figures fit an int64 many times over.
//
// Every fx operation mirrors its decimal.Decimal counterpart exactly,
// exponent included (the exponent is part of the stored bytes: 1.50 and
// 1.5 encode differently), and reports false instead of overflowing; the
// callers then fall back to decimal.Decimal. fastdec_test.go checks both
// against each other.
type fx struct {
	c int64
	e int32
}

// fxPow10 holds 10^0 … 10^18, the powers that fit an int64.
var fxPow10 = func() (t [19]int64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// toFx returns d as an fx when its coefficient has at most 18 digits.
// NumDigits and CoefficientInt64 read the coefficient without copying it.
func toFx(d decimal.Decimal) (fx, bool) {
	if d.NumDigits() > 18 {
		return fx{}, false
	}
	return fx{d.CoefficientInt64(), d.Exponent()}, true
}

// dec returns x as a decimal with x's exponent.
func (x fx) dec() decimal.Decimal {
	if x.c == 0 && x.e >= -zeroExpMax && x.e <= zeroExpMax {
		return zeroDecs[x.e+zeroExpMax]
	}
	if x.c >= -smallMax && x.c <= smallMax && x.e >= -smallExpMax && x.e <= 0 {
		slot := &smallDecs[-x.e][x.c+smallMax]
		if d := slot.Load(); d != nil {
			return *d
		}
		d := decimal.New(x.c, x.e)
		slot.Store(&d)
		return d
	}
	return decimal.New(x.c, x.e)
}

// smallDecs holds, filled as they are first made, the decimals with a
// coefficient within ±smallMax at exponents 0 … −smallExpMax: the
// quantities, rates and most amounts of a till's receipt (1, 1.000, 4.69,
// 10), of which a 5-line receipt makes about fifty. decimal.New allocates
// a big.Int each time; sharing one is safe for the reason zeroDecs is. Two
// goroutines filling a slot at once store equal values: either will do.
const (
	smallMax    = 1 << 12
	smallExpMax = 4
)

var smallDecs [smallExpMax + 1][2*smallMax + 1]atomic.Pointer[decimal.Decimal]

// zeroDecs are zeros at exponents −zeroExpMax … zeroExpMax: a receipt has
// many (no discount, 0.00; no change), and decimal.New allocates. Sharing
// them is safe because decimal never changes a value's coefficient in
// place (decimal.Round itself returns its receiver).
const zeroExpMax = 8

var zeroDecs = func() (t [2*zeroExpMax + 1]decimal.Decimal) {
	for i := range t {
		t[i] = decimal.New(0, int32(i-zeroExpMax))
	}
	return t
}()

func (x fx) sign() int {
	switch {
	case x.c > 0:
		return 1
	case x.c < 0:
		return -1
	}
	return 0
}

// mul64 returns a×b unless it overflows.
func mul64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a == math.MinInt64 || b == math.MinInt64 {
		return 0, false
	}
	ua, ub := uint64(a), uint64(b)
	neg := false
	if a < 0 {
		ua, neg = uint64(-a), !neg
	}
	if b < 0 {
		ub, neg = uint64(-b), !neg
	}
	hi, lo := bits.Mul64(ua, ub)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(lo), true
	}
	return int64(lo), true
}

func add64(a, b int64) (int64, bool) {
	s := a + b
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, false
	}
	return s, true
}

// scaleTo returns x's coefficient at exponent e ≤ x.e.
func (x fx) scaleTo(e int32) (int64, bool) {
	d := int64(x.e) - int64(e)
	if d == 0 {
		return x.c, true
	}
	if d < 0 || d >= int64(len(fxPow10)) {
		return 0, false
	}
	return mul64(x.c, fxPow10[d])
}

// add is decimal.Add: the result takes the smaller exponent.
func (x fx) add(y fx) (fx, bool) {
	e := min(x.e, y.e)
	a, ok1 := x.scaleTo(e)
	b, ok2 := y.scaleTo(e)
	if !ok1 || !ok2 {
		return fx{}, false
	}
	s, ok := add64(a, b)
	return fx{s, e}, ok
}

// sub is decimal.Sub.
func (x fx) sub(y fx) (fx, bool) {
	if y.c == math.MinInt64 {
		return fx{}, false
	}
	return x.add(fx{-y.c, y.e})
}

// neg is decimal.Neg.
func (x fx) neg() fx { return fx{-x.c, x.e} } // |c| < 10^18: no overflow

// mul is decimal.Mul: exponents add.
func (x fx) mul(y fx) (fx, bool) {
	e := int64(x.e) + int64(y.e)
	if e > math.MaxInt32 || e < math.MinInt32 {
		return fx{}, false
	}
	c, ok := mul64(x.c, y.c)
	return fx{c, int32(e)}, ok
}

// cmp is decimal.Cmp.
func (x fx) cmp(y fx) (int, bool) {
	if x.e == y.e {
		return cmp64(x.c, y.c), true
	}
	if s, s2 := x.sign(), y.sign(); s != s2 {
		return cmp64(int64(s), int64(s2)), true
	} else if s == 0 {
		return 0, true
	}
	e := min(x.e, y.e)
	a, ok1 := x.scaleTo(e)
	b, ok2 := y.scaleTo(e)
	if !ok1 || !ok2 {
		return 0, false
	}
	return cmp64(a, b), true
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// round is decimal.Round: half away from zero to places, by truncating
// to places+1 digits first, exactly as decimal does.
func (x fx) round(places int32) (fx, bool) {
	if int64(x.e) == -int64(places) {
		return x, true
	}
	if places == math.MaxInt32 || places == math.MinInt32 {
		return fx{}, false
	}
	t := -places - 1
	var v int64
	if x.e > t {
		var ok bool
		if v, ok = x.scaleTo(t); !ok {
			return fx{}, false
		}
	} else {
		// decimal's rescale truncates toward zero (big.Int.Quo); so does /.
		if d := int64(t) - int64(x.e); d < int64(len(fxPow10)) {
			v = x.c / fxPow10[d]
		} // else |c| < 10^18 ≤ 10^d: v stays 0
	}
	if v > math.MaxInt64-5 || v < math.MinInt64+5 {
		return fx{}, false
	}
	if v < 0 {
		v -= 5
	} else {
		v += 5
	}
	return fx{v / 10, t + 1}, true
}

// divRound is decimal.DivRound: x/y rounded half away from zero to
// precision places, with decimal's own scaling of either operand.
func (x fx) divRound(y fx, precision int32) (fx, bool) {
	if y.c == 0 || precision == math.MinInt32 {
		return fx{}, false
	}
	scale := -precision
	e := int64(x.e) - int64(y.e) - int64(scale)
	var a, b int64
	var ok bool
	if e < 0 {
		if -e >= int64(len(fxPow10)) {
			return fx{}, false
		}
		a = x.c
		b, ok = mul64(y.c, fxPow10[-e])
	} else {
		if e >= int64(len(fxPow10)) {
			return fx{}, false
		}
		a, ok = mul64(x.c, fxPow10[e])
		b = y.c
	}
	if !ok || b == math.MinInt64 {
		return fx{}, false
	}
	q, r := a/b, a%b
	ar, ab := uint64(r), uint64(b)
	if r < 0 {
		ar = uint64(-r)
	}
	if b < 0 {
		ab = uint64(-b)
	}
	if 2*ar >= ab { // ar < ab < 2^63: 2*ar does not wrap
		if x.sign()*y.sign() < 0 {
			q--
		} else {
			q++
		}
	}
	return fx{q, scale}, true
}

// appendMsgpackDecimal appends d as msgpack encodes a decimal.Decimal by
// reflection: bin of d.MarshalBinary() (see appendFxBinary).
func appendMsgpackDecimal(b []byte, d decimal.Decimal) []byte {
	x, ok := toFx(d)
	if !ok {
		bin, err := d.MarshalBinary()
		if err != nil { // big.Int.GobEncode fails only on a nil Int, which decimal never passes
			panic(err)
		}
		return appendMsgpackBin(b, bin)
	}
	b = append(b, mpBin8, byte(fxBinaryLen(x)))
	return appendFxBinary(b, x)
}

// fxBinaryLen is the length of x.dec().MarshalBinary(): at most 13.
func fxBinaryLen(x fx) int {
	u := uint64(x.c)
	if x.c < 0 {
		u = uint64(-x.c)
	}
	return 5 + (bits.Len64(u)+7)/8
}

// appendFxBinary appends x.dec().MarshalBinary(): the exponent as a
// big-endian int32, then big.Int.GobEncode of the coefficient (a version
// byte with the sign in its low bit, then the magnitude big-endian with
// no leading zeros; zero has no magnitude bytes).
func appendFxBinary(b []byte, x fx) []byte {
	u := uint64(x.c)
	v := byte(gobIntVersion << 1)
	if x.c < 0 {
		v |= 1
		u = uint64(-x.c)
	}
	n := (bits.Len64(u) + 7) / 8
	b = binary.BigEndian.AppendUint32(b, uint32(x.e))
	b = append(b, v)
	for ; n > 0; n-- {
		b = append(b, byte(u>>(8*(n-1))))
	}
	return b
}

// AppendMsgpackDecimal appends d as msgpack encodes a decimal.Decimal by
// reflection (bin of d.MarshalBinary()), without allocating while d's
// coefficient fits an int64: the ledger encodes every posting's amount
// this way.
func AppendMsgpackDecimal(b []byte, d decimal.Decimal) []byte { return appendMsgpackDecimal(b, d) }

// DecimalSum is a running sum of decimals equal, exponent included, to
// adding them one by one with decimal.Add, kept on int64s while it fits:
// every decimal.Add allocates, and the ledger adds each posting to a
// balance. The zero DecimalSum is empty; copies are independent.
type DecimalSum struct{ s amountSum }

// SumOf returns the sum holding d alone.
func SumOf(d decimal.Decimal) DecimalSum { return DecimalSum{newAmountSum(d)} }

// Add adds d.
func (s *DecimalSum) Add(d decimal.Decimal) { s.s.add(d) }

// Decimal returns the sum (decimal.Zero's zero value when empty).
func (s *DecimalSum) Decimal() decimal.Decimal { return s.s.sum() }

// AppendBinary appends s.Decimal().MarshalBinary().
func (s *DecimalSum) AppendBinary(b []byte) []byte {
	if s.s.fast {
		return appendFxBinary(b, s.s.x)
	}
	if x, ok := toFx(s.s.d); ok { // a lone addend, held as it came
		return appendFxBinary(b, x)
	}
	bin, err := s.s.d.MarshalBinary()
	if err != nil { // big.Int.GobEncode fails only on a nil Int, which decimal never passes
		panic(err)
	}
	return append(b, bin...)
}

// gobIntVersion is math/big's gob encoding version of an Int.
const gobIntVersion = 1

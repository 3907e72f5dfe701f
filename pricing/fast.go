package pricing

import (
	"sync"

	"github.com/shopspring/decimal"
)

// Pricing a basket is mostly converting between decimals and integers;
// shopspring/decimal allocates a big.Int for nearly every operation, and
// allocation was half the engine's time (BENCHMARKS.md, "pricing"). The
// helpers here do the common cases without allocating and give exactly
// the values the general path gives; anything unusual takes the general
// path.

// smallDecs is how many values per exponent decimalOf serves from a
// table: money below 163.84 at 2 places, quantities below 16.384 at 3.
const smallDecs = 1 << 14

// decTables holds, per exponent 0 to −4, the decimals 0 … smallDecs−1 at
// that exponent, built on first use. Decimals are immutable (no method
// changes the big.Int inside), so results may share them.
var decTables [5]struct {
	once sync.Once
	decs []decimal.Decimal
}

// decimalOf returns decimal.New(v, exp) for exp in [−4, 0], from a table
// when v is small.
func decimalOf(v int64, exp int32) decimal.Decimal {
	if v < 0 || v >= smallDecs || exp > 0 || exp < -4 {
		return decimal.New(v, exp)
	}
	t := &decTables[-exp]
	t.once.Do(func() {
		t.decs = make([]decimal.Decimal, smallDecs)
		for i := range t.decs {
			t.decs[i] = decimal.New(int64(i), exp)
		}
	})
	return t.decs[v]
}

// exactScaled returns d × 10^places as an int64 when that is an integer
// d holds exactly and its magnitude is below 10^17; ok is false
// otherwise (more places than asked, or too large), and the caller takes
// the general path.
func exactScaled(d decimal.Decimal, places int32) (int64, bool) {
	if d.NumDigits() > 17 {
		return 0, false
	}
	c, shift := d.CoefficientInt64(), d.Exponent()+places
	switch {
	case shift >= 0:
		if shift > 17 {
			return 0, c == 0
		}
		p := pow10Int[shift]
		if c > maxExact/p || c < -maxExact/p {
			return 0, false
		}
		return c * p, true
	case shift >= -17:
		p := pow10Int[-shift]
		if c%p != 0 {
			return 0, false
		}
		return c / p, true
	}
	return 0, c == 0
}

const maxExact = 100_000_000_000_000_000 // 10^17

var pow10Int = func() (t [18]int64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// ruleNames caches the strings LineResult.Rule is built of, so a line's
// rule costs no allocation once its parts have been seen. It grows with
// the distinct (list, policy) pairs met, which the master data bounds.
var ruleNames sync.Map // [3]string → string

// joinRule returns a + sep + b, cached.
func joinRule(a, sep, b string) string {
	k := [3]string{a, sep, b}
	if s, ok := ruleNames.Load(k); ok {
		return s.(string)
	}
	s, _ := ruleNames.LoadOrStore(k, a+sep+b)
	return s.(string)
}

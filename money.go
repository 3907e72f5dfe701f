package storeline

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// Currency is an ISO 4217 code, such as "EUR".
type Currency string

// Valid reports whether c looks like an ISO 4217 code (three capitals).
func (c Currency) Valid() bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Scale is the number of decimal places of the currency's minor unit: 2
// but for the currencies listed. A switch, not a map: receipt arithmetic
// asks several times per line, and a map lookup hashed the code each time.
func (c Currency) Scale() int32 {
	switch c {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
		"PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// Round rounds d to the currency's scale, half away from zero, and leaves it
// with exactly that exponent, so equal amounts have equal encodings.
func (c Currency) Round(d decimal.Decimal) decimal.Decimal {
	return roundDec(d, c.Scale())
}

// roundDec is d.Round(places), on int64s where d fits one.
func roundDec(d decimal.Decimal, places int32) decimal.Decimal {
	if d.Exponent() == -places {
		return d // as decimal.Round does
	}
	if x, ok := toFx(d); ok {
		if r, ok := x.round(places); ok {
			return r.dec()
		}
	}
	return d.Round(places)
}

// normScale returns d.Round(places) and whether that equals d.
func normScale(d decimal.Decimal, places int32) (decimal.Decimal, bool) {
	if x, ok := toFx(d); ok {
		if r, ok := x.round(places); ok {
			if c, ok := r.cmp(x); ok {
				if r.e == x.e {
					return d, c == 0 // round returned x itself, as decimal.Round returns d
				}
				return r.dec(), c == 0
			}
		}
	}
	r := d.Round(places)
	return r, r.Equal(d)
}

// Amount checks that d needs no more places than the currency has and
// returns it normalised. field names d in errors.
func (c Currency) Amount(field string, d decimal.Decimal) (decimal.Decimal, error) {
	r, exact := normScale(d, c.Scale())
	if !exact {
		return d, Invalidf(field, "%s has more than %d decimal places for %s", d, c.Scale(), c)
	}
	return r, nil
}

// Money is an amount in a currency.
type Money struct {
	Amount   decimal.Decimal
	Currency Currency
}

func (m Money) String() string {
	return m.Amount.StringFixed(m.Currency.Scale()) + " " + string(m.Currency)
}

// QtyScale is the number of decimal places a quantity may have: grams of a
// kilogram, millilitres of a litre.
const QtyScale = 3

// RateScale is the number of decimal places of a VAT rate in percent.
const RateScale = 2

// NormQty checks a quantity in base units and returns it normalised to
// QtyScale. Zero and negative quantities are refused: direction is carried
// by the event kind, never by the sign.
func NormQty(field string, q decimal.Decimal, unit Unit) (decimal.Decimal, error) {
	if !q.IsPositive() {
		return q, Invalidf(field, "quantity %s must be positive", q)
	}
	r, exact := normScale(q, QtyScale)
	if !exact {
		return q, Invalidf(field, "quantity %s has more than %d decimal places", q, QtyScale)
	}
	if !unit.Fractional() && !q.IsInteger() {
		return q, Invalidf(field, "quantity %s of a %s item must be whole", q, unit)
	}
	return r, nil
}

// NormRate checks a VAT rate in percent and returns it normalised.
func NormRate(field string, r decimal.Decimal) (decimal.Decimal, error) {
	if r.IsNegative() || decCmp(r, hundred) >= 0 {
		return r, Invalidf(field, "VAT rate %s%% out of range [0, 100)", r)
	}
	n, exact := normScale(r, RateScale)
	if !exact {
		return r, Invalidf(field, "VAT rate %s has more than %d decimal places", r, RateScale)
	}
	return n, nil
}

// VATIncluded returns the VAT contained in a VAT-inclusive amount:
// round(total × rate / (100 + rate)) in the currency's scale.
func VATIncluded(c Currency, total, rate decimal.Decimal) decimal.Decimal {
	if rate.IsZero() {
		return c.Round(decimal.Zero)
	}
	scale := c.Scale()
	if t, ok := toFx(total); ok {
		if r, ok := toFx(rate); ok {
			if v, ok := vatIncludedFx(t, r, scale); ok {
				return v.dec()
			}
		}
	}
	return c.Round(total.Mul(rate).DivRound(hundred.Add(rate), scale+8))
}

// vatIncludedFx is VATIncluded's arithmetic, step for step, on int64s.
func vatIncludedFx(total, rate fx, scale int32) (fx, bool) {
	num, ok := total.mul(rate)
	if !ok {
		return fx{}, false
	}
	den, ok := fx{100, 0}.add(rate)
	if !ok || den.c == 0 {
		return fx{}, false
	}
	q, ok := num.divRound(den, scale+8)
	if !ok {
		return fx{}, false
	}
	return q.round(scale)
}

var hundred = decimal.NewFromInt(100)

// decCmp is a.Cmp(b), without big.Int arithmetic where both fit an int64.
func decCmp(a, b decimal.Decimal) int {
	if x, ok := toFx(a); ok {
		if y, ok := toFx(b); ok {
			if c, ok := x.cmp(y); ok {
				return c
			}
		}
	}
	return a.Cmp(b)
}

// Unit is an item's base unit of measure.
type Unit string

// The base units.
const (
	Piece Unit = "pcs"
	Kg    Unit = "kg"
	Litre Unit = "l"
	Metre Unit = "m"
)

// Valid reports whether u is a known unit.
func (u Unit) Valid() bool {
	switch u {
	case Piece, Kg, Litre, Metre:
		return true
	}
	return false
}

// Fractional reports whether a quantity in u may have decimal places:
// only in the measured units; a piece, or a unit this build does not know,
// is counted whole.
func (u Unit) Fractional() bool { return u == Kg || u == Litre || u == Metre }

func (u Unit) String() string { return string(u) }

// mustDec parses a decimal literal; for tables of constants only.
func mustDec(s string) decimal.Decimal {
	d, err := decimal.NewFromString(s)
	if err != nil {
		panic(fmt.Sprintf("storeline: bad decimal literal %q", s))
	}
	return d
}

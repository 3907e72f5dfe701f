package storeline

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// Currency is an ISO 4217 code, such as "EUR".
type Currency string

// minorUnits lists the currencies whose scale is not 2.
var minorUnits = map[Currency]int32{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

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

// Scale is the number of decimal places of the currency's minor unit.
func (c Currency) Scale() int32 {
	if s, ok := minorUnits[c]; ok {
		return s
	}
	return 2
}

// Round rounds d to the currency's scale, half away from zero, and leaves it
// with exactly that exponent, so equal amounts have equal encodings.
func (c Currency) Round(d decimal.Decimal) decimal.Decimal {
	return d.Round(c.Scale())
}

// Amount checks that d needs no more places than the currency has and
// returns it normalised. field names d in errors.
func (c Currency) Amount(field string, d decimal.Decimal) (decimal.Decimal, error) {
	r := c.Round(d)
	if !r.Equal(d) {
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
	r := q.Round(QtyScale)
	if !r.Equal(q) {
		return q, Invalidf(field, "quantity %s has more than %d decimal places", q, QtyScale)
	}
	if !unit.Fractional() && !q.IsInteger() {
		return q, Invalidf(field, "quantity %s of a %s item must be whole", q, unit)
	}
	return r, nil
}

// NormRate checks a VAT rate in percent and returns it normalised.
func NormRate(field string, r decimal.Decimal) (decimal.Decimal, error) {
	if r.IsNegative() || r.GreaterThanOrEqual(decimal.NewFromInt(100)) {
		return r, Invalidf(field, "VAT rate %s%% out of range [0, 100)", r)
	}
	n := r.Round(RateScale)
	if !n.Equal(r) {
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
	hundred := decimal.NewFromInt(100)
	return c.Round(total.Mul(rate).DivRound(hundred.Add(rate), c.Scale()+8))
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

// Fractional reports whether a quantity in u may have decimal places.
func (u Unit) Fractional() bool { return u != Piece && u != "" }

func (u Unit) String() string { return string(u) }

// mustDec parses a decimal literal; for tables of constants only.
func mustDec(s string) decimal.Decimal {
	d, err := decimal.NewFromString(s)
	if err != nil {
		panic(fmt.Sprintf("storeline: bad decimal literal %q", s))
	}
	return d
}

package crdt

import (
	"fmt"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"
)

// PNCounter is a counter of decimal amounts that every origin may add to or
// subtract from, for quantities that may go negative, such as a shop's stock.
// Each origin owns one row, its cumulative increments and cumulative
// decrements, both non-decreasing; only that origin writes it. Merging takes
// the per-origin maximum of each, so merge is commutative, associative and
// idempotent, and a row seen twice counts once.
//
// The zero PNCounter is empty and ready to use. A PNCounter is not safe for
// concurrent use.
type PNCounter struct {
	rows map[string]PNDelta
}

// PNDelta is one origin's row: the totals of everything it has added (Inc)
// and subtracted (Dec), both non-negative. It is what Add returns, what a
// replica ships, and what Apply takes; applying it is idempotent, and an old
// row arriving after a newer one changes nothing.
type PNDelta struct {
	Origin string
	Inc    decimal.Decimal
	Dec    decimal.Decimal
}

// Add adds amount (subtracts if negative) to origin's row and returns the
// row, to ship to other replicas. Only origin itself may call Add for
// origin: a row written at two places would lose updates in the merge. A
// zero amount changes nothing and returns the current row.
//
// An amount, or a row total it would make, that the encoding cannot hold
// (a canonical text over 100 characters) is refused with an error wrapping
// ErrInvalidAmount, and the row is left as it was.
func (c *PNCounter) Add(origin string, amount decimal.Decimal) (PNDelta, error) {
	r := c.rows[origin]
	r.Origin = origin
	if err := checkDecimal("amount", amount.Abs()); err != nil {
		return r, fmt.Errorf("crdt: PNCounter add at %q: %w", origin, err)
	}
	switch amount.Sign() {
	case 0:
		return r, nil
	case 1:
		r.Inc = r.Inc.Add(amount)
		if err := checkDecimal("inc total", r.Inc); err != nil {
			return c.Row(origin), fmt.Errorf("crdt: PNCounter add at %q: %w", origin, err)
		}
	case -1:
		r.Dec = r.Dec.Sub(amount)
		if err := checkDecimal("dec total", r.Dec); err != nil {
			return c.Row(origin), fmt.Errorf("crdt: PNCounter add at %q: %w", origin, err)
		}
	}
	if c.rows == nil {
		c.rows = make(map[string]PNDelta)
	}
	c.rows[origin] = r
	return r, nil
}

// Apply merges one origin's row: each of Inc and Dec becomes the larger of
// the local and the delta's value. Negative values in d are ignored (they
// cannot come from Add). A delta holding a value the encoding cannot hold
// (see Add) is refused whole with an error wrapping ErrInvalidAmount.
func (c *PNCounter) Apply(d PNDelta) error {
	for _, v := range []struct {
		what string
		d    decimal.Decimal
	}{{"inc", d.Inc}, {"dec", d.Dec}} {
		if !v.d.IsNegative() {
			if err := checkDecimal(v.what, v.d); err != nil {
				return fmt.Errorf("crdt: PNCounter apply of %q's row: %w", d.Origin, err)
			}
		}
	}
	c.apply(d)
	return nil
}

// apply is Apply of a row known to encode (one of another counter's).
func (c *PNCounter) apply(d PNDelta) {
	r, ok := c.rows[d.Origin]
	changed := false
	if d.Inc.Cmp(r.Inc) > 0 {
		r.Inc, changed = d.Inc, true
	}
	if d.Dec.Cmp(r.Dec) > 0 {
		r.Dec, changed = d.Dec, true
	}
	if !changed {
		return
	}
	if !ok {
		r.Origin = d.Origin
		if c.rows == nil {
			c.rows = make(map[string]PNDelta)
		}
	}
	c.rows[d.Origin] = r
}

// Merge merges every row of other into c.
func (c *PNCounter) Merge(other *PNCounter) {
	for _, r := range other.rows {
		c.apply(r)
	}
}

// Value is the sum of all increments less the sum of all decrements.
func (c *PNCounter) Value() decimal.Decimal {
	inc, dec := decimal.Zero, decimal.Zero
	for _, r := range c.rows {
		inc = inc.Add(r.Inc)
		dec = dec.Add(r.Dec)
	}
	return inc.Sub(dec)
}

// Contribution is origin's increments less its decrements.
func (c *PNCounter) Contribution(origin string) decimal.Decimal {
	r := c.rows[origin]
	return r.Inc.Sub(r.Dec)
}

// Row returns origin's row, zero if it has none.
func (c *PNCounter) Row(origin string) PNDelta {
	r := c.rows[origin]
	r.Origin = origin
	return r
}

// Origins returns the origins that have a row, in ascending order.
func (c *PNCounter) Origins() []string { return sortedKeys(c.rows) }

// Clone returns an independent copy of c.
func (c *PNCounter) Clone() *PNCounter {
	n := &PNCounter{}
	n.Merge(c)
	return n
}

// EncodeMsgpack writes [version, {origin: [inc, dec]}] with origins sorted and
// decimals canonical.
func (c PNCounter) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 2); err != nil {
		return err
	}
	if err := e.EncodeMapLen(len(c.rows)); err != nil {
		return err
	}
	for _, o := range sortedKeys(c.rows) {
		r := c.rows[o]
		if err := e.EncodeString(o); err != nil {
			return err
		}
		if err := e.EncodeArrayLen(2); err != nil {
			return err
		}
		if err := encodeDecimal(e, "inc", r.Inc); err != nil {
			return fmt.Errorf("crdt: encode PNCounter row %q: %w", o, err)
		}
		if err := encodeDecimal(e, "dec", r.Dec); err != nil {
			return fmt.Errorf("crdt: encode PNCounter row %q: %w", o, err)
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes, replacing c's contents.
func (c *PNCounter) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "PNCounter", 2); err != nil {
		return err
	}
	rows := make(map[string]PNDelta)
	err := decodeSortedMap(d, "PNCounter rows", func(o string) error {
		if err := decodeArrayLen(d, "PNCounter row", 2); err != nil {
			return err
		}
		inc, err := decodeDecimal(d, "PNCounter inc")
		if err != nil {
			return err
		}
		dec, err := decodeDecimal(d, "PNCounter dec")
		if err != nil {
			return err
		}
		if inc.IsZero() && dec.IsZero() {
			return malformed("PNCounter: empty row for %q", o)
		}
		rows[o] = PNDelta{Origin: o, Inc: inc, Dec: dec}
		return nil
	})
	if err != nil {
		return err
	}
	c.rows = rows
	return nil
}

// EncodeMsgpack writes [version, origin, inc, dec].
func (r PNDelta) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 4); err != nil {
		return err
	}
	if err := e.EncodeString(r.Origin); err != nil {
		return err
	}
	if err := encodeDecimal(e, "inc", r.Inc); err != nil {
		return fmt.Errorf("crdt: encode PNDelta of %q: %w", r.Origin, err)
	}
	if err := encodeDecimal(e, "dec", r.Dec); err != nil {
		return fmt.Errorf("crdt: encode PNDelta of %q: %w", r.Origin, err)
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (r *PNDelta) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "PNDelta", 4); err != nil {
		return err
	}
	o, err := readString(d, "PNDelta origin")
	if err != nil {
		return err
	}
	inc, err := decodeDecimal(d, "PNDelta inc")
	if err != nil {
		return err
	}
	dec, err := decodeDecimal(d, "PNDelta dec")
	if err != nil {
		return err
	}
	*r = PNDelta{Origin: o, Inc: inc, Dec: dec}
	return nil
}

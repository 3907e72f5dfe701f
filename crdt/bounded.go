package crdt

import (
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxAmount bounds every integer cell of a BoundedCounter (an origin's
// cumulative increments, decrements, or transfers to one other origin) and
// of SerialCounts. At 2^40 (about 1.1e12) it is far beyond any loyalty
// balance, and it keeps every sum the counters form within int64 for up to
// 2^22 origins, so no read can overflow.
const MaxAmount = 1 << 40

// BoundedCounter is a counter whose value never goes below zero without any
// coordination at the time of a decrement: an escrow counter in integer base
// units, as AntidoteDB's counter_b and Balegas et al. (SRDS 2015). Loyalty
// points use it.
//
// Value is split into rights held by origins. An increment at an origin gives
// that origin rights; an origin may decrement only up to the rights it holds,
// and may transfer rights to another origin. Points earned at a shop are
// therefore spendable there at once, even offline; central brokers rights to
// other shops, and shops hand rights back, by transfers.
//
// The state is a matrix in which origin i alone writes row i: its cumulative
// increments inc[i], decrements dec[i] and transfers out[i][j]. Then
//
//	Value()   = Σ inc[i] − Σ dec[i]
//	Rights(i) = inc[i] + Σ_j out[j][i] − Σ_j out[i][j] − dec[i]
//
// and merge is the cell-wise maximum. Every cell only grows and has one
// writer, so merge loses nothing and is commutative, associative and
// idempotent.
//
// Invariant: in every state this package produces, Rights(i) >= 0 for every
// origin, hence Value() >= 0. An origin checks its rights before it spends,
// and a spend is shipped together with its support (see Decrement), so no
// replica ever holds a spend without the rights that paid for it, whatever
// the order, duplication or loss of deliveries. The invariant rests on one
// rule the caller must keep: an origin's row is written at exactly one place.
// A node restored from an old backup must come back under a new origin name;
// reusing the old one forks its row, and the merge of a forked row can
// overdraw (Overdrawn reports it).
//
// The zero BoundedCounter is empty and ready to use. A BoundedCounter is not
// safe for concurrent use.
type BoundedCounter struct {
	rows map[string]*boundedRow

	// Derived from rows, maintained by the raise methods so that Value and
	// Rights are O(1): in[o] = Σ_j out[j][o], and the sums of inc and dec.
	in     map[string]int64
	incSum int64
	decSum int64
}

// boundedRow is one origin's row. Every field is non-negative and at most
// MaxAmount; outSum is Σ out.
type boundedRow struct {
	inc, dec int64
	out      map[string]int64
	outSum   int64
}

// Value is the counter's value: all increments less all decrements. It equals
// the sum of every origin's rights.
func (c *BoundedCounter) Value() int64 { return c.incSum - c.decSum }

// Rights is how much origin may decrement or transfer now.
func (c *BoundedCounter) Rights(origin string) int64 {
	have := c.in[origin]
	if r := c.rows[origin]; r != nil {
		have += r.inc - r.outSum - r.dec
	}
	return have
}

// Origins returns every origin that has a row or has been given rights, in
// ascending order.
func (c *BoundedCounter) Origins() []string {
	os := make([]string, 0, len(c.rows)+len(c.in))
	for o := range c.rows {
		os = append(os, o)
	}
	for o := range c.in {
		if c.rows[o] == nil {
			os = append(os, o)
		}
	}
	slices.Sort(os)
	return os
}

// Overdrawn returns the origins whose rights are negative, in ascending
// order. It is empty unless some origin's row was written at two places (see
// the type's invariant); a non-empty result is a double spend to record.
func (c *BoundedCounter) Overdrawn() []string {
	var bad []string
	for _, o := range c.Origins() {
		if c.Rights(o) < 0 {
			bad = append(bad, o)
		}
	}
	return bad
}

// Increment adds n rights at origin and returns the delta to ship: a counter
// holding origin's new increment total alone. Only origin itself may call
// Increment for origin. n must be positive; the error wraps ErrInvalidAmount,
// or ErrOverflow if origin's cumulative increments would pass MaxAmount.
func (c *BoundedCounter) Increment(origin string, n int64) (*BoundedCounter, error) {
	if err := checkAmount("increment", n); err != nil {
		return nil, err
	}
	var cur int64
	if r := c.rows[origin]; r != nil {
		cur = r.inc
	}
	if cur > MaxAmount-n {
		return nil, fmt.Errorf("crdt: increment of %d at %q: increments would reach %d, above %d: %w",
			n, origin, cur+n, MaxAmount, ErrOverflow)
	}
	c.raiseInc(origin, cur+n)
	delta := &BoundedCounter{}
	delta.raiseInc(origin, cur+n)
	return delta, nil
}

// Decrement spends n of origin's rights and returns the delta to ship: the
// rows of origin and of every origin whose transfers, directly or through
// others, gave origin its rights. That support travels with the spend so that
// a replica receiving it cannot see the spend without its rights, and so
// cannot read a value below zero. Only origin itself may call Decrement for
// origin.
//
// If origin has fewer than n rights, nothing changes and the error is a
// *RightsError (matching ErrInsufficientRights) saying how many it has. A
// non-positive n gives ErrInvalidAmount.
func (c *BoundedCounter) Decrement(origin string, n int64) (*BoundedCounter, error) {
	if err := checkAmount("decrement", n); err != nil {
		return nil, err
	}
	if have := c.Rights(origin); have < n {
		return nil, &RightsError{Op: "decrement", Origin: origin, Need: n, Have: have}
	}
	var cur int64
	if r := c.rows[origin]; r != nil {
		cur = r.dec
	}
	if cur > MaxAmount-n {
		return nil, fmt.Errorf("crdt: decrement of %d at %q: decrements would reach %d, above %d: %w",
			n, origin, cur+n, MaxAmount, ErrOverflow)
	}
	c.raiseDec(origin, cur+n)
	return c.support(origin), nil
}

// Transfer moves n of from's rights to to and returns the delta to ship, from's
// row with its support as for Decrement. Only from itself may call Transfer:
// rights are given, never taken. The errors are those of Decrement, and
// ErrSelfTransfer if from and to are the same.
func (c *BoundedCounter) Transfer(from, to string, n int64) (*BoundedCounter, error) {
	if from == to {
		return nil, fmt.Errorf("crdt: transfer of %d from %q to itself: %w", n, from, ErrSelfTransfer)
	}
	if err := checkAmount("transfer", n); err != nil {
		return nil, err
	}
	if have := c.Rights(from); have < n {
		return nil, &RightsError{Op: "transfer", Origin: from, Need: n, Have: have}
	}
	var cur int64
	if r := c.rows[from]; r != nil {
		cur = r.out[to]
	}
	if cur > MaxAmount-n {
		return nil, fmt.Errorf("crdt: transfer of %d from %q to %q: transfers would reach %d, above %d: %w",
			n, from, to, cur+n, MaxAmount, ErrOverflow)
	}
	c.raiseOut(from, to, cur+n)
	return c.support(from), nil
}

func checkAmount(op string, n int64) error {
	if n <= 0 || n > MaxAmount {
		return fmt.Errorf("crdt: %s of %d: want 1..%d: %w", op, n, int64(MaxAmount), ErrInvalidAmount)
	}
	return nil
}

// Merge merges other into c, cell by cell. Deltas returned by Increment,
// Decrement and Transfer are counters too, and are applied with Merge; doing
// so twice, or out of order, is harmless.
func (c *BoundedCounter) Merge(other *BoundedCounter) {
	for o, r := range other.rows {
		c.mergeRow(o, r)
	}
}

func (c *BoundedCounter) mergeRow(o string, r *boundedRow) {
	c.raiseInc(o, r.inc)
	c.raiseDec(o, r.dec)
	for to, v := range r.out {
		c.raiseOut(o, to, v)
	}
}

// Clone returns an independent copy of c.
func (c *BoundedCounter) Clone() *BoundedCounter {
	n := &BoundedCounter{}
	n.Merge(c)
	return n
}

// support returns the rows of origin and, transitively, of every origin that
// transferred rights to an origin already included. Those rows are all a
// replica needs to see origin's rights as origin saw them: each included
// row's rights are computed from the same cells as here, and rows left out
// only add rights to included origins, never take them away.
func (c *BoundedCounter) support(origin string) *BoundedCounter {
	from := make(map[string][]string) // to -> origins that transferred to it
	for o, r := range c.rows {
		for to := range r.out {
			from[to] = append(from[to], o)
		}
	}
	delta := &BoundedCounter{}
	seen := map[string]bool{origin: true}
	queue := []string{origin}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		if r := c.rows[o]; r != nil {
			delta.mergeRow(o, r)
		}
		for _, src := range from[o] {
			if !seen[src] {
				seen[src] = true
				queue = append(queue, src)
			}
		}
	}
	return delta
}

// row returns o's row, creating it.
func (c *BoundedCounter) row(o string) *boundedRow {
	r := c.rows[o]
	if r == nil {
		if c.rows == nil {
			c.rows = make(map[string]*boundedRow)
		}
		r = &boundedRow{}
		c.rows[o] = r
	}
	return r
}

// raiseInc, raiseDec and raiseOut set a cell to v if v is greater, keeping the
// derived sums in step. They are the only writers of rows.
func (c *BoundedCounter) raiseInc(o string, v int64) {
	if r := c.rows[o]; r != nil && v <= r.inc || v <= 0 {
		return
	}
	r := c.row(o)
	c.incSum += v - r.inc
	r.inc = v
}

func (c *BoundedCounter) raiseDec(o string, v int64) {
	if r := c.rows[o]; r != nil && v <= r.dec || v <= 0 {
		return
	}
	r := c.row(o)
	c.decSum += v - r.dec
	r.dec = v
}

func (c *BoundedCounter) raiseOut(from, to string, v int64) {
	if r := c.rows[from]; r != nil && v <= r.out[to] || v <= 0 {
		return
	}
	r := c.row(from)
	if r.out == nil {
		r.out = make(map[string]int64)
	}
	d := v - r.out[to]
	r.out[to] = v
	r.outSum += d
	if c.in == nil {
		c.in = make(map[string]int64)
	}
	c.in[to] += d
}

// EncodeMsgpack writes [version, {origin: [inc, dec, {to: amount}]}], origins
// and targets sorted, zero transfers omitted.
func (c BoundedCounter) EncodeMsgpack(e *msgpack.Encoder) error {
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
		if err := e.EncodeArrayLen(3); err != nil {
			return err
		}
		if err := e.EncodeUint(uint64(r.inc)); err != nil {
			return err
		}
		if err := e.EncodeUint(uint64(r.dec)); err != nil {
			return err
		}
		if err := e.EncodeMapLen(len(r.out)); err != nil {
			return err
		}
		for _, to := range sortedKeys(r.out) {
			if err := e.EncodeString(to); err != nil {
				return err
			}
			if err := e.EncodeUint(uint64(r.out[to])); err != nil {
				return err
			}
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes, replacing c's contents. It
// rejects, with ErrMalformed, a state in which some origin has negative
// rights, so a decoded counter keeps the invariant.
func (c *BoundedCounter) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "BoundedCounter", 2); err != nil {
		return err
	}
	n := &BoundedCounter{}
	err := decodeSortedMap(d, "BoundedCounter rows", func(o string) error {
		if err := decodeArrayLen(d, "BoundedCounter row", 3); err != nil {
			return err
		}
		inc, err := decodeCell(d, "BoundedCounter inc")
		if err != nil {
			return err
		}
		dec, err := decodeCell(d, "BoundedCounter dec")
		if err != nil {
			return err
		}
		n.raiseInc(o, inc)
		n.raiseDec(o, dec)
		cells := 0
		err = decodeSortedMap(d, "BoundedCounter transfers", func(to string) error {
			v, err := decodeCell(d, "BoundedCounter transfer")
			if err != nil {
				return err
			}
			if v == 0 || to == o {
				return malformed("BoundedCounter: transfer of %d from %q to %q", v, o, to)
			}
			n.raiseOut(o, to, v)
			cells++
			return nil
		})
		if err != nil {
			return err
		}
		if inc == 0 && dec == 0 && cells == 0 {
			return malformed("BoundedCounter: empty row for %q", o)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bad := n.Overdrawn(); len(bad) > 0 {
		return malformed("BoundedCounter: origin %q has %d rights", bad[0], n.Rights(bad[0]))
	}
	*c = *n
	return nil
}

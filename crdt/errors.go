package crdt

import (
	"errors"
	"fmt"
)

// Domain errors. Callers test for them with errors.Is; the returned errors
// wrap them with the values involved.
var (
	// ErrInsufficientRights is returned when an origin tries to decrement or
	// transfer more of a BoundedCounter than it holds rights for. The error
	// is a *RightsError, which says how many rights the origin has.
	ErrInsufficientRights = errors.New("crdt: insufficient rights")
	// ErrInvalidAmount is returned for an amount that is not positive or is
	// above MaxAmount; for a PNCounter, for a decimal (an amount, or the
	// row total it would make) whose canonical text is longer than the
	// decoders read (100 characters), or a negative row total.
	ErrInvalidAmount = errors.New("crdt: invalid amount")
	// ErrOverflow is returned when an operation would take a cumulative
	// cell past MaxAmount.
	ErrOverflow = errors.New("crdt: amount overflow")
	// ErrSelfTransfer is returned for a transfer of rights from an origin
	// to itself.
	ErrSelfTransfer = errors.New("crdt: transfer to self")
	// ErrMalformed is returned by the msgpack decoders for input that is not
	// the canonical encoding of a valid value: a wrong layout or version,
	// keys out of order, zero or negative cells, a non-canonical decimal, or
	// a bounded counter in which some origin has negative rights.
	ErrMalformed = errors.New("crdt: malformed encoding")
)

// RightsError reports a decrement or transfer refused for lack of rights.
// It matches ErrInsufficientRights with errors.Is.
type RightsError struct {
	Op     string // "decrement" or "transfer"
	Origin string
	Need   int64 // the amount asked for
	Have   int64 // the origin's rights when it asked
}

func (e *RightsError) Error() string {
	return fmt.Sprintf("crdt: %s of %d at %q: origin has %d rights: %v",
		e.Op, e.Need, e.Origin, e.Have, ErrInsufficientRights)
}

// Unwrap makes errors.Is(err, ErrInsufficientRights) true.
func (e *RightsError) Unwrap() error { return ErrInsufficientRights }

// malformed wraps ErrMalformed with what was being decoded.
func malformed(format string, args ...any) error {
	return fmt.Errorf("crdt: decode %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

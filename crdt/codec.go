package crdt

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"
)

// Encodings.
//
// Every type encodes itself as a msgpack array whose first element is
// formatVersion, followed by its fields in a fixed order. Maps are written
// with their keys in ascending bytewise order, integers in their shortest
// form, decimals as their canonical string (decimal.String, which drops
// trailing zeros, so 12.3 and 12.30 are the same bytes), and cells that are
// zero are never written. Equal values therefore give equal bytes, which is
// what checksums and convergence tests compare.
//
// The decoders accept only that layout: keys must ascend strictly (so there
// are no duplicates), cells must be positive and decimals canonical. A value
// that decodes re-encodes to the same bytes, up to msgpack's choice of
// integer and string widths, which the encoder always makes minimal.
//
// Changing any layout means a new formatVersion, and the decoders must keep
// reading every older one. TestEncodingsAreStable pins the current bytes.
const formatVersion = 1

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// encodeHeader starts an array of n elements, the first being the version.
func encodeHeader(e *msgpack.Encoder, n int) error {
	if err := e.EncodeArrayLen(n); err != nil {
		return err
	}
	return e.EncodeUint(formatVersion)
}

// decodeHeader reads the array and version written by encodeHeader.
func decodeHeader(d *msgpack.Decoder, what string, n int) error {
	got, err := d.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	if got != n {
		return malformed("%s: array of %d elements, want %d", what, got, n)
	}
	v, err := d.DecodeUint64()
	if err != nil {
		return fmt.Errorf("crdt: decode %s version: %w", what, err)
	}
	if v != formatVersion {
		return malformed("%s: version %d, want %d", what, v, formatVersion)
	}
	return nil
}

// decodeArrayLen reads an array header that must have exactly n elements.
func decodeArrayLen(d *msgpack.Decoder, what string, n int) error {
	got, err := d.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	if got != n {
		return malformed("%s: array of %d elements, want %d", what, got, n)
	}
	return nil
}

// decodeSortedMap reads a map with string keys in strictly ascending order,
// calling entry for each key with the decoder positioned at its value. It
// fails on a nil map, keys out of order and duplicates. It reserves nothing
// from the length header, so a forged length costs only the failed reads.
func decodeSortedMap(d *msgpack.Decoder, what string, entry func(key string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	if n < 0 {
		return malformed("%s: nil map", what)
	}
	prev := ""
	for i := range n {
		k, err := readString(d, what+" key")
		if err != nil {
			return err
		}
		if i > 0 && k <= prev {
			return malformed("%s: key %q after %q", what, k, prev)
		}
		prev = k
		if err := entry(k); err != nil {
			return err
		}
	}
	return nil
}

// decodeCell reads a non-negative integer no greater than MaxAmount.
func decodeCell(d *msgpack.Decoder, what string) (int64, error) {
	v, err := d.DecodeUint64()
	if err != nil {
		return 0, fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	if v > MaxAmount {
		return 0, malformed("%s: %d above MaxAmount", what, v)
	}
	return int64(v), nil
}

// readChunk is how much readBytes reserves at a time.
const readChunk = 64 << 10

// readBytes reads a msgpack str or bin of the given length header, or nil.
// It reserves memory as the bytes arrive, at most readChunk ahead of them,
// so a forged length cannot make it allocate more than the input holds.
//
// msgpack's own DecodeString and DecodeBytes do not: v5.4.1 reserves the
// whole length up front (DecodeBytes) or grows the pooled decoder's buffer
// by a megabyte per failed read (DecodeString), so a nine-byte input can cost
// hundreds of megabytes. Every decoder here therefore reads through
// readBytes and readString.
func readBytes(d *msgpack.Decoder) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	return readN(d, n)
}

// readString reads a msgpack str (or bin) as a string; nil is malformed.
func readString(d *msgpack.Decoder, what string) (string, error) {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return "", fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	if n < 0 {
		return "", malformed("%s: nil string", what)
	}
	if n <= 64 { // the common case: ids, keys and origins, without garbage
		var buf [64]byte
		if err := d.ReadFull(buf[:n]); err != nil {
			return "", fmt.Errorf("crdt: decode %s: %w", what, err)
		}
		return string(buf[:n]), nil
	}
	b, err := readN(d, n)
	if err != nil {
		return "", fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	return string(b), nil
}

func readN(d *msgpack.Decoder, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, readChunk))
	for len(b) < n {
		k := min(n-len(b), readChunk)
		b = slices.Grow(b, k)[:len(b)+k]
		if err := d.ReadFull(b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// encodeDecimal writes d in its canonical form, if decodeDecimal would
// read it back.
func encodeDecimal(e *msgpack.Encoder, what string, d decimal.Decimal) error {
	if err := checkDecimal(what, d); err != nil {
		return err
	}
	return e.EncodeString(d.String())
}

// checkDecimal returns an error wrapping ErrInvalidAmount, naming what, if
// decodeDecimal would refuse d: negative, or a canonical text longer than
// maxDecimalLen. A large exponent is refused before d.String() spells out
// its digits.
func checkDecimal(what string, d decimal.Decimal) error {
	if d.IsNegative() {
		return fmt.Errorf("%s: negative %.20s: %w", what, d.String(), ErrInvalidAmount)
	}
	if d.Exponent() >= maxDecimalLen && !d.IsZero() {
		return fmt.Errorf("%s: %s×10^%d has over %d digits: %w", what, d.Coefficient(), d.Exponent(), maxDecimalLen, ErrInvalidAmount)
	}
	if s := d.String(); len(s) > maxDecimalLen {
		return fmt.Errorf("%s: %.20s... is %d characters, over %d: %w", what, s, len(s), maxDecimalLen, ErrInvalidAmount)
	}
	return nil
}

// maxDecimalLen bounds the text of a decoded decimal. Quantities and money
// need a few dozen digits at most.
const maxDecimalLen = 100

// decodeDecimal reads a decimal that must be non-negative and canonical.
func decodeDecimal(d *msgpack.Decoder, what string) (decimal.Decimal, error) {
	s, err := readString(d, what)
	if err != nil {
		return decimal.Decimal{}, err
	}
	// The canonical form has no exponent. Refusing one before parsing also
	// keeps "1e999999999" from expanding into a billion digits.
	if len(s) > maxDecimalLen || strings.ContainsAny(s, "eE") {
		return decimal.Decimal{}, malformed("%s: %.20q is not a canonical decimal", what, s)
	}
	v, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, malformed("%s: %v", what, err)
	}
	if v.IsNegative() {
		return decimal.Decimal{}, malformed("%s: negative %s", what, s)
	}
	if v.String() != s {
		return decimal.Decimal{}, malformed("%s: %q is not canonical (%q)", what, s, v.String())
	}
	return v, nil
}

// EncodeMsgpack writes t as a msgpack unsigned integer in its shortest form.
func (t Timestamp) EncodeMsgpack(e *msgpack.Encoder) error {
	return e.EncodeUint(uint64(t))
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (t *Timestamp) DecodeMsgpack(d *msgpack.Decoder) error {
	v, err := decodeTime(d, "Timestamp")
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// decodeTime reads a Timestamp, a non-negative integer. msgpack's
// DecodeUint64 takes a negative integer for a huge one (-1 for the largest
// Timestamp, which no later write could beat), so a signed integer is read
// as such and refused below zero.
func decodeTime(d *msgpack.Decoder, what string) (Timestamp, error) {
	c, err := d.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	// msgpack's negative fixint (0xe0-0xff) and int 8, 16, 32, 64
	// (0xd0-0xd3); its msgpcode package is not among crdt's imports.
	if c >= 0xe0 || (c >= 0xd0 && c <= 0xd3) {
		v, err := d.DecodeInt64()
		if err != nil {
			return 0, fmt.Errorf("crdt: decode %s: %w", what, err)
		}
		if v < 0 {
			return 0, malformed("%s: negative time %d", what, v)
		}
		return Timestamp(v), nil
	}
	v, err := d.DecodeUint64()
	if err != nil {
		return 0, fmt.Errorf("crdt: decode %s: %w", what, err)
	}
	return Timestamp(v), nil
}

// EncodeMsgpack writes [time, origin]. A Stamp is small and embedded in other
// records, so it carries no version of its own.
func (s Stamp) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeUint(uint64(s.Time)); err != nil {
		return err
	}
	return e.EncodeString(s.Origin)
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (s *Stamp) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeArrayLen(d, "Stamp", 2); err != nil {
		return err
	}
	t, err := decodeTime(d, "Stamp time")
	if err != nil {
		return err
	}
	o, err := readString(d, "Stamp origin")
	if err != nil {
		return err
	}
	*s = Stamp{Time: t, Origin: o}
	return nil
}

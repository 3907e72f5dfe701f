package central

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/storeline/storeline"
)

// MaxChangesPerEntry bounds the master-data changes of one Raft entry, so
// that (index, position) packs into one ordered uint64 (Version.Pack).
const MaxChangesPerEntry = 1<<16 - 1

// Version is the version of a master-data change: the Raft index of the
// entry that made it and its position within the entry (from 1). Versions
// are totally ordered across the cluster.
type Version struct {
	Index uint64
	Pos   uint16
}

// Pack encodes v as index<<16 | pos, the form the ledger's master store
// keys changes by; packing keeps the order.
func (v Version) Pack() uint64 {
	if v.Index >= 1<<48 {
		panic(fmt.Sprintf("central: raft index %d does not fit a version", v.Index))
	}
	return v.Index<<16 | uint64(v.Pos)
}

// Unpack decodes a packed version.
func Unpack(p uint64) Version { return Version{Index: p >> 16, Pos: uint16(p)} }

// String gives "index.pos"; the zero version is "0.0".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Index, v.Pos) }

// IsZero reports whether v is before every change.
func (v Version) IsZero() bool { return v == Version{} }

// ParseVersion parses "index.pos" (or a bare index, meaning position 0).
func ParseVersion(field, s string) (Version, error) {
	if s == "" {
		return Version{}, nil
	}
	a, b, dot := strings.Cut(s, ".")
	idx, err := strconv.ParseUint(a, 10, 48)
	if err != nil {
		return Version{}, storeline.Invalidf(field, "version %q: want index.position", s)
	}
	var pos uint64
	if dot {
		if pos, err = strconv.ParseUint(b, 10, 16); err != nil {
			return Version{}, storeline.Invalidf(field, "version %q: want index.position", s)
		}
	}
	return Version{Index: idx, Pos: uint16(pos)}, nil
}

// MarshalText encodes the "index.pos" form.
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText decodes the "index.pos" form.
func (v *Version) UnmarshalText(b []byte) error {
	x, err := ParseVersion("version", string(b))
	if err != nil {
		return err
	}
	*v = x
	return nil
}

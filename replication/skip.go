package replication

import (
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// SkipValue returns the length of the msgpack value at the start of b. It
// accepts what msgpack's Decoder.Skip accepts, but walks the slice in
// place: Skip copies every string and binary it passes over into the
// decoder's buffer, and a pushed event's body, which the receiving node
// decodes once and every replica only steps over, is most of its bytes.
func SkipValue(b []byte) (int, error) { return skipValue(b, 0) }

// skipValue returns the end of the msgpack value at b[i]. It does not
// recurse: pending counts the values still to step over, and since each
// takes at least a byte, a header announcing more than the bytes left is
// refused at once (msgpack's Skip would run out of input after reading
// what is there), so a hostile header cannot make it loop or overflow.
func skipValue(b []byte, i int) (int, error) {
	for pending := 1; pending > 0; pending-- {
		if i >= len(b) {
			return 0, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		n, items := 0, 0 // bytes of the value after its header; values nested in it
		var err error
		switch {
		case msgpcode.IsFixedNum(c):
		case msgpcode.IsFixedMap(c):
			items = 2 * int(c&msgpcode.FixedMapMask)
		case msgpcode.IsFixedArray(c):
			items = int(c & msgpcode.FixedArrayMask)
		case msgpcode.IsFixedString(c):
			n = int(c & msgpcode.FixedStrMask)
		default:
			switch c {
			case msgpcode.Nil, msgpcode.False, msgpcode.True:
			case msgpcode.Uint8, msgpcode.Int8:
				n = 1
			case msgpcode.Uint16, msgpcode.Int16:
				n = 2
			case msgpcode.Uint32, msgpcode.Int32, msgpcode.Float:
				n = 4
			case msgpcode.Uint64, msgpcode.Int64, msgpcode.Double:
				n = 8
			case msgpcode.Bin8, msgpcode.Str8:
				n, i, err = skipLen(b, i, 1)
			case msgpcode.Bin16, msgpcode.Str16:
				n, i, err = skipLen(b, i, 2)
			case msgpcode.Bin32, msgpcode.Str32:
				n, i, err = skipLen(b, i, 4)
			case msgpcode.Array16:
				items, i, err = skipLen(b, i, 2)
			case msgpcode.Array32:
				items, i, err = skipLen(b, i, 4)
			case msgpcode.Map16:
				items, i, err = skipLen(b, i, 2)
				items *= 2
			case msgpcode.Map32:
				items, i, err = skipLen(b, i, 4)
				items *= 2
			case msgpcode.FixExt1:
				n = 1 + 1 // the type byte, then the data
			case msgpcode.FixExt2:
				n = 1 + 2
			case msgpcode.FixExt4:
				n = 1 + 4
			case msgpcode.FixExt8:
				n = 1 + 8
			case msgpcode.FixExt16:
				n = 1 + 16
			case msgpcode.Ext8:
				n, i, err = skipLen(b, i, 1)
				n++
			case msgpcode.Ext16:
				n, i, err = skipLen(b, i, 2)
				n++
			case msgpcode.Ext32:
				n, i, err = skipLen(b, i, 4)
				n++
			default:
				return 0, fmt.Errorf("msgpack: unknown code %x", c)
			}
			if err != nil {
				return 0, err
			}
		}
		if n > len(b)-i {
			return 0, io.ErrUnexpectedEOF
		}
		i += n
		if items > len(b)-i-(pending-1) {
			return 0, io.ErrUnexpectedEOF
		}
		pending += items
	}
	return i, nil
}

// skipLen reads a big-endian length of size bytes at b[i].
func skipLen(b []byte, i, size int) (n, next int, err error) {
	if size > len(b)-i {
		return 0, 0, io.ErrUnexpectedEOF
	}
	for _, x := range b[i : i+size] {
		n = n<<8 | int(x)
	}
	return n, i + size, nil
}

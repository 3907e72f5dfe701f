package crdt

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// SerialCounts tracks the serial numbers of marked goods: per serial and per
// origin, how many times the origin sold it and how many times it took it
// back, both grow-only. The serial's net count is the sum of sales less the
// sum of returns over all origins; more than one means the same item was sold
// twice, a conflict to record. A serial sold, returned and sold again
// elsewhere nets to one and is not a conflict.
//
// Merge takes the per-origin maximum of each direction, so it is
// commutative, associative and idempotent, and replicas that have seen the
// same rows agree on every net count and so on every conflict. Conflict is a
// property of the state: a replica that sees a second sale before the return
// that preceded it reports a conflict that disappears when the return
// arrives.
//
// The zero SerialCounts is empty and ready to use. It is not safe for
// concurrent use.
type SerialCounts struct {
	serials map[string]*serialEntry
}

type serialEntry struct {
	rows map[string]serialRow // by origin
	net  int64                // Σ sold − Σ returned, derived
}

type serialRow struct{ sold, returned int64 }

// SerialDelta is one origin's row for one serial: how many times the origin
// has sold it and taken it back, in total. Sell and Return produce it, Apply
// takes it; applying it twice, or after a newer row, changes nothing.
type SerialDelta struct {
	Serial   string
	Origin   string
	Sold     int64
	Returned int64
}

// Sell records a sale of serial at origin and returns origin's new row for
// it. Only origin itself may call Sell for origin.
func (s *SerialCounts) Sell(serial, origin string) SerialDelta {
	r := s.row(serial, origin)
	r.sold++
	s.Apply(SerialDelta{Serial: serial, Origin: origin, Sold: r.sold, Returned: r.returned})
	return s.Row(serial, origin)
}

// Return records a return of serial at origin and returns origin's new row
// for it. Only origin itself may call Return for origin.
func (s *SerialCounts) Return(serial, origin string) SerialDelta {
	r := s.row(serial, origin)
	r.returned++
	s.Apply(SerialDelta{Serial: serial, Origin: origin, Sold: r.sold, Returned: r.returned})
	return s.Row(serial, origin)
}

func (s *SerialCounts) row(serial, origin string) serialRow {
	var r serialRow
	if e := s.serials[serial]; e != nil {
		r = e.rows[origin]
	}
	if r.sold >= MaxAmount || r.returned >= MaxAmount {
		panic(fmt.Sprintf("crdt: serial %q at %q counted %d sales and %d returns, at MaxAmount",
			serial, origin, r.sold, r.returned))
	}
	return r
}

// Apply merges one origin's row for one serial: each count becomes the
// larger of the local and the delta's. Counts below zero are ignored.
func (s *SerialCounts) Apply(d SerialDelta) {
	var e *serialEntry
	if s.serials != nil {
		e = s.serials[d.Serial]
	}
	var r serialRow
	if e != nil {
		r = e.rows[d.Origin]
	}
	sold, returned := max(r.sold, d.Sold), max(r.returned, d.Returned)
	if sold == r.sold && returned == r.returned {
		return
	}
	if e == nil {
		if s.serials == nil {
			s.serials = make(map[string]*serialEntry)
		}
		e = &serialEntry{rows: make(map[string]serialRow, 1)}
		s.serials[d.Serial] = e
	}
	e.net += (sold - r.sold) - (returned - r.returned)
	e.rows[d.Origin] = serialRow{sold: sold, returned: returned}
}

// Merge merges every row of other into s.
func (s *SerialCounts) Merge(other *SerialCounts) {
	for serial, e := range other.serials {
		for o, r := range e.rows {
			s.Apply(SerialDelta{Serial: serial, Origin: o, Sold: r.sold, Returned: r.returned})
		}
	}
}

// Row returns origin's row for serial, zero counts if it has none.
func (s *SerialCounts) Row(serial, origin string) SerialDelta {
	d := SerialDelta{Serial: serial, Origin: origin}
	if e := s.serials[serial]; e != nil {
		r := e.rows[origin]
		d.Sold, d.Returned = r.sold, r.returned
	}
	return d
}

// Net is serial's sales less its returns over all origins: 1 while an item
// is out with a customer, 0 in stock, above 1 if sold twice. A negative count
// means a return of a sale this replica has not seen yet.
func (s *SerialCounts) Net(serial string) int64 {
	if e := s.serials[serial]; e != nil {
		return e.net
	}
	return 0
}

// Conflict reports whether serial's net count exceeds one.
func (s *SerialCounts) Conflict(serial string) bool { return s.Net(serial) > 1 }

// Conflicts returns the serials whose net count exceeds one, in ascending
// order.
func (s *SerialCounts) Conflicts() []string {
	var out []string
	for _, serial := range sortedKeys(s.serials) {
		if s.serials[serial].net > 1 {
			out = append(out, serial)
		}
	}
	return out
}

// Len is the number of serials with any row.
func (s *SerialCounts) Len() int { return len(s.serials) }

// Clone returns an independent copy of s.
func (s *SerialCounts) Clone() *SerialCounts {
	n := &SerialCounts{}
	n.Merge(s)
	return n
}

// EncodeMsgpack writes [version, {serial: {origin: [sold, returned]}}] with
// serials and origins sorted.
func (s SerialCounts) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 2); err != nil {
		return err
	}
	if err := e.EncodeMapLen(len(s.serials)); err != nil {
		return err
	}
	for _, serial := range sortedKeys(s.serials) {
		rows := s.serials[serial].rows
		if err := e.EncodeString(serial); err != nil {
			return err
		}
		if err := e.EncodeMapLen(len(rows)); err != nil {
			return err
		}
		for _, o := range sortedKeys(rows) {
			r := rows[o]
			if err := e.EncodeString(o); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(2); err != nil {
				return err
			}
			if err := e.EncodeUint(uint64(r.sold)); err != nil {
				return err
			}
			if err := e.EncodeUint(uint64(r.returned)); err != nil {
				return err
			}
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes, replacing s's contents.
func (s *SerialCounts) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := decodeHeader(d, "SerialCounts", 2); err != nil {
		return err
	}
	n := &SerialCounts{}
	err := decodeSortedMap(d, "SerialCounts serials", func(serial string) error {
		rows := 0
		err := decodeSortedMap(d, "SerialCounts rows", func(o string) error {
			if err := decodeArrayLen(d, "SerialCounts row", 2); err != nil {
				return err
			}
			sold, err := decodeCell(d, "SerialCounts sold")
			if err != nil {
				return err
			}
			returned, err := decodeCell(d, "SerialCounts returned")
			if err != nil {
				return err
			}
			if sold == 0 && returned == 0 {
				return malformed("SerialCounts: empty row for %q at %q", serial, o)
			}
			n.Apply(SerialDelta{Serial: serial, Origin: o, Sold: sold, Returned: returned})
			rows++
			return nil
		})
		if err != nil {
			return err
		}
		if rows == 0 {
			return malformed("SerialCounts: serial %q without rows", serial)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*s = *n
	return nil
}

// EncodeMsgpack writes [version, serial, origin, sold, returned].
func (d SerialDelta) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := encodeHeader(e, 5); err != nil {
		return err
	}
	if err := e.EncodeString(d.Serial); err != nil {
		return err
	}
	if err := e.EncodeString(d.Origin); err != nil {
		return err
	}
	if err := e.EncodeUint(uint64(max(d.Sold, 0))); err != nil {
		return err
	}
	return e.EncodeUint(uint64(max(d.Returned, 0)))
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (d *SerialDelta) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := decodeHeader(dec, "SerialDelta", 5); err != nil {
		return err
	}
	serial, err := readString(dec, "SerialDelta serial")
	if err != nil {
		return err
	}
	origin, err := readString(dec, "SerialDelta origin")
	if err != nil {
		return err
	}
	sold, err := decodeCell(dec, "SerialDelta sold")
	if err != nil {
		return err
	}
	returned, err := decodeCell(dec, "SerialDelta returned")
	if err != nil {
		return err
	}
	*d = SerialDelta{Serial: serial, Origin: origin, Sold: sold, Returned: returned}
	return nil
}

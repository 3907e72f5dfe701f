package storeline

import (
	"encoding/binary"
	"math"
)

// Hand-written msgpack encoders of the receipt-shaped bodies, the hot
// bodies of a shop's journal. They produce, byte for byte, what
// github.com/vmihailenco/msgpack/v5 produced by reflection with its
// default options (the only options this module encodes with): a struct
// is a map keyed by field name, omitempty fields left out when empty,
// uint64 and int64 in their full 9 bytes, int compact, a decimal as bin
// of its MarshalBinary, a nil slice or pointer as nil. Stored event bodies
// are compared byte for byte for idempotency, so the bytes must never
// change: bodyenc_test.go checks these encoders against reflection and
// against a corpus encoded before they existed.
//
// They implement msgpack's Marshaler (MarshalMsgpack) rather than its
// CustomEncoder, so that the root package does not import msgpack (see
// imports_test.go). Value receivers: msgpack refuses a pointer-receiver
// encoder on a value it cannot address.
//
// A new field in one of these structs must be added here too:
// TestBodyEncodersMatchReflection fails until it is, once genBodies fills
// the field (a field that is not omitempty fails it at once).

// msgpack format codes.
const (
	mpNil      = 0xc0
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
	mpFixMap   = 0x80
	mpFixArray = 0x90
	mpFixStr   = 0xa0
)

func appendMsgpackStr(b []byte, s string) []byte {
	switch l := len(s); {
	case l < 32:
		b = append(b, mpFixStr|byte(l))
	case l < 256:
		b = append(b, mpStr8, byte(l))
	case l <= math.MaxUint16:
		b = append(b, mpStr16, byte(l>>8), byte(l))
	default:
		b = append(b, mpStr32)
		b = binary.BigEndian.AppendUint32(b, uint32(l))
	}
	return append(b, s...)
}

func appendMsgpackBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, mpNil)
	}
	switch l := len(v); {
	case l < 256:
		b = append(b, mpBin8, byte(l))
	case l <= math.MaxUint16:
		b = append(b, mpBin16, byte(l>>8), byte(l))
	default:
		b = append(b, mpBin32)
		b = binary.BigEndian.AppendUint32(b, uint32(l))
	}
	return append(b, v...)
}

func appendMsgpackMapLen(b []byte, l int) []byte {
	switch {
	case l < 16:
		return append(b, mpFixMap|byte(l))
	case l <= math.MaxUint16:
		return append(b, mpMap16, byte(l>>8), byte(l))
	}
	return binary.BigEndian.AppendUint32(append(b, mpMap32), uint32(l))
}

func appendMsgpackArrayLen(b []byte, l int) []byte {
	switch {
	case l < 16:
		return append(b, mpFixArray|byte(l))
	case l <= math.MaxUint16:
		return append(b, mpArray16, byte(l>>8), byte(l))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(l))
}

// appendMsgpackUint64 and appendMsgpackInt64 keep the type's full width,
// as msgpack does for uint64 and int64 fields without UseCompactInts.
func appendMsgpackUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

func appendMsgpackInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
}

// appendMsgpackInt is msgpack's EncodeInt, the compact form it uses for
// an int field.
func appendMsgpackInt(b []byte, n int64) []byte {
	if n >= 0 {
		u := uint64(n)
		switch {
		case u <= math.MaxInt8:
			return append(b, byte(u))
		case u <= math.MaxUint8:
			return append(b, mpUint8, byte(u))
		case u <= math.MaxUint16:
			return append(b, mpUint16, byte(u>>8), byte(u))
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(u))
		}
		return appendMsgpackUint64(b, u)
	}
	switch {
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, mpInt8, byte(n))
	case n >= math.MinInt16:
		return append(b, mpInt16, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(n))
	}
	return appendMsgpackInt64(b, n)
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// MarshalMsgpack encodes the receipt as msgpack's reflection did.
func (r Receipt) MarshalMsgpack() ([]byte, error) {
	return r.appendMsgpack(make([]byte, 0, 256+150*len(r.Lines)+48*len(r.Payments)+48*len(r.VAT))), nil
}

func (r *Receipt) appendMsgpack(b []byte) []byte {
	n := 10 + boolInt(r.Card != "") + boolInt(r.Customer != "") + boolInt(r.Programme != "") +
		boolInt(r.Earned != 0) + boolInt(r.Fiscal != nil) + boolInt(len(r.Discrepancies) > 0)
	b = appendMsgpackMapLen(b, n)
	b = appendMsgpackStr(b, "Terminal")
	b = appendMsgpackStr(b, string(r.Terminal))
	b = appendMsgpackStr(b, "Shift")
	b = appendMsgpackStr(b, string(r.Shift))
	b = appendMsgpackStr(b, "Seller")
	b = appendMsgpackStr(b, string(r.Seller))
	b = appendMsgpackStr(b, "Currency")
	b = appendMsgpackStr(b, string(r.Currency))
	b = appendMsgpackStr(b, "CatalogVersion")
	b = appendMsgpackUint64(b, r.CatalogVersion)
	if r.Card != "" {
		b = appendMsgpackStr(b, "Card")
		b = appendMsgpackStr(b, r.Card)
	}
	if r.Customer != "" {
		b = appendMsgpackStr(b, "Customer")
		b = appendMsgpackStr(b, string(r.Customer))
	}
	if r.Programme != "" {
		b = appendMsgpackStr(b, "Programme")
		b = appendMsgpackStr(b, string(r.Programme))
	}
	if r.Earned != 0 {
		b = appendMsgpackStr(b, "Earned")
		b = appendMsgpackInt64(b, r.Earned)
	}
	b = appendMsgpackStr(b, "Lines")
	b = appendMsgpackLines(b, r.Lines)
	b = appendMsgpackStr(b, "Payments")
	b = appendMsgpackPayments(b, r.Payments)
	if r.Fiscal != nil {
		b = appendMsgpackStr(b, "Fiscal")
		b = r.Fiscal.appendMsgpack(b)
	}
	b = appendMsgpackStr(b, "Total")
	b = appendMsgpackDecimal(b, r.Total)
	b = appendMsgpackStr(b, "Change")
	b = appendMsgpackDecimal(b, r.Change)
	b = appendMsgpackStr(b, "VAT")
	b = appendMsgpackVATSums(b, r.VAT)
	if len(r.Discrepancies) > 0 {
		b = appendMsgpackStr(b, "Discrepancies")
		b = appendMsgpackArrayLen(b, len(r.Discrepancies))
		for i := range r.Discrepancies {
			b = r.Discrepancies[i].appendMsgpack(b)
		}
	}
	return b
}

// MarshalMsgpack encodes the return as msgpack's reflection did.
func (r Return) MarshalMsgpack() ([]byte, error) {
	return r.appendMsgpack(make([]byte, 0, 256+150*len(r.Lines)+48*len(r.Refunds)+48*len(r.VAT))), nil
}

func (r *Return) appendMsgpack(b []byte) []byte {
	n := 10 + boolInt(r.Original != nil) + boolInt(r.Points != nil)
	b = appendMsgpackMapLen(b, n)
	b = appendMsgpackStr(b, "Terminal")
	b = appendMsgpackStr(b, string(r.Terminal))
	b = appendMsgpackStr(b, "Shift")
	b = appendMsgpackStr(b, string(r.Shift))
	b = appendMsgpackStr(b, "Seller")
	b = appendMsgpackStr(b, string(r.Seller))
	b = appendMsgpackStr(b, "Manager")
	b = appendMsgpackStr(b, string(r.Manager))
	b = appendMsgpackStr(b, "Currency")
	b = appendMsgpackStr(b, string(r.Currency))
	if r.Original != nil {
		b = appendMsgpackStr(b, "Original")
		b = appendMsgpackBin(b, r.Original[:]) // EventID.MarshalBinary
	}
	b = appendMsgpackStr(b, "Reason")
	b = appendMsgpackStr(b, r.Reason)
	b = appendMsgpackStr(b, "Lines")
	b = appendMsgpackLines(b, r.Lines)
	b = appendMsgpackStr(b, "Refunds")
	b = appendMsgpackPayments(b, r.Refunds)
	if r.Points != nil {
		b = appendMsgpackStr(b, "Points")
		b = r.Points.appendMsgpack(b)
	}
	b = appendMsgpackStr(b, "Total")
	b = appendMsgpackDecimal(b, r.Total)
	b = appendMsgpackStr(b, "VAT")
	return appendMsgpackVATSums(b, r.VAT)
}

func appendMsgpackLines(b []byte, ls []Line) []byte {
	if ls == nil {
		return append(b, mpNil)
	}
	b = appendMsgpackArrayLen(b, len(ls))
	for i := range ls {
		b = ls[i].appendMsgpack(b)
	}
	return b
}

func appendMsgpackPayments(b []byte, ps []Payment) []byte {
	if ps == nil {
		return append(b, mpNil)
	}
	b = appendMsgpackArrayLen(b, len(ps))
	for i := range ps {
		b = ps[i].appendMsgpack(b)
	}
	return b
}

func appendMsgpackVATSums(b []byte, vs []VATSum) []byte {
	if vs == nil {
		return append(b, mpNil)
	}
	b = appendMsgpackArrayLen(b, len(vs))
	for i := range vs {
		b = vs[i].appendMsgpack(b)
	}
	return b
}

// MarshalMsgpack encodes the line as msgpack's reflection did.
func (l Line) MarshalMsgpack() ([]byte, error) { return l.appendMsgpack(make([]byte, 0, 160)), nil }

func (l *Line) appendMsgpack(b []byte) []byte {
	b = appendMsgpackMapLen(b, 9+boolInt(l.Barcode != "")+boolInt(l.Serial != ""))
	b = appendMsgpackStr(b, "Item")
	b = appendMsgpackStr(b, string(l.Item))
	b = appendMsgpackStr(b, "Dept")
	b = appendMsgpackStr(b, string(l.Dept))
	b = appendMsgpackStr(b, "Unit")
	b = appendMsgpackStr(b, string(l.Unit))
	if l.Barcode != "" {
		b = appendMsgpackStr(b, "Barcode")
		b = appendMsgpackStr(b, l.Barcode)
	}
	b = appendMsgpackStr(b, "Qty")
	b = appendMsgpackDecimal(b, l.Qty)
	b = appendMsgpackStr(b, "Price")
	b = appendMsgpackDecimal(b, l.Price)
	b = appendMsgpackStr(b, "Discount")
	b = appendMsgpackDecimal(b, l.Discount)
	if l.Serial != "" {
		b = appendMsgpackStr(b, "Serial")
		b = appendMsgpackStr(b, l.Serial)
	}
	b = appendMsgpackStr(b, "VATRate")
	b = appendMsgpackDecimal(b, l.VATRate)
	b = appendMsgpackStr(b, "Total")
	b = appendMsgpackDecimal(b, l.Total)
	b = appendMsgpackStr(b, "VAT")
	return appendMsgpackDecimal(b, l.VAT)
}

// MarshalMsgpack encodes the payment as msgpack's reflection did.
func (p Payment) MarshalMsgpack() ([]byte, error) { return p.appendMsgpack(make([]byte, 0, 64)), nil }

func (p *Payment) appendMsgpack(b []byte) []byte {
	b = appendMsgpackMapLen(b, 2+boolInt(p.Reference != "")+boolInt(p.AuthCode != "")+boolInt(p.Points != 0))
	b = appendMsgpackStr(b, "Method")
	b = appendMsgpackStr(b, string(p.Method))
	b = appendMsgpackStr(b, "Amount")
	b = appendMsgpackDecimal(b, p.Amount)
	if p.Reference != "" {
		b = appendMsgpackStr(b, "Reference")
		b = appendMsgpackStr(b, p.Reference)
	}
	if p.AuthCode != "" {
		b = appendMsgpackStr(b, "AuthCode")
		b = appendMsgpackStr(b, p.AuthCode)
	}
	if p.Points != 0 {
		b = appendMsgpackStr(b, "Points")
		b = appendMsgpackInt64(b, p.Points)
	}
	return b
}

// MarshalMsgpack encodes the VAT sum as msgpack's reflection did.
func (v VATSum) MarshalMsgpack() ([]byte, error) { return v.appendMsgpack(make([]byte, 0, 64)), nil }

func (v *VATSum) appendMsgpack(b []byte) []byte {
	b = appendMsgpackMapLen(b, 3)
	b = appendMsgpackStr(b, "Rate")
	b = appendMsgpackDecimal(b, v.Rate)
	b = appendMsgpackStr(b, "Gross")
	b = appendMsgpackDecimal(b, v.Gross)
	b = appendMsgpackStr(b, "VAT")
	return appendMsgpackDecimal(b, v.VAT)
}

// MarshalMsgpack encodes the discrepancy as msgpack's reflection did.
func (d Discrepancy) MarshalMsgpack() ([]byte, error) {
	return d.appendMsgpack(make([]byte, 0, 96)), nil
}

func (d *Discrepancy) appendMsgpack(b []byte) []byte {
	// omitempty on a decimal asks its IsZero, so 0.00 is left out too.
	tillD, nodeD := !d.TillDiscount.IsZero(), !d.NodeDiscount.IsZero()
	b = appendMsgpackMapLen(b, 3+boolInt(tillD)+boolInt(nodeD))
	b = appendMsgpackStr(b, "Line")
	b = appendMsgpackInt(b, int64(d.Line))
	b = appendMsgpackStr(b, "TillPrice")
	b = appendMsgpackDecimal(b, d.TillPrice)
	b = appendMsgpackStr(b, "NodePrice")
	b = appendMsgpackDecimal(b, d.NodePrice)
	if tillD {
		b = appendMsgpackStr(b, "TillDiscount")
		b = appendMsgpackDecimal(b, d.TillDiscount)
	}
	if nodeD {
		b = appendMsgpackStr(b, "NodeDiscount")
		b = appendMsgpackDecimal(b, d.NodeDiscount)
	}
	return b
}

// MarshalMsgpack encodes the fiscal data as msgpack's reflection did.
func (f Fiscal) MarshalMsgpack() ([]byte, error) { return f.appendMsgpack(make([]byte, 0, 64)), nil }

func (f *Fiscal) appendMsgpack(b []byte) []byte {
	b = appendMsgpackMapLen(b, 2)
	b = appendMsgpackStr(b, "DocumentNumber")
	b = appendMsgpackStr(b, f.DocumentNumber)
	b = appendMsgpackStr(b, "Sign")
	return appendMsgpackStr(b, f.Sign)
}

// MarshalMsgpack encodes the reversal as msgpack's reflection did.
func (p PointsReversal) MarshalMsgpack() ([]byte, error) {
	return p.appendMsgpack(make([]byte, 0, 96)), nil
}

func (p *PointsReversal) appendMsgpack(b []byte) []byte {
	b = appendMsgpackMapLen(b, 2+boolInt(p.Reversed != 0)+boolInt(p.Debt != 0))
	b = appendMsgpackStr(b, "Programme")
	b = appendMsgpackStr(b, string(p.Programme))
	b = appendMsgpackStr(b, "Customer")
	b = appendMsgpackStr(b, string(p.Customer))
	if p.Reversed != 0 {
		b = appendMsgpackStr(b, "Reversed")
		b = appendMsgpackInt64(b, p.Reversed)
	}
	if p.Debt != 0 {
		b = appendMsgpackStr(b, "Debt")
		b = appendMsgpackInt64(b, p.Debt)
	}
	return b
}

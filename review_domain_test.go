package storeline_test

import (
	"errors"
	"testing"

	"github.com/storeline/storeline"
)

// TestParseScanGS1ElementStrings: marking codes as GS1 element strings
// other than "01 GTIN 21 serial" with a non-digit in them.
func TestParseScanGS1ElementStrings(t *testing.T) {
	l := storeline.DefaultWeighedLayout()
	shoe := withCheck("0460000000001")
	for _, c := range []struct{ name, code, serial string }{
		{"numeric serial, no tail", "01" + shoe + "211234567890123", "1234567890123"},
		{"serial before GTIN", "21ABC\x1d01" + shoe, "ABC"},
		{"serial before GTIN, ]d2", "]d221ABC<GS>01" + shoe + "\x1d93dGVz", "ABC"},
		{"expiry and batch between", "01" + shoe + "17270131" + "10LOT42\x1d21SER9\x1d93abcd", "SER9"},
		{"batch first", "]d210LOT42\x1d01" + shoe + "21SER8", "SER8"},
		{"GS1 QR ]Q3", "]Q301" + shoe + "21ABC127\x1d93dGVz", "ABC127"},
		{"GS1-128 ]C1", "]C101" + shoe + "21ABC128", "ABC128"},
		{"GS1 DataBar ]e0", "]e001" + shoe + "21ABC129", "ABC129"},
		{"leading text GS", "<GS>01" + shoe + "21ABC130<GS>91EE07", "ABC130"},
		// Once both are found, the rest is the crypto tail, unchecked.
		{"tail unchecked", "01" + shoe + "21A\x1d01" + shoe + "21B", "A"},
	} {
		s, err := l.ParseScan(c.code)
		if err != nil || s.Kind != storeline.ScanMarked || s.GTIN != shoe || s.Serial != c.serial {
			t.Errorf("%s: ParseScan(%q) = %+v, %v; want marked %s serial %q", c.name, c.code, s, err, shoe, c.serial)
		}
	}
	for _, bad := range []string{
		"21ABC\x1d10LOT",                    // no GTIN
		"01" + shoe + "17270131" + "10LOT",  // no serial
		"01" + shoe + "1727013",             // expiry short of its 6 digits
		"]Q301" + shoe[:13] + "0" + "21ABC", // bad GTIN check digit
		"21A\x1d21B\x1d01" + shoe,           // two serials
		"01" + shoe + "01" + shoe + "21A",   // two GTINs
		"]d2xx01" + shoe + "21A",            // not an AI
	} {
		s, err := l.ParseScan(bad)
		if err == nil || !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "code" {
			t.Errorf("ParseScan(%q) = %+v, %v; want Invalid naming code", bad, s, err)
		}
	}
}

// TestReceiptRefusesBadLoyaltyIDs: the customer and programme are parts
// of account names; a slash in one posted to another customer's points.
func TestReceiptRefusesBadLoyaltyIDs(t *testing.T) {
	for _, c := range []struct {
		name, customer, programme, field string
	}{
		{"customer with a slash", "a/b", "prog", "customer"},
		{"customer with a space", "a b", "prog", "customer"},
		{"programme with a slash", "c1", "p/x", "programme"},
	} {
		r := saleReceipt()
		r.Customer, r.Programme, r.Earned = storeline.CustomerID(c.customer), storeline.ProgrammeID(c.programme), 5
		if err := r.Compute(); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != c.field {
			t.Errorf("%s: Compute = %v (field %q), want Invalid naming %s", c.name, err, storeline.FieldOf(err), c.field)
		}
	}
	r := saleReceipt()
	r.Customer, r.Programme, r.Earned = "c1", "prog", 5
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
}

// TestUnknownUnitCountsWhole: a unit this build does not know is not
// fractional, so 1.5 of it is refused like 1.5 pieces.
func TestUnknownUnitCountsWhole(t *testing.T) {
	for _, u := range []storeline.Unit{"box", "PCS", ""} {
		if u.Fractional() {
			t.Errorf("Unit(%q).Fractional() = true", u)
		}
		r := saleReceipt()
		r.Lines[0].Unit = u
		r.Lines[0].Qty = dec("1.5")
		if err := r.Compute(); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "lines[0].qty" {
			t.Errorf("unit %q: Compute = %v, want Invalid naming lines[0].qty", u, err)
		}
	}
	for _, u := range []storeline.Unit{storeline.Kg, storeline.Litre, storeline.Metre} {
		if !u.Fractional() {
			t.Errorf("Unit(%q).Fractional() = false", u)
		}
	}
}

// TestSerialLineIsOneUnit: a marked item's serial names one unit, and the
// serial count takes one line as one unit; a receipt or return line with a
// serial and another quantity was accepted.
func TestSerialLineIsOneUnit(t *testing.T) {
	r := saleReceipt()
	r.Lines[0].Serial, r.Lines[0].Qty = "ABC123", dec("2")
	if err := r.Compute(); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "lines[0].qty" {
		t.Fatalf("Compute = %v (field %q), want Invalid naming lines[0].qty", err, storeline.FieldOf(err))
	}
	r = saleReceipt()
	r.Lines[0].Serial, r.Lines[0].Qty = "ABC123", dec("1.000")
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	rt := &storeline.Return{
		Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR",
		Lines:   []storeline.Line{{Item: "shoe", Dept: "wear", Unit: storeline.Piece, Serial: "S1", Qty: dec("3"), Price: dec("10"), VATRate: dec("20")}},
		Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: dec("30")}},
	}
	if err := rt.Compute(); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "lines[0].qty" {
		t.Fatalf("return Compute = %v, want Invalid naming lines[0].qty", err)
	}
}

// TestStoreRefusesLocalZone: "Local" is the machine's zone to
// time.LoadLocation, so a store set to it would date and price a receipt
// by whichever machine reads it; it is refused, naming time_zone.
func TestStoreRefusesLocalZone(t *testing.T) {
	s := &storeline.Store{ID: "s1", Name: "Shop", TimeZone: "Local", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}}
	if err := s.Validate(); storeline.FieldOf(err) != "time_zone" {
		t.Fatalf("Validate(time zone Local) = %v, want an error naming time_zone", err)
	}
	s.TimeZone = "Europe/Riga"
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate(Europe/Riga) = %v", err)
	}
}

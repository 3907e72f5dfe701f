package storeline_test

import (
	"errors"
	"testing"

	"github.com/storeline/storeline"
)

// withCheck appends the GS1 check digit to body.
func withCheck(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return body + string(rune('0'+(10-sum%10)%10))
}

func TestParseScan(t *testing.T) {
	l := storeline.DefaultWeighedLayout()
	shoe := withCheck("0460000000001")
	for _, c := range []struct {
		name, code string
		kind       storeline.ScanKind
		gtin       string
		weight     string
		serial     string
	}{
		{"EAN-13", "4006381333931", storeline.ScanGTIN, "04006381333931", "", ""},
		{"EAN-8", "96385074", storeline.ScanGTIN, "00000096385074", "", ""},
		{"UPC-A", "036000291452", storeline.ScanGTIN, "00036000291452", "", ""},
		{"GTIN-14", "10614141000415", storeline.ScanGTIN, "10614141000415", "", ""},
		{"weighed 0.347 kg", withCheck("201234500347"), storeline.ScanWeighed, "0" + withCheck("201234500000"), "0.347", ""},
		{"weighed 12.5 kg", withCheck("281234512500"), storeline.ScanWeighed, "0" + withCheck("281234500000"), "12.5", ""},
		{"DataMatrix GS", "01" + shoe + "21ABC123\x1d93dGVz", storeline.ScanMarked, shoe, "", "ABC123"},
		{"DataMatrix leading GS", "\x1d01" + shoe + "21ABC124", storeline.ScanMarked, shoe, "", "ABC124"},
		{"DataMatrix text GS", "01" + shoe + "21ABC125<GS>93dGVz", storeline.ScanMarked, shoe, "", "ABC125"},
		{"DataMatrix ]d2", "]d201" + shoe + "21ABC126\x1d93dGVz", storeline.ScanMarked, shoe, "", "ABC126"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := l.ParseScan(c.code)
			if err != nil {
				t.Fatalf("ParseScan(%q): %v", c.code, err)
			}
			if s.Kind != c.kind || s.GTIN != c.gtin || s.Serial != c.serial {
				t.Fatalf("ParseScan(%q) = %+v, want kind %d gtin %s serial %q", c.code, s, c.kind, c.gtin, c.serial)
			}
			if c.weight != "" && !s.Weight.Equal(dec(c.weight)) {
				t.Fatalf("weight = %s, want %s", s.Weight, c.weight)
			}
		})
	}
	for _, bad := range []string{
		"", "4006381333932", "9638507", "96385075", "03600029145", "036000291453", "40063813339x1",
		withCheck("201234500000"), // a weighed code with zero weight
		"01" + shoe,               // marking code without AI 21
		"]d201" + shoe + "21",     // empty serial
		"]d201" + shoe + "21" + "ABCDEFGHIJKLMNOPQRSTU", // serial over 20
		string(make([]byte, storeline.MaxScanLen+1)),
	} {
		if s, err := l.ParseScan(bad); err == nil || !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "code" {
			t.Errorf("ParseScan(%q) = %+v, %v; want Invalid naming code", bad, s, err)
		}
	}
}

func TestNormalizeGTIN(t *testing.T) {
	for in, want := range map[string]string{
		"96385074":       "00000096385074",
		"036000291452":   "00036000291452",
		"4006381333931":  "04006381333931",
		"04006381333931": "04006381333931",
	} {
		if got, err := storeline.NormalizeGTIN(in); err != nil || got != want {
			t.Errorf("NormalizeGTIN(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
}

// FuzzParseScan checks that any scanned bytes parse or fail with Invalid,
// and that what parses is a well-formed GTIN-14 whose check digit holds.
func FuzzParseScan(f *testing.F) {
	shoe := withCheck("0460000000001")
	for _, s := range []string{
		"4006381333931", "96385074", "036000291452", "10614141000415",
		withCheck("201234500347"), withCheck("201234500000"),
		"01" + shoe + "21ABC\x1d93x", "]d201" + shoe + "21A<GS>91", "\x1d01" + shoe + "21Z",
		"0100000000000000210", "", "<GS>", "]d2",
		// GS1 element strings in other orders and symbologies.
		"01" + shoe + "211234567890123", "21ABC\x1d01" + shoe, "]d221ABC<GS>01" + shoe + "\x1d93x",
		"01" + shoe + "17270131" + "10LOT\x1d21S\x1d93x", "]Q301" + shoe + "21A\x1d93x", "]C101" + shoe + "21A",
		"]e001" + shoe + "21A", "<GS>01" + shoe + "21A", "21A\x1d21B\x1d01" + shoe, "01" + shoe + "1727013",
		"]d2xx01" + shoe + "21A", "8005123456" + "01" + shoe + "21A",
	} {
		f.Add(s)
	}
	l := storeline.DefaultWeighedLayout()
	f.Fuzz(func(t *testing.T, code string) {
		s, err := l.ParseScan(code)
		if err != nil {
			if !errors.Is(err, storeline.Invalid) {
				t.Fatalf("ParseScan(%q): %v, want Invalid", code, err)
			}
			return
		}
		if g, err := storeline.NormalizeGTIN(s.GTIN); err != nil || g != s.GTIN {
			t.Fatalf("ParseScan(%q).GTIN = %q: not a normalised GTIN-14 (%v)", code, s.GTIN, err)
		}
		if s.Kind == storeline.ScanWeighed && !s.Weight.IsPositive() {
			t.Fatalf("ParseScan(%q): weight %s", code, s.Weight)
		}
		if s.Kind == storeline.ScanMarked && (len(s.Serial) == 0 || len(s.Serial) > 20) {
			t.Fatalf("ParseScan(%q): serial %q", code, s.Serial)
		}
	})
}

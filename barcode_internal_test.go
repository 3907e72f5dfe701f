package storeline_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/storeline/storeline"
)

func TestDefaultLayoutLeavesTheInternalPrefixFree(t *testing.T) {
	l := storeline.DefaultWeighedLayout()
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckInternalPrefix(storeline.DefaultInternalPrefix); err != nil {
		t.Fatalf("the default internal prefix against the default layout: %v", err)
	}
	for _, bad := range []string{"20", "28", "19", "30", "2", "2x", "290"} {
		if err := l.CheckInternalPrefix(bad); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "prefix" {
			t.Errorf("CheckInternalPrefix(%q) = %v, want Invalid naming prefix", bad, err)
		}
	}
	// A chain whose scales print 29 must pick another internal prefix.
	l.Prefixes = append(l.Prefixes, "29")
	if err := l.CheckInternalPrefix("29"); err == nil {
		t.Fatal("a prefix the layout claims was accepted")
	}
}

func TestInternalEAN13ScansAsAPieceCode(t *testing.T) {
	l := storeline.DefaultWeighedLayout()
	for _, c := range []struct {
		serial uint64
		want   string
	}{{1, withCheck("290000000001")}, {12345, withCheck("290000012345")}, {storeline.MaxInternalSerial, withCheck("299999999999")}} {
		code, err := storeline.InternalEAN13("29", c.serial)
		if err != nil || code != c.want {
			t.Fatalf("InternalEAN13(29, %d) = %s, %v; want %s", c.serial, code, err, c.want)
		}
		s, err := l.ParseScan(code)
		if err != nil || s.Kind != storeline.ScanGTIN || s.GTIN != "0"+code {
			t.Fatalf("ParseScan(%s) = %+v, %v; want the GTIN itself, not a weight", code, s, err)
		}
	}
	if _, err := storeline.InternalEAN13("29", storeline.MaxInternalSerial+1); !errors.Is(err, storeline.Invalid) {
		t.Fatalf("a serial past ten digits: %v", err)
	}
}

// decodeEAN13 reads 95 modules back to the 13 digits, with digit sets
// built here from the standard's L set alone (R its complement, G R
// reversed), so a wrong entry in barcode.go's tables cannot agree.
func decodeEAN13(t *testing.T, m []bool) string {
	t.Helper()
	bits := make([]byte, len(m))
	for i, b := range m {
		bits[i] = '0'
		if b {
			bits[i] = '1'
		}
	}
	s := string(bits)
	if len(s) != 95 || s[:3] != "101" || s[45:50] != "01010" || s[92:] != "101" {
		t.Fatalf("guards wrong in %s", s)
	}
	l := []string{"0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111", "0001011"}
	digit := func(w string) (byte, byte) {
		for d, p := range l {
			r := strings.Map(func(c rune) rune { return '0' + '1' - c }, p)
			g := []byte(r)
			for i, j := 0, len(g)-1; i < j; i, j = i+1, j-1 {
				g[i], g[j] = g[j], g[i]
			}
			switch w {
			case p:
				return byte('0' + d), 'L'
			case string(g):
				return byte('0' + d), 'G'
			case r:
				return byte('0' + d), 'R'
			}
		}
		t.Fatalf("no digit has the modules %s", w)
		return 0, 0
	}
	var digits, parity []byte
	for i := 0; i < 12; i++ {
		off := 3 + 7*i
		if i >= 6 {
			off += 5
		}
		d, set := digit(s[off : off+7])
		if (i < 6 && set == 'R') || (i >= 6 && set != 'R') {
			t.Fatalf("digit %d in set %c", i+2, set)
		}
		digits, parity = append(digits, d), append(parity, set)
	}
	first := strings.Index("LLLLLL LLGLGG LLGGLG LLGGGL LGLLGG LGGLLG LGGGLL LGLGLG LGLGGL LGGLGL", string(parity[:6]))
	if first < 0 || first%7 != 0 {
		t.Fatalf("left parity %s names no first digit", parity[:6])
	}
	return string(rune('0'+first/7)) + string(digits)
}

func TestEAN13ModulesDecodeBack(t *testing.T) {
	codes := []string{"4006381333931", "5901234123457", "0036000291452", withCheck("290000000001"), withCheck("299999999999")}
	// Every first digit with every other digit: each digit in each of
	// L, G and R, and each parity pattern.
	for f := '0'; f <= '9'; f++ {
		for d := '0'; d <= '9'; d++ {
			codes = append(codes, withCheck(string(f)+strings.Repeat(string(d), 11)))
		}
	}
	for _, code := range codes {
		m, err := storeline.EAN13Modules(code)
		if err != nil {
			t.Fatalf("EAN13Modules(%s): %v", code, err)
		}
		if got := decodeEAN13(t, m); got != code {
			t.Fatalf("EAN13Modules(%s) decodes to %s", code, got)
		}
	}
	for _, bad := range []string{"4006381333932", "400638133393", "96385074"} {
		if _, err := storeline.EAN13Modules(bad); !errors.Is(err, storeline.Invalid) {
			t.Errorf("EAN13Modules(%s) = %v, want Invalid", bad, err)
		}
	}
}

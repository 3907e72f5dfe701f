package storeline

import (
	"strings"

	"github.com/shopspring/decimal"
)

// ScanKind says what a scanned code turned out to be.
type ScanKind uint8

// The kinds of scan.
const (
	ScanGTIN    ScanKind = iota + 1 // EAN-13, EAN-8, UPC-A or GTIN-14
	ScanWeighed                     // an in-store barcode with the weight inside
	ScanMarked                      // a GS1 DataMatrix marking code: GTIN + serial
)

// Scan is a parsed barcode. GTIN is the GTIN-14 to look the item up by; for
// a weighed barcode it is the item's code with the weight digits zeroed,
// which is how the item lists it.
type Scan struct {
	Kind   ScanKind
	GTIN   string
	Weight decimal.Decimal // kg, for ScanWeighed
	Serial string          // for ScanMarked
}

// MaxScanLen bounds a scanned code; DataMatrix marking codes with their
// crypto tails run to about 150 bytes.
const MaxScanLen = 256

// gs is the GS1 group separator (FNC1 in element strings).
const gs = "\x1d"

// WeighedLayout describes a chain's in-store weighed barcodes: EAN-13 codes
// whose first two digits are one of Prefixes, laid out as Pattern, a
// 13-character string of P (prefix), I (item code), W (weight) and a final
// C (check digit), e.g. "PPIIIIIWWWWWC". The weight is an integer in units
// of 10^-WeightDecimals kg (3 means grams).
type WeighedLayout struct {
	Prefixes       []string
	Pattern        string
	WeightDecimals int32
}

// DefaultWeighedLayout is prefixes 20-29, PP IIIII WWWWW C, grams.
func DefaultWeighedLayout() WeighedLayout {
	return WeighedLayout{
		Prefixes:       []string{"20", "21", "22", "23", "24", "25", "26", "27", "28", "29"},
		Pattern:        "PPIIIIIWWWWWC",
		WeightDecimals: 3,
	}
}

// Validate checks the layout.
func (l WeighedLayout) Validate() error {
	if len(l.Pattern) != 13 || !strings.HasPrefix(l.Pattern, "PP") || l.Pattern[12] != 'C' {
		return Invalidf("pattern", "pattern %q: want 13 characters, PP first, C last", l.Pattern)
	}
	if strings.Trim(l.Pattern[2:12], "IW") != "" || !strings.Contains(l.Pattern, "W") || !strings.Contains(l.Pattern, "I") {
		return Invalidf("pattern", "pattern %q: positions 3-12 must be I and W, with at least one of each", l.Pattern)
	}
	for _, p := range l.Prefixes {
		if len(p) != 2 || p < "20" || p > "29" {
			return Invalidf("prefixes", "prefix %q: want two digits from 20 to 29", p)
		}
	}
	if l.WeightDecimals < 0 || l.WeightDecimals > QtyScale {
		return Invalidf("weight_decimals", "%d out of range [0, %d]", l.WeightDecimals, QtyScale)
	}
	return nil
}

// ParseScan parses what a till's scanner read.
func (l WeighedLayout) ParseScan(code string) (Scan, error) {
	if len(code) == 0 || len(code) > MaxScanLen {
		return Scan{}, Invalidf("code", "a code is 1-%d bytes", MaxScanLen)
	}
	if isMarking(code) {
		return parseMarking(code)
	}
	gtin, err := NormalizeGTIN(code)
	if err != nil {
		return Scan{}, err
	}
	if len(code) == 13 && l.weighedPrefix(code[:2]) {
		var item, weight strings.Builder
		zeroed := []byte(code[:12])
		for i := 2; i < 12; i++ {
			switch l.Pattern[i] {
			case 'I':
				item.WriteByte(code[i])
			case 'W':
				weight.WriteByte(code[i])
				zeroed[i] = '0'
			}
		}
		w, _ := decimal.NewFromString(weight.String()) // digits only, checked above
		w = w.Shift(-l.WeightDecimals)
		if !w.IsPositive() {
			return Scan{}, Invalidf("code", "weighed barcode %s carries zero weight", code)
		}
		key := string(zeroed) + string(checkDigit(string(zeroed)))
		return Scan{Kind: ScanWeighed, GTIN: "0" + key, Weight: w.Round(QtyScale)}, nil
	}
	return Scan{Kind: ScanGTIN, GTIN: gtin}, nil
}

func (l WeighedLayout) weighedPrefix(p string) bool {
	for _, x := range l.Prefixes {
		if x == p {
			return true
		}
	}
	return false
}

// NormalizeGTIN checks an EAN-8, UPC-A, EAN-13 or GTIN-14 and its check
// digit, and returns it as a GTIN-14 (left-padded with zeros), the one form
// barcodes are stored and looked up in.
func NormalizeGTIN(code string) (string, error) {
	switch len(code) {
	case 8, 12, 13, 14:
	default:
		return "", Invalidf("code", "%q: a barcode has 8, 12, 13 or 14 digits", code)
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", Invalidf("code", "%q: a barcode has digits only", code)
		}
	}
	if want := checkDigit(code[:len(code)-1]); code[len(code)-1] != want {
		return "", Invalidf("code", "%q: bad check digit, want %c", code, want)
	}
	return strings.Repeat("0", 14-len(code)) + code, nil
}

// checkDigit computes the GS1 mod-10 check digit of the digits before it.
func checkDigit(body string) byte {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

func isMarking(code string) bool {
	return strings.HasPrefix(code, "]d2") || strings.HasPrefix(code, gs) ||
		(len(code) > 16 && strings.HasPrefix(code, "01") && strings.Contains(code[16:], "21") && !isDigits(code))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseMarking parses a GS1 DataMatrix element string: AI 01 (GTIN-14),
// then AI 21 (serial, up to 20 characters, ended by a group separator or
// the end). Later elements (the crypto tail) are not ours to check.
func parseMarking(code string) (Scan, error) {
	s := strings.TrimPrefix(code, "]d2")
	s = strings.ReplaceAll(s, "<GS>", gs)
	s = strings.TrimPrefix(s, gs)
	if !strings.HasPrefix(s, "01") || len(s) < 16 {
		return Scan{}, Invalidf("code", "marking code must start with AI 01 and a GTIN-14")
	}
	gtin, err := NormalizeGTIN(s[2:16])
	if err != nil {
		return Scan{}, err
	}
	s = s[16:]
	if !strings.HasPrefix(s, "21") {
		return Scan{}, Invalidf("code", "marking code must carry AI 21 (serial) after the GTIN")
	}
	s = s[2:]
	serial, _, _ := strings.Cut(s, gs)
	if len(serial) == 0 || len(serial) > 20 {
		return Scan{}, Invalidf("code", "serial must be 1-20 characters, got %d", len(serial))
	}
	for i := 0; i < len(serial); i++ {
		if serial[i] < 0x21 || serial[i] > 0x7e {
			return Scan{}, Invalidf("code", "serial has a byte 0x%02x outside printable ASCII", serial[i])
		}
	}
	return Scan{Kind: ScanMarked, GTIN: gtin, Serial: serial}, nil
}

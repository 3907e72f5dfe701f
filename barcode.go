package storeline

import (
	"fmt"
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

// DefaultWeighedLayout is prefixes 20-28, PP IIIII WWWWW C, grams. It
// leaves 29, DefaultInternalPrefix, to the piece codes head office
// allocates: a code of a prefix the scales print is read as a weight.
func DefaultWeighedLayout() WeighedLayout {
	return WeighedLayout{
		Prefixes:       []string{"20", "21", "22", "23", "24", "25", "26", "27", "28"},
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

// Claims reports whether the layout reads codes of the two-digit prefix
// p as weighed barcodes.
func (l WeighedLayout) Claims(p string) bool { return l.weighedPrefix(p) }

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

// gs1SymbologyIDs are the AIM symbology identifiers a scanner may send
// before a GS1 element string: GS1 DataMatrix, GS1-128, GS1 QR Code and
// GS1 DataBar. The data after them is the same element string.
var gs1SymbologyIDs = [...]string{"]d2", "]C1", "]Q3", "]e0"}

// isMarking reports whether code is a GS1 element string rather than a
// plain GTIN: it carries a GS1 symbology identifier or a leading group
// separator, or it is too long for a GTIN (the shortest marking code, AI
// 01 with its GTIN and AI 21 with one character, has 19).
func isMarking(code string) bool {
	for _, p := range gs1SymbologyIDs {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return strings.HasPrefix(code, gs) || strings.HasPrefix(code, "<GS>") || len(code) > 16
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// gs1AI returns the length of the application identifier s starts with
// and, for the AIs whose data length the GS1 General Specifications
// predefine (no separator follows them), that length; 0 for data of
// variable length, ended by a group separator or the end of the string.
func gs1AI(s string) (aiLen, dataLen int, ok bool) {
	if len(s) < 2 || !isDigits(s[:2]) {
		return 0, 0, false
	}
	p := s[:2]
	switch {
	case p == "00":
		aiLen, dataLen = 2, 18
	case p == "01" || p == "02" || p == "03":
		aiLen, dataLen = 2, 14
	case p == "04":
		aiLen, dataLen = 2, 16
	case p >= "11" && p <= "19":
		aiLen, dataLen = 2, 6
	case p == "20":
		aiLen, dataLen = 2, 2
	case p == "10" || p == "21" || p == "22" || p == "30" || p == "37" || p >= "90":
		aiLen = 2
	case p == "41":
		aiLen, dataLen = 3, 13
	case p == "23" || p == "24" || p == "25" || p == "40" || p == "42" || p == "71":
		aiLen = 3
	case p >= "31" && p <= "36":
		aiLen, dataLen = 4, 6
	case p == "39" || p == "43" || p == "70" || p == "72" || p == "80" || p == "81" || p == "82":
		aiLen = 4
	default:
		return 0, 0, false
	}
	if len(s) < aiLen || !isDigits(s[:aiLen]) {
		return 0, 0, false
	}
	return aiLen, dataLen, true
}

// parseMarking parses a GS1 element string (DataMatrix, or another GS1
// symbology) for AI 01 (GTIN-14) and AI 21 (serial, up to 20 characters),
// in whatever order they come and whatever elements come between them
// (expiry 17, batch 10, ...). A variable-length element ends at a group
// separator (the byte 0x1D or the text <GS>) or at the end. Elements after
// both are found (the crypto tail) are not ours to check.
func parseMarking(code string) (Scan, error) {
	s := code
	for _, p := range gs1SymbologyIDs {
		if t, ok := strings.CutPrefix(s, p); ok {
			s = t
			break
		}
	}
	s = strings.ReplaceAll(s, "<GS>", gs)
	var gtin, serial string
	haveGTIN, haveSerial := false, false
	for len(s) > 0 && !(haveGTIN && haveSerial) {
		if s[0] == gs[0] {
			s = s[1:]
			continue
		}
		aiLen, dataLen, ok := gs1AI(s)
		if !ok {
			return Scan{}, Invalidf("code", "marking code: no GS1 application identifier at %q", truncate(s, 8))
		}
		ai := s[:aiLen]
		s = s[aiLen:]
		var v string
		if dataLen > 0 {
			if len(s) < dataLen || !isDigits(s[:dataLen]) {
				return Scan{}, Invalidf("code", "marking code: AI %s wants %d digits", ai, dataLen)
			}
			v, s = s[:dataLen], s[dataLen:]
		} else {
			v, s, _ = strings.Cut(s, gs)
		}
		switch ai {
		case "01":
			if haveGTIN {
				return Scan{}, Invalidf("code", "marking code carries AI 01 twice")
			}
			gtin, haveGTIN = v, true
		case "21":
			if haveSerial {
				return Scan{}, Invalidf("code", "marking code carries AI 21 twice")
			}
			serial, haveSerial = v, true
		}
	}
	if !haveGTIN {
		return Scan{}, Invalidf("code", "marking code must carry AI 01 and a GTIN-14")
	}
	gtin, err := NormalizeGTIN(gtin)
	if err != nil {
		return Scan{}, err
	}
	if !haveSerial {
		return Scan{}, Invalidf("code", "marking code must carry AI 21 (serial)")
	}
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// DefaultInternalPrefix is the GS1 restricted-circulation prefix of the
// EAN-13s head office allocates to items without a manufacturer's
// barcode; DefaultWeighedLayout leaves it free.
const DefaultInternalPrefix = "29"

// MaxInternalSerial is the highest serial an internal EAN-13 carries:
// ten digits between the two of the prefix and the check digit.
const MaxInternalSerial = 9_999_999_999

// CheckInternalPrefix checks an internal-code prefix against the weighed
// layout: two digits from 20 to 29 (the in-store range, which no
// manufacturer is given) that the layout does not read as weighed, or a
// till would take a piece code for a weight.
func (l WeighedLayout) CheckInternalPrefix(p string) error {
	if len(p) != 2 || p < "20" || p > "29" || !isDigits(p) {
		return Invalidf("prefix", "internal barcode prefix %q: want two digits from 20 to 29", p)
	}
	if l.Claims(p) {
		return Invalidf("prefix", "internal barcode prefix %s is a weighed prefix of the layout (%s): take one the layout leaves free",
			p, strings.Join(l.Prefixes, ","))
	}
	return nil
}

// InternalEAN13 returns the internal EAN-13 of prefix and serial: the
// prefix, the serial in ten digits, and the check digit.
func InternalEAN13(prefix string, serial uint64) (string, error) {
	if len(prefix) != 2 || !isDigits(prefix) {
		return "", Invalidf("prefix", "internal barcode prefix %q: want two digits", prefix)
	}
	if serial > MaxInternalSerial {
		return "", Invalidf("serial", "internal barcode serial %d over %d", serial, MaxInternalSerial)
	}
	body := prefix + fmt.Sprintf("%010d", serial)
	return body + string(checkDigit(body)), nil
}

// EAN13Modules is the 95 modules of an EAN-13's bars, true for a dark
// one: start guard 101, the six left digits in sets L and G as the first
// digit chooses, centre guard 01010, the six right digits in set R, end
// guard 101. The first digit has no bars of its own. code is 13 digits
// with a good check digit.
func EAN13Modules(code string) ([]bool, error) {
	if len(code) != 13 {
		return nil, Invalidf("code", "%q: an EAN-13 has 13 digits", code)
	}
	if _, err := NormalizeGTIN(code); err != nil {
		return nil, err
	}
	m := make([]bool, 0, 95)
	put := func(bits string) {
		for i := 0; i < len(bits); i++ {
			m = append(m, bits[i] == '1')
		}
	}
	put("101")
	parity := ean13Parity[code[0]-'0']
	for i := 1; i <= 6; i++ {
		d := code[i] - '0'
		if parity[i-1] == 'G' {
			put(ean13G[d])
		} else {
			put(ean13L[d])
		}
	}
	put("01010")
	for i := 7; i <= 12; i++ {
		put(ean13R[code[i]-'0'])
	}
	put("101")
	return m, nil
}

// The EAN-13 digit sets (ISO/IEC 15420): L odd parity, G even parity
// (R read backwards), R the complement of L.
var (
	ean13L = [10]string{"0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111", "0001011"}
	ean13G = [10]string{"0100111", "0110011", "0011011", "0100001", "0011101", "0111001", "0000101", "0010001", "0001001", "0010111"}
	ean13R = [10]string{"1110010", "1100110", "1101100", "1000010", "1011100", "1001110", "1010000", "1000100", "1001000", "1110100"}
	// ean13Parity is the set of each left digit, by the first digit.
	ean13Parity = [10]string{"LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"}
)

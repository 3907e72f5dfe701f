package storeline_test

import (
	"testing"

	"github.com/storeline/storeline"
)

// Marking codes as scanners send them: the separator as 0x1D, as <GS>, or
// after ]d2; the serial before the GTIN; batch and expiry between them; a
// trailing separator; the crypto tail after.
func TestReviewBarcodeMarkingForms(t *testing.T) {
	const g = "04600000000015"
	l := storeline.DefaultWeighedLayout()
	for _, code := range []string{
		"01" + g + "21ABC123",
		"01" + g + "21ABC123\x1d",
		"]d2\x1d01" + g + "21ABC123\x1d91EE06\x1d92dGVzdA==",
		"]d221ABC123\x1d01" + g,
		"<GS>21ABC123<GS>17270101" + "01" + g,
		"10LOT1\x1d17270101" + "01" + g + "21ABC123<GS>",
	} {
		sc, err := l.ParseScan(code)
		if err != nil || sc.Kind != storeline.ScanMarked || sc.GTIN != g || sc.Serial != "ABC123" {
			t.Errorf("ParseScan(%q) = %+v, %v", code, sc, err)
		}
	}
	for _, code := range []string{
		"01" + g[:13] + "4" + "21ABC123", // bad GTIN check digit
		"01" + g + "21\x1d91EE06",        // empty serial
		"01" + g + "10LOT1",              // no serial
	} {
		if sc, err := l.ParseScan(code); err == nil {
			t.Errorf("ParseScan(%q) = %+v, want an error", code, sc)
		}
	}
}

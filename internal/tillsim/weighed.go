package tillsim

import (
	"fmt"
	"strings"

	"github.com/storeline/storeline"
)

// weighedPrinter prints in-store weighed barcodes, as a shop's scale does,
// for the chain's layout.
type weighedPrinter struct{ l storeline.WeighedLayout }

// isWeighed reports whether a stored barcode (GTIN-14) is an item's
// weighed code: a 13-digit code behind the leading zero, with a weighed
// prefix.
func (w weighedPrinter) isWeighed(gtin14 string) bool {
	if len(gtin14) != 14 || gtin14[0] != '0' {
		return false
	}
	for _, p := range w.l.Prefixes {
		if gtin14[1:3] == p {
			return true
		}
	}
	return false
}

// print returns the 13-digit code of base (the item's code, weight digits
// zero) carrying weight, in units of 10^-WeightDecimals kg (grams for the
// default layout), with its check digit. A weight too big for the layout's
// W digits is an error.
func (w weighedPrinter) print(base string, units int) (string, error) {
	nw := strings.Count(w.l.Pattern, "W")
	digits := fmt.Sprintf("%0*d", nw, units)
	if len(digits) != nw || units <= 0 {
		return "", fmt.Errorf("tillsim: weight %d does not fit %d digits", units, nw)
	}
	b := []byte(base[:12])
	k := 0
	for i := 2; i < 12; i++ {
		if w.l.Pattern[i] == 'W' {
			b[i] = digits[k]
			k++
		}
	}
	return string(b) + string(checkDigit(string(b))), nil
}

// checkDigit is the GS1 mod-10 check digit of the digits before it.
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

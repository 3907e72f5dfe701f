package posbridge_test

import (
	"errors"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// FuzzDecodeBasketPrice feeds the basket-pricing decoder arbitrary bytes:
// it must never panic, and every refusal must be an Invalid error.
func FuzzDecodeBasketPrice(f *testing.F) {
	for _, s := range []string{
		`{"occurred_at":"2026-03-10T09:00:00Z","card":"CARD0001","lines":[{"sku":"MILK","qty":"2"},{"barcode":"4601234567893","qty":"1","price":"1.19"}]}`,
		`{"lines":[{"qty":"1e9"}]}`,
		`{"lines":[{"price":1}]}`,
		`{"lines":[{"discount":"1"}]}`,
		`{"lines":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}`,
		`{"occurred_at":5}`,
		`{} []`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := posbridge.DecodeBasketPrice(b)
		if err != nil && !errors.Is(err, storeline.Invalid) {
			t.Fatalf("decode %q: %v (kind %s), want an Invalid error", b, err, storeline.KindOf(err))
		}
	})
}

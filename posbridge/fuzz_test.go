package posbridge_test

import (
	"errors"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// FuzzDecodeReceipt feeds the till's receipt decoder arbitrary bytes: it
// must never panic, and every refusal must be an Invalid error (a 400 or
// 422 problem), never an internal one.
func FuzzDecodeReceipt(f *testing.F) {
	for _, s := range []string{
		`{"id":"01890a5d-ac96-774b-bcce-b302099a8057","terminal":"t1","shift":"sh1","seller":"alice","occurred_at":"2026-03-10T09:00:00Z","catalog_version":3,"card":"CARD0001","lines":[{"sku":"MILK","qty":"2","price":"1.19","discount":"0.10"},{"barcode":"4601234567893","qty":"1","price":"1.19","serial":"X"}],"payments":[{"method":"cash","amount":"5.00"},{"method":"card","amount":"1","reference":"r","auth_code":"a"}],"fiscal":{"document_number":"1","sign":"s"}}`,
		`{"lines":[{"qty":"1e9"}]}`,
		`{"lines":[{"qty":1}]}`,
		`{"lines":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}`,
		`{"x":1}`,
		`{} {}`,
		`{"payments":[{"amount":"-0.5"}]}`,
		`{"occurred_at":"yesterday"}`,
		`"string"`,
		``,
		`{"lines":[{"price":"99999999999999999999999999999999999"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := posbridge.DecodeReceipt(b)
		if err != nil && !errors.Is(err, storeline.Invalid) && !errors.Is(err, storeline.TooLarge) {
			t.Fatalf("decode %q: %v (kind %s), want an Invalid error", b, err, storeline.KindOf(err))
		}
	})
}

package posbridge

import (
	"reflect"
	"testing"
)

// BenchmarkDecodeReceipt: a 5-line receipt through the strict decoder
// (decode) and its shape check alone (shape: depth, repeated keys, case).
func BenchmarkDecodeReceipt(b *testing.B) {
	body := []byte(`{"id":"01a229f6-b8dd-747e-908f-e5ef7b4bc997","terminal":"t1","shift":"sh1","seller":"alice","occurred_at":"2026-03-10T09:00:00Z","catalog_version":3,"card":"CARD0001","lines":[{"sku":"MILK","qty":"1","price":"1.19"},{"sku":"COLA","qty":"2","price":"2.00"},{"barcode":"4006381333931","qty":"1","price":"3.10","discount":"0.10"},{"sku":"BREAD","qty":"1","price":"1.50"},{"sku":"EGGS","qty":"1","price":"2.99"}],"payments":[{"method":"card","amount":"10.00","reference":"R1","auth_code":"A1"},{"method":"cash","amount":"5"}],"fiscal":{"document_number":"F-1","sign":"abc"}}`)
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var in receiptIn
			if err := decodeJSON(body, 32, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shape", func(b *testing.B) {
		for b.Loop() {
			var in receiptIn
			if err := checkShape(body, 32, reflect.TypeOf(&in)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

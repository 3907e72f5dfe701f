package central

import (
	"encoding/json"
	"testing"

	"github.com/storeline/storeline"
)

// FuzzDecodeWire feeds the head-office API's record decoder arbitrary
// bytes for every master kind. It must never panic; what it accepts must
// encode back to JSON and decode again to the same record, so a value the
// API stored is a value it can serve and take back.
func FuzzDecodeWire(f *testing.F) {
	for _, seed := range []string{
		`{"sku":"A1","name":"Milk","group":"g1","dept":"food","unit":"pcs","vat_rate":"10"}`,
		`{"name":"Retail","currency":"EUR"}`,
		`{"code":"2000000000015","item":"i1","factor":"12"}`,
		`{"name":"G","parent":"g0"}`,
		`{"name":"Ann","phone":"+371 2000 0000","card":"C1"}`,
		`{"a":{"b":[1,2,{"c":null}]}}`,
		`[]`, `null`, `{}`, `{"vat_rate":1e400}`, `{"name":"\u0000"}`,
	} {
		for i := range storeline.MasterKinds {
			f.Add(i, []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind int, raw []byte) {
		if kind < 0 || kind >= len(storeline.MasterKinds) {
			return
		}
		k := storeline.MasterKinds[kind]
		rec, err := storeline.NewRecord(k)
		if err != nil {
			t.Fatalf("NewRecord(%s): %v", k, err)
		}
		if decodeWire(raw, rec) != nil {
			return
		}
		_ = rec.Validate() // must not panic on anything the decoder let through
		out, err := json.Marshal(encodeWire(rec))
		if err != nil {
			t.Fatalf("%s: %s decoded but does not encode: %v", k, raw, err)
		}
		again, _ := storeline.NewRecord(k)
		if err := decodeWire(out, again); err != nil {
			t.Fatalf("%s: %s decoded, encoded as %s, which does not decode: %v", k, raw, out, err)
		}
		b1, _ := json.Marshal(encodeWire(rec))
		b2, _ := json.Marshal(encodeWire(again))
		if string(b1) != string(b2) {
			t.Fatalf("%s: round trip changed the record:\n%s\n%s", k, b1, b2)
		}
	})
}

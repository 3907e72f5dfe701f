package node_test

import (
	"encoding/json"
	"testing"

	"github.com/storeline/storeline/node"
)

// FuzzDecodeMaster feeds the admin import decoder arbitrary bodies: it must
// never panic, and what it accepts must be valid records.
func FuzzDecodeMaster(f *testing.F) {
	f.Add([]byte(`{"records":[{"kind":"group","record":{"ID":"g1","Name":"G"}}]}`))
	f.Add([]byte(`{"records":[{"kind":"item","record":{"ID":"i","SKU":"s","Name":"n","Group":"g","Dept":"d","Unit":"kg","Weighed":true,"VATRate":"7","Barcodes":[{"Code":"2100001000005"}]}}]}`))
	f.Add([]byte(`{"records":[{"kind":"price","record":{"List":"l","Item":"i","From":"2020-01-01T00:00:00Z","Price":"1.5"}}]}`))
	f.Add([]byte(`{"records":[{"kind":"nope","record":{}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var imp node.MasterImport
		if json.Unmarshal(body, &imp) != nil {
			return
		}
		recs, err := node.DecodeMaster(imp)
		if err != nil {
			return
		}
		for _, r := range recs {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted %s %q that does not validate: %v", r.MasterKind(), r.MasterID(), err)
			}
		}
	})
}

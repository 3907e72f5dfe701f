package central_test

import (
	"net/http"
	"testing"

	"github.com/storeline/storeline"
)

// TestBodiesNameEachFieldOnce: a record or request naming a field twice
// (the decoders kept the last: a "price" overridden further down) or, for
// bodies decoded into Go structs, in another case than the spec's, is a
// 400 naming the key, and nothing is written.
func TestBodiesNameEachFieldOnce(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 1)
	for _, c := range []struct{ name, method, path, body, field string }{
		{"item field twice", "PUT", "/v1/items/i7",
			`{"sku":"SKU7","name":"Item 7","group":"food","dept":"main","unit":"pcs","vat_rate":"21","vat_rate":"0"}`, "vat_rate"},
		{"barcode field twice", "PUT", "/v1/items/i8",
			`{"sku":"SKU8","name":"Item 8","group":"food","dept":"main","unit":"pcs","vat_rate":"21","barcodes":[{"code":"4601234567893","code":"4006381333931"}]}`, "barcodes[0].code"},
		{"import collection twice", "POST", "/v1/import",
			`{"items":[],"items":[{"id":"i9","sku":"SKU9","name":"Item 9","group":"food","dept":"main","unit":"pcs","vat_rate":"21"}]}`, "items"},
		{"grant field in another case", "POST", "/v1/loyalty/grants",
			`{"id":"g-1","programme":"club","customer":"c1","store":"s1","Points":5}`, "Points"},
		{"grant field twice", "POST", "/v1/loyalty/grants",
			`{"id":"g-1","programme":"club","customer":"c1","store":"s1","points":5,"points":500}`, "points"},
	} {
		t.Run(c.name, func(t *testing.T) {
			problemOf(t, apiDo(t, c.method, a, c.path, adminKey, c.body, nil), http.StatusBadRequest, c.field)
		})
	}
	for _, id := range []string{"i7", "i8", "i9"} {
		var it storeline.Item
		if err := n.Replica().GetMaster(storeline.KindItem, id, &it); storeline.KindOf(err) != storeline.NotFound {
			t.Errorf("%s: stored by a refused request (%v)", id, err)
		}
	}
}

package storeline_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/storeline/storeline"
)

type shapeLine struct {
	SKU string `json:"sku"`
	Qty string `json:"qty"`
}

type shapeBody struct {
	ID    string      `json:"id"`
	Lines []shapeLine `json:"lines"`
	Plain string      // no tag: encoding/json's name is Plain
}

type shapeWithMap struct {
	ID    string            `json:"id"`
	Extra map[string]string `json:"extra"`
}

func TestCheckJSONShape(t *testing.T) {
	typ := reflect.TypeFor[shapeBody]()
	for _, c := range []struct {
		name, body string
		t          reflect.Type
		field      string // "" and ok: accepted
		ok         bool
	}{
		{"plain", `{"id":"a","lines":[{"sku":"x","qty":"1"},{"sku":"y","qty":"2"}]}`, typ, "", true},
		{"keys in string values", `{"id":"{\"id\":1,\"id\":2}","lines":[{"sku":"a,\"sku\":[","qty":"1"}]}`, typ, "", true},
		{"same key in siblings", `{"lines":[{"sku":"x"},{"sku":"y"}],"id":"z"}`, typ, "", true},
		{"untagged field by its Go name", `{"Plain":"p"}`, typ, "", true},
		{"unknown left to the decoder", `{"nope":1,"NOPE2":2}`, typ, "", true},
		{"repeated", `{"id":"a","id":"b"}`, typ, "id", false},
		{"repeated nested", `{"lines":[{"sku":"x","qty":"1","qty":"2"}]}`, typ, "lines[0].qty", false},
		{"repeated after a nested object", `{"id":"a","lines":[{"id":"x"}],"id":"b"}`, typ, "id", false},
		{"repeated escaped", `{"id":"a","\u0069d":"b"}`, typ, "id", false},
		{"case", `{"ID":"a"}`, typ, "ID", false},
		{"case nested", `{"lines":[{"Sku":"x"}]}`, typ, "lines[0].Sku", false},
		{"case escaped", `{"i\u0044":"a"}`, typ, "iD", false},
		{"case of an untagged field", `{"plain":"p"}`, typ, "plain", false},
		{"maps: repeats only", `{"a":1,"A":2}`, nil, "", true},
		{"a map's keys are data", `{"id":"a","extra":{"ID":"x","Id":"y"}}`, reflect.TypeFor[shapeWithMap](), "", true},
		{"a map's repeated key", `{"id":"a","extra":{"k":"x","k":"y"}}`, reflect.TypeFor[shapeWithMap](), "extra.k", false},
		{"maps: repeated", `{"a":1,"b":{"c":1},"a":2}`, nil, "a", false},
		{"too deep", strings.Repeat("[", 5) + strings.Repeat("]", 5), nil, "", false},
		{"deep enough", strings.Repeat("[", 4) + strings.Repeat("]", 4), nil, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := storeline.CheckJSONShape([]byte(c.body), 4, c.t)
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *storeline.JSONShapeError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a JSONShapeError", err)
			}
			if se.Field != c.field {
				t.Fatalf("field %q, want %q (%v)", se.Field, c.field, err)
			}
		})
	}
}

// TestCheckJSONShapeFolded: two keys of one object the decoder takes for
// one name are a field given twice, named by the second's path; keys
// distinct under folding, and equal keys in sibling objects, pass.
func TestCheckJSONShapeFolded(t *testing.T) {
	for _, c := range []struct{ body, field string }{
		{`{"ID":"a","id":"b"}`, "id"},
		{`{"records":[{"kind":"item","record":{"ID":"a"}},{"kind":"item","record":{"ID":"a","Name":"n","id":"b"}}]}`, "records[1].record.id"},
		{`{"Kind":"a","\u212aind":"b"}`, "\u212aind"}, // a Kelvin sign folds to k
		{`{"a":{"x":1},"b":[1,{"y":2,"Y":3}]}`, "b[1].Y"},
		{`{"id":"a","name":"n","ID":"b"}`, "ID"},
		{`{"s":"a","\u017f":"b"}`, "\u017f"}, // the long s folds to s
	} {
		var se *storeline.JSONShapeError
		if err := storeline.CheckJSONShapeFolded([]byte(c.body), 8); !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("CheckJSONShapeFolded(%s) = %v, want %q given twice", c.body, err, c.field)
		}
	}
	for _, body := range []string{
		`{"ID":"a","Name":"n","records":[{"id":"x"},{"ID":"y"}]}`,
		`{"k":"a","t":"b","\u017f":"c"}`, // the long s folds to s only
		`{"id":"{\"ID\":1,\"id\":2}"}`,
	} {
		if err := storeline.CheckJSONShapeFolded([]byte(body), 8); err != nil {
			t.Errorf("CheckJSONShapeFolded(%s) = %v, want accepted", body, err)
		}
	}
}

// TestCheckJSONShapeLargeObject: repeats in an object of many keys are
// found through a set, so one large object costs its keys, not their
// square (a 16 MiB body of one object would otherwise hold a core for
// hours).
func TestCheckJSONShapeLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	const n = 200_000
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:1", fmt.Sprintf("k%d", i))
	}
	body := b.String() + "}"
	if err := storeline.CheckJSONShape([]byte(body), 4, nil); err != nil {
		t.Fatalf("%d distinct keys refused: %v", n, err)
	}
	dup := body[:len(body)-1] + `,"k\u0031":2}` // k1, escaped
	var se *storeline.JSONShapeError
	if err := storeline.CheckJSONShape([]byte(dup), 4, nil); !errors.As(err, &se) || se.Field != "k1" {
		t.Fatalf("a repeat after %d keys: %v, want k1 given twice", n, err)
	}
	small := `{"a":1,"b":{"k0":1,"k0":2}}`
	if err := storeline.CheckJSONShape([]byte(small), 4, nil); !errors.As(err, &se) || se.Field != "b.k0" {
		t.Fatalf("a repeat in a small nested object: %v", err)
	}
}

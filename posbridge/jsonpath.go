package posbridge

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// encoding/json does not say where in a body its error arose in the form a
// till needs: an UnmarshalJSON or UnmarshalText method's error (a decimal
// with an exponent, a time that is no RFC 3339, an id that is no UUID)
// comes without a field, and type errors and unknown fields name it
// without array indices ("payments.points"). On that error path only, the
// body is walked again beside the type it was decoded into, to find the
// value the decoder refused and give its JSON path ("payments[1].points").

// jsonMiss is what the decoder refused; exactly one field is set.
type jsonMiss struct {
	typ     *json.UnmarshalTypeError // a value of the wrong JSON type
	unknown string                   // an object key the struct lacks
	method  error                    // a value a method refused with this error
}

// pathOf returns the JSON path of the first value in body, decoded into a
// value of type t, that the decoder refuses as m says, or "" if the walk
// finds none.
func pathOf(body []byte, t reflect.Type, m jsonMiss) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := &jsonWalk{dec: dec, miss: m}
	return w.value("", "", t)
}

type jsonWalk struct {
	dec    *json.Decoder
	miss   jsonMiss
	broken bool // the body ended or broke before the value was found
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value walks one value at path into type t (nil: one the target has no
// place for, skipped as the decoder skips it). dotted is the path as
// encoding/json names type errors: field names only.
func (w *jsonWalk) value(path, dotted string, t reflect.Type) string {
	tok, err := w.dec.Token()
	if err != nil {
		w.broken = true
		return ""
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if te := w.miss.typ; te != nil && strings.EqualFold(dotted, te.Field) && sameJSONKind(tok, te.Value) {
		return path
	}
	if t != nil && reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		// The decoder hands the method the whole value, whatever it is.
		v, ok := w.collect(tok)
		if !ok || w.miss.method == nil {
			return ""
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil && err.Error() == w.miss.method.Error() {
			return path
		}
		return ""
	}
	if t != nil && reflect.PointerTo(t).Implements(textUnmarshaler) {
		s, ok := tok.(string)
		if !ok {
			w.collect(tok) // not a string: a type error, matched above if it is the one
			return ""
		}
		if w.miss.method != nil {
			if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil && err.Error() == w.miss.method.Error() {
				return path
			}
		}
		return ""
	}
	switch tok {
	case json.Delim('{'):
		for w.dec.More() {
			kt, err := w.dec.Token()
			key, ok := kt.(string)
			if err != nil || !ok {
				w.broken = true
				return ""
			}
			var ft reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				f, known := jsonField(t, key)
				if !known && w.miss.unknown == key {
					return join(path, key)
				}
				ft = f
			case t != nil && t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if p := w.value(join(path, key), join(dotted, key), ft); p != "" || w.broken {
				return p
			}
		}
		return w.end()
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if p := w.value(fmt.Sprintf("%s[%d]", path, i), dotted, et); p != "" || w.broken {
				return p
			}
		}
		return w.end()
	}
	return ""
}

// end reads the closing delimiter of an object or array.
func (w *jsonWalk) end() string {
	if _, err := w.dec.Token(); err != nil {
		w.broken = true
	}
	return ""
}

// collect reads the rest of the value that starts with tok, as any.
func (w *jsonWalk) collect(tok json.Token) (any, bool) {
	switch tok {
	case json.Delim('{'):
		m := map[string]any{}
		for w.dec.More() {
			kt, err := w.dec.Token()
			key, ok := kt.(string)
			if err != nil || !ok {
				w.broken = true
				return nil, false
			}
			vt, err := w.dec.Token()
			if err != nil {
				w.broken = true
				return nil, false
			}
			if m[key], ok = w.collect(vt); !ok {
				return nil, false
			}
		}
		w.end()
		return m, !w.broken
	case json.Delim('['):
		a := []any{}
		for w.dec.More() {
			vt, err := w.dec.Token()
			if err != nil {
				w.broken = true
				return nil, false
			}
			v, ok := w.collect(vt)
			if !ok {
				return nil, false
			}
			a = append(a, v)
		}
		w.end()
		return a, !w.broken
	}
	return tok, true
}

// sameJSONKind reports whether tok starts a value of the kind a type
// error names: "string", "number", "number 1.5", "bool", "object", ...
func sameJSONKind(tok json.Token, kind string) bool {
	switch v := tok.(type) {
	case json.Delim:
		return v == '{' && kind == "object" || v == '[' && kind == "array"
	case string:
		return kind == "string"
	case json.Number:
		lit, ok := strings.CutPrefix(kind, "number")
		return ok && (lit == "" || lit == " "+v.String())
	case bool:
		return kind == "bool"
	case nil:
		return kind == "null"
	}
	return false
}

// jsonField finds the field of struct t that encoding/json decodes key
// into: by its JSON name, exactly or else ignoring case, promoted from
// embedded structs too.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	found := false
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f.Type, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f.Type, true
		}
	}
	return fold, found
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

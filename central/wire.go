package central

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/shopspring/decimal"
)

// The head-office API speaks the root's master-data types in JSON with
// snake_case field names ("vat_rate", "price_lists"), the spelling their
// Validate methods name fields in. Rather than a hand-written wire struct
// per kind, encodeWire and decodeWire map the Go field names by rule; the
// decoder is strict and names the path of an unknown or mistyped field
// ("barcodes[1].factor"). The OpenAPI spec is checked against real answers
// in api_test.go, so the rule cannot drift from the spec silently.

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
)

// snake turns a Go field name into its JSON name: VATRate → vat_rate,
// PINHash → pin_hash, TaxID → tax_id.
func snake(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// encodeWire returns v as JSON-ready values with snake_case keys.
func encodeWire(v any) any { return toWire(reflect.ValueOf(v)) }

func toWire(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(jsonMarshaler) && v.Kind() != reflect.Pointer {
		return v.Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toWire(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			m[snake(t.Field(i).Name)] = toWire(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface()
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toWire(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

// decodeWire decodes a JSON object into the struct ptr points to,
// strictly. Errors are 400s naming the field path; skip lists top-level
// fields the caller handles itself (they are accepted and ignored).
func decodeWire(raw []byte, ptr any, skip ...string) error {
	v := reflect.ValueOf(ptr).Elem()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return errMalformed("", "want a JSON object")
	}
	for _, s := range skip {
		delete(m, s)
	}
	b, _ := json.Marshal(m)
	return fromWire(b, v, "")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// plainDecimal is the one spelling of a decimal on the wire (openapi.yaml):
// a JSON string of digits, perhaps signed and with a fraction; no exponent,
// no JSON number, no other sign or spacing.
var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

var decimalType = reflect.TypeFor[decimal.Decimal]()

func fromWire(raw json.RawMessage, v reflect.Value, path string) error {
	switch {
	case v.Type() == decimalType:
		if string(raw) == "null" {
			v.SetZero() // absent, as before
			return nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || !plainDecimal.MatchString(s) {
			return errMalformed(path, "%.40s: want a decimal in a string, as \"12.50\"", raw)
		}
		v.Set(reflect.ValueOf(decimal.RequireFromString(s)))
		return nil
	case v.Kind() == reflect.Pointer && v.Type().Elem() == decimalType:
		if string(raw) == "null" {
			v.SetZero()
			return nil
		}
		v.Set(reflect.New(decimalType))
		return fromWire(raw, v.Elem(), path)
	}
	if reflect.PointerTo(v.Type()).Implements(jsonUnmarshaler) {
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			return errMalformed(path, "%v", err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return errMalformed(path, "want an object")
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() {
				fields[snake(t.Field(i).Name)] = i
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			i, ok := fields[k]
			if !ok {
				return errMalformed(join(path, k), "unknown field")
			}
			if err := fromWire(m[k], v.Field(i), join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if string(raw) == "null" {
			v.SetZero()
			return nil
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return errMalformed(path, "want an array")
		}
		s := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, r := range arr {
			if err := fromWire(r, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
		return errMalformed(path, "want a %s", v.Kind())
	}
	return nil
}

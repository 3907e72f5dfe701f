package storeline

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// JSONShapeError is a request body CheckJSONShape refuses: Field is the key
// at fault (as the decoder reads it), "" for nesting too deep.
type JSONShapeError struct {
	Field  string
	Reason string
}

func (e *JSONShapeError) Error() string { return e.Reason }

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// CheckJSONShape refuses, before a decoder reads body into a value of type
// t (nil: a body read into maps, whose keys match exactly), what
// encoding/json would take without a word: JSON nested deeper than
// max (before the decoder recurses into it), an object naming a field
// twice (the decoder keeps the last, so a till's "price" could be
// overridden further down), and a field named in another case than the
// spec's ("Qty" for "qty": the decoder matches names case-insensitively).
// Unknown names are left to the decoder's DisallowUnknownFields, which
// names their path. A refused key's Field is its path
// ("lines[1].price").
func CheckJSONShape(body []byte, max int, t reflect.Type) error {
	return checkJSONShape(body, max, t, false)
}

// CheckJSONShapeFolded is CheckJSONShape for a body decoded into structs
// whose field names may come in any case (master records travel in their
// Go field names, which files write as "ID" or "id"): two keys of one
// object the decoder takes for one name ("ID" and "id", "Kind" and
// "\u212aind" with a Kelvin sign) are a field given twice, as the decoder
// would keep the last.
func CheckJSONShapeFolded(body []byte, max int) error {
	return checkJSONShape(body, max, nil, true)
}

func checkJSONShape(body []byte, max int, t reflect.Type, fold bool) error {
	names := jsonNamesOf(t)
	type frame struct {
		obj       bool // an object, not an array
		expectKey bool // the next string is a key
		keys      int  // where this object's keys start in spans
		idx       int  // an array's current index
		// set holds the object's keys once it has manyKeys of them (from
		// the first key when folding): a linear scan per key would make
		// a body of one large object cost its keys squared.
		set map[string]struct{}
	}
	var stackBuf [16]frame
	var spanBuf [64][2]int
	stack := stackBuf[:0]
	spans := spanBuf[:0] // the keys of the open objects, innermost last
	// at names the refused key by its path: the keys and indexes of the
	// objects and arrays around it, then its own name.
	at := func(err *JSONShapeError) error {
		var p strings.Builder
		for j, f := range stack[:len(stack)-1] {
			if !f.obj {
				fmt.Fprintf(&p, "[%d]", f.idx)
				continue
			}
			// The object's current key is the last of its keys, which
			// end where the next open object's keys start.
			end := len(spans)
			if j+1 < len(stack) {
				end = stack[j+1].keys
			}
			if end <= f.keys {
				continue
			}
			sp := spans[end-1]
			if p.Len() > 0 {
				p.WriteByte('.')
			}
			p.WriteString(unescapeKey(body, sp[0], sp[1]))
		}
		if p.Len() > 0 {
			err.Field = p.String() + "." + err.Field
		}
		return err
	}
	inStr, esc := false, false
	keyStart := -1
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
				if keyStart >= 0 {
					top := &stack[len(stack)-1]
					seen := spans[top.keys:]
					switch {
					case fold:
						if top.set == nil {
							top.set = make(map[string]struct{})
						}
						k := unescapeKey(body, keyStart, i)
						if _, dup := top.set[foldName(k)]; dup {
							return at(&JSONShapeError{Field: k, Reason: fmt.Sprintf("field %q given twice in one object (field names match case-insensitively)", k)})
						}
						top.set[foldName(k)] = struct{}{}
					case len(seen) >= manyKeys:
						if top.set == nil {
							top.set = make(map[string]struct{}, 2*len(seen))
							for _, sp := range seen {
								top.set[unescapeKey(body, sp[0], sp[1])] = struct{}{}
							}
						}
						k := unescapeKey(body, keyStart, i)
						if _, dup := top.set[k]; dup {
							return at(&JSONShapeError{Field: k, Reason: fmt.Sprintf("field %q given twice in one object", k)})
						}
						top.set[k] = struct{}{}
						seen = nil
						fallthrough
					default:
						if err := checkKey(body, keyStart, i, seen, names); err != nil {
							return at(err)
						}
					}
					spans = append(spans, [2]int{keyStart, i})
					keyStart = -1
				}
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
			if n := len(stack); n > 0 && stack[n-1].expectKey {
				keyStart = i + 1
				stack[n-1].expectKey = false
			}
		case '{', '[':
			if len(stack) >= max {
				return &JSONShapeError{Reason: fmt.Sprintf("JSON nested deeper than %d", max)}
			}
			stack = append(stack, frame{obj: c == '{', expectKey: c == '{', keys: len(spans)})
		case '}', ']':
			if n := len(stack); n > 0 {
				spans = spans[:stack[n-1].keys]
				stack = stack[:n-1]
			}
		case ',':
			if n := len(stack); n > 0 {
				if stack[n-1].obj {
					stack[n-1].expectKey = true
				} else {
					stack[n-1].idx++
				}
			}
		}
	}
	return nil
}

// foldName is the name encoding/json matches a key by: ASCII letters in
// upper case, any other rune the smallest of its Unicode simple-fold
// orbit.
func foldName(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b = append(b, byte(r))
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// manyKeys is how many keys an object has before CheckJSONShape looks
// repeats up in a set rather than among the keys one by one.
const manyKeys = 32

// checkKey refuses the key body[from:to] (still escaped) of an object that
// has keys seen, if it repeats one of them or names a field of names in
// another case. Keys are compared as they are written unless escaped, so
// a plain body costs no allocation.
func checkKey(body []byte, from, to int, seen [][2]int, names jsonNames) *JSONShapeError {
	raw := body[from:to]
	escaped := bytes.IndexByte(raw, '\\') >= 0
	for _, sp := range seen {
		other := body[sp[0]:sp[1]]
		if !escaped && bytes.IndexByte(other, '\\') < 0 {
			if bytes.Equal(raw, other) {
				return &JSONShapeError{Field: string(raw), Reason: fmt.Sprintf("field %q given twice in one object", raw)}
			}
			continue
		}
		if k, o := unescapeKey(body, from, to), unescapeKey(body, sp[0], sp[1]); k == o {
			return &JSONShapeError{Field: k, Reason: fmt.Sprintf("field %q given twice in one object", k)}
		}
	}
	if _, exact := names.exact[string(raw)]; exact && !escaped {
		return nil
	}
	key := string(raw)
	if escaped {
		key = unescapeKey(body, from, to)
		if _, exact := names.exact[key]; exact {
			return nil
		}
	}
	if want, ok := names.folded[strings.ToLower(key)]; ok {
		return &JSONShapeError{Field: key, Reason: fmt.Sprintf("unknown field %q: field names are case-sensitive, this one is %q", key, want)}
	}
	return nil // unknown: the decoder names its path
}

// unescapeKey is the key body[from:to] as the decoder reads it (as written
// if it does not decode: the decoder then says where the JSON breaks).
func unescapeKey(body []byte, from, to int) string {
	if bytes.IndexByte(body[from:to], '\\') < 0 {
		return string(body[from:to])
	}
	var key string
	if err := json.Unmarshal(body[from-1:to+1], &key); err != nil {
		return string(body[from:to])
	}
	return key
}

// jsonNames are the JSON field names of the structs a request type holds
// (at any depth): exact, and by their lower case (none when the type holds
// a map or an interface, whose keys are free).
type jsonNames struct {
	exact  map[string]struct{}
	folded map[string]string
}

var jsonNamesCache sync.Map // reflect.Type → jsonNames

func jsonNamesOf(t reflect.Type) jsonNames {
	if n, ok := jsonNamesCache.Load(t); ok {
		return n.(jsonNames)
	}
	n := jsonNames{exact: map[string]struct{}{}, folded: map[string]string{}}
	seen := map[reflect.Type]bool{}
	free := false // a map somewhere: keys of any case are data there
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map || t.Kind() == reflect.Interface) {
			if t.Kind() == reflect.Map || t.Kind() == reflect.Interface {
				free = true
				return
			}
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		if reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return // decoded by its own method, not by field names
		}
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
			n.exact[name] = struct{}{}
			n.folded[strings.ToLower(name)] = name
			walk(f.Type)
		}
	}
	if t != nil {
		walk(t)
	}
	if free {
		// The scan does not know which object is a map's: it checks
		// repeats only, and the decoder's fields match as it matches them.
		n.folded = nil
	}
	jsonNamesCache.Store(t, n)
	return n
}

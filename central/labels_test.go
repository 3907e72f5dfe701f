package central_test

import (
	"bytes"
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// The SVG answer is checked against openapi.yaml as the others are.
func init() { openapi3filter.RegisterBodyDecoder("image/svg+xml", openapi3filter.FileBodyDecoder) }

// svgBarcode is one drawn EAN-13: the digits it claims and its modules
// as the rects draw them.
type svgBarcode struct {
	item, code string
	modules    []bool
	texts      []string
}

// readLabelsSVG parses the whole answer as XML (so a name that broke
// the markup fails here) and returns each label's barcode.
func readLabelsSVG(t *testing.T, body []byte) []svgBarcode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	var out []svgBarcode
	var cur *svgBarcode
	inBars := false
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, body)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch {
			case e.Name.Local == "g" && attr(e, "class") == "label":
				out = append(out, svgBarcode{item: attr(e, "data-item"), modules: make([]bool, 95)})
				cur = &out[len(out)-1]
			case e.Name.Local == "g" && attr(e, "class") == "ean13":
				cur.code, inBars = attr(e, "data-code"), true
			case e.Name.Local == "rect" && inBars:
				x, err1 := strconv.Atoi(attr(e, "x"))
				w, err2 := strconv.Atoi(attr(e, "width"))
				if err1 != nil || err2 != nil || x < 0 || w < 1 || x+w > 95 {
					t.Fatalf("bar x=%q width=%q is not whole modules inside the symbol", attr(e, "x"), attr(e, "width"))
				}
				for i := x; i < x+w; i++ {
					if cur.modules[i] {
						t.Fatalf("bars overlap at module %d", i)
					}
					cur.modules[i] = true
				}
			}
		case xml.EndElement:
			if e.Name.Local == "g" && inBars {
				inBars = false
			}
		case xml.CharData:
			if cur != nil && strings.TrimSpace(string(e)) != "" {
				cur.texts = append(cur.texts, string(e))
			}
		}
	}
	return out
}

// decodeModules reads 95 modules to 13 digits with the digit sets of
// ISO/IEC 15420 written out here (L; R its complement; G R reversed).
func decodeModules(t *testing.T, m []bool) string {
	t.Helper()
	var b strings.Builder
	for _, x := range m {
		if x {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	s := b.String()
	if s[:3] != "101" || s[45:50] != "01010" || s[92:] != "101" {
		t.Fatalf("guard bars wrong: %s", s)
	}
	l := []string{"0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111", "0001011"}
	find := func(w string) (int, byte) {
		for d, p := range l {
			r := strings.Map(func(c rune) rune { return '0' + '1' - c }, p)
			g := []rune(r)
			for i, j := 0, 6; i < j; i, j = i+1, j-1 {
				g[i], g[j] = g[j], g[i]
			}
			switch w {
			case p:
				return d, 'L'
			case string(g):
				return d, 'G'
			case r:
				return d, 'R'
			}
		}
		t.Fatalf("modules %s are no digit", w)
		return 0, 0
	}
	digits, parity := "", ""
	for i := 0; i < 12; i++ {
		off := 3 + 7*i
		if i >= 6 {
			off += 5
		}
		d, set := find(s[off : off+7])
		if (i < 6) == (set == 'R') {
			t.Fatalf("digit %d in set %c", i+2, set)
		}
		digits += strconv.Itoa(d)
		parity += string(set)
	}
	first := map[string]int{"LLLLLL": 0, "LLGLGG": 1, "LLGGLG": 2, "LLGGGL": 3, "LGLLGG": 4, "LGGLLG": 5, "LGGGLL": 6, "LGLGLG": 7, "LGLGGL": 8, "LGGLGL": 9}
	f, ok := first[parity[:6]]
	if !ok {
		t.Fatalf("left parity %s names no first digit", parity[:6])
	}
	return strconv.Itoa(f) + digits
}

func labelsURL(q url.Values) string { return "/v1/labels?" + q.Encode() }

func TestLabelsDrawTheBarcodesTheItemsHold(t *testing.T) {
	n := startLevel6(t)
	addr := n.APIAddr()
	seed(t, addr, 3)
	// i0 gets an internal code; i1 holds a manufacturer's EAN-13 and a
	// name that would break SVG and ZPL; i2 has no barcode at all.
	_, m := allocate(t, addr, "i0")
	internal := m["barcode"].(string)
	const maker = "4006381333931"
	it1 := item(1)
	it1["name"] = `Jam <"best"> & ^XZ~JA`
	it1["barcodes"] = []any{map[string]any{"code": maker}, map[string]any{"code": "5901234123457", "factor": "6"}}
	mustOK(t, apiDo(t, "PUT", addr, "/v1/items/i1", adminKey, it1, nil))
	mustOK(t, apiDo(t, "POST", addr, "/v1/prices", adminKey, map[string]any{"prices": []any{
		map[string]any{"list": "retail", "item": "i0", "from": "2020-01-01T00:00:00Z", "price": "1.5"},
		map[string]any{"list": "retail", "item": "i1", "from": "2020-01-01T00:00:00Z", "price": "3.999"},
		map[string]any{"list": "retail", "item": "i1", "from": "2999-01-01T00:00:00Z", "price": "9.99"},
		map[string]any{"list": "retail", "item": "i2", "from": "2020-01-01T00:00:00Z", "price": "2"},
	}}, nil))

	r := mustOK(t, apiDo(t, "GET", addr, labelsURL(url.Values{"store": {"s1"}, "items": {"i0,i1"}, "copies": {"2"}}), viewerKey, nil, nil))
	labels := readLabelsSVG(t, r.body)
	want := []struct{ item, code, price string }{{"i0", internal, "1.50 EUR"}, {"i0", internal, "1.50 EUR"}, {"i1", maker, "4.00 EUR"}, {"i1", maker, "4.00 EUR"}}
	if len(labels) != len(want) {
		t.Fatalf("%d labels, want %d:\n%s", len(labels), len(want), r.body)
	}
	for i, w := range want {
		l := labels[i]
		if l.item != w.item || l.code != w.code {
			t.Fatalf("label %d: item %s code %s, want %s %s", i, l.item, l.code, w.item, w.code)
		}
		if got := decodeModules(t, l.modules); got != w.code {
			t.Fatalf("label %d: the bars read %s, want %s", i, got, w.code)
		}
		if !strings.Contains(strings.Join(l.texts, "|"), w.price) {
			t.Fatalf("label %d: no price %q in %q", i, w.price, l.texts)
		}
	}
	if !strings.Contains(strings.Join(labels[2].texts, "|"), `Jam <"best"> & ^XZ~JA`) {
		t.Fatalf("i1's name not on its label: %q", labels[2].texts)
	}

	r = mustOK(t, apiDo(t, "GET", addr, labelsURL(url.Values{"store": {"s1"}, "items": {"i1"}, "format": {"zpl"}, "copies": {"3"}}), viewerKey, nil, nil))
	zpl := string(r.body)
	for _, s := range []string{"^XA", "^BEN,100,Y,N^FD" + maker[:12] + "^FS", "^PQ3", "^XZ", `Jam <"best"> & \5EXZ\7EJA`, "4.00 EUR"} {
		if !strings.Contains(zpl, s) {
			t.Fatalf("ZPL lacks %q:\n%s", s, zpl)
		}
	}
	if strings.Count(zpl, "^XZ") != 1 || strings.Contains(zpl, "^XZ~JA") {
		t.Fatalf("the name ended the format or started a command:\n%s", zpl)
	}

	bad := func(q url.Values, status int, field string) {
		t.Helper()
		r := apiDo(t, "GET", addr, labelsURL(q), viewerKey, nil, nil)
		if p := r.json(t); r.status != status || p["field"] != field {
			t.Fatalf("%v: %d %s; want %d naming %s", q, r.status, r.body, status, field)
		}
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = "i0"
	}
	bad(url.Values{"items": {"i0"}}, 422, "store")
	bad(url.Values{"store": {"nowhere"}, "items": {"i0"}}, 422, "store")
	bad(url.Values{"store": {"s1"}}, 422, "items")
	bad(url.Values{"store": {"s1"}, "items": {"i0,ghost"}}, 422, "items[1]")
	bad(url.Values{"store": {"s1"}, "items": {"i0,i2"}}, 422, "items[1]") // no barcode
	bad(url.Values{"store": {"s1"}, "items": {strings.Join(many, ",")}}, 422, "items")
	bad(url.Values{"store": {"s1"}, "items": {"i0,i1"}, "copies": {"300"}}, 422, "copies")
	bad(url.Values{"store": {"s1"}, "items": {"i0"}, "copies": {"0"}}, 422, "copies")
	bad(url.Values{"store": {"s1"}, "items": {"i0"}, "format": {"pdf"}}, 400, "format")
	// An item with a barcode but no price in the store's lists.
	it3 := item(3)
	it3["barcodes"] = []any{map[string]any{"code": "036000291452"}}
	mustOK(t, apiDo(t, "PUT", addr, "/v1/items/i3", adminKey, it3, nil))
	bad(url.Values{"store": {"s1"}, "items": {"i3"}}, 422, "items[0]")
}

package central

// Printed labels: GET /v1/labels?store=S&items=a,b,c&format=svg|zpl&copies=N
// renders a shelf or item label per item and copy: the item's name, the
// store's current price per base unit (the first of the store's price
// lists with a price in effect at the store's wall clock, rounded to the
// currency as a till charges it) and the item's barcode as EAN-13 bars.
// SVG draws the bars itself (storeline.EAN13Modules, one rect per bar,
// in module units under a scale); ZPL hands the digits to the printer's
// own EAN-13 (^BE), which draws bars and check digit from them.
//
// The barcode printed is the item's first of factor 1 that is an EAN-13
// (or a UPC-A or EAN-8, printed as the EAN-13 of the same GTIN-14, which
// scanners read back to the same item). A label is refused rather than
// printed wrong: an unknown item, an item with no such barcode (allocate
// one: POST /v1/items/{id}/internal_barcode), a weighed item (the scale
// prints its labels, with the weight in the code), or an item with no
// price in the store, each 422 naming items[i].

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// MaxLabelItems bounds the items of one labels request, and MaxLabels the
// labels (items times copies) of one answer.
const (
	MaxLabelItems = 100
	MaxLabels     = 500
)

func (n *Node) labelRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/labels", false, n.getLabels)
	h("POST /v1/items/{id}/internal_barcode", true, n.postInternalBarcode) // internal_barcodes.go
}

// label is what one printed label shows.
type label struct {
	Item     storeline.ItemID
	Name     string
	Barcode  string // EAN-13
	Price    string // at the currency's scale
	Currency storeline.Currency
	Unit     storeline.Unit
}

func (n *Node) getLabels(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	format := q.Get("format")
	switch format {
	case "":
		format = "svg"
	case "svg", "zpl":
	default:
		return errMalformed("format", "%.20q: want svg or zpl", format)
	}
	copies := 1
	if s := q.Get("copies"); s != "" {
		c, err := strconv.Atoi(s)
		if err != nil {
			return errMalformed("copies", "%.20q: want a whole number", s)
		}
		if c < 1 || c > MaxLabels {
			return storeline.Invalidf("copies", "%d out of [1, %d]", c, MaxLabels)
		}
		copies = c
	}
	storeID := q.Get("store")
	if err := storeline.CheckID("store", storeID); err != nil {
		return err
	}
	var ids []string
	if s := q.Get("items"); s != "" {
		ids = strings.Split(s, ",")
	}
	switch {
	case len(ids) == 0:
		return storeline.Invalidf("items", "name the items to label, comma-separated")
	case len(ids) > MaxLabelItems:
		return storeline.Invalidf("items", "%d items, over %d in one request", len(ids), MaxLabelItems)
	case len(ids)*copies > MaxLabels:
		return storeline.Invalidf("copies", "%d items × %d copies is over %d labels in one request", len(ids), copies, MaxLabels)
	}
	for i, id := range ids {
		if err := storeline.CheckID(fmt.Sprintf("items[%d]", i), id); err != nil {
			return err
		}
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var st storeline.Store
	if err := n.rep.GetMaster(storeline.KindStore, storeID, &st); err != nil {
		if storeline.KindOf(err) == storeline.NotFound {
			return storeline.Invalidf("store", "no store %q", storeID)
		}
		return err
	}
	loc, err := st.Location()
	if err != nil {
		return storeline.E("central.labels", storeline.Internal, err)
	}
	wall := storeline.WallClock(n.now(), loc)
	cat := pricing.NewMasterCatalog(replicaMasters{n.rep})
	labels := make([]label, len(ids))
	for i, id := range ids {
		field := fmt.Sprintf("items[%d]", i)
		var it storeline.Item
		if err := n.rep.GetMaster(storeline.KindItem, id, &it); err != nil {
			if storeline.KindOf(err) == storeline.NotFound {
				return storeline.Invalidf(field, "no item %q", id)
			}
			return err
		}
		if it.Weighed {
			return storeline.Invalidf(field, "item %q is weighed: the scale prints its labels, with the weight in the code", id)
		}
		code, ok := labelBarcode(&it)
		if !ok {
			return storeline.Invalidf(field, "item %q has no EAN-13 of one unit to print: allocate one (POST /v1/items/%s/internal_barcode)", id, id)
		}
		price, ok, err := storePrice(cat, &st, it.ID, wall)
		if err != nil {
			return err
		}
		if !ok {
			return storeline.Invalidf(field, "item %q has no price in store %s's price lists", id, st.ID)
		}
		labels[i] = label{Item: it.ID, Name: it.Name, Barcode: code, Price: price, Currency: st.Currency, Unit: it.Unit}
	}
	var body []byte
	switch format {
	case "svg":
		body, err = labelsSVG(labels, copies)
		w.Header().Set("Content-Type", "image/svg+xml")
	case "zpl":
		body = labelsZPL(labels, copies)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `inline; filename="labels.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// labelBarcode returns the EAN-13 to print for one unit of the item.
func labelBarcode(it *storeline.Item) (string, bool) {
	for _, b := range it.Barcodes {
		if len(b.Code) == 14 && b.Code[0] == '0' && b.Factor.Equal(decimal.NewFromInt(1)) {
			return b.Code[1:], true
		}
	}
	return "", false
}

// storePrice is the store's price of the item at wall: the first of its
// price lists with one in effect, at the currency's scale.
func storePrice(cat *pricing.MasterCatalog, st *storeline.Store, item storeline.ItemID, wall time.Time) (string, bool, error) {
	for _, pl := range st.PriceLists {
		p, ok, err := cat.Price(pl, item, wall)
		if err != nil {
			return "", false, err
		}
		if ok {
			s := st.Currency.Scale()
			return p.Round(s).StringFixed(s), true, nil
		}
	}
	return "", false, nil
}

// Label geometry, in millimetres: a 58 × 40 mm label, bars of the EAN-13
// nominal module of 0.33 mm, quiet zones of 11 and 7 modules.
const (
	labelW, labelH  = 58.0, 40.0
	moduleMM        = 0.33
	quietLeft       = 11
	barTop, barH    = 19.0, 14.0
	guardExtra      = 1.65 // guard bars reach below the digits' line
	eanModules      = 95
	zplDotsPerMM    = 8 // 203 dpi
	maxLabelNameLen = 38
)

// labelsSVG draws the labels one above another, copies of each in turn.
// Each barcode is a group (class ean13, data-code its digits) whose rects
// are in module units: x the first module of a bar, width its modules.
func labelsSVG(labels []label, copies int) ([]byte, error) {
	var b strings.Builder
	total := len(labels) * copies
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%gmm" height="%gmm" viewBox="0 0 %g %g">`+"\n",
		labelW, labelH*float64(total), labelW, labelH*float64(total))
	x0 := (labelW - float64(quietLeft+eanModules+7)*moduleMM) / 2
	barX := x0 + quietLeft*moduleMM
	k := 0
	for _, l := range labels {
		modules, err := storeline.EAN13Modules(l.Barcode)
		if err != nil {
			return nil, storeline.E("central.labels", storeline.Internal, err)
		}
		for c := 0; c < copies; c++ {
			fmt.Fprintf(&b, `<g class="label" data-item="%s" transform="translate(0 %g)">`+"\n", xmlText(string(l.Item)), labelH*float64(k))
			fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="#fff" stroke="#ccc" stroke-width="0.2"/>`+"\n", labelW, labelH)
			fmt.Fprintf(&b, `<text x="3" y="6" font-family="sans-serif" font-size="3.5">%s</text>`+"\n", xmlText(clip(l.Name, maxLabelNameLen)))
			fmt.Fprintf(&b, `<text x="3" y="14" font-family="sans-serif" font-size="7" font-weight="bold">%s %s<tspan font-size="3" font-weight="normal"> per %s</tspan></text>`+"\n",
				l.Price, l.Currency, l.Unit)
			fmt.Fprintf(&b, `<g class="ean13" data-code="%s" transform="translate(%g %g) scale(%g 1)" fill="#000">`+"\n", l.Barcode, barX, barTop, moduleMM)
			for i := 0; i < len(modules); {
				if !modules[i] {
					i++
					continue
				}
				j := i
				for j < len(modules) && modules[j] {
					j++
				}
				h := barH
				if isGuard(i) {
					h += guardExtra
				}
				fmt.Fprintf(&b, `<rect x="%d" width="%d" height="%g"/>`+"\n", i, j-i, h)
				i = j
			}
			b.WriteString("</g>\n")
			// The human-readable digits: the first left of the start
			// guard, then each half under its bars.
			ty := barTop + barH + 2.6
			fmt.Fprintf(&b, `<text font-family="monospace" font-size="2.8" text-anchor="middle" y="%g">`, ty)
			fmt.Fprintf(&b, `<tspan x="%g">%c</tspan><tspan x="%g">%s</tspan><tspan x="%g">%s</tspan></text>`+"\n",
				x0+4*moduleMM, l.Barcode[0], barX+24*moduleMM, l.Barcode[1:7], barX+71*moduleMM, l.Barcode[7:])
			b.WriteString("</g>\n")
			k++
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String()), nil
}

// isGuard reports whether module i starts a bar of a guard pattern.
func isGuard(i int) bool { return i < 3 || (i >= 45 && i < 50) || i >= 92 }

// labelsZPL writes one ZPL format per item, printed copies times (^PQ).
// Text fields go through ^FH, so a ^ or ~ in a name cannot end the field
// or start a command.
func labelsZPL(labels []label, copies int) []byte {
	var b strings.Builder
	for _, l := range labels {
		b.WriteString("^XA\n^CI28\n")
		fmt.Fprintf(&b, "^PW%d\n^LL%d\n", int(labelW*zplDotsPerMM), int(labelH*zplDotsPerMM))
		fmt.Fprintf(&b, "^FO24,24^A0N,28,28^FB416,2,0,L^FH\\^FD%s^FS\n", zplText(clip(l.Name, maxLabelNameLen*2)))
		fmt.Fprintf(&b, "^FO24,84^A0N,48,48^FH\\^FD%s %s^FS\n", l.Price, zplText(string(l.Currency)))
		fmt.Fprintf(&b, "^FO24,108^A0N,24,24^FB416,1,0,R^FH\\^FDper %s^FS\n", zplText(string(l.Unit)))
		// ^BE takes the 12 digits and adds the check digit itself.
		fmt.Fprintf(&b, "^FO90,150^BY2^BEN,100,Y,N^FD%s^FS\n", l.Barcode[:12])
		fmt.Fprintf(&b, "^PQ%d\n^XZ\n", copies)
	}
	return []byte(b.String())
}

// zplText escapes s for a ^FH\ field: the backslash, caret and tilde as
// hex, control characters dropped.
func zplText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\5C`)
		case r == '^':
			b.WriteString(`\5E`)
		case r == '~':
			b.WriteString(`\7E`)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// xmlText escapes s for XML text and attribute values, dropping what XML
// 1.0 cannot hold.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r == '\'':
			b.WriteString("&#39;")
		case r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r != utf8.RuneError && r != 0xFFFE && r != 0xFFFF):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip shortens s to n characters, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

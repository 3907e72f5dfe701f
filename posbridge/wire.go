package posbridge

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// maxDecimalLen bounds a decimal string on the wire; it keeps a hostile
// "1e999999999" or a megabyte of digits away from the arithmetic.
const maxDecimalLen = 32

// Dec is a decimal on the wire: a JSON string of digits with an optional
// sign and point ("12.34"), no exponent. Set says whether it was present.
type Dec struct {
	decimal.Decimal
	Set bool
}

// UnmarshalJSON accepts only the string form.
func (d *Dec) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = Dec{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errMalformed("", "a decimal is a JSON string such as \"12.34\"")
	}
	v, err := parseDec(s)
	if err != nil {
		return err
	}
	*d = Dec{Decimal: v, Set: true}
	return nil
}

// MarshalJSON writes the string form.
func (d Dec) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func parseDec(s string) (decimal.Decimal, error) {
	if len(s) == 0 || len(s) > maxDecimalLen {
		return decimal.Decimal{}, errMalformed("", "decimal %.40q: want 1-%d characters", s, maxDecimalLen)
	}
	digits, point := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point && digits > 0:
			point = true
		case c == '-' && i == 0:
		default:
			return decimal.Decimal{}, errMalformed("", "decimal %q: digits, one point and a leading minus only", s)
		}
	}
	if digits == 0 || strings.HasSuffix(s, ".") {
		return decimal.Decimal{}, errMalformed("", "decimal %q: no digits", s)
	}
	return decimal.NewFromString(s)
}

// money formats an amount in a currency's scale; qty a quantity without
// trailing zeros.
func money(c storeline.Currency, d decimal.Decimal) string { return d.StringFixed(c.Scale()) }
func qtyStr(d decimal.Decimal) string                      { return d.String() }

// receiptIn is POST /v1/receipts.
type receiptIn struct {
	ID             storeline.EventID    `json:"id"`
	Terminal       storeline.TerminalID `json:"terminal"`
	Shift          storeline.ShiftID    `json:"shift"`
	Seller         storeline.SellerID   `json:"seller"`
	OccurredAt     *time.Time           `json:"occurred_at"`
	CatalogVersion uint64               `json:"catalog_version"`
	Card           string               `json:"card,omitempty"`
	Lines          []lineIn             `json:"lines"`
	Payments       []paymentIn          `json:"payments"`
	Fiscal         *fiscalJSON          `json:"fiscal,omitempty"`
}

// lineIn is a sold or returned line as the till sends it: a SKU or a
// barcode as scanned; qty in packs for a pack barcode, in base units
// otherwise (defaulting to the weight inside a weighed barcode); price per
// base unit.
type lineIn struct {
	SKU      string `json:"sku,omitempty"`
	Barcode  string `json:"barcode,omitempty"`
	Qty      Dec    `json:"qty"`
	Price    Dec    `json:"price"`
	Discount Dec    `json:"discount"`
	Serial   string `json:"serial,omitempty"`
}

type paymentIn struct {
	Method    storeline.PayMethod `json:"method"`
	Amount    Dec                 `json:"amount"`
	Reference string              `json:"reference,omitempty"`
	AuthCode  string              `json:"auth_code,omitempty"`
	Points    int64               `json:"points,omitempty"` // method points: the points paid; amount may be left out
}

type fiscalJSON struct {
	DocumentNumber string `json:"document_number"`
	Sign           string `json:"sign"`
}

// lineOut is a line of a stored receipt, return or basket.
type lineOut struct {
	Item     storeline.ItemID `json:"item"`
	Dept     storeline.DeptID `json:"dept,omitempty"`
	Unit     storeline.Unit   `json:"unit"`
	Barcode  string           `json:"barcode,omitempty"`
	Qty      string           `json:"qty"`
	Price    string           `json:"price,omitempty"`
	Discount string           `json:"discount,omitempty"`
	Serial   string           `json:"serial,omitempty"`
	VATRate  string           `json:"vat_rate,omitempty"`
	Total    string           `json:"total,omitempty"`
	VAT      string           `json:"vat,omitempty"`
}

type paymentOut struct {
	Method    storeline.PayMethod `json:"method"`
	Amount    string              `json:"amount"`
	Reference string              `json:"reference,omitempty"`
	AuthCode  string              `json:"auth_code,omitempty"`
	Points    int64               `json:"points,omitempty"`
}

type vatOut struct {
	Rate  string `json:"rate"`
	Gross string `json:"gross"`
	VAT   string `json:"vat"`
}

type discrepancyOut struct {
	Line         int    `json:"line"`
	TillPrice    string `json:"till_price"`
	NodePrice    string `json:"node_price"`
	TillDiscount string `json:"till_discount"`
	NodeDiscount string `json:"node_discount"`
}

// eventHead is what every stored event's answer starts with.
type eventHead struct {
	ID           storeline.EventID `json:"id"`
	Kind         string            `json:"kind"`
	Seq          uint64            `json:"seq"`
	Epoch        uint64            `json:"epoch"`
	OccurredAt   string            `json:"occurred_at"`
	BusinessDate storeline.Date    `json:"business_date"`
}

func headOf(ev storeline.Event) eventHead {
	return eventHead{
		ID: ev.ID, Kind: string(ev.Kind), Seq: ev.Seq, Epoch: ev.Epoch,
		OccurredAt:   ev.OccurredAt.UTC().Format(timeFormat),
		BusinessDate: ev.BusinessDate,
	}
}

const timeFormat = "2006-01-02T15:04:05.999Z07:00"

type receiptOut struct {
	eventHead
	Terminal       storeline.TerminalID  `json:"terminal"`
	Shift          storeline.ShiftID     `json:"shift"`
	Seller         storeline.SellerID    `json:"seller"`
	Currency       storeline.Currency    `json:"currency"`
	CatalogVersion uint64                `json:"catalog_version"`
	Card           string                `json:"card,omitempty"`
	Customer       storeline.CustomerID  `json:"customer,omitempty"`
	Programme      storeline.ProgrammeID `json:"programme,omitempty"`
	PointsEarned   int64                 `json:"points_earned"`
	Lines          []lineOut             `json:"lines"`
	Payments       []paymentOut          `json:"payments"`
	Fiscal         *fiscalJSON           `json:"fiscal,omitempty"`
	Total          string                `json:"total"`
	Change         string                `json:"change"`
	VAT            []vatOut              `json:"vat"`
	Discrepancies  []discrepancyOut      `json:"discrepancies"`
}

func linesOut(c storeline.Currency, ls []storeline.Line) []lineOut {
	out := make([]lineOut, len(ls))
	for i, l := range ls {
		out[i] = lineOut{
			Item: l.Item, Dept: l.Dept, Unit: l.Unit, Barcode: l.Barcode, Qty: qtyStr(l.Qty),
			Price: money(c, l.Price), Discount: money(c, l.Discount), Serial: l.Serial,
			VATRate: l.VATRate.String(), Total: money(c, l.Total), VAT: money(c, l.VAT),
		}
	}
	return out
}

func paymentsOut(c storeline.Currency, ps []storeline.Payment) []paymentOut {
	out := make([]paymentOut, len(ps))
	for i, p := range ps {
		out[i] = paymentOut{Method: p.Method, Amount: money(c, p.Amount), Reference: p.Reference, AuthCode: p.AuthCode, Points: p.Points}
	}
	return out
}

func vatsOut(c storeline.Currency, vs []storeline.VATSum) []vatOut {
	out := make([]vatOut, len(vs))
	for i, v := range vs {
		out[i] = vatOut{Rate: v.Rate.String(), Gross: money(c, v.Gross), VAT: money(c, v.VAT)}
	}
	return out
}

func receiptOf(ev storeline.Event, r *storeline.Receipt) receiptOut {
	c := r.Currency
	out := receiptOut{
		eventHead: headOf(ev), Terminal: r.Terminal, Shift: r.Shift, Seller: r.Seller,
		Currency: c, CatalogVersion: r.CatalogVersion, Card: r.Card, Customer: r.Customer,
		Programme: r.Programme, PointsEarned: r.Earned,
		Lines: linesOut(c, r.Lines), Payments: paymentsOut(c, r.Payments),
		Total: money(c, r.Total), Change: money(c, r.Change), VAT: vatsOut(c, r.VAT),
		Discrepancies: []discrepancyOut{},
	}
	if r.Fiscal != nil {
		out.Fiscal = &fiscalJSON{DocumentNumber: r.Fiscal.DocumentNumber, Sign: r.Fiscal.Sign}
	}
	for _, d := range r.Discrepancies {
		out.Discrepancies = append(out.Discrepancies, discrepancyOut{
			Line: d.Line, TillPrice: money(c, d.TillPrice), NodePrice: d.NodePrice.String(),
			TillDiscount: money(c, d.TillDiscount), NodeDiscount: money(c, d.NodeDiscount),
		})
	}
	return out
}

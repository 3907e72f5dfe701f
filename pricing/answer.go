package pricing

import (
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Answer is a priced basket as the HTTP APIs give it: a store node's POST
// /v1/baskets/price and head office's POST /v1/stores/{id}/baskets/price
// both answer with this type, filled by NewAnswer, so that a shop and head
// office given the same records answer the same bytes for every field but
// those describing the request (TestNodeAndCentralPriceIdentically).
// Money is a decimal string at the currency's scale; quantities, base
// prices and VAT rates are decimal strings as held.
type Answer struct {
	// Store is the shop priced for. Head office names it, as it prices
	// for any shop; a node prices for itself and leaves it out.
	Store          storeline.StoreID     `json:"store,omitempty"`
	Currency       storeline.Currency    `json:"currency"`
	CatalogVersion uint64                `json:"catalog_version"`
	PricedAt       string                `json:"priced_at"`
	Customer       storeline.CustomerID  `json:"customer,omitempty"`
	CustomerGroup  storeline.CustGroupID `json:"customer_group,omitempty"`
	StaffCard      bool                  `json:"staff_card,omitempty"`
	Lines          []AnswerLine          `json:"lines"`
	Subtotal       string                `json:"subtotal"`
	Discount       string                `json:"discount"`
	Total          string                `json:"total"`
	Threshold      storeline.PromotionID `json:"threshold_promotion,omitempty"`
}

// AnswerLine is one line of an Answer (see LineResult).
type AnswerLine struct {
	Item       storeline.ItemID      `json:"item"`
	Group      storeline.GroupID     `json:"group"`
	Unit       storeline.Unit        `json:"unit"`
	Qty        string                `json:"qty"`
	Source     Source                `json:"source"`
	PriceList  storeline.PriceListID `json:"price_list,omitempty"`
	BasePrice  string                `json:"base_price"`
	Policy     storeline.PolicyID    `json:"policy,omitempty"`
	Staff      storeline.ProgrammeID `json:"staff,omitempty"`
	Price      string                `json:"price"`
	Gross      string                `json:"gross"`
	Discount   string                `json:"discount"`
	Total      string                `json:"total"`
	VATRate    string                `json:"vat_rate"`
	VAT        string                `json:"vat"`
	Rule       string                `json:"rule"`
	Promotions []AnswerPromotion     `json:"promotions"`
}

// AnswerPromotion is a promotion's discount on one line of an Answer.
type AnswerPromotion struct {
	Promotion storeline.PromotionID `json:"promotion"`
	Kind      storeline.PromoKind   `json:"kind"`
	Amount    string                `json:"amount"`
}

// ItemFacts gives the unit and VAT rate of the item on line i of a priced
// basket: the answer shows them, and the engine's result does not carry
// them (each API finds them its own way: a node from the lines it
// resolved, head office from its replica).
type ItemFacts func(i int, item storeline.ItemID) (storeline.Unit, decimal.Decimal, error)

// NewAnswer makes the answer to a priced basket: res's currency, lines and
// totals, each line's VAT (included in its total) at the rate facts gives.
// A line without a price is refused as Invalid naming lines[i].price,
// since the tills must give one; facts is called in line order and not
// for the lines after the first unpriced one. The caller fills the fields
// that describe the request: Store, CatalogVersion, PricedAt (each API
// keeps its own time format), Customer, CustomerGroup and StaffCard.
func NewAnswer(res *Result, facts ItemFacts) (*Answer, error) {
	c := res.Currency
	money := func(d decimal.Decimal) string { return d.StringFixed(c.Scale()) }
	a := &Answer{Currency: c, Lines: make([]AnswerLine, 0, len(res.Lines))}
	for i := range res.Lines {
		l := &res.Lines[i]
		if !l.Priced() {
			return nil, storeline.Invalidf(fmt.Sprintf("lines[%d].price", i), "item %s has no price in this shop's price lists: give the price", l.Item)
		}
		unit, rate, err := facts(i, l.Item)
		if err != nil {
			return nil, err
		}
		o := AnswerLine{
			Item: l.Item, Group: l.Group, Unit: unit, Qty: l.Qty.String(), Source: l.Source, PriceList: l.PriceList,
			BasePrice: l.BasePrice.String(), Policy: l.Policy, Staff: l.Staff, Price: money(l.Price), Gross: money(l.Gross),
			Discount: money(l.Discount), Total: money(l.Total), VATRate: rate.String(),
			VAT: money(storeline.VATIncluded(c, l.Total, rate)), Rule: l.Rule, Promotions: make([]AnswerPromotion, 0, len(l.Promotions)),
		}
		for _, p := range l.Promotions {
			o.Promotions = append(o.Promotions, AnswerPromotion{Promotion: p.Promotion, Kind: p.Kind, Amount: money(p.Amount)})
		}
		a.Lines = append(a.Lines, o)
	}
	a.Subtotal, a.Discount, a.Total, a.Threshold = money(res.Subtotal), money(res.Discount), money(res.Total), res.Threshold
	return a, nil
}

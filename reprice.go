package storeline

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// RepriceRule prices the goods of a group (and its subgroups) at a markup
// over their last purchase cost, VAT added, rounded up to a price ending
// (".99": 3.41 becomes 3.99, 4.00 becomes 4.99). The nearest group up an
// item's chain with a rule decides. Automatic repricing never changes
// prices by itself: it drafts a repricing document for review.
type RepriceRule struct {
	ID        string
	Group     GroupID
	PriceList PriceListID
	Markup    decimal.Decimal // percent over cost
	Ending    decimal.Decimal `msgpack:",omitempty"` // fractional part of every price, in [0, 1); zero: none
}

// Validate checks the rule on its own.
func (r *RepriceRule) Validate() error {
	if err := CheckID("id", r.ID); err != nil {
		return err
	}
	if err := CheckID("group", string(r.Group)); err != nil {
		return err
	}
	if err := CheckID("price_list", string(r.PriceList)); err != nil {
		return err
	}
	if r.Markup.IsNegative() || r.Markup.GreaterThan(decimal.NewFromInt(10000)) || !r.Markup.Round(2).Equal(r.Markup) {
		return Invalidf("markup", "markup %s%%: want 0-10000 with at most 2 decimal places", r.Markup)
	}
	if r.Ending.IsNegative() || r.Ending.GreaterThanOrEqual(decimal.NewFromInt(1)) || !r.Ending.Round(4).Equal(r.Ending) {
		return Invalidf("ending", "price ending %s: want a fraction in [0, 1) with at most 4 places", r.Ending)
	}
	return nil
}

// AutoPrice is the price a rule gives an item with unit cost (VAT
// excluded) and VAT rate: cost × (1 + markup%) × (1 + VAT%), rounded up
// to the currency's scale, then up to the rule's ending. Zero cost gives
// zero: an item never bought has no price to derive.
func AutoPrice(cur Currency, r *RepriceRule, cost, vatRate decimal.Decimal) decimal.Decimal {
	if !cost.IsPositive() {
		return decimal.Zero
	}
	hundred := decimal.NewFromInt(100)
	gross := cost.Mul(hundred.Add(r.Markup)).Mul(hundred.Add(vatRate)).Div(hundred.Mul(hundred))
	p := gross.RoundUp(cur.Scale())
	if r.Ending.IsZero() {
		return p
	}
	e := p.Floor().Add(r.Ending)
	if e.LessThan(p) {
		e = e.Add(decimal.NewFromInt(1))
	}
	return e
}

// RuleFor returns the rule of the nearest group up the chain that starts
// at g (parent gives a group's parent, "" at the top), or nil. rules maps
// a group to its rule.
func RuleFor(g GroupID, parent func(GroupID) GroupID, rules map[GroupID]*RepriceRule) (*RepriceRule, error) {
	for depth := 0; g != ""; depth++ {
		if depth > 1000 {
			return nil, Errorf(Internal, "storeline.RuleFor", "group chain from %q does not end", g)
		}
		if r, ok := rules[g]; ok {
			return r, nil
		}
		g = parent(g)
	}
	return nil, nil
}

// String describes the rule.
func (r *RepriceRule) String() string {
	return fmt.Sprintf("%s: %s +%s%% ending %s in %s", r.ID, r.Group, r.Markup, r.Ending, r.PriceList)
}

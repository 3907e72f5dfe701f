package posbridge

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// Pricing at the node: one engine (package pricing) over the ledger's
// master data prices a till's basket (POST /v1/baskets/price), shows an
// item's list price, and finds a receipt's discrepancies, so all three
// agree with each other and with head office.

// price returns the shop's list price of an item at now: the first of the
// store's ordered price lists holding a price effective at the shop's
// wall-clock time wins, and within a list the latest From at or before it.
func (s *Server) price(st *storeline.Store, loc *time.Location, item storeline.ItemID, now time.Time) (decimal.Decimal, storeline.PriceListID, bool, error) {
	wall := storeline.WallClock(now, loc)
	for _, pl := range st.PriceLists {
		p, ok, err := s.cat.Price(pl, item, wall)
		if err != nil || ok {
			return p, pl, ok, err
		}
	}
	return decimal.Decimal{}, "", false, nil
}

// buyer is who a card names for pricing.
type buyer struct {
	customer storeline.CustomerID
	group    storeline.CustGroupID
	staff    bool // a staff card: the programme's staff discount applies
}

// cardBuyer returns the buyer a card names: a loyalty card's customer and
// group, or a staff card. An unknown or blocked card, or a customer in no
// group, prices as an anonymous buyer (the card may have been registered
// at another till while offline).
func (s *Server) cardBuyer(code string) (buyer, error) {
	var card storeline.CardRecord
	if err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return buyer{}, nil
		}
		return buyer{}, err
	}
	if card.Blocked {
		return buyer{customer: card.Customer}, nil
	}
	if card.Kind == storeline.StaffCard {
		return buyer{staff: true}, nil
	}
	if card.Kind != storeline.LoyaltyCard {
		return buyer{customer: card.Customer}, nil
	}
	var c storeline.Customer
	if err := s.led.GetMaster(storeline.KindCustomer, string(card.Customer), &c); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return buyer{customer: card.Customer}, nil
		}
		return buyer{}, err
	}
	return buyer{customer: c.ID, group: c.Group}, nil
}

// priceIn is POST /v1/baskets/price: lines as a receipt's (a price on a
// line is the seller's manual price), the moment to price at (now when
// absent) and the customer's card.
type priceIn struct {
	OccurredAt string        `json:"occurred_at,omitempty"` // parsed here, to name the field
	Card       string        `json:"card,omitempty"`
	Lines      []priceLineIn `json:"lines"`
}

type priceLineIn struct {
	SKU     string `json:"sku,omitempty"`
	Barcode string `json:"barcode,omitempty"`
	Qty     Dec    `json:"qty"`
	Price   Dec    `json:"price"`
}

type pricedOut struct {
	Currency       storeline.Currency    `json:"currency"`
	CatalogVersion uint64                `json:"catalog_version"`
	PricedAt       string                `json:"priced_at"`
	Customer       storeline.CustomerID  `json:"customer,omitempty"`
	CustomerGroup  storeline.CustGroupID `json:"customer_group,omitempty"`
	StaffCard      bool                  `json:"staff_card,omitempty"`
	Lines          []pricedLineOut       `json:"lines"`
	Subtotal       string                `json:"subtotal"`
	Discount       string                `json:"discount"`
	Total          string                `json:"total"`
	Threshold      storeline.PromotionID `json:"threshold_promotion,omitempty"`
}

type pricedLineOut struct {
	Item       storeline.ItemID      `json:"item"`
	Group      storeline.GroupID     `json:"group"`
	Unit       storeline.Unit        `json:"unit"`
	Qty        string                `json:"qty"`
	Source     pricing.Source        `json:"source"`
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
	Promotions []appliedOut          `json:"promotions"`
}

type appliedOut struct {
	Promotion storeline.PromotionID `json:"promotion"`
	Kind      storeline.PromoKind   `json:"kind"`
	Amount    string                `json:"amount"`
}

// priceBasket prices a basket without recording anything.
func (s *Server) priceBasket(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var in priceIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	version := s.led.MasterVersion() // read first: the answer is at least this fresh
	st, _, err := s.store()
	if err != nil {
		return err
	}
	at := s.cfg.Now()
	if in.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, in.OccurredAt)
		if err != nil || t.IsZero() {
			return storeline.Invalidf("occurred_at", "occurred_at %.40q: want an RFC 3339 time", in.OccurredAt)
		}
		at = t
	}
	out := pricedOut{Currency: st.Currency, CatalogVersion: version, PricedAt: at.UTC().Format(timeFormat), Lines: []pricedLineOut{}}
	if in.Card != "" {
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return err
		}
		by, err := s.cardBuyer(in.Card)
		if err != nil {
			return err
		}
		out.Customer, out.CustomerGroup, out.StaffCard = by.customer, by.group, by.staff
	}
	raw := make([]lineIn, len(in.Lines))
	for i, l := range in.Lines {
		raw[i] = lineIn{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty, Price: l.Price}
	}
	lines, err := s.resolveLines(st, raw, false)
	if err != nil {
		return err
	}
	b := pricing.Basket{Store: st, At: at, CustomerGroup: out.CustomerGroup, Staff: out.StaffCard, Lines: make([]pricing.BasketLine, len(lines))}
	for i, l := range lines {
		b.Lines[i] = pricing.BasketLine{Item: l.Item, Qty: l.Qty, Manual: in.Lines[i].Price.Set, ManualPrice: l.Price}
	}
	res, err := s.engine.Price(b)
	if err != nil {
		return err
	}
	c := st.Currency
	for i, l := range res.Lines {
		if !l.Priced() {
			return storeline.Invalidf(fmt.Sprintf("lines[%d].price", i), "item %s has no price in this shop's price lists: give the price", l.Item)
		}
		o := pricedLineOut{
			Item: l.Item, Group: l.Group, Unit: lines[i].Unit, Qty: qtyStr(l.Qty), Source: l.Source, PriceList: l.PriceList,
			BasePrice: l.BasePrice.String(), Policy: l.Policy, Staff: l.Staff, Price: money(c, l.Price), Gross: money(c, l.Gross),
			Discount: money(c, l.Discount), Total: money(c, l.Total), VATRate: lines[i].VATRate.String(),
			VAT: money(c, storeline.VATIncluded(c, l.Total, lines[i].VATRate)), Rule: l.Rule, Promotions: []appliedOut{},
		}
		for _, a := range l.Promotions {
			o.Promotions = append(o.Promotions, appliedOut{Promotion: a.Promotion, Kind: a.Kind, Amount: money(c, a.Amount)})
		}
		out.Lines = append(out.Lines, o)
	}
	out.Subtotal, out.Discount, out.Total, out.Threshold = money(c, res.Subtotal), money(c, res.Discount), money(c, res.Total), res.Threshold
	writeJSON(w, http.StatusOK, out)
	return nil
}

// discrepancies prices a receipt's lines as a basket at the moment the
// till priced them, for the receipt's customer, and returns the lines
// whose unit price or discount differs from the node's (lines the node has
// no price for are not compared).
func (s *Server) discrepancies(st *storeline.Store, rc *storeline.Receipt, at time.Time) ([]storeline.Discrepancy, error) {
	var by buyer
	if rc.Card != "" {
		var err error
		if by, err = s.cardBuyer(rc.Card); err != nil {
			return nil, err
		}
	}
	b := pricing.Basket{Store: st, At: at, CustomerGroup: by.group, Staff: by.staff, Lines: make([]pricing.BasketLine, len(rc.Lines))}
	for i, l := range rc.Lines {
		b.Lines[i] = pricing.BasketLine{Item: l.Item, Qty: l.Qty}
	}
	res, err := s.engine.Price(b)
	if errors.Is(err, storeline.Invalid) {
		// A receipt the engine will not price (a quantity or price beyond
		// its bounds) has already been paid: record it without the check.
		s.log.Warn("receipt not checked against the node's prices", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("posbridge: price receipt lines: %w", err)
	}
	var ds []storeline.Discrepancy
	for i, l := range res.Lines {
		till := rc.Lines[i]
		if l.Priced() && (!l.Price.Equal(till.Price) || !l.Discount.Equal(till.Discount)) {
			ds = append(ds, storeline.Discrepancy{Line: i, TillPrice: till.Price, NodePrice: l.Price, TillDiscount: till.Discount, NodeDiscount: l.Discount})
		}
	}
	return ds, nil
}

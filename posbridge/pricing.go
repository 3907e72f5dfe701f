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
	var by pricing.Buyer
	if in.Card != "" {
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return err
		}
		if by, err = pricing.CardBuyer(s.led, in.Card); err != nil {
			return err
		}
	}
	raw := make([]lineIn, len(in.Lines))
	for i, l := range in.Lines {
		raw[i] = lineIn{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty, Price: l.Price}
	}
	lines, err := s.resolveLines(st, raw, false)
	if err != nil {
		return err
	}
	b := pricing.Basket{Store: st, At: at, CustomerGroup: by.Group, Staff: by.Staff, Lines: make([]pricing.BasketLine, len(lines))}
	for i, l := range lines {
		b.Lines[i] = pricing.BasketLine{Item: l.Item, Qty: l.Qty, Manual: in.Lines[i].Price.Set, ManualPrice: l.Price}
	}
	res, err := s.engine.Price(b)
	if err != nil {
		return err
	}
	out, err := pricing.NewAnswer(res, func(i int, _ storeline.ItemID) (storeline.Unit, decimal.Decimal, error) {
		return lines[i].Unit, lines[i].VATRate, nil
	})
	if err != nil {
		return err
	}
	out.CatalogVersion, out.PricedAt = version, at.UTC().Format(timeFormat)
	out.Customer, out.CustomerGroup, out.StaffCard = by.Customer, by.Group, by.Staff
	writeJSON(w, http.StatusOK, out)
	return nil
}

// discrepancies prices a receipt's lines as a basket at the moment the
// till priced them, for the receipt's customer, and returns the lines
// whose unit price or discount differs from the node's (lines the node has
// no price for are not compared).
func (s *Server) discrepancies(st *storeline.Store, rc *storeline.Receipt, at time.Time) ([]storeline.Discrepancy, error) {
	var by pricing.Buyer
	if rc.Card != "" {
		var err error
		if by, err = pricing.CardBuyer(s.led, rc.Card); err != nil {
			return nil, err
		}
	}
	b := pricing.Basket{Store: st, At: at, CustomerGroup: by.Group, Staff: by.Staff, Lines: make([]pricing.BasketLine, len(rc.Lines))}
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

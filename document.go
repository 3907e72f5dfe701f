package storeline

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// DocType is the type of a stock document drafted at a shop and posted by
// head office.
type DocType string

// The document types a shop drafts.
const (
	DocIncomingInvoice DocType = "incoming_invoice"
	DocSupplierReturn  DocType = "supplier_return"
	DocTransfer        DocType = "transfer"
	DocStocktake       DocType = "stocktake"
	DocWriteOff        DocType = "write_off"
	// DocRequest is a shop's request for goods (заявка): it moves no
	// stock and is never made a document; head office answers it with a
	// purchase order (central's orders.go), so it names no supplier and
	// no prices.
	DocRequest DocType = "request"
)

// JournalPosition is where a shop's journal and its pull cursor stood when
// a stocktake's counting started; head office posts the stocktake only once
// it has applied the shop's journal up to there.
type JournalPosition struct {
	Epoch      uint64
	Seq        uint64
	PullCursor uint64
}

// DocumentDraft is a document as the shop floor drafted it. It moves no
// stock by itself: head office checks and posts it.
type DocumentDraft struct {
	Type     DocType
	Number   string `msgpack:",omitempty"`
	Terminal TerminalID
	Seller   SellerID
	Currency Currency
	Supplier SupplierID       `msgpack:",omitempty"`
	ToStore  StoreID          `msgpack:",omitempty"`
	FromDept DeptID           `msgpack:",omitempty"`
	ToDept   DeptID           `msgpack:",omitempty"`
	Reason   string           `msgpack:",omitempty"`
	Position *JournalPosition `msgpack:",omitempty"`
	Note     string           `msgpack:",omitempty"`
	// Order is the purchase order an incoming invoice delivers (head
	// office's orders, as the shop was told of them): the document made
	// of the draft names it.
	Order string `msgpack:",omitempty"`
	Lines []DocLine
}

// DocLine is one line of a document draft. Qty is in base units; where the
// shop counted packs, Packs × PackFactor = Qty.
type DocLine struct {
	Item          ItemID
	Unit          Unit
	Qty           decimal.Decimal
	Packs         decimal.Decimal `msgpack:",omitempty"`
	PackFactor    decimal.Decimal `msgpack:",omitempty"`
	PurchasePrice decimal.Decimal `msgpack:",omitempty"` // per base unit, VAT included
	// VATRate is the line's rate as drafted (the tills' API takes the
	// item's then); nil, as in an event of a version that omitted a zero
	// rate, is "not given": the item's rate when posted. It is encoded
	// even when nil (omitempty drops a pointer to zero too), so an
	// explicit 0% stays one.
	VATRate     *decimal.Decimal
	Batch       string `msgpack:",omitempty"`
	Expiry      Date   `msgpack:",omitempty"`
	Certificate string `msgpack:",omitempty"`
}

func (*DocumentDraft) EventKind() EventKind { return KindDocumentDraft }

// Validate checks what head office needs to post the document.
func (d *DocumentDraft) Validate() error {
	if err := CheckID("terminal", string(d.Terminal)); err != nil {
		return err
	}
	if err := CheckID("seller", string(d.Seller)); err != nil {
		return err
	}
	if !d.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", d.Currency)
	}
	if d.Order != "" {
		if d.Type != DocIncomingInvoice {
			return Invalidf("order", "only an incoming invoice delivers a purchase order, not a %s", d.Type)
		}
		if err := CheckID("order", d.Order); err != nil {
			return err
		}
	}
	switch d.Type {
	case DocIncomingInvoice, DocSupplierReturn:
		if err := CheckID("supplier", string(d.Supplier)); err != nil {
			return err
		}
	case DocTransfer:
		if d.ToStore == "" && d.ToDept == "" {
			return Invalidf("to_store", "a transfer goes to a shop or a department")
		}
		if d.ToStore != "" {
			if err := CheckID("to_store", string(d.ToStore)); err != nil {
				return err
			}
		}
		if d.ToDept != "" {
			if err := CheckID("to_dept", string(d.ToDept)); err != nil {
				return err
			}
		}
	case DocStocktake:
		if d.Position == nil {
			return Invalidf("position", "a stocktake needs the journal position and pull cursor when counting started")
		}
	case DocWriteOff:
		if d.Reason == "" {
			return Invalidf("reason", "a write-off needs a reason")
		}
	case DocRequest:
		if err := d.validateRequest(); err != nil {
			return err
		}
	default:
		return Invalidf("type", "unknown document type %q", d.Type)
	}
	if len(d.Lines) == 0 {
		return Invalidf("lines", "at least one line is required")
	}
	for i := range d.Lines {
		if err := d.Lines[i].validate(d.Type, d.Currency); err != nil {
			return prefixField(fmt.Sprintf("lines[%d]", i), err)
		}
	}
	return nil
}

// validateRequest refuses what a request has no use for: the supplier
// and the stock movement are head office's to choose when it orders, so
// a field of theirs sent by a till would be dropped without a word.
func (d *DocumentDraft) validateRequest() error {
	for _, f := range []struct{ name, v string }{
		{"supplier", string(d.Supplier)}, {"to_store", string(d.ToStore)}, {"from_dept", string(d.FromDept)},
		{"to_dept", string(d.ToDept)}, {"reason", d.Reason},
	} {
		if f.v != "" {
			return Invalidf(f.name, "a request has no use for %s: head office answers it with a purchase order (use note)", f.name)
		}
	}
	if d.Position != nil {
		return Invalidf("position", "only a stocktake counts as of a journal position")
	}
	return nil
}

func (l *DocLine) validate(t DocType, cur Currency) error {
	if err := CheckID("item", string(l.Item)); err != nil {
		return err
	}
	if t == DocRequest {
		for _, f := range []struct {
			name string
			set  bool
		}{{"purchase_price", !l.PurchasePrice.IsZero()}, {"batch", l.Batch != ""}, {"expiry", l.Expiry != ""}, {"certificate", l.Certificate != ""}} {
			if f.set {
				return Invalidf(f.name, "a request has no %s: it asks for goods, the supplier's invoice brings them", f.name)
			}
		}
	}
	if !l.Packs.IsZero() || !l.PackFactor.IsZero() {
		if !l.Packs.IsPositive() || !l.PackFactor.IsPositive() {
			return Invalidf("packs", "packs and pack_factor must both be positive")
		}
		q := l.Packs.Mul(l.PackFactor)
		if !l.Qty.IsZero() && !l.Qty.Equal(q) {
			return Invalidf("qty", "qty %s differs from packs × pack_factor = %s", l.Qty, q)
		}
		l.Qty = q
	}
	var err error
	if t == DocStocktake && l.Qty.IsZero() {
		l.Qty = decimal.Zero.Round(QtyScale) // counted nothing is a count
	} else if l.Qty, err = NormQty("qty", l.Qty, l.Unit); err != nil {
		return err
	}
	if l.PurchasePrice.IsNegative() {
		return Invalidf("purchase_price", "price %s is negative", l.PurchasePrice)
	}
	if l.PurchasePrice, err = cur.Amount("purchase_price", l.PurchasePrice); err != nil {
		return err
	}
	if l.VATRate != nil {
		r, err := NormRate("vat_rate", *l.VATRate)
		if err != nil {
			return err
		}
		l.VATRate = &r
	}
	if l.Expiry != "" {
		if _, err := ParseDate("expiry", string(l.Expiry)); err != nil {
			return err
		}
	}
	return nil
}

// Basket is a set of goods put together at a till and saved, to be picked
// up later at any till of the shop.
type Basket struct {
	Terminal TerminalID
	Seller   SellerID
	Customer CustomerID `msgpack:",omitempty"`
	Card     string     `msgpack:",omitempty"`
	Note     string     `msgpack:",omitempty"`
	Lines    []BasketLine
}

// BasketLine is an item and quantity in a basket.
type BasketLine struct {
	Item ItemID
	Unit Unit
	Qty  decimal.Decimal
}

func (*Basket) EventKind() EventKind { return KindBasket }

// Validate checks the basket.
func (b *Basket) Validate() error {
	if err := CheckID("terminal", string(b.Terminal)); err != nil {
		return err
	}
	if err := CheckID("seller", string(b.Seller)); err != nil {
		return err
	}
	if len(b.Lines) == 0 {
		return Invalidf("lines", "at least one line is required")
	}
	for i := range b.Lines {
		l := &b.Lines[i]
		f := fmt.Sprintf("lines[%d]", i)
		if err := CheckID(f+".item", string(l.Item)); err != nil {
			return err
		}
		var err error
		if l.Qty, err = NormQty(f+".qty", l.Qty, l.Unit); err != nil {
			return err
		}
	}
	return nil
}

// CustomerRegistered is a customer signed up at a till, with a new card,
// offline if need be; head office merges it later.
type CustomerRegistered struct {
	Terminal TerminalID
	Seller   SellerID
	Customer Customer
	CardCode string
}

func (*CustomerRegistered) EventKind() EventKind { return KindCustomerRegistered }

// Validate checks the registration.
func (c *CustomerRegistered) Validate() error {
	if err := CheckID("terminal", string(c.Terminal)); err != nil {
		return err
	}
	if err := CheckID("seller", string(c.Seller)); err != nil {
		return err
	}
	if err := c.Customer.Validate(); err != nil {
		return prefixField("customer", err)
	}
	return CheckCardCode("card", c.CardCode)
}

// Transfer is an event that moves balances by its stored postings alone,
// authored where the rule that produced them ran (head office posting a
// document, brokering loyalty rights).
type Transfer struct {
	Reason string
	Ref    string `msgpack:",omitempty"`
}

func (*Transfer) EventKind() EventKind { return KindTransfer }

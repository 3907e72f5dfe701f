package storeline

import (
	"github.com/shopspring/decimal"
)

// CashDirection says whether cash goes into a drawer or out of it.
type CashDirection string

// The directions of a cash operation.
const (
	CashIn  CashDirection = "in"
	CashOut CashDirection = "out"
)

// CashOp is cash put into or taken out of a till's drawer outside a sale.
type CashOp struct {
	Terminal  TerminalID
	Shift     ShiftID
	Seller    SellerID
	Direction CashDirection
	Currency  Currency
	Amount    decimal.Decimal
	Reason    string
}

func (*CashOp) EventKind() EventKind { return KindCash }

// Validate checks the operation and normalises its amount.
func (c *CashOp) Validate() error {
	if err := checkTillRefs(c.Terminal, c.Shift, c.Seller); err != nil {
		return err
	}
	if c.Direction != CashIn && c.Direction != CashOut {
		return Invalidf("direction", "unknown direction %q (in, out)", c.Direction)
	}
	if !c.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", c.Currency)
	}
	if !c.Amount.IsPositive() {
		return Invalidf("amount", "amount %s must be positive", c.Amount)
	}
	var err error
	c.Amount, err = c.Currency.Amount("amount", c.Amount)
	return err
}

// Postings move the amount between the shop's safe and the drawer.
func (c *CashOp) Postings(store StoreID) ([]Posting, error) {
	amt := c.Amount
	if c.Direction == CashOut {
		amt = amt.Neg()
	}
	m := MoneyAsset(c.Currency)
	return []Posting{
		{CashAccount(store, c.Terminal), m, amt},
		{SafeAccount(store), m, amt.Neg()},
	}, nil
}

// ShiftOpen starts a seller's shift at a till, with the cash float put in
// the drawer.
type ShiftOpen struct {
	Terminal TerminalID
	Shift    ShiftID
	Seller   SellerID
	Currency Currency
	Float    decimal.Decimal
}

func (*ShiftOpen) EventKind() EventKind { return KindShiftOpen }

// Validate checks the shift opening and normalises the float.
func (s *ShiftOpen) Validate() error {
	if err := checkTillRefs(s.Terminal, s.Shift, s.Seller); err != nil {
		return err
	}
	if !s.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", s.Currency)
	}
	if s.Float.IsNegative() {
		return Invalidf("float", "float %s is negative", s.Float)
	}
	var err error
	s.Float, err = s.Currency.Amount("float", s.Float)
	return err
}

// Postings move the float from the safe into the drawer.
func (s *ShiftOpen) Postings(store StoreID) ([]Posting, error) {
	m := MoneyAsset(s.Currency)
	return []Posting{
		{CashAccount(store, s.Terminal), m, s.Float},
		{SafeAccount(store), m, s.Float.Neg()},
	}, nil
}

// ShiftClose ends a shift with its Z report, computed by the node from its
// own journal when the till asks to close.
type ShiftClose struct {
	Terminal TerminalID
	Shift    ShiftID
	Seller   SellerID
	// Not omitempty: msgpack would drop a count of 0.00 (decimal's IsZero),
	// which read back as no count at all.
	CountedCash *decimal.Decimal
	Report      ZReport
}

func (*ShiftClose) EventKind() EventKind { return KindShiftClose }

// ZReport is the closing report of a shift: counts and totals per tender,
// and the cash the drawer should hold.
type ZReport struct {
	Currency     Currency
	Receipts     int
	Returns      int
	Sales        decimal.Decimal // receipts' totals
	Refunds      decimal.Decimal // returns' totals
	Tenders      []TenderTotal   // sales per tender, refunds subtracted
	Float        decimal.Decimal
	CashIn       decimal.Decimal
	CashOut      decimal.Decimal
	ExpectedCash decimal.Decimal // float + cash sales − change − cash refunds + in − out
	Difference   decimal.Decimal `msgpack:",omitempty"` // counted − expected, when counted
}

// TenderTotal is the net amount taken in one tender during a shift.
type TenderTotal struct {
	Method PayMethod
	Count  int
	Amount decimal.Decimal
}

package storeline

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// PayMethod is a tender.
type PayMethod string

// The tenders. Points arrive with the loyalty programme.
const (
	Cash   PayMethod = "cash"
	Card   PayMethod = "card"
	Points PayMethod = "points"
)

// Receipt is a sale as the till made it, resolved against the shop's
// master data (items, departments, VAT rates) and checked by Compute. Lines
// carry the prices the till charged; the node's own price for a line, where
// it differs, is recorded as a Discrepancy and never changes the receipt.
type Receipt struct {
	Terminal       TerminalID
	Shift          ShiftID
	Seller         SellerID
	Currency       Currency
	CatalogVersion uint64
	Card           string     `msgpack:",omitempty"`
	Customer       CustomerID `msgpack:",omitempty"`
	// Programme is the loyalty programme the receipt earns (Earned points,
	// set by the node from the programme's rates) and pays points in.
	Programme ProgrammeID `msgpack:",omitempty"`
	Earned    int64       `msgpack:",omitempty"`
	Lines     []Line
	Payments  []Payment
	Fiscal    *Fiscal `msgpack:",omitempty"`

	// Derived by Compute; stored so every replica shows the same figures.
	Total         decimal.Decimal
	Change        decimal.Decimal
	VAT           []VATSum
	Discrepancies []Discrepancy `msgpack:",omitempty"`
}

// Line is one line of a receipt, a return or a basket. Qty is in the item's
// base unit; Price per base unit, VAT included; Discount an amount off the
// line.
type Line struct {
	Item     ItemID
	Dept     DeptID
	Unit     Unit
	Barcode  string `msgpack:",omitempty"` // as scanned, if it was
	Qty      decimal.Decimal
	Price    decimal.Decimal
	Discount decimal.Decimal
	Serial   string `msgpack:",omitempty"` // a marked item's serial
	VATRate  decimal.Decimal

	Total decimal.Decimal // round(Qty × Price) − Discount
	VAT   decimal.Decimal // round(Total × rate / (100 + rate))
}

// Payment is one tender of a receipt or a refund of a return.
type Payment struct {
	Method    PayMethod
	Amount    decimal.Decimal
	Reference string `msgpack:",omitempty"` // card payment reference
	AuthCode  string `msgpack:",omitempty"`
	Points    int64  `msgpack:",omitempty"` // a points payment's points; Amount is their worth
}

// Fiscal is what the till reports of its fiscal register, kept for
// reconciliation.
type Fiscal struct {
	DocumentNumber string
	Sign           string
}

// VATSum is the VAT of one rate on a receipt.
type VATSum struct {
	Rate  decimal.Decimal
	Gross decimal.Decimal
	VAT   decimal.Decimal
}

// Discrepancy records that the till charged another unit price, or took
// another discount off the line (promotions, the line's share of a
// receipt threshold discount), than the node's own pricing gives. Both
// pairs are filled whichever differs.
type Discrepancy struct {
	Line         int
	TillPrice    decimal.Decimal
	NodePrice    decimal.Decimal
	TillDiscount decimal.Decimal `msgpack:",omitempty"`
	NodeDiscount decimal.Decimal `msgpack:",omitempty"`
}

func (*Receipt) EventKind() EventKind { return KindReceipt }

// computeLines normalises and computes every line in place, returning the
// sum of line totals and the VAT per rate.
func computeLines(cur Currency, lines []Line) (decimal.Decimal, []VATSum, error) {
	if len(lines) == 0 {
		return decimal.Zero, nil, Invalidf("lines", "at least one line is required")
	}
	total := cur.Round(decimal.Zero)
	var vat []VATSum
	for i := range lines {
		if err := lines[i].compute(cur); err != nil {
			return total, nil, prefixField(fmt.Sprintf("lines[%d]", i), err)
		}
		l := &lines[i]
		total = total.Add(l.Total)
		found := false
		for j := range vat {
			if vat[j].Rate.Equal(l.VATRate) {
				vat[j].Gross = vat[j].Gross.Add(l.Total)
				vat[j].VAT = vat[j].VAT.Add(l.VAT)
				found = true
				break
			}
		}
		if !found {
			vat = append(vat, VATSum{Rate: l.VATRate, Gross: l.Total, VAT: l.VAT})
		}
	}
	return total, vat, nil
}

func (l *Line) compute(cur Currency) error {
	if err := CheckID("item", string(l.Item)); err != nil {
		return err
	}
	if err := CheckID("dept", string(l.Dept)); err != nil {
		return err
	}
	var err error
	if l.Qty, err = NormQty("qty", l.Qty, l.Unit); err != nil {
		return err
	}
	if l.Price.IsNegative() {
		return Invalidf("price", "price %s is negative", l.Price)
	}
	if l.Price, err = cur.Amount("price", l.Price); err != nil {
		return err
	}
	if l.Discount.IsNegative() {
		return Invalidf("discount", "discount %s is negative", l.Discount)
	}
	if l.Discount, err = cur.Amount("discount", l.Discount); err != nil {
		return err
	}
	if l.VATRate, err = NormRate("vat_rate", l.VATRate); err != nil {
		return err
	}
	gross := cur.Round(l.Qty.Mul(l.Price))
	if l.Discount.GreaterThan(gross) {
		return Invalidf("discount", "discount %s exceeds the line's %s", l.Discount, gross)
	}
	l.Total = gross.Sub(l.Discount)
	l.VAT = VATIncluded(cur, l.Total, l.VATRate)
	return nil
}

// Compute checks the receipt against itself and fills in its derived
// figures: line totals and VAT, the total, VAT per rate, and the change.
// Payments must cover the total; only cash may exceed it, and the change
// comes out of the cash.
func (r *Receipt) Compute() error {
	if !r.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", r.Currency)
	}
	if err := checkTillRefs(r.Terminal, r.Shift, r.Seller); err != nil {
		return err
	}
	total, vat, err := computeLines(r.Currency, r.Lines)
	if err != nil {
		return err
	}
	r.Total, r.VAT = total, vat
	cash, other, err := sumPayments(r.Currency, r.Payments, true)
	if err != nil {
		return err
	}
	if err := r.checkLoyalty(); err != nil {
		return err
	}
	if other.GreaterThan(total) {
		return Invalidf("payments", "non-cash payments %s exceed the total %s", other, total)
	}
	paid := cash.Add(other)
	if paid.LessThan(total) {
		return Invalidf("payments", "payments %s are short of the total %s", paid, total)
	}
	r.Change = paid.Sub(total)
	return nil
}

func checkTillRefs(t TerminalID, s ShiftID, sel SellerID) error {
	if err := CheckID("terminal", string(t)); err != nil {
		return err
	}
	if err := CheckID("shift", string(s)); err != nil {
		return err
	}
	return CheckID("seller", string(sel))
}

// checkLoyalty checks a receipt's points: earning or paying points needs
// a customer and a programme.
func (r *Receipt) checkLoyalty() error {
	spends := false
	for _, p := range r.Payments {
		spends = spends || p.Method == Points
	}
	if r.Earned < 0 || r.Earned > MaxPoints {
		return Invalidf("earned", "earned points %d out of [0, %d]", r.Earned, MaxPoints)
	}
	if !spends && r.Earned == 0 {
		return nil
	}
	if r.Customer == "" {
		return Invalidf("card", "points are earned and paid only with a loyalty card of a known customer")
	}
	return CheckID("programme", string(r.Programme))
}

// MaxPoints bounds the points of one payment or one receipt's accrual.
const MaxPoints = 1 << 40

// sumPayments normalises payments and returns the cash and non-cash sums;
// points count as non-cash where pointsOK.
func sumPayments(cur Currency, ps []Payment, pointsOK bool) (cash, other decimal.Decimal, err error) {
	cash, other = cur.Round(decimal.Zero), cur.Round(decimal.Zero)
	if len(ps) == 0 {
		return cash, other, Invalidf("payments", "at least one payment is required")
	}
	for i := range ps {
		p := &ps[i]
		field := fmt.Sprintf("payments[%d]", i)
		if !p.Amount.IsPositive() {
			return cash, other, Invalidf(field+".amount", "amount %s must be positive", p.Amount)
		}
		if p.Amount, err = cur.Amount(field+".amount", p.Amount); err != nil {
			return cash, other, err
		}
		switch p.Method {
		case Cash:
			cash = cash.Add(p.Amount)
		case Card:
			other = other.Add(p.Amount)
		case Points:
			if !pointsOK {
				return cash, other, Invalidf(field+".method", "points are not refunded: a return reverses accrual instead")
			}
			if p.Points <= 0 || p.Points > MaxPoints {
				return cash, other, Invalidf(field+".points", "points %d out of [1, %d]", p.Points, int64(MaxPoints))
			}
			other = other.Add(p.Amount)
		default:
			return cash, other, Invalidf(field+".method", "unknown method %q (cash, card)", p.Method)
		}
	}
	return cash, other, nil
}

// Postings of a sale: units leave the department's stock for sold; the
// customer's money goes to the drawer or the card account, credited to
// revenue net of VAT and to VAT per rate.
func (r *Receipt) Postings(store StoreID) ([]Posting, error) {
	ps := salePostings(store, r.Terminal, r.Currency, r.Lines, r.Payments, r.Change, false)
	if r.Programme == "" {
		return ps, nil
	}
	// Points live on the customer's account per holder of the rights to
	// spend them: points/<programme>/<customer>/<store> is the store's
	// share of the customer's bounded counter. Earning credits it from
	// issued/<store>; paying debits it to redeemed/<store>. Only this
	// store's events debit its share, so the share is the store's rights.
	pts := PointsAsset(r.Programme)
	acct := PointsAccount(r.Programme, r.Customer, store)
	if r.Earned > 0 {
		n := decimal.NewFromInt(r.Earned)
		ps = append(ps, Posting{acct, pts, n}, Posting{IssuedPointsAccount(store), pts, n.Neg()})
	}
	for _, p := range r.Payments {
		if p.Method == Points {
			n := decimal.NewFromInt(p.Points)
			ps = append(ps, Posting{acct, pts, n.Neg()}, Posting{RedeemedPointsAccount(store), pts, n})
		}
	}
	return ps, nil
}

// PointsAccount holds the points of customer c in programme p that store
// s has the rights to spend.
func PointsAccount(p ProgrammeID, c CustomerID, s StoreID) string {
	return "points/" + string(p) + "/" + string(c) + "/" + string(s)
}

// IssuedPointsAccount is where points earned at store s come from;
// RedeemedPointsAccount where points paid there go.
func IssuedPointsAccount(s StoreID) string   { return "points-issued/" + string(s) }
func RedeemedPointsAccount(s StoreID) string { return "points-redeemed/" + string(s) }

// LoyaltyAccount is the money store s took in points: what the programme
// owes the shop for goods paid with points.
func LoyaltyAccount(s StoreID) string { return "loyalty/" + string(s) }

// salePostings derives the postings of a sale, or of a return when reverse.
func salePostings(store StoreID, term TerminalID, cur Currency, lines []Line, pays []Payment, change decimal.Decimal, reverse bool) []Posting {
	sign := decimal.NewFromInt(1)
	if reverse {
		sign = sign.Neg()
	}
	money := MoneyAsset(cur)
	ps := make([]Posting, 0, 2*len(lines)+2*len(lines)+len(pays)+1)
	for _, l := range lines {
		units := ItemAsset(l.Item)
		ps = append(ps,
			Posting{StockAccount(store, l.Dept, l.Item), units, l.Qty.Neg().Mul(sign)},
			Posting{SoldAccount(store, l.Item), units, l.Qty.Mul(sign)},
			Posting{RevenueAccount(store), money, l.Total.Sub(l.VAT).Neg().Mul(sign)},
		)
		if !l.VAT.IsZero() {
			ps = append(ps, Posting{VATAccount(store, l.VATRate), money, l.VAT.Neg().Mul(sign)})
		}
	}
	for _, p := range pays {
		acct := CashAccount(store, term)
		switch p.Method {
		case Card:
			acct = CardAccount(store, term)
		case Points:
			acct = LoyaltyAccount(store)
		}
		ps = append(ps, Posting{acct, money, p.Amount.Mul(sign)})
	}
	if !change.IsZero() {
		ps = append(ps, Posting{CashAccount(store, term), money, change.Neg().Mul(sign)})
	}
	return ps
}

// Return is goods brought back by a customer, with the money refunded. It
// may name the receipt it returns from; the node then checks that no more
// is returned than that receipt sold.
type Return struct {
	Terminal TerminalID
	Shift    ShiftID
	Seller   SellerID
	Manager  SellerID // who authorised it
	Currency Currency
	Original *EventID `msgpack:",omitempty"`
	Reason   string
	Lines    []Line
	Refunds  []Payment
	// Loyalty: the points the original receipt earned that this return
	// takes back (loyalty.go).
	Points *PointsReversal `msgpack:",omitempty"`

	Total decimal.Decimal
	VAT   []VATSum
}

func (*Return) EventKind() EventKind { return KindReturn }

// Compute checks the return against itself: refunds must equal its total.
func (r *Return) Compute() error {
	if !r.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", r.Currency)
	}
	if err := checkTillRefs(r.Terminal, r.Shift, r.Seller); err != nil {
		return err
	}
	total, vat, err := computeLines(r.Currency, r.Lines)
	if err != nil {
		return err
	}
	r.Total, r.VAT = total, vat
	cash, other, err := sumPayments(r.Currency, r.Refunds, false)
	if err != nil {
		return prefixField("refunds", stripField("payments", err))
	}
	if !cash.Add(other).Equal(total) {
		return Invalidf("refunds", "refunds %s differ from the return's total %s", cash.Add(other), total)
	}
	return r.Points.check()
}

// stripField removes a leading field name from an error's field, so a
// shared validator's "payments[1].amount" can be renamed.
func stripField(name string, err error) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	c := *e
	if c.Field == name {
		c.Field = ""
	} else if len(c.Field) > len(name) && c.Field[:len(name)] == name {
		c.Field = c.Field[len(name):]
	}
	return &c
}

// Postings of a return reverse a sale's.
func (r *Return) Postings(store StoreID) ([]Posting, error) {
	ps := salePostings(store, r.Terminal, r.Currency, r.Lines, r.Refunds, decimal.Zero, true)
	return append(ps, r.Points.postings(store)...), nil
}

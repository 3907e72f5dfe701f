package storeline

import (
	"fmt"
	"slices"
	"strings"

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
// Its msgpack encoding, and that of its parts and of Return, is written by
// hand (bodyenc.go): a new field goes there too.
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
	for i := range lines {
		if err := lines[i].compute(cur); err != nil {
			return cur.Round(decimal.Zero), nil, prefixField(fmt.Sprintf("lines[%d]", i), err)
		}
	}
	if total, vat, ok := sumLinesFx(cur, lines); ok {
		return total, vat, nil
	}
	total := cur.Round(decimal.Zero)
	var vat []VATSum
	for i := range lines {
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

// sumLinesFx is computeLines' sums on int64s: the same figures with the
// same exponents, or false where a figure does not fit.
func sumLinesFx(cur Currency, lines []Line) (decimal.Decimal, []VATSum, bool) {
	type rateSum struct {
		rate       fx
		gross, vat fx
		n          int // lines summed: one keeps the line's own decimals
		first      int
	}
	var buf [4]rateSum
	sums := buf[:0]
	total := fx{0, -cur.Scale()}
	for i := range lines {
		l := &lines[i]
		t, ok1 := toFx(l.Total)
		v, ok2 := toFx(l.VAT)
		r, ok3 := toFx(l.VATRate)
		if !ok1 || !ok2 || !ok3 {
			return decimal.Decimal{}, nil, false
		}
		var ok bool
		if total, ok = total.add(t); !ok {
			return decimal.Decimal{}, nil, false
		}
		j := 0
		for ; j < len(sums); j++ {
			c, ok := sums[j].rate.cmp(r)
			if !ok {
				return decimal.Decimal{}, nil, false
			}
			if c == 0 {
				break
			}
		}
		if j == len(sums) {
			sums = append(sums, rateSum{rate: r, gross: t, vat: v, n: 1, first: i})
			continue
		}
		s := &sums[j]
		var ok4, ok5 bool
		s.gross, ok4 = s.gross.add(t)
		s.vat, ok5 = s.vat.add(v)
		if !ok4 || !ok5 {
			return decimal.Decimal{}, nil, false
		}
		s.n++
	}
	vat := make([]VATSum, len(sums))
	for j, s := range sums {
		f := &lines[s.first]
		vat[j] = VATSum{Rate: f.VATRate, Gross: f.Total, VAT: f.VAT}
		if s.n > 1 {
			vat[j].Gross, vat[j].VAT = s.gross.dec(), s.vat.dec()
		}
	}
	return total.dec(), vat, true
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
	// A serial names one marked unit, counted once per line (sold +1,
	// returned −1), as a document line with a serial moves one unit.
	if l.Serial != "" && !l.Qty.Equal(decimal.NewFromInt(1)) {
		return Invalidf("qty", "a line with a serial sells one unit, not %s", l.Qty)
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
	if ok, err := l.totalFx(cur); ok || err != nil {
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

// totalFx is the end of compute on int64s; false where a figure does not
// fit one, and the caller goes the decimal way.
func (l *Line) totalFx(cur Currency) (bool, error) {
	q, ok1 := toFx(l.Qty)
	p, ok2 := toFx(l.Price)
	d, ok3 := toFx(l.Discount)
	r, ok4 := toFx(l.VATRate)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return false, nil
	}
	scale := cur.Scale()
	gross, ok := q.mul(p)
	if !ok {
		return false, nil
	}
	if gross, ok = gross.round(scale); !ok {
		return false, nil
	}
	c, ok := d.cmp(gross)
	if !ok {
		return false, nil
	}
	if c > 0 {
		return true, Invalidf("discount", "discount %s exceeds the line's %s", l.Discount, gross.dec())
	}
	total, ok := gross.sub(d)
	if !ok {
		return false, nil
	}
	vat := fx{0, -scale} // VATIncluded of a zero rate
	if r.c != 0 {
		if vat, ok = vatIncludedFx(total, r, scale); !ok {
			return false, nil
		}
	}
	l.Total, l.VAT = total.dec(), vat.dec()
	return true, nil
}

// Compute checks the receipt against itself and fills in its derived
// figures: line totals and VAT, the total, VAT per rate, and the change.
// Payments must cover the total; only cash may exceed it, and the change
// comes out of the cash. A receipt whose total is zero (a giveaway, lines
// discounted to nothing) may have no payments; any other needs one.
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
	cash, other := total, total // nothing paid of nothing to pay
	if len(r.Payments) > 0 || !total.IsZero() {
		if cash, other, err = sumPayments(r.Currency, r.Payments, pointsPaid); err != nil {
			return err
		}
	}
	if err := r.checkLoyalty(); err != nil {
		return err
	}
	if ok, err := r.changeFx(cash, other); ok || err != nil {
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

// changeFx is the end of Compute on int64s; false where a figure does
// not fit one.
func (r *Receipt) changeFx(cashD, otherD decimal.Decimal) (bool, error) {
	total, ok1 := toFx(r.Total)
	cash, ok2 := toFx(cashD)
	other, ok3 := toFx(otherD)
	if !ok1 || !ok2 || !ok3 {
		return false, nil
	}
	c, ok := other.cmp(total)
	if !ok {
		return false, nil
	}
	if c > 0 {
		return true, Invalidf("payments", "non-cash payments %s exceed the total %s", otherD, r.Total)
	}
	paid, ok := cash.add(other)
	if !ok {
		return false, nil
	}
	if c, ok = paid.cmp(total); !ok {
		return false, nil
	}
	if c < 0 {
		return true, Invalidf("payments", "payments %s are short of the total %s", paid.dec(), r.Total)
	}
	change, ok := paid.sub(total)
	if !ok {
		return false, nil
	}
	r.Change = change.dec()
	return true, nil
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
	// The customer and the programme are parts of account names
	// (PointsAccount): an ID with a slash would post to another
	// customer's account.
	if r.Customer != "" {
		if err := CheckID("customer", string(r.Customer)); err != nil {
			return err
		}
	}
	if r.Programme != "" {
		if err := CheckID("programme", string(r.Programme)); err != nil {
			return err
		}
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

// pointsRule says which points tenders sumPayments accepts.
type pointsRule int8

const (
	noPoints        pointsRule = iota // a return without a customer's points
	pointsPaid                        // a receipt's: at least one point each
	pointsGivenBack                   // a return's: a worth whose points may round down to none
)

func (r pointsRule) min() int64 {
	if r == pointsGivenBack {
		return 0
	}
	return 1
}

// sumPayments normalises payments and returns the cash and non-cash sums;
// points count as non-cash where rule accepts them.
func sumPayments(cur Currency, ps []Payment, rule pointsRule) (cash, other decimal.Decimal, err error) {
	if len(ps) == 0 {
		zero := cur.Round(decimal.Zero)
		return zero, zero, Invalidf("payments", "at least one payment is required")
	}
	// The sums on int64s while they fit, then in decimals from where
	// they stop fitting.
	scale := cur.Scale()
	cashX, otherX := fx{0, -scale}, fx{0, -scale}
	i := 0
	for ; i < len(ps); i++ {
		p := &ps[i]
		if !p.Amount.IsPositive() {
			break // the decimal loop names the field
		}
		a, ok := toFx(p.Amount)
		if !ok {
			break
		}
		r, ok := a.round(scale)
		if !ok {
			break
		}
		if c, ok := r.cmp(a); !ok || c != 0 {
			break
		}
		var sum *fx
		switch {
		case p.Method == Cash:
			sum = &cashX
		case p.Method == Card, p.Method == Points && rule != noPoints && p.Points >= rule.min() && p.Points <= MaxPoints:
			sum = &otherX
		}
		if sum == nil {
			break // a refusal: the decimal loop words it
		}
		s, ok := sum.add(r)
		if !ok {
			break
		}
		*sum = s
		if r.e != a.e {
			p.Amount = r.dec()
		}
	}
	cash, other = cashX.dec(), otherX.dec()
	for ; i < len(ps); i++ {
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
			if rule == noPoints {
				return cash, other, Invalidf(field+".method", "points are given back only by the node, for the part of a returned receipt paid with points; refund cash or card")
			}
			if p.Points < rule.min() || p.Points > MaxPoints {
				return cash, other, Invalidf(field+".points", "points %d out of [%d, %d]", p.Points, rule.min(), int64(MaxPoints))
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
// Each amount is what x.Neg().Mul(sign) or x.Mul(sign) gives, exponent
// included; multiplying by ±1 keeps the exponent, so a +1 product is x
// itself and a −1 product is x negated. Revenue and VAT are posted once
// per account, summed over the lines in line order: the sums
// DerivePostings' merge would make of per-line postings, exponent
// included (a decimal sum is exact and takes the smallest exponent), for
// a decimal less per line.
func salePostings(store StoreID, term TerminalID, cur Currency, lines []Line, pays []Payment, change decimal.Decimal, reverse bool) []Posting {
	signed := func(d decimal.Decimal, neg bool) decimal.Decimal {
		if neg == reverse {
			return d
		}
		return negDec(d)
	}
	money := MoneyAsset(cur)
	// VAT by rate: rates repeat across lines, and a rate's String
	// allocates. Keyed by coefficient and exponent, which decide the
	// String; rates of equal value and other exponents share an account,
	// and DerivePostings merges them.
	type vatAcct struct {
		rate    decimal.Decimal
		x       fx
		fast    bool
		sum     amountSum
		account string
	}
	var vatBuf [4]vatAcct
	vats := vatBuf[:0]
	var revenue amountSum
	ps := make([]Posting, 0, 2*len(lines)+len(pays)+6)
	names := lineNames(store, lines)
	for i := range lines {
		l := &lines[i]
		units, stock, sold := names.next(store, l)
		ps = append(ps,
			Posting{sold, units, signed(l.Qty, false)},
			Posting{stock, units, signed(l.Qty, true)},
		)
		if r, ok := revenueFx(l, reverse); ok {
			revenue.addFx(r)
		} else {
			revenue.add(revenueAmount(*l, reverse))
		}
		if l.VAT.IsZero() {
			continue
		}
		x, fast := toFx(l.VATRate)
		j := 0
		for ; j < len(vats); j++ {
			if fast && vats[j].fast && vats[j].x == x {
				break
			}
		}
		if j == len(vats) {
			vats = append(vats, vatAcct{rate: l.VATRate, x: x, fast: fast})
		}
		if v, ok := toFx(l.VAT); ok {
			if !reverse {
				v = v.neg()
			}
			vats[j].sum.addFx(v)
		} else {
			vats[j].sum.add(signed(l.VAT, true))
		}
	}
	items := len(ps)
	cash := CashAccount(store, term)
	for _, p := range pays {
		acct := cash
		switch p.Method {
		case Card:
			acct = CardAccount(store, term)
		case Points:
			acct = LoyaltyAccount(store)
		}
		ps = append(ps, Posting{acct, money, signed(p.Amount, false)})
	}
	if !change.IsZero() {
		ps = append(ps, Posting{cash, money, signed(change, true)})
	}
	if len(lines) > 0 {
		ps = append(ps, Posting{RevenueAccount(store), money, revenue.sum()})
	}
	for _, v := range vats {
		ps = append(ps, Posting{VATAccount(store, v.rate), money, v.sum.sum()})
	}
	// Money first, then the lines' items: the order MergePostings sorts
	// into (by asset, then account), but for the tenders' order and the
	// items', so its sort has little to move.
	slices.Reverse(ps[:items])
	slices.Reverse(ps[items:])
	slices.Reverse(ps)
	return ps
}

// saleNames are the item asset, stock account and sold account of each
// line of a sale (ItemAsset, StockAccount, SoldAccount), cut from one
// string: three allocations per line were a third of a receipt's.
type saleNames struct {
	all string
	off int
}

// lineNameLens are the lengths of a line's three names: the asset
// ("item:" item), the stock account ("stock/" store "/" dept "/" item)
// and the sold account ("sold/" store "/" item).
func lineNameLens(store StoreID, l *Line) (asset, stock, sold int) {
	return 5 + len(l.Item), 8 + len(store) + len(l.Dept) + len(l.Item), 6 + len(store) + len(l.Item)
}

func lineNames(store StoreID, lines []Line) saleNames {
	n := 0
	for i := range lines {
		a, st, so := lineNameLens(store, &lines[i])
		n += a + st + so
	}
	var b strings.Builder
	b.Grow(n)
	for i := range lines {
		l := &lines[i]
		b.WriteString("item:")
		b.WriteString(string(l.Item))
		b.WriteString("stock/")
		b.WriteString(string(store))
		b.WriteByte('/')
		b.WriteString(string(l.Dept))
		b.WriteByte('/')
		b.WriteString(string(l.Item))
		b.WriteString("sold/")
		b.WriteString(string(store))
		b.WriteByte('/')
		b.WriteString(string(l.Item))
	}
	return saleNames{all: b.String()}
}

// next returns the names of line l, the next line of the sale.
func (n *saleNames) next(store StoreID, l *Line) (units Asset, stock, sold string) {
	a, st, so := lineNameLens(store, l)
	s := n.all[n.off : n.off+a+st+so]
	n.off += a + st + so
	return Asset(s[:a]), s[a : a+st], s[a+st:]
}

// revenueFx is revenueAmount on int64s.
func revenueFx(l *Line, reverse bool) (fx, bool) {
	t, ok1 := toFx(l.Total)
	v, ok2 := toFx(l.VAT)
	if !ok1 || !ok2 {
		return fx{}, false
	}
	if reverse {
		return t.sub(v)
	}
	return v.sub(t)
}

// revenueAmount is l.Total.Sub(l.VAT).Neg().Mul(sign): VAT − Total for a
// sale, Total − VAT for a return, at the smaller exponent either way.
func revenueAmount(l Line, reverse bool) decimal.Decimal {
	if reverse {
		return subDec(l.Total, l.VAT)
	}
	return subDec(l.VAT, l.Total)
}

// negDec is d.Neg().
func negDec(d decimal.Decimal) decimal.Decimal {
	if x, ok := toFx(d); ok {
		return x.neg().dec()
	}
	return d.Neg()
}

// subDec is a.Sub(b).
func subDec(a, b decimal.Decimal) decimal.Decimal {
	if x, ok := toFx(a); ok {
		if y, ok := toFx(b); ok {
			if z, ok := x.sub(y); ok {
				return z.dec()
			}
		}
	}
	return a.Sub(b)
}

// Return is goods brought back by a customer, with the money refunded. It
// may name the receipt it returns from; the node then checks that no more
// is returned than that receipt sold. Refunds are money (cash, card) and,
// for a receipt paid partly with points, the points given back: a refund
// of method Points, Points points worth Amount (no points when the worth
// stands for less than one), which the node adds (pricing.Restore) and
// which needs Points to name the programme and customer. Points never turn into money: only the part of the return
// the receipt did not pay with points is refunded as money.
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
	// takes back (loyalty.go), and whose points a points refund gives
	// back.
	Points *PointsReversal `msgpack:",omitempty"`

	Total decimal.Decimal
	VAT   []VATSum
}

func (*Return) EventKind() EventKind { return KindReturn }

// Compute checks the return against itself: its refunds, money and
// points given back, must equal its total. A return naming its receipt
// whose total is zero (units the receipt has no money left for) may have
// no refunds; any other needs one.
func (r *Return) Compute() error {
	if err := r.ComputeTotals(); err != nil {
		return err
	}
	if len(r.Refunds) == 0 {
		if r.Original != nil && r.Total.IsZero() {
			return r.Points.check()
		}
		return Invalidf("refunds", "at least one refund is required (only a return naming its receipt, of total 0.00, refunds nothing)")
	}
	money, worth, points := r.refundSums()
	if !money.Add(worth).Equal(r.Total) {
		if points == 0 {
			return Invalidf("refunds", "refunds %s differ from the return's total %s", money, r.Total)
		}
		sc := r.Currency.Scale()
		return Invalidf("refunds", "refunds %s differ from the %s refundable in money: %d points worth %s of the return's total %s go back to the customer as points",
			money.StringFixed(sc), r.Total.Sub(worth).StringFixed(sc), points, worth.StringFixed(sc), r.Total.StringFixed(sc))
	}
	return r.Points.check()
}

// ComputeTotals is Compute but for the sum of the refunds: it computes
// the lines, the total and VAT, and checks each refund (none at all
// passes). The node works out the points a return gives back from its
// total before the refunds can add up.
func (r *Return) ComputeTotals() error {
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
	if len(r.Refunds) == 0 {
		return nil
	}
	rule := noPoints
	if r.Points != nil {
		rule = pointsGivenBack
	}
	if _, _, err := sumPayments(r.Currency, r.Refunds, rule); err != nil {
		return prefixField("refunds", stripField("payments", err))
	}
	return nil
}

// refundSums returns the money refunded, and the points given back and
// their worth; the refunds are checked.
func (r *Return) refundSums() (money, worth decimal.Decimal, points int64) {
	money, worth = r.Currency.Round(decimal.Zero), r.Currency.Round(decimal.Zero)
	for _, p := range r.Refunds {
		if p.Method == Points {
			worth, points = worth.Add(p.Amount), points+p.Points
		} else {
			money = money.Add(p.Amount)
		}
	}
	return money, worth, points
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

// Postings of a return reverse a sale's. Points given back mirror a
// points payment's: the points go from points-redeemed/<store> back to
// the customer's account at the store (the store's rights), and their
// worth out of loyalty/<store> (salePostings).
func (r *Return) Postings(store StoreID) ([]Posting, error) {
	ps := salePostings(store, r.Terminal, r.Currency, r.Lines, r.Refunds, decimal.Zero, true)
	ps = append(ps, r.Points.postings(store)...)
	for _, p := range r.Refunds {
		if p.Method != Points || p.Points == 0 {
			continue
		}
		if r.Points == nil {
			return nil, Invalidf("points", "points given back need the customer and programme")
		}
		n := decimal.NewFromInt(p.Points)
		pts := PointsAsset(r.Points.Programme)
		ps = append(ps, Posting{PointsAccount(r.Points.Programme, r.Points.Customer, store), pts, n},
			Posting{RedeemedPointsAccount(store), pts, n.Neg()})
	}
	return ps, nil
}

package storeline

// Posting derivation of stock documents. Head office posts a Document once:
// PostDocument reads the books (a StockBook: balances, master data, recipes,
// earlier documents) and returns the postings, which are stored with the
// document and never derived again (DESIGN.md, "postings are derived once,
// by their author"). Cancelling negates the stored postings, so every
// quantity and value returns at its original amount whatever happened in
// between; a cost difference that leaves value without units goes to a
// variance account (CancelDocument).
//
// Every account that holds stock holds two assets: the item's units and
// the shop's currency (its value at cost, VAT excluded). The accounts:
//
//	stock/<store>/<dept>/<item>     units and value on the shelf
//	supplier/<supplier>             units bought from (returned to) a supplier
//	payable/<supplier>              money owed to a supplier (credit)
//	bank/<bank>                     money at a bank (a payment to a supplier leaves it)
//	vatin/<store>/<rate>            input VAT on purchases
//	transit/<from>/<to>/<item>      units and value shipped, not yet received
//	discrepancy/<store>/<item>      shipped but not received (or surplus)
//	shrinkage/<store>/<item>        stocktake differences (book − counted)
//	writeoff/<store>/<item>         written off
//	production/<store>/<item>       units consumed by or made in production
//	cogs/<store>/<item>             cost of goods sold
//	variance/<store>                cost differences (a return priced off cost)
//
// Cost is the moving average per (store, item) over its departments
// (those of the store record, and any other holding the item: one dropped
// from the record keeps its stock until it is moved): taking q units out
// of a stock of Q units worth V costs round(V×q/Q); with no stock on the
// books (Q ≤ 0, shops may sell below zero) the last purchase cost prices
// it. An incoming invoice that covers units sold short re-costs them at
// its own cost: the difference between that and what they were costed at
// moves from stock to cogs/<store>/<item> (recostShort); so does a
// transfer's receipt, at the transfer's cost, and a production's output,
// at its components'. A stocktake's surplus or a customer's return while
// short comes back, for the units it covers, at what they went out at
// (valueBack).

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
)

// The document types head office authors beyond those a shop drafts.
const (
	// DocTransferReceipt receives a shipped transfer at the shop it was
	// sent to; what was shipped but not received is a discrepancy.
	DocTransferReceipt DocType = "transfer_receipt"
	// DocProduction makes items from their recipes' components.
	DocProduction DocType = "production"
	// DocRepricing sets new prices in a price list from a moment on.
	DocRepricing DocType = "repricing"
	// DocOutgoingInvoice sells goods from a shop's stock to a buyer on
	// account (wholesale): the buyer owes its total (receivable/<buyer>).
	DocOutgoingInvoice DocType = "outgoing_invoice"
	// DocBuyerReturn takes goods a buyer returns back into a shop's
	// stock and credits the buyer's receivable.
	DocBuyerReturn DocType = "buyer_return"
)

// IsBuyerDoc reports whether documents of type t settle with a buyer
// (they name one, and move receivable/<buyer>).
func IsBuyerDoc(t DocType) bool { return t == DocOutgoingInvoice || t == DocBuyerReturn }

// DocStatus is where a document is in its life, which only moves forward:
// draft → posted → cancelled.
type DocStatus string

// The document statuses.
const (
	DocDraft     DocStatus = "draft"
	DocPosted    DocStatus = "posted"
	DocCancelled DocStatus = "cancelled"
)

// DraftRef names the till draft a head-office document was made from. The
// draft itself is never edited.
type DraftRef struct {
	Store StoreID
	Event EventID
}

// Document is a stock document at head office. Store is the shop whose
// stock it moves (for a transfer, the sending shop; for a transfer
// receipt, the receiving one).
type Document struct {
	ID       string
	Type     DocType
	Store    StoreID
	Number   string     `msgpack:",omitempty"`
	Supplier SupplierID `msgpack:",omitempty"`
	Buyer    BuyerID    `msgpack:",omitempty"` // outgoing_invoice, buyer_return
	// DueOn is the day an outgoing invoice is to be paid by; past it the
	// unpaid part is overdue (central's receivables aging).
	DueOn     Date        `msgpack:",omitempty"`
	ToStore   StoreID     `msgpack:",omitempty"`
	FromDept  DeptID      `msgpack:",omitempty"`
	ToDept    DeptID      `msgpack:",omitempty"`
	Shipment  string      `msgpack:",omitempty"` // transfer_receipt: the transfer received
	Order     string      `msgpack:",omitempty"` // incoming_invoice: the purchase order it fulfils (central's orders.go)
	Invoice   string      `msgpack:",omitempty"` // buyer_return: the outgoing invoice it returns (central's backoffice_batches.go)
	Reason    string      `msgpack:",omitempty"`
	PriceList PriceListID `msgpack:",omitempty"` // repricing
	From      time.Time   `msgpack:",omitempty"` // repricing: effective from (wall clock, as Price.From)
	Draft     *DraftRef   `msgpack:",omitempty"`
	// Position is, for a stocktake, where the shop's journal and pull
	// cursor stood when counting started: the count is compared with the
	// books as of then (see CountBook).
	Position *JournalPosition `msgpack:",omitempty"`
	Note     string           `msgpack:",omitempty"`
	Lines    []DocumentLine
}

// packScale bounds the decimals of packs and pack factors; they are stored
// at this scale so one document has one encoding.
const packScale = 6

// DocumentLine is one line of a Document. Qty is in base units; where
// packs were counted, Packs × PackFactor = Qty. Dept defaults to the
// document's FromDept where stock leaves (a transfer, supplier return,
// write-off) or is counted (a stocktake), and then to the item's
// department.
type DocumentLine struct {
	Item          ItemID
	Dept          DeptID          `msgpack:",omitempty"`
	Qty           decimal.Decimal `msgpack:",omitempty"`
	Packs         decimal.Decimal `msgpack:",omitempty"`
	PackFactor    decimal.Decimal `msgpack:",omitempty"`
	Barcode       string          `msgpack:",omitempty"` // a pack's barcode: ResolvePacks takes pack_factor from it
	PurchasePrice decimal.Decimal `msgpack:",omitempty"` // per base unit, VAT included
	// VATRate defaults to the item's where nil. It is encoded even when
	// nil, never omitted as empty: omitempty drops a pointer to a zero
	// decimal too, and an explicit 0% (a zero-rated supplier line) read
	// back as nil was booked at the item's rate.
	VATRate *decimal.Decimal
	// Price is, for a repricing, the new price per base unit; for an
	// outgoing invoice or buyer return, the sale price per base unit, VAT
	// included.
	Price       decimal.Decimal `msgpack:",omitempty"`
	Batch       string          `msgpack:",omitempty"`
	Expiry      Date            `msgpack:",omitempty"`
	Certificate string          `msgpack:",omitempty"`
	// Serial is a marked item's serial number (DataMatrix); a line with
	// one moves exactly one unit.
	Serial string `msgpack:",omitempty"`
}

// MaxDocumentLines bounds a document, so one Raft entry stays small.
const MaxDocumentLines = 1000

// zeroQtyAllowed: a count of nothing is a count, and a shipment line may
// not have arrived at all.
func zeroQtyAllowed(t DocType) bool { return t == DocStocktake || t == DocTransferReceipt }

// Validate checks the document on its own (no master data) and normalises
// its quantities and amounts. Fields are named as the API spells them.
func (d *Document) Validate() error {
	if err := CheckID("id", d.ID); err != nil {
		return err
	}
	if err := CheckID("store", string(d.Store)); err != nil {
		return err
	}
	switch d.Type {
	case DocIncomingInvoice, DocSupplierReturn:
		if err := CheckID("supplier", string(d.Supplier)); err != nil {
			return err
		}
	case DocTransfer:
		switch {
		case d.ToStore != "":
			if err := CheckID("to_store", string(d.ToStore)); err != nil {
				return err
			}
			if d.ToStore == d.Store {
				return Invalidf("to_store", "a transfer goes to another shop")
			}
		case d.ToDept != "":
			if err := CheckID("to_dept", string(d.ToDept)); err != nil {
				return err
			}
		default:
			return Invalidf("to_store", "a transfer goes to a shop or a department")
		}
	case DocTransferReceipt:
		if err := CheckID("shipment", d.Shipment); err != nil {
			return err
		}
	case DocOutgoingInvoice, DocBuyerReturn:
		if err := CheckID("buyer", string(d.Buyer)); err != nil {
			return err
		}
	case DocStocktake, DocProduction:
	case DocWriteOff:
		if strings.TrimSpace(d.Reason) == "" {
			return Invalidf("reason", "a write-off needs a reason")
		}
	case DocRepricing:
		if err := CheckID("price_list", string(d.PriceList)); err != nil {
			return err
		}
		if d.From.IsZero() || d.From.UnixMilli() < 0 {
			return Invalidf("from", "a repricing needs the time it takes effect")
		}
		d.From = d.From.UTC().Truncate(time.Millisecond)
	default:
		return Invalidf("type", "unknown document type %q", d.Type)
	}
	for _, f := range []struct{ name, id string }{{"from_dept", string(d.FromDept)}, {"to_dept", string(d.ToDept)}} {
		if f.id != "" {
			if err := CheckID(f.name, f.id); err != nil {
				return err
			}
		}
	}
	if d.Order != "" {
		if d.Type != DocIncomingInvoice {
			return Invalidf("order", "only an incoming invoice fulfils a purchase order, not a %s", d.Type)
		}
		if err := CheckID("order", d.Order); err != nil {
			return err
		}
	}
	if d.Invoice != "" {
		if d.Type != DocBuyerReturn {
			return Invalidf("invoice", "only a buyer return names the outgoing invoice it returns, not a %s", d.Type)
		}
		if err := CheckID("invoice", d.Invoice); err != nil {
			return err
		}
	}
	if d.Buyer != "" && !IsBuyerDoc(d.Type) {
		return Invalidf("buyer", "only an outgoing invoice or a buyer return names a buyer, not a %s", d.Type)
	}
	if d.DueOn != "" {
		if d.Type != DocOutgoingInvoice {
			return Invalidf("due_on", "only an outgoing invoice has a due date, not a %s", d.Type)
		}
		if _, err := ParseDate("due_on", string(d.DueOn)); err != nil {
			return err
		}
	}
	if d.Position != nil && d.Type != DocStocktake {
		return Invalidf("position", "only a stocktake counts as of a journal position")
	}
	if d.Draft != nil {
		if err := CheckID("draft.store", string(d.Draft.Store)); err != nil {
			return err
		}
		if d.Draft.Event.IsZero() {
			return Invalidf("draft.event", "the draft's event id is required")
		}
		if d.Draft.Store != d.Store {
			return Invalidf("draft.store", "a draft of %q makes a document of %q, not of %q", d.Draft.Store, d.Draft.Store, d.Store)
		}
	}
	if len(d.Lines) == 0 {
		return Invalidf("lines", "at least one line is required")
	}
	if len(d.Lines) > MaxDocumentLines {
		return &Error{Kind: TooLarge, Field: "lines", Err: fmt.Errorf("%d lines, over %d", len(d.Lines), MaxDocumentLines)}
	}
	for i := range d.Lines {
		if err := d.Lines[i].validate(d.Type); err != nil {
			return prefixField(fmt.Sprintf("lines[%d]", i), err)
		}
	}
	return nil
}

func (l *DocumentLine) validate(t DocType) error {
	if err := CheckID("item", string(l.Item)); err != nil {
		return err
	}
	if l.Dept != "" {
		if err := CheckID("dept", string(l.Dept)); err != nil {
			return err
		}
	}
	if t == DocRepricing {
		if !l.Price.IsPositive() {
			return Invalidf("price", "a new price must be positive, not %s", l.Price)
		}
		if !l.Price.Round(4).Equal(l.Price) {
			return Invalidf("price", "price %s has more than 4 decimal places", l.Price)
		}
		l.Price = l.Price.Round(4) // one spelling: "1.1" and "1.10" are the same document
		return nil
	}
	if IsBuyerDoc(t) {
		if !l.Price.IsPositive() {
			return Invalidf("price", "a line sold to a buyer needs its sale price per base unit (VAT included), not %s", l.Price)
		}
		if !l.Price.Round(4).Equal(l.Price) {
			return Invalidf("price", "price %s has more than 4 decimal places", l.Price)
		}
		l.Price = l.Price.Round(4)
	}
	if l.Barcode != "" {
		g, err := NormalizeGTIN(l.Barcode)
		if err != nil {
			return Invalidf("barcode", "%s", errMessageOf(err))
		}
		l.Barcode = g
		if l.Packs.IsPositive() && l.PackFactor.IsZero() {
			return Invalidf("barcode", "barcode %s is not one of the item's packs", g)
		}
	}
	if !l.Packs.IsZero() || !l.PackFactor.IsZero() {
		if !l.Packs.IsPositive() || !l.PackFactor.IsPositive() {
			return Invalidf("packs", "packs and pack_factor must both be positive")
		}
		for _, f := range []struct {
			name string
			v    *decimal.Decimal
		}{{"packs", &l.Packs}, {"pack_factor", &l.PackFactor}} {
			if !f.v.Round(packScale).Equal(*f.v) {
				return Invalidf(f.name, "%s has more than %d decimal places", *f.v, packScale)
			}
			*f.v = f.v.Round(packScale)
		}
		q := l.Packs.Mul(l.PackFactor)
		if !l.Qty.IsZero() && !l.Qty.Equal(q) {
			return Invalidf("qty", "qty %s differs from packs × pack_factor = %s", l.Qty, q)
		}
		l.Qty = q
	}
	if l.Qty.IsNegative() || (l.Qty.IsZero() && !zeroQtyAllowed(t)) {
		return Invalidf("qty", "quantity %s must be positive", l.Qty)
	}
	if !l.Qty.Round(QtyScale).Equal(l.Qty) {
		return Invalidf("qty", "quantity %s has more than %d decimal places", l.Qty, QtyScale)
	}
	l.Qty = l.Qty.Round(QtyScale)
	if l.PurchasePrice.IsNegative() {
		return Invalidf("purchase_price", "price %s is negative", l.PurchasePrice)
	}
	if !l.PurchasePrice.Round(4).Equal(l.PurchasePrice) {
		return Invalidf("purchase_price", "price %s has more than 4 decimal places", l.PurchasePrice)
	}
	l.PurchasePrice = l.PurchasePrice.Round(4)
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
	if l.Serial != "" {
		if len(l.Serial) > 128 {
			return Invalidf("serial", "a serial is at most 128 characters")
		}
		if !l.Qty.Equal(decimal.NewFromInt(1)) {
			return Invalidf("qty", "a line with a serial moves one unit, not %s", l.Qty)
		}
	}
	return nil
}

// ResolvePacks sets the pack factor of every line counted in packs of a
// barcode (packs and barcode, no pack_factor) from the item's barcodes,
// before Validate. A line whose item or barcode is unknown is left for
// Validate to refuse.
func (d *Document) ResolvePacks(item func(ItemID) (*Item, bool)) {
	for i := range d.Lines {
		l := &d.Lines[i]
		if l.Barcode == "" || !l.PackFactor.IsZero() || !l.Packs.IsPositive() {
			continue
		}
		it, ok := item(l.Item)
		if !ok {
			continue
		}
		g, err := NormalizeGTIN(l.Barcode)
		if err != nil {
			continue
		}
		if b, ok := it.Barcode(g); ok {
			l.PackFactor = b.Factor
		}
	}
}

func errMessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// FromDraft makes a head-office document of a till's draft: the draft is
// copied, never edited, and the document remembers where it came from.
func FromDraft(id string, store StoreID, event EventID, dr *DocumentDraft) *Document {
	d := &Document{ID: id, Type: dr.Type, Store: store, Number: dr.Number, Supplier: dr.Supplier,
		ToStore: dr.ToStore, FromDept: dr.FromDept, ToDept: dr.ToDept, Reason: dr.Reason, Note: dr.Note,
		Position: dr.Position, Draft: &DraftRef{Store: store, Event: event}}
	for _, l := range dr.Lines {
		dl := DocumentLine{Item: l.Item, Qty: l.Qty, Packs: l.Packs, PackFactor: l.PackFactor,
			PurchasePrice: l.PurchasePrice, Batch: l.Batch, Expiry: l.Expiry, Certificate: l.Certificate}
		if l.VATRate != nil { // an explicit 0% is a rate; nil takes the item's
			r := *l.VATRate
			dl.VATRate = &r
		}
		d.Lines = append(d.Lines, dl)
	}
	return d
}

// Recipe is a bill of materials: Yield units of Item are made from the
// components. A component may itself have a recipe, but no recipe may
// use its own item, directly or through sub-recipes.
type Recipe struct {
	Item       ItemID
	Yield      decimal.Decimal
	Components []Component
}

// Component is an ingredient of a recipe, per Yield units made.
type Component struct {
	Item ItemID
	Qty  decimal.Decimal
}

// MaxRecipeDepth bounds how deep sub-recipes nest.
const MaxRecipeDepth = 32

// Validate checks the recipe on its own.
func (r *Recipe) Validate() error {
	if err := CheckID("item", string(r.Item)); err != nil {
		return err
	}
	if !r.Yield.IsPositive() || !r.Yield.Round(QtyScale).Equal(r.Yield) {
		return Invalidf("yield", "yield %s must be positive with at most %d decimal places", r.Yield, QtyScale)
	}
	if len(r.Components) == 0 {
		return Invalidf("components", "a recipe needs at least one component")
	}
	seen := map[ItemID]bool{}
	for i := range r.Components {
		c := &r.Components[i]
		f := fmt.Sprintf("components[%d]", i)
		if err := CheckID(f+".item", string(c.Item)); err != nil {
			return err
		}
		if c.Item == r.Item {
			return Invalidf(f+".item", "recipe of %q uses itself", r.Item)
		}
		if seen[c.Item] {
			return Invalidf(f+".item", "component %q listed twice", c.Item)
		}
		seen[c.Item] = true
		if !c.Qty.IsPositive() || !c.Qty.Round(QtyScale).Equal(c.Qty) {
			return Invalidf(f+".qty", "quantity %s must be positive with at most %d decimal places", c.Qty, QtyScale)
		}
	}
	return nil
}

// CheckRecipe checks r against the books: every component is an item, and
// no chain of sub-recipes leads back to r's item. recipe looks up the
// recipes already stored (r replaces the one of its item).
func CheckRecipe(r *Recipe, item func(ItemID) bool, recipe func(ItemID) (*Recipe, bool)) error {
	if !item(r.Item) {
		return Invalidf("item", "unknown item %q", r.Item)
	}
	lookup := func(id ItemID) (*Recipe, bool) {
		if id == r.Item {
			return r, true
		}
		return recipe(id)
	}
	// clean holds items whose sub-recipes were walked without reaching
	// r.Item, with how many levels nest below them, so a diamond (two
	// paths to one ingredient) is walked once and its depth still counts
	// along the longer path.
	clean := map[ItemID]int{}
	for i, c := range r.Components {
		f := fmt.Sprintf("components[%d].item", i)
		if !item(c.Item) {
			return Invalidf(f, "unknown item %q", c.Item)
		}
		// Depth-first through sub-recipes; a path back to r.Item is a
		// cycle.
		var walk func(id ItemID, depth int) (below int, err error)
		walk = func(id ItemID, depth int) (int, error) {
			if id == r.Item {
				return 0, Invalidf(f, "component %q leads back to %q through its sub-recipes", c.Item, r.Item)
			}
			below, ok := clean[id]
			if !ok {
				if depth > MaxRecipeDepth {
					return 0, Invalidf(f, "sub-recipes nest deeper than %d", MaxRecipeDepth)
				}
				if sub, ok := lookup(id); ok {
					for _, sc := range sub.Components {
						n, err := walk(sc.Item, depth+1)
						if err != nil {
							return 0, err
						}
						below = max(below, n+1)
					}
				}
				clean[id] = below
			}
			if depth+below > MaxRecipeDepth {
				return 0, Invalidf(f, "sub-recipes nest deeper than %d", MaxRecipeDepth)
			}
			return below, nil
		}
		if _, err := walk(c.Item, 1); err != nil {
			return err
		}
	}
	return nil
}

// PostedDocument is a document as the books hold it, with its postings.
type PostedDocument struct {
	Doc      Document
	Status   DocStatus
	Postings []Posting
	// ReceivedBy is, for a posted transfer between shops, the transfer
	// receipt that received it.
	ReceivedBy string `msgpack:",omitempty"`
}

// StockBook is the state a posting is derived from. Central implements it
// over its replica; tests over maps.
type StockBook interface {
	Store(StoreID) (*Store, bool)
	Item(ItemID) (*Item, bool)
	Supplier(SupplierID) bool
	PriceList(PriceListID) bool
	Recipe(ItemID) (*Recipe, bool)
	// Balance is the sum of the postings of asset on account.
	Balance(account string, asset Asset) decimal.Decimal
	// LastCost is the item's last purchase cost per base unit in the
	// store, VAT excluded; zero if it was never bought there.
	LastCost(StoreID, ItemID) decimal.Decimal
	Document(id string) (*PostedDocument, bool)
}

// StockDeptsBook is a StockBook that can list the departments of a store
// holding balances of an item, the store record's or not: StockOf then
// counts the stock of a department dropped from the record, which stays
// there until it is moved.
type StockDeptsBook interface {
	StockBook
	// StockDepts lists the departments of store with a balance (units or
	// money) on StockAccount(store, dept, item), in any order; it may list
	// the record's own too. ok false: the book cannot say, and StockOf
	// reads the record's departments alone.
	StockDepts(store StoreID, item ItemID) (depts []DeptID, ok bool)
}

// ItemStockBook is a StockBook that can answer an item's stock in a store,
// over all of the store's departments, in one call. StockOf asks it first:
// the per-department reads build and look up two keys per department, most
// of them absent (an item is stocked in one or two departments), through
// every layer of book, for each line a cost pass or a document costs.
type ItemStockBook interface {
	StockBook
	// ItemStock returns what StockOf's per-department reads give, exponent
	// included (amounts are stored in binary form, which keeps it): qty and
	// value are the sums, by decimal.Add from the zero Decimal, of Balance
	// of the item's units and of the store's currency on
	// StockAccount(st.ID, d.ID, item) over st.Departments (and, if the book
	// is a StockDeptsBook that can say, the departments it lists beyond
	// them). decimal.Add keeps
	// the exact sum at the smaller exponent, so any order gives the same,
	// and a balance the book holds nothing for (the zero Decimal, exponent
	// 0) changes nothing: the book may sum only those it holds. ok false:
	// the book cannot say; StockOf then reads each department.
	ItemStock(st *Store, item ItemID) (qty, value decimal.Decimal, ok bool)
}

// CountBook is a StockBook that knows what moved after a stocktake's
// journal position: the shop's own events after (Epoch, Seq), and the
// events of other origins the shop pulled after PullCursor. A stocktake
// with a position compares its count with the balance less those
// movements, so sales and deliveries during the count are not shrinkage.
type CountBook interface {
	MovedSince(store StoreID, pos JournalPosition, account string, asset Asset) decimal.Decimal
}

// Accounts of stock documents (see the top of this file).
func PayableAccount(s SupplierID) string  { return "payable/" + string(s) }
func SupplierAccount(s SupplierID) string { return "supplier/" + string(s) }

// ReceivableAccount holds what a buyer owes the chain (debit): an
// outgoing invoice debits it, a buyer return and a buyer's payment
// credit it (central/receivables.go).
func ReceivableAccount(b BuyerID) string { return "receivable/" + string(b) }

// BuyerBook is a StockBook that knows the buyers: PostDocument refuses a
// document of a buyer it does not know, or any buyer's where the book
// cannot say.
type BuyerBook interface {
	Buyer(BuyerID) bool
}

// BankAccount holds the chain's money at a bank; a payment to a supplier
// moves it to the supplier's payable (central/settlements.go).
func BankAccount(b BankID) string { return "bank/" + string(b) }

func InputVATAccount(s StoreID, rate decimal.Decimal) string {
	return "vatin/" + string(s) + "/" + rate.String()
}
func TransitAccount(from, to StoreID, i ItemID) string {
	return "transit/" + string(from) + "/" + string(to) + "/" + string(i)
}
func DiscrepancyAccount(s StoreID, i ItemID) string {
	return "discrepancy/" + string(s) + "/" + string(i)
}
func ShrinkageAccount(s StoreID, i ItemID) string { return "shrinkage/" + string(s) + "/" + string(i) }
func WriteOffAccount(s StoreID, i ItemID) string  { return "writeoff/" + string(s) + "/" + string(i) }
func ProductionAccount(s StoreID, i ItemID) string {
	return "production/" + string(s) + "/" + string(i)
}
func COGSAccount(s StoreID, i ItemID) string { return "cogs/" + string(s) + "/" + string(i) }
func VarianceAccount(s StoreID) string       { return "variance/" + string(s) }

// PriceChange is a new price a repricing sets.
type PriceChange = Price

// BatchIn is a batch of goods received by an invoice.
type BatchIn struct {
	Store       StoreID
	Item        ItemID
	Batch       string
	Expiry      Date
	Certificate string
	Qty         decimal.Decimal
}

// CostUpdate is a new last purchase cost per base unit: the value net of
// VAT of an invoice's lines of the item over their units (one per item).
type CostUpdate struct {
	Store    StoreID
	Item     ItemID
	UnitCost decimal.Decimal
}

// Derived is what posting a document produces.
type Derived struct {
	Postings []Posting
	Prices   []PriceChange // repricing
	Batches  []BatchIn     // incoming invoice
	Costs    []CostUpdate  // incoming invoice
}

// overlay is a StockBook with the postings derived so far added, so a
// document's later lines see its earlier ones (two lines of one item, a
// component consumed twice).
type overlay struct {
	StockBook
	delta map[string]decimal.Decimal
	out   []Posting
	// stock lists, by item, the keys of delta on stock accounts (units or
	// money), for ItemStock.
	stock map[ItemID][]overlayStock
}

// overlayStock is a key of overlay.delta on a stock account.
type overlayStock struct {
	store StoreID
	dept  DeptID
	asset Asset
	key   string
}

func (o *overlay) Balance(acct string, a Asset) decimal.Decimal {
	return o.StockBook.Balance(acct, a).Add(o.delta[acct+"\x00"+string(a)])
}

// ItemStock is the book's ItemStock with the overlay's postings on the
// item's stock accounts added (Balance adds them per department; the sum
// is the same, exponent included: see ItemStockBook).
func (o *overlay) ItemStock(st *Store, item ItemID) (qty, value decimal.Decimal, ok bool) {
	b, ok := o.StockBook.(ItemStockBook)
	if !ok {
		return qty, value, false
	}
	if qty, value, ok = b.ItemStock(st, item); !ok {
		return qty, value, false
	}
	listed := -1 // whether the book lists departments beyond the record's: unasked
	for _, s := range o.stock[item] {
		if s.store != st.ID {
			continue
		}
		if !st.HasDept(s.dept) {
			if listed < 0 {
				listed = 0
				if lb, ok := o.StockBook.(StockDeptsBook); ok {
					if _, ok := lb.StockDepts(st.ID, item); ok {
						listed = 1
					}
				}
			}
			if listed == 0 {
				continue
			}
		}
		switch s.asset {
		case ItemAsset(item):
			qty = qty.Add(o.delta[s.key])
		case MoneyAsset(st.Currency):
			value = value.Add(o.delta[s.key])
		}
	}
	return qty, value, true
}

// StockDepts is the book's StockDepts with the departments the overlay's
// postings touched added.
func (o *overlay) StockDepts(store StoreID, item ItemID) ([]DeptID, bool) {
	lb, ok := o.StockBook.(StockDeptsBook)
	if !ok {
		return nil, false
	}
	ds, ok := lb.StockDepts(store, item)
	if !ok {
		return nil, false
	}
	cloned := false // the book's list is not ours to append to
	for _, s := range o.stock[item] {
		if s.store == store && !slices.Contains(ds, s.dept) {
			if !cloned {
				ds, cloned = slices.Clone(ds), true
			}
			ds = append(ds, s.dept)
		}
	}
	return ds, true
}

func (o *overlay) post(acct string, a Asset, amt decimal.Decimal) {
	if amt.IsZero() {
		return
	}
	o.out = append(o.out, Posting{Account: acct, Asset: a, Amount: amt})
	o.shift(acct, a, amt)
}

// shift changes the balance the overlay reads of (acct, a) by amt without
// posting it: for what the caller's own postings have moved already.
func (o *overlay) shift(acct string, a Asset, amt decimal.Decimal) {
	k := acct + "\x00" + string(a)
	d, had := o.delta[k]
	o.delta[k] = d.Add(amt)
	if had {
		return
	}
	// stock/<store>/<dept>/<item>: IDs hold no "/", so the parts are
	// unambiguous; an account of another shape is not a stock account
	// StockOf reads.
	if rest, ok := strings.CutPrefix(acct, "stock/"); ok {
		if store, rest, ok := strings.Cut(rest, "/"); ok {
			if dept, item, ok := strings.Cut(rest, "/"); ok {
				if o.stock == nil {
					o.stock = map[ItemID][]overlayStock{}
				}
				o.stock[ItemID(item)] = append(o.stock[ItemID(item)], overlayStock{StoreID(store), DeptID(dept), a, k})
			}
		}
	}
}

// move posts qty units and value of item from one account to another.
func (o *overlay) move(from, to string, item ItemID, cur Currency, qty, value decimal.Decimal) {
	o.post(from, ItemAsset(item), qty.Neg())
	o.post(to, ItemAsset(item), qty)
	o.post(from, MoneyAsset(cur), value.Neg())
	o.post(to, MoneyAsset(cur), value)
}

// StockOf returns the units and value of item in store over all of its
// departments: in one call if b is an ItemStockBook that can say.
func StockOf(b StockBook, st *Store, item ItemID) (qty, value decimal.Decimal) {
	if ib, ok := b.(ItemStockBook); ok && !slowStock.Load() {
		if qty, value, ok := ib.ItemStock(st, item); ok {
			return qty, value
		}
	}
	return stockByDept(b, st, item)
}

// slowStock turns StockOf's one-call path off, so a test can compare both
// paths on the same books. Only tests set it.
var slowStock atomic.Bool

// stockByDept is StockOf by a read of each department's balances (the
// record's, then those stockDepts adds: decimal.Add gives the same sum in
// any order). It builds no list of them: a cost pass calls it for every
// line it costs.
func stockByDept(b StockBook, st *Store, item ItemID) (qty, value decimal.Decimal) {
	add := func(d DeptID) {
		acct := StockAccount(st.ID, d, item)
		qty = qty.Add(b.Balance(acct, ItemAsset(item)))
		value = value.Add(b.Balance(acct, MoneyAsset(st.Currency)))
	}
	for _, d := range st.Departments {
		add(d.ID)
	}
	for _, d := range droppedDepts(b, st, item) {
		add(d)
	}
	return qty, value
}

// droppedDepts are the departments a StockDeptsBook lists holding item
// beyond the store record's, in ID order; nil (no allocation) if none.
func droppedDepts(b StockBook, st *Store, item ItemID) []DeptID {
	lb, ok := b.(StockDeptsBook)
	if !ok {
		return nil
	}
	more, ok := lb.StockDepts(st.ID, item)
	if !ok {
		return nil
	}
	var out []DeptID
	for _, d := range more {
		if !st.HasDept(d) && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// stockDepts are the departments whose stock of item StockOf counts: the
// store record's, in its order, then those a StockDeptsBook lists beyond
// them, in ID order (a department dropped from the record keeps its stock
// until it is moved).
func stockDepts(b StockBook, st *Store, item ItemID) []DeptID {
	out := make([]DeptID, 0, len(st.Departments))
	for _, d := range st.Departments {
		out = append(out, d.ID)
	}
	return append(out, droppedDepts(b, st, item)...)
}

// CostOf is the moving-average cost of q units of item in store.
func CostOf(b StockBook, st *Store, item ItemID, q decimal.Decimal) decimal.Decimal {
	qty, value := StockOf(b, st, item)
	if qty.IsPositive() {
		return costAt(value, q, qty, st.Currency)
	}
	return st.Currency.Round(q.Mul(b.LastCost(st.ID, item)))
}

// costAt is cur.Round(value.Mul(q).DivRound(qty, cur.Scale()+8)), on
// int64s while the figures fit one (fx mirrors each step, exponent
// included): a cost pass computes it for every line it costs, and each
// decimal step allocates.
func costAt(value, q, qty decimal.Decimal, cur Currency) decimal.Decimal {
	scale := cur.Scale()
	if v, ok := toFx(value); ok {
		if n, ok := toFx(q); ok {
			if d, ok := toFx(qty); ok {
				if m, ok := v.mul(n); ok {
					if c, ok := m.divRound(d, scale+8); ok {
						if r, ok := c.round(scale); ok {
							return r.dec()
						}
					}
				}
			}
		}
	}
	return cur.Round(value.Mul(q).DivRound(qty, scale+8))
}

// PostDocument derives the postings (and the other effects) of posting d
// against the books. It changes nothing; d must have passed Validate.
// Cancelling is CancelDocument.
func PostDocument(b StockBook, d *Document) (*Derived, error) {
	st, ok := b.Store(d.Store)
	if !ok {
		return nil, Invalidf("store", "unknown store %q", d.Store)
	}
	o := &overlay{StockBook: b, delta: map[string]decimal.Decimal{}}
	out := &Derived{}
	cur := st.Currency
	dept := func(i int, l *DocumentLine, it *Item, def DeptID) (DeptID, error) {
		dp := l.Dept
		if dp == "" {
			dp = def
		}
		if dp == "" {
			dp = it.Dept
		}
		if !st.HasDept(dp) {
			return "", Invalidf(fmt.Sprintf("lines[%d].dept", i), "store %q has no department %q", st.ID, dp)
		}
		return dp, nil
	}
	items := make([]*Item, len(d.Lines))
	for i, l := range d.Lines {
		it, ok := b.Item(l.Item)
		if !ok {
			return nil, Invalidf(fmt.Sprintf("lines[%d].item", i), "unknown item %q", l.Item)
		}
		if d.Type != DocRepricing && !it.Unit.Fractional() && !l.Qty.IsInteger() {
			return nil, Invalidf(fmt.Sprintf("lines[%d].qty", i), "quantity %s of a %s item must be whole", l.Qty, it.Unit)
		}
		items[i] = it
	}
	switch d.Type {
	case DocIncomingInvoice, DocSupplierReturn:
		if !b.Supplier(d.Supplier) {
			return nil, Invalidf("supplier", "unknown supplier %q", d.Supplier)
		}
		// bought is, by item, the value net of VAT and the units of an
		// invoice's lines.
		bought := map[ItemID][2]decimal.Decimal{}
		var boughtOrder []ItemID
		// A return's line leaves its own department, else the one the
		// document names, else the item's; an invoice's lands in the
		// line's or the item's.
		from := DeptID("")
		if d.Type == DocSupplierReturn {
			from = d.FromDept
		}
		// short is, by item, what the shop was short of before the
		// invoice, for the invoice to re-cost the units it covers.
		short := map[ItemID]*shortfall{}
		for i := range d.Lines {
			l, it := &d.Lines[i], items[i]
			dp, err := dept(i, l, it, from)
			if err != nil {
				return nil, err
			}
			rate := it.VATRate
			if l.VATRate != nil {
				rate = *l.VATRate
			}
			stock := StockAccount(st.ID, dp, l.Item)
			if d.Type == DocIncomingInvoice {
				if _, seen := bought[l.Item]; !seen {
					short[l.Item] = shortOf(o, st, l.Item, dp)
				}
				total := cur.Round(l.Qty.Mul(l.PurchasePrice))
				vat := VATIncluded(cur, total, rate)
				net := total.Sub(vat)
				o.move(SupplierAccount(d.Supplier), stock, l.Item, cur, l.Qty, decimal.Zero)
				o.post(stock, MoneyAsset(cur), net)
				o.post(InputVATAccount(st.ID, rate), MoneyAsset(cur), vat)
				o.post(PayableAccount(d.Supplier), MoneyAsset(cur), total.Neg())
				if l.Batch != "" || l.Expiry != "" || l.Certificate != "" {
					out.Batches = append(out.Batches, BatchIn{Store: st.ID, Item: l.Item, Batch: l.Batch, Expiry: l.Expiry, Certificate: l.Certificate, Qty: l.Qty})
				}
				// The invoice's cost of an item is its lines' value over
				// their units (a free bonus line lowers it, not zeroes it).
				vq, seen := bought[l.Item]
				if !seen {
					boughtOrder = append(boughtOrder, l.Item)
				}
				bought[l.Item] = [2]decimal.Decimal{vq[0].Add(net), vq[1].Add(l.Qty)}
				continue
			}
			cost := CostOf(o, st, l.Item, l.Qty)
			var total, vat, net decimal.Decimal
			if l.PurchasePrice.IsZero() {
				// Returned at cost: the supplier credits what it cost us.
				net = cost
				vat = cur.Round(cost.Mul(rate).Div(decimal.NewFromInt(100)))
				total = net.Add(vat)
			} else {
				total = cur.Round(l.Qty.Mul(l.PurchasePrice))
				vat = VATIncluded(cur, total, rate)
				net = total.Sub(vat)
			}
			o.move(stock, SupplierAccount(d.Supplier), l.Item, cur, l.Qty, decimal.Zero)
			o.post(stock, MoneyAsset(cur), cost.Neg())
			o.post(InputVATAccount(st.ID, rate), MoneyAsset(cur), vat.Neg())
			o.post(PayableAccount(d.Supplier), MoneyAsset(cur), total)
			o.post(VarianceAccount(st.ID), MoneyAsset(cur), cost.Sub(net))
		}
		for _, it := range boughtOrder {
			vq := bought[it]
			recostShort(o, st, it, short[it], vq[0], vq[1])
			out.Costs = append(out.Costs, CostUpdate{Store: st.ID, Item: it, UnitCost: vq[0].DivRound(vq[1], cur.Scale()+4)})
		}
	case DocOutgoingInvoice, DocBuyerReturn:
		if bb, ok := b.(BuyerBook); !ok || !bb.Buyer(d.Buyer) {
			return nil, Invalidf("buyer", "unknown buyer %q", d.Buyer)
		}
		// Sold on account as a till sells for cash: units go to sold,
		// their moving-average cost to cogs, the price (VAT included)
		// to the buyer's receivable, split into revenue and output VAT.
		// A return runs the other way, its units back at what they went
		// out at (valueBack). Neither refuses more than is on hand: no
		// document does (shops may sell below zero).
		for i := range d.Lines {
			l, it := &d.Lines[i], items[i]
			dp, err := dept(i, l, it, d.FromDept)
			if err != nil {
				return nil, err
			}
			rate := it.VATRate
			if l.VATRate != nil {
				rate = *l.VATRate
			}
			total := cur.Round(l.Qty.Mul(l.Price))
			vat := VATIncluded(cur, total, rate)
			net := total.Sub(vat)
			stock, money := StockAccount(st.ID, dp, l.Item), MoneyAsset(cur)
			qty, value := l.Qty, decimal.Zero
			if d.Type == DocOutgoingInvoice {
				value = CostOf(o, st, l.Item, l.Qty).Neg()
				qty, total, vat, net = qty.Neg(), total.Neg(), vat.Neg(), net.Neg()
			} else {
				value = valueBack(o, st, l.Item, l.Qty)
			}
			// qty, value: into stock (negative: out); total: off the
			// receivable (negative: the buyer owes more).
			o.move(SoldAccount(st.ID, l.Item), stock, l.Item, cur, qty, decimal.Zero)
			o.post(stock, money, value)
			o.post(COGSAccount(st.ID, l.Item), money, value.Neg())
			o.post(ReceivableAccount(d.Buyer), money, total.Neg())
			o.post(RevenueAccount(st.ID), money, net)
			o.post(VATAccount(st.ID, rate), money, vat)
		}
	case DocTransfer:
		if d.ToStore != "" {
			to, ok := b.Store(d.ToStore)
			if !ok {
				return nil, Invalidf("to_store", "unknown store %q", d.ToStore)
			}
			if to.Currency != cur {
				return nil, Invalidf("to_store", "store %q keeps its books in %s, %q in %s", to.ID, to.Currency, st.ID, cur)
			}
			for i := range d.Lines {
				l := &d.Lines[i]
				dp, err := dept(i, l, items[i], d.FromDept)
				if err != nil {
					return nil, err
				}
				cost := CostOf(o, st, l.Item, l.Qty)
				o.move(StockAccount(st.ID, dp, l.Item), TransitAccount(st.ID, to.ID, l.Item), l.Item, cur, l.Qty, cost)
			}
			break
		}
		if !st.HasDept(d.ToDept) {
			return nil, Invalidf("to_dept", "store %q has no department %q", st.ID, d.ToDept)
		}
		for i := range d.Lines {
			l := &d.Lines[i]
			dp, err := dept(i, l, items[i], d.FromDept)
			if err != nil {
				return nil, err
			}
			if dp == d.ToDept {
				return nil, Invalidf(fmt.Sprintf("lines[%d].dept", i), "line moves from department %q to itself", dp)
			}
			cost := CostOf(o, st, l.Item, l.Qty)
			o.move(StockAccount(st.ID, dp, l.Item), StockAccount(st.ID, d.ToDept, l.Item), l.Item, cur, l.Qty, cost)
		}
	case DocTransferReceipt:
		if err := receiveTransfer(o, st, d, items, dept); err != nil {
			return nil, err
		}
	case DocStocktake:
		// A line counts its own department, else the one the document
		// names, else the item's.
		seen := map[string]bool{}
		for i := range d.Lines {
			l := &d.Lines[i]
			dp, err := dept(i, l, items[i], d.FromDept)
			if err != nil {
				return nil, err
			}
			stock := StockAccount(st.ID, dp, l.Item)
			if seen[stock] {
				return nil, Invalidf(fmt.Sprintf("lines[%d].item", i), "item %q counted twice in department %q", l.Item, dp)
			}
			seen[stock] = true
			book := o.Balance(stock, ItemAsset(l.Item))
			if d.Position != nil {
				cb, ok := b.(CountBook)
				if !ok {
					return nil, Errorf(Internal, "storeline.PostDocument", "stocktake %s has a journal position and the books cannot count from it", d.ID)
				}
				book = book.Sub(cb.MovedSince(st.ID, *d.Position, stock, ItemAsset(l.Item)))
			}
			diff := l.Qty.Sub(book) // counted − book: negative is a loss
			value := valueBack(o, st, l.Item, diff)
			o.move(ShrinkageAccount(st.ID, l.Item), stock, l.Item, cur, diff, value)
		}
	case DocWriteOff:
		// A line leaves its own department, else the one the document
		// names, else the item's.
		for i := range d.Lines {
			l := &d.Lines[i]
			dp, err := dept(i, l, items[i], d.FromDept)
			if err != nil {
				return nil, err
			}
			cost := CostOf(o, st, l.Item, l.Qty)
			o.move(StockAccount(st.ID, dp, l.Item), WriteOffAccount(st.ID, l.Item), l.Item, cur, l.Qty, cost)
		}
	case DocProduction:
		// Every line is checked first, in its order; then the lines are
		// made in the order of their products' recipe heights, so a
		// semi-finished good the document makes is on the shelf, at what
		// it cost to make, before a line consumes it, whatever order the
		// lines are listed in.
		type use struct {
			item ItemID
			dept DeptID
			qty  decimal.Decimal
		}
		type made struct {
			dept DeptID
			uses []use
		}
		plan := make([]made, len(d.Lines))
		known := func(id ItemID) bool { _, ok := b.Item(id); return ok }
		for i := range d.Lines {
			l := &d.Lines[i]
			f := fmt.Sprintf("lines[%d]", i)
			dp, err := dept(i, l, items[i], "")
			if err != nil {
				return nil, err
			}
			r, ok := b.Recipe(l.Item)
			if !ok {
				return nil, Invalidf(f+".item", "item %q has no recipe", l.Item)
			}
			if err := CheckRecipe(r, known, b.Recipe); err != nil {
				return nil, prefixField(f+".recipe", err)
			}
			plan[i].dept = dp
			for _, c := range r.Components {
				ci, _ := b.Item(c.Item)
				cq := c.Qty.Mul(l.Qty).DivRound(r.Yield, QtyScale)
				if !cq.IsPositive() {
					return nil, Invalidf(f+".qty", "%s of %q uses no measurable amount of %q", l.Qty, l.Item, c.Item)
				}
				if !ci.Unit.Fractional() && !cq.IsInteger() {
					return nil, Invalidf(f+".qty", "%s of %q needs %s of %q, which is counted in whole %s", l.Qty, l.Item, cq, c.Item, ci.Unit)
				}
				if !st.HasDept(ci.Dept) {
					return nil, Invalidf(f+".item", "component %q is kept in department %q, which store %q lacks", c.Item, ci.Dept, st.ID)
				}
				plan[i].uses = append(plan[i].uses, use{c.Item, ci.Dept, cq})
			}
		}
		// height is 0 for an item without a recipe and one more than its
		// highest component's otherwise: a component is always lower than
		// what it goes into. CheckRecipe found no cycle below the lines'
		// items; the 0 set first keeps a cycle from recursing anyway.
		height := map[ItemID]int{}
		var heightOf func(ItemID) int
		heightOf = func(id ItemID) int {
			if h, ok := height[id]; ok {
				return h
			}
			height[id] = 0
			h := 0
			if r, ok := b.Recipe(id); ok {
				for _, c := range r.Components {
					h = max(h, heightOf(c.Item)+1)
				}
			}
			height[id] = h
			return h
		}
		order := make([]int, len(d.Lines))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(x, y int) bool { return heightOf(d.Lines[order[x]].Item) < heightOf(d.Lines[order[y]].Item) })
		for _, i := range order {
			l := &d.Lines[i]
			var total decimal.Decimal
			for _, u := range plan[i].uses {
				cost := CostOf(o, st, u.item, u.qty)
				o.move(StockAccount(st.ID, u.dept, u.item), ProductionAccount(st.ID, u.item), u.item, cur, u.qty, cost)
				total = total.Add(cost)
			}
			dp := plan[i].dept
			// Units made while the shop is short of the product cover the
			// shortfall at what they cost to make, as an invoice's would.
			short := shortOf(o, st, l.Item, dp)
			o.move(ProductionAccount(st.ID, l.Item), StockAccount(st.ID, dp, l.Item), l.Item, cur, l.Qty, decimal.Zero)
			// The product takes its components' value, so production's
			// money nets to zero over the store.
			o.post(ProductionAccount(st.ID, l.Item), MoneyAsset(cur), total.Neg())
			o.post(StockAccount(st.ID, dp, l.Item), MoneyAsset(cur), total)
			recostShort(o, st, l.Item, short, total, l.Qty)
		}
	case DocRepricing:
		if !b.PriceList(d.PriceList) {
			return nil, Invalidf("price_list", "unknown price list %q", d.PriceList)
		}
		seen := map[ItemID]bool{}
		for i, l := range d.Lines {
			if seen[l.Item] {
				return nil, Invalidf(fmt.Sprintf("lines[%d].item", i), "item %q repriced twice", l.Item)
			}
			seen[l.Item] = true
			out.Prices = append(out.Prices, PriceChange{List: d.PriceList, Item: l.Item, From: d.From, Price: l.Price})
		}
	default:
		return nil, Invalidf("type", "unknown document type %q", d.Type)
	}
	out.Postings = MergePostings(o.out)
	if err := CheckPostings(out.Postings); err != nil {
		panic(fmt.Sprintf("storeline: postings of document %s do not balance: %v: %v", d.ID, err, out.Postings))
	}
	return out, nil
}

// valueBack is the value of diff units of item coming back into st's
// stock (a stocktake's difference, counted − book; a customer's return):
// a loss at the moving average (CostOf), negated. A surplus or a return
// while the shop is short of the item (its stock Q < 0, worth V)
// finds units it was costed for when they went out: the c = min(diff, −Q)
// of them that cover the shortfall come back at its value, round(V×c/Q),
// and only the rest at the moving average (the last purchase cost). So a
// count that brings the shop's stock to zero leaves no value on it, as an
// invoice covering the shortfall does (recostShort); pricing the units at
// the last cost left value on no units whenever that cost differed from
// what they went out at.
func valueBack(o *overlay, st *Store, item ItemID, diff decimal.Decimal) decimal.Decimal {
	if diff.IsNegative() {
		return CostOf(o, st, item, diff.Neg()).Neg()
	}
	qty, value := StockOf(o, st, item)
	if !qty.IsNegative() || !diff.IsPositive() {
		return CostOf(o, st, item, diff)
	}
	cur := st.Currency
	c := decimal.Min(diff, qty.Neg())
	covered := value.Neg()
	if !c.Equal(qty.Neg()) {
		covered = cur.Round(value.Mul(c).DivRound(qty, cur.Scale()+8))
	}
	if c.Equal(diff) {
		return covered
	}
	return covered.Add(cur.Round(diff.Sub(c).Mul(o.LastCost(st.ID, item))))
}

// shortfall is a shop's stock of an item below zero before an invoice,
// and the departments short of it (with their units, below zero).
type shortfall struct {
	qty, value decimal.Decimal
	depts      []DeptID
	units      []decimal.Decimal
}

// shortOf is the shortfall of item at st, nil if the shop is not short of
// it. The value is re-costed on the departments short of units (a shop
// that sold from one department and receives into another owes the units
// in the first), else on dp, where the invoice lands.
func shortOf(b StockBook, st *Store, item ItemID, dp DeptID) *shortfall {
	qty, value := StockOf(b, st, item)
	if !qty.IsNegative() {
		return nil
	}
	s := &shortfall{qty: qty, value: value}
	for _, d := range stockDepts(b, st, item) {
		if u := b.Balance(StockAccount(st.ID, d, item), ItemAsset(item)); u.IsNegative() {
			s.depts = append(s.depts, d)
			s.units = append(s.units, u)
		}
	}
	if len(s.depts) == 0 {
		s.depts, s.units = []DeptID{dp}, []decimal.Decimal{decimal.NewFromInt(-1)}
	}
	return s
}

// recostShort re-costs the units of item an invoice (a transfer's receipt,
// a production) covers of a shortfall s (nil: none), the document having
// brought units of it worth net: c =
// min(units, −Q) of them cost round(net×c/units) by the invoice, and were
// costed (sold, moved or written off below zero) at their share of the
// shortfall's value, round(V×c/Q). The difference moves from stock, on the
// departments short of the item in proportion to their units, to
// cogs/<store>/<item>. So a shortfall the invoice covers leaves no value
// on no units, and one it covers in part keeps its cost per unit.
// Cancelling the invoice negates this with the rest of its postings.
func recostShort(o *overlay, st *Store, item ItemID, s *shortfall, net, units decimal.Decimal) {
	if s == nil || !units.IsPositive() {
		return
	}
	cur := st.Currency
	owed := s.qty.Neg()
	c := decimal.Min(units, owed)
	at := net
	if !c.Equal(units) {
		at = cur.Round(net.Mul(c).DivRound(units, cur.Scale()+8))
	}
	was := s.value.Neg()
	if !c.Equal(owed) {
		was = cur.Round(s.value.Mul(c).DivRound(s.qty, cur.Scale()+8))
	}
	diff := cur.Round(at.Sub(was))
	if diff.IsZero() {
		return
	}
	var all decimal.Decimal
	for _, u := range s.units {
		all = all.Add(u)
	}
	left := diff
	for i, d := range s.depts {
		part := left
		if i < len(s.depts)-1 {
			part = cur.Round(diff.Mul(s.units[i]).DivRound(all, cur.Scale()+8))
		}
		o.post(StockAccount(st.ID, d, item), MoneyAsset(cur), part.Neg())
		left = left.Sub(part)
	}
	o.post(COGSAccount(st.ID, item), MoneyAsset(cur), diff)
}

func receiveTransfer(o *overlay, st *Store, d *Document, items []*Item, dept func(int, *DocumentLine, *Item, DeptID) (DeptID, error)) error {
	ship, ok := o.Document(d.Shipment)
	switch {
	case !ok:
		return Invalidf("shipment", "unknown document %q", d.Shipment)
	case ship.Doc.Type != DocTransfer || ship.Doc.ToStore == "":
		return Invalidf("shipment", "document %q is not a transfer between shops", d.Shipment)
	case ship.Doc.ToStore != st.ID:
		return Invalidf("shipment", "transfer %q goes to %q, not %q", d.Shipment, ship.Doc.ToStore, st.ID)
	case ship.Status != DocPosted:
		return Errorf(Conflict, "", "transfer %q is %s, not posted", d.Shipment, ship.Status)
	case ship.ReceivedBy != "":
		return Errorf(Conflict, "", "transfer %q was received by %q", d.Shipment, ship.ReceivedBy)
	}
	from := ship.Doc.Store
	cur := st.Currency
	type sent struct{ qty, value decimal.Decimal }
	shipped := map[ItemID]*sent{}
	var order []ItemID
	prefix := "transit/" + string(from) + "/" + string(st.ID) + "/"
	for _, p := range ship.Postings {
		if !strings.HasPrefix(p.Account, prefix) {
			continue
		}
		item := ItemID(p.Account[len(prefix):])
		s := shipped[item]
		if s == nil {
			s = &sent{}
			shipped[item] = s
			order = append(order, item)
		}
		if p.Asset == ItemAsset(item) {
			s.qty = s.qty.Add(p.Amount)
		} else if p.Asset == MoneyAsset(cur) {
			s.value = s.value.Add(p.Amount)
		}
	}
	// A line lands in its own department, else the receipt's, else the
	// one the transfer named (checked against this shop when it was
	// created), else the item's.
	into := d.ToDept
	if into == "" {
		into = ship.Doc.ToDept
	}
	received := map[ItemID]bool{}
	for i := range d.Lines {
		l := &d.Lines[i]
		s, ok := shipped[l.Item]
		if !ok {
			return Invalidf(fmt.Sprintf("lines[%d].item", i), "item %q was not shipped by %q", l.Item, d.Shipment)
		}
		if received[l.Item] {
			return Invalidf(fmt.Sprintf("lines[%d].item", i), "item %q received twice", l.Item)
		}
		received[l.Item] = true
		dp, err := dept(i, l, items[i], into)
		if err != nil {
			return err
		}
		value := decimal.Zero
		if s.qty.IsPositive() {
			value = cur.Round(s.value.Mul(l.Qty).DivRound(s.qty, cur.Scale()+8))
		}
		transit := TransitAccount(from, st.ID, l.Item)
		// Units received while the shop is short of the item cover the
		// shortfall at the transfer's cost, as an invoice's would.
		short := shortOf(o, st, l.Item, dp)
		o.move(transit, StockAccount(st.ID, dp, l.Item), l.Item, cur, l.Qty, value)
		recostShort(o, st, l.Item, short, value, l.Qty)
		o.move(transit, DiscrepancyAccount(st.ID, l.Item), l.Item, cur, s.qty.Sub(l.Qty), s.value.Sub(value))
	}
	// Items shipped but missing from the receipt did not arrive at all.
	for _, item := range order {
		if s := shipped[item]; !received[item] {
			o.move(TransitAccount(from, st.ID, item), DiscrepancyAccount(st.ID, item), item, cur, s.qty, s.value)
		}
	}
	return nil
}

// CancelDocument derives the postings that cancel a posted document: its
// own, negated (CancelPostings), so every quantity and value it moved
// returns at its original amount; and where that leaves a shop with no
// units of an item but value still on its books (the units the document
// brought in went out at another average cost), that cost difference
// moves from the item's stock to variance/<store>.
func CancelDocument(b StockBook, pd *PostedDocument) []Posting {
	o := &overlay{StockBook: b, delta: map[string]decimal.Decimal{}}
	type key struct {
		store StoreID
		item  ItemID
	}
	var touched []key
	seen := map[key]bool{}
	for _, p := range CancelPostings(pd.Postings) {
		o.post(p.Account, p.Asset, p.Amount)
		parts := strings.Split(p.Account, "/")
		if len(parts) != 4 || parts[0] != "stock" {
			continue
		}
		k := key{StoreID(parts[1]), ItemID(parts[3])}
		if !seen[k] {
			seen[k] = true
			touched = append(touched, k)
		}
	}
	for _, k := range touched {
		st, ok := b.Store(k.store)
		if !ok {
			continue
		}
		if qty, value := StockOf(o, st, k.item); !qty.IsZero() || value.IsZero() {
			continue
		}
		for _, d := range stockDepts(o, st, k.item) {
			acct := StockAccount(st.ID, d, k.item)
			if v := o.Balance(acct, MoneyAsset(st.Currency)); !v.IsZero() {
				o.post(acct, MoneyAsset(st.Currency), v.Neg())
				o.post(VarianceAccount(st.ID), MoneyAsset(st.Currency), v)
			}
		}
	}
	out := MergePostings(o.out)
	if err := CheckPostings(out); err != nil {
		panic(fmt.Sprintf("storeline: cancelling %s does not balance: %v", pd.Doc.ID, err))
	}
	return out
}

// CancelPostings are a document's postings negated.
func CancelPostings(ps []Posting) []Posting {
	out := make([]Posting, len(ps))
	for i, p := range ps {
		out[i] = Posting{Account: p.Account, Asset: p.Asset, Amount: p.Amount.Neg()}
	}
	return MergePostings(out)
}

// CostOfSales derives the cost postings of a shop's sale (or return)
// from the units its postings moved between the shop's stock and sold:
// units out of stock take their moving-average cost to cogs; units back
// into stock return at it. Shops post quantities and money; central calls
// this when it applies their sales (DESIGN.md, "Cost of sales").
func CostOfSales(b StockBook, store StoreID, sale []Posting) ([]Posting, error) {
	st, ok := b.Store(store)
	if !ok {
		return nil, Invalidf("store", "unknown store %q", store)
	}
	o := &overlay{StockBook: b, delta: map[string]decimal.Decimal{}}
	prefix := "stock/" + string(store) + "/"
	ps := append([]Posting(nil), sale...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Account < ps[j].Account })
	for _, p := range ps {
		rest, ok := strings.CutPrefix(p.Account, prefix)
		if !ok || !strings.HasPrefix(string(p.Asset), "item:") {
			continue
		}
		dp, item, ok := strings.Cut(rest, "/")
		if !ok || ItemAsset(ItemID(item)) != p.Asset {
			continue
		}
		id := ItemID(item)
		// A return while the shop is short of the item covers the units
		// sold short at what they went out at (valueBack).
		value := valueBack(o, st, id, p.Amount)
		// Only value moves: the shop's own postings moved the units. The
		// next line of the item (another department's) costs at what this
		// one left, units included.
		o.post(StockAccount(store, DeptID(dp), id), MoneyAsset(st.Currency), value)
		o.post(COGSAccount(store, id), MoneyAsset(st.Currency), value.Neg())
		o.shift(p.Account, p.Asset, p.Amount)
	}
	out := MergePostings(o.out)
	if err := CheckPostings(out); err != nil {
		panic(fmt.Sprintf("storeline: cost of sales does not balance: %v", err))
	}
	return out, nil
}

// Batch is a received batch of an item in a shop with what is left of it
// for accounting (sales consume batches first-expiring first).
type Batch struct {
	Store       StoreID
	Item        ItemID
	Batch       string
	Expiry      Date
	Certificate string
	Qty         decimal.Decimal
}

// BatchTake is a quantity taken from a batch.
type BatchTake struct {
	Batch  string
	Expiry Date
	Qty    decimal.Decimal
}

// ConsumeFEFO takes q units from batches, first-expiring first (batches
// without an expiry date last, ties by batch name), and returns what it
// took and what no batch covered.
func ConsumeFEFO(batches []Batch, q decimal.Decimal) (takes []BatchTake, short decimal.Decimal) {
	bs := append([]Batch(nil), batches...)
	sort.SliceStable(bs, func(i, j int) bool {
		a, b := bs[i], bs[j]
		if (a.Expiry == "") != (b.Expiry == "") {
			return b.Expiry == ""
		}
		if a.Expiry != b.Expiry {
			return a.Expiry < b.Expiry
		}
		return a.Batch < b.Batch
	})
	for _, b := range bs {
		if !q.IsPositive() {
			break
		}
		if !b.Qty.IsPositive() {
			continue
		}
		t := decimal.Min(b.Qty, q)
		takes = append(takes, BatchTake{Batch: b.Batch, Expiry: b.Expiry, Qty: t})
		q = q.Sub(t)
	}
	return takes, q
}

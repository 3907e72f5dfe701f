package posbridge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// tillRefs checks what every till-authored fact starts with: a non-nil ID
// and the calling terminal. The session's rights and seller are checked
// for a new fact only (mayPost), once the ID is known not to be stored: a
// retry is answered from the stored fact, whatever has happened to the
// session since the first try.
func (s *Server) tillRefs(c *caller, id storeline.EventID, term storeline.TerminalID, at *time.Time) error {
	if id.IsZero() {
		return storeline.Invalidf("id", "an event id (UUID) is required")
	}
	if term != c.terminal.ID {
		return &storeline.Error{Kind: storeline.Forbidden, Field: "terminal", Err: fmt.Errorf("terminal %q is not the calling terminal %q", term, c.terminal.ID)}
	}
	if at == nil || at.IsZero() {
		return storeline.Invalidf("occurred_at", "occurred_at (RFC 3339) is required")
	}
	return storeline.CheckEventTime("occurred_at", *at)
}

// sessionSeller checks that a fact's seller is the caller's session's, or
// that the session is a manager's (any seller then); no session, nothing
// to check.
func (s *Server) sessionSeller(c *caller, seller storeline.SellerID) error {
	if c.session == nil || seller == c.session.seller {
		return nil
	}
	ok, err := s.manages(c.session)
	if err != nil {
		return err
	}
	if !ok {
		return &storeline.Error{Kind: storeline.Forbidden, Field: "seller", Err: fmt.Errorf("seller %q is not the session's seller", seller)}
	}
	return nil
}

// appendEvent appends a body authored at this store and answers it: 201
// when new, 200 for a retry of the same fact. The ledger's refusal of the
// same ID with another body names the id, the field the till has to
// change.
//
// A till's time was checked where it was decoded (tillRefs), so a
// time outside the years head office takes (CheckEventTime) is the node's
// own clock, on an event it authors (a shift's close, a hand-back): such
// an event is refused, as Unavailable until the clock is set right. Kept,
// head office would refuse it and the shop's push would stop behind it.
func (s *Server) appendEvent(ctx context.Context, id storeline.EventID, at time.Time, date storeline.Date, b storeline.Body) (storeline.Event, bool, error) {
	if storeline.CheckEventTime("occurred_at", at) != nil {
		return storeline.Event{}, false, storeline.Errorf(storeline.Unavailable, "posbridge.append",
			"the node's clock reads %s, outside the years head office takes: nothing the node authors is recorded until the clock is set right", at.UTC().Format(time.RFC3339))
	}
	ev, ok, err := s.led.Append(ctx, storeline.Event{
		ID: id, Kind: b.EventKind(), Body: b, OccurredAt: at.UTC(), BusinessDate: date,
	})
	if errors.Is(err, storeline.Conflict) && storeline.FieldOf(err) == "" {
		err = &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: err}
	}
	return ev, ok, err
}

func created(ok bool) int {
	if ok {
		return http.StatusCreated
	}
	return http.StatusOK
}

// prior returns the event this store already holds with id, or nil.
func (s *Server) prior(id storeline.EventID, kind storeline.EventKind) (*storeline.Event, error) {
	ev, err := s.led.Event(s.cfg.Store, id)
	if errors.Is(err, storeline.ErrPruned) {
		// Recorded, and pruned since by retention: answered now, as a
		// retry of a stored fact is, never checked again as a new one.
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("%s %s: already recorded, %w", kind, id, storeline.ErrPruned)}
	}
	if errors.Is(err, storeline.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ev.Kind != kind {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("id %s names a %s", id, ev.Kind)}
	}
	return &ev, nil
}

// resolveLines turns the till's lines into receipt lines: the item by SKU
// or barcode, the quantity in base units, and the item's department, unit
// and VAT rate. A sale (not a basket) needs a price on every line and a
// serial on every marked item.
func (s *Server) resolveLines(st *storeline.Store, in []lineIn, sale bool) ([]storeline.Line, error) {
	if len(in) == 0 {
		return nil, storeline.Invalidf("lines", "at least one line is required")
	}
	if len(in) > maxLines {
		return nil, storeline.Invalidf("lines", "at most %d lines", maxLines)
	}
	out := make([]storeline.Line, len(in))
	var serials map[string]int // item and serial of a marked line → its index
	for i, l := range in {
		f := fmt.Sprintf("lines[%d]", i)
		r, err := s.resolveItem(f, l)
		if err != nil {
			return nil, err
		}
		it := r.item
		if !st.HasDept(it.Dept) {
			return nil, storeline.Invalidf(r.keyField, "item %s is sold from department %q, which this store does not have", it.ID, it.Dept)
		}
		if sale && it.Marked && r.serial == "" {
			return nil, storeline.Invalidf(f+".serial", "item %s is marked: scan its DataMatrix code or give its serial", it.ID)
		}
		if len(r.serial) > 20 {
			return nil, storeline.Invalidf(f+".serial", "a serial is at most 20 characters")
		}
		if it.Marked && r.serial != "" {
			// A marking code names one unit: three bottles are three
			// lines with three codes, and one code twice is one bottle
			// counted twice.
			if !r.qty.Equal(decimal.NewFromInt(1)) {
				return nil, storeline.Invalidf(f+".qty", "item %s is marked: one unit per line, each with its own code (qty %s)", it.ID, r.qty)
			}
			key := string(it.ID) + "\x00" + r.serial
			if j, dup := serials[key]; dup {
				return nil, storeline.Invalidf(f+".serial", "serial %q of item %s is on line %d already", r.serial, it.ID, j)
			}
			if serials == nil {
				serials = make(map[string]int)
			}
			serials[key] = i
		}
		if sale && !l.Price.Set {
			return nil, storeline.Invalidf(f+".price", "the price charged is required")
		}
		out[i] = storeline.Line{
			Item: it.ID, Dept: it.Dept, Unit: it.Unit, Barcode: l.Barcode, Qty: r.qty,
			Price: l.Price.Decimal, Discount: l.Discount.Decimal, Serial: r.serial, VATRate: it.VATRate,
		}
	}
	return out, nil
}

// resolvedItem is what a till's line names: the item, the quantity in
// base units and the serial; keyField is the line's sku or barcode.
type resolvedItem struct {
	item     *storeline.Item
	qty      decimal.Decimal
	serial   string
	keyField string
}

// resolveItem resolves line f's item by SKU or barcode and its quantity:
// in packs for a pack barcode, the weight inside a weighed barcode unless
// the till sent one, 1 for a marking code unless the till sent one.
func (s *Server) resolveItem(f string, l lineIn) (resolvedItem, error) {
	r := resolvedItem{serial: l.Serial, keyField: f + ".sku"}
	switch {
	case l.SKU != "" && l.Barcode != "":
		return r, storeline.Invalidf(f, "give a sku or a barcode, not both")
	case l.SKU != "":
		var err error
		if r.item, err = s.itemBySKU(r.keyField, l.SKU); err != nil {
			return r, bodyRef(err)
		}
		if r.qty, err = needQty(f+".qty", l.Qty, r.item.Unit); err != nil {
			return r, err
		}
	case l.Barcode != "":
		r.keyField = f + ".barcode"
		sc, err := s.itemByBarcode(r.keyField, l.Barcode)
		if err != nil {
			return r, bodyRef(err)
		}
		r.item = sc.item
		switch sc.scan.Kind {
		case storeline.ScanWeighed:
			r.qty = sc.scan.Weight
			if l.Qty.Set {
				if r.qty, err = needQty(f+".qty", l.Qty, r.item.Unit); err != nil {
					return r, err
				}
			}
		case storeline.ScanMarked:
			r.qty = decimal.NewFromInt(1)
			if l.Qty.Set {
				if r.qty, err = needQty(f+".qty", l.Qty, r.item.Unit); err != nil {
					return r, err
				}
			}
			if r.serial != "" && r.serial != sc.scan.Serial {
				return r, storeline.Invalidf(f+".serial", "serial %q differs from the barcode's %q", r.serial, sc.scan.Serial)
			}
			r.serial = sc.scan.Serial
		default:
			packs, err := needQty(f+".qty", l.Qty, r.item.Unit)
			if err != nil {
				return r, err
			}
			r.qty = packs.Mul(sc.factor)
		}
	default:
		return r, storeline.Invalidf(r.keyField, "a line needs a sku or a barcode")
	}
	if r.item == nil {
		return r, storeline.Invalidf(r.keyField, "no item")
	}
	return r, nil
}

// bodyRef turns a NotFound about something a body refers to into Invalid:
// the request is wrong, not its path.
func bodyRef(err error) error {
	var e *storeline.Error
	if errors.As(err, &e) && e.Kind == storeline.NotFound {
		c := *e
		c.Kind = storeline.Invalid
		return &c
	}
	return err
}

// maxLines and maxPayments bound a receipt.
const (
	maxLines    = 1000
	maxPayments = 20
)

// needQty checks a quantity the till sent, in the item's unit.
func needQty(field string, q Dec, u storeline.Unit) (decimal.Decimal, error) {
	if !q.Set {
		return decimal.Decimal{}, storeline.Invalidf(field, "a quantity is required")
	}
	return storeline.NormQty(field, q.Decimal, u)
}

// payments checks the tenders of a receipt, or a return's refunds: field
// is "payments" or "refunds".
func payments(field string, in []paymentIn) ([]storeline.Payment, error) {
	if len(in) > maxPayments {
		return nil, storeline.Invalidf(field, "at most %d %s", maxPayments, field)
	}
	out := make([]storeline.Payment, len(in))
	for i, p := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := maxLen(f+".reference", p.Reference, 128); err != nil {
			return nil, err
		}
		if err := maxLen(f+".auth_code", p.AuthCode, 64); err != nil {
			return nil, err
		}
		if p.Method == storeline.Points && field == "refunds" {
			return nil, storeline.Invalidf(f+".method", "a till refunds money only (cash, card): the node gives back as points the part of a returned receipt it paid with points")
		}
		if p.Method == storeline.Points {
			// The node converts points to money by the programme's ratio
			// (loyalty.go); an amount the till sends is checked there.
			out[i] = storeline.Payment{Method: p.Method, Amount: p.Amount.Decimal, Points: p.Points}
			continue
		}
		if p.Points != 0 {
			return nil, storeline.Invalidf(f+".points", "points go with method points only")
		}
		if !p.Amount.Set {
			return nil, storeline.Invalidf(f+".amount", "an amount is required")
		}
		out[i] = storeline.Payment{Method: p.Method, Amount: p.Amount.Decimal, Reference: p.Reference, AuthCode: p.AuthCode}
	}
	return out, nil
}

// maxLen refuses a string field longer than limit characters, as
// openapi.yaml's maxLength counts them (a Cyrillic note is two bytes a
// character).
func maxLen(field, v string, limit int) error {
	if n := utf8.RuneCountInString(v); n > limit {
		return storeline.Invalidf(field, "%s is at most %d characters, got %d", field, limit, n)
	}
	return nil
}

func (s *Server) postReceipt(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in receiptIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	ev, ok, err := s.receipt(r.Context(), c, &in)
	if err != nil {
		return err
	}
	// A retry hands back too: the first attempt may have stopped (a
	// crash) between its append and its hand-back, which never happened
	// twice (loyalty.go, handBackOnce).
	s.handBack(r.Context(), ev) // loyalty.go
	writeJSON(w, created(ok), receiptOf(ev, ev.Body.(*storeline.Receipt)))
	return nil
}

// receipt checks, resolves and appends a sale. A retry (this store holds
// an event with its ID) is answered from the stored receipt when the till
// sent the same as the first time, and nothing is derived again: the
// card's customer, the items' VAT rates and departments, points and
// discrepancies stay those of the first attempt, so a master-data change
// since does not make the same receipt a conflict, and its points are not
// checked again against rights it has already spent.
func (s *Server) receipt(ctx context.Context, c *caller, in *receiptIn) (storeline.Event, bool, error) {
	var none storeline.Event
	// The session's seller is checked for a new receipt only: a retry is
	// answered by what it sent (receiptDiff compares the seller), whoever's
	// session it carries now (a manager demoted since the first try).
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return none, false, err
	}
	pays, err := payments("payments", in.Payments)
	if err != nil {
		return none, false, err
	}
	if in.Fiscal != nil {
		if err := maxLen("fiscal.document_number", in.Fiscal.DocumentNumber, 64); err != nil {
			return none, false, err
		}
		if err := maxLen("fiscal.sign", in.Fiscal.Sign, 256); err != nil {
			return none, false, err
		}
	}
	if in.Card != "" {
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return none, false, err
		}
	}
	prior, err := s.prior(in.ID, storeline.KindReceipt)
	if err != nil {
		return none, false, err
	}
	if prior != nil {
		return s.receiptRetry(in, pays, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return none, false, err
	}
	st, loc, err := s.store()
	if err != nil {
		return none, false, err
	}
	lines, err := s.resolveLines(st, in.Lines, true)
	if err != nil {
		return none, false, err
	}
	rc := &storeline.Receipt{
		Terminal: in.Terminal, Shift: in.Shift, Seller: in.Seller, Currency: st.Currency,
		CatalogVersion: in.CatalogVersion, Lines: lines, Payments: pays,
	}
	if in.Fiscal != nil {
		rc.Fiscal = &storeline.Fiscal{DocumentNumber: in.Fiscal.DocumentNumber, Sign: in.Fiscal.Sign}
	}
	if in.Card != "" {
		rc.Card = in.Card
		// An unknown card is recorded as scanned: the sale has happened,
		// and the card may have been registered at another till offline.
		var card storeline.CardRecord
		if err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(in.Card), &card); err == nil {
			rc.Customer = card.Customer
		} else if !errors.Is(err, storeline.NotFound) {
			return none, false, err
		}
	}
	prog, err := s.convertPoints(rc)
	if err != nil {
		return none, false, err
	}
	if err := rc.Compute(); err != nil {
		return none, false, err
	}
	date, err := s.businessDate(in.Terminal, in.Shift, *in.OccurredAt, loc)
	if err != nil {
		return none, false, err
	}
	unlock, err := s.reservePoints(ctx, in.ID, date, rc, prog)
	if err != nil {
		return none, false, err
	}
	defer unlock()
	// The till priced at occurred_at, so the node prices at the same
	// moment, with the same engine as POST /v1/baskets/price: an offline
	// till's receipt arriving after a repricing is not a discrepancy.
	if rc.Discrepancies, err = s.discrepancies(st, rc, *in.OccurredAt); err != nil {
		return none, false, err
	}
	// Not cancelled with the till's request: the points lock is released
	// only once the append's outcome is known (loyalty.go). The shift's
	// close waits for it (shiftDays.facts).
	facts := s.shiftDays.factLock(in.Terminal, in.Shift)
	facts.RLock()
	defer facts.RUnlock()
	ev, ok, err := s.appendEvent(context.WithoutCancel(ctx), in.ID, *in.OccurredAt, date, rc)
	if errors.Is(err, storeline.Conflict) {
		// The first try of this receipt may have landed since the retry
		// check above (a retry racing it), with figures derived from other
		// master data: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindReceipt); perr == nil && prior != nil {
			return s.receiptRetry(in, pays, prior)
		}
	}
	if err != nil {
		return none, false, err
	}
	if ok {
		s.m.committed.Inc()
		s.m.discrepancies.Add(float64(len(rc.Discrepancies)))
		s.countAfterClose(in.Terminal, in.Shift, "receipt")
	}
	return ev, ok, nil
}

// receiptRetry answers a receipt whose ID is stored as prior: the stored
// receipt if the till sent the same, else a conflict.
func (s *Server) receiptRetry(in *receiptIn, pays []storeline.Payment, prior *storeline.Event) (storeline.Event, bool, error) {
	f, err := s.receiptDiff(in, pays, prior)
	if err != nil {
		return storeline.Event{}, false, err
	}
	if f != "" {
		return storeline.Event{}, false, &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("receipt %s is stored with another %s", in.ID, f)}
	}
	return *prior, false, nil
}

// receiptDiff names the first field the till sent in which in (with its
// checked payments pays) differs from the receipt stored as ev, or "".
// Only what the till sends is compared, lines as lineDiff compares them.
func (s *Server) receiptDiff(in *receiptIn, pays []storeline.Payment, ev *storeline.Event) (string, error) {
	p := ev.Body.(*storeline.Receipt)
	switch {
	case in.Terminal != p.Terminal:
		return "terminal", nil
	case in.Shift != p.Shift:
		return "shift", nil
	case in.Seller != p.Seller:
		return "seller", nil
	case !in.OccurredAt.Equal(ev.OccurredAt):
		return "occurred_at", nil
	case in.CatalogVersion != p.CatalogVersion:
		return "catalog_version", nil
	case in.Card != p.Card:
		return "card", nil
	case (in.Fiscal == nil) != (p.Fiscal == nil):
		return "fiscal", nil
	case in.Fiscal != nil && in.Fiscal.DocumentNumber != p.Fiscal.DocumentNumber:
		return "fiscal.document_number", nil
	case in.Fiscal != nil && in.Fiscal.Sign != p.Fiscal.Sign:
		return "fiscal.sign", nil
	}
	if f, err := s.linesDiff(in.Lines, p.Lines); f != "" || err != nil {
		return f, err
	}
	return paymentsDiff("payments", pays, p.Payments), nil
}

// linesDiff names the first field in which the lines the till sent differ
// from the stored ones, or "" (lineDiff).
func (s *Server) linesDiff(in []lineIn, was []storeline.Line) (string, error) {
	if len(in) != len(was) {
		return "lines", nil
	}
	for i, l := range in {
		if f, err := s.lineDiff(fmt.Sprintf("lines[%d]", i), l, was[i]); f != "" || err != nil {
			return f, err
		}
	}
	return "", nil
}

// lineDiff names the first field in which line l of a retry, the till's
// line f, differs from the stored line was, or "". It does not need the
// catalogue to still name what it named at the first try: a retry of a
// sale whose item has since been deleted, or whose barcode has moved, is
// the same sale. What the stored line keeps as the till sent it (barcode,
// price, discount, serial) is compared as it is, a quantity in the stored
// line's unit. A barcode names the product the till scanned (GS1 gives
// other contents a new GTIN), so the same barcode is the stored line's
// item; a quantity of packs is compared while some item still carries the
// barcode, by its factor now. The catalogue can show a difference but
// never demand one: a SKU is the stored line's item unless it names
// another item now.
func (s *Server) lineDiff(f string, l lineIn, was storeline.Line) (string, error) {
	if l.SKU != "" && l.Barcode != "" {
		return "", storeline.Invalidf(f, "give a sku or a barcode, not both")
	}
	switch {
	case l.Barcode != was.Barcode:
		return f + ".barcode", nil
	case !l.Price.Decimal.Equal(was.Price):
		return f + ".price", nil
	case !l.Discount.Decimal.Equal(was.Discount):
		return f + ".discount", nil
	}
	qty, serial := decimal.Decimal{}, l.Serial
	known := true // the quantity in base units is known without the first try's catalogue
	if l.Barcode == "" {
		it, err := s.itemBySKU(f+".sku", l.SKU)
		switch {
		case err == nil && it.ID != was.Item:
			return f + ".sku", nil
		case err != nil && !errors.Is(err, storeline.NotFound):
			return "", err
		}
		if qty, err = needQty(f+".qty", l.Qty, was.Unit); err != nil {
			return "", err
		}
	} else {
		sc, _, err := s.readScan(f+".barcode", l.Barcode)
		if err != nil {
			return "", err
		}
		switch {
		case l.Qty.Set || sc.Kind == storeline.ScanGTIN:
			if qty, err = needQty(f+".qty", l.Qty, was.Unit); err != nil {
				return "", err
			}
		case sc.Kind == storeline.ScanWeighed:
			qty = sc.Weight
		default:
			qty = decimal.NewFromInt(1)
		}
		if sc.Kind == storeline.ScanMarked && serial == "" {
			serial = sc.Serial
		}
		if sc.Kind == storeline.ScanGTIN {
			factor, err := s.packFactor(sc.GTIN)
			if err != nil {
				return "", err
			}
			known = factor.IsPositive()
			qty = qty.Mul(factor)
		}
	}
	switch {
	case known && !qty.Equal(was.Qty):
		return f + ".qty", nil
	case serial != was.Serial:
		return f + ".serial", nil
	}
	return "", nil
}

// packFactor is the base units a scan of gtin counts for, as master data
// has it now (the factor goes with the GTIN, whichever item carries it),
// or zero when no item carries it any more.
func (s *Server) packFactor(gtin string) (decimal.Decimal, error) {
	it, err := s.cat.ItemByKey(storeline.BarcodeKey(gtin))
	if errors.Is(err, storeline.NotFound) {
		return decimal.Decimal{}, nil
	}
	if err != nil {
		return decimal.Decimal{}, err
	}
	if b, ok := it.Barcode(gtin); ok && b.Factor.IsPositive() {
		return b.Factor, nil
	}
	return decimal.NewFromInt(1), nil
}

// paymentsDiff names the first field in which a retry's checked tenders
// (field is "payments" or "refunds") differ from the stored ones, or "".
func paymentsDiff(field string, pays, was []storeline.Payment) string {
	if len(pays) != len(was) {
		return field
	}
	for i, pay := range pays {
		f := fmt.Sprintf("%s[%d]", field, i)
		w := was[i]
		switch {
		case pay.Method != w.Method:
			return f + ".method"
		case pay.Points != w.Points:
			return f + ".points"
		// A points payment's amount is the node's conversion of its
		// points; the till may leave it out.
		case !pay.Amount.Equal(w.Amount) && !(pay.Method == storeline.Points && pay.Amount.IsZero()):
			return f + ".amount"
		case pay.Reference != w.Reference:
			return f + ".reference"
		case pay.AuthCode != w.AuthCode:
			return f + ".auth_code"
		}
	}
	return ""
}

func (s *Server) getReceipt(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := storeline.ParseEventID(r.PathValue("id"))
	if err != nil {
		return storeline.Invalidf("id", "%v", err)
	}
	ev, err := s.led.Event(s.cfg.Store, id)
	if err != nil {
		return err
	}
	rc, ok := ev.Body.(*storeline.Receipt)
	if !ok {
		return storeline.Errorf(storeline.NotFound, "", "%s is a %s, not a receipt", id, ev.Kind)
	}
	writeJSON(w, http.StatusOK, receiptOf(ev, rc))
	return nil
}

type returnIn struct {
	ID         storeline.EventID    `json:"id"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Shift      storeline.ShiftID    `json:"shift"`
	Seller     storeline.SellerID   `json:"seller"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Original   *storeline.EventID   `json:"original,omitempty"`
	Card       string               `json:"card,omitempty"` // without original: whose points the return takes back
	Reason     string               `json:"reason"`
	Lines      []lineIn             `json:"lines"`
	Refunds    []paymentIn          `json:"refunds"`
}

type returnOut struct {
	eventHead
	Terminal storeline.TerminalID `json:"terminal"`
	Shift    storeline.ShiftID    `json:"shift"`
	Seller   storeline.SellerID   `json:"seller"`
	Manager  storeline.SellerID   `json:"manager"`
	Currency storeline.Currency   `json:"currency"`
	Original *storeline.EventID   `json:"original,omitempty"`
	Reason   string               `json:"reason"`
	Lines    []lineOut            `json:"lines"`
	Refunds  []paymentOut         `json:"refunds"`
	Total    string               `json:"total"`
	VAT      []vatOut             `json:"vat"`
	Points   *reversalOut         `json:"points,omitempty"` // loyalty.go
}

func (s *Server) postReturn(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in returnIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	if len(in.Reason) > 500 {
		return storeline.Invalidf("reason", "a reason is at most 500 characters")
	}
	refunds, err := payments("refunds", in.Refunds)
	if err != nil {
		return err
	}
	if in.Original == nil && in.Card != "" {
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return err
		}
	}
	// A retry is answered from the stored return, compared by what the
	// till sent (returnRetry), before anything is read of the catalogue
	// or of the session's rights (a manager demoted since the first try).
	prior, err := s.prior(in.ID, storeline.KindReturn)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.returnRetry(w, &in, refunds, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	lines, err := s.resolveLines(st, in.Lines, true)
	if err != nil {
		return err
	}
	ret := &storeline.Return{
		Terminal: in.Terminal, Shift: in.Shift, Seller: in.Seller, Manager: c.session.seller,
		Currency: st.Currency, Original: in.Original, Reason: in.Reason, Lines: lines, Refunds: refunds,
	}
	// With its receipt, the refunds add up only once the points it gives
	// back are known (reversePoints); without it, none are, and the
	// refunds are all money, as the till sent them.
	if in.Original != nil {
		err = ret.ComputeTotals()
	} else {
		err = ret.Compute()
	}
	if err != nil {
		return err
	}
	if in.Original != nil {
		// Held until the append: what is left to return of the receipt is
		// read and taken in one step, so two returns of its last unit at
		// once do not both pass the check.
		unlockReturns := s.returns.lock(*in.Original)
		defer unlockReturns()
		completes, err := s.checkReturnable(in.ID, *in.Original, ret.Lines)
		if err != nil {
			return err
		}
		unlock, err := s.reversePoints(in.ID, *in.Original, ret, completes) // loyalty.go
		if err != nil {
			return err
		}
		defer unlock()
	} else if in.Card != "" {
		unlock, err := s.reverseByCard(in.ID, in.Card, ret) // loyalty.go
		if err != nil {
			return err
		}
		defer unlock()
	}
	date, err := s.businessDate(in.Terminal, in.Shift, *in.OccurredAt, loc)
	if err != nil {
		return err
	}
	// Not cancelled with the till's request: the returns and points locks
	// are released only once the append's outcome is known.
	facts := s.shiftDays.factLock(in.Terminal, in.Shift)
	facts.RLock()
	defer facts.RUnlock()
	ev, ok, err := s.appendEvent(context.WithoutCancel(r.Context()), in.ID, *in.OccurredAt, date, ret)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindReturn); perr == nil && prior != nil {
			return s.returnRetry(w, &in, refunds, prior)
		}
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	if ok {
		s.countAfterClose(in.Terminal, in.Shift, "return")
	}
	writeJSON(w, created(ok), returnOf(ev, ev.Body.(*storeline.Return)))
	return nil
}

// returnRetry answers a return whose ID is stored as prior: the stored
// return if the till sent the same (refunds its checked refunds), else a
// conflict. The manager is the first try's, and a return without its
// receipt does not keep the card it named (its points reversal names the
// customer), so neither is compared.
func (s *Server) returnRetry(w http.ResponseWriter, in *returnIn, refunds []storeline.Payment, prior *storeline.Event) error {
	p := prior.Body.(*storeline.Return)
	var f string
	switch {
	case in.Terminal != p.Terminal:
		f = "terminal"
	case in.Shift != p.Shift:
		f = "shift"
	case in.Seller != p.Seller:
		f = "seller"
	case !in.OccurredAt.Equal(prior.OccurredAt):
		f = "occurred_at"
	case (in.Original == nil) != (p.Original == nil) || in.Original != nil && *in.Original != *p.Original:
		f = "original"
	case in.Reason != p.Reason:
		f = "reason"
	default:
		var err error
		if f, err = s.linesDiff(in.Lines, p.Lines); err != nil {
			return err
		}
		if f == "" {
			f = paymentsDiff("refunds", refunds, tillRefunds(p.Refunds))
		}
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("return %s is stored with another %s", in.ID, f)}
	}
	writeJSON(w, http.StatusOK, returnOf(*prior, p))
	return nil
}

// returnLocks serialise the check and append of returns per original
// receipt (striped: a bounded set of locks; receipts sharing a stripe
// only wait for each other).
type returnLocks struct{ m [64]sync.Mutex }

func (l *returnLocks) lock(orig storeline.EventID) func() {
	h := fnv.New32a()
	h.Write(orig[:])
	m := &l.m[h.Sum32()%uint32(len(l.m))]
	m.Lock()
	return m.Unlock
}

// tillRefunds are the refunds of a stored return the till sent: all but
// the points the node gave back (reversePoints), which come last.
func tillRefunds(ps []storeline.Payment) []storeline.Payment {
	n := len(ps)
	for n > 0 && ps[n-1].Method == storeline.Points {
		n--
	}
	return ps[:n]
}

// checkReturnable refuses a return of more of an item than the original
// receipt sold, or for more money than the receipt took for it, less what
// earlier returns (other than this one, which may be a retry) took back.
// completes is whether the return takes back all the receipt has left.
func (s *Server) checkReturnable(self, orig storeline.EventID, lines []storeline.Line) (completes bool, err error) {
	ev, err := s.led.Event(s.cfg.Store, orig)
	if err != nil {
		if errors.Is(err, storeline.ErrPruned) {
			return false, &storeline.Error{Kind: storeline.NotFound, Field: "original", Err: fmt.Errorf(
				"receipt %s is older than the journal this shop keeps (retention): return its goods without naming it", orig)}
		}
		if errors.Is(err, storeline.NotFound) {
			return false, &storeline.Error{Kind: storeline.NotFound, Field: "original", Err: fmt.Errorf("no receipt %s at this store", orig)}
		}
		return false, err
	}
	rc, ok := ev.Body.(*storeline.Receipt)
	if !ok {
		return false, storeline.Invalidf("original", "%s is a %s, not a receipt", orig, ev.Kind)
	}
	// What of each item is left to return: units, and the money the
	// receipt took for them (line totals, net of line discounts).
	left := map[storeline.ItemID]decimal.Decimal{}
	paid := map[storeline.ItemID]decimal.Decimal{}
	for _, l := range rc.Lines {
		left[l.Item] = left[l.Item].Add(l.Qty)
		paid[l.Item] = paid[l.Item].Add(l.Total)
	}
	earlier, err := s.led.ReturnsOf(orig)
	if err != nil {
		return false, err
	}
	for _, e := range earlier {
		if e.ID == self {
			continue
		}
		if rt, ok := e.Body.(*storeline.Return); ok {
			for _, l := range rt.Lines {
				left[l.Item] = left[l.Item].Sub(l.Qty)
				paid[l.Item] = paid[l.Item].Sub(l.Total)
			}
		}
	}
	for i, l := range lines {
		have, sold := left[l.Item]
		if !sold {
			return false, storeline.Invalidf(fmt.Sprintf("lines[%d]", i), "item %s is not on receipt %s", l.Item, orig)
		}
		if l.Qty.GreaterThan(have) {
			return false, storeline.Invalidf(fmt.Sprintf("lines[%d].qty", i), "returning %s of %s, but only %s sold on %s remains unreturned", l.Qty, l.Item, have.String(), orig)
		}
		if l.Total.GreaterThan(paid[l.Item]) {
			// Priced above the sale: the refund would pay out more than the
			// customer paid for it.
			return false, storeline.Invalidf(fmt.Sprintf("lines[%d].price", i), "returning %s of %s for %s, but %s paid for it on %s remains unreturned",
				l.Qty, l.Item, l.Total, paid[l.Item], orig)
		}
		left[l.Item] = have.Sub(l.Qty)
		paid[l.Item] = paid[l.Item].Sub(l.Total)
	}
	for _, q := range left {
		if q.IsPositive() {
			return false, nil
		}
	}
	return true, nil
}

func returnOf(ev storeline.Event, r *storeline.Return) returnOut {
	c := r.Currency
	return returnOut{
		eventHead: headOf(ev), Terminal: r.Terminal, Shift: r.Shift, Seller: r.Seller, Manager: r.Manager,
		Currency: c, Original: r.Original, Reason: r.Reason, Lines: linesOut(c, r.Lines),
		Refunds: paymentsOut(c, r.Refunds), Total: money(c, r.Total), VAT: vatsOut(c, r.VAT),
		Points: reversalOf(r),
	}
}

type cashIn struct {
	ID         storeline.EventID       `json:"id"`
	Terminal   storeline.TerminalID    `json:"terminal"`
	Shift      storeline.ShiftID       `json:"shift"`
	Seller     storeline.SellerID      `json:"seller"`
	OccurredAt *time.Time              `json:"occurred_at"`
	Direction  storeline.CashDirection `json:"direction"`
	Amount     Dec                     `json:"amount"`
	Reason     string                  `json:"reason,omitempty"`
}

type cashOut struct {
	eventHead
	Terminal  storeline.TerminalID    `json:"terminal"`
	Shift     storeline.ShiftID       `json:"shift"`
	Seller    storeline.SellerID      `json:"seller"`
	Direction storeline.CashDirection `json:"direction"`
	Currency  storeline.Currency      `json:"currency"`
	Amount    string                  `json:"amount"`
	Reason    string                  `json:"reason,omitempty"`
}

func (s *Server) postCash(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in cashIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	if len(in.Reason) > 500 {
		return storeline.Invalidf("reason", "a reason is at most 500 characters")
	}
	// A retry is answered from the stored operation, compared by what the
	// till sent, before the session's rights are checked (a manager
	// demoted since the first try) or the store is read.
	prior, err := s.prior(in.ID, storeline.KindCash)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.cashRetry(w, &in, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return err
	}
	if in.Direction == storeline.CashOut {
		ok, err := s.manages(c.session)
		if err != nil {
			return err
		}
		if !ok {
			return &storeline.Error{Kind: storeline.Forbidden, Field: "direction", Err: errors.New("taking cash out needs a manager's session")}
		}
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	op := &storeline.CashOp{
		Terminal: in.Terminal, Shift: in.Shift, Seller: in.Seller, Direction: in.Direction,
		Currency: st.Currency, Amount: in.Amount.Decimal, Reason: in.Reason,
	}
	if err := op.Validate(); err != nil {
		return err
	}
	// Cash moved under a closed shift is in no Z report (the close's is
	// fixed): refused as a second close is, unless it is a retry. The
	// shift's facts lock keeps a close from landing between the check and
	// the append.
	facts := s.shiftDays.factLock(in.Terminal, in.Shift)
	facts.RLock()
	defer facts.RUnlock()
	tot, err := s.led.ShiftTotals(in.Terminal, in.Shift)
	if err != nil {
		return err
	}
	if tot.Close != nil {
		prior, err := s.prior(in.ID, storeline.KindCash)
		if err != nil {
			return err
		}
		if prior == nil {
			return &storeline.Error{Kind: storeline.Conflict, Field: "shift", Err: fmt.Errorf("shift %s was closed by event %s: open a new shift", in.Shift, tot.Close.Event)}
		}
		return s.cashRetry(w, &in, prior)
	}
	date, err := s.businessDate(in.Terminal, in.Shift, *in.OccurredAt, loc)
	if err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(context.WithoutCancel(r.Context()), in.ID, *in.OccurredAt, date, op)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindCash); perr == nil && prior != nil {
			return s.cashRetry(w, &in, prior)
		}
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	writeJSON(w, created(ok), cashOf(ev, ev.Body.(*storeline.CashOp)))
	return nil
}

// cashRetry answers a cash operation whose ID is stored as prior: the
// stored operation if the till sent the same, else a conflict naming id.
func (s *Server) cashRetry(w http.ResponseWriter, in *cashIn, prior *storeline.Event) error {
	p := prior.Body.(*storeline.CashOp)
	var f string
	switch {
	case in.Terminal != p.Terminal:
		f = "terminal"
	case in.Shift != p.Shift:
		f = "shift"
	case in.Seller != p.Seller:
		f = "seller"
	case !in.OccurredAt.Equal(prior.OccurredAt):
		f = "occurred_at"
	case in.Direction != p.Direction:
		f = "direction"
	case !in.Amount.Set || !in.Amount.Decimal.Equal(p.Amount):
		f = "amount"
	case in.Reason != p.Reason:
		f = "reason"
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("cash operation %s is stored with another %s", in.ID, f)}
	}
	writeJSON(w, http.StatusOK, cashOf(*prior, p))
	return nil
}

func cashOf(ev storeline.Event, b *storeline.CashOp) cashOut {
	return cashOut{
		eventHead: headOf(ev), Terminal: b.Terminal, Shift: b.Shift, Seller: b.Seller,
		Direction: b.Direction, Currency: b.Currency, Amount: money(b.Currency, b.Amount), Reason: b.Reason,
	}
}

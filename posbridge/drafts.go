package posbridge

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

type positionJSON struct {
	Epoch      uint64 `json:"epoch"`
	Seq        uint64 `json:"seq"`
	PullCursor uint64 `json:"pull_cursor"`
}

type docLineIn struct {
	SKU           string `json:"sku"`
	Qty           Dec    `json:"qty"`
	Packs         Dec    `json:"packs"`
	PackFactor    Dec    `json:"pack_factor"`
	PurchasePrice Dec    `json:"purchase_price"`
	Batch         string `json:"batch,omitempty"`
	Expiry        string `json:"expiry,omitempty"`
	Certificate   string `json:"certificate,omitempty"`
}

type documentIn struct {
	ID         storeline.EventID    `json:"id"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Type       storeline.DocType    `json:"type"`
	Number     string               `json:"number,omitempty"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Seller     storeline.SellerID   `json:"seller"`
	Supplier   storeline.SupplierID `json:"supplier,omitempty"`
	ToStore    storeline.StoreID    `json:"to_store,omitempty"`
	FromDept   storeline.DeptID     `json:"from_dept,omitempty"`
	ToDept     storeline.DeptID     `json:"to_dept,omitempty"`
	Reason     string               `json:"reason,omitempty"`
	Position   *positionJSON        `json:"position,omitempty"`
	Note       string               `json:"note,omitempty"`
	Order      string               `json:"order,omitempty"`
	Lines      []docLineIn          `json:"lines"`
}

type docLineOut struct {
	Item          storeline.ItemID `json:"item"`
	Unit          storeline.Unit   `json:"unit"`
	Qty           string           `json:"qty"`
	PurchasePrice string           `json:"purchase_price,omitempty"`
	VATRate       string           `json:"vat_rate"`
	Batch         string           `json:"batch,omitempty"`
	Expiry        storeline.Date   `json:"expiry,omitempty"`
	Certificate   string           `json:"certificate,omitempty"`
}

type documentOut struct {
	eventHead
	Type     storeline.DocType    `json:"type"`
	Number   string               `json:"number,omitempty"`
	Terminal storeline.TerminalID `json:"terminal"`
	Seller   storeline.SellerID   `json:"seller"`
	Currency storeline.Currency   `json:"currency"`
	Supplier storeline.SupplierID `json:"supplier,omitempty"`
	ToStore  storeline.StoreID    `json:"to_store,omitempty"`
	FromDept storeline.DeptID     `json:"from_dept,omitempty"`
	ToDept   storeline.DeptID     `json:"to_dept,omitempty"`
	Reason   string               `json:"reason,omitempty"`
	Position *positionJSON        `json:"position,omitempty"`
	Note     string               `json:"note,omitempty"`
	Order    string               `json:"order,omitempty"`
	Lines    []docLineOut         `json:"lines"`
}

func (s *Server) postDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in documentIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		v     string
		limit int
	}{{"number", in.Number, 64}, {"reason", in.Reason, 500}, {"note", in.Note, 2000}} {
		if err := maxLen(f.name, f.v, f.limit); err != nil {
			return err
		}
	}
	if len(in.Lines) > maxLines {
		return storeline.Invalidf("lines", "at most %d lines", maxLines)
	}
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		if err := maxLen(f+".batch", l.Batch, 64); err != nil {
			return err
		}
		if err := maxLen(f+".certificate", l.Certificate, 128); err != nil {
			return err
		}
	}
	// A retry is answered from the stored draft, compared by what the till
	// sent (documentRetry), before anything is read of the catalogue or the
	// store: an item deleted since or a department the store no longer has
	// does not turn it into a refusal, nor does a session ended since.
	prior, err := s.prior(in.ID, storeline.KindDocumentDraft)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.documentRetry(w, &in, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	d := draftOf(&in, st.Currency)
	for _, f := range []struct {
		name string
		dept storeline.DeptID
	}{{"from_dept", in.FromDept}, {"to_dept", in.ToDept}} {
		if f.dept != "" && !st.HasDept(f.dept) {
			return storeline.Invalidf(f.name, "this store has no department %q", f.dept)
		}
	}
	// Head office makes no document of a draft naming a department its
	// type does not use (central, unusedDepts): refused here, where the
	// till can still be asked.
	switch {
	case in.FromDept != "" && in.Type == storeline.DocIncomingInvoice:
		return storeline.Invalidf("from_dept", "an incoming invoice has no use for from_dept")
	case in.ToDept != "" && in.Type != storeline.DocTransfer:
		return storeline.Invalidf("to_dept", "only a transfer goes to a department; a document of type %s has no use for to_dept", in.Type)
	}
	for i, l := range in.Lines {
		it, err := s.itemBySKU(fmt.Sprintf("lines[%d].sku", i), l.SKU)
		if err != nil {
			return bodyRef(err)
		}
		d.Lines = append(d.Lines, docLineOf(l, it.ID, it.Unit, &it.VATRate))
	}
	if err := d.Validate(); err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(r.Context(), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), d)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindDocumentDraft); perr == nil && prior != nil {
			return s.documentRetry(w, &in, prior)
		}
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	writeJSON(w, created(ok), documentOf(ev, ev.Body.(*storeline.DocumentDraft)))
	return nil
}

// draftOf is the draft in names, in currency cur, without its lines.
func draftOf(in *documentIn, cur storeline.Currency) *storeline.DocumentDraft {
	d := &storeline.DocumentDraft{
		Type: in.Type, Number: in.Number, Terminal: in.Terminal, Seller: in.Seller, Currency: cur,
		Supplier: in.Supplier, ToStore: in.ToStore, FromDept: in.FromDept, ToDept: in.ToDept,
		Reason: in.Reason, Note: in.Note, Order: in.Order,
	}
	if in.Position != nil {
		d.Position = &storeline.JournalPosition{Epoch: in.Position.Epoch, Seq: in.Position.Seq, PullCursor: in.Position.PullCursor}
	}
	return d
}

// docLineOf is the till's draft line l of item id, with the unit and VAT
// rate it is drafted in (nil: not given, as in a stored draft of a version
// that omitted a zero rate). The rate is copied: an explicit 0% is kept.
func docLineOf(l docLineIn, id storeline.ItemID, unit storeline.Unit, rate *decimal.Decimal) storeline.DocLine {
	dl := storeline.DocLine{
		Item: id, Unit: unit, Qty: l.Qty.Decimal, Packs: l.Packs.Decimal, PackFactor: l.PackFactor.Decimal,
		PurchasePrice: l.PurchasePrice.Decimal, Batch: l.Batch,
		Expiry: storeline.Date(l.Expiry), Certificate: l.Certificate,
	}
	if rate != nil {
		r := *rate
		dl.VATRate = &r
	}
	return dl
}

// documentRetry answers a draft whose ID is stored as prior: the stored
// draft if the till sent the same, else a conflict.
func (s *Server) documentRetry(w http.ResponseWriter, in *documentIn, prior *storeline.Event) error {
	f, err := s.documentDiff(in, prior)
	if err != nil {
		return err
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("document draft %s is stored with another %s", in.ID, f)}
	}
	writeJSON(w, http.StatusOK, documentOf(*prior, prior.Body.(*storeline.DocumentDraft)))
	return nil
}

// documentDiff names the first field the till sent in which in differs
// from the draft stored as ev, or "". What the draft took from master data
// (its currency, a line's unit and VAT rate) is the stored draft's, and
// the store's departments are not checked again. A stored line keeps its
// item, not the SKU the till sent: as lineDiff has it, the catalogue can
// show a difference but never demand one, so a SKU is the stored line's
// item unless it names another item now. The rest of a line is checked
// and normalised as on the first try (DocumentDraft.Validate), then
// compared as stored.
func (s *Server) documentDiff(in *documentIn, ev *storeline.Event) (string, error) {
	p := ev.Body.(*storeline.DocumentDraft)
	pos := func(j *storeline.JournalPosition) positionJSON {
		if j == nil {
			return positionJSON{}
		}
		return positionJSON{Epoch: j.Epoch, Seq: j.Seq, PullCursor: j.PullCursor}
	}
	// The terminal first: another terminal's draft is told from the
	// till's by that alone, nothing else of it (its type, its number).
	switch {
	case in.Terminal != p.Terminal:
		return "terminal", nil
	case in.Type != p.Type:
		return "type", nil
	case in.Number != p.Number:
		return "number", nil
	case in.Seller != p.Seller:
		return "seller", nil
	case !in.OccurredAt.Equal(ev.OccurredAt):
		return "occurred_at", nil
	case in.Supplier != p.Supplier:
		return "supplier", nil
	case in.ToStore != p.ToStore:
		return "to_store", nil
	case in.FromDept != p.FromDept:
		return "from_dept", nil
	case in.ToDept != p.ToDept:
		return "to_dept", nil
	case in.Reason != p.Reason:
		return "reason", nil
	case (in.Position == nil) != (p.Position == nil) || in.Position != nil && *in.Position != pos(p.Position):
		return "position", nil
	case in.Note != p.Note:
		return "note", nil
	case in.Order != p.Order:
		return "order", nil
	case len(in.Lines) != len(p.Lines):
		return "lines", nil
	}
	d := draftOf(in, p.Currency)
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		was := p.Lines[i]
		it, err := s.itemBySKU(f+".sku", l.SKU)
		switch {
		case err == nil && it.ID != was.Item:
			return f + ".sku", nil
		case err != nil && !errors.Is(err, storeline.NotFound):
			return "", err
		}
		d.Lines = append(d.Lines, docLineOf(l, was.Item, was.Unit, was.VATRate))
	}
	if err := d.Validate(); err != nil {
		return "", err
	}
	for i, l := range d.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		was := p.Lines[i]
		switch {
		case !l.Qty.Equal(was.Qty):
			return f + ".qty", nil
		case !l.Packs.Equal(was.Packs):
			return f + ".packs", nil
		case !l.PackFactor.Equal(was.PackFactor):
			return f + ".pack_factor", nil
		case !l.PurchasePrice.Equal(was.PurchasePrice):
			return f + ".purchase_price", nil
		case l.Batch != was.Batch:
			return f + ".batch", nil
		case l.Expiry != was.Expiry:
			return f + ".expiry", nil
		case l.Certificate != was.Certificate:
			return f + ".certificate", nil
		}
	}
	return "", nil
}

func documentOf(ev storeline.Event, b *storeline.DocumentDraft) documentOut {
	out := documentOut{
		eventHead: headOf(ev), Type: b.Type, Number: b.Number, Terminal: b.Terminal, Seller: b.Seller,
		Currency: b.Currency, Supplier: b.Supplier, ToStore: b.ToStore, FromDept: b.FromDept, ToDept: b.ToDept,
		Reason: b.Reason, Note: b.Note, Order: b.Order, Lines: []docLineOut{},
	}
	if b.Position != nil {
		out.Position = &positionJSON{Epoch: b.Position.Epoch, Seq: b.Position.Seq, PullCursor: b.Position.PullCursor}
	}
	for _, l := range b.Lines {
		// A draft this API stored without a rate was drafted at 0%: a
		// version before pointers omitted a zero rate.
		rate := decimal.Zero
		if l.VATRate != nil {
			rate = *l.VATRate
		}
		lo := docLineOut{Item: l.Item, Unit: l.Unit, Qty: qtyStr(l.Qty), VATRate: rate.String(), Batch: l.Batch, Expiry: l.Expiry, Certificate: l.Certificate}
		if !l.PurchasePrice.IsZero() {
			lo.PurchasePrice = money(b.Currency, l.PurchasePrice)
		}
		out.Lines = append(out.Lines, lo)
	}
	return out
}

type customerJSON struct {
	ID    storeline.CustomerID  `json:"id"`
	Name  string                `json:"name"`
	Phone string                `json:"phone,omitempty"`
	Email string                `json:"email,omitempty"`
	Group storeline.CustGroupID `json:"group,omitempty"`
}

type customerIn struct {
	ID         storeline.EventID    `json:"id"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Seller     storeline.SellerID   `json:"seller"`
	Customer   customerJSON         `json:"customer"`
	CardCode   string               `json:"card_code"`
}

type customerRegOut struct {
	eventHead
	Terminal storeline.TerminalID `json:"terminal"`
	Seller   storeline.SellerID   `json:"seller"`
	Customer customerJSON         `json:"customer"`
	CardCode string               `json:"card_code"`
}

func (s *Server) postCustomer(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in customerIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	cr := &storeline.CustomerRegistered{
		Terminal: in.Terminal, Seller: in.Seller, CardCode: in.CardCode,
		Customer: storeline.Customer{ID: in.Customer.ID, Name: in.Customer.Name, Phone: in.Customer.Phone, Email: in.Customer.Email, Group: in.Customer.Group},
	}
	if err := maxLen("customer.phone", cr.Customer.Phone, 32); err != nil {
		return err
	}
	if err := maxLen("customer.email", cr.Customer.Email, 254); err != nil {
		return err
	}
	// Checked here too, under the API's name for it: the registration's
	// own check calls it "card".
	if err := storeline.CheckCardCode("card_code", in.CardCode); err != nil {
		return err
	}
	if err := cr.Validate(); err != nil {
		return err
	}
	prior, err := s.prior(in.ID, storeline.KindCustomerRegistered)
	if err != nil {
		return err
	}
	// A retry is answered from the stored registration whatever has
	// happened to the session since (appendEvent compares the bodies).
	if prior == nil {
		if err := s.mayPost(c, in.Seller); err != nil {
			return err
		}
		// The card is new: a code head office already knows is taken. (Two
		// tills registering the same code offline is head office's merge.)
		var card storeline.CardRecord
		err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(in.CardCode), &card)
		if err == nil {
			return &storeline.Error{Kind: storeline.Conflict, Field: "card_code", Err: fmt.Errorf("card %s is already issued", in.CardCode)}
		} else if !errors.Is(err, storeline.NotFound) {
			return err
		}
	}
	_, loc, err := s.store()
	if err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(r.Context(), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), cr)
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	b := ev.Body.(*storeline.CustomerRegistered)
	writeJSON(w, created(ok), customerRegOut{
		eventHead: headOf(ev), Terminal: b.Terminal, Seller: b.Seller, CardCode: b.CardCode,
		Customer: customerJSON{ID: b.Customer.ID, Name: b.Customer.Name, Phone: b.Customer.Phone, Email: b.Customer.Email, Group: b.Customer.Group},
	})
	return nil
}

type basketLineIn struct {
	SKU     string `json:"sku,omitempty"`
	Barcode string `json:"barcode,omitempty"`
	Qty     Dec    `json:"qty"`
}

type basketIn struct {
	ID         storeline.EventID    `json:"id"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Seller     storeline.SellerID   `json:"seller"`
	Customer   storeline.CustomerID `json:"customer,omitempty"`
	Card       string               `json:"card,omitempty"`
	Note       string               `json:"note,omitempty"`
	Lines      []basketLineIn       `json:"lines"`
}

type basketLineOut struct {
	Item storeline.ItemID `json:"item"`
	Unit storeline.Unit   `json:"unit"`
	Qty  string           `json:"qty"`
}

type basketOut struct {
	eventHead
	Terminal storeline.TerminalID `json:"terminal"`
	Seller   storeline.SellerID   `json:"seller"`
	Customer storeline.CustomerID `json:"customer,omitempty"`
	Card     string               `json:"card,omitempty"`
	Note     string               `json:"note,omitempty"`
	Lines    []basketLineOut      `json:"lines"`
}

func basketOf(ev storeline.Event, b *storeline.Basket) basketOut {
	out := basketOut{eventHead: headOf(ev), Terminal: b.Terminal, Seller: b.Seller, Customer: b.Customer, Card: b.Card, Note: b.Note, Lines: []basketLineOut{}}
	for _, l := range b.Lines {
		out.Lines = append(out.Lines, basketLineOut{Item: l.Item, Unit: l.Unit, Qty: qtyStr(l.Qty)})
	}
	return out
}

func (s *Server) postBasket(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in basketIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	if err := maxLen("note", in.Note, 500); err != nil {
		return err
	}
	if in.Card != "" {
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return err
		}
	}
	if in.Customer != "" {
		if err := storeline.CheckID("customer", string(in.Customer)); err != nil {
			return err
		}
	}
	// Basket lines are resolved like sale lines; a basket carries no price.
	ls := make([]lineIn, len(in.Lines))
	for i, l := range in.Lines {
		ls[i] = lineIn{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty}
	}
	// A retry is answered from the stored basket, compared by what the
	// till sent (basketDiff), before anything is read of the catalogue or
	// of the session's rights.
	prior, err := s.prior(in.ID, storeline.KindBasket)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.basketRetry(w, &in, ls, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	lines, err := s.resolveBasketLines(st, ls)
	if err != nil {
		return err
	}
	b := &storeline.Basket{Terminal: in.Terminal, Seller: in.Seller, Customer: in.Customer, Card: in.Card, Note: in.Note, Lines: lines}
	if err := b.Validate(); err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(r.Context(), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), b)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindBasket); perr == nil && prior != nil {
			return s.basketRetry(w, &in, ls, prior)
		}
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	writeJSON(w, created(ok), basketOf(ev, ev.Body.(*storeline.Basket)))
	return nil
}

// resolveBasketLines resolves basket lines as sale lines, without the
// serial a marked item's sale needs (a basket is not a sale).
func (s *Server) resolveBasketLines(st *storeline.Store, in []lineIn) ([]storeline.BasketLine, error) {
	ls, err := s.resolveLines(st, in, false)
	if err != nil {
		return nil, err
	}
	out := make([]storeline.BasketLine, len(ls))
	for i, l := range ls {
		out[i] = storeline.BasketLine{Item: l.Item, Unit: l.Unit, Qty: l.Qty}
	}
	return out, nil
}

// basketRetry answers a basket whose ID is stored as prior (ls its lines
// as sale lines): the stored basket if the till sent the same, else a
// conflict.
func (s *Server) basketRetry(w http.ResponseWriter, in *basketIn, ls []lineIn, prior *storeline.Event) error {
	f, err := s.basketDiff(in, ls, prior)
	if err != nil {
		return err
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("basket %s is stored with another %s", in.ID, f)}
	}
	writeJSON(w, http.StatusOK, basketOf(*prior, prior.Body.(*storeline.Basket)))
	return nil
}

// basketDiff names the first field the till sent in which in (ls its
// lines as sale lines) differs from the basket stored as ev, or "". The
// lines are compared as a receipt's (linesDiff): a SKU is the stored
// line's item unless it names another item now, a quantity is compared in
// the stored line's unit. A basket line keeps neither the barcode nor the
// serial the till scanned, so they are taken to be the stored line's: a
// barcode that has moved to another item since, or that no item carries
// any more, is not a difference, and a barcode line is told from the
// stored one by its quantity alone.
func (s *Server) basketDiff(in *basketIn, ls []lineIn, ev *storeline.Event) (string, error) {
	p := ev.Body.(*storeline.Basket)
	switch {
	case in.Terminal != p.Terminal:
		return "terminal", nil
	case in.Seller != p.Seller:
		return "seller", nil
	case !in.OccurredAt.Equal(ev.OccurredAt):
		return "occurred_at", nil
	case in.Customer != p.Customer:
		return "customer", nil
	case in.Card != p.Card:
		return "card", nil
	case in.Note != p.Note:
		return "note", nil
	}
	if len(ls) > maxLines {
		return "", storeline.Invalidf("lines", "at most %d lines", maxLines)
	}
	was := make([]storeline.Line, len(p.Lines))
	for i, l := range p.Lines {
		was[i] = storeline.Line{Item: l.Item, Unit: l.Unit, Qty: l.Qty}
		if i < len(ls) && ls[i].Barcode != "" {
			was[i].Barcode = ls[i].Barcode
			if sc, err := s.cfg.WeighedLayout.ParseScan(ls[i].Barcode); err == nil && sc.Kind == storeline.ScanMarked {
				was[i].Serial = sc.Serial
			}
		}
	}
	return s.linesDiff(ls, was)
}

// sameOccurredAt refuses a retry (an append that found its ID stored,
// created false) whose occurred_at differs from the stored fact's: the
// ledger compares bodies, and occurred_at is not in the body, but it is
// part of what the till sent.
func sameOccurredAt(ev storeline.Event, created bool, at time.Time) error {
	if created || ev.OccurredAt.Equal(at) {
		return nil
	}
	return &storeline.Error{Kind: storeline.Conflict, Field: "id",
		Err: fmt.Errorf("%s %s is stored with another occurred_at", ev.Kind, ev.ID)}
}

func (s *Server) getBasket(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := storeline.ParseEventID(r.PathValue("id"))
	if err != nil {
		return storeline.Invalidf("id", "%v", err)
	}
	ev, err := s.led.Event(s.cfg.Store, id)
	if err != nil {
		return err
	}
	b, ok := ev.Body.(*storeline.Basket)
	if !ok {
		return storeline.Errorf(storeline.NotFound, "", "%s is a %s, not a basket", id, ev.Kind)
	}
	writeJSON(w, http.StatusOK, basketOf(ev, b))
	return nil
}

type salesRow struct {
	Key      string `json:"key"`
	Receipts int    `json:"receipts"`
	Returns  int    `json:"returns"`
	Sales    string `json:"sales"`
	Refunds  string `json:"refunds"`
	Net      string `json:"net"`
}

type salesOut struct {
	From       storeline.Date     `json:"from"`
	To         storeline.Date     `json:"to"`
	Currency   storeline.Currency `json:"currency"`
	Total      salesRow           `json:"total"`
	BySeller   []salesRow         `json:"by_seller"`
	ByTerminal []salesRow         `json:"by_terminal"`
	ByGroup    []salesRow         `json:"by_group"`
}

type acc struct {
	receipts, returns int
	sales, refunds    decimal.Decimal
}

// salesStats sums this store's receipts and returns over business dates,
// by seller, terminal and item group; returns are subtracted.
func (s *Server) salesStats(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	from, err := storeline.ParseDate("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := storeline.ParseDate("to", q.Get("to"))
	if err != nil {
		return err
	}
	ft, _ := time.Parse(time.DateOnly, string(from))
	tt, _ := time.Parse(time.DateOnly, string(to))
	if tt.Before(ft) {
		return storeline.Invalidf("to", "to %s is before from %s", to, from)
	}
	if days := int(tt.Sub(ft)/(24*time.Hour)) + 1; days > s.cfg.MaxStatsDays { // from and to both count
		return storeline.Invalidf("to", "at most %d days at once", s.cfg.MaxStatsDays)
	}
	// A range reaching into what retention pruned would be short, not
	// empty: refuse it rather than answer totals that look whole.
	if pruned, err := s.led.PrunedDate(); err != nil {
		return err
	} else if pruned != "" && from <= pruned {
		return &storeline.Error{Kind: storeline.Invalid, Field: "from", Err: fmt.Errorf(
			"this shop keeps its journal from %s on (journal retention): %w; head office reports earlier dates", nextDate(pruned), storeline.ErrPruned)}
	}
	st, _, err := s.store()
	if err != nil {
		return err
	}
	var total acc
	bySeller, byTerm, byGroup := map[string]*acc{}, map[string]*acc{}, map[string]*acc{}
	groups := map[storeline.ItemID]string{}
	groupOf := func(id storeline.ItemID) (string, error) {
		if g, ok := groups[id]; ok {
			return g, nil
		}
		var it storeline.Item
		g := ""
		if err := s.led.GetMaster(storeline.KindItem, string(id), &it); err == nil {
			g = string(it.Group)
		} else if !errors.Is(err, storeline.NotFound) {
			return "", err
		}
		groups[id] = g
		return g, nil
	}
	get := func(m map[string]*acc, k string) *acc {
		a, ok := m[k]
		if !ok {
			a = &acc{}
			m[k] = a
		}
		return a
	}
	err = s.led.EventsByDate(from, to, func(ev storeline.Event) error {
		if ev.Origin != s.cfg.Store {
			return nil
		}
		var lines []storeline.Line
		var sign int
		var seller, term string
		var amount decimal.Decimal
		switch b := ev.Body.(type) {
		case *storeline.Receipt:
			lines, sign, seller, term, amount = b.Lines, 1, string(b.Seller), string(b.Terminal), b.Total
		case *storeline.Return:
			lines, sign, seller, term, amount = b.Lines, -1, string(b.Seller), string(b.Terminal), b.Total
		default:
			return nil
		}
		add := func(a *acc, amt decimal.Decimal, count bool) {
			if sign > 0 {
				a.sales = a.sales.Add(amt)
				if count {
					a.receipts++
				}
			} else {
				a.refunds = a.refunds.Add(amt)
				if count {
					a.returns++
				}
			}
		}
		add(&total, amount, true)
		add(get(bySeller, seller), amount, true)
		add(get(byTerm, term), amount, true)
		seen := map[string]bool{}
		for _, l := range lines {
			g, err := groupOf(l.Item)
			if err != nil {
				return err
			}
			add(get(byGroup, g), l.Total, !seen[g])
			seen[g] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	cur := st.Currency
	row := func(k string, a *acc) salesRow {
		return salesRow{Key: k, Receipts: a.receipts, Returns: a.returns, Sales: money(cur, a.sales), Refunds: money(cur, a.refunds), Net: money(cur, a.sales.Sub(a.refunds))}
	}
	rows := func(m map[string]*acc) []salesRow {
		out := make([]salesRow, 0, len(m))
		for k, a := range m {
			out = append(out, row(k, a))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	}
	writeJSON(w, http.StatusOK, salesOut{
		From: from, To: to, Currency: cur, Total: row("", &total),
		BySeller: rows(bySeller), ByTerminal: rows(byTerm), ByGroup: rows(byGroup),
	})
	return nil
}

// nextDate is the business date after d (d itself if it does not parse).
func nextDate(d storeline.Date) storeline.Date {
	t, err := time.Parse(time.DateOnly, string(d))
	if err != nil {
		return d
	}
	return storeline.Date(t.AddDate(0, 0, 1).Format(time.DateOnly))
}

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
	Lines    []docLineOut         `json:"lines"`
}

func (s *Server) postDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in documentIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.Seller, in.OccurredAt); err != nil {
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
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	// A retry is compared by what the till sent (doc.go): what the draft
	// took from master data (currency, a line's unit and VAT rate, the
	// store's departments) is the stored draft's, whatever changed since.
	prior, err := s.prior(in.ID, storeline.KindDocumentDraft)
	if err != nil {
		return err
	}
	var was *storeline.DocumentDraft
	if prior != nil {
		was = prior.Body.(*storeline.DocumentDraft)
		st.Currency = was.Currency
	}
	d := &storeline.DocumentDraft{
		Type: in.Type, Number: in.Number, Terminal: in.Terminal, Seller: in.Seller, Currency: st.Currency,
		Supplier: in.Supplier, ToStore: in.ToStore, FromDept: in.FromDept, ToDept: in.ToDept,
		Reason: in.Reason, Note: in.Note,
	}
	if in.Position != nil {
		d.Position = &storeline.JournalPosition{Epoch: in.Position.Epoch, Seq: in.Position.Seq, PullCursor: in.Position.PullCursor}
	}
	for _, f := range []struct {
		name string
		dept storeline.DeptID
	}{{"from_dept", in.FromDept}, {"to_dept", in.ToDept}} {
		if f.dept != "" && was == nil && !st.HasDept(f.dept) {
			return storeline.Invalidf(f.name, "this store has no department %q", f.dept)
		}
	}
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		it, err := s.itemBySKU(f+".sku", l.SKU)
		if err != nil {
			return bodyRef(err)
		}
		if err := maxLen(f+".batch", l.Batch, 64); err != nil {
			return err
		}
		if err := maxLen(f+".certificate", l.Certificate, 128); err != nil {
			return err
		}
		unit, rate := it.Unit, it.VATRate
		if was != nil && i < len(was.Lines) && was.Lines[i].Item == it.ID {
			unit, rate = was.Lines[i].Unit, was.Lines[i].VATRate
		}
		d.Lines = append(d.Lines, storeline.DocLine{
			Item: it.ID, Unit: unit, Qty: l.Qty.Decimal, Packs: l.Packs.Decimal, PackFactor: l.PackFactor.Decimal,
			PurchasePrice: l.PurchasePrice.Decimal, VATRate: rate, Batch: l.Batch,
			Expiry: storeline.Date(l.Expiry), Certificate: l.Certificate,
		})
	}
	if err := d.Validate(); err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(r.Context(), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), d)
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	b := ev.Body.(*storeline.DocumentDraft)
	out := documentOut{
		eventHead: headOf(ev), Type: b.Type, Number: b.Number, Terminal: b.Terminal, Seller: b.Seller,
		Currency: b.Currency, Supplier: b.Supplier, ToStore: b.ToStore, FromDept: b.FromDept, ToDept: b.ToDept,
		Reason: b.Reason, Note: b.Note, Lines: []docLineOut{},
	}
	if b.Position != nil {
		out.Position = &positionJSON{Epoch: b.Position.Epoch, Seq: b.Position.Seq, PullCursor: b.Position.PullCursor}
	}
	for _, l := range b.Lines {
		lo := docLineOut{Item: l.Item, Unit: l.Unit, Qty: qtyStr(l.Qty), VATRate: l.VATRate.String(), Batch: l.Batch, Expiry: l.Expiry, Certificate: l.Certificate}
		if !l.PurchasePrice.IsZero() {
			lo.PurchasePrice = money(b.Currency, l.PurchasePrice)
		}
		out.Lines = append(out.Lines, lo)
	}
	writeJSON(w, created(ok), out)
	return nil
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
	if err := s.tillRefs(c, in.ID, in.Terminal, in.Seller, in.OccurredAt); err != nil {
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
	if prior == nil {
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
	if err := s.tillRefs(c, in.ID, in.Terminal, in.Seller, in.OccurredAt); err != nil {
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
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	// Basket lines are resolved like sale lines; a basket carries no price.
	ls := make([]lineIn, len(in.Lines))
	for i, l := range in.Lines {
		ls[i] = lineIn{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty}
	}
	prior, err := s.prior(in.ID, storeline.KindBasket)
	if err != nil {
		return err
	}
	var lines []storeline.BasketLine
	if prior != nil {
		lines, err = s.basketRetryLines(ls, prior.Body.(*storeline.Basket))
	} else {
		lines, err = s.resolveBasketLines(st, ls)
	}
	if err != nil {
		return err
	}
	b := &storeline.Basket{Terminal: in.Terminal, Seller: in.Seller, Customer: in.Customer, Card: in.Card, Note: in.Note, Lines: lines}
	if err := b.Validate(); err != nil {
		return err
	}
	ev, ok, err := s.appendEvent(r.Context(), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), b)
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

// basketRetryLines resolves a retried basket's lines by what the till
// sent, the item and its quantity, as a receipt's retry is compared
// (receiptDiff): the unit is the stored line's, and the item's department
// is not checked again, so master data changed since the basket was
// stored does not turn its retry into a refusal or a conflict.
func (s *Server) basketRetryLines(in []lineIn, was *storeline.Basket) ([]storeline.BasketLine, error) {
	if len(in) > maxLines {
		return nil, storeline.Invalidf("lines", "at most %d lines", maxLines)
	}
	out := make([]storeline.BasketLine, len(in))
	for i, l := range in {
		r, err := s.resolveItem(fmt.Sprintf("lines[%d]", i), l)
		if err != nil {
			return nil, err
		}
		unit := r.item.Unit
		if i < len(was.Lines) && was.Lines[i].Item == r.item.ID {
			unit = was.Lines[i].Unit
		}
		out[i] = storeline.BasketLine{Item: r.item.ID, Unit: unit, Qty: r.qty}
	}
	return out, nil
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

package posbridge

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// store loads this shop's record and time zone.
func (s *Server) store() (*storeline.Store, *time.Location, error) {
	version := s.led.MasterVersion() // read first: what is read is at least this fresh
	if c := s.storeAt.Load(); c != nil && c.version == version {
		st := *c.st // a copy: callers may change their own
		return &st, c.loc, nil
	}
	var st storeline.Store
	if err := s.led.GetMaster(storeline.KindStore, string(s.cfg.Store), &st); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return nil, nil, storeline.Errorf(storeline.Unavailable, "posbridge.store", "the store record %q has not arrived yet", s.cfg.Store)
		}
		return nil, nil, err
	}
	loc, err := st.Location()
	if err != nil {
		return nil, nil, storeline.E("posbridge.store", storeline.Internal, err)
	}
	kept := st
	s.storeAt.Store(&storeRecord{version: version, st: &kept, loc: loc})
	return &st, loc, nil
}

// storeRecord is the store's record as decoded at a master version (a
// till's every request reads it; master data changes seldom). A record
// read after a later change is kept under the earlier version, which
// only makes the cache answer fresher than it must.
type storeRecord struct {
	version uint64
	st      *storeline.Store
	loc     *time.Location
}

// itemBySKU looks an item up by SKU; field names the input in errors. The
// item is the catalog's, shared: read it, never change it.
func (s *Server) itemBySKU(field, sku string) (*storeline.Item, error) {
	if sku == "" || len(sku) > 64 {
		return nil, storeline.Invalidf(field, "a SKU is 1-64 characters")
	}
	it, err := s.cat.ItemByKey(storeline.SKUKey(sku))
	if err != nil {
		if errors.Is(err, storeline.NotFound) {
			return nil, &storeline.Error{Kind: storeline.NotFound, Field: field, Err: fmt.Errorf("no item with SKU %q", sku)}
		}
		return nil, err
	}
	return it, nil
}

// scanned is an item resolved from a barcode.
type scanned struct {
	item   *storeline.Item
	scan   storeline.Scan
	factor decimal.Decimal // base units per scan (1, a pack's factor)
}

// itemByBarcode parses a scanned code and looks its item up.
func (s *Server) itemByBarcode(field, code string) (*scanned, error) {
	sc, it, err := s.readScan(field, code)
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: field, Err: fmt.Errorf("no item with barcode %s", sc.GTIN)}
	}
	f := decimal.NewFromInt(1)
	if b, ok := it.Barcode(sc.GTIN); ok && sc.Kind == storeline.ScanGTIN && b.Factor.IsPositive() {
		f = b.Factor
	}
	return &scanned{item: it, scan: sc, factor: f}, nil
}

// readScan reads a scanned code as the tills do, with the item it names
// now (nil: none). The in-store range 20-29 holds head office's piece
// codes as well as the scales' labels. A weighed reading that names a
// weighed item comes first, so a scale's label sells what it sold before
// piece codes shared the range, even if a piece item holds the same
// digits by mistake. Then a code a piece item holds exactly: read as a
// weight it would name no item, or be refused as weighing nothing. A
// weighed item's own code (its weight digits zeroed) still weighs
// nothing. A sale and its retry's comparison both read codes here, so a
// retry reads a code as its first try did. Parse errors name field.
func (s *Server) readScan(field, code string) (storeline.Scan, *storeline.Item, error) {
	sc, parseErr := s.cfg.WeighedLayout.ParseScan(code)
	var byWeight *storeline.Item
	if parseErr == nil {
		it, err := s.itemByGTIN(sc.GTIN)
		if err != nil || sc.Kind != storeline.ScanWeighed || (it != nil && it.Weighed) {
			return sc, it, err
		}
		byWeight = it
	}
	if len(code) == 13 && s.cfg.WeighedLayout.Claims(code[:2]) {
		if g, err := storeline.NormalizeGTIN(code); err == nil {
			it, err := s.itemByGTIN(g)
			if err != nil {
				return storeline.Scan{}, nil, err
			}
			if it != nil && !it.Weighed {
				return storeline.Scan{Kind: storeline.ScanGTIN, GTIN: g}, it, nil
			}
		}
	}
	if parseErr != nil {
		var e *storeline.Error
		if errors.As(parseErr, &e) {
			c := *e
			c.Field = field
			return storeline.Scan{}, nil, &c
		}
		return storeline.Scan{}, nil, storeline.Invalidf(field, "%v", parseErr)
	}
	return sc, byWeight, nil
}

// itemByGTIN is the item holding the GTIN-14, or nil.
func (s *Server) itemByGTIN(gtin string) (*storeline.Item, error) {
	it, err := s.cat.ItemByKey(storeline.BarcodeKey(gtin))
	if errors.Is(err, storeline.NotFound) {
		return nil, nil
	}
	return it, err
}

type barcodeOut struct {
	Code   string `json:"code"`
	Factor string `json:"factor"`
}

type itemOut struct {
	ID             storeline.ItemID      `json:"id"`
	SKU            string                `json:"sku"`
	Name           string                `json:"name"`
	Group          storeline.GroupID     `json:"group"`
	Dept           storeline.DeptID      `json:"dept"`
	Unit           storeline.Unit        `json:"unit"`
	VATRate        string                `json:"vat_rate"`
	Weighed        bool                  `json:"weighed"`
	Excise         bool                  `json:"excise"`
	Marked         bool                  `json:"marked"`
	ExpiryTracked  bool                  `json:"expiry_tracked"`
	Barcodes       []barcodeOut          `json:"barcodes"`
	Price          *string               `json:"price"`
	PriceList      storeline.PriceListID `json:"price_list,omitempty"`
	Currency       storeline.Currency    `json:"currency"`
	CatalogVersion uint64                `json:"catalog_version"`
}

func itemJSON(it *storeline.Item) itemOut {
	o := itemOut{
		ID: it.ID, SKU: it.SKU, Name: it.Name, Group: it.Group, Dept: it.Dept, Unit: it.Unit,
		VATRate: it.VATRate.String(), Weighed: it.Weighed, Excise: it.Excise, Marked: it.Marked,
		ExpiryTracked: it.ExpiryTracked, Barcodes: make([]barcodeOut, len(it.Barcodes)),
	}
	for i, b := range it.Barcodes {
		o.Barcodes[i] = barcodeOut{Code: b.Code, Factor: qtyStr(b.Factor)}
	}
	return o
}

// pricedItem renders an item with this shop's current price. version is
// the master version read before the item was: the answer is at least
// that fresh, so a till caching by catalog_version misses no change.
func (s *Server) pricedItem(version uint64, it *storeline.Item) (itemOut, error) {
	st, loc, err := s.store()
	if err != nil {
		return itemOut{}, err
	}
	o := itemJSON(it)
	o.Currency, o.CatalogVersion = st.Currency, version
	p, pl, ok, err := s.price(st, loc, it.ID, s.cfg.Now())
	if err != nil {
		return itemOut{}, err
	}
	if ok {
		// What the node charges per base unit: the list price rounded to
		// the currency (half away from zero), as basket pricing and the
		// receipt's discrepancy check round it.
		str := money(st.Currency, p.Round(st.Currency.Scale()))
		o.Price, o.PriceList = &str, pl
	}
	return o, nil
}

func (s *Server) getItem(w http.ResponseWriter, r *http.Request, _ *caller) error {
	version := s.led.MasterVersion()
	it, err := s.itemBySKU("sku", r.PathValue("sku"))
	if err != nil {
		return err
	}
	o, err := s.pricedItem(version, it)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

type scanOut struct {
	Kind   string  `json:"kind"` // gtin, weighed, marked
	GTIN   string  `json:"gtin"`
	Qty    string  `json:"qty"` // base units this scan stands for
	Weight *string `json:"weight,omitempty"`
	Serial string  `json:"serial,omitempty"`
	Item   itemOut `json:"item"`
}

var scanKinds = map[storeline.ScanKind]string{
	storeline.ScanGTIN: "gtin", storeline.ScanWeighed: "weighed", storeline.ScanMarked: "marked",
}

func (s *Server) getBarcode(w http.ResponseWriter, r *http.Request, _ *caller) error {
	code := r.PathValue("code") // unescaped once by the mux: a '%' left in it is the code's own
	version := s.led.MasterVersion()
	sc, err := s.itemByBarcode("code", code)
	if err != nil {
		return err
	}
	o, err := s.pricedItem(version, sc.item)
	if err != nil {
		return err
	}
	out := scanOut{Kind: scanKinds[sc.scan.Kind], GTIN: sc.scan.GTIN, Qty: qtyStr(sc.factor), Serial: sc.scan.Serial, Item: o}
	if sc.scan.Kind == storeline.ScanWeighed {
		wt := qtyStr(sc.scan.Weight)
		out.Weight, out.Qty = &wt, wt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// catalogKinds are the kinds a till's catalogue cache follows.
var catalogKinds = map[storeline.MasterKind]bool{
	storeline.KindItem: true, storeline.KindPrice: true, storeline.KindPriceList: true,
	storeline.KindGroup: true, storeline.KindStore: true,
	// The pricing rules, so an offline till prices as the node does.
	storeline.KindPricePolicy: true, storeline.KindPromotion: true, storeline.KindLoyaltyProgramme: true,
}

type changeOut struct {
	Version uint64 `json:"version"`
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Record  any    `json:"record,omitempty"`
}

type changesOut struct {
	Changes []changeOut `json:"changes"`
	Next    uint64      `json:"next"`
	More    bool        `json:"more"`
}

func (s *Server) catalogChanges(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	since, err := uintParam(q, "since", 0)
	if err != nil {
		return err
	}
	limit, err := uintParam(q, "limit", 500)
	if err != nil {
		return err
	}
	if limit < 1 || limit > uint64(s.cfg.MaxPageSize) {
		return storeline.Invalidf("limit", "limit %d out of [1, %d]", limit, s.cfg.MaxPageSize)
	}
	// Read first: the page holds every change up to at least this
	// version, unless the ledger answered fewer than asked (its own page
	// bound may be below MaxPageSize), so more is judged by it too.
	version := s.led.MasterVersion()
	page, err := s.cfg.MasterChanges(since, int(limit))
	if err != nil {
		return err
	}
	out := changesOut{Changes: []changeOut{}, Next: since, More: len(page) == int(limit)}
	var loc *time.Location // the shop's zone, read once a price needs it
	for _, c := range page {
		// The cursor passes changes of kinds the till does not follow, so
		// a page of them never stalls it.
		out.Next = max(out.Next, c.Version)
		if !catalogKinds[c.Kind] {
			continue
		}
		co := changeOut{Version: c.Version, Kind: string(c.Kind), ID: c.ID, Deleted: c.Deleted}
		if !c.Deleted && c.Record != nil {
			if _, ok := c.Record.(*storeline.Price); ok && loc == nil {
				// A price's from is dated in the shop's zone as it is now
				// (the zone the node prices in); without the store record
				// the page waits (503) rather than go out in a wrong zone.
				if _, loc, err = s.store(); err != nil {
					return err
				}
			}
			co.Record = recordJSON(c.Record, loc)
		}
		out.Changes = append(out.Changes, co)
	}
	out.More = out.More || len(page) > 0 && out.Next < version
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recordJSON renders a catalogue record for the wire; loc is the shop's
// zone (needed for prices only).
func recordJSON(r storeline.Record, loc *time.Location) any {
	switch v := r.(type) {
	case *storeline.Item:
		return itemJSON(v)
	case *storeline.Price:
		return map[string]any{"list": v.List, "item": v.Item, "from": wallInstant(v.From, loc).Format(timeFormat), "price": v.Price.String()}
	case *storeline.PriceList:
		return map[string]any{"id": v.ID, "name": v.Name, "currency": v.Currency}
	case *storeline.Group:
		return map[string]any{"id": v.ID, "name": v.Name, "parent": v.Parent}
	case *storeline.Store:
		depts := make([]map[string]any, len(v.Departments))
		for i, d := range v.Departments {
			depts[i] = map[string]any{"id": d.ID, "name": d.Name}
		}
		lists := v.PriceLists
		if lists == nil {
			lists = []storeline.PriceListID{}
		}
		return map[string]any{"id": v.ID, "name": v.Name, "time_zone": v.TimeZone, "currency": v.Currency, "departments": depts, "price_lists": lists}
	case *storeline.PricePolicy:
		return map[string]any{"id": v.ID, "name": v.Name, "customer_group": v.CustomerGroup, "percent": v.Percent.String(),
			"groups": nonNil(v.Groups), "stores": nonNil(v.Stores)}
	case *storeline.Promotion:
		return promotionJSON(v)
	case *storeline.LoyaltyProgramme:
		rates := make([]map[string]any, len(v.Rates))
		for i, r := range v.Rates {
			rates[i] = map[string]any{"group": r.Group, "rate": r.Rate.String()}
		}
		return map[string]any{"id": v.ID, "name": v.Name, "currency": v.Currency, "default_rate": v.DefaultRate.String(),
			"rates": rates, "exclude_items": nonNil(v.ExcludeItems), "exclude_groups": nonNil(v.ExcludeGroups),
			"point_value": v.PointValue.String(), "max_share": v.MaxShare.String(), "daily_offline_cap": v.DailyOfflineCap}
	}
	return nil
}

// wallInstant is the instant a shop in loc reaches the wall-clock time
// wall (a Price.From: storeline.WallClock's form), in loc: the first
// instant t with WallClock(t, loc) at or after wall, which is when the
// node's pricing (Server.price) switches to a price from wall. Mostly
// that is wall read in loc ("08:00" in Moscow is 08:00+03:00). A wall
// time a DST gap skips is reached when the clocks jump (02:30 on the
// spring-forward night in New York: 03:00-04:00; time.Date alone would
// give 01:30-05:00, half an hour before the node switches); one an
// overlap repeats is reached the first time (time.Date's choice too).
func wallInstant(wall time.Time, loc *time.Location) time.Time {
	w := wall.UTC()
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
	switch got := storeline.WallClock(t, loc); {
	case got.Before(w): // in a gap, resolved before it: the jump ends it
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	case got.After(w): // in a gap, resolved after it: the jump began it
		if start, _ := t.ZoneBounds(); !start.IsZero() {
			return start
		}
	}
	return t
}

// promotionJSON renders a promotion; From and Until are wall-clock times
// in the shop's zone, so they go out without a zone ("2026-03-01T00:00:00"),
// to be read in the store record's time_zone: a promotion runs while the
// shop's wall clock reads at or after from and before until, exactly the
// node's test (Promotion.ActiveAt), DST gaps and overlaps included. Prices
// differ on purpose (wallInstant): their from was always a date-time with
// a zone, which tills read as an instant.
func promotionJSON(p *storeline.Promotion) map[string]any {
	const wall = "2006-01-02T15:04:05"
	m := map[string]any{"id": p.ID, "name": p.Name, "kind": p.Kind, "stores": nonNil(p.Stores),
		"from": p.From.UTC().Format(wall), "priority": p.Priority, "items": nonNil(p.Items), "groups": nonNil(p.Groups)}
	if !p.Until.IsZero() {
		m["until"] = p.Until.UTC().Format(wall)
	}
	switch p.Kind {
	case storeline.PromoPercent:
		m["percent"] = p.Percent.String()
	case storeline.PromoFixed:
		m["amount"] = p.Amount.String()
	case storeline.PromoNForM:
		m["n"], m["m"] = p.N, p.M
	case storeline.PromoBundle:
		parts := make([]map[string]any, len(p.Bundle))
		for i, b := range p.Bundle {
			parts[i] = map[string]any{"item": b.Item, "qty": b.Qty}
		}
		m["bundle"], m["amount"] = parts, p.Amount.String()
	case storeline.PromoThreshold:
		m["threshold"] = p.Threshold.String()
		if p.Percent.IsPositive() {
			m["percent"] = p.Percent.String()
		} else {
			m["amount"] = p.Amount.String()
		}
	}
	return m
}

// nonNil makes an absent list an empty JSON array.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func uintParam(q url.Values, name string, def uint64) (uint64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, storeline.Invalidf(name, "%q is not a non-negative integer", v)
	}
	return n, nil
}

type cardOut struct {
	Code     string             `json:"code"`
	Kind     storeline.CardKind `json:"kind"`
	Blocked  bool               `json:"blocked"`
	Customer *customerOut       `json:"customer,omitempty"`
	Group    *groupOut          `json:"group,omitempty"`
	Seller   storeline.SellerID `json:"seller,omitempty"`
	Points   *pointsOut         `json:"points,omitempty"`
}

type customerOut struct {
	ID    storeline.CustomerID  `json:"id"`
	Name  string                `json:"name"`
	Phone string                `json:"phone,omitempty"`
	Email string                `json:"email,omitempty"`
	Group storeline.CustGroupID `json:"group,omitempty"`
}

type groupOut struct {
	ID     storeline.CustGroupID `json:"id"`
	Name   string                `json:"name"`
	Parent storeline.CustGroupID `json:"parent,omitempty"`
}

func (s *Server) getCard(w http.ResponseWriter, r *http.Request, c *caller) error {
	code := r.PathValue("code")
	if err := storeline.CheckCardCode("code", code); err != nil {
		return err
	}
	var card storeline.CardRecord
	if err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil {
		return err
	}
	if card.Blocked {
		// A till needs to know to refuse it, not whom it was issued to:
		// no customer, group, points or seller.
		writeJSON(w, http.StatusOK, cardOut{Code: card.Code, Kind: card.Kind, Blocked: true})
		return nil
	}
	out := cardOut{Code: card.Code, Kind: card.Kind, Seller: card.Seller}
	if card.Kind == storeline.LoyaltyCard {
		var err error
		if out.Points, err = s.cardPoints(r.Context(), c.terminal.ID, card.Customer); err != nil {
			return err
		}
		var c storeline.Customer
		if err := s.led.GetMaster(storeline.KindCustomer, string(card.Customer), &c); err != nil {
			if !errors.Is(err, storeline.NotFound) {
				return err
			}
			out.Customer = &customerOut{ID: card.Customer} // the card arrived before its customer
		} else {
			out.Customer = &customerOut{ID: c.ID, Name: c.Name, Phone: c.Phone, Email: c.Email, Group: c.Group}
			if c.Group != "" {
				var g storeline.CustomerGroup
				if err := s.led.GetMaster(storeline.KindCustomerGroup, string(c.Group), &g); err == nil {
					out.Group = &groupOut{ID: g.ID, Name: g.Name, Parent: g.Parent}
				} else if !errors.Is(err, storeline.NotFound) {
					return err
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type stockOut struct {
	Item   storeline.ItemID `json:"item"`
	SKU    string           `json:"sku"`
	Unit   storeline.Unit   `json:"unit"`
	OnHand string           `json:"on_hand"`
	// Reserved is what reservations hold (reservations.go); Available is
	// on hand less that, what a new reservation may hold. A sale is never
	// refused for reserved goods.
	Reserved    string    `json:"reserved"`
	Available   string    `json:"available"`
	Departments []deptQty `json:"departments"`
}

type deptQty struct {
	Dept storeline.DeptID `json:"dept"`
	Qty  string           `json:"qty"`
}

func (s *Server) getStock(w http.ResponseWriter, r *http.Request, _ *caller) error {
	it, err := s.itemBySKU("sku", r.PathValue("sku"))
	if err != nil {
		return err
	}
	asset := storeline.ItemAsset(it.ID)
	total := decimal.Zero
	out := stockOut{Item: it.ID, SKU: it.SKU, Unit: it.Unit, Departments: []deptQty{}}
	// Every department holding the item, the store record's or not (one
	// dropped from the record keeps its stock until it is moved), each
	// read by a seek: never the shop's other items.
	err = s.led.BalancesAcross("stock/"+string(s.cfg.Store)+"/", "/"+string(it.ID), asset, func(dept string, qty decimal.Decimal) {
		total = total.Add(qty)
		out.Departments = append(out.Departments, deptQty{Dept: storeline.DeptID(dept), Qty: qtyStr(qty)})
	})
	if err != nil {
		return err
	}
	sort.Slice(out.Departments, func(i, j int) bool { return out.Departments[i].Dept < out.Departments[j].Dept })
	reserved, err := s.led.Balance(storeline.ReservedAccount(s.cfg.Store, it.ID), asset)
	if err != nil {
		return err
	}
	out.OnHand, out.Reserved, out.Available = qtyStr(total), qtyStr(reserved), qtyStr(total.Sub(reserved))
	writeJSON(w, http.StatusOK, out)
	return nil
}

type sellerOut struct {
	ID   storeline.SellerID `json:"id"`
	Name string             `json:"name"`
	Role storeline.Role     `json:"role"`
}

func (s *Server) getSellers(w http.ResponseWriter, r *http.Request, _ *caller) error {
	out := []sellerOut{}
	err := s.led.ScanMaster(storeline.KindSeller, "", func(rec storeline.Record) error {
		if sel, ok := rec.(*storeline.Seller); ok && sel.WorksAt(s.cfg.Store) {
			out = append(out, sellerOut{ID: sel.ID, Name: sel.Name, Role: sel.Role})
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sellers": out})
	return nil
}

type messageOut struct {
	ID    storeline.MessageID `json:"id"`
	Text  string              `json:"text"`
	From  string              `json:"from"`
	Until string              `json:"until,omitempty"`
}

func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, _ *caller) error {
	now := s.cfg.Now()
	out := []messageOut{}
	err := s.led.ScanMaster(storeline.KindMessage, "", func(rec storeline.Record) error {
		if m, ok := rec.(*storeline.Message); ok && m.For(s.cfg.Store, now) {
			mo := messageOut{ID: m.ID, Text: m.Text, From: m.From.UTC().Format(timeFormat)}
			if !m.Until.IsZero() {
				mo.Until = m.Until.UTC().Format(timeFormat)
			}
			out = append(out, mo)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

package storeline

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// MasterKind names a kind of master data. Kinds are stored and cross the
// wire, so a kind is never renamed.
type MasterKind string

// The kinds of master data, authored at head office (a customer and a card
// may also be registered at a till).
const (
	KindStore         MasterKind = "store"
	KindGroup         MasterKind = "group"
	KindItem          MasterKind = "item"
	KindPriceList     MasterKind = "price_list"
	KindPrice         MasterKind = "price"
	KindCustomerGroup MasterKind = "customer_group"
	KindCustomer      MasterKind = "customer"
	KindCard          MasterKind = "card"
	KindSeller        MasterKind = "seller"
	KindTerminal      MasterKind = "terminal"
	KindMessage       MasterKind = "message"
	KindSupplier      MasterKind = "supplier"
)

// The registries of registry.go.
const (
	KindBuyer          MasterKind = "buyer"
	KindManufacturer   MasterKind = "manufacturer"
	KindRepresentative MasterKind = "representative"
	KindBank           MasterKind = "bank"
)

// Pricing and loyalty rules (promotion.go, loyalty.go).
const (
	KindPricePolicy      MasterKind = "price_policy"
	KindPromotion        MasterKind = "promotion"
	KindLoyaltyProgramme MasterKind = "loyalty_programme"
)

// MasterKinds lists every kind, in the order an import applies them
// (referenced before referencing).
var MasterKinds = []MasterKind{
	KindStore, KindGroup, KindSupplier, KindItem, KindPriceList, KindPrice,
	KindCustomerGroup, KindCustomer, KindCard, KindSeller, KindTerminal, KindMessage,
	KindBuyer, KindManufacturer, KindRepresentative, KindBank,
	KindPricePolicy, KindPromotion, KindLoyaltyProgramme,
}

// Record is a master-data record. UniqueKeys are the record's unique
// attributes within its kind ("sku:A1", "barcode:04601234567893"); a store
// refuses a record whose unique key belongs to another record.
type Record interface {
	MasterKind() MasterKind
	MasterID() string
	UniqueKeys() []string
	Validate() error
}

// NewRecord returns a pointer to a zero record of kind k, for decoders.
func NewRecord(k MasterKind) (Record, error) {
	switch k {
	case KindStore:
		return &Store{}, nil
	case KindGroup:
		return &Group{}, nil
	case KindItem:
		return &Item{}, nil
	case KindPriceList:
		return &PriceList{}, nil
	case KindPrice:
		return &Price{}, nil
	case KindCustomerGroup:
		return &CustomerGroup{}, nil
	case KindCustomer:
		return &Customer{}, nil
	case KindCard:
		return &CardRecord{}, nil
	case KindSeller:
		return &Seller{}, nil
	case KindTerminal:
		return &Terminal{}, nil
	case KindMessage:
		return &Message{}, nil
	case KindSupplier:
		return &Supplier{}, nil
	case KindBuyer:
		return &Buyer{}, nil
	case KindManufacturer:
		return &Manufacturer{}, nil
	case KindRepresentative:
		return &Representative{}, nil
	case KindBank:
		return &Bank{}, nil
	case KindPricePolicy:
		return &PricePolicy{}, nil
	case KindPromotion:
		return &Promotion{}, nil
	case KindLoyaltyProgramme:
		return &LoyaltyProgramme{}, nil
	}
	return nil, Invalidf("kind", "unknown master-data kind %q", k)
}

// Store is a shop: its time zone, base currency, departments, and the
// ordered price lists that price its goods (the first list with an
// effective price for an item wins).
type Store struct {
	ID          StoreID
	Name        string
	TimeZone    string // IANA
	Currency    Currency
	Departments []Department
	PriceLists  []PriceListID
}

// Department is a section of a shop.
type Department struct {
	ID   DeptID
	Name string
}

func (*Store) MasterKind() MasterKind { return KindStore }
func (s *Store) MasterID() string     { return string(s.ID) }
func (s *Store) UniqueKeys() []string { return nil }

// Location loads the store's time zone.
func (s *Store) Location() (*time.Location, error) {
	if loc, ok := locations.Load(s.TimeZone); ok {
		return loc.(*time.Location), nil
	}
	if s.TimeZone == "Local" {
		// time.LoadLocation takes it for the machine's own zone: a node and
		// head office on machines set apart would date and price the same
		// receipt differently.
		return nil, Invalidf("time_zone", "%q is the machine's zone, not the shop's: give an IANA zone such as Europe/Riga", s.TimeZone)
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil, Invalidf("time_zone", "unknown time zone %q", s.TimeZone)
	}
	locations.Store(s.TimeZone, loc)
	return loc, nil
}

// locations caches time.LoadLocation, which reads the zone's file every
// time (a till's every request asks for its store's zone); a Location is
// safe to share. Zones a process meets are few.
var locations sync.Map // name → *time.Location

// HasDept reports whether the store has the department.
func (s *Store) HasDept(d DeptID) bool {
	for _, x := range s.Departments {
		if x.ID == d {
			return true
		}
	}
	return false
}

func (s *Store) Validate() error {
	if err := CheckID("id", string(s.ID)); err != nil {
		return err
	}
	if s.ID == Central {
		return Invalidf("id", "%q is reserved for head office", s.ID)
	}
	if _, err := s.Location(); err != nil {
		return err
	}
	if !s.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", s.Currency)
	}
	if len(s.Departments) == 0 {
		return Invalidf("departments", "a store has at least one department")
	}
	seen := map[DeptID]bool{}
	for i, d := range s.Departments {
		f := fmt.Sprintf("departments[%d].id", i)
		if err := CheckID(f, string(d.ID)); err != nil {
			return err
		}
		if seen[d.ID] {
			return Invalidf(f, "department %q listed twice", d.ID)
		}
		seen[d.ID] = true
	}
	for i, p := range s.PriceLists {
		if err := CheckID(fmt.Sprintf("price_lists[%d]", i), string(p)); err != nil {
			return err
		}
	}
	return nil
}

// Group is a group of goods; groups nest without limit through Parent.
type Group struct {
	ID     GroupID
	Name   string
	Parent GroupID `msgpack:",omitempty"`
}

func (*Group) MasterKind() MasterKind { return KindGroup }
func (g *Group) MasterID() string     { return string(g.ID) }
func (g *Group) UniqueKeys() []string { return nil }
func (g *Group) Validate() error {
	if err := CheckID("id", string(g.ID)); err != nil {
		return err
	}
	if g.Parent != "" {
		if err := CheckID("parent", string(g.Parent)); err != nil {
			return err
		}
		if g.Parent == g.ID {
			return Invalidf("parent", "a group cannot be its own parent")
		}
	}
	return nil
}

// Item is a good. Its ID never changes; SKU and barcodes are unique
// attributes that can.
type Item struct {
	ID            ItemID
	SKU           string
	Name          string
	Group         GroupID
	Dept          DeptID // the department it is sold from by default
	Unit          Unit
	VATRate       decimal.Decimal
	Weighed       bool
	Excise        bool
	Marked        bool
	ExpiryTracked bool
	Barcodes      []ItemBarcode
}

// ItemBarcode is a barcode of an item: Factor base units per scan (1 for
// the unit itself, 12 for a box of twelve). Code is the GTIN-14 form
// (see NormalizeGTIN).
type ItemBarcode struct {
	Code   string
	Factor decimal.Decimal
}

func (*Item) MasterKind() MasterKind { return KindItem }
func (it *Item) MasterID() string    { return string(it.ID) }
func (it *Item) UniqueKeys() []string {
	keys := make([]string, 0, 1+len(it.Barcodes))
	keys = append(keys, SKUKey(it.SKU))
	for _, b := range it.Barcodes {
		keys = append(keys, BarcodeKey(b.Code))
	}
	return keys
}

// SKUKey and BarcodeKey are the unique keys items are looked up by.
func SKUKey(sku string) string        { return "sku:" + sku }
func BarcodeKey(gtin14 string) string { return "barcode:" + gtin14 }

// Barcode returns the item's barcode with the given GTIN-14.
func (it *Item) Barcode(gtin14 string) (ItemBarcode, bool) {
	for _, b := range it.Barcodes {
		if b.Code == gtin14 {
			return b, true
		}
	}
	return ItemBarcode{}, false
}

func (it *Item) Validate() error {
	if err := CheckID("id", string(it.ID)); err != nil {
		return err
	}
	if it.SKU == "" || len(it.SKU) > 64 || strings.ContainsAny(it.SKU, "/ \t\n") {
		return Invalidf("sku", "SKU %q: 1-64 characters, no spaces or slashes", it.SKU)
	}
	if it.SKU == "." || it.SKU == ".." {
		// The tills look items up by GET /v1/items/{sku}: a router cleans
		// a "." or ".." path segment away, so no till could find it.
		return Invalidf("sku", "SKU %q: a dot or two alone cannot be a URL path segment", it.SKU)
	}
	if strings.TrimSpace(it.Name) == "" {
		return Invalidf("name", "an item needs a name")
	}
	if err := CheckID("group", string(it.Group)); err != nil {
		return err
	}
	if err := CheckID("dept", string(it.Dept)); err != nil {
		return err
	}
	if !it.Unit.Valid() {
		return Invalidf("unit", "unknown unit %q (pcs, kg, l, m)", it.Unit)
	}
	if it.Weighed && !it.Unit.Fractional() {
		return Invalidf("unit", "a weighed item needs a fractional unit, not %q", it.Unit)
	}
	var err error
	if it.VATRate, err = NormRate("vat_rate", it.VATRate); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range it.Barcodes {
		b := &it.Barcodes[i]
		f := fmt.Sprintf("barcodes[%d]", i)
		g, err := NormalizeGTIN(b.Code)
		if err != nil {
			return prefixField(f, err)
		}
		b.Code = g
		if seen[g] {
			return Invalidf(f+".code", "barcode %s listed twice", g)
		}
		seen[g] = true
		if b.Factor.IsZero() {
			b.Factor = decimal.NewFromInt(1)
		}
		if b.Factor, err = NormQty(f+".factor", b.Factor, it.Unit); err != nil {
			return err
		}
	}
	return nil
}

// PriceList is a named list of prices in one currency.
type PriceList struct {
	ID       PriceListID
	Name     string
	Currency Currency
}

func (*PriceList) MasterKind() MasterKind { return KindPriceList }
func (p *PriceList) MasterID() string     { return string(p.ID) }
func (p *PriceList) UniqueKeys() []string { return nil }
func (p *PriceList) Validate() error {
	if err := CheckID("id", string(p.ID)); err != nil {
		return err
	}
	if !p.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", p.Currency)
	}
	return nil
}

// Price is an item's price per base unit, VAT included, in a price list,
// effective from a moment on. A later From supersedes an earlier one.
// From is a wall-clock time in each shop's zone (see WallClock).
type Price struct {
	List  PriceListID
	Item  ItemID
	From  time.Time
	Price decimal.Decimal
}

func (*Price) MasterKind() MasterKind { return KindPrice }

// MasterID sorts a list's prices by item, then by time.
func (p *Price) MasterID() string {
	return PricePrefix(p.List, p.Item) + fmt.Sprintf("%016x", p.From.UnixMilli())
}

// PricePrefix is the ID prefix of every price of an item in a list.
func PricePrefix(l PriceListID, i ItemID) string { return string(l) + "/" + string(i) + "/" }

func (p *Price) UniqueKeys() []string { return nil }
func (p *Price) Validate() error {
	if err := CheckID("list", string(p.List)); err != nil {
		return err
	}
	if err := CheckID("item", string(p.Item)); err != nil {
		return err
	}
	if p.From.IsZero() || p.From.UnixMilli() < 0 {
		return Invalidf("from", "a price needs an effective time")
	}
	p.From = p.From.UTC().Truncate(time.Millisecond)
	if p.Price.IsNegative() {
		return Invalidf("price", "price %s is negative", p.Price)
	}
	if p.Price.Round(4).Cmp(p.Price) != 0 {
		return Invalidf("price", "price %s has more than 4 decimal places", p.Price)
	}
	return nil
}

// CustomerGroup groups customers for price policies; groups nest.
type CustomerGroup struct {
	ID     CustGroupID
	Name   string
	Parent CustGroupID `msgpack:",omitempty"`
}

func (*CustomerGroup) MasterKind() MasterKind { return KindCustomerGroup }
func (g *CustomerGroup) MasterID() string     { return string(g.ID) }
func (g *CustomerGroup) UniqueKeys() []string { return nil }
func (g *CustomerGroup) Validate() error {
	if err := CheckID("id", string(g.ID)); err != nil {
		return err
	}
	if g.Parent != "" {
		return CheckID("parent", string(g.Parent))
	}
	return nil
}

// Customer is a buyer known to the chain.
type Customer struct {
	ID    CustomerID
	Name  string
	Phone string      `msgpack:",omitempty"`
	Email string      `msgpack:",omitempty"`
	Group CustGroupID `msgpack:",omitempty"`
}

func (*Customer) MasterKind() MasterKind { return KindCustomer }
func (c *Customer) MasterID() string     { return string(c.ID) }
func (c *Customer) UniqueKeys() []string { return nil }
func (c *Customer) Validate() error {
	if err := CheckID("id", string(c.ID)); err != nil {
		return err
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 200 {
		return Invalidf("name", "a customer needs a name of at most 200 bytes")
	}
	if c.Group != "" {
		return CheckID("group", string(c.Group))
	}
	return nil
}

// CardKind says what a card identifies.
type CardKind string

// The card kinds.
const (
	LoyaltyCard CardKind = "loyalty"
	StaffCard   CardKind = "staff"
)

// CardRecord is an electronic identifier: a loyalty card of a customer or a
// staff card of a seller. Code is what the till scans.
type CardRecord struct {
	ID       CardID
	Code     string
	Kind     CardKind
	Customer CustomerID `msgpack:",omitempty"`
	Seller   SellerID   `msgpack:",omitempty"`
	Blocked  bool
}

func (*CardRecord) MasterKind() MasterKind { return KindCard }
func (c *CardRecord) MasterID() string     { return string(c.ID) }
func (c *CardRecord) UniqueKeys() []string { return []string{CardCodeKey(c.Code)} }

// CardCodeKey is the unique key cards are looked up by.
func CardCodeKey(code string) string { return "code:" + code }

func (c *CardRecord) Validate() error {
	if err := CheckID("id", string(c.ID)); err != nil {
		return err
	}
	if err := CheckCardCode("code", c.Code); err != nil {
		return err
	}
	switch c.Kind {
	case LoyaltyCard:
		return CheckID("customer", string(c.Customer))
	case StaffCard:
		return CheckID("seller", string(c.Seller))
	}
	return Invalidf("kind", "unknown card kind %q (loyalty, staff)", c.Kind)
}

// CheckCardCode checks a card code: 4 to 64 digits or capital letters.
func CheckCardCode(field, code string) error {
	if len(code) < 4 || len(code) > 64 {
		return Invalidf(field, "card code must be 4-64 characters")
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return Invalidf(field, "card code %q: digits and capital letters only", code)
		}
	}
	return nil
}

// Role decides what a seller may do at a till.
type Role string

// The roles.
const (
	Cashier Role = "cashier"
	Manager Role = "manager"
)

// Seller is a member of a shop's staff. PINHash is from HashPIN.
type Seller struct {
	ID      SellerID
	Name    string
	Role    Role
	PINHash string
	Stores  []StoreID // where they may work; empty means every shop
}

func (*Seller) MasterKind() MasterKind { return KindSeller }
func (s *Seller) MasterID() string     { return string(s.ID) }
func (s *Seller) UniqueKeys() []string { return nil }
func (s *Seller) Validate() error {
	if err := CheckID("id", string(s.ID)); err != nil {
		return err
	}
	if s.Role != Cashier && s.Role != Manager {
		return Invalidf("role", "unknown role %q (cashier, manager)", s.Role)
	}
	if !validPINHash(s.PINHash) {
		return Invalidf("pin_hash", "want a hash made by HashPIN")
	}
	return nil
}

// WorksAt reports whether the seller may work at the store.
func (s *Seller) WorksAt(store StoreID) bool {
	if len(s.Stores) == 0 {
		return true
	}
	for _, x := range s.Stores {
		if x == store {
			return true
		}
	}
	return false
}

// Terminal is a till of a shop. TokenHash is the SHA-256 (hex) of the
// terminal's bearer token; the token itself is never stored.
type Terminal struct {
	ID        TerminalID
	Store     StoreID
	Name      string
	TokenHash string
}

func (*Terminal) MasterKind() MasterKind { return KindTerminal }
func (t *Terminal) MasterID() string     { return string(t.ID) }
func (t *Terminal) UniqueKeys() []string { return []string{"token:" + t.TokenHash} }

// TerminalTokenKey is the unique key terminals are looked up by.
func TerminalTokenKey(tokenHash string) string { return "token:" + tokenHash }

func (t *Terminal) Validate() error {
	if err := CheckID("id", string(t.ID)); err != nil {
		return err
	}
	if err := CheckID("store", string(t.Store)); err != nil {
		return err
	}
	if len(t.TokenHash) != 64 {
		return Invalidf("token_hash", "want a hex SHA-256")
	}
	return nil
}

// Message is an information message for the tills of some shops.
type Message struct {
	ID     MessageID
	Text   string
	Stores []StoreID // empty means every shop
	From   time.Time
	Until  time.Time `msgpack:",omitempty"`
}

func (*Message) MasterKind() MasterKind { return KindMessage }
func (m *Message) MasterID() string     { return string(m.ID) }
func (m *Message) UniqueKeys() []string { return nil }
func (m *Message) Validate() error {
	if err := CheckID("id", string(m.ID)); err != nil {
		return err
	}
	if strings.TrimSpace(m.Text) == "" || len(m.Text) > 4096 {
		return Invalidf("text", "a message needs 1-4096 bytes of text")
	}
	if !m.Until.IsZero() && m.Until.Before(m.From) {
		return Invalidf("until", "until is before from")
	}
	return nil
}

// For reports whether the message is for the store at time t.
func (m *Message) For(store StoreID, t time.Time) bool {
	if t.Before(m.From) || (!m.Until.IsZero() && !t.Before(m.Until)) {
		return false
	}
	if len(m.Stores) == 0 {
		return true
	}
	for _, s := range m.Stores {
		if s == store {
			return true
		}
	}
	return false
}

// Supplier is a company goods are bought from.
type Supplier struct {
	ID    SupplierID
	Name  string
	TaxID string `msgpack:",omitempty"`
}

func (*Supplier) MasterKind() MasterKind { return KindSupplier }
func (s *Supplier) MasterID() string     { return string(s.ID) }
func (s *Supplier) UniqueKeys() []string { return nil }
func (s *Supplier) Validate() error {
	if err := CheckID("id", string(s.ID)); err != nil {
		return err
	}
	if strings.TrimSpace(s.Name) == "" {
		return Invalidf("name", "a supplier needs a name")
	}
	return nil
}

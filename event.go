package storeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// EventKind names the type of an event's body. Kinds are stored and cross
// the wire, so a kind is never renamed.
type EventKind string

// The event kinds a till or a shop authors.
const (
	KindReceipt            EventKind = "receipt"
	KindReturn             EventKind = "return"
	KindCash               EventKind = "cash"
	KindShiftOpen          EventKind = "shift_open"
	KindShiftClose         EventKind = "shift_close"
	KindDocumentDraft      EventKind = "document_draft"
	KindBasket             EventKind = "basket"
	KindCustomerRegistered EventKind = "customer_registered"
	// KindTransfer is an event authored elsewhere (head office) that moves
	// balances by its stored postings alone: stock delivered by a posted
	// document, loyalty rights granted to a shop. Its body says why.
	KindTransfer EventKind = "transfer"
	// KindPointsHandback is a shop handing a customer's loyalty rights
	// back to head office (loyalty.go).
	KindPointsHandback EventKind = "points_handback"
	// KindReservation holds goods at a shop for a customer, and
	// KindReservationEnd ends the hold (reservation.go).
	KindReservation    EventKind = "reservation"
	KindReservationEnd EventKind = "reservation_end"
)

// SchemaVersion is the version of event bodies this build writes. Stored
// events keep the version they were written with; old versions stay
// readable.
const SchemaVersion uint16 = 1

// Event is an immutable fact with its postings. ID is chosen by its author;
// idempotency is scoped to (Origin, ID). (Epoch, Seq) is its position in its
// origin's journal: Seq is dense within an epoch, and a shop restored from a
// backup starts a new, larger epoch.
type Event struct {
	ID            EventID
	Origin        StoreID
	Epoch         uint64
	Seq           uint64
	SchemaVersion uint16
	HLC           uint64 // a crdt.Timestamp: 48-bit ms, 16-bit logical
	OccurredAt    time.Time
	BusinessDate  Date
	Kind          EventKind
	Body          Body
	Postings      []Posting
}

// Body is the typed content of an event.
type Body interface {
	EventKind() EventKind
}

// NewBody returns a pointer to a zero body of the given kind, for decoders.
func NewBody(k EventKind) (Body, error) {
	switch k {
	case KindReceipt:
		return &Receipt{}, nil
	case KindReturn:
		return &Return{}, nil
	case KindCash:
		return &CashOp{}, nil
	case KindShiftOpen:
		return &ShiftOpen{}, nil
	case KindShiftClose:
		return &ShiftClose{}, nil
	case KindDocumentDraft:
		return &DocumentDraft{}, nil
	case KindBasket:
		return &Basket{}, nil
	case KindCustomerRegistered:
		return &CustomerRegistered{}, nil
	case KindTransfer:
		return &Transfer{}, nil
	case KindPointsHandback:
		return &PointsHandback{}, nil
	case KindReservation:
		return &Reservation{}, nil
	case KindReservationEnd:
		return &ReservationEnd{}, nil
	}
	return nil, Errorf(Invalid, "storeline.NewBody", "unknown event kind %q", k)
}

// Poster is a body whose postings are derived from the body alone.
// Derivation happens once, where the event is authored; replicas apply the
// stored postings and never call this.
type Poster interface {
	Postings(origin StoreID) ([]Posting, error)
}

// EventPoster is a body whose postings name its own event (a
// reservation's account is the reservation).
type EventPoster interface {
	PostingsOf(origin StoreID, id EventID) ([]Posting, error)
}

// DerivePostings returns the postings of a body authored at origin: nil for
// bodies that move nothing (a basket, a document draft). A body whose
// postings name its event (an EventPoster) needs DeriveEventPostings.
func DerivePostings(origin StoreID, b Body) ([]Posting, error) {
	return DeriveEventPostings(origin, EventID{}, b)
}

// DeriveEventPostings returns the postings of the body of event id,
// authored at origin.
func DeriveEventPostings(origin StoreID, id EventID, b Body) ([]Posting, error) {
	var ps []Posting
	var err error
	switch p := b.(type) {
	case Poster:
		ps, err = p.Postings(origin)
	case EventPoster:
		ps, err = p.PostingsOf(origin, id)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ps = MergePostings(ps)
	if err := CheckPostings(ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// Asset names what a balance counts: an item's base units
// ("item:<id>"), a currency ("cur:EUR"), a loyalty programme's points
// ("pts:<programme>").
type Asset string

// Assets.
func ItemAsset(id ItemID) Asset       { return Asset("item:" + string(id)) }
func MoneyAsset(c Currency) Asset     { return Asset("cur:" + string(c)) }
func PointsAsset(p ProgrammeID) Asset { return Asset("pts:" + string(p)) }
func (a Asset) String() string        { return string(a) }
func (a Asset) IsMoney() bool         { return strings.HasPrefix(string(a), "cur:") }
func (a Asset) Currency() (Currency, bool) {
	c, ok := strings.CutPrefix(string(a), "cur:")
	return Currency(c), ok
}

// Posting is one leg of a double entry: Amount (positive = debit, negative
// = credit) of Asset on Account. Accounts are slash-separated paths of IDs,
// so a prefix selects a subtree ("stock/<store>/").
type Posting struct {
	Account string
	Asset   Asset
	Amount  decimal.Decimal
}

func (p Posting) String() string {
	return fmt.Sprintf("%s %s %s", p.Account, p.Amount.String(), p.Asset)
}

// Accounts. Each helper builds the path DESIGN.md names.
func StockAccount(s StoreID, d DeptID, i ItemID) string {
	return "stock/" + string(s) + "/" + string(d) + "/" + string(i)
}
func SoldAccount(s StoreID, i ItemID) string { return "sold/" + string(s) + "/" + string(i) }
func RevenueAccount(s StoreID) string        { return "revenue/" + string(s) }
func VATAccount(s StoreID, rate decimal.Decimal) string {
	return "vat/" + string(s) + "/" + rate.String()
}
func CashAccount(s StoreID, t TerminalID) string { return "cash/" + string(s) + "/" + string(t) }
func CardAccount(s StoreID, t TerminalID) string { return "card/" + string(s) + "/" + string(t) }

// SafeAccount is the shop's cash outside the drawers: where opening floats
// come from and cash taken out goes.
func SafeAccount(s StoreID) string { return "safe/" + string(s) }

// MergePostings adds up postings to the same (account, asset), drops zero
// sums and sorts the result, so equal effects have equal postings.
func MergePostings(ps []Posting) []Posting {
	// Sorted first, equal keys are neighbours: one pass sums them, where
	// looking each posting up among the earlier ones compared every pair.
	// Sums run on int64s while they fit (fastdec.go), in decimals after;
	// a lone posting keeps its own decimal. A decimal sum is exact, so
	// its value and exponent do not depend on the order of its addends.
	out := slices.Clone(ps)
	sortPostings(out)
	n := 0
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].Account == out[i].Account && out[j].Asset == out[i].Asset {
			j++
		}
		p := out[i]
		if j > i+1 {
			sum := newAmountSum(p.Amount)
			for _, q := range out[i+1 : j] {
				sum.add(q.Amount)
			}
			if sum.isZero() {
				i = j
				continue
			}
			p.Amount = sum.sum()
		} else if p.Amount.IsZero() {
			i = j
			continue
		}
		out[n] = p
		n++
		i = j
	}
	clear(out[n:]) // drop the strings and decimals past the end
	return out[:n]
}

// sortPostings sorts ps with comparePostings: by insertion when short,
// which costs one comparison per posting already in place (a sale's
// postings come nearly sorted, salePostings).
func sortPostings(ps []Posting) {
	if len(ps) > linearMax {
		slices.SortFunc(ps, comparePostings)
		return
	}
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && comparePostings(ps[j-1], ps[j]) > 0; j-- {
			ps[j-1], ps[j] = ps[j], ps[j-1]
		}
	}
}

// comparePostings orders postings by asset, then account.
func comparePostings(a, b Posting) int {
	if c := strings.Compare(string(a.Asset), string(b.Asset)); c != 0 {
		return c
	}
	return strings.Compare(a.Account, b.Account)
}

// linearMax is the length up to which a linear search beats a map, and
// an insertion sort a general one.
const linearMax = 32

// amountSum is a running decimal sum that stays on int64s while it can.
// The zero amountSum is an empty sum.
type amountSum struct {
	d    decimal.Decimal // the sum when !fast; the lone addend when n == 1 and hasD
	x    fx              // the sum while fast
	fast bool
	hasD bool
	n    int
}

// newAmountSum holds d alone, as it is: most sums of a merge or a
// balance have one addend, and its int64 form (toFx, whose digit count
// is a tenth of a posting's derivation) is made only when a second one
// comes.
func newAmountSum(d decimal.Decimal) amountSum {
	return amountSum{d: d, hasD: true, n: 1}
}

func (s *amountSum) add(d decimal.Decimal) {
	if s.n == 0 {
		*s = newAmountSum(d)
		return
	}
	if s.n == 1 && s.hasD && !s.fast {
		s.x, s.fast = toFx(s.d)
	}
	s.n++
	if s.fast {
		if y, ok := toFx(d); ok {
			if z, ok := s.x.add(y); ok {
				s.x = z
				return
			}
		}
		s.fast, s.d = false, s.x.dec()
	}
	s.d = s.d.Add(d)
}

// addFx adds x, without making a decimal of it while the sum fits.
func (s *amountSum) addFx(x fx) {
	if s.n == 0 {
		*s = amountSum{x: x, fast: true, n: 1}
		return
	}
	if s.fast {
		if z, ok := s.x.add(x); ok {
			s.n++
			s.x = z
			return
		}
	}
	s.add(x.dec())
}

func (s *amountSum) isZero() bool {
	if s.fast {
		return s.x.c == 0
	}
	return s.d.IsZero()
}

func (s *amountSum) sum() decimal.Decimal {
	if !s.fast || s.n == 1 && s.hasD {
		return s.d
	}
	return s.x.dec()
}

// CheckPostings returns an error unless, for every asset, the postings sum
// to zero and every account is well formed.
func CheckPostings(ps []Posting) error {
	type assetSum struct {
		asset Asset
		sum   amountSum
	}
	var buf [8]assetSum
	sums := buf[:0]
	var index map[Asset]int
	if len(ps) > linearMax {
		index = make(map[Asset]int)
	}
	for _, p := range ps {
		if p.Account == "" || strings.Contains(p.Account, "//") || strings.HasSuffix(p.Account, "/") {
			return Errorf(Invalid, "storeline.CheckPostings", "malformed account %q", p.Account)
		}
		if p.Asset == "" {
			return Errorf(Invalid, "storeline.CheckPostings", "posting to %s has no asset", p.Account)
		}
		j := -1
		if index != nil {
			if i, ok := index[p.Asset]; ok {
				j = i
			}
		} else {
			// From the last: merged postings come sorted by asset, so
			// the first comparison finds it.
			for i := len(sums) - 1; i >= 0; i-- {
				if sums[i].asset == p.Asset {
					j = i
					break
				}
			}
		}
		if j >= 0 {
			sums[j].sum.add(p.Amount)
			continue
		}
		if index != nil {
			index[p.Asset] = len(sums)
		}
		sums = append(sums, assetSum{p.Asset, newAmountSum(p.Amount)})
	}
	for _, s := range sums {
		if !s.sum.isZero() {
			return Errorf(Invalid, "storeline.CheckPostings", "postings of %s sum to %s, want 0", s.asset, s.sum.sum())
		}
	}
	return nil
}

// The years an event's time and business date may fall in. Reports select
// a shop's sales by business date, so a date outside them (a till's clock
// reset, a year typed as 0001 or 9999) would drop the sale out of every
// period a head office asks about.
const (
	minEventYear = 2000
	maxEventYear = 2099
)

// CheckFromShop checks what head office takes on trust from a shop's event
// without decoding its body: a business date that is a calendar date
// (YYYY-MM-DD) of a plausible year, a time of such a year, amounts no
// finer than their asset's unit (a currency's minor unit, QtyScale of an
// item, whole points), and units moving the way its kind moves them (a
// sale takes units out of stock, a return puts them back). It returns an
// Invalid error naming the field. Every rule is one the shop's own checks
// (Compute, Validate, DateOf) already keep, so a shop's valid event always
// passes; an event authored by head office (a Transfer at cost) is not
// checked here.
func (ev *Event) CheckFromShop() error {
	if err := CheckEventTime("occurred_at", ev.OccurredAt); err != nil {
		return err
	}
	d, err := time.Parse(time.DateOnly, string(ev.BusinessDate))
	if err != nil {
		return Invalidf("business_date", "business date %q: want YYYY-MM-DD", ev.BusinessDate)
	}
	if y := d.Year(); y < minEventYear || y > maxEventYear {
		return Invalidf("business_date", "business date %s: want a year in %d-%d", ev.BusinessDate, minEventYear, maxEventYear)
	}
	hold := ev.Kind == KindReservation || ev.Kind == KindReservationEnd
	for j, p := range ev.Postings {
		field := fmt.Sprintf("postings[%d].amount", j)
		if err := checkPostingUnit(field, p); err != nil {
			return err
		}
		if hold != holdsOnly(ev.Origin, p) {
			if hold {
				return Invalidf(fmt.Sprintf("postings[%d].account", j), "a %s moves only its shop's reserved and reservation accounts of goods, not %s of %s", ev.Kind, p.Asset, p.Account)
			}
			if isHoldAccount(p.Account) {
				return Invalidf(fmt.Sprintf("postings[%d].account", j), "only a reservation or its end moves %s", p.Account)
			}
		}
		if !strings.HasPrefix(p.Account, "stock/") || !strings.HasPrefix(string(p.Asset), "item:") {
			continue
		}
		if ev.Kind == KindReceipt && p.Amount.IsPositive() || ev.Kind == KindReturn && p.Amount.IsNegative() {
			return Invalidf(field, "a %s moves %s of %s on %s", ev.Kind, p.Amount, p.Asset, p.Account)
		}
	}
	return nil
}

// holdsOnly reports whether p is a posting a reservation of origin makes
// (reservation.go): units of an item on origin's memo accounts, the
// item's own (reserved/<origin>/<item>) or a reservation's
// (reservation/<origin>/<event ID>); never stock.
func holdsOnly(origin StoreID, p Posting) bool {
	item, isItem := strings.CutPrefix(string(p.Asset), "item:")
	if !isItem {
		return false
	}
	if rest, ok := strings.CutPrefix(p.Account, "reserved/"); ok {
		return rest == string(origin)+"/"+item
	}
	rest, ok := strings.CutPrefix(p.Account, "reservation/")
	if !ok {
		return false
	}
	store, id, _ := strings.Cut(rest, "/")
	_, err := ParseEventID(id)
	return store == string(origin) && err == nil
}

// isHoldAccount reports whether account is a reservation's memo account.
func isHoldAccount(account string) bool {
	return strings.HasPrefix(account, "reserved/") || strings.HasPrefix(account, "reservation/")
}

// CheckEventTime refuses a time no shop's event happens at (outside the
// years minEventYear-maxEventYear): a till's clock reset to 1970, a year
// typed as 0001. The tills' API checks it as CheckFromShop will at head
// office, so the shop never keeps a sale head office would reject.
func CheckEventTime(field string, t time.Time) error {
	if y := t.UTC().Year(); y < minEventYear || y > maxEventYear {
		return Invalidf(field, "%s is not a time a shop's event happened at (years %d-%d)",
			t.UTC().Format(time.RFC3339), minEventYear, maxEventYear)
	}
	return nil
}

// checkPostingUnit refuses an amount finer than its asset's unit.
func checkPostingUnit(field string, p Posting) error {
	switch {
	case p.Asset.IsMoney():
		cur, _ := p.Asset.Currency()
		if !cur.Valid() {
			return Invalidf(field, "%s is not money of an ISO 4217 currency", p.Asset)
		}
		_, err := cur.Amount(field, p.Amount)
		return err
	case strings.HasPrefix(string(p.Asset), "item:"):
		if _, exact := normScale(p.Amount, QtyScale); !exact {
			return Invalidf(field, "quantity %s has more than %d decimal places", p.Amount, QtyScale)
		}
	case strings.HasPrefix(string(p.Asset), "pts:"):
		if !p.Amount.IsInteger() {
			return Invalidf(field, "%s points are not whole", p.Amount)
		}
	}
	return nil
}

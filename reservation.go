package storeline

import "fmt"

// Reservations of goods. A shop holds goods for a customer until a date:
// a Reservation event, made at a till, and one ReservationEnd when the
// customer collects them (a receipt sells them), the shop releases them,
// or the date passes (the shop's node lapses it). Neither moves stock: the
// goods stay on the shelf, and a sale is never refused for them. They move
// two memo accounts instead, so the shop's balances (and head office's,
// which apply the same postings) answer what is held without a scan:
//
//	reserved/<store>/<item>       units of the item held at the store
//	reservation/<store>/<id>      units still held by one reservation (credit)
//
// Every asset of them sums to zero like any other, a reservation's own
// account is zero once it ended, and an end gives back exactly what the
// reservation's account holds. Each reservation has exactly one end, whose
// ID is derived from the reservation's (ReservationEndID), so two tills
// ending it at once (one collecting, one releasing) cannot both succeed:
// the ledger's idempotency by ID answers the second with a Conflict.

// MaxReservationDays bounds how long after its business date a
// reservation may hold goods.
const MaxReservationDays = 30

// Reservation is goods held at a shop for a customer (named by a customer
// ID, a card, or a contact the shop can call) until the end of business
// date Until.
type Reservation struct {
	Terminal TerminalID
	Seller   SellerID
	Customer CustomerID `msgpack:",omitempty"`
	Card     string     `msgpack:",omitempty"`
	Contact  string     `msgpack:",omitempty"`
	Note     string     `msgpack:",omitempty"`
	Until    Date
	Lines    []BasketLine
}

func (*Reservation) EventKind() EventKind { return KindReservation }

// maxReservationText bounds a contact or note: what fits on a slip.
const maxReservationText = 200

// Validate checks the reservation on its own; the shop checks Until
// against the business date and the quantities against what it has.
func (r *Reservation) Validate() error {
	if err := CheckID("terminal", string(r.Terminal)); err != nil {
		return err
	}
	if err := CheckID("seller", string(r.Seller)); err != nil {
		return err
	}
	if r.Customer != "" {
		if err := CheckID("customer", string(r.Customer)); err != nil {
			return err
		}
	}
	if r.Card != "" {
		if err := CheckCardCode("card", r.Card); err != nil {
			return err
		}
	}
	if len(r.Contact) > maxReservationText {
		return Invalidf("contact", "at most %d bytes", maxReservationText)
	}
	if len(r.Note) > maxReservationText {
		return Invalidf("note", "at most %d bytes", maxReservationText)
	}
	if r.Customer == "" && r.Card == "" && r.Contact == "" {
		return Invalidf("contact", "a reservation is held for someone: give customer, card or contact")
	}
	if _, err := ParseDate("until", string(r.Until)); err != nil {
		return err
	}
	return checkHeldLines(r.Lines)
}

// PostingsOf holds the lines' units: reserved at the store, owed by the
// reservation's own account.
func (r *Reservation) PostingsOf(store StoreID, id EventID) ([]Posting, error) {
	if id.IsZero() {
		return nil, Invalidf("id", "a reservation's postings name its event: no ID given")
	}
	if err := checkHeldLines(r.Lines); err != nil {
		return nil, err
	}
	return holdPostings(store, id, r.Lines, false), nil
}

// ReservationOutcome is how a reservation ended.
type ReservationOutcome string

// Outcomes.
const (
	ReservationCollected ReservationOutcome = "collected" // sold to the customer (Receipt)
	ReservationReleased  ReservationOutcome = "released"  // given back by the shop
	ReservationLapsed    ReservationOutcome = "lapsed"    // its Until passed
)

// Valid reports whether o is one of the outcomes.
func (o ReservationOutcome) Valid() bool {
	switch o {
	case ReservationCollected, ReservationReleased, ReservationLapsed:
		return true
	}
	return false
}

// ReservationEnd ends a reservation, giving back Lines: what its account
// held (all of it; a reservation is never ended in part).
type ReservationEnd struct {
	Reservation EventID
	Outcome     ReservationOutcome
	Receipt     EventID    `msgpack:",omitempty"` // the sale that collected it
	Terminal    TerminalID `msgpack:",omitempty"` // none when the node lapsed it
	Seller      SellerID   `msgpack:",omitempty"`
	Reason      string     `msgpack:",omitempty"`
	Lines       []BasketLine
}

func (*ReservationEnd) EventKind() EventKind { return KindReservationEnd }

// Validate checks the end on its own.
func (e *ReservationEnd) Validate() error {
	if e.Reservation.IsZero() {
		return Invalidf("reservation", "the reservation ended is required")
	}
	if !e.Outcome.Valid() {
		return Invalidf("outcome", "%q is not collected, released or lapsed", e.Outcome)
	}
	switch {
	case e.Outcome == ReservationCollected:
		if e.Receipt.IsZero() {
			return Invalidf("receipt", "a collected reservation names the receipt that sold it")
		}
	case !e.Receipt.IsZero():
		return Invalidf("receipt", "only a collected reservation names a receipt")
	}
	if e.Outcome != ReservationLapsed {
		if err := CheckID("terminal", string(e.Terminal)); err != nil {
			return err
		}
		if err := CheckID("seller", string(e.Seller)); err != nil {
			return err
		}
	}
	if len(e.Reason) > maxReservationText {
		return Invalidf("reason", "at most %d bytes", maxReservationText)
	}
	return checkHeldLines(e.Lines)
}

// Postings give the lines' units back: the reverse of the reservation's.
func (e *ReservationEnd) Postings(store StoreID) ([]Posting, error) {
	if e.Reservation.IsZero() {
		return nil, Invalidf("reservation", "the reservation ended is required")
	}
	if err := checkHeldLines(e.Lines); err != nil {
		return nil, err
	}
	return holdPostings(store, e.Reservation, e.Lines, true), nil
}

// ReservationEndID is the ID of the one end of reservation id.
func ReservationEndID(id EventID) EventID {
	return DerivedEventID("reservation-end/" + id.String())
}

// ReservedAccount holds the units of item i reserved at store s.
func ReservedAccount(s StoreID, i ItemID) string {
	return "reserved/" + string(s) + "/" + string(i)
}

// ReservationAccount owes the units reservation id still holds at store s.
func ReservationAccount(s StoreID, id EventID) string {
	return "reservation/" + string(s) + "/" + id.String()
}

// ReservationAccountPrefix selects every reservation's account at store s.
func ReservationAccountPrefix(s StoreID) string { return "reservation/" + string(s) + "/" }

func holdPostings(store StoreID, id EventID, lines []BasketLine, giveBack bool) []Posting {
	ps := make([]Posting, 0, 2*len(lines))
	for _, l := range lines {
		q := l.Qty
		if giveBack {
			q = q.Neg()
		}
		a := ItemAsset(l.Item)
		ps = append(ps,
			Posting{Account: ReservedAccount(store, l.Item), Asset: a, Amount: q},
			Posting{Account: ReservationAccount(store, id), Asset: a, Amount: q.Neg()})
	}
	return ps
}

func checkHeldLines(lines []BasketLine) error {
	if len(lines) == 0 {
		return Invalidf("lines", "at least one line is required")
	}
	for i := range lines {
		l := &lines[i]
		f := fmt.Sprintf("lines[%d]", i)
		if err := CheckID(f+".item", string(l.Item)); err != nil {
			return err
		}
		var err error
		if l.Qty, err = NormQty(f+".qty", l.Qty, l.Unit); err != nil {
			return err
		}
	}
	return nil
}

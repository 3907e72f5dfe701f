package posbridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Reservations of goods (reservation.go in the module root): a till holds
// goods for a customer until a date, and collects (a receipt sold them),
// releases, or the node lapses them. They never move stock and a sale is
// never refused for them; what a new reservation may hold is what is on
// hand less what other reservations hold, checked and appended under one
// lock (Server.reserving) so two tills reserving the last units cannot
// both succeed. An end has the ID ReservationEndID derives, so a second,
// different end of the same reservation is the ledger's Conflict.

// Reservation statuses as the API answers them, and the outcomes
// storeline_reservations_total counts besides the ends'.
const (
	reservationActive  = "active"
	reservationMade    = "made"
	reservationRefused = "refused"
	// Default and largest page of GET /v1/reservations.
	defaultReservationPage = 100
	maxReservationPage     = 1000
)

type reservationIn struct {
	ID         storeline.EventID    `json:"id"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Seller     storeline.SellerID   `json:"seller,omitempty"`
	Customer   storeline.CustomerID `json:"customer,omitempty"`
	Card       string               `json:"card,omitempty"`
	Contact    string               `json:"contact,omitempty"`
	Note       string               `json:"note,omitempty"`
	Until      string               `json:"until"`
	Lines      []basketLineIn       `json:"lines"`
}

type reservationLineOut struct {
	Item storeline.ItemID `json:"item"`
	SKU  string           `json:"sku,omitempty"` // none once the item is deleted
	Unit storeline.Unit   `json:"unit"`
	Qty  string           `json:"qty"`
}

type reservationOut struct {
	eventHead
	Terminal storeline.TerminalID `json:"terminal"`
	Seller   storeline.SellerID   `json:"seller"`
	Customer storeline.CustomerID `json:"customer,omitempty"`
	Card     string               `json:"card,omitempty"`
	Contact  string               `json:"contact,omitempty"`
	Note     string               `json:"note,omitempty"`
	Until    storeline.Date       `json:"until"`
	Status   string               `json:"status"`
	Lines    []reservationLineOut `json:"lines"`
	// The end, once there is one.
	Outcome       storeline.ReservationOutcome `json:"outcome,omitempty"`
	Receipt       *storeline.EventID           `json:"receipt,omitempty"`
	Reason        string                       `json:"reason,omitempty"`
	EndedAt       string                       `json:"ended_at,omitempty"`
	EndedTerminal storeline.TerminalID         `json:"ended_terminal,omitempty"`
}

type reservationListOut struct {
	Reservations []reservationOut `json:"reservations"`
	Next         string           `json:"next,omitempty"` // none on the last page
}

// reservationCursor is where a page of GET /v1/reservations ends, in the
// list's order (until, then id): "until/id". A reservation's until never
// changes, so a cursor stays where it was however many end meanwhile; one
// made since with an earlier until, or an earlier id of its date, is on
// a page the walk has passed.
type reservationCursor struct {
	until storeline.Date
	id    string // canonical form, as the list compares them
}

func (c reservationCursor) String() string { return string(c.until) + "/" + c.id }

func cursorOf(v reservationOut) reservationCursor {
	return reservationCursor{until: v.Until, id: v.ID.String()}
}

// before reports whether c comes before d in the list's order.
func (c reservationCursor) before(d reservationCursor) bool {
	if c.until != d.until {
		return c.until < d.until
	}
	return c.id < d.id
}

func parseReservationCursor(v string) (reservationCursor, error) {
	until, id, ok := strings.Cut(v, "/")
	if !ok {
		return reservationCursor{}, storeline.Invalidf("after", "%.80q is not a cursor: want the next of a page (until/id)", v)
	}
	if _, err := storeline.ParseDate("after", until); err != nil {
		return reservationCursor{}, err
	}
	eid, err := storeline.ParseEventID(id)
	if err != nil {
		return reservationCursor{}, storeline.Invalidf("after", "%v", err)
	}
	return reservationCursor{until: storeline.Date(until), id: eid.String()}, nil
}

// sellerOrSession is the fact's seller: the one the till named, else the
// session's (a reservation's seller is whoever serves the customer).
func sellerOrSession(c *caller, seller storeline.SellerID) storeline.SellerID {
	if seller == "" && c.session != nil {
		return c.session.seller
	}
	return seller
}

func (s *Server) postReservation(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in reservationIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	ls := make([]lineIn, len(in.Lines))
	for i, l := range in.Lines {
		ls[i] = lineIn{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty}
	}
	// A retry is answered from the stored reservation, compared by what
	// the till sent, before the catalogue, the stock or the session's
	// rights are read: the goods it holds count as reserved now.
	prior, err := s.prior(in.ID, storeline.KindReservation)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.reservationRetry(w, &in, ls, prior)
	}
	seller := sellerOrSession(c, in.Seller)
	if err := s.mayPost(c, seller); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	until, err := storeline.ParseDate("until", in.Until)
	if err != nil {
		return err
	}
	today := storeline.DateOf(*in.OccurredAt, loc)
	// The hold's bound counts from the node's date when the till's clock
	// runs ahead of it: retention ages the journal by the node's clock,
	// and MaxReservationDays keeps a hold inside it (node/reservations.go).
	if last := addDays(min(today, storeline.DateOf(s.cfg.Now(), loc)), s.cfg.MaxReservationDays); until < today || until > last {
		return storeline.Invalidf("until", "a reservation made on %s holds goods until a date from %s to %s", today, today, last)
	}
	if in.Card != "" {
		if err := s.knownCard(in.Card); err != nil {
			return err
		}
	}
	lines, err := s.resolveBasketLines(st, ls)
	if err != nil {
		return err
	}
	res := &storeline.Reservation{
		Terminal: in.Terminal, Seller: seller, Customer: in.Customer, Card: in.Card,
		Contact: in.Contact, Note: in.Note, Until: until, Lines: lines,
	}
	if err := res.Validate(); err != nil {
		return err
	}
	ev, ok, err := s.reserve(r.Context(), &in, today, res)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindReservation); perr == nil && prior != nil {
			return s.reservationRetry(w, &in, ls, prior)
		}
	}
	if err != nil {
		return err
	}
	out, err := s.reservationView(ev, res)
	if err != nil {
		return err
	}
	writeJSON(w, created(ok), out)
	return nil
}

// reserve checks that every item of res is available (on hand less what
// other reservations hold) and appends it, under the lock that makes the
// two one step among reservations. Receipts never take it: a sale is
// never refused for reserved goods, it only makes fewer available.
func (s *Server) reserve(ctx context.Context, in *reservationIn, date storeline.Date, res *storeline.Reservation) (storeline.Event, bool, error) {
	s.reserving.Lock()
	defer s.reserving.Unlock()
	// A retry that read its ID as not stored while its first try was
	// being appended waits for that append here. It is a retry (the
	// caller answers a Conflict from the stored reservation), never
	// checked against the goods its first try holds.
	prior, err := s.prior(in.ID, storeline.KindReservation)
	if err == nil && prior != nil {
		err = &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("reservation %s was stored meanwhile", in.ID)}
	}
	if err != nil {
		return storeline.Event{}, false, err
	}
	want := map[storeline.ItemID]decimal.Decimal{}
	for i, l := range res.Lines {
		want[l.Item] = want[l.Item].Add(l.Qty)
		onHand, reserved, err := s.stockOf(l.Item)
		if err != nil {
			return storeline.Event{}, false, err
		}
		avail := onHand.Sub(reserved)
		if want[l.Item].GreaterThan(avail) {
			s.m.reservations.WithLabelValues(reservationRefused).Inc()
			return storeline.Event{}, false, storeline.Invalidf(fmt.Sprintf("lines[%d].qty", i),
				"reserving %s of %s in all, but only %s is available (on hand %s, reserved %s)",
				want[l.Item], l.Item, qtyStr(decimal.Max(avail, decimal.Zero)), qtyStr(onHand), qtyStr(reserved))
		}
	}
	// Not cancelled with the till's request: the lock is released only
	// once the append's outcome is known.
	ev, ok, err := s.appendEvent(context.WithoutCancel(ctx), in.ID, *in.OccurredAt, date, res)
	if err == nil && ok {
		s.m.reservations.WithLabelValues(reservationMade).Inc()
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	return ev, ok, err
}

// stockOf is the item's units on hand at this store (over every
// department, as GET /v1/stock has it) and those reservations hold.
func (s *Server) stockOf(item storeline.ItemID) (onHand, reserved decimal.Decimal, err error) {
	asset := storeline.ItemAsset(item)
	err = s.led.BalancesAcross("stock/"+string(s.cfg.Store)+"/", "/"+string(item), asset, func(_ string, q decimal.Decimal) {
		onHand = onHand.Add(q)
	})
	if err != nil {
		return onHand, reserved, err
	}
	reserved, err = s.led.Balance(storeline.ReservedAccount(s.cfg.Store, item), asset)
	return onHand, reserved, err
}

// knownCard refuses a card head office has not issued (404) or has
// blocked (422): a reservation names its customer to call them, so a
// card scanned offline and not yet known names nobody.
func (s *Server) knownCard(code string) error {
	if err := storeline.CheckCardCode("card", code); err != nil {
		return err
	}
	var card storeline.CardRecord
	err := s.led.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card)
	switch {
	case errors.Is(err, storeline.NotFound):
		return &storeline.Error{Kind: storeline.NotFound, Field: "card", Err: fmt.Errorf("no card %s is known here", code)}
	case err != nil:
		return err
	case card.Blocked:
		return storeline.Invalidf("card", "card %s is blocked", code)
	}
	return nil
}

// reservationRetry answers a reservation whose ID is stored as prior: the
// stored reservation if the till sent the same, else a conflict. An
// omitted seller is the session's, whoever that is now, so it is not
// compared; the rest is compared as a basket's (basketDiff).
func (s *Server) reservationRetry(w http.ResponseWriter, in *reservationIn, ls []lineIn, prior *storeline.Event) error {
	p := prior.Body.(*storeline.Reservation)
	f := ""
	switch {
	case in.Terminal != p.Terminal:
		f = "terminal"
	case in.Contact != p.Contact:
		f = "contact"
	case in.Until != string(p.Until):
		f = "until"
	}
	if f == "" {
		seller := in.Seller
		if seller == "" {
			seller = p.Seller
		}
		asBasket := basketIn{ID: in.ID, OccurredAt: in.OccurredAt, Terminal: in.Terminal, Seller: seller, Customer: in.Customer, Card: in.Card, Note: in.Note}
		ev := *prior
		ev.Body = &storeline.Basket{Terminal: p.Terminal, Seller: p.Seller, Customer: p.Customer, Card: p.Card, Note: p.Note, Lines: p.Lines}
		var err error
		if f, err = s.basketDiff(&asBasket, ls, &ev); err != nil {
			return err
		}
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("reservation %s is stored with another %s", in.ID, f)}
	}
	out, err := s.reservationView(*prior, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// reservationView is the stored reservation with its status: active, or
// how its one end (by ReservationEndID) ended it.
func (s *Server) reservationView(ev storeline.Event, res *storeline.Reservation) (reservationOut, error) {
	out := reservationOut{
		eventHead: headOf(ev), Terminal: res.Terminal, Seller: res.Seller, Customer: res.Customer, Card: res.Card,
		Contact: res.Contact, Note: res.Note, Until: res.Until, Status: reservationActive, Lines: []reservationLineOut{},
	}
	for _, l := range res.Lines {
		lo := reservationLineOut{Item: l.Item, Unit: l.Unit, Qty: qtyStr(l.Qty)}
		var it storeline.Item
		if err := s.led.GetMaster(storeline.KindItem, string(l.Item), &it); err == nil {
			lo.SKU = it.SKU
		} else if !errors.Is(err, storeline.NotFound) {
			return out, err
		}
		out.Lines = append(out.Lines, lo)
	}
	endEv, end, err := s.reservationEnd(ev.ID)
	if err != nil || end == nil {
		return out, err
	}
	out.Status, out.Outcome, out.Reason = string(end.Outcome), end.Outcome, end.Reason
	out.EndedAt, out.EndedTerminal = endEv.OccurredAt.UTC().Format(timeFormat), end.Terminal
	if !end.Receipt.IsZero() {
		rc := end.Receipt
		out.Receipt = &rc
	}
	return out, nil
}

// reservationEnd is the end of reservation id, or nil if it has none.
func (s *Server) reservationEnd(id storeline.EventID) (storeline.Event, *storeline.ReservationEnd, error) {
	ev, err := s.led.Event(s.cfg.Store, storeline.ReservationEndID(id))
	switch {
	case errors.Is(err, storeline.NotFound):
		return ev, nil, nil
	case errors.Is(err, storeline.ErrPruned):
		return ev, nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf(
			"reservation %s ended before the journal this shop keeps (retention): %w", id, storeline.ErrPruned)}
	case err != nil:
		return ev, nil, err
	}
	end, ok := ev.Body.(*storeline.ReservationEnd)
	if !ok {
		return ev, nil, storeline.Errorf(storeline.Internal, "posbridge.reservationEnd", "the end of reservation %s is a %s", id, ev.Kind)
	}
	return ev, end, nil
}

// reservationByID reads a reservation of this store; a pruned one is
// answered 404 saying so (the node lapses it: its date is gone with it).
func (s *Server) reservationByID(id storeline.EventID) (storeline.Event, *storeline.Reservation, error) {
	ev, err := s.led.Event(s.cfg.Store, id)
	switch {
	case errors.Is(err, storeline.ErrPruned):
		return ev, nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf(
			"reservation %s is older than the journal this shop keeps (retention); the node lapses what it still held: %w", id, storeline.ErrPruned)}
	case errors.Is(err, storeline.NotFound):
		return ev, nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no reservation %s at this store", id)}
	case err != nil:
		return ev, nil, err
	}
	res, ok := ev.Body.(*storeline.Reservation)
	if !ok {
		return ev, nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("%s is a %s, not a reservation", id, ev.Kind)}
	}
	return ev, res, nil
}

func (s *Server) getReservation(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := storeline.ParseEventID(r.PathValue("id"))
	if err != nil {
		return storeline.Invalidf("id", "%v", err)
	}
	ev, res, err := s.reservationByID(id)
	if err != nil {
		return err
	}
	out, err := s.reservationView(ev, res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// activeReservations returns the IDs of the reservations whose account
// still holds goods. An ended one's balances stay, at zero.
func (s *Server) activeReservations() ([]storeline.EventID, error) {
	prefix := storeline.ReservationAccountPrefix(s.cfg.Store)
	bs, err := s.cfg.Balances(prefix)
	if err != nil {
		return nil, err
	}
	var ids []storeline.EventID
	seen := map[storeline.EventID]bool{}
	for _, b := range bs {
		if b.Amount.IsZero() {
			continue
		}
		id, err := storeline.ParseEventID(strings.TrimPrefix(b.Account, prefix))
		if err != nil {
			return nil, storeline.Errorf(storeline.Internal, "posbridge.activeReservations", "account %s: %v", b.Account, err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// listReservations answers the active reservations, soonest until first,
// a page after the cursor after (reservationCursor). One whose event
// retention pruned is left out: the node lapses it.
func (s *Server) listReservations(w http.ResponseWriter, r *http.Request, _ *caller) error {
	limit := defaultReservationPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxReservationPage {
			return storeline.Invalidf("limit", "limit %q is not a number from 1 to %d", v, maxReservationPage)
		}
		limit = n
	}
	var after *reservationCursor
	if v := r.URL.Query().Get("after"); v != "" {
		c, err := parseReservationCursor(v)
		if err != nil {
			return err
		}
		after = &c
	}
	ids, err := s.activeReservations()
	if err != nil {
		return err
	}
	out := reservationListOut{Reservations: []reservationOut{}}
	for _, id := range ids {
		ev, res, err := s.reservationByID(id)
		if errors.Is(err, storeline.ErrPruned) {
			continue
		}
		if err != nil {
			return err
		}
		if after != nil && !after.before(reservationCursor{until: res.Until, id: id.String()}) {
			continue
		}
		v, err := s.reservationView(ev, res)
		if err != nil {
			return err
		}
		out.Reservations = append(out.Reservations, v)
	}
	sort.Slice(out.Reservations, func(i, j int) bool {
		return cursorOf(out.Reservations[i]).before(cursorOf(out.Reservations[j]))
	})
	if len(out.Reservations) > limit {
		out.Reservations = out.Reservations[:limit]
		out.Next = cursorOf(out.Reservations[limit-1]).String()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type reservationEndIn struct {
	Terminal   storeline.TerminalID `json:"terminal"`
	Seller     storeline.SellerID   `json:"seller,omitempty"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Reason     string               `json:"reason,omitempty"`
	Receipt    *storeline.EventID   `json:"receipt,omitempty"`
}

func (s *Server) releaseReservation(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.endReservation(w, r, c, storeline.ReservationReleased)
}

func (s *Server) collectReservation(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.endReservation(w, r, c, storeline.ReservationCollected)
}

// endReservation ends a reservation as outcome says, at a till. A retry
// (the same end again) answers 200; another end already made, 409 saying
// how it ended.
func (s *Server) endReservation(w http.ResponseWriter, r *http.Request, c *caller, outcome storeline.ReservationOutcome) error {
	id, err := storeline.ParseEventID(r.PathValue("id"))
	if err != nil {
		return storeline.Invalidf("id", "%v", err)
	}
	var in reservationEndIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.Terminal != c.terminal.ID {
		return &storeline.Error{Kind: storeline.Forbidden, Field: "terminal", Err: fmt.Errorf("terminal %q is not the calling terminal %q", in.Terminal, c.terminal.ID)}
	}
	if in.OccurredAt == nil || in.OccurredAt.IsZero() {
		return storeline.Invalidf("occurred_at", "occurred_at (RFC 3339) is required")
	}
	if err := storeline.CheckEventTime("occurred_at", *in.OccurredAt); err != nil {
		return err
	}
	if err := maxLen("reason", in.Reason, 200); err != nil {
		return err
	}
	var receipt storeline.EventID
	if outcome == storeline.ReservationCollected {
		if in.Receipt == nil || in.Receipt.IsZero() {
			return storeline.Invalidf("receipt", "a collection names the receipt that sold the goods")
		}
		receipt = *in.Receipt
	}
	resEv, res, err := s.reservationByID(id)
	if err != nil {
		return err
	}
	end := &storeline.ReservationEnd{Reservation: id, Outcome: outcome, Receipt: receipt, Terminal: in.Terminal, Seller: in.Seller, Reason: in.Reason}
	if endEv, prior, err := s.reservationEnd(id); err != nil {
		return err
	} else if prior != nil {
		return s.reservationEndRetry(w, resEv, end, *in.OccurredAt, endEv, prior)
	}
	end.Seller = sellerOrSession(c, in.Seller)
	if err := s.mayPost(c, end.Seller); err != nil {
		return err
	}
	if outcome == storeline.ReservationCollected {
		rc, err := s.isReceipt(receipt)
		if err != nil {
			return err
		}
		if err := soldReserved(receipt, rc, id, res); err != nil {
			return err
		}
	}
	if end.Lines, err = s.heldBy(id, res); err != nil {
		return err
	}
	if len(end.Lines) == 0 {
		// Ended since the check above (another till, or the node
		// lapsing it): the end that won decides, as on a Conflict.
		if endEv, prior, err := s.reservationEnd(id); err != nil {
			return err
		} else if prior != nil {
			return s.reservationEndRetry(w, resEv, end, *in.OccurredAt, endEv, prior)
		}
	}
	if err := end.Validate(); err != nil {
		return err
	}
	_, loc, err := s.store()
	if err != nil {
		return err
	}
	endEv, ok, err := s.appendEvent(r.Context(), storeline.ReservationEndID(id), *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), end)
	if errors.Is(err, storeline.Conflict) {
		// Another end landed since the check above (two tills at once,
		// or the node lapsing it): the one that won decides.
		if endEv, prior, perr := s.reservationEnd(id); perr == nil && prior != nil {
			return s.reservationEndRetry(w, resEv, end, *in.OccurredAt, endEv, prior)
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		// The same body stored meanwhile by a request racing this one:
		// the ledger does not compare occurred_at, the retry's check does.
		return s.reservationEndRetry(w, resEv, end, *in.OccurredAt, endEv, endEv.Body.(*storeline.ReservationEnd))
	}
	s.m.reservations.WithLabelValues(string(outcome)).Inc()
	out, err := s.reservationView(resEv, res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// reservationEndRetry answers an end of a reservation that has one
// already (prior, stored as endEv): the reservation as ended if the till
// sent the same end again, else a conflict saying how it ended. An
// omitted seller is the session's, so it is not compared.
func (s *Server) reservationEndRetry(w http.ResponseWriter, resEv storeline.Event, want *storeline.ReservationEnd, at time.Time, endEv storeline.Event, prior *storeline.ReservationEnd) error {
	same := want.Outcome == prior.Outcome && want.Receipt == prior.Receipt && want.Terminal == prior.Terminal &&
		want.Reason == prior.Reason && (want.Seller == "" || want.Seller == prior.Seller) && at.Equal(endEv.OccurredAt)
	if !same {
		how := string(prior.Outcome)
		switch prior.Outcome {
		case storeline.ReservationCollected:
			how += fmt.Sprintf(" by receipt %s at terminal %s", prior.Receipt, prior.Terminal)
		case storeline.ReservationReleased:
			how += fmt.Sprintf(" at terminal %s", prior.Terminal)
		default:
			how += " by the node, its date having passed"
		}
		how += " at " + endEv.OccurredAt.UTC().Format(timeFormat)
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("reservation %s has ended already: %s", want.Reservation, how)}
	}
	out, err := s.reservationView(resEv, resEv.Body.(*storeline.Reservation))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// isReceipt returns the receipt a collection names, refusing anything but
// a receipt of this store: 404 naming receipt when there is none, 422
// for another fact.
func (s *Server) isReceipt(id storeline.EventID) (*storeline.Receipt, error) {
	ev, err := s.led.Event(s.cfg.Store, id)
	switch {
	case errors.Is(err, storeline.NotFound):
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "receipt", Err: fmt.Errorf("no receipt %s at this store", id)}
	case errors.Is(err, storeline.ErrPruned):
		return nil, storeline.Invalidf("receipt", "receipt %s is older than the journal this shop keeps (retention): a collection is recorded with its sale", id)
	case err != nil:
		return nil, err
	}
	rc, ok := ev.Body.(*storeline.Receipt)
	if !ok {
		return nil, storeline.Invalidf("receipt", "%s is a %s, not a receipt", id, ev.Kind)
	}
	return rc, nil
}

// soldReserved refuses (422 naming receipt) a collection by a receipt
// that sold none of the reservation's items: a wrong receipt would mark
// the goods collected while they sit on the shelf. One selling some of
// them, or fewer units, stands: the customer took less than was held.
func soldReserved(receipt storeline.EventID, rc *storeline.Receipt, id storeline.EventID, res *storeline.Reservation) error {
	for _, l := range rc.Lines {
		if l.Qty.IsPositive() && slices.ContainsFunc(res.Lines, func(rl storeline.BasketLine) bool { return rl.Item == l.Item }) {
			return nil
		}
	}
	return storeline.Invalidf("receipt", "receipt %s sold none of the items reservation %s holds: name the receipt that sold them", receipt, id)
}

// heldBy is what reservation id's account still holds, as the lines its
// end gives back: every item's units, in the unit res (nil once pruned)
// reserved it in, since the item's unit may have changed (a weighed item
// sold by the piece now), else the item's.
func (s *Server) heldBy(id storeline.EventID, res *storeline.Reservation) ([]storeline.BasketLine, error) {
	reservedIn := map[storeline.ItemID]storeline.Unit{}
	if res != nil {
		for _, l := range res.Lines {
			reservedIn[l.Item] = l.Unit
		}
	}
	acct := storeline.ReservationAccount(s.cfg.Store, id)
	bs, err := s.cfg.Balances(acct)
	if err != nil {
		return nil, err
	}
	var lines []storeline.BasketLine
	for _, b := range bs {
		item, ok := strings.CutPrefix(string(b.Asset), "item:")
		if b.Account != acct || !ok || b.Amount.IsZero() {
			continue
		}
		l := storeline.BasketLine{Item: storeline.ItemID(item), Qty: b.Amount.Neg(), Unit: reservedIn[storeline.ItemID(item)]}
		if l.Unit == "" {
			var it storeline.Item
			if err := s.led.GetMaster(storeline.KindItem, item, &it); err == nil {
				l.Unit = it.Unit
			} else if !errors.Is(err, storeline.NotFound) {
				return nil, err
			}
		}
		if l.Unit == "" || !l.Unit.Fractional() && !l.Qty.IsInteger() {
			// Deleted, or counted otherwise since: a fraction was
			// weighed, and kilograms take any fraction the ledger holds.
			l.Unit = storeline.Piece
			if !l.Qty.IsInteger() {
				l.Unit = storeline.Kg
			}
		}
		lines = append(lines, l)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].Item < lines[j].Item })
	return lines, nil
}

// LapseReservations ends, as lapsed, every active reservation whose date
// is before the shop's business date of now, and every one whose event
// retention pruned (its date went with it, and retention keeps a week at
// least). It returns how many it ended; one ended at a till meanwhile is
// not counted. One that cannot be ended as it is (its account holds what
// no end gives back) is reported in the error, and the others still
// lapse.
func (s *Server) LapseReservations(ctx context.Context, now time.Time) (int, error) {
	_, loc, err := s.store()
	if err != nil {
		return 0, err
	}
	today := storeline.DateOf(now, loc)
	ids, err := s.activeReservations()
	if err != nil {
		return 0, err
	}
	n := 0
	var bad []error // reservations that cannot be ended as they are
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, errors.Join(append(bad, err)...)
		}
		ev, err := s.led.Event(s.cfg.Store, id)
		var res *storeline.Reservation
		switch {
		case errors.Is(err, storeline.ErrPruned):
		case err != nil:
			return n, fmt.Errorf("posbridge: lapse reservation %s: %w", id, err)
		default:
			var ok bool
			if res, ok = ev.Body.(*storeline.Reservation); !ok || res.Until >= today {
				continue
			}
		}
		end := &storeline.ReservationEnd{Reservation: id, Outcome: storeline.ReservationLapsed}
		if end.Lines, err = s.heldBy(id, res); err != nil {
			return n, fmt.Errorf("posbridge: lapse reservation %s: %w", id, err)
		}
		if len(end.Lines) == 0 {
			continue // ended at a till since it was listed
		}
		_, ok, err := s.appendEvent(ctx, storeline.ReservationEndID(id), now, today, end)
		switch {
		case errors.Is(err, storeline.Conflict):
			continue // ended at a till since it was listed
		case storeline.KindOf(err) == storeline.Invalid:
			// This one's account holds what no end can give back: said,
			// and the others still lapse.
			bad = append(bad, fmt.Errorf("posbridge: lapse reservation %s: %w", id, err))
		case err != nil:
			return n, errors.Join(append(bad, fmt.Errorf("posbridge: lapse reservation %s: %w", id, err))...)
		case ok:
			n++
			s.m.reservations.WithLabelValues(string(storeline.ReservationLapsed)).Inc()
		}
	}
	return n, errors.Join(bad...)
}

// addDays is the business date days after d (d itself if it does not
// parse).
func addDays(d storeline.Date, days int) storeline.Date {
	t, err := time.Parse(time.DateOnly, string(d))
	if err != nil {
		return d
	}
	return storeline.Date(t.AddDate(0, 0, days).Format(time.DateOnly))
}

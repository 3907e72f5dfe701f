package tillsim

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Reservations of goods: now and then a customer asks the till to hold a
// few popular items until a day soon. The till remembers what it reserved
// and when the customer comes back: after a few more of its receipts they
// collect the goods (the claimed receipt sells them, then the reservation
// is collected naming it) or call it off (the till releases it). Some
// never come back: the till forgets those and the node lapses them after
// their date.

// heldReservation is a reservation a till made and will end.
type heldReservation struct {
	id    storeline.EventID
	card  string   // the customer's loyalty card, if the reservation names one
	items []string // item IDs, a unit of each
	// due counts down the till's receipts until the customer comes back;
	// collect says whether they then take the goods or call it off.
	due     int
	collect bool
}

// Bounds of a simulated reservation.
const (
	maxReservedItems   = 3  // distinct items, a unit each
	maxReservationDays = 3  // until is today or up to this many days later
	maxReservationWait = 10 // receipts of the till before the customer comes back
)

// reservable reports whether a reservation of the item by SKU, a unit of
// it, can later be rung up as it was reserved: not a marked item (its
// receipt line needs the serial scanned) nor one sold by weight.
func (it sellable) reservable() bool { return !it.marked && !it.weighed }

// reserve holds one to three popular items for a customer, named by their
// loyalty card when they have one the node knows, else by a phone number.
// A refusal because the goods are not available is counted by fact.
func (t *till) reserve(ctx context.Context) {
	snap := t.shop.cat.snapshot()
	want := 1 + t.rng.IntN(maxReservedItems)
	var items []sellable
	seen := map[string]bool{}
	// A few draws at most: a catalogue of weighed and marked goods has
	// little to reserve.
	for range 4 * maxReservedItems {
		if len(items) == want {
			break
		}
		if it := t.popular(snap); it.reservable() && !seen[it.id] {
			seen[it.id] = true
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return
	}
	at := t.now()
	body := reservationJSON{ID: storeline.NewEventID(), Terminal: t.term.ID, Seller: t.cashier.ID, OccurredAt: at,
		Until: at.In(snap.loc).AddDate(0, 0, t.rng.IntN(maxReservationDays+1)).Format(time.DateOnly)}
	held := heldReservation{id: body.ID}
	fl := make([]FactLine, len(items))
	for i, it := range items {
		body.Lines = append(body.Lines, lineJSON{SKU: it.sku, Qty: "1"})
		held.items = append(held.items, it.id)
		fl[i] = FactLine{Item: it.id, Qty: decimal.NewFromInt(1)}
	}
	// The node refuses a card it does not know (a reservation names its
	// customer to call them): the till looks it up first, as it does when
	// a card is scanned, and takes a phone number otherwise.
	if cards := t.shop.cards; len(cards) > 0 && t.rng.Float64() < t.sim.cfg.LoyaltyRate {
		if code := cards[t.rng.IntN(len(cards))]; t.lookUpCard(ctx, code) != nil {
			body.Card, held.card = code, code
		}
	}
	if body.Card == "" {
		body.Contact = fmt.Sprintf("+371 2%07d", t.rng.IntN(10_000_000))
	}
	status, err := t.fact(ctx, epReserve, "/v1/reservations", body, false, nil)
	if err != nil {
		return
	}
	t.shop.add(func(s *shopTally) { s.reservations++ })
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactReservation, ID: body.ID, Status: status, Terminal: t.term.ID,
		Seller: t.cashier.ID, Lines: fl})
	// Half the customers collect their goods, three in ten call it off,
	// the rest never come back.
	switch r := t.rng.Float64(); {
	case r < 0.5:
		held.collect = true
	case r >= 0.8:
		return
	}
	held.due = 1 + t.rng.IntN(maxReservationWait)
	t.held = append(t.held, held)
}

// due counts a receipt down on every reservation the till holds and
// returns the first whose customer comes back now, no longer held.
func (t *till) due() *heldReservation {
	var back *heldReservation
	kept := t.held[:0]
	for _, r := range t.held {
		r.due--
		if r.due <= 0 && back == nil {
			back = &r
			continue
		}
		kept = append(kept, r)
	}
	t.held = kept
	return back
}

// collect rings up the reservation's goods as the receipt claimed, then
// ends the reservation as collected naming that receipt. It returns false,
// having posted nothing, when the goods are no longer in the catalogue to
// sell; a receipt the node did not acknowledge leaves the reservation to
// lapse.
func (t *till) collect(ctx context.Context, r heldReservation) bool {
	snap := t.shop.cat.snapshot()
	byID := make(map[string]sellable, len(snap.items))
	for _, it := range snap.items {
		byID[it.id] = it
	}
	var lines []lineJSON
	var kept []sold
	total := decimal.Zero
	one := decimal.NewFromInt(1)
	for _, id := range r.items {
		it, ok := byID[id]
		if !ok || !it.reservable() {
			return false
		}
		l := lineJSON{SKU: it.sku, Qty: "1", Price: it.price.StringFixed(snap.scale)}
		lt := it.price.Round(snap.scale)
		lines = append(lines, l)
		kept = append(kept, sold{line: l, item: it.id, qty: one, total: lt})
		total = total.Add(lt)
	}
	receipt, ok := t.ringUp(ctx, snap, lines, kept, total, 0, 0, &r)
	if !ok {
		return true
	}
	body := reservationEndJSON{Terminal: t.term.ID, Seller: t.cashier.ID, OccurredAt: t.now(), Receipt: &receipt}
	status, err := t.fact(ctx, epCollect, "/v1/reservations/"+url.PathEscape(r.id.String())+"/collect", body, false, nil)
	if err != nil {
		return true
	}
	t.shop.add(func(s *shopTally) { s.collected++ })
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactReservationCollected, ID: storeline.ReservationEndID(r.id), Status: status,
		Terminal: t.term.ID, Seller: t.cashier.ID, Lines: heldLines(r), Reservation: r.id, Receipt: receipt})
	return true
}

// release gives the reservation's goods back: the customer called it off.
func (t *till) release(ctx context.Context, r heldReservation) {
	body := reservationEndJSON{Terminal: t.term.ID, Seller: t.cashier.ID, OccurredAt: t.now(), Reason: "the customer called it off"}
	status, err := t.fact(ctx, epRelease, "/v1/reservations/"+url.PathEscape(r.id.String())+"/release", body, false, nil)
	if err != nil {
		return
	}
	t.shop.add(func(s *shopTally) { s.released++ })
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactReservationReleased, ID: storeline.ReservationEndID(r.id), Status: status,
		Terminal: t.term.ID, Seller: t.cashier.ID, Lines: heldLines(r), Reservation: r.id})
}

// heldLines are the units reservation r holds, as a Fact's lines.
func heldLines(r heldReservation) []FactLine {
	fl := make([]FactLine, len(r.items))
	for i, id := range r.items {
		fl[i] = FactLine{Item: id, Qty: decimal.NewFromInt(1)}
	}
	return fl
}

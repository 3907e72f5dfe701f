package central

// Reservations of goods at head office (reservation.go in the module
// root). A shop's Reservation and its ReservationEnd move only the shop's
// memo accounts, which central applies like any other postings: the
// active reservations of a store are its nonzero reservation/<store>/
// balances, what it holds of an item its reserved/<store>/<item> balance.
// The details (until, for whom, lines) are the shop's stored Reservation
// event.
//
// Central stores a shop's events by (origin, epoch, seq); accept indexes
// each Reservation by ID (rpResv), so its details are a point lookup.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// heldLine is units of an item a reservation's account still holds.
type heldLine struct {
	Item storeline.ItemID `json:"item"`
	Qty  decimal.Decimal  `json:"qty"`
}

// activeReservation is one nonzero reservation/<store>/<id> account.
type activeReservation struct {
	id   storeline.EventID
	held []heldLine
}

// getReservations answers a store's active reservations as central
// holds them, a page at a time in reservation ID order (the cursor is
// the last ID), optionally only those holding one item (an ID or a
// SKU), and the units reserved per item at the store.
func (n *Node) getReservations(w http.ResponseWriter, r *http.Request) error {
	const op = "central.reservations"
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	itemParam := r.URL.Query().Get("item")
	if itemParam != "" && len(itemParam) > 200 {
		return errMalformed("item", "%.40q…: not an item ID or SKU", itemParam)
	}
	var after storeline.EventID
	if s := r.URL.Query().Get("after"); s != "" {
		if after, err = storeline.ParseEventID(s); err != nil {
			return errMalformed("after", "%.80q: want a reservation id, as a page's next gives it", s)
		}
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	out := []any{}
	reserved := map[string]decimal.Decimal{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		if err := knownStore(rt, op, store); err != nil {
			return err
		}
		item, err := reservedItem(rt, op, store, itemParam)
		if err != nil {
			return err
		}
		totals := storeline.ReservedAccount(store, "")
		if item != "" {
			totals = storeline.ReservedAccount(store, item) + "\x00"
		}
		if err := scanBalances(rt, totals, "", func(b balanceRow) bool {
			it := storeline.ItemID(strings.TrimPrefix(b.Account, storeline.ReservedAccount(store, "")))
			if b.Asset == storeline.ItemAsset(it) {
				reserved[string(it)] = b.Amount
			}
			return true
		}); err != nil {
			return err
		}
		var page []activeReservation
		if page, next, err = activeReservations(rt, store, item, after, limit); err != nil {
			return err
		}
		found, err := reservationEvents(rt, store, page)
		if err != nil {
			return err
		}
		for _, a := range page {
			out = append(out, reservationJSON(a, found[a.id]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "reservations": out, "reserved": reserved, "next": next})
	return nil
}

// knownStore refuses a store head office does not know: neither in the
// master data nor one that pushed (its events are still held), as the
// drafts list answers it.
func knownStore(rt *ledger.ReplicaTxn, op string, store storeline.StoreID) error {
	ok, err := rt.HasMaster(storeline.KindStore, string(store))
	if err != nil || ok {
		return err
	}
	ms, err := marks(rt, store)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return unknownStore(op, store)
	}
	return nil
}

// reservedItem resolves ?item= (an item ID, else a SKU) to an item ID;
// "" when absent. An item deleted while store's reservations still hold
// it is theirs to list by its ID, as the stock report lists a deleted
// item's stock; one neither the master data nor a reservation of store
// holds is a 404 naming item.
func reservedItem(rt *ledger.ReplicaTxn, op string, store storeline.StoreID, s string) (storeline.ItemID, error) {
	if s == "" {
		return "", nil
	}
	if storeline.ValidID(s) {
		ok, err := rt.HasMaster(storeline.KindItem, s)
		if err != nil || ok {
			return storeline.ItemID(s), err
		}
		held := false
		if err := scanBalances(rt, storeline.ReservedAccount(store, storeline.ItemID(s))+"\x00", "", func(balanceRow) bool {
			held = true
			return false
		}); err != nil {
			return "", err
		}
		if held {
			return storeline.ItemID(s), nil
		}
	}
	var it storeline.Item
	ok, err := rt.LookupMasterKey(storeline.KindItem, storeline.SKUKey(s), &it)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &storeline.Error{Op: op, Kind: storeline.NotFound, Field: "item", Err: fmt.Errorf("no item has ID or SKU %q", s)}
	}
	return it.ID, nil
}

// activeReservations reads up to limit of store's nonzero reservation
// accounts after the cursor (those holding item, if given), examining
// maxReportScan accounts at most. next is given only when the page stops
// before the end: at a match beyond a full page, or at the scan's bound.
func activeReservations(rt *ledger.ReplicaTxn, store storeline.StoreID, item storeline.ItemID, after storeline.EventID, limit int) (page []activeReservation, next string, err error) {
	prefix := storeline.ReservationAccountPrefix(store)
	from, last := "", ""
	if !after.IsZero() {
		// Past every balance of the cursor's account: its assets follow
		// it after a 0 byte.
		last = after.String()
		from = last + "\x01"
	}
	var cur *activeReservation
	full := false
	keep := func() {
		if cur == nil {
			return
		}
		if item == "" || holds(cur.held, item) {
			if len(page) == limit {
				next, full = last, true
				return
			}
			page = append(page, *cur)
		}
		last = cur.id.String()
	}
	scanned := 0
	err = scanBalances(rt, prefix, from, func(b balanceRow) bool {
		id, err := storeline.ParseEventID(strings.TrimPrefix(b.Account, prefix))
		it, isItem := strings.CutPrefix(string(b.Asset), "item:")
		if err != nil || !isItem {
			return true // not a reservation's account of goods: none a shop posts
		}
		if cur == nil || cur.id != id {
			if keep(); full {
				return false
			}
			if scanned++; scanned > maxReportScan {
				next, cur = last, nil
				return false
			}
			cur = &activeReservation{id: id}
		}
		// The account owes what it holds: a credit.
		cur.held = append(cur.held, heldLine{Item: storeline.ItemID(it), Qty: b.Amount.Neg()})
		return true
	})
	if err == nil && cur != nil && !full {
		keep()
	}
	return page, next, err
}

func holds(ls []heldLine, item storeline.ItemID) bool {
	for _, l := range ls {
		if l.Item == item {
			return true
		}
	}
	return false
}

// reservationEvents reads the stored Reservation events of page's
// reservations by the index accept keeps (rpResv). One not there (its
// event not stored at central) is left out: it is listed from its
// balances alone.
func reservationEvents(rt *ledger.ReplicaTxn, store storeline.StoreID, page []activeReservation) (map[storeline.EventID]storeline.Event, error) {
	found := make(map[storeline.EventID]storeline.Event, len(page))
	for _, a := range page {
		pos, err := rt.Meta(reservationKey(store, a.id))
		if err != nil {
			return nil, err
		}
		if len(pos) != 16 {
			continue
		}
		epoch, seq := ledger.U64(pos[:8]), ledger.U64(pos[8:])
		v, err := rt.Meta(eventKey(store, epoch, seq))
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		var w replication.WireEvent
		if err := msgpack.Unmarshal(v, &w); err != nil {
			return nil, fmt.Errorf("stored event %s/%d/%d: %w", store, epoch, seq, err)
		}
		ev, err := replication.EventFromWire(w)
		if err != nil {
			return nil, fmt.Errorf("stored reservation %s: %w", a.id, err)
		}
		if ev.Kind != storeline.KindReservation || ev.ID != a.id {
			return nil, fmt.Errorf("central: reservation index of %s/%s points at %s event %s", store, a.id, ev.Kind, ev.ID)
		}
		found[ev.ID] = ev
	}
	return found, nil
}

// reservationJSON is a reservation as the API answers it: its details
// when its event was found, and always what its account still holds.
func reservationJSON(a activeReservation, ev storeline.Event) map[string]any {
	m := map[string]any{}
	if res, ok := ev.Body.(*storeline.Reservation); ok {
		m = compact(encodeWire(res)).(map[string]any)
		m["business_date"] = ev.BusinessDate
		m["occurred_at"] = ev.OccurredAt
	}
	m["id"] = a.id.String()
	m["held"] = a.held
	return m
}

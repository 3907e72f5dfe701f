package central

// Purchase orders (заказы поставщикам): head office orders goods from a
// supplier for a store, and the supplier's incoming invoices fulfil them.
//
// Invariants:
//
//  1. Every write of an order is one FSM entry of OpOrder (FSM level 4:
//     levels.go), whose action is create, cancel or close: every check
//     first (fsm.go invariant 3: a refused write changes nothing), then
//     the order's record. The entry reads no clock but its own time.
//  2. An order's ID is chosen by its author: created again with the same
//     content (quantities and prices compared as values) it answers the
//     stored order, whatever became of it since; with other content it
//     is a Conflict naming id. An order has one line per item.
//  3. An incoming invoice may name an order (Document.Order). Posting it
//     adds its lines' quantities (base units) to the order's lines of
//     the same item, as one receipt of the invoice recorded on the
//     order; cancelling the invoice removes that receipt, so what an
//     order received is always the sum of the receipts of the invoices
//     standing. Both happen inside the document's own entry (applyDocPost,
//     applyDocCancel), checked before its first write: an invoice naming
//     an unknown order, one of another store or supplier, or a closed or
//     cancelled one is refused naming order.
//  4. All of invariant 3 holds only from level 4 on. Below it, nodes of
//     the version before orders decode a document's order as a field they
//     do not know and drop it: every replica drops it too when the
//     document is created (applyDocCreate), and posting and cancelling
//     do exactly what they did. The API refuses an order on a document
//     (503) until the level is raised, so nothing is dropped unawares.
//  5. An order's status is cancelled or closed once either happened (both
//     final), else open, partial or received by what it received. It is
//     cancelled only while it received nothing (otherwise it is closed);
//     closing drops what was outstanding. A cancelled invoice still takes
//     its receipt back from a closed order.
//  6. An order may answer shops' requests for goods (till drafts of type
//     request, storeline.DocRequest): its create names them (store and
//     event), each a request draft of the order's store that central
//     holds, and marks each answered (poRequest) in the same entry, after
//     every check; a request is answered by one standing order only. A
//     cancelled order gives its requests back in its cancel's entry
//     (they may be answered again; the order still lists them); a closed
//     one keeps them. The handler finds where each
//     draft is in the store's journal and the entry carries it
//     (orderCommand.RequestAt), so the entry reads the event by one key
//     rather than scanning the journal; a position that does not hold the
//     draft is a refusal, never a guess. A request is never made a
//     document (putDocument, applyDocCreate): the order is its answer.
//  7. Every write of an order's record (putOrder: a create, cancel or
//     close, an invoice's post or cancel that receives on it) writes its
//     store index keys in the same entry, from the record it writes:
//     poByStore always, poOpen set while the order expects goods and
//     deleted otherwise, so a shop's open orders are read without
//     touching other stores' or its own finished ones. The index is a
//     function of the records alone. State written before it existed has
//     no index and no poIndexed: each order write of this build indexes
//     the next orderBackfillChunk orders in ID order, in its own entry
//     (poIndexing keeps where it stopped; one entry for them all would
//     pass what Badger takes in a transaction), and the one reaching
//     the last marks the index complete (every replica applies the same
//     entries to the same records, so all write the same keys). Until
//     then the listings scan the records as they did (orderIndexed).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// OpOrder creates, cancels or closes a purchase order (invariant 1).
const OpOrder = "order.write"

// The actions of OpOrder.
const (
	orderCreate = "create"
	orderCancel = "cancel"
	orderClose  = "close"
)

// The statuses of an order (invariant 5).
const (
	orderOpen      = "open"
	orderPartial   = "partial"
	orderReceived  = "received"
	orderClosed    = "closed"
	orderCancelled = "cancelled"
)

var orderStatuses = []string{orderOpen, orderPartial, orderReceived, orderClosed, orderCancelled}

const (
	poOrder   = "po/ord/" // id → msgpack purchaseOrder
	poRequest = "po/req/" // store \0 event16 → id of the order answering the request (invariant 6)
	// The store indexes (invariant 7): every order of a store, and those
	// of its orders still expecting goods (open or partial), each valued
	// by the order's status as its last write left it.
	poByStore = "po/st/"   // store \0 id → status
	poOpen    = "po/open/" // store \0 id → status, while open or partial
	// poIndexed marks the store indexes complete: absent in state written
	// before they existed, whose orders the listings then find by a scan.
	poIndexed = "po/indexed" // → "1"
	// poIndexing is, while the index of older state is being built, the
	// ID of the last order indexed so far (indexAllOrders).
	poIndexing = "po/indexing" // → order id
)

// requestKey is the index key marking a shop's request answered.
func requestKey(store storeline.StoreID, event storeline.EventID) string {
	return poRequest + string(store) + "\x00" + string(event[:])
}

// Bounds of an order's free text (in characters, as openapi.yaml's
// maxLength counts them) and lines.
const (
	maxOrderNote   = 1024
	maxOrderReason = 1024
	maxOrderLines  = storeline.MaxDocumentLines
	// An order answering more requests than this is better split: each
	// is read and marked inside the order's one entry.
	maxOrderRequests = 100
)

func (n *Node) orderRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/orders", true, n.postOrder)
	h("GET /v1/orders", false, n.listOrders)
	h("GET /v1/orders/{id}", false, n.getOrder)
	h("POST /v1/orders/{id}/cancel", true, func(w http.ResponseWriter, r *http.Request) error {
		return n.postOrderAction(w, r, orderCancel)
	})
	h("POST /v1/orders/{id}/close", true, func(w http.ResponseWriter, r *http.Request) error {
		return n.postOrderAction(w, r, orderClose)
	})
}

// purchaseOrder is an order as the FSM stores it.
type purchaseOrder struct {
	ID         string               `msgpack:"i"`
	Supplier   storeline.SupplierID `msgpack:"s"`
	Store      storeline.StoreID    `msgpack:"t"`
	ExpectedOn storeline.Date       `msgpack:"e,omitempty"`
	Note       string               `msgpack:"n,omitempty"`
	Lines      []orderLine          `msgpack:"l"`
	// Set by the entry that created it: the store's currency then, which
	// the lines' prices are in.
	Currency  storeline.Currency `msgpack:"c,omitempty"`
	CreatedMs int64              `msgpack:"cms,omitempty"`
	// Final is orderCancelled or orderClosed once either happened (by
	// the entry at FinalMs, Reason its why); "" while the order stands.
	Final   string `msgpack:"f,omitempty"`
	FinalMs int64  `msgpack:"fms,omitempty"`
	Reason  string `msgpack:"w,omitempty"`
	// Receipts are what the posted invoices naming the order brought, in
	// the order they were posted (invariant 3).
	Receipts []orderReceipt `msgpack:"r,omitempty"`
	// Requests are the shops' requests for goods it answers (invariant 6).
	Requests []orderRequest `msgpack:"q,omitempty"`
}

// orderRequest names a till's request draft: the store that pushed it
// and its event.
type orderRequest struct {
	Store storeline.StoreID `msgpack:"s"`
	Event storeline.EventID `msgpack:"e"`
}

// orderLine is one item ordered: Qty in base units, Price (optional) per
// base unit in the order's currency.
type orderLine struct {
	Item storeline.ItemID `msgpack:"i"`
	Qty  decimal.Decimal  `msgpack:"q"`
	// Price is encoded even when nil: omitempty drops a pointer to a
	// zero decimal too, and an explicit price of 0 is a price.
	Price *decimal.Decimal `msgpack:"p"`
}

// orderReceipt is what one posted invoice brought: Qty[i] counts on the
// order's line i.
type orderReceipt struct {
	Doc string            `msgpack:"d"`
	Qty []decimal.Decimal `msgpack:"q"`
}

// brought reports whether the receipt counts any units on the order.
func (rc orderReceipt) brought() bool {
	return slices.ContainsFunc(rc.Qty, decimal.Decimal.IsPositive)
}

// received returns what the order received on line i.
func (o *purchaseOrder) received(i int) decimal.Decimal {
	sum := decimal.Zero
	for _, rc := range o.Receipts {
		if i < len(rc.Qty) {
			sum = sum.Add(rc.Qty[i])
		}
	}
	return sum
}

// status derives the order's status (invariant 5).
func (o *purchaseOrder) status() string {
	if o.Final != "" {
		return o.Final
	}
	some, all := false, true
	for i := range o.Lines {
		r := o.received(i)
		some = some || r.IsPositive()
		all = all && r.GreaterThanOrEqual(o.Lines[i].Qty)
	}
	switch {
	case all:
		return orderReceived
	case some:
		return orderPartial
	}
	return orderOpen
}

// lineOf returns the index of the order's line of item, -1 if none.
func (o *purchaseOrder) lineOf(item storeline.ItemID) int {
	return slices.IndexFunc(o.Lines, func(l orderLine) bool { return l.Item == item })
}

// validate checks an order on its own, without master data (the handler
// and the FSM both run it).
func (o *purchaseOrder) validate() error {
	if err := storeline.CheckID("id", o.ID); err != nil {
		return err
	}
	if err := storeline.CheckID("supplier", string(o.Supplier)); err != nil {
		return err
	}
	if err := storeline.CheckID("store", string(o.Store)); err != nil {
		return err
	}
	if o.ExpectedOn != "" {
		if _, err := storeline.ParseDate("expected_on", string(o.ExpectedOn)); err != nil {
			return err
		}
	}
	if err := checkText("note", o.Note, maxOrderNote, true); err != nil {
		return err
	}
	if len(o.Lines) == 0 {
		return storeline.Invalidf("lines", "at least one line is required")
	}
	if len(o.Lines) > maxOrderLines {
		return &storeline.Error{Kind: storeline.TooLarge, Field: "lines", Err: fmt.Errorf("%d lines, over %d", len(o.Lines), maxOrderLines)}
	}
	for i, l := range o.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		if err := storeline.CheckID(f+".item", string(l.Item)); err != nil {
			return err
		}
		if j := o.lineOf(l.Item); j < i {
			return storeline.Invalidf(f+".item", "item %q is ordered on line %d already: one line per item", l.Item, j)
		}
		if !l.Qty.IsPositive() {
			return storeline.Invalidf(f+".qty", "quantity %s must be positive", l.Qty)
		}
		if l.Price != nil && l.Price.IsNegative() {
			return storeline.Invalidf(f+".price", "price %s is negative", l.Price)
		}
	}
	if len(o.Requests) > maxOrderRequests {
		return &storeline.Error{Kind: storeline.TooLarge, Field: "requests", Err: fmt.Errorf("%d requests, over %d", len(o.Requests), maxOrderRequests)}
	}
	for i, rq := range o.Requests {
		f := fmt.Sprintf("requests[%d]", i)
		if err := storeline.CheckID(f+".store", string(rq.Store)); err != nil {
			return err
		}
		if rq.Event.IsZero() {
			return storeline.Invalidf(f+".event", "the request draft's event id is required")
		}
		if rq.Store != o.Store {
			return storeline.Invalidf(f, "request %s is of store %q: an order for %q answers its own store's requests", rq.Event, rq.Store, o.Store)
		}
		if j := slices.Index(o.Requests, rq); j < i {
			return storeline.Invalidf(f, "request %s is named on requests[%d] already", rq.Event, j)
		}
	}
	return nil
}

// sameContent reports whether o asks for what p holds (invariant 2).
func (o *purchaseOrder) sameContent(p *purchaseOrder) bool {
	if o.ID != p.ID || o.Supplier != p.Supplier || o.Store != p.Store || o.ExpectedOn != p.ExpectedOn ||
		o.Note != p.Note || len(o.Lines) != len(p.Lines) || !slices.Equal(o.Requests, p.Requests) {
		return false
	}
	for i, l := range o.Lines {
		q := p.Lines[i]
		if l.Item != q.Item || !l.Qty.Equal(q.Qty) || (l.Price == nil) != (q.Price == nil) ||
			(l.Price != nil && !l.Price.Equal(*q.Price)) {
			return false
		}
	}
	return true
}

func getOrder(rt *ledger.ReplicaTxn, id string) (*purchaseOrder, bool, error) {
	return getMetaRecord[purchaseOrder](rt, poOrder+id, "purchase order "+id)
}

// putOrder writes the order's record and its store index keys
// (invariant 7).
func putOrder(rt *ledger.ReplicaTxn, o *purchaseOrder) error {
	if err := indexAllOrders(rt); err != nil {
		return err
	}
	if err := putMetaRecord(rt, poOrder+o.ID, "purchase order "+o.ID, o); err != nil {
		return err
	}
	return indexOrder(rt, o.Store, o.ID, o.status())
}

// storeOrderKey is order id's key under index prefix for store.
func storeOrderKey(prefix string, store storeline.StoreID, id string) string {
	return prefix + string(store) + "\x00" + id
}

// expectsGoods reports whether an order of status still expects goods:
// the shop's open orders (shop_orders.go invariant 1).
func expectsGoods(status string) bool { return status == orderOpen || status == orderPartial }

// indexOrder writes order id's store index keys for its status.
func indexOrder(rt *ledger.ReplicaTxn, store storeline.StoreID, id, status string) error {
	if err := rt.SetMeta(storeOrderKey(poByStore, store, id), []byte(status)); err != nil {
		return fmt.Errorf("store index of purchase order %s: %w", id, err)
	}
	var open []byte // nil deletes
	if expectsGoods(status) {
		open = []byte(status)
	}
	if err := rt.SetMeta(storeOrderKey(poOpen, store, id), open); err != nil {
		return fmt.Errorf("open index of purchase order %s: %w", id, err)
	}
	return nil
}

// orderIndexed reports whether the store indexes are complete
// (invariant 7).
func orderIndexed(rt *ledger.ReplicaTxn) (bool, error) {
	v, err := rt.Meta(poIndexed)
	if err != nil {
		return false, fmt.Errorf("purchase order index mark: %w", err)
	}
	return v != nil, nil
}

// indexAllOrders indexes, in state written before the store indexes
// existed, the next orderBackfillChunk orders in ID order after where
// the last order write left off (poIndexing), and marks the index
// complete once it reaches the last order (invariant 7); once marked it
// does nothing. A part at a time: one entry indexing every order of a
// large chain would pass what Badger takes in one transaction, and an
// entry that fails to apply stops every replica.
func indexAllOrders(rt *ledger.ReplicaTxn) error {
	if done, err := orderIndexed(rt); err != nil || done {
		return err
	}
	cursor, err := rt.Meta(poIndexing)
	if err != nil {
		return fmt.Errorf("purchase order index progress: %w", err)
	}
	after := string(cursor)
	// Read first, then write: the writes stay out of the scan's way.
	type indexed struct {
		store      storeline.StoreID
		id, status string
	}
	var part []indexed
	more := false
	err = rt.ScanMetaFrom(poOrder, after, func(k string, v []byte) (bool, error) {
		id := k[len(poOrder):]
		if after != "" && id <= after {
			return true, nil
		}
		if len(part) == orderBackfillChunk {
			more = true
			return false, nil
		}
		var o purchaseOrder
		if err := msgpack.Unmarshal(v, &o); err != nil {
			return false, fmt.Errorf("purchase order %s: %w", id, err)
		}
		part = append(part, indexed{o.Store, o.ID, o.status()})
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("indexing purchase orders: %w", err)
	}
	for _, o := range part {
		if err := indexOrder(rt, o.store, o.id, o.status); err != nil {
			return err
		}
	}
	if more {
		return rt.SetMeta(poIndexing, []byte(part[len(part)-1].id))
	}
	if cursor != nil {
		if err := rt.SetMeta(poIndexing, nil); err != nil {
			return fmt.Errorf("purchase order index progress: %w", err)
		}
	}
	return rt.SetMeta(poIndexed, []byte("1"))
}

// orderBackfillChunk is how many orders one order write indexes of
// state written before the store indexes (invariant 7): at most about
// a thousand small writes added to an entry that may be a large
// invoice's post; a constant, since every replica must index the same
// part in the same entry.
const orderBackfillChunk = 500

// orderScanBound bounds the index entries or records one page of orders
// examines (maxReportScan: a variable so tests reach it with few orders).
var orderScanBound = maxReportScan

// storeOrderPage pages through store's orders in ID order after after,
// at most limit rows of those show makes one of, examining at most
// orderScanBound index entries (or, before the index is complete, order
// records of every store, as GET /v1/orders always did). open narrows it
// to the orders expecting goods; keep, given the status the index holds,
// skips an order without reading it. show sees the record, which
// decides.
func storeOrderPage(rt *ledger.ReplicaTxn, store storeline.StoreID, open bool, after string, limit int,
	keep func(status string) bool, show func(o *purchaseOrder) (any, bool)) ([]any, string, error) {
	indexed, err := orderIndexed(rt)
	if err != nil {
		return nil, "", err
	}
	if !indexed {
		return pageOrderKeys(rt, poOrder, after, limit, func(id string, v []byte) (any, bool, error) {
			var o purchaseOrder
			if err := msgpack.Unmarshal(v, &o); err != nil {
				return nil, false, fmt.Errorf("purchase order %s: %w", id, err)
			}
			status := o.status()
			if o.Store != store || (open && !expectsGoods(status)) || !keep(status) {
				return nil, false, nil
			}
			row, ok := show(&o)
			return row, ok, nil
		})
	}
	prefix := storeOrderKey(poByStore, store, "")
	if open {
		prefix = storeOrderKey(poOpen, store, "")
	}
	return pageOrderKeys(rt, prefix, after, limit, func(id string, v []byte) (any, bool, error) {
		if !keep(string(v)) {
			return nil, false, nil
		}
		o, found, err := getOrder(rt, id)
		if err != nil {
			return nil, false, err
		}
		if !found {
			return nil, false, fmt.Errorf("store %s's index names purchase order %s, which is not held", store, id)
		}
		row, ok := show(o)
		return row, ok, nil
	})
}

// pageOrderKeys is pageKeys over the keys under prefix, each an order's
// ID, bounded by orderScanBound.
func pageOrderKeys(rt *ledger.ReplicaTxn, prefix, after string, limit int,
	pick func(id string, v []byte) (any, bool, error)) ([]any, string, error) {
	return pageKeys(rt, prefix, after, limit, orderScanBound, pick)
}

func noOrder(id string) error {
	return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no purchase order %q", id)}
}

// orderCommand is OpOrder's payload: Order for create (with RequestAt,
// where the handler found each of its requests: invariant 6), ID (and
// Reason) for cancel and close.
type orderCommand struct {
	Action    string                 `msgpack:"a"`
	Order     *purchaseOrder         `msgpack:"o,omitempty"`
	RequestAt []replication.Position `msgpack:"ra,omitempty"`
	ID        string                 `msgpack:"i,omitempty"`
	Reason    string                 `msgpack:"w,omitempty"`
}

// orderAnswer is the body of OpOrder's result.
type orderAnswer struct {
	Order     purchaseOrder `msgpack:"o"`
	Duplicate bool          `msgpack:"d,omitempty"`
}

// checkReason checks a cancel's or close's reason (required for a
// cancel).
func checkReason(action, reason string) error {
	if err := checkText("reason", reason, maxOrderReason, true); err != nil {
		return err
	}
	if action == orderCancel && strings.TrimSpace(reason) == "" {
		return storeline.Invalidf("reason", "a reason is required (why the order is cancelled)")
	}
	return nil
}

func applyOrder(tx *Tx, payload []byte) ([]byte, error) {
	var c orderCommand
	if err := msgpack.Unmarshal(payload, &c); err != nil {
		return nil, storeline.Invalidf("", "undecodable order command: %v", err)
	}
	switch c.Action {
	case orderCreate:
		if c.Order == nil {
			return nil, storeline.Invalidf("", "an order to create is required")
		}
		return applyOrderCreate(tx, c.Order, c.RequestAt)
	case orderCancel, orderClose:
		return applyOrderFinal(tx, &c)
	}
	return nil, storeline.Invalidf("", "unknown order action %q", c.Action)
}

func applyOrderCreate(tx *Tx, o *purchaseOrder, at []replication.Position) ([]byte, error) {
	// What the entry sets is never the caller's.
	o.Currency, o.CreatedMs, o.Final, o.FinalMs, o.Reason, o.Receipts = "", 0, "", 0, "", nil
	if err := o.validate(); err != nil {
		return nil, err
	}
	old, ok, err := getOrder(tx.ReplicaTxn, o.ID)
	if err != nil {
		return nil, err
	}
	if ok {
		if !o.sameContent(old) {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("purchase order %q exists with other content", o.ID)}
		}
		return msgpack.Marshal(&orderAnswer{Order: *old, Duplicate: true})
	}
	b := &txBook{rt: tx.ReplicaTxn}
	err = orderRefs(b, o)
	if b.err != nil {
		return nil, b.err // a storage error wins over a business one
	}
	if err != nil {
		return nil, err
	}
	keys, err := checkOrderRequests(tx.ReplicaTxn, o, at)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := tx.SetMeta(k, []byte(o.ID)); err != nil {
			return nil, err
		}
	}
	o.CreatedMs = tx.At.UnixMilli()
	if err := putOrder(tx.ReplicaTxn, o); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&orderAnswer{Order: *o})
}

// checkOrderRequests checks that each request the order names is a
// request draft of its store, found at the position the entry carries,
// answered by no order and made no document (invariant 6); it returns
// the keys to mark them answered by, in the order's order.
func checkOrderRequests(rt *ledger.ReplicaTxn, o *purchaseOrder, at []replication.Position) ([]string, error) {
	keys := make([]string, 0, len(o.Requests))
	for i, rq := range o.Requests {
		f := fmt.Sprintf("requests[%d]", i)
		k := requestKey(rq.Store, rq.Event)
		v, err := rt.Meta(k)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: f,
				Err: fmt.Errorf("request %s of %q is answered by purchase order %q already", rq.Event, rq.Store, v)}
		}
		var ev storeline.Event
		if i < len(at) {
			raw, err := rt.Meta(eventKey(rq.Store, at[i].Epoch, at[i].Seq))
			if err != nil {
				return nil, err
			}
			if raw != nil {
				if ev, err = decodeEvent(raw); err != nil {
					return nil, err
				}
			}
		}
		if ev.ID != rq.Event {
			return nil, storeline.Invalidf(f, "store %q has sent no request draft %s", rq.Store, rq.Event)
		}
		if dr, ok := ev.Body.(*storeline.DocumentDraft); !ok || dr.Type != storeline.DocRequest {
			return nil, storeline.Invalidf(f, "event %s of %q is not a request draft", rq.Event, rq.Store)
		}
		doc, err := rt.Meta(boDraft + string(rq.Store) + "\x00" + string(rq.Event[:]))
		if err != nil {
			return nil, err
		}
		if doc != nil {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: f,
				Err: fmt.Errorf("request %s of %q was made document %q", rq.Event, rq.Store, doc)}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// answeringOrder returns the order answering a request draft, "" if none
// (invariant 6).
func answeringOrder(rt *ledger.ReplicaTxn, store storeline.StoreID, event storeline.EventID) (string, error) {
	v, err := rt.Meta(requestKey(store, event))
	return string(v), err
}

// checkDraftNotRequest refuses a document made from a request the
// entry finds answered (a document naming an unanswered one by hand,
// with its own type, is refused by the handler only: invariant 6).
func checkDraftNotRequest(rt *ledger.ReplicaTxn, ref *storeline.DraftRef) error {
	if ref == nil {
		return nil
	}
	o, err := answeringOrder(rt, ref.Store, ref.Event)
	if err == nil && o != "" {
		err = errRequestDraft(ref.Event, o)
	}
	return err
}

// errRequestDraft refuses making a document of request draft event.
func errRequestDraft(event storeline.EventID, order string) error {
	by := ""
	if order != "" {
		by = fmt.Sprintf(" (purchase order %q answers it)", order)
	}
	return storeline.Invalidf("draft", "draft %s is a request: a request is answered by a purchase order%s, not made a document", event, by)
}

// orderRefs checks what an order names against master data, as a
// document's are checked (docRefs: unknown is a 422 naming the field),
// and normalises its quantities by the items' units and its prices to
// the store's currency, which it records.
func orderRefs(b *txBook, o *purchaseOrder) error {
	st, ok := b.Store(o.Store)
	if !ok {
		return storeline.Invalidf("store", "unknown store %q", o.Store)
	}
	if !b.Supplier(o.Supplier) {
		return storeline.Invalidf("supplier", "unknown supplier %q", o.Supplier)
	}
	o.Currency = st.Currency
	for i := range o.Lines {
		l := &o.Lines[i]
		f := fmt.Sprintf("lines[%d]", i)
		it, ok := b.Item(l.Item)
		if !ok {
			return storeline.Invalidf(f+".item", "unknown item %q", l.Item)
		}
		q, err := storeline.NormQty(f+".qty", l.Qty, it.Unit)
		if err != nil {
			return err
		}
		l.Qty = q
		if l.Price != nil {
			p, err := st.Currency.Amount(f+".price", *l.Price)
			if err != nil {
				return err
			}
			l.Price = &p
		}
	}
	return nil
}

func applyOrderFinal(tx *Tx, c *orderCommand) ([]byte, error) {
	if err := storeline.CheckID("id", c.ID); err != nil {
		return nil, err
	}
	if err := checkReason(c.Action, c.Reason); err != nil {
		return nil, err
	}
	o, ok, err := getOrder(tx.ReplicaTxn, c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, noOrder(c.ID)
	}
	if o.Final != "" {
		return nil, statusConflict("purchase order %q is %s already", o.ID, o.Final)
	}
	final := orderClosed
	if c.Action == orderCancel {
		// An invoice naming the order but none of its items brought it
		// nothing: only a receipt of something counts as goods received.
		if i := slices.IndexFunc(o.Receipts, orderReceipt.brought); i >= 0 {
			return nil, statusConflict("purchase order %q has received goods (invoice %q): close it instead", o.ID, o.Receipts[i].Doc)
		}
		final = orderCancelled
	}
	o.Final, o.FinalMs, o.Reason = final, tx.At.UnixMilli(), c.Reason
	if err := putOrder(tx.ReplicaTxn, o); err != nil {
		return nil, err
	}
	if final == orderCancelled {
		// Its requests are unanswered again (invariant 6).
		for _, rq := range o.Requests {
			k := requestKey(rq.Store, rq.Event)
			v, err := tx.Meta(k)
			if err != nil {
				return nil, err
			}
			if string(v) == o.ID {
				if err := tx.SetMeta(k, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	return msgpack.Marshal(&orderAnswer{Order: *o})
}

// ordersOn reports whether the cluster's level has purchase orders
// (invariant 4).
func ordersOn(rt *ledger.ReplicaTxn) (bool, error) {
	lv, err := readClusterLevel(rt)
	return err == nil && lv >= opLevel(OpOrder), err
}

// dropOrderBelowLevel drops a document's order below the level of
// orders, as nodes that do not know the field do (invariant 4).
func dropOrderBelowLevel(tx *Tx, d *storeline.Document) error {
	if d.Order == "" {
		return nil
	}
	on, err := ordersOn(tx.ReplicaTxn)
	if err == nil && !on {
		d.Order = ""
	}
	return err
}

// orderOfInvoice returns the order an incoming invoice names, checked as
// one it may fulfil (invariant 3); nil if it names none or the level has
// no orders.
func orderOfInvoice(tx *Tx, d *storeline.Document) (*purchaseOrder, error) {
	if d.Order == "" || d.Type != storeline.DocIncomingInvoice {
		return nil, nil
	}
	if on, err := ordersOn(tx.ReplicaTxn); err != nil || !on {
		return nil, err
	}
	o, ok, err := getOrder(tx.ReplicaTxn, d.Order)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, storeline.Invalidf("order", "unknown purchase order %q", d.Order)
	case o.Store != d.Store:
		return nil, storeline.Invalidf("order", "purchase order %q is for store %q, not %q", o.ID, o.Store, d.Store)
	case o.Supplier != d.Supplier:
		return nil, storeline.Invalidf("order", "purchase order %q is from supplier %q, not %q", o.ID, o.Supplier, d.Supplier)
	case o.Final != "":
		return nil, storeline.Invalidf("order", "purchase order %q is %s", o.ID, o.Final)
	}
	return o, nil
}

// checkInvoiceOrder refuses, when a document is created, an order its
// invoice may not fulfil.
func checkInvoiceOrder(tx *Tx, d *storeline.Document) error {
	_, err := orderOfInvoice(tx, d)
	return err
}

// planOrderReceipt returns the order an invoice being posted fulfils
// with its receipt added, for the post to write after its checks (nil:
// none to write).
func planOrderReceipt(tx *Tx, d *storeline.Document) (*purchaseOrder, error) {
	o, err := orderOfInvoice(tx, d)
	if err != nil || o == nil {
		return nil, err
	}
	if slices.ContainsFunc(o.Receipts, func(rc orderReceipt) bool { return rc.Doc == d.ID }) {
		// Never so (a document is posted once; its cancel removes it).
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "order",
			Err: fmt.Errorf("purchase order %q counts invoice %q received already", o.ID, d.ID)}
	}
	rc := orderReceipt{Doc: d.ID, Qty: make([]decimal.Decimal, len(o.Lines))}
	for i := range rc.Qty {
		rc.Qty[i] = decimal.Zero
	}
	for _, l := range d.Lines {
		if i := o.lineOf(l.Item); i >= 0 {
			rc.Qty[i] = rc.Qty[i].Add(l.Qty)
		}
	}
	o.Receipts = append(o.Receipts, rc)
	return o, nil
}

// planOrderReturn returns the order a posted invoice being cancelled
// fulfilled with the invoice's receipt taken back (nil: none to write).
func planOrderReturn(tx *Tx, d *storeline.Document) (*purchaseOrder, error) {
	if d.Order == "" || d.Type != storeline.DocIncomingInvoice {
		return nil, nil
	}
	if on, err := ordersOn(tx.ReplicaTxn); err != nil || !on {
		return nil, err
	}
	o, ok, err := getOrder(tx.ReplicaTxn, d.Order)
	if err != nil || !ok {
		return nil, err
	}
	i := slices.IndexFunc(o.Receipts, func(rc orderReceipt) bool { return rc.Doc == d.ID })
	if i < 0 {
		return nil, nil
	}
	o.Receipts = slices.Delete(o.Receipts, i, i+1)
	return o, nil
}

// orderLineIn is a line of POST /v1/orders: decimals as raw JSON, so a
// number where a string belongs is refused naming its line.
type orderLineIn struct {
	Item  string          `json:"item"`
	Qty   json.RawMessage `json:"qty"`
	Price json.RawMessage `json:"price"`
}

// orderRequestIn names a request draft in POST /v1/orders.
type orderRequestIn struct {
	Store string `json:"store"`
	Event string `json:"event"`
}

// orderIn is the body of POST /v1/orders.
type orderIn struct {
	ID         string           `json:"id"`
	Supplier   string           `json:"supplier"`
	Store      string           `json:"store"`
	ExpectedOn string           `json:"expected_on"`
	Note       string           `json:"note"`
	Lines      []orderLineIn    `json:"lines"`
	Requests   []orderRequestIn `json:"requests"`
}

// wireDecimal reads a decimal that must be a JSON string of plain
// decimal spelling (wire.go); absent (or null) is ok false.
func wireDecimal(field string, raw json.RawMessage) (d decimal.Decimal, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return d, false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || !plainDecimal.MatchString(s) {
		return d, false, errMalformed(field, "%.40s: want a decimal in a string, as \"12.50\"", raw)
	}
	d, err = decimal.NewFromString(s)
	if err != nil {
		return d, false, errMalformed(field, "%.40s: want a decimal in a string, as \"12.50\"", raw)
	}
	return d, true, nil
}

// order checks the body and returns the order it asks for.
func (in *orderIn) order() (*purchaseOrder, error) {
	o := &purchaseOrder{ID: in.ID, Supplier: storeline.SupplierID(in.Supplier), Store: storeline.StoreID(in.Store),
		ExpectedOn: storeline.Date(in.ExpectedOn), Note: in.Note}
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		q, ok, err := wireDecimal(f+".qty", l.Qty)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, storeline.Invalidf(f+".qty", "a quantity is required (a decimal string)")
		}
		ol := orderLine{Item: storeline.ItemID(l.Item), Qty: q}
		if p, ok, err := wireDecimal(f+".price", l.Price); err != nil {
			return nil, err
		} else if ok {
			ol.Price = &p
		}
		o.Lines = append(o.Lines, ol)
	}
	for i, rq := range in.Requests {
		ev, err := storeline.ParseEventID(rq.Event)
		if err != nil && rq.Event != "" {
			return nil, errMalformed(fmt.Sprintf("requests[%d].event", i), "%.80q is not an event id (a UUID)", rq.Event)
		}
		o.Requests = append(o.Requests, orderRequest{Store: storeline.StoreID(rq.Store), Event: ev})
	}
	return o, o.validate()
}

// requestPositions finds where each of the order's requests is in its
// store's journal as this node holds it, for the entry to read it by
// (invariant 6); one not found is left at the zero position, which holds
// no event, and the entry refuses it.
func (n *Node) requestPositions(ctx context.Context, o *purchaseOrder) ([]replication.Position, error) {
	if len(o.Requests) == 0 {
		return nil, nil
	}
	// After a read barrier this node holds every push committed before
	// the order arrived: a request just pushed through another node is
	// found, and a retry sent to another node finds what the first try
	// found, so the entry (and its Idempotency-Key's hash) is the same.
	if err := n.Linearize(ctx); err != nil {
		return nil, err
	}
	at := make([]replication.Position, len(o.Requests))
	left := len(o.Requests)
	err := n.ScanEvents(o.Store, func(ev storeline.Event) bool {
		if i := slices.IndexFunc(o.Requests, func(rq orderRequest) bool { return rq.Event == ev.ID }); i >= 0 {
			at[i] = replication.Position{Epoch: ev.Epoch, Seq: ev.Seq}
			left--
		}
		return left > 0
	})
	return at, err
}

// submitOrder submits an OpOrder command under the request's
// Idempotency-Key and returns the order the entry answered, and whether
// it was a retry.
func (n *Node) submitOrder(r *http.Request, c *orderCommand) (*orderAnswer, bool, error) {
	key, err := idempotencyKey(r)
	if err != nil {
		return nil, false, err
	}
	enc, err := msgpack.Marshal(c)
	if err != nil {
		return nil, false, storeline.E("central.order", storeline.Internal, err)
	}
	res, err := n.Submit(r.Context(), OpOrder, key, enc)
	if err != nil {
		return nil, false, err
	}
	if err := res.Err(); err != nil {
		return nil, false, err
	}
	var a orderAnswer
	if err := msgpack.Unmarshal(res.Body, &a); err != nil {
		return nil, false, storeline.E("central.order", storeline.Internal, err)
	}
	return &a, a.Duplicate || res.Duplicate, nil
}

// postOrder creates an order: 201, or 200 when it exists with the same
// content.
func (n *Node) postOrder(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in orderIn
	if err := strictJSON(body, &in); err != nil {
		return err
	}
	o, err := in.order()
	if err != nil {
		return err
	}
	at, err := n.requestPositions(r.Context(), o)
	if err != nil {
		return err
	}
	a, dup, err := n.submitOrder(r, &orderCommand{Action: orderCreate, Order: o, RequestAt: at})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if dup {
		status = http.StatusOK
	}
	writeJSON(w, status, orderJSON(&a.Order))
	return nil
}

// orderActionIn is the body of POST /v1/orders/{id}/cancel and /close.
type orderActionIn struct {
	Reason string `json:"reason"`
}

// postOrderAction cancels or closes an order: 200 with the order.
func (n *Node) postOrderAction(w http.ResponseWriter, r *http.Request, action string) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in orderActionIn
	if len(body) > 0 { // a close needs no body; a cancel without one lacks its reason
		if err := strictJSON(body, &in); err != nil {
			return err
		}
	}
	if err := checkReason(action, in.Reason); err != nil {
		return err
	}
	a, _, err := n.submitOrder(r, &orderCommand{Action: action, ID: id, Reason: in.Reason})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orderJSON(&a.Order))
	return nil
}

// checkDocOrderLevel refuses a document naming an order until the
// cluster runs the level of orders (invariant 4): the FSM would drop it.
func (n *Node) checkDocOrderLevel(d *storeline.Document) error {
	if d.Order == "" {
		return nil
	}
	return n.checkLevel(OpOrder)
}

func orderJSON(o *purchaseOrder) map[string]any {
	status := o.status()
	lines := make([]any, len(o.Lines))
	for i, l := range o.Lines {
		rcv := o.received(i)
		out := decimal.Zero
		if o.Final == "" && rcv.LessThan(l.Qty) {
			out = l.Qty.Sub(rcv)
		}
		m := map[string]any{"item": l.Item, "ordered": l.Qty.String(), "received": rcv.String(), "outstanding": out.String()}
		if l.Price != nil {
			m["price"] = moneyString(o.Currency, *l.Price)
		}
		lines[i] = m
	}
	invoices := make([]string, len(o.Receipts))
	for i, rc := range o.Receipts {
		invoices[i] = rc.Doc
	}
	requests := make([]any, len(o.Requests))
	for i, rq := range o.Requests {
		requests[i] = map[string]any{"store": rq.Store, "event": rq.Event}
	}
	m := map[string]any{"id": o.ID, "supplier": o.Supplier, "store": o.Store, "currency": o.Currency, "status": status,
		"lines": lines, "invoices": invoices, "requests": requests, "created_at": time.UnixMilli(o.CreatedMs).UTC()}
	if o.ExpectedOn != "" {
		m["expected_on"] = o.ExpectedOn
	}
	if o.Note != "" {
		m["note"] = o.Note
	}
	switch o.Final {
	case orderCancelled:
		m["cancelled_at"] = time.UnixMilli(o.FinalMs).UTC()
	case orderClosed:
		m["closed_at"] = time.UnixMilli(o.FinalMs).UTC()
	}
	if o.Reason != "" {
		m["reason"] = o.Reason
	}
	return m
}

func (n *Node) getOrder(w http.ResponseWriter, r *http.Request) error {
	return serveRecord(n, w, r, getOrder, noOrder, func(o *purchaseOrder) any { return orderJSON(o) })
}

// listOrders pages through orders in ID order, optionally of one store,
// supplier or status, as listDocuments pages through documents; one
// store's from its index (invariant 7), so a page of a store examines
// its orders only.
func (n *Node) listOrders(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	store, supplier, status, after := q.Get("store"), q.Get("supplier"), q.Get("status"), q.Get("after")
	for _, f := range [...]struct{ name, v string }{{"store", store}, {"supplier", supplier}, {"after", after}} {
		if f.v != "" && !storeline.ValidID(f.v) {
			return errMalformed(f.name, "%.80q is not an id", f.v)
		}
	}
	if status != "" && !slices.Contains(orderStatuses, status) {
		return errMalformed("status", "%q: want one of %s", status, strings.Join(orderStatuses, ", "))
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var out []any
	var next string
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		if store != "" {
			// The store's index (invariant 7); an open or partial order
			// is found among the open ones alone.
			out, next, err = storeOrderPage(rt, storeline.StoreID(store), expectsGoods(status), after, limit,
				func(indexed string) bool { return status == "" || indexed == status },
				func(o *purchaseOrder) (any, bool) {
					if (supplier != "" && string(o.Supplier) != supplier) || (status != "" && o.status() != status) {
						return nil, false
					}
					return orderJSON(o), true
				})
			return err
		}
		out, next, err = pageRecords(rt, poOrder, "purchase order", after, limit, func(_ string, o *purchaseOrder) (any, bool) {
			if (supplier != "" && string(o.Supplier) != supplier) || (status != "" && o.status() != status) {
				return nil, false
			}
			return orderJSON(o), true
		})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": out, "next": next})
	return nil
}

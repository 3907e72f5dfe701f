package central

// Cost of sales at central. Shops post the units and money of their
// sales; central derives what the units cost (DESIGN.md, "Cost of
// sales"). It does so in bounded passes over each shop's events after a
// per-shop cursor, run inside Raft entries:
//
//  1. A pass reads the shop's events by key from the cursor up to each
//     epoch's mark, costs at most MaxCostedPerEntry of them, and books the
//     cost postings of its receipts and returns as one central-authored
//     event (ID derived from the shop and the range), then moves the
//     cursor. applyPush runs a pass in every push entry, after the
//     batch is applied (backOfficeAfterPush), so a shop's sales are
//     costed as they arrive and a backlog is the exception (state from
//     before this existed, a store not yet in the master data).
//  2. Each sale is costed at the moving average as it stood just before
//     it: the units of every uncosted sale, already in the balances, are
//     added back while it is costed, and the costs of the pass's earlier
//     ones are counted as pending. The units to add back are running sums
//     per balance (boAddBack) over the events after the costed cursor up
//     to a queued cursor: a pass adds the events applied since the queued
//     cursor (normally the batch just pushed) and takes out the ones it
//     costs, so it reads what it costs and what is new, never the whole
//     backlog. Sales move units at the average, so costing them late
//     changes nothing as long as no document moved the average in
//     between; hence
//  3. Posting or cancelling a document first plans a pass for its shop
//     and derives the document against the books with the pass's costs
//     pending; only if both succeed are the pass and the document written
//     (an op that refuses writes nothing). If one pass would not catch
//     the shop up, the document is refused (409, field "store"): the API
//     runs passes (OpCostCatchUp) until the shop is caught up first.

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// OpCostCatchUp runs one cost-of-sales pass for a store.
const OpCostCatchUp = "backoffice.cogs.catchup"

// MaxCostedPerEntry bounds the shop events one pass reads, so an entry's
// transaction stays small whatever the backlog.
const MaxCostedPerEntry = 2000

const (
	boCogs   = "bo/cogs/"   // store → epoch8 seq8 of the last event costed
	boMargin = "bo/margin/" // store \0 epoch8 seq8 → the sale's cost (decimal string; negative for a return)
	// boCogsQ is the last event whose units the add-back sums hold (absent:
	// the costed cursor, with no sums: state from before they existed).
	boCogsQ   = "bo/cogsq/" // store → epoch8 seq8
	boAddBack = "bo/ab/"    // store \0 balKey → units of the uncosted sales on that balance (decimal string)
)

// costPassLimit is the limit of the passes the FSM runs (tests lower it to
// make a backlog). Every replica must use the same: only tests change it,
// before they start nodes.
var costPassLimit atomic.Int64

func init() { costPassLimit.Store(MaxCostedPerEntry) }

func passLimit() int { return int(costPassLimit.Load()) }

// boHookOff turns backOfficeAfterPush off, for BenchmarkCostBacklog's
// "before" (pushes that only apply their sales). Only benchmarks set it.
var boHookOff atomic.Bool

func saleCostKey(store storeline.StoreID, epoch, seq uint64) string {
	return boMargin + string(store) + "\x00" + string(ledger.PutU64(epoch)) + string(ledger.PutU64(seq))
}

type catchUpPayload struct {
	Store storeline.StoreID `msgpack:"s"`
}

// catchUpAnswer says whether the store is caught up after the pass.
type catchUpAnswer struct {
	Done   bool   `msgpack:"d"`
	Costed int    `msgpack:"n"`
	Epoch  uint64 `msgpack:"e"`
	Seq    uint64 `msgpack:"q"`
}

func applyCostCatchUp(tx *Tx, payload []byte) ([]byte, error) {
	var p catchUpPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	if ok, err := tx.GetMaster(storeline.KindStore, string(p.Store), nil); err != nil || !ok {
		if err == nil {
			err = storeline.Invalidf("store", "unknown store %q", p.Store)
		}
		return nil, err
	}
	plan, err := planCosts(tx, p.Store, passLimit(), nil, nil)
	if err != nil {
		return nil, err
	}
	// Writes from here on. Opening the index builds it if the state has
	// none, which queues the store's sales too; the plan's sums, written
	// after, are the same or newer.
	if _, err := openIndex(tx); err != nil {
		return nil, err
	}
	if err := plan.commit(tx); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&plan.answer)
}

// costPlan is a pass computed but not yet written.
type costPlan struct {
	store  storeline.StoreID
	from   replication.Position
	answer catchUpAnswer
	// queued is where the add-back sums will stand once written (from
	// queued0); back their changes.
	queued, queued0 replication.Position
	back            *addBack
	cost            []storeline.Posting
	pending         map[string]decimal.Decimal // the pass's cost postings, by balKey
	sold            map[storeline.ItemID]decimal.Decimal
	// costs are each sale's cost, for its margin.
	costs []saleCost
	// book is the plan's stock book when it read every stock balance of
	// the store (prefetch), for stockAfter; nil if it did not.
	book *txBook
}

type saleCost struct {
	pos  replication.Position
	cost decimal.Decimal
}

// addBack is the running add-back sums of one store (invariant 2): what
// is stored plus the changes of the entry.
type addBack struct {
	rt    *ledger.ReplicaTxn
	store storeline.StoreID
	// stored is false when no sum can be non-zero (the costed and queued
	// cursors were equal), so nothing is read.
	stored bool
	base   map[string]decimal.Decimal
	delta  map[string]decimal.Decimal
}

func (a *addBack) key(k string) string { return boAddBack + string(a.store) + "\x00" + k }

func (a *addBack) stored0(k string) (decimal.Decimal, error) {
	if !a.stored {
		return decimal.Zero, nil
	}
	if v, ok := a.base[k]; ok {
		return v, nil
	}
	raw, err := a.rt.Meta(a.key(k))
	if err != nil || raw == nil {
		return decimal.Zero, err
	}
	v, err := decimal.NewFromString(string(raw))
	if err != nil {
		return v, fmt.Errorf("add-back %q: %w", k, err)
	}
	a.base[k] = v
	return v, nil
}

// outstanding is the units of uncosted sales on balance k.
func (a *addBack) outstanding(k string) (decimal.Decimal, error) {
	v, err := a.stored0(k)
	d, ok := a.delta[k]
	if !ok && v.Sign() == 0 && v.Exponent() >= 0 && !slowBooks.Load() {
		// What v.Add of the zero Decimal gives (exponent 0), without
		// the arithmetic: most balances a pass reads have no sum.
		return zeroE0, err
	}
	return v.Add(d), err
}

var zeroE0 = decimal.New(0, 0)

// add counts (sign 1) or uncounts (-1) the units of a sale's postings.
func (a *addBack) add(ps []storeline.Posting, sign int64) {
	for _, p := range ps {
		if !p.Asset.IsMoney() {
			k := balKey(p.Account, p.Asset)
			if sign > 0 {
				a.delta[k] = a.delta[k].Add(p.Amount)
			} else {
				a.delta[k] = a.delta[k].Sub(p.Amount)
			}
		}
	}
}

func (a *addBack) write() error {
	keys := make([]string, 0, len(a.delta))
	for k, d := range a.delta {
		// A sale queued and costed in the same pass leaves its sums
		// as they were: nothing to read or write.
		if !d.IsZero() {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := a.outstanding(k)
		if err != nil {
			return err
		}
		if v.IsZero() {
			err = a.rt.SetMeta(a.key(k), nil)
		} else {
			err = a.rt.SetMeta(a.key(k), []byte(v.String()))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readPosition(rt *ledger.ReplicaTxn, key string) (replication.Position, bool, error) {
	v, err := rt.Meta(key)
	if err != nil || len(v) != 16 {
		return replication.Position{}, false, err
	}
	return replication.Position{Epoch: ledger.U64(v[:8]), Seq: ledger.U64(v[8:])}, true, nil
}

func putPosition(rt *ledger.ReplicaTxn, key string, p replication.Position) error {
	return rt.SetMeta(key, append(ledger.PutU64(p.Epoch), ledger.PutU64(p.Seq)...))
}

// wireEvent reads a stored event of store; nil if there is none at the
// position (the event was refused, or skipped as a duplicate).
func wireEvent(rt *ledger.ReplicaTxn, store storeline.StoreID, pos replication.Position) (*replication.WireEvent, error) {
	raw, err := rt.Meta(eventKey(store, pos.Epoch, pos.Seq))
	if err != nil || raw == nil {
		return nil, err
	}
	var w replication.WireEvent
	if err := msgpack.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("event %s %s: %w", store, pos, err)
	}
	return &w, nil
}

func wirePostings(w *replication.WireEvent) ([]storeline.Posting, error) {
	ps := make([]storeline.Posting, len(w.Postings))
	for i, wp := range w.Postings {
		ps[i] = storeline.Posting{Account: wp.Account, Asset: storeline.Asset(wp.Asset)}
		if err := ps[i].Amount.UnmarshalBinary(wp.Amount); err != nil {
			return nil, fmt.Errorf("event %s %d/%d: %w", w.Origin, w.Epoch, w.Seq, err)
		}
	}
	return ps, nil
}

func isSale(kind string) bool {
	return kind == string(storeline.KindReceipt) || kind == string(storeline.KindReturn)
}

// pushedEntry is what applyPush has read and decoded of its entry by the
// time its hook runs, so the hook does not read or decode it again.
type pushedEntry struct {
	// marks are every epoch's mark of the store after the batch.
	marks []replication.Position
	// events holds, by position, every event of the batch above the mark
	// before it: the event with its postings if it was stored, nil if not
	// (a duplicate or a rejection).
	events map[replication.Position]*pushedEvent
	// excise is the excise flag of the items the batch's checks read
	// (false for an item that does not exist), as boIndex.excise has it.
	excise map[storeline.ItemID]bool
	// balances holds the balances the batch moved as the entry wrote
	// them, by balKey.
	balances map[string]decimal.Decimal
	// stock, when not nil, holds every stock balance of the store as the
	// entry stood before the batch (pushStockBook); balances has those
	// the batch moved.
	stock *txBook
}

// pushStockBook reads every stock balance of store into a book, before a
// push's batch writes anything, if the batch moves the store's stock and
// they are not too many (nil otherwise). The applier's flush, the cost
// pass and the negative-stock recheck all read those balances: one scan
// serves the three, and a scan early in the entry sorts few pending
// writes (a Badger iterator sorts them all).
func pushStockBook(tx *Tx, store storeline.StoreID, evs replication.WireEvents) (*txBook, error) {
	if boHookOff.Load() || slowBooks.Load() {
		return nil, nil
	}
	prefix := "stock/" + string(store) + "/"
	items := map[string]bool{}
	for i := range evs {
		for _, p := range evs[i].Postings {
			if strings.HasPrefix(p.Account, prefix) && strings.HasPrefix(p.Asset, "item:") {
				items[p.Asset] = true
			}
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	b := &txBook{rt: tx.ReplicaTxn, reads: map[string]decimal.Decimal{}}
	if err := b.prefetch(rpBal+prefix, 16*len(items)+64); err != nil || b.whole == "" {
		return nil, err
	}
	return b, nil
}

type pushedEvent struct {
	w  *replication.WireEvent
	ps []storeline.Posting
}

// planCosts computes one pass (invariants 1-2) costing at most limit
// events, reading only. It queues every event applied since the queued
// cursor (pushed, if not nil, holds the marks and the events the caller
// has read already) and hands each to ix (when not nil) to index.
func planCosts(tx *Tx, store storeline.StoreID, limit int, pushed *pushedEntry, ix *boIndex) (*costPlan, error) {
	from, _, err := readPosition(tx.ReplicaTxn, boCogs+string(store))
	if err != nil {
		return nil, err
	}
	queued, ok, err := readPosition(tx.ReplicaTxn, boCogsQ+string(store))
	if err != nil {
		return nil, err
	}
	if !ok || queued.Less(from) {
		queued = from
	}
	var ms []replication.Position
	if pushed != nil {
		ms = pushed.marks
	} else if ms, err = marks(tx.ReplicaTxn, store); err != nil {
		return nil, err
	}
	plan := &costPlan{store: store, from: from, queued: queued, queued0: queued,
		back:    &addBack{rt: tx.ReplicaTxn, store: store, stored: queued != from, base: map[string]decimal.Decimal{}, delta: map[string]decimal.Decimal{}},
		pending: map[string]decimal.Decimal{}, sold: map[storeline.ItemID]decimal.Decimal{}}
	var sales []storeline.Event
	var at []replication.Position
	last, read, done := from, 0, true
	for _, m := range ms {
		if m.Epoch < from.Epoch {
			continue
		}
		seq := uint64(1)
		if m.Epoch == from.Epoch {
			seq = from.Seq + 1
		}
		for ; seq <= m.Seq; seq++ {
			pos := replication.Position{Epoch: m.Epoch, Seq: seq}
			inPass, isNew := read < limit, queued.Less(pos)
			if !inPass {
				done = false
				if !isNew {
					// Queued already: its units are in the sums. Skip to
					// the first event after the queued cursor.
					if m.Epoch < queued.Epoch {
						break
					}
					seq = queued.Seq
					continue
				}
			} else {
				read++
				last = pos
			}
			if isNew {
				plan.queued = pos
			}
			var w *replication.WireEvent
			var ps []storeline.Posting
			if pe, ok := pushed.event(pos); ok {
				if pe == nil {
					continue // not stored: it moved nothing
				}
				w, ps = pe.w, pe.ps
			} else {
				if w, err = wireEvent(tx.ReplicaTxn, store, pos); err != nil {
					return nil, err
				}
				if w == nil {
					continue // refused: it moved nothing
				}
				if !isSale(w.Kind) && (!isNew || ix == nil) {
					continue
				}
				if ps, err = wirePostings(w); err != nil {
					return nil, err
				}
			}
			if !isSale(w.Kind) && (!isNew || ix == nil) {
				continue
			}
			if isNew && ix != nil {
				if err := ix.event(store, w, ps); err != nil {
					return nil, err
				}
			}
			if !isSale(w.Kind) {
				continue
			}
			if isNew {
				plan.back.add(ps, 1)
			}
			if inPass {
				sales = append(sales, storeline.Event{Origin: store, Postings: ps})
				at = append(at, pos)
			}
		}
	}
	plan.answer = catchUpAnswer{Done: done, Costed: len(sales), Epoch: last.Epoch, Seq: last.Seq}
	// Planning reads only, so the book may cache what it reads.
	b := &txBook{rt: tx.ReplicaTxn, pending: plan.pending, back: plan.back, reads: map[string]decimal.Decimal{}}
	prefix := rpBal + "stock/" + string(store) + "/"
	if pushed != nil && pushed.stock != nil && pushed.stock.whole == prefix {
		// The store's stock, read before the batch; the batch's
		// balances go on top, next.
		b.reads, b.whole = pushed.stock.reads, pushed.stock.whole
	}
	if pushed != nil {
		for k, v := range pushed.balances {
			b.reads[k] = v
		}
	}
	if len(sales) > 0 && b.whole == "" {
		// Each sold item's stock in every department of the store:
		// prefetched when the store holds few stock balances for what
		// the pass sells (storeline.StockOf reads 2 per department).
		items := map[storeline.ItemID]bool{}
		for i := range sales {
			for _, p := range sales[i].Postings {
				if id, ok := strings.CutPrefix(string(p.Asset), "item:"); ok {
					items[storeline.ItemID(id)] = true
				}
			}
		}
		if err := b.prefetch(prefix, 16*len(items)+64); err != nil {
			return nil, err
		}
	}
	if b.whole == prefix {
		plan.book = b
	}
	if !slowBooks.Load() {
		b.memo = map[balRef]decimal.Decimal{}
	}
	for i := range sales {
		ps, err := storeline.CostOfSales(b, store, sales[i].Postings)
		if b.err != nil {
			return nil, b.err
		}
		if err != nil {
			return nil, err // its store exists (checked by the caller): storage
		}
		// Costed: its units are no longer added back (invariant 2), and
		// its costs are pending: what the book read of those balances
		// is stale.
		plan.back.add(sales[i].Postings, -1)
		b.forget(sales[i].Postings)
		b.forget(ps)
		soldUnits(&sales[i], plan.sold)
		var c decimal.Decimal
		for _, p := range ps {
			k := balKey(p.Account, p.Asset)
			plan.pending[k] = plan.pending[k].Add(p.Amount)
			if strings.HasPrefix(p.Account, "cogs/") {
				c = c.Add(p.Amount)
			}
		}
		plan.costs = append(plan.costs, saleCost{at[i], c})
		plan.cost = append(plan.cost, ps...)
	}
	plan.cost = storeline.MergePostings(plan.cost)
	return plan, nil
}

// recheckBook is the stock book of boIndex.flush, which reads the stock
// of each touched position and writes no balance meanwhile: when they are
// all of one store (a push's), it prefetches that store's stock balances
// rather than reading every department's of each item, most of which
// miss.
//
// after, when not nil, is such a book already (costPlan.stockAfter, the
// push's cost pass): used if it holds the store of sis, so an entry scans
// the store's stock balances once, not twice.
func recheckBook(rt *ledger.ReplicaTxn, sis []storeItem, after *txBook) (*txBook, error) {
	b := &txBook{rt: rt}
	if len(sis) == 0 || sis[0].store != sis[len(sis)-1].store { // sorted by store
		return b, nil
	}
	if after != nil && after.whole == rpBal+"stock/"+string(sis[0].store)+"/" && !slowBooks.Load() {
		return after, nil
	}
	b.reads = map[string]decimal.Decimal{}
	return b, b.prefetch(rpBal+"stock/"+string(sis[0].store)+"/", 16*len(sis)+64)
}

// stockAfter is a stock book of the plan's store as the entry stands once
// the plan is committed, for the negative-stock recheck (boIndex.flush)
// that follows it in the same entry: the plan's prefetch of the store's
// stock balances, taken after the batch's balances were written, with the
// pass's cost postings on top (commit books exactly those; it writes no
// other balance). nil if the plan did not read the whole store.
func (p *costPlan) stockAfter() *txBook {
	if p.book == nil {
		return nil
	}
	return &txBook{rt: p.book.rt, pending: p.pending, reads: p.book.reads, whole: p.book.whole, stores: p.book.stores}
}

// event is pushed.events[pos]; ok is false if p is nil or does not know
// pos.
func (p *pushedEntry) event(pos replication.Position) (*pushedEvent, bool) {
	if p == nil {
		return nil, false
	}
	e, ok := p.events[pos]
	return e, ok
}

// commit books the pass's costs as one central-authored event, takes the
// sold units from the batches first-expiring first, and moves the
// cursors and the add-back sums.
func (p *costPlan) commit(tx *Tx) error {
	if p.queued != p.queued0 || len(p.back.delta) > 0 {
		if err := p.back.write(); err != nil {
			return err
		}
		if err := putPosition(tx.ReplicaTxn, boCogsQ+string(p.store), p.queued); err != nil {
			return err
		}
	}
	last := replication.Position{Epoch: p.answer.Epoch, Seq: p.answer.Seq}
	if last == p.from {
		return nil
	}
	h := sha256.Sum256(fmt.Appendf(nil, "storeline/cogs/%s/%d/%d/%d/%d", p.store, p.from.Epoch, p.from.Seq, last.Epoch, last.Seq))
	var id storeline.EventID
	copy(id[:], h[:16])
	id[6], id[8] = id[6]&0x0f|0x80, id[8]&0x3f|0x80
	ref := fmt.Sprintf("%s %d/%d-%d/%d", p.store, p.from.Epoch, p.from.Seq+1, last.Epoch, last.Seq)
	if err := bookPostings(tx, id, "cost_of_sales", ref, p.cost); err != nil {
		return err
	}
	if err := consumeBatches(tx, p.store, p.sold); err != nil {
		return err
	}
	for _, c := range p.costs {
		if err := tx.SetMeta(saleCostKey(p.store, c.pos.Epoch, c.pos.Seq), []byte(c.cost.String())); err != nil {
			return err
		}
	}
	return putPosition(tx.ReplicaTxn, boCogs+string(p.store), last)
}

// backOfficeAfterPush is applyPush's hook, run in the push's entry once
// its events are applied: it indexes the new events for the reports and
// metrics (boIndex) and costs the store's sales (invariant 1). A store not
// in the master data yet has its events queued and indexed, not costed.
func backOfficeAfterPush(tx *Tx, store storeline.StoreID, pushed *pushedEntry) error {
	if boHookOff.Load() {
		return nil
	}
	ix, err := openIndex(tx)
	if err != nil {
		return err
	}
	for id, ex := range pushed.excise {
		ix.items[id] = ex
	}
	ok, err := tx.HasMaster(storeline.KindStore, string(store))
	if err != nil {
		return err
	}
	limit := passLimit()
	if !ok {
		limit = 0
	}
	plan, err := planCosts(tx, store, limit, pushed, ix)
	if err != nil {
		return err
	}
	if err := plan.commit(tx); err != nil {
		return err
	}
	ix.stock = plan.stockAfter()
	return ix.flush()
}

// planForDocument plans the pass a document of store needs first
// (invariant 3): a Conflict naming "store" if one pass is not enough.
func planForDocument(tx *Tx, store storeline.StoreID) (*costPlan, error) {
	plan, err := planCosts(tx, store, passLimit(), nil, nil)
	if err != nil {
		return nil, err
	}
	if !plan.answer.Done {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "store",
			Err: fmt.Errorf("head office is still costing %s's sales (at %d/%d); retry", store, plan.answer.Epoch, plan.answer.Seq)}
	}
	return plan, nil
}

package central

// Back office: stock documents posted at head office (the root's
// docpost.go derives their postings; this file keeps their lifecycle in
// the FSM).
//
// Invariants:
//
//  1. A document's status only moves forward: draft → posted →
//     cancelled. Posting a posted document, or cancelling one that was
//     never posted, is a Conflict naming "status" and writes nothing.
//  2. Postings are derived once, inside the entry that posts the
//     document, from the replica's state in that entry (so every replica
//     derives the same), and stored with the document. Cancelling applies
//     the stored postings negated: values return at their original
//     amounts; a cost difference left without units goes to variance.
//  3. The postings of a post or a cancel reach the books as one
//     central-authored transfer event (applyTransfer in replication.go):
//     the same balances shops' sales move, and the event is fed to the
//     shops whose accounts it touches. Its ID is derived from the document
//     ID and the action, so a replayed entry is recognised.
//  4. Every check runs before the first write of an op (fsm.go's
//     invariant 3): a refused document changes nothing. The shop's
//     uncosted sales are planned first and written with the document
//     (backoffice_cogs.go).
//  5. A document's ID is chosen by its author; creating it again with
//     the same content is answered as a duplicate, with other content it
//     is a Conflict. A till draft backs at most one document.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The back-office ops of the FSM.
const (
	OpDocCreate = "backoffice.doc.create"
	OpDocPost   = "backoffice.doc.post"
	OpDocCancel = "backoffice.doc.cancel"
	OpRecipePut = "backoffice.recipe.put"
	OpRulePut   = "backoffice.rule.put"
	OpReprice   = "backoffice.reprice.auto"
)

// Keys of the back-office state, all metadata of the replica.
const (
	boDoc    = "bo/doc/"    // id → msgpack docRecord
	boDraft  = "bo/draft/"  // store \0 event16 → document id
	boCost   = "bo/cost/"   // store \0 item → last purchase cost per unit (decimal string)
	boRecipe = "bo/recipe/" // item → msgpack Recipe
	boBatch  = "bo/batch/"  // store \0 item \0 expiry \0 batch → msgpack Batch
	// boBatchItem marks a (store, item) that has batches, so selling an
	// item without any reads one key instead of scanning; boBatchItemV
	// says the markers are complete (absent in state written before).
	boBatchItem  = "bo/batchi/"  // store \0 item → ""
	boBatchItemV = "bo/batchi-v" // → "1"
	boRule       = "bo/rule/"    // id → msgpack RepriceRule
	// boPriceBy names the repricing whose post set the price a key holds
	// (and that price), so its cancel knows the price is still its own.
	boPriceBy = "bo/priceby/" // price ID → document id \0 price
	// boCostBy names the document whose post set the last purchase cost
	// a boCost key holds (and that cost), so a cancel knows the cost is
	// still its own and walks back past cancelled ones (costSet.By).
	// Absent in state written before it existed.
	boCostBy = "bo/costby/" // store \0 item → document id \0 cost
)

func backOfficeOps() []Op {
	return []Op{
		{OpDocCreate, applyDocCreate},
		{OpDocPost, applyDocPost},
		{OpDocCancel, applyDocCancel},
		{OpRecipePut, applyRecipePut},
		{OpRulePut, applyRulePut},
		{OpReprice, applyReprice},
		{OpCostCatchUp, applyCostCatchUp},
		{OpSupplierPayment, applySupplierPayment}, // settlements.go
	}
}

// docRecord is a document as the FSM stores it.
type docRecord struct {
	storeline.PostedDocument
	CreatedMs   int64               `msgpack:"cms"`
	PostedMs    int64               `msgpack:"pms,omitempty"`
	CancelledMs int64               `msgpack:"xms,omitempty"`
	PostEvent   storeline.EventID   `msgpack:"pev,omitempty"`
	CancelEvent storeline.EventID   `msgpack:"xev,omitempty"`
	Prices      []storeline.Price   `msgpack:"prices,omitempty"`  // a repricing's (what they replaced: PriceSets)
	Batches     []storeline.BatchIn `msgpack:"batches,omitempty"` // brought in: an invoice's, a transfer receipt's (backoffice_batches.go)
	// CancelPostings are what cancelling booked: the postings negated,
	// and any variance sweep (storeline.CancelDocument).
	CancelPostings []storeline.Posting `msgpack:"xps,omitempty"`
	// Taken is what the post took from the store's batches
	// (backoffice_batches.go), which cancelling puts back. A document
	// posted before posts recorded it has none (the field is new and
	// optional, so it decodes as before): its cancel puts nothing back,
	// as then.
	Taken []batchTake `msgpack:"taken,omitempty"`
	// Pooled marks an outgoing invoice whose Taken its post counted in
	// its buyer's returnable batches (boReturnable, from level 8 on), for
	// its cancel to take out again; Returned is what a buyer return's post
	// put back into the store's batches from them, which its cancel takes
	// out (backoffice_batches.go). Below level 8 neither is written.
	Pooled   bool        `msgpack:"pool,omitempty"`
	Returned []batchTake `msgpack:"ret,omitempty"`
	// InvoiceReturned is the part of Returned a buyer return naming its
	// invoice put back into that invoice's batches, which its cancel
	// takes out of the invoice's returns again (boInvoiceReturns). Below
	// level 10 it is not written.
	InvoiceReturned []batchTake `msgpack:"reti,omitempty"`
	// Costs are the last purchase costs an invoice's post set, with what
	// they were before, which cancelling puts back where the cost still
	// stands as the post set it. A document posted before posts recorded
	// them has none: its cancel leaves the costs, as then.
	Costs []costSet `msgpack:"costs,omitempty"`
	// PriceSets are the prices a repricing's post set, with what each
	// key held before, which cancelling puts back where the price still
	// stands as the post set it (priceSet). A repricing
	// posted before posts recorded them has none: its cancel withdraws
	// Prices that still hold their value, as then.
	PriceSets []priceSet `msgpack:"psets,omitempty"`
	// FromAtPost marks an automatic repricing (createDraft): its prices
	// take effect when it is posted, not when it was drafted (Doc.From
	// until then), so a draft reviewed days later does not date them
	// back over days the shop charged the old ones. A draft made before
	// this field keeps its From, as then.
	FromAtPost bool `msgpack:"fap,omitempty"`
}

// costSet is a last purchase cost (boCost key) a post set, what the key
// held before (Had false: nothing), and the document whose post had set
// that (By, "" for none or not known: state from before boCostBy).
type costSet struct {
	Key string `msgpack:"k"`
	Set string `msgpack:"s"`
	Was string `msgpack:"w,omitempty"`
	Had bool   `msgpack:"h,omitempty"`
	By  string `msgpack:"b,omitempty"`
}

// costBy answers which document's post set the last purchase cost the
// boCost key k holds now (cur), "" if not known: the boCostBy marker,
// where the cost still holds the value the marker names.
func costBy(tx *Tx, k string, cur []byte) (string, error) {
	if cur == nil {
		return "", nil
	}
	v, err := tx.Meta(boCostBy + k[len(boCost):])
	if err != nil || v == nil {
		return "", err
	}
	doc, cost, _ := strings.Cut(string(v), "\x00")
	if cost != string(cur) {
		return "", nil
	}
	return doc, nil
}

// setCostBy records that document doc's post set the cost the boCost key
// k holds to cost (doc "": none did, or not known).
func setCostBy(tx *Tx, k, doc, cost string) error {
	if doc == "" {
		return tx.SetMeta(boCostBy+k[len(boCost):], nil)
	}
	return tx.SetMeta(boCostBy+k[len(boCost):], []byte(doc+"\x00"+cost))
}

// priceSet is a price (its master ID) a repricing's post set, what the
// key held before (Had false: no price), and the repricing whose post had
// set that (By, "" for none or a price set by hand).
type priceSet struct {
	ID  string          `msgpack:"k"`
	Set decimal.Decimal `msgpack:"s"`
	Was decimal.Decimal `msgpack:"w,omitempty"`
	Had bool            `msgpack:"h,omitempty"`
	By  string          `msgpack:"b,omitempty"`
}

// priceBy answers which repricing's post set the price the key id holds
// now, "" if none did: the boPriceBy marker, where the price still holds
// the value the marker names (a price set by hand since has none:
// forgetPriceBy).
func priceBy(tx *Tx, id string) (cur storeline.Price, ok bool, by string, err error) {
	if ok, err = tx.GetMaster(storeline.KindPrice, id, &cur); err != nil || !ok {
		return cur, false, "", err
	}
	v, err := tx.Meta(boPriceBy + id)
	if err != nil || v == nil {
		return cur, true, "", err
	}
	doc, price, _ := strings.Cut(string(v), "\x00")
	set, err := decimal.NewFromString(price)
	if err != nil {
		return cur, true, "", fmt.Errorf("price %q set by %q: %w", id, doc, err)
	}
	if !set.Equal(cur.Price) {
		return cur, true, "", nil
	}
	return cur, true, doc, nil
}

// forgetPriceBy drops the boPriceBy markers of the prices among ws,
// written by hand (master.put, master.delete): the price a key holds is
// no repricing's then, even where the hand set the value a repricing's
// marker names, so no cancel takes it for its own.
func forgetPriceBy(tx *Tx, ws []ledger.MasterWrite) error {
	for _, w := range ws {
		kind, id := w.Kind, w.ID
		if w.Record != nil {
			kind, id = w.Record.MasterKind(), w.Record.MasterID()
		}
		if kind != storeline.KindPrice {
			continue
		}
		if v, err := tx.Meta(boPriceBy + id); err != nil || v == nil {
			if err != nil {
				return err
			}
			continue
		}
		if err := tx.SetMeta(boPriceBy+id, nil); err != nil {
			return err
		}
	}
	return nil
}

// setPriceBy records that repricing doc set the price id holds to price
// (doc "": none did).
func setPriceBy(tx *Tx, id, doc string, price decimal.Decimal) error {
	if doc == "" {
		return tx.SetMeta(boPriceBy+id, nil)
	}
	return tx.SetMeta(boPriceBy+id, []byte(doc+"\x00"+price.String()))
}

// planPriceSets reads what the keys of a repricing's prices hold before
// its post sets them (it writes nothing).
func planPriceSets(tx *Tx, prices []storeline.Price) ([]priceSet, error) {
	var out []priceSet
	for i := range prices {
		id := prices[i].MasterID()
		j := slices.IndexFunc(out, func(ps priceSet) bool { return ps.ID == id })
		if j < 0 {
			cur, ok, by, err := priceBy(tx, id)
			if err != nil {
				return nil, err
			}
			j = len(out)
			out = append(out, priceSet{ID: id, Had: ok, By: by})
			if ok {
				out[j].Was = cur.Price
			}
		}
		out[j].Set = prices[i].Price
	}
	return out, nil
}

// priceMark is a boPriceBy marker a cancel writes: the repricing whose
// price the key holds again, with that price (By "": none).
type priceMark struct {
	ID  string
	By  string
	Was decimal.Decimal
}

// planPriceRestore plans, without writing, what cancelling a repricing
// does to its prices: each that still stands as its post set it goes back
// to what the key held before, skipping what repricings cancelled since
// had set (their own records say what they found); one a later repricing
// or a hand replaced stays. A repricing posted before posts recorded
// PriceSets withdraws its Prices that still hold their value, as then.
func planPriceRestore(tx *Tx, rec *docRecord) ([]ledger.MasterWrite, []priceMark, error) {
	var ws []ledger.MasterWrite
	if len(rec.PriceSets) == 0 {
		for _, p := range rec.Prices {
			var cur storeline.Price
			ok, err := tx.GetMaster(storeline.KindPrice, p.MasterID(), &cur)
			if err != nil {
				return nil, nil, err
			}
			if ok && cur.Price.Equal(p.Price) {
				ws = append(ws, ledger.MasterWrite{Kind: storeline.KindPrice, ID: p.MasterID()})
			}
		}
		return ws, nil, nil
	}
	var marks []priceMark
	for _, ps := range rec.PriceSets {
		cur, ok, by, err := priceBy(tx, ps.ID)
		if err != nil {
			return nil, nil, err
		}
		if !ok || by != rec.Doc.ID || !cur.Price.Equal(ps.Set) {
			continue
		}
		// Back past the repricings cancelled since they set what this
		// one found: each found what it replaced. By only names posts
		// before this one's, so the walk ends.
		was, had, by, err := backPastCancelled(tx, ps.Was, ps.Had, ps.By, func(prev *docRecord) (decimal.Decimal, bool, string, bool) {
			i := slices.IndexFunc(prev.PriceSets, func(p priceSet) bool { return p.ID == ps.ID })
			if i < 0 {
				return decimal.Decimal{}, false, "", false
			}
			return prev.PriceSets[i].Was, prev.PriceSets[i].Had, prev.PriceSets[i].By, true
		})
		if err != nil {
			return nil, nil, err
		}
		if had {
			p := cur
			p.Price = was
			ws = append(ws, ledger.MasterWrite{Record: &p})
		} else {
			ws = append(ws, ledger.MasterWrite{Kind: storeline.KindPrice, ID: ps.ID})
			by = ""
		}
		marks = append(marks, priceMark{ID: ps.ID, By: by, Was: was})
	}
	return ws, marks, nil
}

// backPastCancelled walks from what a post found at a key (was; had
// false: nothing; by: the document whose post had set it) back past the
// documents cancelled since, each of which found what it had replaced
// (find reads that in its record; false for a document posted before
// posts recorded it, where the walk stops, as at a document standing).
// by only names posts before the one that recorded it, so the walk ends.
func backPastCancelled[T any](tx *Tx, was T, had bool, by string, find func(prev *docRecord) (T, bool, string, bool)) (T, bool, string, error) {
	for by != "" {
		prev, found, err := getDoc(tx.ReplicaTxn, by)
		if err != nil {
			return was, had, by, err
		}
		if !found || prev.Status != storeline.DocCancelled {
			break
		}
		w, h, b, ok := find(prev)
		if !ok {
			break
		}
		was, had, by = w, h, b
	}
	return was, had, by, nil
}

type docIDPayload struct {
	ID string `msgpack:"i"`
}

// docAnswer is the body of every document op's result.
type docAnswer struct {
	Record    docRecord `msgpack:"r"`
	Duplicate bool      `msgpack:"d,omitempty"`
}

func batchKey(b storeline.Batch) string {
	return boBatch + string(b.Store) + "\x00" + string(b.Item) + "\x00" + string(b.Expiry) + "\x00" + b.Batch
}

// txBook is the StockBook of a replica transaction. Storage errors cannot
// pass through the interface; the first is kept in err and checked by the
// caller after the derivation.
type txBook struct {
	rt  *ledger.ReplicaTxn
	err error
	// pending are balance changes of the entry not yet written, by
	// balKey (replication's applier writes its balances once per entry).
	pending map[string]decimal.Decimal
	// back, when set, holds the units of the store's uncosted sales,
	// which Balance takes out (backoffice_cogs.go, invariant 2).
	back   *addBack
	stores map[storeline.StoreID]*storeline.Store
	// moved caches MovedSince's sums by store and position.
	moved map[string]map[string]decimal.Decimal
	// reads, when not nil, caches the decimals read by key: for a user
	// that writes nothing while it reads (a cost pass's plan, which reads
	// each sold item's balances once per line sold).
	reads map[string]decimal.Decimal
	// whole, when not empty, is a key prefix all of whose keys reads
	// holds (prefetch): a key under it that reads lacks does not exist.
	whole string
	// memo, when not nil, holds what Balance answered, for a user that
	// calls forget for every balance whose pending change or add-back
	// sum it changes (a cost pass, which reads an item's balances in
	// every department for each line that sells it).
	memo map[balRef]decimal.Decimal
	// stock, when not nil, lists by item the keys of the store's stock
	// balances reads, pending and the add-back sums may hold, for
	// ItemStock: a superset will do (a key none holds adds nothing).
	stock *stockIndex
	// cache, when not nil, is the FSM's read cache (a push entry's cost
	// pass): LastCost answers from it, and StockDepts the departments
	// holding a store's stock.
	cache *pushCache
	// depts caches, by store, the departments StockDepts found holding
	// stock in the state (and stored add-back sums, when back.stored):
	// found by seeks, once per book (backoffice_cogs.go).
	depts map[storeline.StoreID][]storeline.DeptID
}

type balRef struct {
	acct  string
	asset storeline.Asset
}

// forget drops what memo holds of the balances ps move.
func (b *txBook) forget(ps []storeline.Posting) {
	for i := range ps {
		delete(b.memo, balRef{ps[i].Account, ps[i].Asset})
	}
}

// prefetch reads into b.reads every key under prefix (the state's and
// the entry's pending writes, as any read sees them), unless there are
// more than limit: then it keeps what it read and leaves b.whole alone.
// One scan of a store's few hundred stock balances costs less than the
// point reads of each sold item's balances in every department, most of
// which miss.
//
// A store's stock prefix (rpBal + "stock/<store>/") also lists the keys in
// b.stock, for ItemStock.
func (b *txBook) prefetch(prefix string, limit int) error {
	n, full := 0, true
	b.stock = newStockIndex(prefix)
	err := b.rt.ScanMeta(prefix, func(k string, v []byte) (bool, error) {
		if n == limit {
			full = false
			return false, nil
		}
		n++
		d, err := decimal.NewFromString(string(v))
		if err != nil {
			return false, fmt.Errorf("balance %q: %w", k, err)
		}
		b.reads[k] = d
		b.stock.note(k)
		return true, nil
	})
	if err == nil && full {
		b.whole = prefix
	}
	return err
}

func (b *txBook) fail(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

func (b *txBook) get(kind storeline.MasterKind, id string, into storeline.Record) bool {
	if id == "" {
		return false
	}
	ok, err := b.rt.GetMaster(kind, id, into)
	b.fail(err)
	return ok && err == nil
}

func (b *txBook) Store(id storeline.StoreID) (*storeline.Store, bool) {
	if s, ok := b.stores[id]; ok {
		return s, true
	}
	var s storeline.Store
	if !b.get(storeline.KindStore, string(id), &s) {
		return &s, false
	}
	if b.stores == nil {
		b.stores = map[storeline.StoreID]*storeline.Store{}
	}
	b.stores[id] = &s
	return &s, true
}

func (b *txBook) Item(id storeline.ItemID) (*storeline.Item, bool) {
	var it storeline.Item
	return &it, b.get(storeline.KindItem, string(id), &it)
}

func (b *txBook) Supplier(id storeline.SupplierID) bool {
	return b.get(storeline.KindSupplier, string(id), nil)
}

func (b *txBook) PriceList(id storeline.PriceListID) bool {
	return b.get(storeline.KindPriceList, string(id), nil)
}

func (b *txBook) Recipe(id storeline.ItemID) (*storeline.Recipe, bool) {
	v, err := b.rt.Meta(boRecipe + string(id))
	if b.fail(err); err != nil || v == nil {
		return nil, false
	}
	var r storeline.Recipe
	if err := msgpack.Unmarshal(v, &r); err != nil {
		b.fail(fmt.Errorf("recipe %s: %w", id, err))
		return nil, false
	}
	return &r, true
}

func (b *txBook) decimal(key string) decimal.Decimal {
	if d, ok := b.reads[key]; ok {
		return d
	}
	if b.whole != "" && strings.HasPrefix(key, b.whole) {
		return decimal.Zero
	}
	v, err := b.rt.Meta(key)
	if b.fail(err); err != nil {
		return decimal.Zero
	}
	d := decimal.Zero
	if v != nil {
		if d, err = decimal.NewFromString(string(v)); err != nil {
			b.fail(err)
			return decimal.Zero
		}
	}
	if b.reads != nil {
		b.reads[key] = d
	}
	return d
}

// Balance reads the balances replication keeps (replication.go's balKey),
// which shops' sales and central's transfers both move.
func (b *txBook) Balance(acct string, a storeline.Asset) decimal.Decimal {
	if v, ok := b.memo[balRef{acct, a}]; ok {
		return v
	}
	k := balKey(acct, a)
	v := addExact(b.decimal(k), b.pending[k])
	if b.back != nil {
		o, err := b.back.outstanding(k)
		b.fail(err)
		v = subExact(v, o)
	}
	if b.memo != nil && b.err == nil {
		b.memo[balRef{acct, a}] = v
	}
	return v
}

// slowBooks turns addExact's and subExact's shortcut off, so a test can
// compare the state a log leaves with and without it. Only tests set it.
var slowBooks atomic.Bool

// addExact is d.Add(e), and subExact d.Sub(e), without the arithmetic
// (and its allocations) when e is zero and its exponent is not below d's:
// the sum then is d itself, value and exponent. The exponent matters, not
// only the value: amounts reach the state in binary form
// (Decimal.MarshalBinary keeps it), so a shortcut that changed it would
// make this code's state differ from the general path's. A cost pass adds
// a pending change and an add-back sum to each balance it reads, most of
// them absent (the zero Decimal) for the departments an item is not in.
func addExact(d, e decimal.Decimal) decimal.Decimal {
	if sumIsFirst(d, e) {
		return d
	}
	return d.Add(e)
}

func subExact(d, e decimal.Decimal) decimal.Decimal {
	if sumIsFirst(d, e) {
		return d
	}
	return d.Sub(e)
}

// sumIsFirst says whether d±e is d, exponent included. A zero d of
// exponent 0 takes the general path: it may be the zero Decimal, whose
// sum is an initialised zero (MarshalBinary tells them apart).
func sumIsFirst(d, e decimal.Decimal) bool {
	return e.Sign() == 0 && e.Exponent() >= d.Exponent() && (d.Sign() != 0 || d.Exponent() != 0) && !slowBooks.Load()
}

// zeroPlus is decimal.Decimal{}.Add(e), a sum absent from a map plus e,
// without the arithmetic when that is e itself, value and exponent: Add
// takes the smaller exponent, 0's when e's is not below it, and a zero e
// may be the zero Decimal, whose sum is an initialised zero (see
// sumIsFirst), so e must not be zero. Decimals are never changed in
// place, so the sum may share e's value. An applier and a cost pass add
// each posting of a batch to a sum keyed by its balance, most of them
// the first of their key.
func zeroPlus(e decimal.Decimal) decimal.Decimal {
	if e.Sign() != 0 && e.Exponent() <= 0 && !slowBooks.Load() {
		return e
	}
	return decimal.Decimal{}.Add(e)
}

func (b *txBook) LastCost(s storeline.StoreID, i storeline.ItemID) decimal.Decimal {
	k := boCost + string(s) + "\x00" + string(i)
	if b.cache == nil {
		return b.decimal(k)
	}
	if v, ok := b.cache.costs[k]; ok {
		if checkPushCache.Load() {
			b.fail(b.cache.check(b.rt, k, v))
		}
		return v
	}
	v := b.decimal(k)
	if b.err == nil {
		if full(len(b.cache.costs)) {
			evictSome(b.cache.costs)
		}
		b.cache.costs[k] = v
	}
	return v
}

func (b *txBook) Document(id string) (*storeline.PostedDocument, bool) {
	rec, ok, err := getDoc(b.rt, id)
	if b.fail(err); err != nil || !ok {
		return nil, false
	}
	return &rec.PostedDocument, true
}

// MovedSince sums the postings of asset on account (an account of store)
// in the shop's own events after pos, and in the events of other origins
// fed to the shop after its pull cursor pos.PullCursor: what the shop's
// books had not seen when its stocktake started. It reads by key only what
// came after the position (events by (epoch, seq) up to each epoch's
// mark; the feed from a binary search on its versions), so its cost is
// that of the events since, not of the journal; and it reads them once
// per document, summing every balance they move, so a stocktake of many
// lines costs one pass.
func (b *txBook) MovedSince(store storeline.StoreID, pos storeline.JournalPosition, acct string, asset storeline.Asset) decimal.Decimal {
	key := fmt.Sprintf("%s\x00%d/%d/%d", store, pos.Epoch, pos.Seq, pos.PullCursor)
	sums, ok := b.moved[key]
	if !ok {
		var err error
		sums, err = movedSince(b.rt, store, pos)
		if b.fail(err); err != nil {
			return decimal.Zero
		}
		if b.moved == nil {
			b.moved = map[string]map[string]decimal.Decimal{}
		}
		b.moved[key] = sums
	}
	return sums[acct+"\x00"+string(asset)]
}

// movedSince sums, by account \0 asset, every posting MovedSince counts.
func movedSince(rt *ledger.ReplicaTxn, store storeline.StoreID, pos storeline.JournalPosition) (map[string]decimal.Decimal, error) {
	sums := map[string]decimal.Decimal{}
	add := func(v []byte) error {
		var w replication.WireEvent
		if err := msgpack.Unmarshal(v, &w); err != nil {
			return err
		}
		for _, p := range w.Postings {
			var amt decimal.Decimal
			if err := amt.UnmarshalBinary(p.Amount); err != nil {
				return err
			}
			k := p.Account + "\x00" + p.Asset
			sums[k] = sums[k].Add(amt)
		}
		return nil
	}
	ms, err := marks(rt, store)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Epoch < pos.Epoch {
			continue
		}
		from := uint64(1)
		if m.Epoch == pos.Epoch {
			from = pos.Seq + 1
		}
		for seq := from; seq <= m.Seq; seq++ {
			v, err := rt.Meta(eventKey(store, m.Epoch, seq))
			if err == nil && v != nil {
				err = add(v)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	entry := func(n uint64) (feedEntry, error) {
		var e feedEntry
		v, err := rt.Meta(feedKey(store, n))
		if err != nil || v == nil {
			return e, err
		}
		return e, msgpack.Unmarshal(v, &e)
	}
	nv, err := rt.Meta(rpFeedN + string(store))
	if err != nil {
		return nil, err
	}
	// The first feed entry above the cursor: entries' versions grow with n.
	lo, hi := uint64(1), ledger.U64(nv)+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := entry(mid)
		if err != nil {
			return nil, err
		}
		if e.Version <= pos.PullCursor {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for n := lo; n <= ledger.U64(nv); n++ {
		e, err := entry(n)
		if err == nil && e.Rej == nil && e.Origin != string(store) {
			var v []byte
			if v, err = rt.Meta(eventKey(storeline.StoreID(e.Origin), e.Epoch, e.Seq)); err == nil && v != nil {
				err = add(v)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// checkPosition refuses a stocktake counted at a journal position head
// office has not applied yet: its books would miss sales made before the
// count started. Posting it later is safe.
func checkPosition(rt *ledger.ReplicaTxn, d *storeline.Document) error {
	if d.Position == nil {
		return nil
	}
	v, err := rt.Meta(markKey(d.Store, d.Position.Epoch))
	if err != nil {
		return err
	}
	// Seq 0: counting started before the epoch's first event, which
	// head office has trivially applied (there may be no mark yet).
	if have := ledger.U64(v); have < d.Position.Seq {
		return &storeline.Error{Kind: storeline.Conflict, Field: "position",
			Err: fmt.Errorf("head office has applied %s's journal up to %d of epoch %d; the count started at %d: post it once the shop has caught up",
				d.Store, have, d.Position.Epoch, d.Position.Seq)}
	}
	return nil
}

func getDoc(rt *ledger.ReplicaTxn, id string) (*docRecord, bool, error) {
	return getMetaRecord[docRecord](rt, boDoc+id, "document "+id)
}

func putDoc(rt *ledger.ReplicaTxn, rec *docRecord) error {
	return putMetaRecord(rt, boDoc+rec.Doc.ID, "document "+rec.Doc.ID, rec)
}

// getMetaRecord reads the msgpack record stored at meta key k (what names
// it in errors); false if there is none.
func getMetaRecord[T any](rt *ledger.ReplicaTxn, k, what string) (*T, bool, error) {
	v, err := rt.Meta(k)
	if err != nil || v == nil {
		return nil, false, err
	}
	var rec T
	if err := msgpack.Unmarshal(v, &rec); err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	return &rec, true, nil
}

// putMetaRecord stores rec at meta key k as msgpack.
func putMetaRecord(rt *ledger.ReplicaTxn, k, what string, rec any) error {
	enc, err := msgpack.Marshal(rec)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return rt.SetMeta(k, enc)
}

func answer(rec *docRecord, dup bool) ([]byte, error) {
	return msgpack.Marshal(&docAnswer{Record: *rec, Duplicate: dup})
}

// checkDocRefs checks what a draft document names against master data, so
// a document with an unknown store or item is refused when it is created,
// not only when it is posted. A storage error wins over a business one.
func checkDocRefs(b *txBook, d *storeline.Document) error {
	err := docRefs(b, d)
	if b.err != nil {
		return b.err
	}
	return err
}

func docRefs(b *txBook, d *storeline.Document) error {
	st, ok := b.Store(d.Store)
	if !ok {
		return storeline.Invalidf("store", "unknown store %q", d.Store)
	}
	if d.Supplier != "" && !b.Supplier(d.Supplier) {
		return storeline.Invalidf("supplier", "unknown supplier %q", d.Supplier)
	}
	if d.Buyer != "" && !b.Buyer(d.Buyer) {
		return storeline.Invalidf("buyer", "unknown buyer %q", d.Buyer)
	}
	var to *storeline.Store
	if d.ToStore != "" {
		if to, ok = b.Store(d.ToStore); !ok {
			return storeline.Invalidf("to_store", "unknown store %q", d.ToStore)
		}
		// A shop transfer's goods must have a department to land in at
		// the receiving shop, or they stay in transit.
		if d.Type == storeline.DocTransfer && d.ToDept != "" && !to.HasDept(d.ToDept) {
			return storeline.Invalidf("to_dept", "store %q has no department %q", to.ID, d.ToDept)
		}
	}
	if d.FromDept != "" && !st.HasDept(d.FromDept) {
		return storeline.Invalidf("from_dept", "store %q has no department %q", st.ID, d.FromDept)
	}
	if d.ToDept != "" && d.ToStore == "" && !st.HasDept(d.ToDept) {
		return storeline.Invalidf("to_dept", "store %q has no department %q", st.ID, d.ToDept)
	}
	if d.PriceList != "" && !b.PriceList(d.PriceList) {
		return storeline.Invalidf("price_list", "unknown price list %q", d.PriceList)
	}
	for i, l := range d.Lines {
		it, ok := b.Item(l.Item)
		if !ok {
			return storeline.Invalidf(fmt.Sprintf("lines[%d].item", i), "unknown item %q", l.Item)
		}
		if to != nil && d.Type == storeline.DocTransfer && d.ToDept == "" && !to.HasDept(it.Dept) {
			return storeline.Invalidf(fmt.Sprintf("lines[%d].item", i), "item %q is kept in department %q, which store %q lacks: name a to_dept it has", l.Item, it.Dept, to.ID)
		}
		if l.Dept != "" && !st.HasDept(l.Dept) {
			return storeline.Invalidf(fmt.Sprintf("lines[%d].dept", i), "store %q has no department %q", st.ID, l.Dept)
		}
		for _, f := range [...]struct{ name, v string }{{"batch", l.Batch}, {"certificate", l.Certificate}} {
			if err := checkLabel(f.v); err != nil {
				return storeline.Invalidf(fmt.Sprintf("lines[%d].%s", i, f.name), "%v", err)
			}
		}
	}
	return nil
}

// maxLabel bounds a line's batch and certificate, as a serial is bounded.
const maxLabel = 128

// checkLabel refuses a batch or certificate name that is too long or
// holds a control character: the batch is part of its key (batchKey,
// whose separator is NUL) and of GET /v1/batches' cursor.
func checkLabel(s string) error {
	if len(s) > maxLabel {
		return fmt.Errorf("at most %d bytes", maxLabel)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not UTF-8", s)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%q holds a control character", s)
	}
	return nil
}

func applyDocCreate(tx *Tx, payload []byte) ([]byte, error) {
	var d storeline.Document
	if err := msgpack.Unmarshal(payload, &d); err != nil {
		return nil, storeline.Invalidf("", "undecodable document: %v", err)
	}
	b := &txBook{rt: tx.ReplicaTxn}
	d.ResolvePacks(b.Item)
	if b.err != nil {
		return nil, b.err
	}
	if err := dropOrderBelowLevel(tx, &d); err != nil { // orders.go, invariant 4
		return nil, err
	}
	if err := dropInvoiceBelowLevel(tx, &d); err != nil { // backoffice_batches.go
		return nil, err
	}
	if err := refuseBuyerDocBelowLevel(tx, &d); err != nil { // receivables.go, invariant 4
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	old, ok, err := getDoc(tx.ReplicaTxn, d.ID)
	if err != nil {
		return nil, err
	}
	if ok {
		a, _ := msgpack.Marshal(&old.Doc)
		b, _ := msgpack.Marshal(&d)
		if !bytes.Equal(a, b) {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("document %q exists with other content", d.ID)}
		}
		return answer(old, true)
	}
	if err := checkDocRefs(b, &d); err != nil {
		return nil, err
	}
	if err := checkInvoiceOrder(tx, &d); err != nil { // orders.go
		return nil, err
	}
	if _, err := invoiceOfReturn(tx, &d); err != nil { // backoffice_batches.go
		return nil, err
	}
	if err := checkDraftNotRequest(tx.ReplicaTxn, d.Draft); err != nil { // orders.go, invariant 6
		return nil, err
	}
	var draftKey string
	if d.Draft != nil {
		draftKey = boDraft + string(d.Draft.Store) + "\x00" + string(d.Draft.Event[:])
		v, err := tx.Meta(draftKey)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "draft.event",
				Err: fmt.Errorf("draft %s of %s is already document %q", d.Draft.Event, d.Draft.Store, v)}
		}
	}
	rec := &docRecord{PostedDocument: storeline.PostedDocument{Doc: d, Status: storeline.DocDraft}, CreatedMs: tx.At.UnixMilli()}
	if err := countDraft(tx, &d); err != nil {
		return nil, err
	}
	if draftKey != "" {
		if err := tx.SetMeta(draftKey, []byte(d.ID)); err != nil {
			return nil, err
		}
	}
	if err := putDoc(tx.ReplicaTxn, rec); err != nil {
		return nil, err
	}
	return answer(rec, false)
}

// docEventID is the ID of the transfer event that carries a document's
// postings for action ("post" or "cancel"): derived, so every replica and
// every replay names it alike.
func docEventID(action, id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/document/" + action + "/" + id)
}

// bookPostings writes postings to the books as one central-authored
// transfer event (invariant 3).
func bookPostings(tx *Tx, id storeline.EventID, reason, ref string, ps []storeline.Posting) error {
	if len(ps) == 0 {
		return nil
	}
	p := transferPayload{ID: id, Reason: reason, Ref: ref}
	for _, x := range ps {
		amt, err := x.Amount.MarshalBinary()
		if err != nil {
			return err
		}
		p.Postings = append(p.Postings, replication.WirePosting{Account: x.Account, Asset: string(x.Asset), Amount: amt})
	}
	enc, err := msgpack.Marshal(&p)
	if err != nil {
		return err
	}
	_, err = applyTransfer(tx, enc)
	return err
}

// checkPostedItems refuses, before anything is written, postings on an item
// the master data no longer has: applyTransfer refuses those too, but only
// after the cost-of-sales pass is written, and a refused op must write
// nothing. A document on a deleted item can be posted or cancelled again
// once the item is restored.
func checkPostedItems(tx *Tx, ps []storeline.Posting) error {
	seen := map[string]bool{}
	for _, p := range ps {
		id, ok := strings.CutPrefix(string(p.Asset), "item:")
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		found, err := tx.GetMaster(storeline.KindItem, id, nil)
		if err != nil {
			return err
		}
		if !found {
			return &storeline.Error{Kind: storeline.NotFound, Field: "lines",
				Err: fmt.Errorf("item %q is no longer in the master data; restore it first", id)}
		}
	}
	return nil
}

func statusConflict(format string, args ...any) error {
	return &storeline.Error{Kind: storeline.Conflict, Field: "status", Err: fmt.Errorf(format, args...)}
}

func loadForAction(tx *Tx, payload []byte) (*docRecord, error) {
	var p docIDPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	rec, ok, err := getDoc(tx.ReplicaTxn, p.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no document %q", p.ID)}
	}
	return rec, nil
}

func applyDocPost(tx *Tx, payload []byte) ([]byte, error) {
	rec, err := loadForAction(tx, payload)
	if err != nil {
		return nil, err
	}
	if rec.Status != storeline.DocDraft {
		return nil, statusConflict("document %q is %s; only a draft can be posted", rec.Doc.ID, rec.Status)
	}
	b := &txBook{rt: tx.ReplicaTxn}
	d := rec.Doc
	if err := checkDocRefs(b, &d); err != nil {
		return nil, err
	}
	if rec.FromAtPost && d.Type == storeline.DocRepricing {
		st, ok := b.Store(d.Store)
		if !ok {
			if b.err != nil {
				return nil, b.err
			}
			return nil, storeline.Invalidf("store", "unknown store %q", d.Store)
		}
		loc, err := st.Location()
		if err != nil {
			return nil, err
		}
		if now := storeline.WallClock(tx.At, loc).Truncate(time.Millisecond); now.After(d.From) {
			d.From = now
		}
	}
	if err := checkPosition(tx.ReplicaTxn, &d); err != nil {
		return nil, err
	}
	// The shop's sales are costed first; the document sees their costs
	// pending until both are written (backoffice_cogs.go, invariant 3).
	plan, err := planForDocument(tx, d.Store)
	if err != nil {
		return nil, err
	}
	b.pending = plan.pending
	der, err := storeline.PostDocument(b, &d)
	if b.err != nil {
		return nil, b.err
	}
	if err != nil {
		return nil, err
	}
	var ship *docRecord
	if d.Type == storeline.DocTransferReceipt {
		if ship, _, err = getDoc(tx.ReplicaTxn, d.Shipment); err != nil {
			return nil, err
		}
	}
	// Master-data checks of the repriced items' prices run before any
	// write: Price.Validate is all PutMasters refuses for.
	var ws []ledger.MasterWrite
	for i := range der.Prices {
		p := der.Prices[i]
		if err := p.Validate(); err != nil {
			return nil, err
		}
		ws = append(ws, ledger.MasterWrite{Record: &p})
	}
	psets, err := planPriceSets(tx, der.Prices)
	if err != nil {
		return nil, err
	}
	if err := checkPostedItems(tx, der.Postings); err != nil {
		return nil, err
	}
	takes, err := planTakes(tx, &d, der.Postings, plan.sold)
	if err != nil {
		return nil, err
	}
	inv, err := invoiceOfReturn(tx, &d)
	if err != nil {
		return nil, err
	}
	back, err := planReturn(tx, &d, der.Postings, inv)
	if err != nil {
		return nil, err
	}
	order, err := planOrderReceipt(tx, &d) // orders.go, invariant 3
	if err != nil {
		return nil, err
	}
	// Writes from here on. Opening the index first builds it if the
	// state has none (backoffice_reports.go), before the plan's writes.
	ix, err := openIndex(tx)
	if err != nil {
		return nil, err
	}
	if err := plan.commit(tx); err != nil {
		return nil, err
	}
	b.pending = nil // written now
	rec.PostEvent = docEventID("post", d.ID)
	if err := bookPostings(tx, rec.PostEvent, "document.post", d.ID, der.Postings); err != nil {
		return nil, err
	}
	if err := ix.docPosted(rec, false, der.Postings, tx.At.UnixMilli()); err != nil {
		return nil, err
	}
	for i := range ws {
		v, err := tx.NextVersion()
		if err != nil {
			return nil, err
		}
		ws[i].Version = v.Pack()
	}
	if len(ws) > 0 {
		if err := tx.PutMasters(ws); err != nil {
			return nil, err
		}
		if err := markHistory(tx); err != nil {
			return nil, err
		}
	}
	for _, ps := range psets {
		if err := setPriceBy(tx, ps.ID, d.ID, ps.Set); err != nil {
			return nil, err
		}
	}
	var costs []costSet
	for _, c := range der.Costs {
		k := boCost + string(c.Store) + "\x00" + string(c.Item)
		i := slices.IndexFunc(costs, func(cs costSet) bool { return cs.Key == k })
		if i < 0 {
			was, err := tx.Meta(k)
			if err != nil {
				return nil, err
			}
			by, err := costBy(tx, k, was)
			if err != nil {
				return nil, err
			}
			i = len(costs)
			costs = append(costs, costSet{Key: k, Was: string(was), Had: was != nil, By: by})
		}
		costs[i].Set = c.UnitCost.String()
		if err := tx.SetMeta(k, []byte(costs[i].Set)); err != nil {
			return nil, err
		}
		if err := setCostBy(tx, k, d.ID, costs[i].Set); err != nil {
			return nil, err
		}
	}
	// Batches: what the document takes out of the store's stock comes
	// out of its batches; what it brings in with a batch goes in.
	taken, err := takeBatches(tx, takes)
	if err != nil {
		return nil, err
	}
	batches := der.Batches
	if ship != nil {
		batches = append(batches, carriedBatches(&d, der.Postings, ship)...)
	}
	for _, bi := range batches {
		if err := addBatch(tx, storeline.Batch(bi), bi.Qty); err != nil {
			return nil, err
		}
	}
	pooled, err := pooledTakes(tx, &d, taken)
	if err != nil {
		return nil, err
	}
	if pooled {
		if err := addReturnable(tx, d.Buyer, taken, 1); err != nil {
			return nil, err
		}
	}
	returned, err := returnBatches(tx, d.Buyer, back.back)
	if err != nil {
		return nil, err
	}
	var invoiceReturned []batchTake
	if inv != nil {
		invoiceReturned = batchTakes(back.invoice)
		if err := addInvoiceReturns(tx, &d, invoiceReturned, 1); err != nil {
			return nil, err
		}
	}
	if ship != nil {
		ship.ReceivedBy = d.ID
		if err := putDoc(tx.ReplicaTxn, ship); err != nil {
			return nil, err
		}
	}
	rec.Status, rec.Postings, rec.PostedMs, rec.Doc.From = storeline.DocPosted, der.Postings, tx.At.UnixMilli(), d.From
	rec.Prices, rec.Batches, rec.Taken, rec.Costs, rec.PriceSets = der.Prices, batches, taken, costs, psets
	rec.Pooled, rec.Returned, rec.InvoiceReturned = pooled, returned, invoiceReturned
	if err := putDoc(tx.ReplicaTxn, rec); err != nil {
		return nil, err
	}
	if order != nil {
		if err := putOrder(tx.ReplicaTxn, order); err != nil {
			return nil, err
		}
	}
	if err := ix.flush(); err != nil {
		return nil, err
	}
	if d.Type == storeline.DocIncomingInvoice {
		// New costs: draft repricings by the rules, for review.
		items := make([]storeline.ItemID, len(d.Lines))
		for i, l := range d.Lines {
			items[i] = l.Item
		}
		if err := draftRepricings(tx, d.Store, items, d.ID); err != nil {
			return nil, err
		}
	}
	return answer(rec, false)
}

// storedBatch is a batch as the state holds it (boBatch): the batch, and
// the units it owes. A batch's quantity never goes below zero: what a
// cancel could not take back (an invoice cancelled after a write-off took
// its units) is owed instead, and the next units put into the batch (the
// write-off's cancel putting them back, another invoice of the batch) pay
// it first. So Qty − Owed is the sum of every delta, whatever their
// order: what the posts standing put in minus what they took. A batch that
// owes nothing encodes as a storeline.Batch, as before.
type storedBatch struct {
	batchFields `msgpack:",inline"`
	Owed        decimal.Decimal `msgpack:"owed,omitempty"`
}

// batchFields is storeline.Batch under a name of its own, which its
// field Batch does not shadow when it is inlined.
type batchFields storeline.Batch

// addBatch adds delta to a batch's remaining quantity; a batch never
// goes below zero, what it cannot give is owed (storedBatch).
func addBatch(tx *Tx, b storeline.Batch, delta decimal.Decimal) error {
	k := batchKey(b)
	v, err := tx.Meta(k)
	if err != nil {
		return err
	}
	cur := storedBatch{batchFields: batchFields(b)}
	cur.Qty = decimal.Zero
	if v != nil {
		if err := msgpack.Unmarshal(v, &cur); err != nil {
			return fmt.Errorf("batch %q: %w", k, err)
		}
	} else {
		// A new batch: its (store, item) has batches from now on (the
		// markers of older state are built by batchMarkers first).
		if err := batchMarkers(tx.ReplicaTxn, tx.cache); err != nil {
			return err
		}
		if err := tx.SetMeta(batchItemKey(b.Store, b.Item), []byte{}); err != nil {
			return err
		}
		tx.cache.wroteBatchMark(batchItemKey(b.Store, b.Item))
	}
	q := cur.Qty.Add(delta)
	if cur.Owed.Sign() != 0 {
		q = q.Sub(cur.Owed)
	}
	if q.IsNegative() {
		cur.Qty, cur.Owed = decimal.Zero, q.Neg()
	} else {
		cur.Qty, cur.Owed = q, decimal.Decimal{}
	}
	enc, err := msgpack.Marshal(&cur)
	if err != nil {
		return fmt.Errorf("batch %q: %w", k, err)
	}
	return tx.SetMeta(k, enc)
}

func applyDocCancel(tx *Tx, payload []byte) ([]byte, error) {
	rec, err := loadForAction(tx, payload)
	if err != nil {
		return nil, err
	}
	switch rec.Status {
	case storeline.DocDraft:
		return nil, statusConflict("document %q was never posted; there is nothing to cancel", rec.Doc.ID)
	case storeline.DocCancelled:
		return nil, statusConflict("document %q is already cancelled", rec.Doc.ID)
	}
	if rec.ReceivedBy != "" {
		return nil, statusConflict("transfer %q was received by %q; cancel the receipt first", rec.Doc.ID, rec.ReceivedBy)
	}
	d := rec.Doc
	var ship *docRecord
	if d.Type == storeline.DocTransferReceipt {
		if ship, _, err = getDoc(tx.ReplicaTxn, d.Shipment); err != nil {
			return nil, err
		}
	}
	// Put back what a repricing's prices replaced where they still stand
	// as it set them (a later repricing, or a price set by hand, replaced
	// them otherwise).
	ws, marks, err := planPriceRestore(tx, rec)
	if err != nil {
		return nil, err
	}
	plan, err := planForDocument(tx, d.Store)
	if err != nil {
		return nil, err
	}
	b := &txBook{rt: tx.ReplicaTxn, pending: plan.pending}
	cancel := storeline.CancelDocument(b, &rec.PostedDocument)
	if b.err != nil {
		return nil, b.err
	}
	if err := checkPostedItems(tx, cancel); err != nil {
		return nil, err
	}
	order, err := planOrderReturn(tx, &d) // orders.go, invariant 3
	if err != nil {
		return nil, err
	}
	ix, err := openIndex(tx)
	if err != nil {
		return nil, err
	}
	if err := plan.commit(tx); err != nil {
		return nil, err
	}
	rec.CancelEvent = docEventID("cancel", d.ID)
	if err := bookPostings(tx, rec.CancelEvent, "document.cancel", d.ID, cancel); err != nil {
		return nil, err
	}
	// The excise journal lists a cancel's movements as the posting's
	// negated (getExcise), not the variance sweep.
	if err := ix.docPosted(rec, true, storeline.CancelPostings(rec.Postings), tx.At.UnixMilli()); err != nil {
		return nil, err
	}
	for i := range ws {
		v, err := tx.NextVersion()
		if err != nil {
			return nil, err
		}
		ws[i].Version = v.Pack()
	}
	if len(ws) > 0 {
		if err := tx.PutMasters(ws); err != nil {
			return nil, err
		}
		if err := markHistory(tx); err != nil {
			return nil, err
		}
	}
	for _, m := range marks {
		if err := setPriceBy(tx, m.ID, m.By, m.Was); err != nil {
			return nil, err
		}
	}
	for _, bi := range rec.Batches {
		if err := addBatch(tx, storeline.Batch(bi), bi.Qty.Neg()); err != nil {
			return nil, err
		}
	}
	if err := restoreBatches(tx, rec.Taken); err != nil {
		return nil, err
	}
	if err := cancelBuyerBatches(tx, rec); err != nil {
		return nil, err
	}
	// Withdraw the last purchase costs the post set that still stand as
	// it set them (a later invoice's replaced them otherwise), back to
	// what the key held before, skipping what invoices cancelled since
	// had set (their own records say what they found), as
	// planPriceRestore does for prices.
	for _, c := range rec.Costs {
		cur, err := tx.Meta(c.Key)
		if err != nil {
			return nil, err
		}
		if cur == nil || string(cur) != c.Set {
			continue
		}
		if by, err := costBy(tx, c.Key, cur); err != nil {
			return nil, err
		} else if by != "" && by != rec.Doc.ID {
			continue // a later post set the same cost
		}
		// By only names posts before this one's, so the walk ends.
		was, had, by, err := backPastCancelled(tx, c.Was, c.Had, c.By, func(prev *docRecord) (string, bool, string, bool) {
			i := slices.IndexFunc(prev.Costs, func(p costSet) bool { return p.Key == c.Key })
			if i < 0 {
				return "", false, "", false
			}
			return prev.Costs[i].Was, prev.Costs[i].Had, prev.Costs[i].By, true
		})
		if err != nil {
			return nil, err
		}
		var v []byte
		if had {
			v = []byte(was)
		} else {
			by = ""
		}
		if err := tx.SetMeta(c.Key, v); err != nil {
			return nil, err
		}
		if err := setCostBy(tx, c.Key, by, was); err != nil {
			return nil, err
		}
	}
	if ship != nil {
		ship.ReceivedBy = ""
		if err := putDoc(tx.ReplicaTxn, ship); err != nil {
			return nil, err
		}
	}
	rec.Status, rec.CancelledMs, rec.CancelPostings = storeline.DocCancelled, tx.At.UnixMilli(), cancel
	if err := putDoc(tx.ReplicaTxn, rec); err != nil {
		return nil, err
	}
	if order != nil {
		if err := putOrder(tx.ReplicaTxn, order); err != nil {
			return nil, err
		}
	}
	// Touched stock includes the variance sweep's (it moves no units).
	if err := ix.flush(); err != nil {
		return nil, err
	}
	return answer(rec, false)
}

func applyRecipePut(tx *Tx, payload []byte) ([]byte, error) {
	var r storeline.Recipe
	if err := msgpack.Unmarshal(payload, &r); err != nil {
		return nil, storeline.Invalidf("", "undecodable recipe: %v", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := &txBook{rt: tx.ReplicaTxn}
	known := func(id storeline.ItemID) bool { _, ok := b.Item(id); return ok }
	err := storeline.CheckRecipe(&r, known, b.Recipe)
	if b.err != nil {
		return nil, b.err
	}
	if err != nil {
		return nil, err
	}
	enc, err := msgpack.Marshal(&r)
	if err != nil {
		return nil, err
	}
	return enc, tx.SetMeta(boRecipe+string(r.Item), enc)
}

// CostOfSales derives, in an entry's transaction, the cost postings of a
// shop's sale event from the books as they stand plus pending (balance
// changes of the entry not yet written, keyed by balKey). It only reads;
// backoffice_cogs.go runs it over each shop's events and books the result
// as central-authored events (DESIGN.md, "Cost of sales").
func CostOfSales(tx *Tx, ev *storeline.Event, pending map[string]decimal.Decimal) ([]storeline.Posting, error) {
	b := &txBook{rt: tx.ReplicaTxn, pending: pending}
	ps, err := storeline.CostOfSales(b, ev.Origin, ev.Postings)
	if b.err != nil {
		return nil, b.err
	}
	return ps, err
}

// soldUnits adds to sold the units of each item ev took out of its
// origin's stock (a return's units go back unbatched, so they count as
// none).
func soldUnits(ev *storeline.Event, sold map[storeline.ItemID]decimal.Decimal) {
	prefix := "stock/" + string(ev.Origin) + "/"
	for _, p := range ev.Postings {
		if rest, ok := strings.CutPrefix(p.Account, prefix); ok && strings.HasPrefix(string(p.Asset), "item:") && p.Amount.IsNegative() {
			item := storeline.ItemID(rest[strings.LastIndexByte(rest, '/')+1:])
			sold[item] = sold[item].Sub(p.Amount)
		}
	}
}

// consumeBatches takes the sold units from each item's batches at store,
// first-expiring first; units no batch covers are not tracked by batch.
// Documents take theirs by the same rule (takeBatches).
func consumeBatches(tx *Tx, store storeline.StoreID, sold map[storeline.ItemID]decimal.Decimal) error {
	items := make([]storeline.ItemID, 0, len(sold))
	for it := range sold {
		items = append(items, it)
	}
	slices.Sort(items)
	if len(items) > 0 {
		if err := batchMarkers(tx.ReplicaTxn, tx.cache); err != nil {
			return err
		}
	}
	for _, it := range items {
		// Most items have no batches: a point read says so (or the
		// push entries' read cache), where a scan (a Badger iterator,
		// which sorts the entry's pending writes) per item sold made
		// costing a push quadratic.
		if has, err := tx.cache.batchMark(tx.ReplicaTxn, batchItemKey(store, it)); err != nil || !has {
			if err != nil {
				return err
			}
			continue
		}
		bs, err := batchesOf(tx.ReplicaTxn, store, it)
		if err != nil {
			return err
		}
		takes, _ := storeline.ConsumeFEFO(bs, sold[it])
		for _, t := range takes {
			if err := addBatch(tx, storeline.Batch{Store: store, Item: it, Batch: t.Batch, Expiry: t.Expiry}, t.Qty.Neg()); err != nil {
				return err
			}
		}
	}
	return nil
}

func batchItemKey(store storeline.StoreID, item storeline.ItemID) string {
	return boBatchItem + string(store) + "\x00" + string(item)
}

// batchMarkers makes sure every (store, item) with a batch has its
// boBatchItem marker: state written before markers existed gets them from
// one scan of the batches, in the first entry that needs them. c, when not
// nil, is the push entries' read cache, which the markers are written
// through to.
func batchMarkers(rt *ledger.ReplicaTxn, c *pushCache) error {
	if v, err := rt.Meta(boBatchItemV); err != nil || v != nil {
		return err
	}
	var marks []string
	err := rt.ScanMeta(boBatch, func(k string, _ []byte) (bool, error) {
		rest := strings.SplitN(k[len(boBatch):], "\x00", 3)
		if len(rest) == 3 {
			marks = append(marks, batchItemKey(storeline.StoreID(rest[0]), storeline.ItemID(rest[1])))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range marks {
		if err := rt.SetMeta(k, []byte{}); err != nil {
			return err
		}
		c.wroteBatchMark(k)
	}
	return rt.SetMeta(boBatchItemV, []byte("1"))
}

func batchesOf(rt *ledger.ReplicaTxn, store storeline.StoreID, item storeline.ItemID) ([]storeline.Batch, error) {
	var out []storeline.Batch
	err := rt.ScanMeta(boBatch+string(store)+"\x00"+string(item)+"\x00", func(_ string, v []byte) (bool, error) {
		var b storeline.Batch
		if err := msgpack.Unmarshal(v, &b); err != nil {
			return false, err
		}
		out = append(out, b)
		return true, nil
	})
	return out, err
}

func applyRulePut(tx *Tx, payload []byte) ([]byte, error) {
	var r storeline.RepriceRule
	if err := msgpack.Unmarshal(payload, &r); err != nil {
		return nil, storeline.Invalidf("", "undecodable rule: %v", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := &txBook{rt: tx.ReplicaTxn}
	if !b.get(storeline.KindGroup, string(r.Group), nil) {
		if b.err != nil {
			return nil, b.err
		}
		return nil, storeline.Invalidf("group", "unknown group %q", r.Group)
	}
	if !b.PriceList(r.PriceList) {
		if b.err != nil {
			return nil, b.err
		}
		return nil, storeline.Invalidf("price_list", "unknown price list %q", r.PriceList)
	}
	enc, err := msgpack.Marshal(&r)
	if err != nil {
		return nil, err
	}
	return enc, tx.SetMeta(boRule+r.ID, enc)
}

// repricePayload asks for a repricing draft of a store's goods by the
// rules of one price list; Items limits it (all bought goods when empty).
type repricePayload struct {
	ID        string                `msgpack:"i"`
	Store     storeline.StoreID     `msgpack:"s"`
	PriceList storeline.PriceListID `msgpack:"l"`
	Items     []storeline.ItemID    `msgpack:"it,omitempty"`
}

// repricingList says why store st's costs may not reprice list l ("" if
// they may): only a list the store prices from, kept in the store's
// currency, is repriced from its purchase costs; another list's prices
// are other shops' (or in another currency).
func repricingList(b *txBook, st *storeline.Store, l storeline.PriceListID) string {
	if !slices.Contains(st.PriceLists, l) {
		return fmt.Sprintf("store %q does not price from list %q", st.ID, l)
	}
	var pl storeline.PriceList
	if !b.get(storeline.KindPriceList, string(l), &pl) {
		return fmt.Sprintf("unknown price list %q", l)
	}
	if pl.Currency != st.Currency {
		return fmt.Sprintf("price list %q is in %s, store %q keeps its books in %s", l, pl.Currency, st.ID, st.Currency)
	}
	return ""
}

// repriceLines derives, for store's items (all with a purchase cost when
// items is nil), the lines of a repricing per price list by the rules, in
// item order: for each list the store prices from in its currency
// (repricingList), by that list's rules.
func repriceLines(tx *Tx, st *storeline.Store, items []storeline.ItemID) (map[storeline.PriceListID][]storeline.DocumentLine, error) {
	b := &txBook{rt: tx.ReplicaTxn}
	// Rules by list, then group; a list's rules in ID order: the first of
	// a group wins.
	rules := map[storeline.PriceListID]map[storeline.GroupID]*storeline.RepriceRule{}
	usable := map[storeline.PriceListID]bool{}
	err := tx.ScanMeta(boRule, func(_ string, v []byte) (bool, error) {
		var r storeline.RepriceRule
		if err := msgpack.Unmarshal(v, &r); err != nil {
			return false, err
		}
		ok, seen := usable[r.PriceList]
		if !seen {
			ok = repricingList(b, st, r.PriceList) == ""
			usable[r.PriceList] = ok
		}
		if !ok {
			return b.err == nil, b.err
		}
		if rules[r.PriceList] == nil {
			rules[r.PriceList] = map[storeline.GroupID]*storeline.RepriceRule{}
		}
		if _, dup := rules[r.PriceList][r.Group]; !dup {
			rules[r.PriceList][r.Group] = &r
		}
		return true, nil
	})
	if err != nil || len(rules) == 0 {
		return nil, err
	}
	lists := make([]storeline.PriceListID, 0, len(rules))
	for l := range rules {
		lists = append(lists, l)
	}
	slices.Sort(lists)
	if items == nil {
		p := boCost + string(st.ID) + "\x00"
		err := tx.ScanMeta(p, func(k string, _ []byte) (bool, error) {
			items = append(items, storeline.ItemID(k[len(p):]))
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	parent := func(g storeline.GroupID) storeline.GroupID {
		var gr storeline.Group
		if !b.get(storeline.KindGroup, string(g), &gr) {
			return ""
		}
		return gr.Parent
	}
	out := map[storeline.PriceListID][]storeline.DocumentLine{}
	seen := map[storeline.ItemID]bool{}
	sort.Slice(items, func(i, j int) bool { return items[i] < items[j] })
	for _, id := range items {
		if seen[id] {
			continue
		}
		seen[id] = true
		it, ok := b.Item(id)
		if !ok {
			continue
		}
		for _, l := range lists {
			r, err := storeline.RuleFor(it.Group, parent, rules[l])
			if err != nil {
				return nil, err
			}
			if r == nil {
				continue
			}
			if p := storeline.AutoPrice(st.Currency, r, b.LastCost(st.ID, id), it.VATRate); p.IsPositive() {
				out[r.PriceList] = append(out[r.PriceList], storeline.DocumentLine{Item: id, Price: p})
			}
		}
	}
	return out, b.err
}

// createDraft stores a new automatic repricing draft made at head office
// by the rules: its prices take effect when it is posted (FromAtPost).
func createDraft(tx *Tx, d *storeline.Document) (*docRecord, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if _, ok, err := getDoc(tx.ReplicaTxn, d.ID); err != nil || ok {
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("document %q exists", d.ID)}
		}
		return nil, err
	}
	rec := &docRecord{PostedDocument: storeline.PostedDocument{Doc: *d, Status: storeline.DocDraft}, CreatedMs: tx.At.UnixMilli(), FromAtPost: true}
	if err := countDraft(tx, d); err != nil {
		return nil, err
	}
	return rec, putDoc(tx.ReplicaTxn, rec)
}

// countDraft counts a new draft in the index (a write: after the checks).
func countDraft(tx *Tx, d *storeline.Document) error {
	ix, err := openIndex(tx)
	if err != nil {
		return err
	}
	ix.docCreated(d)
	return ix.flush()
}

// draftRepricings drafts, after an invoice, a repricing per price list of
// its items that rules cover. Its ID derives from the invoice's, so every
// replica names it alike.
func draftRepricings(tx *Tx, store storeline.StoreID, items []storeline.ItemID, invoice string) error {
	b := &txBook{rt: tx.ReplicaTxn}
	st, ok := b.Store(store)
	if !ok {
		return b.err
	}
	byList, err := repriceLines(tx, st, items)
	if err != nil {
		return err
	}
	loc, err := st.Location()
	if err != nil {
		return err
	}
	lists := make([]storeline.PriceListID, 0, len(byList))
	for l := range byList {
		lists = append(lists, l)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i] < lists[j] })
	for _, l := range lists {
		h := sha256.Sum256([]byte(invoice + "\x00" + string(l)))
		d := &storeline.Document{ID: fmt.Sprintf("auto-%x", h[:8]), Type: storeline.DocRepricing, Store: store, PriceList: l,
			From: storeline.WallClock(tx.At, loc), Note: "automatic repricing after invoice " + invoice, Lines: byList[l]}
		if _, err := createDraft(tx, d); err != nil {
			// Validate cannot refuse lines the rules made; an ID taken
			// by hand is skipped rather than failing the invoice.
			if storeline.KindOf(err) == storeline.Internal {
				return err
			}
		}
	}
	return nil
}

func applyReprice(tx *Tx, payload []byte) ([]byte, error) {
	var p repricePayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	if err := storeline.CheckID("id", p.ID); err != nil {
		return nil, err
	}
	// A retry (under a new idempotency key) finds its document before
	// anything is derived: the rules or costs may have changed since, and
	// lines computed now could be refused.
	if old, ok, err := getDoc(tx.ReplicaTxn, p.ID); err != nil || ok {
		if err == nil && old.Doc.Type == storeline.DocRepricing && old.Doc.Store == p.Store && old.Doc.PriceList == p.PriceList {
			return answer(old, true)
		}
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("document %q exists", p.ID)}
		}
		return nil, err
	}
	b := &txBook{rt: tx.ReplicaTxn}
	st, ok := b.Store(p.Store)
	if !ok {
		if b.err != nil {
			return nil, b.err
		}
		return nil, storeline.Invalidf("store", "unknown store %q", p.Store)
	}
	if !b.PriceList(p.PriceList) {
		if b.err != nil {
			return nil, b.err
		}
		return nil, storeline.Invalidf("price_list", "unknown price list %q", p.PriceList)
	}
	if why := repricingList(b, st, p.PriceList); why != "" {
		if b.err != nil {
			return nil, b.err
		}
		return nil, storeline.Invalidf("price_list", "%s", why)
	}
	byList, err := repriceLines(tx, st, p.Items)
	if err != nil {
		return nil, err
	}
	ls := byList[p.PriceList]
	if len(ls) == 0 {
		return nil, storeline.Invalidf("price_list", "no item of %q with a purchase cost has a rule for %q", p.Store, p.PriceList)
	}
	loc, err := st.Location()
	if err != nil {
		return nil, err
	}
	d := &storeline.Document{ID: p.ID, Type: storeline.DocRepricing, Store: p.Store, PriceList: p.PriceList,
		From: storeline.WallClock(tx.At, loc), Note: "automatic repricing", Lines: ls}
	rec, err := createDraft(tx, d)
	if err != nil {
		return nil, err
	}
	return answer(rec, false)
}

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
	"maps"
	"slices"
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
	// cache is the FSM's read cache (a push entry's), for stockAfter.
	cache *pushCache
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
	// stock, when not nil, is the index of the book that reads the sums
	// (txBook.ItemStock): add notes the keys it adds.
	stock *stockIndex
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
// keys, when not nil, holds each posting's balKey, as the applier built
// them (pushedEvent.keys): a sale is counted and uncounted in the same
// pass, and building its keys twice more was a third of this work.
func (a *addBack) add(ps []storeline.Posting, keys []string, sign int64) {
	if slowBooks.Load() {
		keys = nil // the general path, which tests compare with
	}
	for i, p := range ps {
		if !p.Asset.IsMoney() {
			var k string
			if keys != nil {
				k = keys[i]
			} else {
				k = balKey(p.Account, p.Asset)
			}
			a.stock.note(k)
			if d, ok := a.delta[k]; !ok && sign > 0 {
				a.delta[k] = zeroPlus(p.Amount)
			} else if sign > 0 {
				a.delta[k] = d.Add(p.Amount)
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
// writes (a Badger iterator sorts them all: those of the entries before
// it in the batch too). The FSM's read cache keeps what a scan read for
// the next push of the store (pushCache), so a store scans once, not
// once per push.
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
	limit := 16*len(items) + 64
	if c := tx.cache.stockOf(store); c != nil {
		// What the scan below would read: more than limit keys, and it
		// gives up.
		if len(c.vals) > limit {
			return nil, nil
		}
		b := &txBook{rt: tx.ReplicaTxn, reads: maps.Clone(c.vals), whole: rpBal + prefix, stock: c.ix}
		if checkPushCache.Load() {
			if err := sameAsScan(b, limit); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	b := &txBook{rt: tx.ReplicaTxn, reads: map[string]decimal.Decimal{}}
	if err := b.prefetch(rpBal+prefix, limit); err != nil || b.whole == "" {
		return nil, err
	}
	if c := tx.cache; c != nil {
		c.evictStores(len(b.reads))
		c.stock[store] = &stockCache{vals: maps.Clone(b.reads), ix: b.stock}
		c.stockKeys += len(b.reads)
	}
	return b, nil
}

// Bounds of the FSM's read cache (pushCache): stores whose stock it holds
// and their balances in all (about 130 bytes each), and the entries of
// each of its other maps. Past a bound it forgets a few entries, not all:
// a chain of more shops than fit keeps most of its hits. Tests lower them.
var (
	maxCachedStores    atomic.Int64
	maxCachedStockKeys atomic.Int64
	maxCachedKeys      atomic.Int64
)

func init() {
	maxCachedStores.Store(1024)
	maxCachedStockKeys.Store(1 << 19)
	maxCachedKeys.Store(1 << 16)
}

// evictStores forgets stores' stock, in the map's own order, until one
// more store with need balances fits.
func (c *pushCache) evictStores(need int) {
	for s, sc := range c.stock {
		if int64(len(c.stock)) < maxCachedStores.Load() && int64(c.stockKeys+need) <= maxCachedStockKeys.Load() {
			return
		}
		c.stockKeys -= len(sc.vals)
		delete(c.stock, s)
	}
}

// full reports whether a cache map of n entries is at its bound.
func full(n int) bool { return int64(n) >= maxCachedKeys.Load() }

// evictSome forgets about an eighth of m's entries (one at least), in the
// map's own order.
func evictSome[K comparable, V any](m map[K]V) {
	n := len(m)/8 + 1
	for k := range m {
		delete(m, k)
		if n--; n == 0 {
			return
		}
	}
}

// pushCache is what push entries read of the state and keep across push
// entries (FSM.cache): it answers what a read of the state would, because
// every write of those keys in a push entry is written through to it
// (wroteBalance, wroteNeg) and any other entry empties it. Only the
// FSM's goroutine touches it.
type pushCache struct {
	// stock is every stock balance of each store that pushed; stockKeys
	// counts them.
	stock     map[storeline.StoreID]*stockCache
	stockKeys int
	// bals holds balances applier.flush read or wrote, by balKey, as
	// it reads them (the stored string parsed; decimal.Zero if none).
	bals map[string]decimal.Decimal
	// neg holds, by boNeg key, whether the key exists.
	neg map[string]bool
	// costs holds last purchase costs (boCost keys) as txBook.decimal
	// reads them; only a document's posting, never a push, writes them.
	costs map[string]decimal.Decimal
	// batched holds, by boBatchItem key, whether the marker exists (what
	// consumeBatches reads per item sold); only addBatch and
	// batchMarkers write markers, and they write through.
	batched map[string]bool
	// depts lists, by store, the departments holding a stock balance
	// (txBook.StockDepts), or more: a write adds its department
	// (wroteBalance), a deletion leaves it listed (listing one that
	// holds nothing is harmless).
	depts map[storeline.StoreID][]storeline.DeptID
}

func newPushCache() *pushCache {
	return &pushCache{stock: map[storeline.StoreID]*stockCache{}, bals: map[string]decimal.Decimal{}, neg: map[string]bool{},
		costs: map[string]decimal.Decimal{}, batched: map[string]bool{}, depts: map[storeline.StoreID][]storeline.DeptID{}}
}

func (c *pushCache) reset() {
	clear(c.stock)
	c.stockKeys = 0
	clear(c.bals)
	clear(c.neg)
	clear(c.costs)
	clear(c.batched)
	clear(c.depts)
}

// batchMark is whether boBatchItem key k exists: the cache's answer, else
// the state's (then cached).
func (c *pushCache) batchMark(rt *ledger.ReplicaTxn, k string) (bool, error) {
	if c != nil && !slowBooks.Load() { // slowBooks: the general path tests compare with
		if v, ok := c.batched[k]; ok {
			if checkPushCache.Load() {
				if s, err := rt.Meta(k); err != nil || (s != nil) != v {
					return v, fmt.Errorf("central: read cache has batch marker %q %v, the state %v (%v)", k, v, s != nil, err)
				}
			}
			return v, nil
		}
	}
	v, err := rt.Meta(k)
	if err != nil {
		return false, err
	}
	if c != nil {
		if full(len(c.batched)) {
			evictSome(c.batched)
		}
		c.batched[k] = v != nil
	}
	return v != nil, nil
}

// wroteBatchMark writes through a boBatchItem marker addBatch or
// batchMarkers wrote.
func (c *pushCache) wroteBatchMark(k string) {
	if c != nil {
		c.batched[k] = true
	}
}

func (c *pushCache) stockOf(store storeline.StoreID) *stockCache {
	if c == nil {
		return nil
	}
	return c.stock[store]
}

// balance is what applier.flush reads of balance k: the cache's answer,
// else the state's (then cached).
func (c *pushCache) balance(rt *ledger.ReplicaTxn, k string) (decimal.Decimal, error) {
	if c != nil {
		if v, ok := c.bals[k]; ok {
			if checkPushCache.Load() {
				if err := c.check(rt, k, v); err != nil {
					return v, err
				}
			}
			return v, nil
		}
	}
	old, err := rt.Meta(k)
	if err != nil {
		return decimal.Zero, err
	}
	cur := decimal.Zero
	if old != nil {
		if cur, err = decimal.NewFromString(string(old)); err != nil {
			return cur, fmt.Errorf("balance %q: %w", k, err)
		}
	}
	if c != nil {
		if full(len(c.bals)) {
			evictSome(c.bals)
		}
		c.bals[k] = cur
	}
	return cur, nil
}

// check compares the cache's v for balance k with the state's.
func (c *pushCache) check(rt *ledger.ReplicaTxn, k string, v decimal.Decimal) error {
	old, err := rt.Meta(k)
	if err != nil {
		return err
	}
	want := "0 0"
	if old != nil {
		d, err := decimal.NewFromString(string(old))
		if err != nil {
			return err
		}
		want = d.String() + " " + fmt.Sprint(d.Exponent())
	}
	if got := v.String() + " " + fmt.Sprint(v.Exponent()); got != want {
		return fmt.Errorf("central: read cache has %s = %s, the state %s", k, got, want)
	}
	return nil
}

// negMark is whether boNeg key k exists: the cache's answer, else the
// state's (then cached).
func (c *pushCache) negMark(rt *ledger.ReplicaTxn, k string) (bool, error) {
	if c != nil {
		if v, ok := c.neg[k]; ok {
			if checkPushCache.Load() {
				if s, err := rt.Meta(k); err != nil || (s != nil) != v {
					return v, fmt.Errorf("central: read cache has %s %v, the state %v (%v)", k, v, s != nil, err)
				}
			}
			return v, nil
		}
	}
	v, err := rt.Meta(k)
	if err != nil {
		return false, err
	}
	if c != nil {
		if full(len(c.neg)) {
			evictSome(c.neg)
		}
		c.neg[k] = v != nil
	}
	return v != nil, nil
}

// wroteNeg writes through a boNeg key boIndex.flush wrote.
func (c *pushCache) wroteNeg(k string, exists bool) {
	if c != nil {
		c.neg[k] = exists
	}
}

// stockCache is every stock balance of a store as the state has them (the
// stored string parsed, as a scan reads it), by balKey, and an index that
// lists at least those keys (ItemStock sums the keys it lists that a book
// holds: listing more is harmless).
type stockCache struct {
	vals map[string]decimal.Decimal
	ix   *stockIndex
}

// wroteBalance writes through to the FSM's read cache (FSM.cache) a
// balance applier.flush wrote: stored is what it stored (nil: deleted),
// d what a read of it parses (balanceSum).
func (c *pushCache) wroteBalance(k string, stored []byte, d decimal.Decimal) {
	if c == nil {
		return
	}
	if full(len(c.bals)) {
		evictSome(c.bals)
	}
	c.bals[k] = d
	rest, ok := strings.CutPrefix(k, rpBal+"stock/")
	if !ok {
		return
	}
	store, rest, _ := strings.Cut(rest, "/")
	if ds, ok := c.depts[storeline.StoreID(store)]; ok && stored != nil {
		if dept, _, ok := strings.Cut(rest, "/"); ok && !slices.Contains(ds, storeline.DeptID(dept)) {
			c.depts[storeline.StoreID(store)] = append(slices.Clip(ds), storeline.DeptID(dept))
		}
	}
	s := c.stock[storeline.StoreID(store)]
	if s == nil {
		return
	}
	_, had := s.vals[k]
	if stored == nil {
		if had {
			delete(s.vals, k)
			c.stockKeys--
		}
		return
	}
	if !had {
		c.stockKeys++
	}
	s.vals[k] = d
	s.ix.note(k)
}

// sameAsScan checks a book made from the stock cache against a scan of
// the state (checkPushCache; tests set it).
func sameAsScan(b *txBook, limit int) error {
	s := &txBook{rt: b.rt, reads: map[string]decimal.Decimal{}}
	if err := s.prefetch(b.whole, limit); err != nil {
		return err
	}
	if s.whole != b.whole || len(s.reads) != len(b.reads) {
		return fmt.Errorf("central: stock cache of %q holds %d balances, the state %d (whole %q)", b.whole, len(b.reads), len(s.reads), s.whole)
	}
	for k, v := range s.reads {
		w, ok := b.reads[k]
		if x, y := v.String()+fmt.Sprint(v.Exponent()), w.String()+fmt.Sprint(w.Exponent()); !ok || x != y {
			return fmt.Errorf("central: stock cache has %s = %s (held %v), the state %s", k, y, ok, x)
		}
		if !b.stock.known[k] {
			return fmt.Errorf("central: stock cache's index lacks %s", k)
		}
	}
	return nil
}

// stockIndex lists, by item, the keys of one store's stock balances
// (balKey of stock/<store>/<dept>/<item>, the item's units or a currency)
// that a book's maps hold, so ItemStock sums an item's few balances
// instead of building and looking up two keys per department of the
// store, most of which hold nothing. The book's users note every key they
// add to those maps (prefetch, planCosts, addBack.add); listing a key none
// holds is harmless.
type stockIndex struct {
	prefix string // rpBal + "stock/" + store + "/"
	store  storeline.StoreID
	items  map[storeline.ItemID][]stockKey
	known  map[string]bool
	// depts lists the departments of the keys noted, of any item.
	depts []storeline.DeptID
	// lean: the index lists depts only (items and known stay empty), for
	// StockDepts of a book that does not hold the store's whole stock.
	lean bool
}

// stockKey is a key of a stock balance: its department, and its asset,
// the item's units or a currency.
type stockKey struct {
	dept  storeline.DeptID
	units bool
	cur   storeline.Currency // when !units
	key   string
}

// newStockIndex returns an empty index of the store whose stock balances
// are under prefix, or nil if prefix is not such a prefix.
func newStockIndex(prefix string) *stockIndex {
	rest, ok := strings.CutPrefix(prefix, rpBal+"stock/")
	store, ok2 := strings.CutSuffix(rest, "/")
	if !ok || !ok2 || store == "" || strings.Contains(store, "/") {
		return nil
	}
	return &stockIndex{prefix: prefix, store: storeline.StoreID(store),
		items: map[storeline.ItemID][]stockKey{}, known: map[string]bool{}}
}

// newLeanStockIndex is newStockIndex listing departments only.
func newLeanStockIndex(prefix string) *stockIndex {
	x := newStockIndex(prefix)
	if x != nil {
		x.lean = true
	}
	return x
}

// note lists k if it is a balance of the store's stock.
func (x *stockIndex) note(k string) {
	if x == nil || x.known[k] {
		return
	}
	rest, ok := strings.CutPrefix(k, x.prefix)
	if !ok {
		return
	}
	// <dept>/<item>\x00<asset>: IDs hold neither "/" nor "\x00".
	dept, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	if !slices.Contains(x.depts, storeline.DeptID(dept)) {
		x.depts = append(x.depts, storeline.DeptID(dept))
	}
	if x.lean {
		return
	}
	item, asset, ok := strings.Cut(rest, "\x00")
	if !ok {
		return
	}
	sk := stockKey{dept: storeline.DeptID(dept), key: k}
	if id, ok := strings.CutPrefix(asset, "item:"); ok && id == item {
		sk.units = true
	} else if cur, ok := strings.CutPrefix(asset, "cur:"); ok {
		sk.cur = storeline.Currency(cur)
	} else {
		return // not an asset StockOf reads on this account
	}
	x.known[k] = true
	x.items[storeline.ItemID(item)] = append(x.items[storeline.ItemID(item)], sk)
}

// deptsOf lists the departments of the keys of item the index lists.
func (x *stockIndex) deptsOf(item storeline.ItemID) []storeline.DeptID {
	var ds []storeline.DeptID
	for _, k := range x.items[item] {
		if !slices.Contains(ds, k.dept) {
			ds = append(ds, k.dept)
		}
	}
	return ds
}

var _ storeline.ItemStockBook = (*txBook)(nil)

// ItemStock is what storeline.StockOf reads department by department
// through Balance, from the one scan of the store's stock the book holds
// (b.whole; every key under it that exists is in b.reads): the sum of the
// item's balances read, pending and added back, in every department, the
// store record's or not (StockDepts lists, from the same index, every
// department it holds a key of). Balance adds the same terms per
// department (absent ones are zeros of exponent 0, which change no sum:
// decimal.Add keeps the smaller exponent), so the sums are equal,
// exponent included. ok is false when the book does not hold the store's
// whole stock, or reads stored add-back sums by key (b.back.stored).
func (b *txBook) ItemStock(st *storeline.Store, item storeline.ItemID) (qty, value decimal.Decimal, ok bool) {
	x := b.wholeIndex(st.ID)
	if x == nil || strings.IndexByte(string(item), 0) >= 0 || slowBooks.Load() {
		return qty, value, false
	}
	q, v := storeline.SumOf(zeroE0), storeline.SumOf(zeroE0)
	var qb, vb storeline.DecimalSum // added back: subtracted
	for _, k := range x.items[item] {
		sum, back := &q, &qb
		if !k.units {
			if k.cur != st.Currency {
				continue
			}
			sum, back = &v, &vb
		}
		if d, ok := b.reads[k.key]; ok {
			sum.Add(d)
		}
		if d, ok := b.pending[k.key]; ok {
			sum.Add(d)
		}
		if b.back != nil {
			if d, ok := b.back.delta[k.key]; ok {
				back.Add(d)
			}
		}
	}
	return lessBack(&q, &qb), lessBack(&v, &vb), true
}

// wholeIndex is the book's index when it lists every key of store's stock
// balances the book holds and Balance reads (b.whole: the state's; and
// the pending changes and add-back sums it notes), nil otherwise.
func (b *txBook) wholeIndex(store storeline.StoreID) *stockIndex {
	x := b.stock
	if x == nil || b.whole == "" || b.whole != x.prefix || store != x.store || (b.back != nil && b.back.stored) {
		return nil
	}
	return x
}

var _ storeline.StockDeptsBook = (*txBook)(nil)

// StockDepts lists the departments of store whose balances of item
// Balance may find non-zero: those of the state's keys, of the entry's
// pending changes and of the add-back sums, the store record's or not (a
// department dropped from the record keeps its stock until it is moved).
// It may list more (a department with stock of other items only, or none
// left): Balance reads zeros of exponent 0 there, which change no sum.
//
// From the book's index when it holds the store's whole stock (as
// ItemStock sums). Otherwise the state's departments are found by a seek
// from one to the next (never a read of every balance of a big store),
// once per store for the book and, in a push entry, for the FSM's read
// cache (pushCache.depts); the entry's own changes from the index (a
// cost pass notes them all) or its maps.
func (b *txBook) StockDepts(store storeline.StoreID, item storeline.ItemID) ([]storeline.DeptID, bool) {
	if x := b.wholeIndex(store); x != nil {
		return x.deptsOf(item), true
	}
	ds, err := b.stateDepts(store)
	if err != nil {
		b.fail(err)
		return nil, false
	}
	// ds may be the caches': cloned before anything is added (callers
	// only read the answer).
	out := ds
	add := func(d storeline.DeptID) {
		if !slices.Contains(out, d) {
			if len(out) == len(ds) {
				out = slices.Clone(ds)
			}
			out = append(out, d)
		}
	}
	if x := b.stock; x != nil && x.store == store {
		// Every department of a key the entry changed, of any item.
		for _, d := range x.depts {
			add(d)
		}
		return out, true
	}
	prefix := rpBal + "stock/" + string(store) + "/"
	keys := func(m map[string]decimal.Decimal) {
		for k := range m {
			// <dept>/<item>\x00<asset>
			if rest, ok := strings.CutPrefix(k, prefix); ok {
				if dept, r, ok := strings.Cut(rest, "/"); ok && strings.HasPrefix(r, string(item)+"\x00") {
					add(storeline.DeptID(dept))
				}
			}
		}
	}
	keys(b.pending)
	if b.back != nil && b.back.store == store {
		keys(b.back.delta)
	}
	return out, true
}

// stateDepts are the departments of store holding a stock balance in the
// state, and (b.back.stored) a stored add-back sum: b.depts', else the
// FSM's read cache's, else found by seeks.
func (b *txBook) stateDepts(store storeline.StoreID) ([]storeline.DeptID, error) {
	if ds, ok := b.depts[store]; ok {
		return ds, nil
	}
	prefix := rpBal + "stock/" + string(store) + "/"
	ds, err := b.cache.deptsOf(b.rt, store)
	if err != nil {
		return nil, err
	}
	if b.back != nil && b.back.store == store && b.back.stored {
		// Sums of uncosted sales on balances the state may no longer
		// hold (sold to exactly zero): Balance adds them back.
		more, err := keyParts(b.rt, b.back.key(prefix))
		if err != nil {
			return nil, err
		}
		ds = slices.Clone(ds)
		for _, d := range more {
			if !slices.Contains(ds, storeline.DeptID(d)) {
				ds = append(ds, storeline.DeptID(d))
			}
		}
	}
	if b.depts == nil {
		b.depts = map[storeline.StoreID][]storeline.DeptID{}
	}
	b.depts[store] = ds
	return ds, nil
}

// deptsOf are the departments of store holding a stock balance in the
// state: the cache's answer (c not nil; it may list departments that no
// longer hold any), else found by seeks (then cached).
func (c *pushCache) deptsOf(rt *ledger.ReplicaTxn, store storeline.StoreID) ([]storeline.DeptID, error) {
	if c != nil && !slowBooks.Load() {
		if ds, ok := c.depts[store]; ok {
			if checkPushCache.Load() {
				now, err := stockDeptsOf(rt, store)
				if err != nil {
					return nil, err
				}
				for _, d := range now {
					if !slices.Contains(ds, d) {
						return nil, fmt.Errorf("central: read cache lists departments %v of %s, the state %v", ds, store, now)
					}
				}
			}
			return ds, nil
		}
	}
	ds, err := stockDeptsOf(rt, store)
	if err != nil || c == nil {
		return ds, err
	}
	if full(len(c.depts)) {
		evictSome(c.depts)
	}
	c.depts[store] = ds
	return ds, nil
}

// stockDeptsOf are the departments of store holding a stock balance in
// the state, found by seeks.
func stockDeptsOf(rt *ledger.ReplicaTxn, store storeline.StoreID) ([]storeline.DeptID, error) {
	parts, err := keyParts(rt, rpBal+"stock/"+string(store)+"/")
	ds := make([]storeline.DeptID, len(parts))
	for i, p := range parts {
		ds[i] = storeline.DeptID(p)
	}
	return ds, err
}

// keyParts returns the distinct first path segments of the keys under
// prefix (<part>/... or <part>\x00...), seeking from one to the next
// instead of reading every key (as balanceParts does for balances).
func keyParts(rt *ledger.ReplicaTxn, prefix string) ([]string, error) {
	var parts []string
	from := ""
	for {
		found, next := false, ""
		err := rt.ScanMetaFrom(prefix, from, func(k string, _ []byte) (bool, error) {
			rest := k[len(prefix):]
			end := strings.IndexAny(rest, "/\x00")
			if end < 0 {
				end = len(rest)
			}
			part := rest[:end]
			if !slices.Contains(parts, part) {
				parts = append(parts, part)
			}
			// Past the part's keys: a key ending at the part (0
			// follows) sorts before those extending it below '/'.
			if end < len(rest) && rest[end] == 0 {
				next = part + "\x01"
			} else {
				next = part + "0" // '/' + 1
			}
			found = true
			return false, nil
		})
		if err != nil || !found {
			return parts, err
		}
		from = next
	}
}

// lessBack is s less back (nothing if back is empty).
func lessBack(s, back *storeline.DecimalSum) decimal.Decimal {
	d := back.Decimal()
	if d.Sign() == 0 && d.Exponent() == 0 {
		return s.Decimal() // exponent ≤ 0 (from zeroE0): d changes nothing
	}
	return s.Decimal().Sub(d)
}

type pushedEvent struct {
	w  *replication.WireEvent
	ps []storeline.Posting
	// keys holds each posting's balKey (applier.accept built them).
	keys []string
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
	plan := &costPlan{store: store, from: from, queued: queued, queued0: queued, cache: tx.cache,
		back:    &addBack{rt: tx.ReplicaTxn, store: store, stored: queued != from, base: map[string]decimal.Decimal{}, delta: map[string]decimal.Decimal{}},
		pending: map[string]decimal.Decimal{}, sold: map[storeline.ItemID]decimal.Decimal{}}
	var sales []storeline.Event
	var saleKeys [][]string // each sale's postings' balKeys, or nil
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
			var keys []string
			if pe, ok := pushed.event(pos); ok {
				if pe == nil {
					continue // not stored: it moved nothing
				}
				w, ps, keys = pe.w, pe.ps, pe.keys
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
				plan.back.add(ps, keys, 1)
			}
			if inPass {
				sales = append(sales, storeline.Event{Origin: store, Postings: ps})
				saleKeys = append(saleKeys, keys)
				at = append(at, pos)
			}
		}
	}
	plan.answer = catchUpAnswer{Done: done, Costed: len(sales), Epoch: last.Epoch, Seq: last.Seq}
	// Planning reads only, so the book may cache what it reads.
	b := &txBook{rt: tx.ReplicaTxn, pending: plan.pending, back: plan.back, reads: map[string]decimal.Decimal{}, cache: tx.cache}
	prefix := rpBal + "stock/" + string(store) + "/"
	if pushed != nil && pushed.stock != nil && pushed.stock.whole == prefix {
		// The store's stock, read before the batch; the batch's
		// balances go on top, next.
		b.reads, b.whole, b.stock = pushed.stock.reads, pushed.stock.whole, pushed.stock.stock
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
	if b.stock == nil {
		// Not the store's whole stock: the index lists the
		// departments of the entry's own changes, for StockDepts.
		b.stock = newLeanStockIndex(prefix)
	}
	// What the book holds beyond its scan: the batch's balances (a zero
	// one is deleted from the state, not in the scan, but in b.reads)
	// and the add-back sums so far. The pass's own changes are noted as
	// it makes them (addBack.add, pending below).
	if pushed != nil {
		for k := range pushed.balances {
			b.stock.note(k)
		}
	}
	plan.back.stock = b.stock
	for k := range plan.back.delta {
		b.stock.note(k)
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
		plan.back.add(sales[i].Postings, saleKeys[i], -1)
		b.forget(sales[i].Postings)
		b.forget(ps)
		soldUnits(&sales[i], plan.sold)
		var c decimal.Decimal
		for _, p := range ps {
			k := balKey(p.Account, p.Asset)
			plan.pending[k] = plan.pending[k].Add(p.Amount)
			b.stock.note(k)
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
	if after != nil {
		b.cache = after.cache // the departments holding stock (StockDepts)
	}
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
// other balance). If the plan did not read the whole store, a book of the
// state with the FSM's read cache only (nil without one).
func (p *costPlan) stockAfter() *txBook {
	if p.book == nil {
		if p.cache == nil {
			return nil
		}
		return &txBook{rt: p.back.rt, cache: p.cache}
	}
	return &txBook{rt: p.book.rt, pending: p.pending, reads: p.book.reads, whole: p.book.whole, stores: p.book.stores, stock: p.book.stock, cache: p.cache}
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

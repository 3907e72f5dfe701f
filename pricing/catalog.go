package pricing

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Catalog is the master data the engine reads. Implementations must give
// the same answers for the same master data: the engine's determinism
// rests on it.
type Catalog interface {
	// Item returns the item; an error of kind storeline.NotFound if there
	// is none.
	Item(id storeline.ItemID) (*storeline.Item, error)
	// Price returns the item's price in list effective at the shop's
	// wall-clock time wall: the price with the latest From at or before
	// wall. found is false when the list has none.
	Price(list storeline.PriceListID, item storeline.ItemID, wall time.Time) (price decimal.Decimal, found bool, err error)
	// Rules returns the compiled groups, policies, promotions and loyalty
	// programmes (NewRules).
	Rules() (*Rules, error)
}

// maxDepth bounds a walk up nested groups; a deeper or cyclic chain is
// cut there (head office refuses cycles, but a shop must not hang on one).
const maxDepth = 32

// Rules is the compiled, read-only form of the rule records: group
// parents, price policies, promotions indexed by what they target, and
// loyalty programmes. Build it once per master-data version (NewRules) and
// share it between goroutines.
type Rules struct {
	groups     map[storeline.GroupID]storeline.GroupID
	chains     map[storeline.GroupID][]storeline.GroupID // each group with its ancestors
	custGroups map[storeline.CustGroupID]storeline.CustGroupID
	policies   []*storeline.PricePolicy // by ID
	byItem     map[storeline.ItemID][]promoRef
	byGroup    map[storeline.GroupID][]promoRef
	thresholds []*storeline.Promotion // by ID
	programmes map[storeline.ProgrammeID]*storeline.LoyaltyProgramme
	promotions int
}

// promoRef is a promotion in the rules' indexes, with its dense number
// (0 to promotions−1), which the engine's per-basket tables are indexed by.
type promoRef struct {
	p *storeline.Promotion
	i int32
}

// NewRules compiles the records it is given: groups, customer groups,
// price policies, promotions and loyalty programmes (records of other
// kinds are ignored). Records are used as given; they must not change
// afterwards.
func NewRules(recs []storeline.Record) *Rules {
	r := &Rules{
		groups:     map[storeline.GroupID]storeline.GroupID{},
		custGroups: map[storeline.CustGroupID]storeline.CustGroupID{},
		byItem:     map[storeline.ItemID][]promoRef{},
		byGroup:    map[storeline.GroupID][]promoRef{},
		programmes: map[storeline.ProgrammeID]*storeline.LoyaltyProgramme{},
	}
	for _, rec := range recs {
		switch v := rec.(type) {
		case *storeline.Group:
			r.groups[v.ID] = v.Parent
		case *storeline.CustomerGroup:
			r.custGroups[v.ID] = v.Parent
		case *storeline.PricePolicy:
			r.policies = append(r.policies, v)
		case *storeline.LoyaltyProgramme:
			r.programmes[v.ID] = v
		case *storeline.Promotion:
			ref := promoRef{v, int32(r.promotions)}
			r.promotions++
			switch v.Kind {
			case storeline.PromoThreshold:
				r.thresholds = append(r.thresholds, v)
			case storeline.PromoBundle:
				for _, b := range v.Bundle {
					r.byItem[b.Item] = append(r.byItem[b.Item], ref)
				}
			default:
				for _, it := range v.Items {
					r.byItem[it] = append(r.byItem[it], ref)
				}
				for _, g := range v.Groups {
					r.byGroup[g] = append(r.byGroup[g], ref)
				}
			}
		}
	}
	r.chains = make(map[storeline.GroupID][]storeline.GroupID, len(r.groups))
	for g := range r.groups {
		r.chains[g] = r.appendChain(nil, g)
	}
	sort.Slice(r.policies, func(i, j int) bool { return r.policies[i].ID < r.policies[j].ID })
	sort.Slice(r.thresholds, func(i, j int) bool { return r.thresholds[i].ID < r.thresholds[j].ID })
	return r
}

// Promotions returns how many promotions the rules hold.
func (r *Rules) Promotions() int { return r.promotions }

// Programme returns the loyalty programme with the ID.
func (r *Rules) Programme(id storeline.ProgrammeID) (*storeline.LoyaltyProgramme, bool) {
	p, ok := r.programmes[id]
	return p, ok
}

// GroupChain returns g and its ancestors, nearest first (g alone when
// the rules do not know it). The slice is shared: do not modify it.
func (r *Rules) GroupChain(g storeline.GroupID) []storeline.GroupID {
	if c, ok := r.chains[g]; ok {
		return c
	}
	if g == "" {
		return nil
	}
	return []storeline.GroupID{g}
}

func (r *Rules) appendChain(dst []storeline.GroupID, g storeline.GroupID) []storeline.GroupID {
	for d := 0; g != "" && d < maxDepth; d++ {
		dst = append(dst, g)
		g = r.groups[g]
	}
	return dst
}

// inCustGroup reports whether customer group c is want or nested under it.
func (r *Rules) inCustGroup(c, want storeline.CustGroupID) bool {
	for d := 0; c != "" && d < maxDepth; d++ {
		if c == want {
			return true
		}
		c = r.custGroups[c]
	}
	return false
}

// MemCatalog is a Catalog over records held in memory, for tests,
// benchmarks and tools. Build it with NewMemCatalog; it is read-only
// afterwards and safe for concurrent use.
type MemCatalog struct {
	items  map[storeline.ItemID]*storeline.Item
	prices map[priceKey][]*storeline.Price // sorted by From
	rules  *Rules
}

type priceKey struct {
	list storeline.PriceListID
	item storeline.ItemID
}

// NewMemCatalog indexes recs (any kinds; the last record of an ID wins).
func NewMemCatalog(recs []storeline.Record) *MemCatalog {
	c := &MemCatalog{items: map[storeline.ItemID]*storeline.Item{}, prices: map[priceKey][]*storeline.Price{}}
	latest := map[string]storeline.Record{}
	var order []string
	for _, rec := range recs {
		k := string(rec.MasterKind()) + "\x00" + rec.MasterID()
		if _, ok := latest[k]; !ok {
			order = append(order, k)
		}
		latest[k] = rec
	}
	var rules []storeline.Record
	for _, k := range order {
		switch v := latest[k].(type) {
		case *storeline.Item:
			c.items[v.ID] = v
		case *storeline.Price:
			k := priceKey{v.List, v.Item}
			c.prices[k] = append(c.prices[k], v)
		default:
			rules = append(rules, v)
		}
	}
	for _, ps := range c.prices {
		sort.Slice(ps, func(i, j int) bool { return ps[i].From.Before(ps[j].From) })
	}
	c.rules = NewRules(rules)
	return c
}

func (c *MemCatalog) Item(id storeline.ItemID) (*storeline.Item, error) {
	if it, ok := c.items[id]; ok {
		return it, nil
	}
	return nil, storeline.Errorf(storeline.NotFound, "pricing.MemCatalog.Item", "no item %q", id)
}

func (c *MemCatalog) Price(list storeline.PriceListID, item storeline.ItemID, wall time.Time) (decimal.Decimal, bool, error) {
	ps := c.prices[priceKey{list, item}]
	for i := len(ps) - 1; i >= 0; i-- {
		if !ps[i].From.After(wall) {
			return ps[i].Price, true, nil
		}
	}
	return decimal.Decimal{}, false, nil
}

func (c *MemCatalog) Rules() (*Rules, error) { return c.rules, nil }

// Masters is what MasterCatalog needs of a master-data store;
// *ledger.Ledger has these methods (as does posbridge.Ledger).
type Masters interface {
	GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error
	ScanMaster(kind storeline.MasterKind, idPrefix string, fn func(storeline.Record) error) error
	MasterVersion() uint64
}

// ruleKinds are the kinds Rules compiles.
var ruleKinds = []storeline.MasterKind{
	storeline.KindGroup, storeline.KindCustomerGroup, storeline.KindPricePolicy,
	storeline.KindPromotion, storeline.KindLoyaltyProgramme,
}

// MasterCatalog is a Catalog over a master-data store. Items (by ID and
// by SKU or barcode) and the price records of each (list, item) are cached
// as read at one master version, and the rules compiled once per version;
// all of it is shared until the version moves. A till's receipts price
// the same items again and again, and master data changes seldom
// (central's replicas, whose version is the applied Raft index, start over
// at every entry).
type MasterCatalog struct {
	m Masters

	mu    sync.Mutex // guards rules and ver
	rules *Rules
	ver   uint64

	cache atomic.Pointer[recordsAt]
}

// NewMasterCatalog returns a catalog over m.
func NewMasterCatalog(m Masters) *MasterCatalog { return &MasterCatalog{m: m} }

// recordsAt holds what MasterCatalog read at one master version: items
// (nil for an ID with no item) and each (list, item)'s price records in
// the order the store scanned them. A record read after a later change
// lands is kept under the earlier version: the cache answers fresher than
// it must, never staler, because the version is read before the records.
type recordsAt struct {
	ver    uint64
	mu     sync.RWMutex
	items  map[storeline.ItemID]*storeline.Item
	byKey  map[string]*storeline.Item // by unique key (ItemByKey)
	prices map[priceKey][]*storeline.Price
}

// maxCachedEntries bounds one version's cache (items, keys, (list, item)
// pairs, misses among them); past it the cache starts over at the same
// version, so a flood of unknown codes cannot turn it off until the
// version moves.
var maxCachedEntries = 1 << 16 // a variable for tests

// at returns the cache of the current master version, or nil when a newer
// one is already in use (this reader saw an older version: it reads the
// store).
func (c *MasterCatalog) at() *recordsAt {
	v := c.m.MasterVersion()
	for {
		cur := c.cache.Load()
		if cur != nil && cur.ver == v {
			return cur
		}
		if cur != nil && cur.ver > v {
			return nil
		}
		r := &recordsAt{ver: v, items: map[storeline.ItemID]*storeline.Item{}, byKey: map[string]*storeline.Item{}, prices: map[priceKey][]*storeline.Price{}}
		if c.cache.CompareAndSwap(cur, r) {
			return r
		}
	}
}

// roomFor empties r if it is full; r.mu is held for writing.
func (r *recordsAt) roomFor() {
	if len(r.items)+len(r.byKey)+len(r.prices) >= maxCachedEntries {
		clear(r.items)
		clear(r.byKey)
		clear(r.prices)
	}
}

// Item returns the item, shared with other callers: read it, never
// change it.
func (c *MasterCatalog) Item(id storeline.ItemID) (*storeline.Item, error) {
	return cachedItem(c.at(), func(r *recordsAt) map[storeline.ItemID]*storeline.Item { return r.items }, id,
		func(it *storeline.Item) error { return c.m.GetMaster(storeline.KindItem, string(id), it) },
		func() error {
			return storeline.Errorf(storeline.NotFound, "pricing.MasterCatalog.Item", "no item %q", id)
		})
}

// Lookup is a master-data store that finds a record by a unique key;
// *ledger.Ledger is one.
type Lookup interface {
	LookupMaster(kind storeline.MasterKind, uniqueKey string, into storeline.Record) error
}

// ItemByKey returns the item holding uniqueKey (storeline.SKUKey,
// storeline.BarcodeKey), shared as Item's answers are; an error of kind
// storeline.NotFound if none does. The store must implement Lookup.
func (c *MasterCatalog) ItemByKey(uniqueKey string) (*storeline.Item, error) {
	const op = "pricing.MasterCatalog.ItemByKey"
	lk, ok := c.m.(Lookup)
	if !ok {
		return nil, storeline.Errorf(storeline.Internal, op, "the master-data store %T finds no record by unique key", c.m)
	}
	return cachedItem(c.at(), func(r *recordsAt) map[string]*storeline.Item { return r.byKey }, uniqueKey,
		func(it *storeline.Item) error { return lk.LookupMaster(storeline.KindItem, uniqueKey, it) },
		func() error { return storeline.Errorf(storeline.NotFound, op, "no item holds %q", uniqueKey) })
}

// cachedItem answers k from r's map m (nil there: a miss remembered, the
// error notFound gives), else reads it and remembers the item or the
// miss; r nil reads without the cache. Only NotFound is remembered.
func cachedItem[K comparable](r *recordsAt, m func(*recordsAt) map[K]*storeline.Item, k K,
	read func(*storeline.Item) error, notFound func() error) (*storeline.Item, error) {
	if r != nil {
		r.mu.RLock()
		it, ok := m(r)[k]
		r.mu.RUnlock()
		if ok && it != nil {
			return it, nil
		}
		if ok {
			return nil, notFound()
		}
	}
	it := new(storeline.Item)
	err := read(it)
	if err != nil && !errors.Is(err, storeline.NotFound) {
		return nil, err
	}
	if err != nil {
		it = nil
	}
	if r != nil {
		r.mu.Lock()
		r.roomFor()
		m(r)[k] = it
		r.mu.Unlock()
	}
	return it, err
}

func (c *MasterCatalog) Price(list storeline.PriceListID, item storeline.ItemID, wall time.Time) (decimal.Decimal, bool, error) {
	k := priceKey{list, item}
	r := c.at()
	var ps []*storeline.Price
	ok := false
	if r != nil {
		r.mu.RLock()
		ps, ok = r.prices[k]
		r.mu.RUnlock()
	}
	if !ok {
		err := c.m.ScanMaster(storeline.KindPrice, storeline.PricePrefix(list, item), func(rec storeline.Record) error {
			if p, ok := rec.(*storeline.Price); ok {
				ps = append(ps, p)
			}
			return nil
		})
		if err != nil {
			return decimal.Decimal{}, false, fmt.Errorf("pricing: price of %s in %s: %w", item, list, err)
		}
		if r != nil {
			r.mu.Lock()
			r.roomFor()
			r.prices[k] = ps
			r.mu.Unlock()
		}
	}
	var best *storeline.Price
	for _, p := range ps {
		if !p.From.After(wall) && (best == nil || !p.From.Before(best.From)) {
			best = p
		}
	}
	if best == nil {
		return decimal.Decimal{}, false, nil
	}
	return best.Price, true, nil
}

// Rules compiles the rule records at the store's current version, or
// returns the rules compiled at that version before. The version is read
// before the records, so a change landing during the scan is compiled
// again on the next call.
func (c *MasterCatalog) Rules() (*Rules, error) {
	v := c.m.MasterVersion()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rules != nil && c.ver == v {
		return c.rules, nil
	}
	var recs []storeline.Record
	for _, k := range ruleKinds {
		err := c.m.ScanMaster(k, "", func(r storeline.Record) error {
			recs = append(recs, r)
			return nil
		})
		if err != nil && !errors.Is(err, storeline.NotFound) {
			return nil, fmt.Errorf("pricing: load %s records: %w", k, err)
		}
	}
	c.rules, c.ver = NewRules(recs), v
	return c.rules, nil
}

// ProgrammeFor returns the loyalty programme a receipt in cur earns and
// pays points in: of the programmes in that currency, the one with the
// least ID, so every replica picks the same.
func (r *Rules) ProgrammeFor(cur storeline.Currency) (*storeline.LoyaltyProgramme, bool) {
	var best *storeline.LoyaltyProgramme
	for _, p := range r.programmes {
		if p.Currency == cur && (best == nil || p.ID < best.ID) {
			best = p
		}
	}
	return best, best != nil
}

// Buyer is who a card names for pricing.
type Buyer struct {
	Customer storeline.CustomerID
	Group    storeline.CustGroupID
	Staff    bool // a staff card: the programme's staff discount applies
}

// CardBuyer returns the buyer the card with code names, as a shop and
// head office both decide it: a loyalty card's customer and their group,
// or a staff card. An unknown or blocked card, a card of another kind, or
// a customer in no group (or not known here yet) prices as an anonymous
// buyer: the card may have been registered at another till while
// offline. Only a failure to read is an error.
func CardBuyer[M interface {
	Lookup
	GetMaster(kind storeline.MasterKind, id string, into storeline.Record) error
}](m M, code string) (Buyer, error) {
	var card storeline.CardRecord
	if err := m.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return Buyer{}, nil
		}
		return Buyer{}, err
	}
	switch {
	case card.Blocked:
		return Buyer{Customer: card.Customer}, nil
	case card.Kind == storeline.StaffCard:
		return Buyer{Staff: true}, nil
	case card.Kind != storeline.LoyaltyCard:
		return Buyer{Customer: card.Customer}, nil
	}
	var c storeline.Customer
	if err := m.GetMaster(storeline.KindCustomer, string(card.Customer), &c); err != nil {
		if errors.Is(err, storeline.NotFound) {
			return Buyer{Customer: card.Customer}, nil
		}
		return Buyer{}, err
	}
	return Buyer{Customer: c.ID, Group: c.Group}, nil
}

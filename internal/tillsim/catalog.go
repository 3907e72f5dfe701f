package tillsim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// The catalogue records as GET /v1/catalog/changes sends them.
type itemRec struct {
	ID       string `json:"id"`
	SKU      string `json:"sku"`
	Dept     string `json:"dept"`
	Unit     string `json:"unit"`
	Weighed  bool   `json:"weighed"`
	Marked   bool   `json:"marked"`
	Barcodes []struct {
		Code   string `json:"code"`
		Factor string `json:"factor"`
	} `json:"barcodes"`
}

type priceRec struct {
	List string `json:"list"`
	Item string `json:"item"`
	// From is the instant the node switches to the price: the shop's
	// wall-clock time with the store's UTC offset then (RFC 3339, e.g.
	// 2026-12-01T08:00:00+03:00), so it is compared with now as is.
	From  time.Time `json:"from"`
	Price string    `json:"price"`
}

type storeRec struct {
	ID          string `json:"id"`
	TimeZone    string `json:"time_zone"`
	Currency    string `json:"currency"`
	Departments []struct {
		ID string `json:"id"`
	} `json:"departments"`
	PriceLists []string `json:"price_lists"`
}

type changesPage struct {
	Changes []struct {
		Version uint64          `json:"version"`
		Kind    string          `json:"kind"`
		ID      string          `json:"id"`
		Deleted bool            `json:"deleted"`
		Record  json.RawMessage `json:"record"`
	} `json:"changes"`
	Next uint64 `json:"next"`
	More bool   `json:"more"`
}

// catalog is a shop's catalogue as its tills know it: the raw records by
// change ID, and a snapshot of what can be sold, rebuilt after each change.
// mu guards the raw records; the snapshot is swapped atomically so tills
// read it without a lock.
type catalog struct {
	mu      sync.Mutex
	cursor  uint64
	items   map[string]itemRec
	prices  map[string]priceRec
	store   *storeRec
	seed    uint64
	layout  weighedPrinter
	current atomic.Pointer[snapshot]
}

// snapshot is what a till sells from: the priced, sellable items in a
// fixed popularity order (index 0 most popular).
type snapshot struct {
	version  uint64
	currency string
	scale    int32
	// loc is the store's time zone, in which its business dates turn
	// (UTC when the store record names none the till can load).
	loc   *time.Location
	items []sellable
	total int // items in the catalogue, priced or not
	// weighed and packs index the items sold by weight and those with a
	// pack barcode: produce and multipacks are in many baskets whatever
	// their rank.
	weighed, packs []int
}

// sellable is an item with its current price and how it can be scanned.
type sellable struct {
	id, sku string
	weighed bool
	marked  bool
	price   decimal.Decimal // per base unit
	ean     string          // a plain barcode (factor 1) to scan, or ""
	pack    string          // a pack barcode, or ""
	factor  decimal.Decimal // the pack's base units
	weighIn string          // the weighed barcode's 13 digits with zero weight, or ""
}

func newCatalog(seed uint64, layout weighedPrinter) *catalog {
	return &catalog{items: map[string]itemRec{}, prices: map[string]priceRec{}, seed: seed, layout: layout}
}

// refresh reads every change after the cursor and rebuilds the snapshot
// if anything changed.
func (c *catalog) refresh(ctx context.Context, cl *client, rng *rand.Rand, base, token string, page int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for {
		var p changesPage
		req := request{endpoint: epCatalog, method: "GET", url: fmt.Sprintf("%s/v1/catalog/changes?since=%d&limit=%d", base, c.cursor, page),
			headers: map[string]string{"Authorization": "Bearer " + token}}
		if _, err := cl.do(ctx, rng, req, &p); err != nil {
			return err
		}
		for _, ch := range p.Changes {
			changed = true
			if err := c.apply(ch.Kind, ch.ID, ch.Deleted, ch.Record); err != nil {
				return fmt.Errorf("tillsim: catalogue change %s %s: %w", ch.Kind, ch.ID, err)
			}
		}
		if p.Next > c.cursor {
			c.cursor = p.Next
		}
		if !p.More {
			break
		}
	}
	if changed || c.current.Load() == nil {
		c.current.Store(c.build(time.Now()))
	}
	return nil
}

func (c *catalog) apply(kind, id string, deleted bool, rec json.RawMessage) error {
	switch kind {
	case "item":
		if deleted {
			delete(c.items, id)
			return nil
		}
		var it itemRec
		if err := json.Unmarshal(rec, &it); err != nil {
			return err
		}
		c.items[id] = it
	case "price":
		if deleted {
			delete(c.prices, id)
			return nil
		}
		var p priceRec
		if err := json.Unmarshal(rec, &p); err != nil {
			return err
		}
		c.prices[id] = p
	case "store":
		if deleted {
			c.store = nil
			return nil
		}
		var s storeRec
		if err := json.Unmarshal(rec, &s); err != nil {
			return err
		}
		c.store = &s
	}
	return nil
}

// build prices every item as the node does: the first of the store's
// ordered price lists with a price effective at now wins, and within a
// list the latest From at or before now.
func (c *catalog) build(now time.Time) *snapshot {
	s := &snapshot{version: c.cursor, scale: 2, total: len(c.items), loc: time.UTC}
	if c.store == nil {
		return s
	}
	s.currency = c.store.Currency
	if loc, err := (&storeline.Store{TimeZone: c.store.TimeZone}).Location(); err == nil {
		s.loc = loc
	}
	s.scale = currencyScale(c.store.Currency)
	depts := map[string]bool{}
	for _, d := range c.store.Departments {
		depts[d.ID] = true
	}
	rank := map[string]int{}
	for i, l := range c.store.PriceLists {
		if _, ok := rank[l]; !ok {
			rank[l] = i
		}
	}
	type best struct {
		rank int
		p    priceRec
	}
	prices := map[string]best{}
	for _, p := range c.prices {
		r, ok := rank[p.List]
		if !ok || p.From.After(now) {
			continue
		}
		b, seen := prices[p.Item]
		if !seen || r < b.rank || (r == b.rank && !p.From.Before(b.p.From)) {
			prices[p.Item] = best{r, p}
		}
	}
	for _, it := range c.items {
		b, ok := prices[it.ID]
		if !ok || !depts[it.Dept] {
			continue
		}
		price, err := decimal.NewFromString(b.p.Price)
		if err != nil || !price.IsPositive() || !price.Round(s.scale).Equal(price) {
			continue // a price the till cannot charge in its currency's scale
		}
		sl := sellable{id: it.ID, sku: it.SKU, weighed: it.Weighed, marked: it.Marked, price: price}
		for _, bc := range it.Barcodes {
			f, err := decimal.NewFromString(bc.Factor)
			if err != nil || !f.IsPositive() {
				continue
			}
			switch {
			case it.Weighed && sl.weighIn == "" && c.layout.isWeighed(bc.Code):
				sl.weighIn = bc.Code[1:]
			case f.Equal(decimal.NewFromInt(1)) && sl.ean == "":
				sl.ean = bc.Code
			case f.GreaterThan(decimal.NewFromInt(1)) && f.IsInteger() && sl.pack == "" && it.Unit == "pcs":
				sl.pack, sl.factor = bc.Code, f
			}
		}
		if it.Weighed && sl.weighIn == "" && it.Unit != "kg" {
			continue
		}
		s.items = append(s.items, sl)
	}
	// A fixed popularity order: sorted, then shuffled by the run's seed, so
	// a seed names the same best sellers whatever the map order was.
	sort.Slice(s.items, func(i, j int) bool { return s.items[i].id < s.items[j].id })
	r := rand.New(rand.NewPCG(c.seed, 0x5eed))
	r.Shuffle(len(s.items), func(i, j int) { s.items[i], s.items[j] = s.items[j], s.items[i] })
	for i, it := range s.items {
		if it.weighed {
			s.weighed = append(s.weighed, i)
		}
		if it.pack != "" {
			s.packs = append(s.packs, i)
		}
	}
	return s
}

func (c *catalog) snapshot() *snapshot { return c.current.Load() }

func currencyScale(cur string) int32 { return storeline.Currency(cur).Scale() }

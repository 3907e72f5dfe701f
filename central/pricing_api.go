package central

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/pricing"
)

// Pricing rules at head office: price policies, promotions and loyalty
// programmes are master data like any other (the resources table serves
// them at /v1/price_policies, /v1/promotions and /v1/loyalty_programmes,
// and POST /v1/import takes them), written through Raft and sent to shops
// by the change feed. The feed sends them to every shop: a rule whose
// shop scope later narrows must still reach the shops it leaves, and the
// engine applies a rule only in the shops it names.
//
// Beyond each record's own Validate, a rule is refused (422 naming the
// field, nothing written) when it names an unknown store, item, group or
// customer group (checkRuleRefs, again when the entry is applied), or when
// it overlaps a rule already there (checkRuleOverlaps):
//
//   - two line promotions at the same priority whose time windows and
//     shops overlap and that target a common item or group: which one a
//     line takes would depend on their amounts, not on the author;
//   - two threshold promotions at the same priority, threshold amount,
//     time window and shops;
//   - two price policies for the same customer group, the same goods
//     groups and overlapping shops: only one could ever apply;
//   - two loyalty programmes in one currency: a receipt earns in one.
//
// POST /v1/stores/{id}/baskets/price prices a basket with package pricing
// over central's copy of the master data, the same engine and the same
// records a shop prices with once the feed has reached it.

// ruleWrites serialises the overlap check and the write of pricing rules
// made through this process, so a request refused for an overlap is
// answered with the field before anything is submitted. Requests sent
// through different central nodes at one moment can each pass that check;
// applyPut checks overlaps again in the entry, so the later one is refused
// there (TestRuleOverlapCheckedInTheEntry).
var ruleWrites sync.Mutex

func isRule(rec storeline.Record) bool {
	switch rec.(type) {
	case *storeline.PricePolicy, *storeline.Promotion, *storeline.LoyaltyProgramme:
		return true
	}
	return false
}

// serializeRules takes ruleWrites and catches this node up with every
// committed entry when recs hold a pricing rule; the caller must call
// the returned function when its write is done.
func (n *Node) serializeRules(ctx context.Context, recs []storeline.Record) (func(), error) {
	if !slices.ContainsFunc(recs, isRule) {
		return func() {}, nil
	}
	ruleWrites.Lock()
	if err := n.Linearize(ctx); err != nil {
		ruleWrites.Unlock()
		return nil, err
	}
	return ruleWrites.Unlock, nil
}

// checkRuleRefs checks the references of a price policy, promotion or
// loyalty programme (checkRefs calls it, at precheck and at apply).
func checkRuleRefs(rt *ledger.ReplicaTxn, pending map[string]storeline.Record, rec storeline.Record, field string) error {
	f := func(s string, i int) string { return prefix(field, fmt.Sprintf("%s[%d]", s, i)) }
	stores := func(ss []storeline.StoreID) error {
		for i, s := range ss {
			if err := need(rt, pending, f("stores", i), storeline.KindStore, string(s)); err != nil {
				return err
			}
		}
		return nil
	}
	groups := func(name string, gs []storeline.GroupID) error {
		for i, g := range gs {
			if err := need(rt, pending, f(name, i), storeline.KindGroup, string(g)); err != nil {
				return err
			}
		}
		return nil
	}
	items := func(name string, is []storeline.ItemID) error {
		for i, it := range is {
			if err := need(rt, pending, f(name, i), storeline.KindItem, string(it)); err != nil {
				return err
			}
		}
		return nil
	}
	switch r := rec.(type) {
	case *storeline.PricePolicy:
		if err := need(rt, pending, prefix(field, "customer_group"), storeline.KindCustomerGroup, string(r.CustomerGroup)); err != nil {
			return err
		}
		if err := groups("groups", r.Groups); err != nil {
			return err
		}
		return stores(r.Stores)
	case *storeline.Promotion:
		if err := stores(r.Stores); err != nil {
			return err
		}
		if err := items("items", r.Items); err != nil {
			return err
		}
		if err := groups("groups", r.Groups); err != nil {
			return err
		}
		for i, b := range r.Bundle {
			if err := need(rt, pending, prefix(field, fmt.Sprintf("bundle[%d].item", i)), storeline.KindItem, string(b.Item)); err != nil {
				return err
			}
		}
	case *storeline.LoyaltyProgramme:
		for i, rt2 := range r.Rates {
			if err := need(rt, pending, prefix(field, fmt.Sprintf("rates[%d].group", i)), storeline.KindGroup, string(rt2.Group)); err != nil {
				return err
			}
		}
		if err := items("exclude_items", r.ExcludeItems); err != nil {
			return err
		}
		return groups("exclude_groups", r.ExcludeGroups)
	}
	return nil
}

// ruleState is the pricing rules a write would leave: the stored ones
// with the request's records in place of those of the same ID.
type ruleState struct {
	promos   map[storeline.PromotionID]*storeline.Promotion
	policies map[storeline.PolicyID]*storeline.PricePolicy
	progs    map[storeline.ProgrammeID]*storeline.LoyaltyProgramme
}

// ruleScan calls fn for each live record of a kind: over the replica
// when a request is checked, over the entry's transaction when it is
// applied.
type ruleScan func(kind storeline.MasterKind, fn func(storeline.Record) error) error

func replicaRuleScan(rep *ledger.Replica) ruleScan {
	return func(kind storeline.MasterKind, fn func(storeline.Record) error) error {
		return rep.ScanMaster(kind, "", fn)
	}
}

func txnRuleScan(rt *ledger.ReplicaTxn) ruleScan {
	return func(kind storeline.MasterKind, fn func(storeline.Record) error) error {
		return rt.ScanMasterAfter(kind, "", func(rec storeline.Record) (bool, error) { return true, fn(rec) })
	}
}

func loadRuleState(scan ruleScan, recs []storeline.Record) (*ruleState, error) {
	s := &ruleState{
		promos:   map[storeline.PromotionID]*storeline.Promotion{},
		policies: map[storeline.PolicyID]*storeline.PricePolicy{},
		progs:    map[storeline.ProgrammeID]*storeline.LoyaltyProgramme{},
	}
	kinds := map[storeline.MasterKind]bool{}
	for _, rec := range recs {
		kinds[rec.MasterKind()] = true
	}
	for kind := range kinds {
		if !isRule(mustRecord(kind)) {
			continue
		}
		err := scan(kind, func(rec storeline.Record) error {
			s.add(rec)
			return nil
		})
		if err != nil && !errors.Is(err, storeline.NotFound) {
			return nil, fmt.Errorf("central: load %s rules: %w", kind, err)
		}
	}
	for _, rec := range recs {
		s.add(rec)
	}
	return s, nil
}

func mustRecord(kind storeline.MasterKind) storeline.Record {
	r, _ := storeline.NewRecord(kind)
	return r
}

func (s *ruleState) add(rec storeline.Record) {
	switch r := rec.(type) {
	case *storeline.Promotion:
		s.promos[r.ID] = r
	case *storeline.PricePolicy:
		s.policies[r.ID] = r
	case *storeline.LoyaltyProgramme:
		s.progs[r.ID] = r
	}
}

// checkRuleOverlaps refuses a request whose pricing rules overlap each
// other or the stored ones (see the top of this file). recs are valid.
func checkRuleOverlaps(scan ruleScan, recs []storeline.Record, fields []string) error {
	if !slices.ContainsFunc(recs, isRule) {
		return nil
	}
	s, err := loadRuleState(scan, recs)
	if err != nil {
		return err
	}
	// Line promotions by what they target, so each new one meets only
	// those sharing a target with it.
	type target struct {
		kind byte // 'i' item, 'g' group
		id   string
	}
	byTarget := map[target][]*storeline.Promotion{}
	for _, p := range s.promos {
		for _, t := range p.Items {
			byTarget[target{'i', string(t)}] = append(byTarget[target{'i', string(t)}], p)
		}
		for _, b := range p.Bundle {
			byTarget[target{'i', string(b.Item)}] = append(byTarget[target{'i', string(b.Item)}], p)
		}
		for _, g := range p.Groups {
			byTarget[target{'g', string(g)}] = append(byTarget[target{'g', string(g)}], p)
		}
	}
	for i, rec := range recs {
		fld := func(sub string) string { return prefix(fields[i], sub) }
		switch r := rec.(type) {
		case *storeline.Promotion:
			if r.Kind == storeline.PromoThreshold {
				for _, o := range s.promos {
					if o.ID != r.ID && o.Kind == r.Kind && o.Priority == r.Priority && o.Threshold.Equal(r.Threshold) && promosMeet(r, o) {
						return storeline.Invalidf(fld("threshold"), "threshold promotion %q has the same threshold %s and priority %d in an overlapping time window and shops", o.ID, r.Threshold, r.Priority)
					}
				}
				continue
			}
			check := func(t target, f string) error {
				for _, o := range byTarget[t] {
					if o.ID != r.ID && o.Priority == r.Priority && promosMeet(r, o) {
						what := map[byte]string{'i': "item", 'g': "group"}[t.kind]
						return storeline.Invalidf(f, "promotion %q already targets %s %q at priority %d in an overlapping time window and shops; give one another priority, window or shops", o.ID, what, t.id, r.Priority)
					}
				}
				return nil
			}
			for k, it := range r.Items {
				if err := check(target{'i', string(it)}, fld(fmt.Sprintf("items[%d]", k))); err != nil {
					return err
				}
			}
			for k, b := range r.Bundle {
				if err := check(target{'i', string(b.Item)}, fld(fmt.Sprintf("bundle[%d].item", k))); err != nil {
					return err
				}
			}
			for k, g := range r.Groups {
				if err := check(target{'g', string(g)}, fld(fmt.Sprintf("groups[%d]", k))); err != nil {
					return err
				}
			}
		case *storeline.PricePolicy:
			for _, o := range s.policies {
				if o.ID != r.ID && o.CustomerGroup == r.CustomerGroup && sameSet(o.Groups, r.Groups) && storesMeet(o.Stores, r.Stores) {
					return storeline.Invalidf(fld("customer_group"), "price policy %q already discounts customer group %q on the same goods in overlapping shops", o.ID, r.CustomerGroup)
				}
			}
		case *storeline.LoyaltyProgramme:
			for _, o := range s.progs {
				if o.ID != r.ID && o.Currency == r.Currency {
					return storeline.Invalidf(fld("currency"), "loyalty programme %q already runs in %s; a receipt earns in one programme", o.ID, r.Currency)
				}
			}
		}
	}
	return nil
}

// promosMeet reports whether two promotions run at a common moment in a
// common shop. From is inclusive, Until exclusive and zero for no end.
func promosMeet(a, b *storeline.Promotion) bool {
	before := func(t, until time.Time) bool { return until.IsZero() || t.Before(until) }
	return before(a.From, b.Until) && before(b.From, a.Until) && storesMeet(a.Stores, b.Stores)
}

// storesMeet reports whether two shop scopes (empty: every shop) share a
// shop.
func storesMeet(a, b []storeline.StoreID) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, s := range a {
		if slices.Contains(b, s) {
			return true
		}
	}
	return false
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// replicaMasters is the replica as pricing.Masters. Its version is the
// applied Raft index: it moves with every entry, not only master-data
// changes, so the engine's compiled rules are rebuilt more often than
// needed, never less.
type replicaMasters struct{ *ledger.Replica }

func (r replicaMasters) MasterVersion() uint64 { return r.AppliedIndex() }

// engines holds each node's pricing engine (built on first use).
var engines sync.Map // *Node → *pricing.Engine

func (n *Node) pricingEngine() *pricing.Engine {
	if e, ok := engines.Load(n); ok {
		return e.(*pricing.Engine)
	}
	e, _ := engines.LoadOrStore(n, pricing.New(pricing.NewMasterCatalog(replicaMasters{n.rep})))
	return e.(*pricing.Engine)
}

func (n *Node) pricingRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/stores/{id}/baskets/price", false, n.postBasketPrice)
}

// basketIn is POST /v1/stores/{id}/baskets/price.
type basketIn struct {
	OccurredAt    string         `json:"occurred_at"`
	Card          string         `json:"card"`
	CustomerGroup string         `json:"customer_group"`
	Lines         []basketLineIn `json:"lines"`
}

type basketLineIn struct {
	Item  string           `json:"item"`
	Qty   *decimal.Decimal `json:"qty"`
	Price *decimal.Decimal `json:"price"`
}

// postBasketPrice prices a basket for a shop with central's copy of the
// shop's master data, recording nothing: the answer a shop's POST
// /v1/baskets/price gives once the feed has brought it the same records.
func (n *Node) postBasketPrice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in basketIn
	if err := decodeWire(body, &in); err != nil { // names lines[i].qty
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	version := n.rep.AppliedIndex() // read first: the answer is at least this fresh
	var st storeline.Store
	if err := n.rep.GetMaster(storeline.KindStore, id, &st); err != nil {
		return err
	}
	at := time.Now()
	if in.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, in.OccurredAt)
		if err != nil || t.IsZero() {
			return storeline.Invalidf("occurred_at", "occurred_at %.40q: want an RFC 3339 time", in.OccurredAt)
		}
		at = t
	}
	var (
		customer storeline.CustomerID
		group    storeline.CustGroupID
		staff    bool
	)
	switch {
	case in.Card != "" && in.CustomerGroup != "":
		return storeline.Invalidf("customer_group", "give a card or a customer group, not both")
	case in.Card != "":
		if err := storeline.CheckCardCode("card", in.Card); err != nil {
			return err
		}
		by, err := pricing.CardBuyer(n.rep, in.Card)
		if err != nil {
			return err
		}
		customer, group, staff = by.Customer, by.Group, by.Staff
	case in.CustomerGroup != "":
		if err := n.rep.GetMaster(storeline.KindCustomerGroup, in.CustomerGroup, &storeline.CustomerGroup{}); err != nil {
			if errors.Is(err, storeline.NotFound) {
				return storeline.Invalidf("customer_group", "no customer group %q", in.CustomerGroup)
			}
			return err
		}
		group = storeline.CustGroupID(in.CustomerGroup)
	}
	if len(in.Lines) > pricing.MaxLines {
		return storeline.Invalidf("lines", "at most %d lines", pricing.MaxLines)
	}
	b := pricing.Basket{Store: &st, At: at, CustomerGroup: group, Staff: staff, Lines: make([]pricing.BasketLine, len(in.Lines))}
	for i, l := range in.Lines {
		if l.Qty == nil {
			return storeline.Invalidf(fmt.Sprintf("lines[%d].qty", i), "a quantity is required")
		}
		b.Lines[i] = pricing.BasketLine{Item: storeline.ItemID(l.Item), Qty: *l.Qty}
		if l.Price != nil {
			b.Lines[i].Manual, b.Lines[i].ManualPrice = true, *l.Price
		}
	}
	res, err := n.pricingEngine().Price(b)
	if err != nil {
		return err
	}
	out, err := pricing.NewAnswer(res, func(_ int, item storeline.ItemID) (storeline.Unit, decimal.Decimal, error) {
		var it storeline.Item
		if err := n.rep.GetMaster(storeline.KindItem, string(item), &it); err != nil {
			return "", decimal.Decimal{}, err
		}
		return it.Unit, it.VATRate, nil
	})
	if err != nil {
		return err
	}
	out.Store, out.CatalogVersion, out.PricedAt = st.ID, version, at.UTC().Format(time.RFC3339Nano)
	out.Customer, out.CustomerGroup, out.StaffCard = customer, group, staff
	writeJSON(w, http.StatusOK, out)
	return nil
}

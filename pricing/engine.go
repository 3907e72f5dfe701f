package pricing

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// MaxLines bounds a basket.
const MaxLines = 1000

// Basket is what is priced: a shop's lines at a moment for a customer
// group (empty for an anonymous buyer). Staff says the buyer showed a
// staff card: the staff discount of the currency's loyalty programme
// applies instead of any customer group's policy.
type Basket struct {
	Store         *storeline.Store
	At            time.Time
	CustomerGroup storeline.CustGroupID
	Staff         bool
	Lines         []BasketLine
}

// BasketLine is one line: Qty base units of Item; Manual says the till set
// the unit price ManualPrice itself.
type BasketLine struct {
	Item        storeline.ItemID
	Qty         decimal.Decimal
	Manual      bool
	ManualPrice decimal.Decimal
}

// Source says where a line's base price came from.
type Source string

// The price sources.
const (
	FromPriceList Source = "price_list"
	FromManual    Source = "manual"
	Unpriced      Source = "none" // no list has a price and the till gave none
)

// Result is a priced basket. Money is rounded to the currency's scale and
// normalised to it, so equal results have equal bytes.
type Result struct {
	Currency  storeline.Currency
	Lines     []LineResult
	Subtotal  decimal.Decimal // sum of line grosses
	Discount  decimal.Decimal // sum of line discounts
	Total     decimal.Decimal // Subtotal − Discount, and the sum of line totals
	Threshold storeline.PromotionID
}

// LineResult is one priced line.
type LineResult struct {
	Item      storeline.ItemID
	Group     storeline.GroupID
	Qty       decimal.Decimal
	Source    Source
	PriceList storeline.PriceListID // when Source is FromPriceList
	BasePrice decimal.Decimal       // the list's or the manual price, as found
	Policy    storeline.PolicyID    // the price policy applied, if any
	Staff     storeline.ProgrammeID // the programme whose staff discount applied, if any
	Price     decimal.Decimal       // unit price charged: base after policy, rounded
	Gross     decimal.Decimal       // round(Qty × Price)
	Discount  decimal.Decimal       // sum of Promotions' amounts
	Total     decimal.Decimal       // Gross − Discount
	// Rule names what gave the price: "price_list:<id>", "manual", "none",
	// followed by " policy:<id>" when a policy applied or " staff:<id>"
	// when a programme's staff discount did.
	Rule       string
	Promotions []Applied
}

// Priced reports whether the line has a price.
func (l *LineResult) Priced() bool { return l.Source != Unpriced }

// Applied is a promotion's discount on one line.
type Applied struct {
	Promotion storeline.PromotionID
	Kind      storeline.PromoKind
	Amount    decimal.Decimal
}

// Engine prices baskets against a catalog. It is safe for concurrent use.
type Engine struct {
	cat  Catalog
	mu   sync.Mutex // guards locs
	locs map[string]*time.Location
}

// New returns an engine over cat.
func New(cat Catalog) *Engine { return &Engine{cat: cat, locs: map[string]*time.Location{}} }

func (e *Engine) location(st *storeline.Store) (*time.Location, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if loc, ok := e.locs[st.TimeZone]; ok {
		return loc, nil
	}
	// "Local" is the process's own zone (time.Local), not the shop's: a
	// node and head office would price the same basket differently.
	if st.TimeZone == "Local" {
		return nil, storeline.Invalidf("store.time_zone", "%q is not an IANA time zone", st.TimeZone)
	}
	loc, err := st.Location()
	if storeline.KindOf(err) == storeline.Invalid {
		// The basket's field is the store's, as for "Local" above.
		return nil, storeline.Invalidf("store.time_zone", "unknown time zone %q", st.TimeZone)
	}
	if err != nil {
		return nil, fmt.Errorf("pricing: time zone of store %s: %w", st.ID, err)
	}
	e.locs[st.TimeZone] = loc
	return loc, nil
}

// line is the engine's working state of one line. Money is held in the
// currency's minor units and quantities in thousandths (QtyScale), as
// non-negative integers, so the arithmetic is exact, allocation-free and
// the same on every machine; it becomes decimal only in the result.
type line struct {
	LineResult
	idx      int
	chain    []storeline.GroupID
	eligible bool // takes promotions: priced from a list
	claimed  bool // a line promotion has taken it
	units    int64
	whole    bool // a piece item: units counts for N-for-M and bundles

	qm    int64 // quantity in thousandths
	base4 int64 // the base price in ten-thousandths
	pm    int64 // unit price in minor units
	gm    int64 // gross in minor units
	dm    int64 // discount in minor units
	promo []applied
	// room for promo without allocating: a line takes at most one line
	// promotion and one threshold promotion.
	promoRoom [2]applied
}

type applied struct {
	p  *storeline.Promotion
	am int64
}

// Bounds that keep the integer arithmetic exact: a line's gross stays
// below 10^15 minor units and a basket's below 10^18 (int64 holds 9.2 ×
// 10^18). A basket beyond them is refused as Invalid.
const (
	maxQty        = 100_000        // base units on one line
	maxPriceMinor = 10_000_000_000 // a unit price, in minor units
)

var (
	maxQtyDec = decimal.NewFromInt(maxQty)
	pow10     = [...]int64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000}
	// maxPrice is maxPriceMinor in currency units, by scale (0 to 3).
	maxPrice = [...]decimal.Decimal{
		decimal.New(maxPriceMinor, 0), decimal.New(maxPriceMinor, -1),
		decimal.New(maxPriceMinor, -2), decimal.New(maxPriceMinor, -3),
	}
)

// mulDivRound returns a × b / d rounded half away from zero (all
// non-negative), in 128 bits. Callers keep the quotient below 2^63.
func mulDivRound(a, b, d int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(d) {
		panic(fmt.Sprintf("pricing: %d × %d / %d overflows", a, b, d))
	}
	q, r := bits.Div64(hi, lo, uint64(d))
	if r >= uint64(d)-r {
		q++
	}
	return int64(q)
}

// fixed4 is a non-negative decimal with at most 4 places (rules are
// validated so) in ten-thousandths; more places are rounded off.
func fixed4(d decimal.Decimal) int64 {
	if v, ok := exactScaled(d, 4); ok {
		return v
	}
	return d.Shift(4).Round(0).IntPart()
}

// Price prices a basket (see the package comment for the rules). Bad
// input is an Invalid error naming the field ("lines[2].qty"); catalog
// failures are returned wrapped.
func (e *Engine) Price(b Basket) (*Result, error) {
	st := b.Store
	if st == nil {
		return nil, storeline.Invalidf("store", "a store is required")
	}
	if b.At.IsZero() {
		return nil, storeline.Invalidf("at", "a time is required")
	}
	if len(b.Lines) == 0 {
		return nil, storeline.Invalidf("lines", "at least one line is required")
	}
	if len(b.Lines) > MaxLines {
		return nil, storeline.Invalidf("lines", "at most %d lines", MaxLines)
	}
	if !st.Currency.Valid() {
		return nil, storeline.Invalidf("store.currency", "%q is not an ISO 4217 code", st.Currency)
	}
	loc, err := e.location(st)
	if err != nil {
		return nil, err
	}
	rules, err := e.cat.Rules()
	if err != nil {
		return nil, fmt.Errorf("pricing: rules: %w", err)
	}
	m := money{cur: st.Currency, scale: st.Currency.Scale()}
	if m.scale > 3 {
		return nil, storeline.Invalidf("store.currency", "%s has %d decimal places, at most 3 are priced", m.cur, m.scale)
	}
	wall := storeline.WallClock(b.At, loc)

	lines := make([]line, len(b.Lines))
	pw := priceWall(b.At, loc, wall)
	for i, in := range b.Lines {
		if err := e.base(rules, st, pw, m, i, in, &lines[i]); err != nil {
			return nil, err
		}
	}
	switch {
	case b.Staff:
		if prog, ok := rules.ProgrammeFor(m.cur); ok && prog.StaffDiscount.IsPositive() {
			for i := range lines {
				applyStaff(prog, m, &lines[i])
			}
		}
	case b.CustomerGroup != "":
		for i := range lines {
			applyPolicy(rules, st.ID, b.CustomerGroup, m, &lines[i])
		}
	}
	for i := range lines {
		l := &lines[i]
		l.gm = mulDivRound(l.qm, l.pm, 1000)
	}
	promoteLines(rules, st.ID, wall, m, lines)
	res := &Result{Currency: m.cur, Lines: make([]LineResult, len(lines))}
	res.Threshold = threshold(rules, st.ID, wall, m, lines)
	var sub, disc int64
	napplied := 0
	for i := range lines {
		napplied += len(lines[i].promo)
	}
	appliedRoom := make([]Applied, 0, napplied) // every line's Promotions, one allocation
	for i := range lines {
		l := &lines[i]
		if l.dm > l.gm || l.dm < 0 {
			panic(fmt.Sprintf("pricing: line %d discount %d outside [0, gross %d]", i, l.dm, l.gm))
		}
		l.Price, l.Gross, l.Discount, l.Total = m.dec(l.pm), m.dec(l.gm), m.dec(l.dm), m.dec(l.gm-l.dm)
		if len(l.promo) > 0 {
			start := len(appliedRoom)
			for _, a := range l.promo {
				appliedRoom = append(appliedRoom, Applied{Promotion: a.p.ID, Kind: a.p.Kind, Amount: m.dec(a.am)})
			}
			l.Promotions = appliedRoom[start:len(appliedRoom):len(appliedRoom)]
		}
		res.Lines[i] = l.LineResult
		sub += l.gm
		disc += l.dm
	}
	res.Subtotal, res.Discount, res.Total = m.dec(sub), m.dec(disc), m.dec(sub-disc)
	return res, nil
}

// priceWall is the wall-clock time prices are looked up at: wall, the
// shop's clock reading at at, except in the hour a fall-back repeats,
// where it is the last reading before the clocks went back. A price from
// 02:30 on that night is due from the first 02:30, the instant the change
// feed gives the tills (posbridge's wallInstant), and stays due when the
// clocks read 02:00-02:30 again, rather than giving way to the old price
// for half an hour.
func priceWall(at time.Time, loc *time.Location, wall time.Time) time.Time {
	start, _ := at.In(loc).ZoneBounds()
	if start.IsZero() {
		return wall
	}
	if before := storeline.WallClock(start.Add(-time.Nanosecond), loc); before.After(wall) {
		return before
	}
	return wall
}

// money converts between decimals and minor units of one currency.
type money struct {
	cur   storeline.Currency
	scale int32
}

func (m money) dec(minor int64) decimal.Decimal { return decimalOf(minor, -m.scale) }

// round4 rounds ten-thousandths to minor units, half away from zero.
func (m money) round4(v int64) int64 {
	d := pow10[4-m.scale]
	q, r := v/d, v%d
	if r >= d-r {
		q++
	}
	return q
}

// ceil4 rounds non-negative ten-thousandths up to minor units: the least
// amount in the currency at or above v (a subtotal reaches a threshold of
// 10.004 from 10.01 on).
func (m money) ceil4(v int64) int64 {
	d := pow10[4-m.scale]
	return (v + d - 1) / d
}

// base resolves a line's item, quantity and base price into l.
func (e *Engine) base(rules *Rules, st *storeline.Store, wall time.Time, m money, i int, in BasketLine, l *line) error {
	f := "lines[" + strconv.Itoa(i) + "]"
	if in.Item == "" {
		return storeline.Invalidf(f+".item", "an item is required")
	}
	it, err := e.cat.Item(in.Item)
	if errors.Is(err, storeline.NotFound) {
		return storeline.Invalidf(f+".item", "no item %q", in.Item)
	}
	if err != nil {
		return fmt.Errorf("pricing: item %s: %w", in.Item, err)
	}
	// The common quantity (positive, at most QtyScale places, whole for a
	// piece item, within bounds) is read as an integer; anything else
	// takes NormQty, which also says what is wrong with it. Both give
	// the same decimal: the quantity at exponent −QtyScale.
	var qty decimal.Decimal
	qm, ok := exactScaled(in.Qty, storeline.QtyScale)
	if ok && qm > 0 && qm <= maxQty*1000 && (it.Unit.Fractional() || qm%1000 == 0) {
		qty = decimalOf(qm, -storeline.QtyScale)
	} else {
		if qty, err = storeline.NormQty(f+".qty", in.Qty, it.Unit); err != nil {
			return err
		}
		if qty.GreaterThan(maxQtyDec) {
			return storeline.Invalidf(f+".qty", "quantity %s above %d", qty, maxQty)
		}
		qm = qty.Shift(storeline.QtyScale).IntPart()
	}
	*l = line{idx: i, chain: rules.GroupChain(it.Group), qm: qm}
	l.Item, l.Group, l.Qty = it.ID, it.Group, qty
	if it.Unit == storeline.Piece {
		l.units, l.whole = qty.IntPart(), true
	}
	if in.Manual {
		if in.ManualPrice.IsNegative() {
			return storeline.Invalidf(f+".price", "price %s is negative", in.ManualPrice)
		}
		p, err := m.cur.Amount(f+".price", in.ManualPrice)
		if err != nil {
			return err
		}
		if p.GreaterThan(maxPrice[m.scale]) {
			return storeline.Invalidf(f+".price", "price %s out of range", p)
		}
		l.pm = p.Shift(m.scale).IntPart()
		l.base4 = l.pm * pow10[4-m.scale]
		l.Source, l.BasePrice, l.Rule = FromManual, p, string(FromManual)
		return nil
	}
	for _, pl := range st.PriceLists {
		p, ok, err := e.cat.Price(pl, it.ID, wall)
		if err != nil {
			return fmt.Errorf("pricing: %w", err)
		}
		if !ok {
			continue
		}
		b4, exact := exactScaled(p, 4)
		if exact && b4 >= 0 && b4 <= maxPriceMinor*pow10[4-m.scale] {
			l.base4 = b4
		} else {
			if p.IsNegative() || p.GreaterThan(maxPrice[m.scale]) {
				return storeline.Invalidf(f+".item", "list %s prices %s at %s, out of range", pl, it.ID, p)
			}
			l.base4 = fixed4(p)
		}
		l.pm = m.round4(l.base4)
		l.Source, l.PriceList, l.BasePrice = FromPriceList, pl, p
		l.Rule = joinRule(string(FromPriceList), ":", string(pl))
		l.eligible = true
		return nil
	}
	l.Source, l.BasePrice, l.Rule = Unpriced, m.dec(0), string(Unpriced)
	return nil
}

// applyPolicy applies the best price policy to a line priced from a list.
func applyPolicy(rules *Rules, store storeline.StoreID, cg storeline.CustGroupID, m money, l *line) {
	if !l.eligible {
		return
	}
	var best *storeline.PricePolicy
	for _, p := range rules.policies { // by ID: the first of equal percents wins
		if !p.ForStore(store) || !rules.inCustGroup(cg, p.CustomerGroup) || !inGroups(l.chain, p.Groups) {
			continue
		}
		if best == nil || p.Percent.GreaterThan(best.Percent) {
			best = p
		}
	}
	if best == nil {
		return
	}
	l.Policy = best.ID
	// round(base × (100 − percent) / 100): base in 10^-4, percent in 10^-2.
	l.pm = mulDivRound(l.base4, 10_000-basisPoints(best.Percent), pow10[8-m.scale])
	l.Rule = joinRule(l.Rule, " policy:", string(best.ID))
}

// applyStaff applies a programme's staff discount to a line priced from a
// list, as a policy would: round(base × (100 − percent) / 100).
func applyStaff(prog *storeline.LoyaltyProgramme, m money, l *line) {
	if !l.eligible {
		return
	}
	l.Staff = prog.ID
	l.pm = mulDivRound(l.base4, 10_000-basisPoints(prog.StaffDiscount), pow10[8-m.scale])
	l.Rule = joinRule(l.Rule, " staff:", string(prog.ID))
}

// basisPoints is a percentage with at most 2 places, in hundredths.
func basisPoints(pct decimal.Decimal) int64 { return pct.Shift(2).Round(0).IntPart() }

// inGroups reports whether a chain meets groups (empty groups: every good).
func inGroups(chain, groups []storeline.GroupID) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		for _, c := range chain {
			if c == g {
				return true
			}
		}
	}
	return false
}

func multiLine(k storeline.PromoKind) bool {
	return k == storeline.PromoNForM || k == storeline.PromoBundle
}

// cand is an active promotion that targets some eligible line, with
// those lines in basket order.
type cand struct {
	p     *storeline.Promotion
	lines []*line
}

// hit says that a candidate promotion targets a line.
type hit struct{ c, l int32 }

// scratch is promoteLines' working memory, reused between baskets (a
// sync.Pool) so a basket allocates none of it.
type scratch struct {
	idx      []int32 // by promotion number: 0 not met yet, −1 inactive, c+1 candidate c
	touched  []int32 // the promotion numbers idx holds non-zero
	cands    []cand
	hits     []hit
	lineHits []int32
	counts   []int32
	fill     []int32
	backing  []*line
	order    []int32
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// release clears what the basket left in sc and returns it to the pool.
func (sc *scratch) release() {
	for _, p := range sc.touched {
		sc.idx[p] = 0
	}
	clear(sc.cands) // drop the pointers into this basket
	clear(sc.backing)
	sc.touched, sc.cands, sc.hits, sc.backing = sc.touched[:0], sc.cands[:0], sc.hits[:0], sc.backing[:0]
	scratches.Put(sc)
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// promoteLines applies line promotions (step 3 of the package comment).
func promoteLines(rules *Rules, store storeline.StoreID, wall time.Time, m money, lines []line) {
	// Candidates come from the index by each line's item and groups, so
	// the work grows with what the basket meets, not with how many
	// promotions run. hits lists (candidate, line) in line order.
	sc := scratches.Get().(*scratch)
	defer sc.release()
	if len(sc.idx) < rules.promotions {
		sc.idx = make([]int32, rules.promotions)
	}
	idx := sc.idx
	cands := sc.cands
	hits := sc.hits
	visit := func(i int, ps []promoRef) {
		for _, ref := range ps {
			c := idx[ref.i]
			if c == 0 {
				c = -1
				if ref.p.ActiveAt(store, wall) {
					cands = append(cands, cand{p: ref.p})
					c = int32(len(cands))
				}
				idx[ref.i] = c
				sc.touched = append(sc.touched, ref.i)
			}
			if c < 0 {
				continue
			}
			c--          // the candidate's position
			dup := false // met twice from one line (its item and a group)
			for k := len(hits) - 1; k >= 0 && hits[k].l == int32(i); k-- {
				if hits[k].c == c {
					dup = true
					break
				}
			}
			if !dup {
				hits = append(hits, hit{c, int32(i)})
			}
		}
	}
	lineHits := grow(sc.lineHits, len(lines)+1) // hits of line i: hits[lineHits[i]:lineHits[i+1]]
	sc.lineHits = lineHits
	for i := range lines {
		lineHits[i] = int32(len(hits))
		l := &lines[i]
		if !l.eligible {
			continue
		}
		visit(i, rules.byItem[l.Item])
		for _, g := range l.chain {
			visit(i, rules.byGroup[g])
		}
	}
	lineHits[len(lines)] = int32(len(hits))
	sc.cands, sc.hits = cands, hits
	if len(cands) == 0 {
		return
	}
	// Each candidate's lines, in basket order, from one backing array.
	counts := grow(sc.counts, len(cands)+1)
	sc.counts = counts
	clear(counts)
	for _, h := range hits {
		counts[h.c+1]++
	}
	for c := 1; c < len(counts); c++ {
		counts[c] += counts[c-1]
	}
	backing := grow(sc.backing, len(hits))
	sc.backing = backing
	fill := append(sc.fill[:0], counts[:len(cands)]...)
	sc.fill = fill
	for _, h := range hits {
		backing[fill[h.c]] = &lines[h.l]
		fill[h.c]++
	}
	for c := range cands {
		cands[c].lines = backing[counts[c]:counts[c+1]:counts[c+1]]
	}
	order := grow(sc.order, len(cands))
	sc.order = order
	for c := range order {
		order[c] = int32(c)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := cands[i].p, cands[j].p
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		if ma, mb := multiLine(a.Kind), multiLine(b.Kind); ma != mb {
			if ma {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for start := 0; start < len(order); {
		prio := cands[order[start]].p.Priority
		end := start
		for end < len(order) && cands[order[end]].p.Priority == prio {
			end++
		}
		for _, ci := range order[start:end] {
			c := &cands[ci]
			switch c.p.Kind {
			case storeline.PromoNForM:
				nForM(c.p, c.lines)
			case storeline.PromoBundle:
				bundle(c.p, m, c.lines)
			}
		}
		for i := range lines {
			l := &lines[i]
			if !l.eligible || l.claimed {
				continue
			}
			var best *storeline.Promotion
			var bestAmt int64
			for _, h := range hits[lineHits[i]:lineHits[i+1]] {
				p := cands[h.c].p
				if p.Priority != prio || multiLine(p.Kind) {
					continue
				}
				amt := single(p, m, l)
				// Equal discounts: the smaller ID wins.
				if amt > 0 && (best == nil || amt > bestAmt || (amt == bestAmt && p.ID < best.ID)) {
					best, bestAmt = p, amt
				}
			}
			if best != nil {
				l.claimed = true
				l.give(best, bestAmt)
			}
		}
		start = end
	}
}

// single is a percent or fixed promotion's discount on a line, never more
// than its gross.
func single(p *storeline.Promotion, m money, l *line) int64 {
	var amt int64
	switch p.Kind {
	case storeline.PromoPercent:
		amt = mulDivRound(l.gm, basisPoints(p.Percent), 10_000)
	case storeline.PromoFixed:
		// Amount off each base unit, rounded once on the line: round(qty ×
		// amount), not qty × round(amount) (0.005 off each of 1,000 units
		// is 5.00). In ten-thousandths, at most the unit price.
		d := pow10[4-m.scale]
		off := min(fixed4(p.Amount), l.pm*d)
		amt = mulDivRound(l.qm, off, 1000*d)
	}
	return min(amt, l.gm)
}

// give records a promotion on a line. A multi-line promotion is recorded
// on every line it took, with a zero amount where the line only counted
// towards the deal.
func (l *line) give(p *storeline.Promotion, amt int64) {
	l.dm += amt
	if l.promo == nil {
		l.promo = l.promoRoom[:0]
	}
	l.promo = append(l.promo, applied{p, amt})
}

// less orders lines by content, then position: the tie-break of every
// choice between lines.
func less(a, b *line) bool {
	if a.Item != b.Item {
		return a.Item < b.Item
	}
	if a.pm != b.pm {
		return a.pm < b.pm
	}
	if a.qm != b.qm {
		return a.qm < b.qm
	}
	return a.idx < b.idx
}

// nForM frees the N−M cheapest of every N qualifying whole units among the
// unclaimed lines it targets, and claims those lines.
func nForM(p *storeline.Promotion, lines []*line) {
	var pool []*line
	var units int64
	for _, l := range lines {
		if !l.claimed && l.whole {
			pool = append(pool, l)
			units += l.units
		}
	}
	free := units / int64(p.N) * int64(p.N-p.M)
	if free == 0 {
		return
	}
	sort.Slice(pool, func(i, j int) bool {
		a, b := pool[i], pool[j]
		if a.pm != b.pm {
			return a.pm < b.pm
		}
		return less(a, b)
	})
	for _, l := range pool {
		l.claimed = true
		k := min(free, l.units)
		free -= k
		l.give(p, k*l.pm)
	}
}

// bundle sells as many complete bundles as the unclaimed lines hold for
// the bundle price, spreading the saving over the parts' lines in
// proportion to their gross, and claims those lines.
func bundle(p *storeline.Promotion, m money, lines []*line) {
	count := int64(-1)
	var regular int64 // one bundle at the lines' prices
	for _, part := range p.Bundle {
		var have, price int64
		for _, l := range lines {
			if !l.claimed && l.whole && l.Item == part.Item {
				// Lines of one item priced from lists share the price.
				price = max(price, l.pm)
				have += l.units
			}
		}
		n := have / int64(part.Qty)
		if n == 0 {
			return
		}
		if count < 0 || n < count {
			count = n
		}
		regular += price * int64(part.Qty)
	}
	var pool []*line
	var gross int64
	for _, part := range p.Bundle {
		for _, l := range lines {
			if !l.claimed && l.whole && l.Item == part.Item {
				pool = append(pool, l)
				gross += l.gm
			}
		}
	}
	each := regular - m.round4(fixed4(p.Amount))
	if each <= 0 {
		return
	}
	saving := gross // lines of one item at different prices may hold less
	if each <= gross/count {
		saving = each * count
	}
	weights := make([]int64, len(pool))
	for i, l := range pool {
		weights[i] = l.gm
		l.claimed = true
	}
	shares := spread(saving, pool, weights)
	for i, l := range pool {
		l.give(p, shares[i])
	}
}

// threshold applies the best threshold promotion the eligible lines reach
// (step 4) and returns its ID.
func threshold(rules *Rules, store storeline.StoreID, wall time.Time, m money, lines []line) storeline.PromotionID {
	if len(rules.thresholds) == 0 {
		return ""
	}
	var pool []*line
	var weights []int64
	var sum int64
	for i := range lines {
		l := &lines[i]
		if l.eligible {
			w := l.gm - l.dm
			pool = append(pool, l)
			weights = append(weights, w)
			sum += w
		}
	}
	if sum <= 0 {
		return ""
	}
	var best *storeline.Promotion
	var bestAmt int64
	for _, p := range rules.thresholds { // by ID
		if !p.ActiveAt(store, wall) || sum < m.ceil4(fixed4(p.Threshold)) {
			continue
		}
		var amt int64
		if p.Percent.IsPositive() {
			amt = mulDivRound(sum, basisPoints(p.Percent), 10_000)
		} else {
			amt = m.round4(fixed4(p.Amount))
		}
		amt = min(amt, sum)
		if amt <= 0 {
			continue
		}
		if best == nil || amt > bestAmt || (amt == bestAmt && p.Priority > best.Priority) {
			best, bestAmt = p, amt
		}
	}
	if best == nil {
		return ""
	}
	shares := spread(bestAmt, pool, weights)
	for i, l := range pool {
		if shares[i] > 0 {
			l.give(best, shares[i])
		}
	}
	return best.ID
}

// spread divides amount over lines in proportion to weights by the
// largest remainder method; ties go to the line first by less. Each share
// is at most its exact proportion rounded up, so no line gets more than
// its weight. amount must not exceed the sum of weights (every caller caps
// it so).
func spread(amount int64, lines []*line, weights []int64) []int64 {
	var total int64
	for _, w := range weights {
		total += w
	}
	out := make([]int64, len(weights))
	if amount > total || amount < 0 {
		panic(fmt.Sprintf("pricing: spreading %d over weights summing to %d", amount, total))
	}
	if total == 0 {
		return out
	}
	rem := make([]uint64, len(weights))
	left := amount
	for i, w := range weights {
		// amount × w / total in 128 bits: amount ≤ total makes it fit.
		hi, lo := bits.Mul64(uint64(amount), uint64(w))
		q, r := bits.Div64(hi, lo, uint64(total))
		out[i], rem[i] = int64(q), r
		left -= int64(q)
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool {
		i, j := order[x], order[y]
		if rem[i] != rem[j] {
			return rem[i] > rem[j]
		}
		return less(lines[i], lines[j])
	})
	for k := 0; left > 0 && k < len(order) && rem[order[k]] > 0; k++ {
		out[order[k]]++
		left--
	}
	return out
}

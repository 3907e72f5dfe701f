package storeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// PolicyID names a price policy.
type PolicyID string

// Limits of pricing rules. A rule beyond them is refused when it is
// authored, so the engine never meets one.
const (
	MaxRuleTargets  = 1000 // items plus groups of one promotion or policy
	MaxRuleStores   = 10000
	MaxBundleParts  = 20
	MaxNForM        = 100 // the N of "N for the price of M"
	MaxBundlePartQt = 1000
)

// Effective times of prices, promotions and messages meant for shops are
// wall-clock times in each shop's zone: Price.From, Promotion.From and
// Promotion.Until are stored as UTC time.Time values whose clock reading
// ("2026-12-01 00:00") is what counts, so a promotion from midnight starts
// at midnight in Berlin and in Lisbon alike. WallClock converts a moment to
// that form.
func WallClock(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// PricePolicy is a customer-group discount: customers of CustomerGroup (or
// of a group nested under it) pay Percent less than the price list's price
// for goods of Groups (and their subgroups; every good when empty), in
// Stores (every shop when empty).
type PricePolicy struct {
	ID            PolicyID
	Name          string
	CustomerGroup CustGroupID
	Percent       decimal.Decimal
	Groups        []GroupID `msgpack:",omitempty"`
	Stores        []StoreID `msgpack:",omitempty"`
}

func (*PricePolicy) MasterKind() MasterKind { return KindPricePolicy }
func (p *PricePolicy) MasterID() string     { return string(p.ID) }
func (p *PricePolicy) UniqueKeys() []string { return nil }

func (p *PricePolicy) Validate() error {
	if err := CheckID("id", string(p.ID)); err != nil {
		return err
	}
	if err := CheckID("customer_group", string(p.CustomerGroup)); err != nil {
		return err
	}
	var err error
	if p.Percent, err = checkPercent("percent", p.Percent); err != nil {
		return err
	}
	if err := checkIDs("groups", p.Groups, MaxRuleTargets); err != nil {
		return err
	}
	return checkIDs("stores", p.Stores, MaxRuleStores)
}

// ForStore reports whether the policy applies in store s.
func (p *PricePolicy) ForStore(s StoreID) bool { return inScope(p.Stores, s) }

// PromoKind says what a promotion does.
type PromoKind string

// The promotion kinds.
const (
	// PromoPercent takes Percent off the lines of Items and Groups.
	PromoPercent PromoKind = "percent"
	// PromoFixed takes Amount off each base unit of Items and Groups (never
	// below zero).
	PromoFixed PromoKind = "fixed"
	// PromoNForM sells N units of Items and Groups for the price of M: of
	// every N qualifying units in the basket, the N−M cheapest are free.
	PromoNForM PromoKind = "n_for_m"
	// PromoBundle sells the set Bundle (each part with its quantity) for
	// Amount.
	PromoBundle PromoKind = "bundle"
	// PromoThreshold takes Percent, or Amount, off a receipt whose
	// subtotal is at least Threshold.
	PromoThreshold PromoKind = "threshold"
)

// BundlePart is one part of a bundle: Qty whole units of Item.
type BundlePart struct {
	Item ItemID
	Qty  int
}

// Promotion is a time-limited offer in some shops. From is inclusive,
// Until exclusive (zero means open-ended), both wall-clock times in the
// shop's zone (see WallClock). Priority orders promotions that compete for
// the same lines: higher first (see package pricing for the rules).
type Promotion struct {
	ID        PromotionID
	Name      string
	Kind      PromoKind
	Stores    []StoreID `msgpack:",omitempty"` // empty means every shop
	From      time.Time
	Until     time.Time       `msgpack:",omitempty"`
	Priority  int             `msgpack:",omitempty"`
	Items     []ItemID        `msgpack:",omitempty"`
	Groups    []GroupID       `msgpack:",omitempty"` // with their subgroups
	Percent   decimal.Decimal `msgpack:",omitempty"`
	Amount    decimal.Decimal `msgpack:",omitempty"`
	N         int             `msgpack:",omitempty"`
	M         int             `msgpack:",omitempty"`
	Bundle    []BundlePart    `msgpack:",omitempty"`
	Threshold decimal.Decimal `msgpack:",omitempty"`
}

func (*Promotion) MasterKind() MasterKind { return KindPromotion }
func (p *Promotion) MasterID() string     { return string(p.ID) }
func (p *Promotion) UniqueKeys() []string { return nil }

// ActiveAt reports whether the promotion runs in store s at the shop's
// wall-clock time wall.
func (p *Promotion) ActiveAt(s StoreID, wall time.Time) bool {
	if wall.Before(p.From) || (!p.Until.IsZero() && !wall.Before(p.Until)) {
		return false
	}
	return inScope(p.Stores, s)
}

func (p *Promotion) Validate() error {
	if err := CheckID("id", string(p.ID)); err != nil {
		return err
	}
	if strings.TrimSpace(p.Name) == "" || len(p.Name) > 200 {
		return Invalidf("name", "a promotion needs a name of at most 200 bytes")
	}
	if err := checkIDs("stores", p.Stores, MaxRuleStores); err != nil {
		return err
	}
	if p.From.IsZero() {
		return Invalidf("from", "a promotion needs a start time")
	}
	p.From = p.From.UTC().Truncate(time.Second)
	if !p.Until.IsZero() {
		p.Until = p.Until.UTC().Truncate(time.Second)
		if !p.Until.After(p.From) {
			return Invalidf("until", "until %s is not after from %s", p.Until.Format(time.RFC3339), p.From.Format(time.RFC3339))
		}
	}
	if p.Priority < -1000 || p.Priority > 1000 {
		return Invalidf("priority", "priority %d out of [-1000, 1000]", p.Priority)
	}
	if err := checkIDs("items", p.Items, MaxRuleTargets); err != nil {
		return err
	}
	if err := checkIDs("groups", p.Groups, MaxRuleTargets); err != nil {
		return err
	}
	if len(p.Items)+len(p.Groups) > MaxRuleTargets {
		return Invalidf("items", "at most %d items and groups together", MaxRuleTargets)
	}
	targeted := len(p.Items)+len(p.Groups) > 0
	var err error
	switch p.Kind {
	case PromoPercent:
		if !targeted {
			return Invalidf("items", "a percent promotion names items or groups")
		}
		p.Percent, err = checkPercent("percent", p.Percent)
	case PromoFixed:
		if !targeted {
			return Invalidf("items", "a fixed promotion names items or groups")
		}
		p.Amount, err = checkAmount("amount", p.Amount, false)
	case PromoNForM:
		if !targeted {
			return Invalidf("items", "an N-for-M promotion names items or groups")
		}
		if p.N < 2 || p.N > MaxNForM {
			return Invalidf("n", "n %d out of [2, %d]", p.N, MaxNForM)
		}
		if p.M < 1 || p.M >= p.N {
			return Invalidf("m", "m %d out of [1, n-1]", p.M)
		}
	case PromoBundle:
		if targeted {
			return Invalidf("items", "a bundle names its parts in bundle, not items or groups")
		}
		if len(p.Bundle) < 1 || len(p.Bundle) > MaxBundleParts {
			return Invalidf("bundle", "a bundle has 1-%d parts", MaxBundleParts)
		}
		seen := map[ItemID]bool{}
		units := 0
		for i, b := range p.Bundle {
			f := fmt.Sprintf("bundle[%d]", i)
			if err := CheckID(f+".item", string(b.Item)); err != nil {
				return err
			}
			if seen[b.Item] {
				return Invalidf(f+".item", "item %q listed twice", b.Item)
			}
			seen[b.Item] = true
			if b.Qty < 1 || b.Qty > MaxBundlePartQt {
				return Invalidf(f+".qty", "qty %d out of [1, %d]", b.Qty, MaxBundlePartQt)
			}
			units += b.Qty
		}
		if units < 2 {
			return Invalidf("bundle", "a bundle has at least two units")
		}
		p.Amount, err = checkAmount("amount", p.Amount, true)
	case PromoThreshold:
		if targeted {
			return Invalidf("items", "a threshold promotion applies to the whole receipt")
		}
		if p.Threshold, err = checkAmount("threshold", p.Threshold, false); err != nil {
			return err
		}
		switch {
		case p.Percent.IsZero() == p.Amount.IsZero():
			return Invalidf("percent", "a threshold promotion gives a percent or an amount, exactly one")
		case !p.Percent.IsZero():
			p.Percent, err = checkPercent("percent", p.Percent)
		default:
			if p.Amount, err = checkAmount("amount", p.Amount, false); err == nil && p.Amount.GreaterThan(p.Threshold) {
				err = Invalidf("amount", "amount %s exceeds the threshold %s", p.Amount, p.Threshold)
			}
		}
	default:
		return Invalidf("kind", "unknown promotion kind %q (percent, fixed, n_for_m, bundle, threshold)", p.Kind)
	}
	return err
}

// checkPercent accepts a percentage in (0, 100] with at most 2 places.
func checkPercent(field string, d decimal.Decimal) (decimal.Decimal, error) {
	if !d.IsPositive() || d.GreaterThan(decimal.NewFromInt(100)) {
		return d, Invalidf(field, "percent %s out of (0, 100]", d)
	}
	if !d.Round(2).Equal(d) {
		return d, Invalidf(field, "percent %s has more than 2 decimal places", d)
	}
	return d.Round(2), nil
}

// checkAmount accepts a positive amount (zero too when zeroOK) with at
// most 4 places; the engine rounds to the shop's currency.
func checkAmount(field string, d decimal.Decimal, zeroOK bool) (decimal.Decimal, error) {
	if d.IsNegative() || (!zeroOK && d.IsZero()) {
		return d, Invalidf(field, "amount %s must be positive", d)
	}
	if !d.Round(4).Equal(d) {
		return d, Invalidf(field, "amount %s has more than 4 decimal places", d)
	}
	if d.GreaterThan(decimal.New(1, 12)) {
		return d, Invalidf(field, "amount %s is too large", d)
	}
	return d.Round(4), nil
}

// checkIDs checks a list of identifiers: each valid, none twice, at most
// max of them.
func checkIDs[T ~string](field string, ids []T, max int) error {
	if len(ids) > max {
		return Invalidf(field, "at most %d entries", max)
	}
	seen := make(map[T]bool, len(ids))
	for i, id := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := CheckID(f, string(id)); err != nil {
			return err
		}
		if seen[id] {
			return Invalidf(f, "%q listed twice", id)
		}
		seen[id] = true
	}
	return nil
}

// inScope reports whether s is in stores, an empty list meaning every shop.
func inScope(stores []StoreID, s StoreID) bool {
	if len(stores) == 0 {
		return true
	}
	for _, x := range stores {
		if x == s {
			return true
		}
	}
	return false
}

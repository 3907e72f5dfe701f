package storeline

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// MaxPointsPerUnit bounds an accrual rate: points per unit of currency.
const MaxPointsPerUnit = 1000

// LoyaltyProgramme is a chain's loyalty scheme in one currency. A receipt
// line earns floor(line total × rate) points, where rate is the Rate of the
// nearest group (the item's own group, then its parents) listed in Rates,
// else DefaultRate; items and groups (with subgroups) in Exclude earn
// nothing. A point is worth PointValue of money; at most MaxShare percent
// of a receipt's total may be paid with points; a customer may spend at
// most DailyOfflineCap points a business day in a shop that cannot reach
// head office (zero: nothing offline).
type LoyaltyProgramme struct {
	ID              ProgrammeID
	Name            string
	Currency        Currency
	DefaultRate     decimal.Decimal
	Rates           []AccrualRate `msgpack:",omitempty"`
	ExcludeItems    []ItemID      `msgpack:",omitempty"`
	ExcludeGroups   []GroupID     `msgpack:",omitempty"`
	PointValue      decimal.Decimal
	MaxShare        decimal.Decimal
	DailyOfflineCap int64
}

// AccrualRate is the points per unit of currency earned on goods of Group
// and its subgroups (unless a nearer group has a rate of its own).
type AccrualRate struct {
	Group GroupID
	Rate  decimal.Decimal
}

func (*LoyaltyProgramme) MasterKind() MasterKind { return KindLoyaltyProgramme }
func (p *LoyaltyProgramme) MasterID() string     { return string(p.ID) }
func (p *LoyaltyProgramme) UniqueKeys() []string { return nil }

func (p *LoyaltyProgramme) Validate() error {
	if err := CheckID("id", string(p.ID)); err != nil {
		return err
	}
	if strings.TrimSpace(p.Name) == "" || len(p.Name) > 200 {
		return Invalidf("name", "a programme needs a name of at most 200 bytes")
	}
	if !p.Currency.Valid() {
		return Invalidf("currency", "%q is not an ISO 4217 code", p.Currency)
	}
	var err error
	if p.DefaultRate, err = checkRate("default_rate", p.DefaultRate); err != nil {
		return err
	}
	if len(p.Rates) > MaxRuleTargets {
		return Invalidf("rates", "at most %d rates", MaxRuleTargets)
	}
	seen := map[GroupID]bool{}
	for i := range p.Rates {
		r := &p.Rates[i]
		f := fmt.Sprintf("rates[%d]", i)
		if err := CheckID(f+".group", string(r.Group)); err != nil {
			return err
		}
		if seen[r.Group] {
			return Invalidf(f+".group", "group %q listed twice", r.Group)
		}
		seen[r.Group] = true
		if r.Rate, err = checkRate(f+".rate", r.Rate); err != nil {
			return err
		}
	}
	if err := checkIDs("exclude_items", p.ExcludeItems, MaxRuleTargets); err != nil {
		return err
	}
	if err := checkIDs("exclude_groups", p.ExcludeGroups, MaxRuleTargets); err != nil {
		return err
	}
	if !p.PointValue.IsPositive() || p.PointValue.GreaterThan(decimal.NewFromInt(1000)) {
		return Invalidf("point_value", "point value %s out of (0, 1000]", p.PointValue)
	}
	if !p.PointValue.Round(4).Equal(p.PointValue) {
		return Invalidf("point_value", "point value %s has more than 4 decimal places", p.PointValue)
	}
	p.PointValue = p.PointValue.Round(4)
	if p.MaxShare.IsNegative() || p.MaxShare.GreaterThan(decimal.NewFromInt(100)) || !p.MaxShare.Round(2).Equal(p.MaxShare) {
		return Invalidf("max_share", "max share %s%% out of [0, 100] or more than 2 decimal places", p.MaxShare)
	}
	p.MaxShare = p.MaxShare.Round(2)
	if p.DailyOfflineCap < 0 || p.DailyOfflineCap > 1_000_000_000 {
		return Invalidf("daily_offline_cap", "%d out of [0, 1e9]", p.DailyOfflineCap)
	}
	return nil
}

// checkRate accepts points per unit of currency in [0, MaxPointsPerUnit]
// with at most 4 places.
func checkRate(field string, d decimal.Decimal) (decimal.Decimal, error) {
	if d.IsNegative() || d.GreaterThan(decimal.NewFromInt(MaxPointsPerUnit)) {
		return d, Invalidf(field, "rate %s out of [0, %d]", d, MaxPointsPerUnit)
	}
	if !d.Round(4).Equal(d) {
		return d, Invalidf(field, "rate %s has more than 4 decimal places", d)
	}
	return d.Round(4), nil
}

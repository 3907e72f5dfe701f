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
// head office (zero: nothing offline). Holders of staff cards pay
// StaffDiscount percent less than the list price (zero: no staff
// discount); package pricing applies it.
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
	StaffDiscount   decimal.Decimal `msgpack:",omitempty"`
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
	if !p.StaffDiscount.IsZero() {
		if p.StaffDiscount, err = checkPercent("staff_discount", p.StaffDiscount); err != nil {
			return err
		}
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

// Rights and debts. A customer's points in a programme are a bounded
// counter split into rights, one account per holder:
// PointsAccount(programme, customer, holder), where the holder is a store
// or Central. Earning at a store credits that store's account; paying
// there debits it; head office moves rights between accounts by
// central-authored transfers (a reservation or a pre-grant), and a store
// hands rights back by a PointsHandback it authors. Every debit of an
// account is authored by its holder alone, so a holder that checks its
// own balance before it debits never overdraws, and the customer's
// balance, the sum of all holders' accounts, never goes below zero.

// PointsHandback is a store handing Points of a customer's rights back to
// head office (rights above the store's float, while it can reach
// central), so they can be granted wherever the customer shops next.
type PointsHandback struct {
	Programme ProgrammeID
	Customer  CustomerID
	Points    int64
}

func (*PointsHandback) EventKind() EventKind { return KindPointsHandback }

// Postings move the points from the store's rights to central's.
func (h *PointsHandback) Postings(store StoreID) ([]Posting, error) {
	if err := CheckID("programme", string(h.Programme)); err != nil {
		return nil, err
	}
	if err := CheckID("customer", string(h.Customer)); err != nil {
		return nil, err
	}
	if h.Points <= 0 || h.Points > MaxPoints {
		return nil, Invalidf("points", "points %d out of [1, %d]", h.Points, int64(MaxPoints))
	}
	if store == Central {
		return nil, Invalidf("origin", "head office grants rights by transfers, it does not hand them back")
	}
	n := decimal.NewFromInt(h.Points)
	pts := PointsAsset(h.Programme)
	return []Posting{
		{PointsAccount(h.Programme, h.Customer, store), pts, n.Neg()},
		{PointsAccount(h.Programme, h.Customer, Central), pts, n},
	}, nil
}

// PointsReversal is what a return takes back of the points its original
// receipt earned: Reversed from the returning store's rights, and Debt,
// the part the customer has already spent, recorded as owed rather than
// blocking the return.
type PointsReversal struct {
	Programme ProgrammeID
	Customer  CustomerID
	Reversed  int64 `msgpack:",omitempty"`
	Debt      int64 `msgpack:",omitempty"`
}

func (p *PointsReversal) check() error {
	if p == nil {
		return nil
	}
	if err := CheckID("points.programme", string(p.Programme)); err != nil {
		return err
	}
	if err := CheckID("points.customer", string(p.Customer)); err != nil {
		return err
	}
	if p.Reversed < 0 || p.Reversed > MaxPoints || p.Debt < 0 || p.Debt > MaxPoints {
		return Invalidf("points", "reversed %d and debt %d must lie in [0, %d]", p.Reversed, p.Debt, int64(MaxPoints))
	}
	return nil
}

// postings undo the accrual: the reversed points leave the store's
// rights, the debt is a negative balance on the customer's debt account
// at the store; both go back to where earned points came from.
func (p *PointsReversal) postings(store StoreID) []Posting {
	if p == nil {
		return nil
	}
	pts := PointsAsset(p.Programme)
	var ps []Posting
	if p.Reversed > 0 {
		n := decimal.NewFromInt(p.Reversed)
		ps = append(ps, Posting{PointsAccount(p.Programme, p.Customer, store), pts, n.Neg()}, Posting{IssuedPointsAccount(store), pts, n})
	}
	if p.Debt > 0 {
		n := decimal.NewFromInt(p.Debt)
		ps = append(ps, Posting{PointsDebtAccount(p.Programme, p.Customer, store), pts, n.Neg()}, Posting{IssuedPointsAccount(store), pts, n})
	}
	return ps
}

// PointsDebtAccount holds, negative, the points customer c owes programme
// p for returns at store s of goods whose points were already spent. Only
// head office pays it back toward zero, from the rights shops hand back
// to it (later earnings), in Raft order, so it is never overpaid.
func PointsDebtAccount(p ProgrammeID, c CustomerID, s StoreID) string {
	return "points-debt/" + string(s) + "/" + string(p) + "/" + string(c)
}

// PointsAccountPrefix is the prefix of every holder's account of customer
// c's points in programme p.
func PointsAccountPrefix(p ProgrammeID, c CustomerID) string {
	return "points/" + string(p) + "/" + string(c) + "/"
}

package pricing

import (
	"math/big"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// AccrualLine is what accrual needs of a receipt line: its item, the
// item's group and the money paid for it (the line's total).
type AccrualLine struct {
	Item  storeline.ItemID
	Group storeline.GroupID
	Total decimal.Decimal
}

// AccrualLines turns a priced basket's lines into accrual lines.
func AccrualLines(res *Result) []AccrualLine {
	out := make([]AccrualLine, len(res.Lines))
	for i, l := range res.Lines {
		out[i] = AccrualLine{Item: l.Item, Group: l.Group, Total: l.Total}
	}
	return out
}

// Accrue returns the points each line earns under programme p and their
// sum: floor(total × rate), rate being that of the nearest group of the
// item's chain listed in p.Rates, else p.DefaultRate; excluded items and
// groups (with subgroups) earn nothing. A receipt in another currency
// than the programme's earns nothing. Each line and the sum are capped
// at storeline.MaxPoints.
func Accrue(rules *Rules, p *storeline.LoyaltyProgramme, cur storeline.Currency, lines []AccrualLine) ([]int64, int64) {
	out := make([]int64, len(lines))
	if cur != p.Currency {
		return out, 0
	}
	var sum int64
	for i, l := range lines {
		rate, ok := lineRate(rules, p, l)
		if !ok {
			continue
		}
		pts := l.Total.Mul(rate).Floor()
		if !pts.IsPositive() {
			continue
		}
		// A receipt earns at most MaxPoints (a receipt claiming more is
		// refused): saturate rather than wrap past int64.
		if pts.GreaterThan(maxPointsDec) {
			out[i] = storeline.MaxPoints
		} else {
			out[i] = pts.IntPart()
		}
		sum = min(sum+out[i], storeline.MaxPoints)
	}
	return out, sum
}

var maxPointsDec = decimal.NewFromInt(storeline.MaxPoints)

// lineRate is the rate line l earns at under p, and whether it earns at
// all (a positive total, neither its item nor its groups excluded).
func lineRate(rules *Rules, p *storeline.LoyaltyProgramme, l AccrualLine) (decimal.Decimal, bool) {
	if !l.Total.IsPositive() || excluded(p, l.Item) {
		return decimal.Zero, false
	}
	chain := rules.GroupChain(l.Group)
	if len(p.ExcludeGroups) > 0 && inGroups(chain, p.ExcludeGroups) {
		return decimal.Zero, false
	}
	for _, g := range chain {
		for _, r := range p.Rates {
			if r.Group == g {
				return r.Rate, true
			}
		}
	}
	return p.DefaultRate, true
}

// AccrualWeight is what lines weigh in a receipt's points: the sum of
// total × rate (not rounded) over the lines that earn under p, zero in
// another currency. A return shares its receipt's points by it
// (Reverse), so returning goods that earned nothing takes nothing back
// and returning those that earned takes back what they earned.
func AccrualWeight(rules *Rules, p *storeline.LoyaltyProgramme, cur storeline.Currency, lines []AccrualLine) decimal.Decimal {
	w := decimal.Zero
	if cur != p.Currency {
		return w
	}
	for _, l := range lines {
		if rate, ok := lineRate(rules, p, l); ok {
			w = w.Add(l.Total.Mul(rate))
		}
	}
	return w
}

func excluded(p *storeline.LoyaltyProgramme, it storeline.ItemID) bool {
	for _, x := range p.ExcludeItems {
		if x == it {
			return true
		}
	}
	return false
}

// Reverse returns the points a return takes back from a line that earned
// earned points on sold units, of which returnedBefore were returned
// earlier and returning are returned now. Reversals are differences of
// floor(earned × returned / sold), so however a line is returned in parts,
// the reversals sum to exactly what it earned once it is all back. A
// return of more than is left takes back what is left.
func Reverse(earned int64, sold, returnedBefore, returning decimal.Decimal) int64 {
	if earned <= 0 || !sold.IsPositive() || !returning.IsPositive() {
		return 0
	}
	if returnedBefore.IsNegative() {
		returnedBefore = decimal.Zero
	}
	after := returnedBefore.Add(returning)
	if after.GreaterThan(sold) {
		after = sold
	}
	if returnedBefore.GreaterThan(after) {
		returnedBefore = after
	}
	return portion(earned, after, sold) - portion(earned, returnedBefore, sold)
}

// portion is floor(earned × part / whole), exactly.
func portion(earned int64, part, whole decimal.Decimal) int64 {
	r := new(big.Rat).Mul(big.NewRat(earned, 1), part.Rat())
	r.Quo(r, whole.Rat())
	q := new(big.Int).Quo(r.Num(), r.Denom()) // both positive: truncation is floor
	return q.Int64()
}

// Spendable returns the points a receipt of total may take now: the least
// of the balance, the points worth p.MaxShare percent of total (rounded
// down; worth both exactly and as PointsMoney rounds it in the
// programme's currency), and, when capLeft is not negative, capLeft (the
// customer's daily offline cap still unused; pass -1 online). Never
// negative.
func Spendable(p *storeline.LoyaltyProgramme, balance int64, total decimal.Decimal, capLeft int64) int64 {
	if balance <= 0 || !total.IsPositive() || !p.PointValue.IsPositive() {
		return 0
	}
	limit := new(big.Rat).Mul(total.Rat(), p.MaxShare.Rat())
	limit.Quo(limit, big.NewRat(100, 1))
	pv := p.PointValue.Rat()
	share := new(big.Rat).Quo(limit, pv)
	byShare := new(big.Int).Quo(share.Num(), share.Denom())
	// PointsMoney rounds n × PointValue half away from zero to the
	// currency's minor unit u: it stays within the limit L while
	// n × PointValue < (floor(L/u) + 1/2) × u, i.e. n < (2·floor(L/u) + 1)
	// / (2 × PointValue / u).
	u := new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p.Currency.Scale())), nil))
	inUnits := new(big.Rat).Quo(limit, u)
	a := new(big.Int).Quo(inUnits.Num(), inUnits.Denom())
	bound := new(big.Rat).SetInt(a.Lsh(a, 1).Add(a, big.NewInt(1)))
	bound.Quo(bound, new(big.Rat).Mul(big.NewRat(2, 1), new(big.Rat).Quo(pv, u)))
	// The largest integer below bound: ceil(bound) − 1.
	byMoney := new(big.Int).Add(bound.Num(), new(big.Int).Sub(bound.Denom(), big.NewInt(1)))
	byMoney.Quo(byMoney, bound.Denom()).Sub(byMoney, big.NewInt(1))
	if byMoney.Cmp(byShare) < 0 {
		byShare = byMoney
	}
	n := balance
	if byShare.IsInt64() && byShare.Int64() < n {
		n = byShare.Int64()
	}
	if capLeft >= 0 && capLeft < n {
		n = capLeft
	}
	return max(n, 0)
}

// PointsMoney is the money points are worth: round(points × PointValue)
// in cur.
func PointsMoney(p *storeline.LoyaltyProgramme, cur storeline.Currency, points int64) decimal.Decimal {
	return cur.Round(decimal.NewFromInt(points).Mul(p.PointValue))
}

// Restore returns what a return gives back of the points a receipt paid:
// the receipt of total paid paid points worth paidWorth, earlier returns
// of it took back returnedBefore of money, and this one returning. With
// x the money returned so far (clamped to total; total when completes,
// the return that takes back all the receipt has left), the points given
// back so far are floor(paid × x / total) and their worth
// ceil(paidWorth × x / total) in cur's minor unit; a return gets the
// differences. So the points never sum past paid, the completing return
// gives back the rest exactly, and the money refundable (returning less
// worth) never sums past what the receipt took in money: a return's
// rounding remainder stays on the points' side. worth is at most
// returning, so the money refundable is never negative.
func Restore(cur storeline.Currency, paid int64, paidWorth, total, returnedBefore, returning decimal.Decimal, completes bool) (points int64, worth decimal.Decimal) {
	zero := cur.Round(decimal.Zero)
	if paid <= 0 || !paidWorth.IsPositive() || !total.IsPositive() || returning.IsNegative() {
		return 0, zero
	}
	before := decimal.Max(returnedBefore, decimal.Zero)
	before = decimal.Min(before, total)
	after := decimal.Min(before.Add(returning), total)
	if completes {
		after = total
	}
	points = portion(paid, after, total) - portion(paid, before, total)
	worth = ceilShare(cur, paidWorth, after, total).Sub(ceilShare(cur, paidWorth, before, total))
	if worth.GreaterThan(returning) {
		// Only a completing return priced below what was left of the
		// receipt: the worth stays within what it returns.
		worth = returning
	}
	return points, cur.Round(worth)
}

// ceilShare is ceil(w × part / whole) in cur's minor unit, exactly.
func ceilShare(cur storeline.Currency, w, part, whole decimal.Decimal) decimal.Decimal {
	unit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(cur.Scale())), nil)
	r := new(big.Rat).Mul(w.Rat(), part.Rat())
	r.Quo(r, whole.Rat())
	r.Mul(r, new(big.Rat).SetInt(unit))
	// Both non-negative: ceil(n/d) = (n + d − 1) / d.
	q := new(big.Int).Add(r.Num(), new(big.Int).Sub(r.Denom(), big.NewInt(1)))
	q.Quo(q, r.Denom())
	return decimal.NewFromBigInt(q, -cur.Scale())
}

package chain

import (
	"context"
	"fmt"
	"sort"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Faults RecheckWithFault plants, each a way the chain can misbehave that
// the closing check must report.
var Faults = []string{
	"shop-loses-receipt", "shop-duplicates-receipt", "shop-extra-receipt", "shop-stock", "shop-sales", "shop-points-redeemed",
	"central-loses-receipt", "central-duplicates-receipt", "central-stock", "central-money", "central-points",
	"central-stock-value", "central-sold", "central-cost", "central-points-issued", "central-sales",
	"report-stock", "report-stock-value", "report-loses-sale", "report-revenue", "report-cost", "report-points", "report-points-issued",
	"report-wholesale-dropped", "report-wholesale-totals", "report-wholesale-turnover", "report-buyer-statement", "shop-wholesale-sales",
}

// RecheckWithFault runs the last Run's closing check again on the running
// chain with fault planted in what the check reads: in shop-1's ledger, or
// in one central node's copy of shop-2.
func RecheckWithFault(c *Chain, fault string) (Check, error) {
	if c.last == nil {
		return Check{}, fmt.Errorf("no run to check again")
	}
	one := func(m map[storeline.EventID]int) storeline.EventID {
		ids := sortedIDs(m)
		return ids[len(ids)/2]
	}
	first := func(m map[string]decimal.Decimal) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys[0]
	}
	item := func(m map[storeline.ItemID]decimal.Decimal) storeline.ItemID {
		for _, k := range unionKeys(m, nil) {
			if !m[k].IsZero() {
				return k
			}
		}
		return ""
	}
	cent := fmt.Sprintf("central-%d", len(c.centrals)) // any node
	p := &plant{}
	switch fault {
	case "shop-loses-receipt":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				delete(v.receipts, one(v.receipts))
			}
		}
	case "shop-duplicates-receipt":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				v.receipts[one(v.receipts)]++
			}
		}
	case "shop-extra-receipt":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				v.receipts[storeline.NewEventID()] = 1
			}
		}
	case "shop-stock":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				id := item(v.stock)
				v.stock[id] = v.stock[id].Sub(decimal.NewFromInt(1))
			}
		}
	case "shop-sales":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				v.sales = v.sales.Add(decimal.New(1, -2))
			}
		}
	case "shop-points-redeemed":
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				k := storeline.RedeemedPointsAccount(s) + " " + string(storeline.PointsAsset(c.data.Programme.ID))
				v.loyalty[k] = v.loyalty[k].Add(decimal.NewFromInt(1))
			}
		}
	case "central-loses-receipt", "central-duplicates-receipt", "central-stock", "central-money", "central-points",
		"central-stock-value", "central-sold", "central-cost", "central-points-issued", "central-sales":
		p.central = func(node string, s storeline.StoreID, v *shopView) {
			if node != cent || s != "shop-2" {
				return
			}
			switch fault {
			case "central-loses-receipt":
				delete(v.receipts, one(v.receipts))
			case "central-duplicates-receipt":
				v.receipts[one(v.receipts)]++
			case "central-stock":
				id := item(v.stock)
				v.stock[id] = v.stock[id].Add(decimal.NewFromInt(1))
			case "central-money":
				k := first(v.money)
				v.money[k] = v.money[k].Add(decimal.New(1, -2))
			case "central-points":
				k := first(v.points)
				v.points[k] = v.points[k].Add(decimal.NewFromInt(1))
			case "central-stock-value":
				k := first(v.units)
				v.value[k] = v.value[k].Add(decimal.New(1, -2))
			case "central-sold":
				id := item(v.sold)
				v.sold[id] = v.sold[id].Add(decimal.New(1, -3))
			case "central-cost":
				id := item(v.cogs)
				v.cogs[id] = v.cogs[id].Add(decimal.New(1, -2))
			case "central-points-issued":
				k := first(v.loyalty)
				v.loyalty[k] = v.loyalty[k].Sub(decimal.NewFromInt(1))
			case "central-sales":
				v.sales = v.sales.Add(decimal.New(1, -2))
			}
		}
	case "report-stock", "report-stock-value", "report-loses-sale", "report-revenue", "report-cost", "report-points", "report-points-issued":
		p.report = func(s storeline.StoreID, v *reportView) {
			if s != "shop-2" {
				return
			}
			switch fault {
			case "report-stock":
				k := first(v.units)
				v.units[k] = v.units[k].Add(decimal.NewFromInt(1))
			case "report-stock-value":
				k := first(v.units)
				v.value[k] = v.value[k].Sub(decimal.New(1, -2))
			case "report-loses-sale":
				v.sales--
			case "report-revenue":
				v.revenue = v.revenue.Add(decimal.New(1, -2))
			case "report-cost":
				v.cost = v.cost.Sub(decimal.New(1, -2))
			case "report-points":
				k := first(v.points)
				v.points[k] = v.points[k].Sub(decimal.NewFromInt(1))
			case "report-points-issued":
				k := first(v.loyalty)
				v.loyalty[k] = v.loyalty[k].Add(decimal.NewFromInt(1))
			}
		}
	case "report-wholesale-dropped", "report-wholesale-totals", "report-wholesale-turnover", "report-buyer-statement":
		// The wholesale is shop-1's (sellWholesale).
		p.report = func(s storeline.StoreID, v *reportView) {
			if s != "shop-1" {
				return
			}
			switch fault {
			case "report-wholesale-dropped": // the rows left out, the totals not
				v.revenue, v.cost = v.revenue.Sub(v.wholesaleRevenue), v.cost.Sub(v.wholesaleCost)
				v.wholesaleRows, v.wholesaleRevenue, v.wholesaleCost = 0, decimal.Zero, decimal.Zero
			case "report-wholesale-totals":
				v.wholesaleTotalRevenue = v.wholesaleTotalRevenue.Add(decimal.New(1, -2))
			case "report-wholesale-turnover": // a turnover counting the wholesale
				v.turnoverNet = v.turnoverNet.Add(v.wholesaleRevenue)
			case "report-buyer-statement":
				v.owed = v.owed.Add(decimal.New(1, -2))
			}
		}
	case "shop-wholesale-sales": // the wholesale's revenue and VAT not in shop-1's ledger
		p.shop = func(s storeline.StoreID, v *shopView) {
			if s == "shop-1" {
				v.sales = v.sales.Sub(c.wholesaleOf(0).gross)
			}
		}
	default:
		return Check{}, fmt.Errorf("unknown fault %q", fault)
	}
	c.plant = p
	defer func() { c.plant = nil }()
	return c.check(context.Background(), c.last, c.lastSum), nil
}

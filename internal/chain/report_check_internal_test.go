package chain

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestCompareReports: the comparison of what central's API reports of a
// shop with the shop's ledger passes on agreeing figures (to the last
// decimal, whatever the exponent) and reports each fault planted in the
// reports, naming the shop, the account and both figures.
func TestCompareReports(t *testing.T) {
	r1, r2, ret := storeline.NewEventID(), storeline.NewEventID(), storeline.NewEventID()
	d := decimal.RequireFromString
	shop := shopView{
		receipts: map[storeline.EventID]int{r1: 1, r2: 1}, returns: map[storeline.EventID]int{ret: 1},
		units:   map[string]decimal.Decimal{"food/item-1": d("-2"), "drinks/item-2": d("-0.5")},
		value:   map[string]decimal.Decimal{"food/item-1": d("-1.70")},
		revenue: d("9.35"), cost: d("1.70"), sales: d("10.00"),
		sold: map[storeline.ItemID]decimal.Decimal{"item-1": d("2"), "item-2": d("0.5")},
		points: map[string]decimal.Decimal{
			"points/club/c-1/shop-1": d("12"), "points-debt/shop-1/club/c-2": d("-4"),
		},
		loyalty:  map[string]decimal.Decimal{"points-issued/shop-1 pts:club": d("-15"), "points-redeemed/shop-1 pts:club": d("3")},
		reserved: map[string]decimal.Decimal{"reserved/shop-1/item-1 item:item-1": d("1"), "reservation/shop-1/r1 item:item-1": d("-1")},
	}
	report := func() reportView {
		return reportView{
			units:   map[string]decimal.Decimal{"food/item-1": d("-2.000"), "drinks/item-2": d("-0.5")},
			value:   map[string]decimal.Decimal{"food/item-1": d("-1.7")},
			sales:   3,
			revenue: d("9.350"), cost: d("1.7"),
			turnoverRows: 3, turnoverNet: d("9.350"), turnoverGross: d("10.0"),
			turnoverSold: map[storeline.ItemID]decimal.Decimal{"item-1": d("2.000"), "item-2": d("0.5")},
			points: map[string]decimal.Decimal{
				"points/club/c-1/shop-1": d("12"), "points-debt/shop-1/club/c-2": d("-4"),
			},
			loyalty:  map[string]decimal.Decimal{"points-issued/shop-1 pts:club": d("-15"), "points-redeemed/shop-1 pts:club": d("3")},
			reserved: map[string]decimal.Decimal{"reserved/shop-1/item-1 item:item-1": d("1.000"), "reservation/shop-1/r1 item:item-1": d("-1")},
		}
	}
	for _, tc := range []struct {
		name  string
		plant func(*reportView)
		want  string // "" passes
	}{
		{"agree", func(*reportView) {}, ""},
		{"units off", func(v *reportView) { v.units["drinks/item-2"] = d("-0.4") },
			"central's stock report's units of shop-1 differ (shop, central) for 1 accounts: stock/shop-1/drinks/item-2 -0.5, -0.4"},
		{"row missing", func(v *reportView) { delete(v.units, "food/item-1"); delete(v.value, "food/item-1") },
			"stock/shop-1/food/item-1 -2, 0"},
		{"value off", func(v *reportView) { v.value["food/item-1"] = d("-1.71") },
			"central's stock report's values at cost of shop-1 differ (shop, central) for 1 accounts: stock/shop-1/food/item-1 -1.7, -1.71"},
		{"a sale missing", func(v *reportView) { v.sales = 2 }, "central's margin report of shop-1 lists 2 sales and returns, the shop's journal holds 3"},
		{"revenue off", func(v *reportView) { v.revenue = d("9.36") },
			"central's margin report of shop-1: revenue net of VAT 9.36; the shop's revenue/shop-1 account 9.35"},
		{"cost off", func(v *reportView) { v.cost = d("1.69") }, "central's margin report of shop-1: cost of sales 1.69; the shop's cogs/shop-1/ accounts 1.7"},
		{"cost off but a sale uncosted", func(v *reportView) { v.cost, v.uncosted = d("0"), 1 }, ""},
		{"rights off", func(v *reportView) { v.points["points/club/c-1/shop-1"] = d("11") },
			"central's loyalty points of shop-1 differ (shop, central) for 1 accounts: points/club/c-1/shop-1 12, 11"},
		{"debt missing", func(v *reportView) { delete(v.points, "points-debt/shop-1/club/c-2") }, "points-debt/shop-1/club/c-2 -4, 0"},
		{"issued off", func(v *reportView) { v.loyalty["points-issued/shop-1 pts:club"] = d("-14") },
			"central's points issued and redeemed of shop-1 differ (shop, central) for 1 accounts: points-issued/shop-1 pts:club -15, -14"},
		{"redeemed extra", func(v *reportView) { v.loyalty["points-redeemed/shop-1 pts:club"] = d("4") }, "points-redeemed/shop-1 pts:club 3, 4"},
		{"reservation not listed", func(v *reportView) { delete(v.reserved, "reservation/shop-1/r1 item:item-1") },
			"central's reservations of goods of shop-1 differ (shop, central) for 1 accounts: reservation/shop-1/r1 item:item-1 -1, 0"},
		{"reserved off", func(v *reportView) { v.reserved["reserved/shop-1/item-1 item:item-1"] = d("2") }, "reserved/shop-1/item-1 item:item-1 1, 2"},
		{"turnover net off", func(v *reportView) { v.turnoverNet = d("9.34") },
			"central's turnover report of shop-1: net of VAT 9.34; the shop's revenue/shop-1 account 9.35"},
		{"turnover revenue off", func(v *reportView) { v.turnoverGross = d("10.01") },
			"central's turnover report of shop-1: revenue VAT included 10.01; the shop's revenue and VAT accounts 10"},
		{"turnover units off", func(v *reportView) { v.turnoverSold["item-2"] = d("0.4") },
			"central's turnover report's units sold of shop-1 differ (shop, central) for 1 accounts: sold/shop-1/item-2 0.5, 0.4"},
		{"turnover item missing", func(v *reportView) { delete(v.turnoverSold, "item-1") }, "sold/shop-1/item-1 2, 0"},
		{"turnover item extra", func(v *reportView) { v.turnoverSold["item-3"] = d("1") }, "sold/shop-1/item-3 0, 1"},
	} {
		var problems []string
		rep := report()
		tc.plant(&rep)
		cnt := compareReports("shop-1", shop, rep, wholesale{}, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
		if tc.name == "agree" && cnt != (reportCounts{stock: 2, sales: 3, customers: 2, flows: 2, reserved: 2, turnover: 3}) {
			t.Errorf("agree: counts %+v", cnt)
		}
	}
}

// TestCustomersOf: the customers whose points the reports are asked for
// are those of the shop's rights and debts, once each.
func TestCustomersOf(t *testing.T) {
	one := decimal.NewFromInt(1)
	got := customersOf(map[string]decimal.Decimal{
		"points/club/c-2/shop-1": one, "points-debt/shop-1/club/c-1": one, "points-debt/shop-1/club/c-2": one, "points-issued/shop-1": one,
	})
	if want := []storeline.CustomerID{"c-1", "c-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("customersOf = %v, want %v", got, want)
	}
}

// TestReadViewFlows: readView takes the points issued and redeemed, the
// units sold and their cost, and the stock's units and value per
// department, from a ledger's balances.
func TestReadViewFlows(t *testing.T) {
	d := decimal.RequireFromString
	bals := []struct{ acct, asset, amt string }{
		{"stock/shop-1/food/item-1", "item:item-1", "-2"},
		{"stock/shop-1/food/item-1", "cur:EUR", "-1.70"},
		{"stock/shop-10/food/item-1", "item:item-1", "-9"},
		{"sold/shop-1/item-1", "item:item-1", "2"},
		{"cogs/shop-1/item-1", "cur:EUR", "1.70"},
		{"revenue/shop-1", "cur:EUR", "-9.35"},
		{"vat/shop-1/7", "cur:EUR", "-0.65"},
		{"points-issued/shop-1", "pts:club", "-15"},
		{"points-issued/shop-10", "pts:club", "-99"},
		{"points-redeemed/shop-1", "pts:club", "3"},
	}
	balances := func(prefix string) ([]ledger.Balance, error) {
		var out []ledger.Balance
		for _, b := range bals {
			if strings.HasPrefix(b.acct, prefix) {
				out = append(out, ledger.Balance{Account: b.acct, Asset: storeline.Asset(b.asset), Amount: d(b.amt)})
			}
		}
		return out, nil
	}
	v, err := readView(nil, balances, "shop-1", "club")
	if err != nil {
		t.Fatal(err)
	}
	eq := func(what string, got, want decimal.Decimal) {
		if !got.Equal(want) {
			t.Errorf("%s = %s, want %s", what, got, want)
		}
	}
	eq("units", v.units["food/item-1"], d("-2"))
	eq("value", v.value["food/item-1"], d("-1.70"))
	eq("sold", v.sold["item-1"], d("2"))
	eq("cogs", v.cogs["item-1"], d("1.70"))
	eq("cost", v.cost, d("1.70"))
	eq("revenue", v.revenue, d("9.35"))
	eq("sales", v.sales, d("10.00"))
	eq("issued", v.loyalty["points-issued/shop-1 pts:club"], d("-15"))
	eq("redeemed", v.loyalty["points-redeemed/shop-1 pts:club"], d("3"))
	if len(v.units) != 1 || len(v.loyalty) != 2 {
		t.Errorf("another shop's balances read: units %v, loyalty %v", v.units, v.loyalty)
	}
}

package chain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/sample"
)

// TestConfigValidate: the defaults are valid, and a bad config names every
// bad field.
func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig("/tmp/x"), "small": SmallConfig("/tmp/x")} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := DefaultConfig("")
	bad.Centrals, bad.TillsPerShop, bad.Size.Items, bad.ElectionTimeout = 2, 0, 5, bad.HeartbeatTimeout/2
	err := bad.Validate()
	for _, f := range []string{"Dir", "Centrals", "TillsPerShop", "Size.Items", "ElectionTimeout"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("Validate() = %v, want it to name %s", err, f)
		}
	}
}

// TestWireRecord: records reach the head-office API with the snake_case
// names central decodes (central's own tests pin its rule).
func TestWireRecord(t *testing.T) {
	g := sample.Generate(sample.Size{Stores: 2, Items: 50, Customers: 1})
	b, _ := json.Marshal(wireRecord(g.Stores[1]))
	for _, want := range []string{`"time_zone":"Europe/Berlin"`, `"price_lists":["city","base"]`, `"departments":[{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("store wire = %s, lacks %s", b, want)
		}
	}
	b, _ = json.Marshal(wireRecord(g.Items[0]))
	for _, want := range []string{`"vat_rate":"7"`, `"barcodes":[{"code":`, `"factor":"1"`, `"expiry_tracked":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("item wire = %s, lacks %s", b, want)
		}
	}
	for in, want := range map[string]string{"VATRate": "vat_rate", "PINHash": "pin_hash", "ID": "id", "DailyOfflineCap": "daily_offline_cap"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestStatusLine: the live line names the leader, each shop's rate and
// backlog, and a cut shop.
func TestStatusLine(t *testing.T) {
	s := Status{Leader: "central-2", CentralsUp: 2, Centrals: 3, Shops: []ShopStatus{
		{Store: "shop-1", Rate: 12, Receipts: 40, Backlog: 3},
		{Store: "shop-2", Rate: 9, Receipts: 30, Backlog: -1, Cut: true},
	}}
	line := s.String()
	for _, want := range []string{"central 2/3 up, central-2", "shop-1  12/s 40 backlog 3", "shop-2   9/s 30 CUT OFF"} {
		if !strings.Contains(line, want) {
			t.Errorf("status %q lacks %q", line, want)
		}
	}
	if s.Leader = ""; !strings.Contains(s.String(), "no leader") {
		t.Errorf("status without a leader: %q", s.String())
	}
}

// TestCompareTills: the comparison of a shop with its tills passes on
// agreeing figures and reports each fault planted in the shop's view.
func TestCompareTills(t *testing.T) {
	r1, r2, ret := storeline.NewEventID(), storeline.NewEventID(), storeline.NewEventID()
	d := decimal.RequireFromString
	tills := func() tally {
		return tally{
			receipts: map[storeline.EventID]bool{r1: true, r2: true}, returns: map[storeline.EventID]bool{ret: true},
			stock: map[storeline.ItemID]decimal.Decimal{"item-1": d("-2"), "item-2": d("-0.5")}, sales: d("12.30"), redeemed: 40,
		}
	}
	shop := func() shopView {
		return shopView{
			receipts: map[storeline.EventID]int{r1: 1, r2: 1}, returns: map[storeline.EventID]int{ret: 1},
			stock: map[storeline.ItemID]decimal.Decimal{"item-1": d("-2.000"), "item-2": d("-0.5"), "item-3": d("0")}, sales: d("12.3"),
			loyalty: map[string]decimal.Decimal{"points-issued/shop-1 pts:club": d("-12"), "points-redeemed/shop-1 pts:club": d("40")},
		}
	}
	for _, tc := range []struct {
		name    string
		unknown int
		plant   func(*shopView)
		want    string // "" passes
	}{
		{"agree", 0, func(*shopView) {}, ""},
		{"receipt lost", 0, func(v *shopView) { delete(v.receipts, r2) }, "receipt " + r2.String() + " acknowledged to a till is not in the shop's journal"},
		{"return lost", 0, func(v *shopView) { delete(v.returns, ret) }, "return " + ret.String() + " acknowledged"},
		{"receipt twice", 0, func(v *shopView) { v.receipts[r1] = 2 }, "receipt " + r1.String() + " is in the shop's journal 2 times"},
		{"receipt twice, outcomes unknown", 3, func(v *shopView) { v.receipts[r1] = 2 }, "is in the shop's journal 2 times"},
		{"receipt never told", 0, func(v *shopView) { v.receipts[storeline.NewEventID()] = 1 }, "1 receipts and returns in the journal the tills were never told of"},
		{"receipt never told, outcome unknown", 1, func(v *shopView) { v.receipts[storeline.NewEventID()] = 1 }, ""},
		{"stock off", 0, func(v *shopView) { v.stock["item-2"] = d("-0.4") }, "stock differs from what the tills sold (tills, shop) for 1 items: item-2 -0.5, -0.4"},
		{"stock of an item the tills never sold", 0, func(v *shopView) { v.stock["item-9"] = d("1") }, "item-9 0, 1"},
		{"sales off", 0, func(v *shopView) { v.sales = d("12.31") }, "revenue and VAT in the shop's ledger 12.31, the tills took 12.3"},
		{"points redeemed off", 0, func(v *shopView) { v.loyalty["points-redeemed/shop-1 pts:club"] = d("39") }, "points redeemed in the shop's ledger 39, the tills were paid 40"},
		{"points redeemed off, outcomes unknown", 1, func(v *shopView) { v.loyalty["points-redeemed/shop-1 pts:club"] = d("39") }, ""},
	} {
		var problems []string
		sc := compareTills("shop-1", tills(), func() shopView { v := shop(); tc.plant(&v); return v }(), tc.unknown, wholesale{},
			func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
		if tc.name == "agree" && (sc.ItemsChecked != 3 || !sc.SalesChecked || sc.Receipts != 2 || sc.Returns != 1 || !sc.Redeemed.Equal(d("40")) || !sc.Issued.Equal(d("12"))) {
			t.Errorf("agree: %+v", sc)
		}
		if tc.unknown > 0 && (sc.ItemsChecked != 0 || sc.SalesChecked) {
			t.Errorf("%s: stock or sales compared with outcomes unknown: %+v", tc.name, sc)
		}
	}
}

// TestCompareCentral: the comparison of a central node's copy of a shop
// with the shop's own passes on agreeing copies and reports each fault
// planted in the node's copy.
func TestCompareCentral(t *testing.T) {
	r1, r2, ret := storeline.NewEventID(), storeline.NewEventID(), storeline.NewEventID()
	d := decimal.RequireFromString
	view := func() shopView {
		return shopView{
			receipts: map[storeline.EventID]int{r1: 1, r2: 1}, returns: map[storeline.EventID]int{ret: 1},
			stock:  map[storeline.ItemID]decimal.Decimal{"item-1": d("-2")},
			money:  map[string]decimal.Decimal{"cash/shop-1/till-1 cur:EUR": d("10.00"), "revenue/shop-1 cur:EUR": d("-9.35")},
			points: map[string]decimal.Decimal{"points/loyalty/c-1/shop-1": d("12")},
			sales:  d("10.00"),
			units:  map[string]decimal.Decimal{"food/item-1": d("-2")},
			value:  map[string]decimal.Decimal{"food/item-1": d("-1.70")},
			sold:   map[storeline.ItemID]decimal.Decimal{"item-1": d("2")},
			cogs:   map[storeline.ItemID]decimal.Decimal{"item-1": d("1.70")},
			loyalty: map[string]decimal.Decimal{
				"points-issued/shop-1 pts:loyalty": d("-15"), "points-redeemed/shop-1 pts:loyalty": d("3"),
			},
			reserved: map[string]decimal.Decimal{
				"reserved/shop-1/item-1 item:item-1": d("2"), "reservation/shop-1/" + r2.String() + " item:item-1": d("-2"),
			},
		}
	}
	for _, tc := range []struct {
		name  string
		plant func(*shopView)
		want  string
	}{
		{"agree", func(*shopView) {}, ""},
		{"receipt lost", func(v *shopView) { delete(v.receipts, r1) }, "holds 2 of shop-1's receipts and returns, the shop 3 (1 of the shop's missing, 0 the shop does not hold)"},
		{"receipt held as a return", func(v *shopView) { delete(v.receipts, r1); v.returns[r1] = 1 }, "(1 of the shop's missing, 1 the shop does not hold)"},
		{"receipt the shop lacks", func(v *shopView) { v.receipts[storeline.NewEventID()] = 1 }, "(0 of the shop's missing, 1 the shop does not hold)"},
		{"receipt twice", func(v *shopView) { v.receipts[r2] = 2 }, "holds 1 of shop-1's receipts and returns more than once: receipt " + r2.String() + " 2 times"},
		{"return twice", func(v *shopView) { v.returns[ret] = 3 }, "return " + ret.String() + " 3 times"},
		{"stock off", func(v *shopView) { v.stock["item-1"] = d("-1") }, "central-2's stock balances of shop-1 differ (shop, central) for 1 accounts: item-1 -2, -1"},
		{"stock missing", func(v *shopView) { delete(v.stock, "item-1") }, "item-1 -2, 0"},
		{"cash off", func(v *shopView) { v.money["cash/shop-1/till-1 cur:EUR"] = d("10.01") }, "money balances of shop-1 differ"},
		{"revenue missing", func(v *shopView) { delete(v.money, "revenue/shop-1 cur:EUR") }, "revenue/shop-1 cur:EUR -9.35, 0"},
		{"points extra", func(v *shopView) { v.points["points/loyalty/c-2/shop-1"] = d("1") }, "loyalty balances of shop-1 differ"},
		{"stock value off", func(v *shopView) { v.value["food/item-1"] = d("-1.69") },
			"central-2's stock values at cost of shop-1 differ (shop, central) for 1 accounts: stock/shop-1/food/item-1 -1.7, -1.69"},
		{"stock value where the shop has none", func(v *shopView) { v.value["food/item-2"] = d("0.01") }, "stock/shop-1/food/item-2 0, 0.01"},
		{"sold off", func(v *shopView) { v.sold["item-1"] = d("2.001") }, "central-2's units sold of shop-1 differ (shop, central) for 1 accounts: sold/shop-1/item-1 2, 2.001"},
		{"cost of sales missing", func(v *shopView) { delete(v.cogs, "item-1") }, "central-2's costs of sales of shop-1 differ (shop, central) for 1 accounts: cogs/shop-1/item-1 1.7, 0"},
		{"points issued off", func(v *shopView) { v.loyalty["points-issued/shop-1 pts:loyalty"] = d("-16") },
			"central-2's points issued and redeemed of shop-1 differ (shop, central) for 1 accounts: points-issued/shop-1 pts:loyalty -15, -16"},
		{"points redeemed missing", func(v *shopView) { delete(v.loyalty, "points-redeemed/shop-1 pts:loyalty") }, "points-redeemed/shop-1 pts:loyalty 3, 0"},
		{"reservation ended at central only", func(v *shopView) { v.reserved = map[string]decimal.Decimal{} },
			"central-2's goods reserved of shop-1 differ (shop, central) for 2 accounts"},
		{"reserved off", func(v *shopView) { v.reserved["reserved/shop-1/item-1 item:item-1"] = d("3") }, "reserved/shop-1/item-1 item:item-1 2, 3"},
		{"sales off", func(v *shopView) { v.sales = d("10.01") }, "central-2's sales (revenue and VAT) of shop-1 differ: the shop 10, central 10.01"},
		{"same figures, other exponent", func(v *shopView) { v.sales, v.value["food/item-1"] = d("10"), d("-1.7") }, ""},
	} {
		var problems []string
		cen := view()
		tc.plant(&cen)
		cnt := compareCentral("central-2", "shop-1", view(), cen, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
		if tc.name == "agree" && cnt != (centralCounts{events: 3, stock: 1, value: 1, sold: 1, cogs: 1, money: 2, points: 1, flows: 2, reserved: 2}) {
			t.Errorf("agree: counts %+v", cnt)
		}
	}
}

// TestCheckCentralStoppedNode: a configured central node that is not
// running is reported, not left out of "every central node" silently.
func TestCheckCentralStoppedNode(t *testing.T) {
	c := &Chain{cfg: SmallConfig(t.TempDir()), centrals: []*centralSlot{{cfg: central.Config{NodeID: "central-2"}}}}
	var problems []string
	c.checkCentral(context.Background(), nil, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
	if len(problems) != 1 || !strings.Contains(problems[0], "central-2 is not running") {
		t.Errorf("problems %q, want central-2 reported as not running", problems)
	}
}

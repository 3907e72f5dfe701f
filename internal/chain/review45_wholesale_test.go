package chain

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/internal/tillsim"
)

// TestReview45WholesaleOnTinyChain runs the wholesale step on a one-node
// central with one shop and ten items (no tills) and closes with the
// closing check: the shop's ledger holds the wholesale's revenue (its
// documents reach the shop), the margin report's wholesale rows make its
// revenue and cost the shop's accounts', the buyer's statement closes at
// invoice − return − payment, and the check passes. Each fault planted in
// what the check reads of the wholesale is reported.
func TestReview45WholesaleOnTinyChain(t *testing.T) {
	cfg := SmallConfig(t.TempDir())
	cfg.Centrals = 1
	cfg.Size = sample.Size{Stores: 1, Items: 10, Customers: 1}
	var narration strings.Builder
	cfg.Narrate = func(s string) { narration.WriteString(s + "\n") }
	ctx := context.Background()
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, &narration)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	w := c.wholesaleOf(0)
	if !w.sold() || w.documents != 2 || len(w.units) != wholesaleItems || !w.revenue.IsPositive() || !w.cost.IsPositive() ||
		!w.paid.IsPositive() || !w.owed().IsPositive() {
		t.Fatalf("wholesale booked %+v; want an invoice of %d items and a return, part paid\n%s", w, wholesaleItems, &narration)
	}
	if !strings.Contains(narration.String(), "head office: wholesale at shop-1: an outgoing invoice to "+Buyer) {
		t.Errorf("no wholesale line in the narration:\n%s", &narration)
	}
	if _, err := c.settle(); err != nil {
		t.Fatal(err)
	}
	s := c.shops[0]
	v, err := readView(s.Node.Ledger().Journal, s.Node.Ledger().Balances, s.ID, c.data.Programme.ID)
	if err != nil {
		t.Fatal(err)
	}
	// No till sold: all the shop's revenue, sales and cost are the
	// wholesale's, so the shop's ledger does hold it.
	if !v.revenue.Equal(w.revenue) || !v.sales.Equal(w.gross) || !v.cost.Equal(w.cost) {
		t.Fatalf("the shop's ledger: revenue %s, sales %s, cost %s; the wholesale booked revenue %s, sales %s, cost %s",
			v.revenue, v.sales, v.cost, w.revenue, w.gross, w.cost)
	}
	f := newFacts(len(c.shops), c.openingStock())
	c.last, c.lastSum = f, tillsim.Summary{}
	chk := c.check(ctx, f, tillsim.Summary{})
	if !chk.OK() {
		t.Fatalf("closing check failed: %q\n%s", chk.Problems, &narration)
	}
	want := fmt.Sprintf("shop-1: 2 wholesale rows, revenue %s at cost %s; buyer %s's statement closes at %s = invoiced %s - returned %s - paid %s",
		w.revenue, w.cost, Buyer, w.owed(), w.invoiced, w.returned, w.paid)
	if !strings.Contains(chk.Reports, want) {
		t.Errorf("central reports: %s\nwant it to contain %q", chk.Reports, want)
	}
	t.Logf("narration:\n%s\ncentral reports: %s", &narration, chk.Reports)
	for _, fault := range review45Faults {
		chk, err := RecheckWithFault(c, fault)
		if err != nil {
			t.Fatalf("%s: %v", fault, err)
		}
		if want := review45FaultReport[fault]; chk.OK() || !strings.Contains(strings.Join(chk.Problems, "\n"), want) {
			t.Errorf("fault %s: check OK=%v, problems %q; want one containing %q", fault, chk.OK(), chk.Problems, want)
		}
	}
}

// review45Faults are the Faults of what the check reads of the
// wholesale; review45FaultReport what it says of each.
var review45Faults = []string{"report-wholesale-dropped", "report-wholesale-totals", "report-wholesale-turnover", "report-buyer-statement", "shop-wholesale-sales"}

var review45FaultReport = map[string]string{
	"report-wholesale-dropped":  "central's margin report of shop-1: revenue net of VAT ",
	"report-wholesale-totals":   "central's margin report of shop-1: its 2 wholesale rows add up to revenue ",
	"report-wholesale-turnover": "central's turnover report of shop-1: net of VAT ",
	"report-buyer-statement":    "central's statement of buyer demo-cafe closes at ",
	"shop-wholesale-sales":      "shop-1: revenue and VAT in the shop's ledger ",
}

// TestReview45CompareReportsWholesale: the reports' comparison counts the
// margin report's wholesale rows in its revenue and cost, holds them to
// their totals and to what the step booked, takes the wholesale out of
// the shop's accounts before the turnover report's comparison, and holds
// the buyer's statement to invoice − return − payment.
func TestReview45CompareReportsWholesale(t *testing.T) {
	d := decimal.RequireFromString
	w := wholesale{buyer: "b1", currency: "EUR", units: map[storeline.ItemID]decimal.Decimal{"item-1": d("3")},
		revenue: d("8.00"), gross: d("8.80"), cost: d("4.50"), invoiced: d("13.20"), returned: d("4.40"), paid: d("4.40")}
	// The shop's ledger: till sales of 9.35 net (10.00 with VAT, cost
	// 1.70, 2.5 units of item-1) and the wholesale.
	shop := shopView{
		receipts: map[storeline.EventID]int{storeline.NewEventID(): 1},
		revenue:  d("17.35"), sales: d("18.80"), cost: d("6.20"),
		sold: map[storeline.ItemID]decimal.Decimal{"item-1": d("5.5")},
	}
	report := func() reportView {
		return reportView{
			sales: 1, revenue: d("17.35"), cost: d("6.2"),
			wholesaleRows: 2, wholesaleRevenue: d("8"), wholesaleCost: d("4.5"), wholesaleTotalRevenue: d("8.00"), wholesaleTotalCost: d("4.50"),
			turnoverRows: 1, turnoverNet: d("9.35"), turnoverGross: d("10"),
			turnoverSold: map[storeline.ItemID]decimal.Decimal{"item-1": d("2.5")},
			owed:         d("4.40"), owedRead: true,
		}
	}
	for _, tc := range []struct {
		name  string
		w     wholesale
		plant func(*reportView)
		want  []string // none: passes
	}{
		{"agree", w, func(*reportView) {}, nil},
		{"wholesale rows dropped", w, func(v *reportView) {
			v.revenue, v.cost = v.revenue.Sub(v.wholesaleRevenue), v.cost.Sub(v.wholesaleCost)
			v.wholesaleRows, v.wholesaleRevenue, v.wholesaleCost = 0, decimal.Zero, decimal.Zero
		}, []string{
			"central's margin report of shop-1: revenue net of VAT 9.35; the shop's revenue/shop-1 account 17.35",
			"central's margin report of shop-1: cost of sales 1.7; the shop's cogs/shop-1/ accounts 6.2",
			"its 0 wholesale rows add up to revenue 0 and cost 0; its totals wholesale_revenue 8 and wholesale_cost 4.5",
			"central's margin report of shop-1: wholesale revenue net of VAT 0 and cost 0 in 0 rows; the wholesale documents moved 8 into revenue/shop-1 and 4.5 into cogs/shop-1/",
		}},
		{"a wholesale row off its totals", w, func(v *reportView) { v.wholesaleTotalCost = d("4.49") },
			[]string{"its 2 wholesale rows add up to revenue 8 and cost 4.5; its totals wholesale_revenue 8 and wholesale_cost 4.49"}},
		{"the margin report's wholesale not what was booked", w, func(v *reportView) {
			v.wholesaleRevenue, v.wholesaleTotalRevenue, v.revenue = d("7.99"), d("7.99"), d("17.34")
		}, []string{"wholesale revenue net of VAT 7.99 and cost 4.5 in 2 rows; the wholesale documents moved 8 into revenue/shop-1"}},
		{"turnover counts the wholesale", w, func(v *reportView) { v.turnoverNet, v.turnoverGross = d("17.35"), d("18.80") }, []string{
			"central's turnover report of shop-1: net of VAT 17.35; the shop's revenue/shop-1 account 17.35 less the wholesale's 8",
			"central's turnover report of shop-1: revenue VAT included 18.8; the shop's revenue and VAT accounts 18.8 less the wholesale's 8.8",
		}},
		{"turnover units count the wholesale", w, func(v *reportView) { v.turnoverSold["item-1"] = d("5.5") },
			[]string{"central's turnover report's units sold of shop-1 differ (shop, central) for 1 accounts: sold/shop-1/item-1 2.5, 5.5"}},
		{"statement off", w, func(v *reportView) { v.owed = d("8.80") },
			[]string{"central's statement of buyer b1 closes at 8.8 (read true); the wholesale at shop-1 left it owing invoiced 13.2 - returned 4.4 - paid 4.4 = 4.4"}},
		{"statement not read", w, func(v *reportView) { v.owedRead = false }, []string{"(read false)"}},
		{"wholesale reported where none was sold", wholesale{}, func(*reportView) {}, []string{
			"wholesale revenue net of VAT 8 and cost 4.5 in 2 rows; the wholesale documents moved 0 into revenue/shop-1",
			"central's turnover report of shop-1: net of VAT 9.35; the shop's revenue/shop-1 account 17.35",
		}},
	} {
		var problems []string
		rep := report()
		tc.plant(&rep)
		cnt := compareReports("shop-1", shop, rep, tc.w, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		got := strings.Join(problems, "\n")
		if len(tc.want) == 0 && got != "" {
			t.Errorf("%s: problems %q, want none", tc.name, got)
		}
		for _, want := range tc.want {
			if !strings.Contains(got, want) {
				t.Errorf("%s: problems %q, want one containing %q", tc.name, got, want)
			}
		}
		if tc.name == "agree" && cnt.wholesale != 2 {
			t.Errorf("agree: %d wholesale rows counted, want 2", cnt.wholesale)
		}
	}
}

// TestReview45CompareTillsWholesale: the shop's revenue and VAT hold the
// tills' takings and the wholesale's; the tills' comparison takes the
// wholesale out, and without it the same ledger is a problem.
func TestReview45CompareTillsWholesale(t *testing.T) {
	d := decimal.RequireFromString
	r1 := storeline.NewEventID()
	tills := tally{receipts: map[storeline.EventID]bool{r1: true}, returns: map[storeline.EventID]bool{},
		stock: map[storeline.ItemID]decimal.Decimal{"item-1": d("995")}, sales: d("12.30")}
	shop := shopView{receipts: map[storeline.EventID]int{r1: 1}, returns: map[storeline.EventID]int{},
		stock: map[storeline.ItemID]decimal.Decimal{"item-1": d("995")}, sales: d("21.10")}
	w := wholesale{buyer: "b1", gross: d("8.80")}
	for _, tc := range []struct {
		name string
		w    wholesale
		want string
	}{
		{"with the wholesale", w, ""},
		{"without it", wholesale{}, "shop-1: revenue and VAT in the shop's ledger 21.1, the tills took 12.3"},
		{"with too little of it", wholesale{buyer: "b1", gross: d("8.79")}, "shop-1: revenue and VAT in the shop's ledger 21.1 less the wholesale's 8.79: 12.31, the tills took 12.3"},
	} {
		var problems []string
		sc := compareTills("shop-1", tills, shop, 0, tc.w, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
		if tc.want == "" && !sc.Sales.Equal(d("12.3")) {
			t.Errorf("%s: sales %s, want the tills' 12.30", tc.name, sc.Sales)
		}
	}
}

// TestReview45OpeningStock: the tills start from what the opening
// invoices brought less the wholesale's units, and the invoice sells
// counted items the shop holds.
func TestReview45OpeningStock(t *testing.T) {
	c := &Chain{data: sample.Generate(sample.Size{Stores: 2, Items: 40, Customers: 1})}
	c.received = []map[storeline.ItemID]decimal.Decimal{{}, {}}
	for i := range c.received {
		for _, l := range c.openingLines() {
			c.received[i][storeline.ItemID(l["item"].(string))] = decimal.RequireFromString(l["qty"].(string))
		}
	}
	lines := c.wholesaleLines(0)
	if len(lines) != wholesaleItems {
		t.Fatalf("%d wholesale lines, want %d: %v", len(lines), wholesaleItems, lines)
	}
	counted := map[storeline.ItemID]bool{}
	for _, it := range c.data.Items {
		counted[it.ID] = !it.Unit.Fractional()
	}
	for _, l := range lines {
		item := storeline.ItemID(l["item"].(string))
		if !counted[item] || c.received[0][item].LessThan(wholesaleQty) || !decimal.RequireFromString(l["price"].(string)).IsPositive() {
			t.Errorf("line %v: counted %v, held %s", l, counted[item], c.received[0][item])
		}
	}
	item := storeline.ItemID(lines[0]["item"].(string))
	c.wholesale = []wholesale{{buyer: "b1", units: map[storeline.ItemID]decimal.Decimal{item: decimal.NewFromInt(3)}}, {}}
	open := c.openingStock()
	if want := c.received[0][item].Sub(decimal.NewFromInt(3)); !open[0][item].Equal(want) || !open[1][item].Equal(c.received[1][item]) {
		t.Errorf("opening stock of %s: %s at shop-1, %s at shop-2; want %s and %s", item, open[0][item], open[1][item], want, c.received[1][item])
	}
	if c.received[0][item].Equal(open[0][item]) {
		t.Errorf("openingStock changed what the invoices brought")
	}
}

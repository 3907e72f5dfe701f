package chain

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// The closing check's comparison of what head office reports of each shop
// through its API (central/openapi.yaml) with what the shop's ledger
// holds: the stock report (units and value at cost per department and
// item), the margin report (every sale and return, its revenue net of VAT
// and its cost, and the wholesale), the turnover report (by seller and item: revenue with and
// without VAT, units sold per item), the loyalty route (each customer's rights and debt at the
// shop) and the balances of the points issued and redeemed there. The
// node-by-node comparison (central_check.go) reads each node's FSM state;
// this one reads what a head-office user is shown.
//
// Wholesale (wholesale.go) is in the shop's ledger: a posted outgoing
// invoice or buyer return is a central-authored event moving the shop's
// stock, sold, cogs, revenue and VAT accounts, and central's feed sends
// every such event to the shop whose accounts it moves (central's
// touched), as it sends the opening invoices. So the shop's revenue/<store>
// and cogs/<store>/ hold the wholesale's revenue and cost, and its sold/
// accounts its units: the margin report, which lists the wholesale, adds
// up to those accounts with its wholesale rows; the turnover report, which
// is the tills' sales only, adds up to them less what the wholesale step
// booked. The buyer's receivable is no shop's (nor is the payment's bank):
// its statement is compared with what the step booked.

// reportView is what the head-office API reports of one shop.
type reportView struct {
	// units and value are GET /v1/stock's rows by "dept/item".
	units, value map[string]decimal.Decimal
	// sales counts GET /v1/margin's rows (receipts and returns); revenue
	// sums their revenue and the wholesale rows', cost the cost of the
	// costed ones, the re-costs' and the wholesale rows'; uncosted counts
	// the others.
	sales         int
	revenue, cost decimal.Decimal
	uncosted      int
	// wholesaleRows counts the margin report's wholesale rows (each post
	// and cancel of an outgoing invoice or buyer return), wholesaleRevenue
	// and wholesaleCost sum their revenue and cost, and
	// wholesaleTotalRevenue and wholesaleTotalCost the pages' totals
	// (wholesale_revenue, wholesale_cost), which must be those sums.
	wholesaleRows                             int
	wholesaleRevenue, wholesaleCost           decimal.Decimal
	wholesaleTotalRevenue, wholesaleTotalCost decimal.Decimal
	// owed is what the statement of the shop's wholesale buyer (GET
	// /v1/buyers/{id}/statement) closes at; owedRead says it was read
	// (the shop sold wholesale).
	owed     decimal.Decimal
	owedRead bool
	// turnoverRows counts GET /v1/turnover's rows by seller and item
	// over the business dates of the margin report's sales (every sale
	// central holds); turnoverGross sums their revenue (VAT included),
	// turnoverNet their net of VAT and turnoverSold their units per item
	// (zero sums left out, as the shop's sold balances are).
	turnoverRows               int
	turnoverGross, turnoverNet decimal.Decimal
	turnoverSold               map[storeline.ItemID]decimal.Decimal
	// points holds, by the shop's account names, each queried customer's
	// rights (points/<prog>/<customer>/<store>) and debt
	// (points-debt/<store>/<prog>/<customer>, negative) at the shop, from
	// GET /v1/loyalty/points.
	points map[string]decimal.Decimal
	// loyalty is, by "account asset", GET /v1/balances of the points
	// issued and redeemed at the shop.
	loyalty map[string]decimal.Decimal
	// reserved is, by the shop's "account asset", GET /v1/reservations:
	// the units reserved per item (reserved/<store>/<item>) and what each
	// active reservation holds (reservation/<store>/<id>, negative).
	reserved map[string]decimal.Decimal
}

// reportCounts is how much of a shop the reports' comparison covered.
type reportCounts struct{ stock, sales, customers, flows, reserved, turnover, wholesale int }

// checkReports compares, for each shop, what central's API reports of it
// with the shop's ledger (views), and says what it compared.
func (c *Chain) checkReports(ctx context.Context, views []shopView, problem func(string, ...any)) string {
	if !linked {
		return "not compared: " + errNotLinked.Error()
	}
	var total reportCounts
	uncosted := 0
	var sold []string // the wholesale compared, per shop that sold any
	for i, s := range c.shops {
		w := c.wholesaleOf(i)
		rv, err := c.readReports(ctx, s.ID, customersOf(views[i].points), w)
		if err != nil {
			problem("%s: read central's reports: %v", s.ID, err)
			continue
		}
		if c.plant != nil && c.plant.report != nil {
			c.plant.report(s.ID, &rv)
		}
		cnt := compareReports(s.ID, views[i], rv, w, problem)
		total.stock += cnt.stock
		total.sales += cnt.sales
		total.customers += cnt.customers
		total.flows += cnt.flows
		total.reserved += cnt.reserved
		total.turnover += cnt.turnover
		total.wholesale += cnt.wholesale
		uncosted += rv.uncosted
		if w.sold() {
			sold = append(sold, fmt.Sprintf("%s: %d wholesale rows, revenue %s at cost %s; buyer %s's statement closes at %s = invoiced %s - returned %s - paid %s",
				s.ID, rv.wholesaleRows, rv.wholesaleRevenue, rv.wholesaleCost, w.buyer, rv.owed, w.invoiced, w.returned, w.paid))
		}
	}
	cost := "and the cost of each"
	if uncosted > 0 {
		cost = fmt.Sprintf("(cost NOT compared: %d sales not costed yet)", uncosted)
	}
	wholesaleNote := "no wholesale"
	if len(sold) > 0 {
		wholesaleNote = "wholesale (" + strings.Join(sold, "; ") + ")"
	}
	return fmt.Sprintf("stock report (units and value at cost of %d rows), margin report (revenue net of VAT of %d sales %s, %s), turnover report (revenue, net of VAT and units sold per item of %d rows by seller and item), loyalty points of %d customers, %d points issued/redeemed balances and reservations (%d balances of goods reserved) agree with the shops' ledgers",
		total.stock, total.sales, cost, wholesaleNote, total.turnover, total.customers, total.flows, total.reserved)
}

// customersOf returns the customers whose rights or debt at the shop the
// points map (shopPoints) holds, sorted.
func customersOf(points map[string]decimal.Decimal) []storeline.CustomerID {
	seen := map[storeline.CustomerID]bool{}
	var out []storeline.CustomerID
	for acct := range points {
		parts := strings.Split(acct, "/")
		var cust string
		switch {
		case parts[0] == "points" && len(parts) == 4: // points/<prog>/<customer>/<store>
			cust = parts[2]
		case parts[0] == "points-debt" && len(parts) == 4: // points-debt/<store>/<prog>/<customer>
			cust = parts[3]
		default:
			continue
		}
		if !seen[storeline.CustomerID(cust)] {
			seen[storeline.CustomerID(cust)] = true
			out = append(out, storeline.CustomerID(cust))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// readReports reads what the head-office API reports of store, with the
// loyalty points of customers and, when the store sold wholesale (w), its
// buyer's statement.
func (c *Chain) readReports(ctx context.Context, store storeline.StoreID, customers []storeline.CustomerID, w wholesale) (reportView, error) {
	rv := reportView{units: map[string]decimal.Decimal{}, value: map[string]decimal.Decimal{}, turnoverSold: map[storeline.ItemID]decimal.Decimal{},
		points: map[string]decimal.Decimal{}, loyalty: map[string]decimal.Decimal{}, reserved: map[string]decimal.Decimal{}}
	q := "consistency=linearizable&limit=5000&store=" + url.QueryEscape(string(store))
	for after := ""; ; {
		var page struct {
			Reservations []struct {
				ID   string `json:"id"`
				Held []struct {
					Item storeline.ItemID `json:"item"`
					Qty  decimal.Decimal  `json:"qty"`
				} `json:"held"`
			} `json:"reservations"`
			Reserved map[storeline.ItemID]decimal.Decimal `json:"reserved"`
			Next     string                               `json:"next"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/reservations?"+q+"&after="+url.QueryEscape(after), "", nil, &page); err != nil {
			return rv, err
		}
		for item, qty := range page.Reserved {
			rv.reserved[storeline.ReservedAccount(store, item)+" "+string(storeline.ItemAsset(item))] = qty
		}
		for _, r := range page.Reservations {
			for _, h := range r.Held {
				rv.reserved[storeline.ReservationAccountPrefix(store)+r.ID+" "+string(storeline.ItemAsset(h.Item))] = h.Qty.Neg()
			}
		}
		if after = page.Next; after == "" {
			break
		}
	}
	for after := ""; ; {
		var page struct {
			Stock []struct {
				Dept, Item string
				Qty, Value decimal.Decimal
			} `json:"stock"`
			Next string `json:"next"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/stock?"+q+"&after="+url.QueryEscape(after), "", nil, &page); err != nil {
			return rv, err
		}
		for _, r := range page.Stock {
			k := r.Dept + "/" + r.Item
			if !r.Qty.IsZero() {
				rv.units[k] = r.Qty
			}
			if !r.Value.IsZero() {
				rv.value[k] = r.Value
			}
		}
		if after = page.Next; after == "" {
			break
		}
	}
	first, last, err := c.readMargin(ctx, q, &rv)
	if err != nil {
		return rv, err
	}
	if first != "" {
		if err := c.readTurnover(ctx, q, first, last, &rv); err != nil {
			return rv, err
		}
	}
	if w.sold() {
		// The demo's buyer buys at this shop only: its statement is this
		// shop's wholesale.
		owed, err := c.buyerOwes(ctx, w.buyer, w.currency)
		if err != nil {
			return rv, fmt.Errorf("buyer %s's statement: %w", w.buyer, err)
		}
		rv.owed, rv.owedRead = owed, true
	}
	prog := c.data.Programme.ID
	for _, cust := range customers {
		var st struct {
			Rights map[string]decimal.Decimal `json:"rights"`
			Debts  map[string]decimal.Decimal `json:"debts"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/loyalty/points/"+url.PathEscape(string(prog))+"/"+url.PathEscape(string(cust)), "", nil, &st); err != nil {
			return rv, err
		}
		if r := st.Rights[string(store)]; !r.IsZero() {
			rv.points[storeline.PointsAccount(prog, cust, store)] = r
		}
		if d := st.Debts[string(store)]; !d.IsZero() {
			rv.points[storeline.PointsDebtAccount(prog, cust, store)] = d.Neg()
		}
	}
	for _, acct := range []string{storeline.IssuedPointsAccount(store), storeline.RedeemedPointsAccount(store)} {
		var page struct {
			Balances []struct {
				Account string          `json:"account"`
				Asset   string          `json:"asset"`
				Amount  decimal.Decimal `json:"amount"`
			} `json:"balances"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/balances?consistency=linearizable&limit=5000&prefix="+url.QueryEscape(acct), "", nil, &page); err != nil {
			return rv, err
		}
		for _, b := range page.Balances {
			if b.Account == acct && b.Asset == string(storeline.PointsAsset(prog)) && !b.Amount.IsZero() {
				rv.loyalty[b.Account+" "+b.Asset] = b.Amount
			}
		}
	}
	return rv, nil
}

// readMargin reads every page of central's margin report over every date
// (q names the store) into rv, and returns the first and last business
// dates of its sales.
func (c *Chain) readMargin(ctx context.Context, q string, rv *reportView) (first, last storeline.Date, err error) {
	for after := ""; ; {
		var page struct {
			Sales []struct {
				Date    storeline.Date   `json:"date"`
				Revenue decimal.Decimal  `json:"revenue"`
				Cost    *decimal.Decimal `json:"cost"`
			} `json:"sales"`
			// Re-costs: what documents moved into the shop's cogs/
			// accounts for units sold short, besides the sales' costs.
			Recosts []struct {
				Cost decimal.Decimal `json:"cost"`
			} `json:"recosts"`
			// Wholesale: what the shop's outgoing invoices and buyer
			// returns (and their cancels) moved into its revenue and
			// cogs/ accounts; the page's totals add them up.
			Wholesale []struct {
				Revenue decimal.Decimal `json:"revenue"`
				Cost    decimal.Decimal `json:"cost"`
			} `json:"wholesale"`
			WholesaleRevenue decimal.Decimal `json:"wholesale_revenue"`
			WholesaleCost    decimal.Decimal `json:"wholesale_cost"`
			Next             string          `json:"next"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/margin?"+q+"&from=0001-01-01&to=9999-12-31&after="+url.QueryEscape(after), "", nil, &page); err != nil {
			return first, last, err
		}
		for _, r := range page.Sales {
			if first == "" || r.Date < first {
				first = r.Date
			}
			last = max(last, r.Date)
			rv.sales++
			rv.revenue = rv.revenue.Add(r.Revenue)
			if r.Cost == nil {
				rv.uncosted++
			} else {
				rv.cost = rv.cost.Add(*r.Cost)
			}
		}
		for _, r := range page.Recosts {
			rv.cost = rv.cost.Add(r.Cost)
		}
		for _, r := range page.Wholesale {
			rv.wholesaleRows++
			rv.wholesaleRevenue = rv.wholesaleRevenue.Add(r.Revenue)
			rv.wholesaleCost = rv.wholesaleCost.Add(r.Cost)
		}
		rv.wholesaleTotalRevenue = rv.wholesaleTotalRevenue.Add(page.WholesaleRevenue)
		rv.wholesaleTotalCost = rv.wholesaleTotalCost.Add(page.WholesaleCost)
		if after = page.Next; after == "" {
			break
		}
	}
	// The wholesale rows are revenue and cost of the shop's, as its
	// sales are: the margin report's whole revenue and cost.
	rv.revenue = rv.revenue.Add(rv.wholesaleRevenue)
	rv.cost = rv.cost.Add(rv.wholesaleCost)
	return first, last, nil
}

// turnoverDays is the longest period central answers a turnover request
// for (both ends count).
const turnoverDays = 366

// readTurnover reads central's turnover by seller and item for business
// dates first..last (q names the store), in parts of turnoverDays and
// every page of each, into rv. It asks through a saved report of each
// part (PUT /v1/reports/{id}, a fixed period, the store left to the run),
// which runs the turnover report's own handler: the check covers both.
func (c *Chain) readTurnover(ctx context.Context, q string, first, last storeline.Date, rv *reportView) error {
	from, err := time.Parse(time.DateOnly, string(first))
	if err != nil {
		return fmt.Errorf("turnover from %q: %w", first, err)
	}
	to, err := time.Parse(time.DateOnly, string(last))
	if err != nil {
		return fmt.Errorf("turnover to %q: %w", last, err)
	}
	for start := from; !start.After(to); start = start.AddDate(0, 0, turnoverDays) {
		end := start.AddDate(0, 0, turnoverDays-1)
		if end.After(to) {
			end = to
		}
		id := "demo-turnover-" + start.Format("20060102") + "-" + end.Format("20060102")
		def := map[string]any{"title": "Turnover by seller and item, " + start.Format(time.DateOnly) + " to " + end.Format(time.DateOnly),
			"source": "turnover", "by": []string{"seller", "item"}, "period": "fixed",
			"from": start.Format(time.DateOnly), "to": end.Format(time.DateOnly)}
		if err := c.ho.do(ctx, "PUT", "/v1/reports/"+id, "demo-"+id, def, nil); err != nil {
			return fmt.Errorf("saved report %s: %w", id, err)
		}
		for after := ""; ; {
			var page struct {
				Rows []struct {
					Key struct {
						Item storeline.ItemID `json:"item"`
					} `json:"key"`
					Qty     decimal.Decimal `json:"qty"`
					Revenue decimal.Decimal `json:"revenue"`
					Net     decimal.Decimal `json:"net"`
				} `json:"rows"`
				Next string `json:"next"`
			}
			if err := c.ho.do(ctx, "GET", "/v1/reports/"+id+"/run?"+q+"&after="+url.QueryEscape(after), "", nil, &page); err != nil {
				return err
			}
			for _, r := range page.Rows {
				rv.turnoverRows++
				rv.turnoverGross = rv.turnoverGross.Add(r.Revenue)
				rv.turnoverNet = rv.turnoverNet.Add(r.Net)
				rv.turnoverSold[r.Key.Item] = rv.turnoverSold[r.Key.Item].Add(r.Qty)
			}
			if after = page.Next; after == "" {
				break
			}
		}
	}
	for item, qty := range rv.turnoverSold {
		if qty.IsZero() {
			delete(rv.turnoverSold, item)
		}
	}
	return nil
}

// compareReports compares what central's API reports of store (rep) with
// the shop's ledger (shop) and what the wholesale step booked there (w),
// to the last decimal: the stock report's units and value at cost per
// department and item; the margin report's sales (one per receipt and
// return in the shop's journal) and wholesale, their revenue net of VAT
// against the shop's revenue account and, when every sale is costed,
// their cost against the shop's cost of sales; its wholesale rows against
// its wholesale totals and against what the step booked; the turnover
// report's revenue (VAT included) against the shop's revenue and VAT
// accounts, its net of VAT against the revenue account and its units per
// item against the shop's sold balances, each less the wholesale's (the
// report is the tills' sales only); the wholesale buyer's statement
// against what the step left it owing; each customer's rights and debt at
// the shop; the points issued and redeemed there; and the goods its
// active reservations hold.
func compareReports(store storeline.StoreID, shop shopView, rep reportView, w wholesale, problem func(string, ...any)) reportCounts {
	cnt := reportCounts{stock: len(unionKeys(rep.units, rep.value)), sales: rep.sales, customers: len(customersOf(rep.points)), flows: len(rep.loyalty), reserved: len(rep.reserved),
		turnover: rep.turnoverRows, wholesale: rep.wholesaleRows}
	stock := "stock/" + string(store) + "/"
	// The shop's ledger holds the wholesale (see the top of this file);
	// the tills' part of its revenue, sales and units sold is what the
	// turnover report reports.
	tillRevenue, tillSales := shop.revenue.Sub(w.revenue), shop.sales.Sub(w.gross)
	tillSold := make(map[storeline.ItemID]decimal.Decimal, len(shop.sold))
	for item, q := range shop.sold {
		tillSold[item] = q
	}
	for item, q := range w.units {
		if tillSold[item] = tillSold[item].Sub(q); tillSold[item].IsZero() {
			delete(tillSold, item)
		}
	}
	less := func(held decimal.Decimal, what decimal.Decimal) string {
		if !w.sold() {
			return held.String()
		}
		return fmt.Sprintf("%s less the wholesale's %s", held, what)
	}
	for _, k := range []struct {
		what string
		bad  []string
	}{
		{"stock report's units", diffBalances(prefixed(stock, shop.units), prefixed(stock, rep.units))},
		{"stock report's values at cost", diffBalances(prefixed(stock, shop.value), prefixed(stock, rep.value))},
		{"loyalty points", diffBalances(shop.points, rep.points)},
		{"points issued and redeemed", diffBalances(shop.loyalty, rep.loyalty)},
		{"reservations of goods", diffBalances(shop.reserved, rep.reserved)},
		{"turnover report's units sold", diffBalances(prefixed("sold/"+string(store)+"/", tillSold), prefixed("sold/"+string(store)+"/", rep.turnoverSold))},
	} {
		if len(k.bad) > 0 {
			problem("central's %s of %s differ (shop, central) for %d accounts: %s", k.what, store, len(k.bad), strings.Join(k.bad[:min(5, len(k.bad))], "; "))
		}
	}
	if n := len(shop.receipts) + len(shop.returns); rep.sales != n {
		problem("central's margin report of %s lists %d sales and returns, the shop's journal holds %d", store, rep.sales, n)
	}
	if !rep.revenue.Equal(shop.revenue) {
		problem("central's margin report of %s: revenue net of VAT %s; the shop's %s account %s", store, rep.revenue, storeline.RevenueAccount(store), shop.revenue)
	}
	if !rep.wholesaleRevenue.Equal(rep.wholesaleTotalRevenue) || !rep.wholesaleCost.Equal(rep.wholesaleTotalCost) {
		problem("central's margin report of %s: its %d wholesale rows add up to revenue %s and cost %s; its totals wholesale_revenue %s and wholesale_cost %s",
			store, rep.wholesaleRows, rep.wholesaleRevenue, rep.wholesaleCost, rep.wholesaleTotalRevenue, rep.wholesaleTotalCost)
	}
	if !rep.wholesaleRevenue.Equal(w.revenue) || !rep.wholesaleCost.Equal(w.cost) {
		problem("central's margin report of %s: wholesale revenue net of VAT %s and cost %s in %d rows; the wholesale documents moved %s into %s and %s into cogs/%s/",
			store, rep.wholesaleRevenue, rep.wholesaleCost, rep.wholesaleRows, w.revenue, storeline.RevenueAccount(store), w.cost, store)
	}
	if !rep.turnoverNet.Equal(tillRevenue) {
		problem("central's turnover report of %s: net of VAT %s; the shop's %s account %s", store, rep.turnoverNet, storeline.RevenueAccount(store), less(shop.revenue, w.revenue))
	}
	if !rep.turnoverGross.Equal(tillSales) {
		problem("central's turnover report of %s: revenue VAT included %s; the shop's revenue and VAT accounts %s", store, rep.turnoverGross, less(shop.sales, w.gross))
	}
	if w.sold() && (!rep.owedRead || !rep.owed.Equal(w.owed())) {
		problem("central's statement of buyer %s closes at %s (read %v); the wholesale at %s left it owing invoiced %s - returned %s - paid %s = %s",
			w.buyer, rep.owed, rep.owedRead, store, w.invoiced, w.returned, w.paid, w.owed())
	}
	if rep.uncosted == 0 && !rep.cost.Equal(shop.cost) {
		problem("central's margin report of %s: cost of sales %s; the shop's cogs/%s/ accounts %s", store, rep.cost, store, shop.cost)
	}
	return cnt
}

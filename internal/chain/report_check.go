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
// and its cost), the turnover report (by seller and item: revenue with and
// without VAT, units sold per item), the loyalty route (each customer's rights and debt at the
// shop) and the balances of the points issued and redeemed there. The
// node-by-node comparison (central_check.go) reads each node's FSM state;
// this one reads what a head-office user is shown.

// reportView is what the head-office API reports of one shop.
type reportView struct {
	// units and value are GET /v1/stock's rows by "dept/item".
	units, value map[string]decimal.Decimal
	// sales counts GET /v1/margin's rows (receipts and returns); revenue
	// sums their revenue, cost the cost of the costed ones; uncosted
	// counts the others.
	sales         int
	revenue, cost decimal.Decimal
	uncosted      int
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
type reportCounts struct{ stock, sales, customers, flows, reserved, turnover int }

// checkReports compares, for each shop, what central's API reports of it
// with the shop's ledger (views), and says what it compared.
func (c *Chain) checkReports(ctx context.Context, views []shopView, problem func(string, ...any)) string {
	if !linked {
		return "not compared: " + errNotLinked.Error()
	}
	var total reportCounts
	uncosted := 0
	for i, s := range c.shops {
		rv, err := c.readReports(ctx, s.ID, customersOf(views[i].points))
		if err != nil {
			problem("%s: read central's reports: %v", s.ID, err)
			continue
		}
		if c.plant != nil && c.plant.report != nil {
			c.plant.report(s.ID, &rv)
		}
		cnt := compareReports(s.ID, views[i], rv, problem)
		total.stock += cnt.stock
		total.sales += cnt.sales
		total.customers += cnt.customers
		total.flows += cnt.flows
		total.reserved += cnt.reserved
		total.turnover += cnt.turnover
		uncosted += rv.uncosted
	}
	cost := "and the cost of each"
	if uncosted > 0 {
		cost = fmt.Sprintf("(cost NOT compared: %d sales not costed yet)", uncosted)
	}
	return fmt.Sprintf("stock report (units and value at cost of %d rows), margin report (revenue net of VAT of %d sales %s), turnover report (revenue, net of VAT and units sold per item of %d rows by seller and item), loyalty points of %d customers, %d points issued/redeemed balances and reservations (%d balances of goods reserved) agree with the shops' ledgers",
		total.stock, total.sales, cost, total.turnover, total.customers, total.flows, total.reserved)
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
// loyalty points of customers.
func (c *Chain) readReports(ctx context.Context, store storeline.StoreID, customers []storeline.CustomerID) (reportView, error) {
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
	var first, last storeline.Date // of the margin report's sales
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
			Next string `json:"next"`
		}
		if err := c.ho.do(ctx, "GET", "/v1/margin?"+q+"&from=0001-01-01&to=9999-12-31&after="+url.QueryEscape(after), "", nil, &page); err != nil {
			return rv, err
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
		if after = page.Next; after == "" {
			break
		}
	}
	if first != "" {
		if err := c.readTurnover(ctx, q, first, last, &rv); err != nil {
			return rv, err
		}
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
// the shop's ledger (shop), to the last decimal: the stock report's units
// and value at cost per department and item; the margin report's sales
// (one per receipt and return in the shop's journal), their revenue net of
// VAT against the shop's revenue account and, when every sale is costed,
// their cost against the shop's cost of sales; the turnover report's
// revenue (VAT included) against the shop's revenue and VAT accounts, its
// net of VAT against the revenue account and its units per item against
// the shop's sold balances; each customer's rights and
// debt at the shop; the points issued and redeemed there; and the goods
// its active reservations hold.
func compareReports(store storeline.StoreID, shop shopView, rep reportView, problem func(string, ...any)) reportCounts {
	cnt := reportCounts{stock: len(unionKeys(rep.units, rep.value)), sales: rep.sales, customers: len(customersOf(rep.points)), flows: len(rep.loyalty), reserved: len(rep.reserved),
		turnover: rep.turnoverRows}
	stock := "stock/" + string(store) + "/"
	for _, k := range []struct {
		what string
		bad  []string
	}{
		{"stock report's units", diffBalances(prefixed(stock, shop.units), prefixed(stock, rep.units))},
		{"stock report's values at cost", diffBalances(prefixed(stock, shop.value), prefixed(stock, rep.value))},
		{"loyalty points", diffBalances(shop.points, rep.points)},
		{"points issued and redeemed", diffBalances(shop.loyalty, rep.loyalty)},
		{"reservations of goods", diffBalances(shop.reserved, rep.reserved)},
		{"turnover report's units sold", diffBalances(prefixed("sold/"+string(store)+"/", shop.sold), prefixed("sold/"+string(store)+"/", rep.turnoverSold))},
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
	if !rep.turnoverNet.Equal(shop.revenue) {
		problem("central's turnover report of %s: net of VAT %s; the shop's %s account %s", store, rep.turnoverNet, storeline.RevenueAccount(store), shop.revenue)
	}
	if !rep.turnoverGross.Equal(shop.sales) {
		problem("central's turnover report of %s: revenue VAT included %s; the shop's revenue and VAT accounts %s", store, rep.turnoverGross, shop.sales)
	}
	if rep.uncosted == 0 && !rep.cost.Equal(shop.cost) {
		problem("central's margin report of %s: cost of sales %s; the shop's cogs/%s/ accounts %s", store, rep.cost, store, shop.cost)
	}
	return cnt
}

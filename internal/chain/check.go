package chain

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/tillsim"
	"github.com/storeline/storeline/ledger"
)

// Check is the closing check: for every shop, what the tills were told
// was committed against what the shop holds, and (once shops replicate)
// what central holds of it.
type Check struct {
	Shops []ShopCheck
	// Central says how central was compared, or why it was not.
	Central string
	// Reports says how what central's API reports of each shop (stock,
	// margin, loyalty) was compared with the shop's ledger.
	Reports string
	// Problems lists every disagreement; none means the check passed.
	Problems []string
}

// ShopCheck is one shop's figures.
type ShopCheck struct {
	Store                  storeline.StoreID
	TillReceipts, Receipts int // acknowledged to the tills; in the shop's journal
	TillReturns, Returns   int
	Unknown                int // facts whose outcome the tills never learnt (all shops)
	// ItemsChecked is how many items' stock was compared with what the
	// tills sold; 0 when it could not be (Unknown > 0).
	ItemsChecked int
	// Sales is what the tills took (receipts less refunds) and the shop's
	// ledger holds as revenue and VAT less its wholesale; SalesChecked
	// says it was compared.
	Sales        decimal.Decimal
	SalesChecked bool
	// StockValue is the shop's stock at cost, Cost the cost of its sales
	// (net of returns, as central derived it), Redeemed the loyalty points
	// its receipts were paid with and Issued those they earned (net of
	// returns), all as the shop's ledger holds them.
	StockValue, Cost decimal.Decimal
	Redeemed, Issued decimal.Decimal
	Conservation     bool
	Loyalty          string
}

// OK reports whether nothing disagreed.
func (c Check) OK() bool { return len(c.Problems) == 0 && len(c.Shops) > 0 }

// Write prints the check.
func (c Check) Write(w io.Writer) {
	for _, s := range c.Shops {
		stock := fmt.Sprintf("stock of %d items as received less the wholesale and what the tills sold", s.ItemsChecked)
		sales := fmt.Sprintf("sales %s as the tills took", s.Sales)
		if !s.SalesChecked {
			stock = fmt.Sprintf("stock NOT compared with the tills (%d outcomes unknown to them; central is compared with the shop below)", s.Unknown)
			sales = "sales NOT compared with the tills"
		}
		fmt.Fprintf(w, "  %s: receipts %d at the tills, %d in the shop's journal; returns %d/%d; %s; %s; conservation %v; loyalty: %s\n",
			s.Store, s.TillReceipts, s.Receipts, s.TillReturns, s.Returns, stock, sales, okWord(s.Conservation), s.Loyalty)
		fmt.Fprintf(w, "  %s: stock at cost %s, cost of sales %s; points issued %s, redeemed %s\n",
			s.Store, s.StockValue.StringFixed(2), s.Cost.StringFixed(2), s.Issued, s.Redeemed)
	}
	fmt.Fprintf(w, "  central: %s\n", c.Central)
	fmt.Fprintf(w, "  central reports: %s\n", c.Reports)
	if c.OK() {
		fmt.Fprintln(w, "  PASS: stock and receipts agree, and so do sales, units sold, stock values, costs of sales, wholesale, the buyer's statement, loyalty points and goods reserved between the shops and central")
		return
	}
	for _, p := range c.Problems {
		fmt.Fprintf(w, "  FAIL: %s\n", p)
	}
}

func okWord(b bool) string {
	if b {
		return "ok"
	}
	return "BROKEN"
}

// check compares each shop with what its tills were told, and every
// central node with each shop. c.plant, when set (tests), changes what was
// read before it is compared.
func (c *Chain) check(ctx context.Context, f *facts, sum tillsim.Summary) Check {
	var chk Check
	problem := func(format string, args ...any) { chk.Problems = append(chk.Problems, fmt.Sprintf(format, args...)) }
	f.mu.Lock()
	defer f.mu.Unlock()
	views := make([]shopView, len(c.shops))
	for i, s := range c.shops {
		v, err := readView(s.Node.Ledger().Journal, s.Node.Ledger().Balances, s.ID, c.data.Programme.ID)
		if err != nil {
			problem("%s: read the shop's ledger: %v", s.ID, err)
		}
		if c.plant != nil && c.plant.shop != nil {
			c.plant.shop(s.ID, &v)
		}
		views[i] = v
		sc := compareTills(s.ID, f.shops[i], v, sum.Unknown, c.wholesaleOf(i), problem)
		var cons struct {
			OK bool `json:"ok"`
		}
		if err := c.shopAdmin(ctx, s, "GET", "/admin/v1/conservation", nil, &cons); err != nil || !cons.OK {
			problem("%s: conservation check: ok=%v %v", s.ID, cons.OK, err)
		}
		sc.Conservation = cons.OK
		sc.Loyalty = loyaltyNote(s.Node.Ledger(), c.data.Programme.ID)
		chk.Shops = append(chk.Shops, sc)
	}
	chk.Central = c.checkCentral(ctx, views, problem)
	chk.Reports = c.checkReports(ctx, views, problem)
	return chk
}

// compareTills compares what shop store holds (v) with what its tills
// were told (t): every acknowledged receipt and return is in the journal
// exactly once; beyond them only facts whose answer the tills never saw
// may be; and, when every outcome is known, each item's stock is what the
// tills sold (t starts from the stock less the wholesale) and the revenue
// and VAT less the wholesale's (w) are what they took.
func compareTills(store storeline.StoreID, t tally, v shopView, unknown int, w wholesale, problem func(string, ...any)) ShopCheck {
	sc := ShopCheck{Store: store, TillReceipts: len(t.receipts), TillReturns: len(t.returns), Unknown: unknown,
		Receipts: len(v.receipts), Returns: len(v.returns), Cost: v.cost}
	for _, a := range v.value {
		sc.StockValue = sc.StockValue.Add(a)
	}
	for k, a := range v.loyalty {
		switch {
		case strings.HasPrefix(k, storeline.RedeemedPointsAccount(store)+" "):
			sc.Redeemed = sc.Redeemed.Add(a)
		case strings.HasPrefix(k, storeline.IssuedPointsAccount(store)+" "):
			sc.Issued = sc.Issued.Sub(a) // points come from points-issued: negative
		}
	}
	extra := 0
	for _, k := range []struct {
		what    string
		told    map[storeline.EventID]bool
		journal map[storeline.EventID]int
	}{{"receipt", t.receipts, v.receipts}, {"return", t.returns, v.returns}} {
		for _, id := range sortedIDs(k.told) {
			if k.journal[id] == 0 {
				problem("%s: %s %s acknowledged to a till is not in the shop's journal", store, k.what, id)
			}
		}
		for _, id := range sortedIDs(k.journal) {
			if n := k.journal[id]; n > 1 {
				problem("%s: %s %s is in the shop's journal %d times", store, k.what, id, n)
			}
			if !k.told[id] {
				extra++
			}
		}
	}
	if extra > unknown {
		problem("%s: %d receipts and returns in the journal the tills were never told of (%d unknown outcomes)", store, extra, unknown)
	}
	if unknown > 0 {
		return sc // the unknown facts' stock and money may or may not be there
	}
	bad := diffBalances(t.stock, v.stock)
	if len(bad) > 0 {
		problem("%s: stock differs from what the tills sold (tills, shop) for %d items: %s", store, len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
	}
	sc.ItemsChecked = len(unionKeys(t.stock, v.stock))
	// The wholesale documents' event reaches the shop's ledger
	// (wholesale.go): its revenue and VAT accounts hold what the tills
	// took and the wholesale's.
	sc.Sales, sc.SalesChecked = v.sales.Sub(w.gross), true
	if !sc.Sales.Equal(t.sales) {
		held := sc.Sales.String()
		if w.sold() {
			held = fmt.Sprintf("%s less the wholesale's %s: %s", v.sales, w.gross, sc.Sales)
		}
		problem("%s: revenue and VAT in the shop's ledger %s, the tills took %s", store, held, t.sales)
	}
	if !sc.Redeemed.Equal(decimal.NewFromInt(t.redeemed)) {
		problem("%s: points redeemed in the shop's ledger %s, the tills were paid %d", store, sc.Redeemed, t.redeemed)
	}
	return sc
}

// shopView is what a shop's ledger, or a central node, holds of one
// shop's sales.
type shopView struct {
	// receipts and returns count each ID's events of the shop's journal
	// (more than 1 is a duplicate).
	receipts, returns map[storeline.EventID]int
	stock             map[storeline.ItemID]decimal.Decimal
	points            map[string]decimal.Decimal // shopPoints
	money             map[string]decimal.Decimal // moneyBalances
	sales             decimal.Decimal            // less the revenue and VAT balances
	// revenue is the revenue balance negated: the sales net of VAT.
	revenue decimal.Decimal
	// loyalty is, by "account asset", the points issued and redeemed at
	// the shop (pointsFlows).
	loyalty map[string]decimal.Decimal
	// sold is the units sold per item (sold/<store>/<item>, net of
	// returns); cogs the cost of those sales per item as central derived
	// it (cogs/<store>/<item>, money); cost their sum.
	sold map[storeline.ItemID]decimal.Decimal
	cogs map[storeline.ItemID]decimal.Decimal
	cost decimal.Decimal
	// units and value are the shop's stock per "dept/item": units, and
	// value at cost (money on the stock account).
	units, value map[string]decimal.Decimal
	// reserved is, by "account asset", the units reservations of goods
	// hold: per item (reserved/<store>/<item>) and per reservation
	// (reservation/<store>/<id>).
	reserved map[string]decimal.Decimal
}

// readView reads what a shop's ledger or a central node holds of store's
// sales, through journal (events of an origin from a position; nil when
// the reader has no journal) or scan, and balances.
func readView(journal func(storeline.StoreID, ledger.Position, int) ([]storeline.Event, error), balances func(string) ([]ledger.Balance, error),
	store storeline.StoreID, prog storeline.ProgrammeID) (shopView, error) {
	v := shopView{receipts: map[storeline.EventID]int{}, returns: map[storeline.EventID]int{}}
	var errs []string
	if journal != nil {
		if err := scanJournal(journal, store, func(ev storeline.Event) bool { v.count(ev); return true }); err != nil {
			errs = append(errs, "journal: "+err.Error())
		}
	}
	var err error
	if v.stock, err = stockByItem(balances, store); err != nil {
		errs = append(errs, "stock: "+err.Error())
	}
	if v.units, v.value, err = stockByAccount(balances, store); err != nil {
		errs = append(errs, "stock value: "+err.Error())
	}
	if v.sold, v.cogs, v.cost, err = soldByItem(balances, store); err != nil {
		errs = append(errs, "sold: "+err.Error())
	}
	if v.points, err = shopPoints(balances, store, prog); err != nil {
		errs = append(errs, "points: "+err.Error())
	}
	if v.loyalty, err = pointsFlows(balances, store, prog); err != nil {
		errs = append(errs, "points issued and redeemed: "+err.Error())
	}
	if v.reserved, err = heldGoods(balances, store); err != nil {
		errs = append(errs, "reserved: "+err.Error())
	}
	if v.money, v.sales, err = moneyBalances(balances, store); err != nil {
		errs = append(errs, "money: "+err.Error())
	}
	for k, a := range v.money {
		if strings.HasPrefix(k, storeline.RevenueAccount(store)+" ") {
			v.revenue = v.revenue.Sub(a)
		}
	}
	if len(errs) > 0 {
		return v, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return v, nil
}

// count adds one receipt or return to the view.
func (v *shopView) count(ev storeline.Event) {
	switch ev.Kind {
	case storeline.KindReceipt:
		v.receipts[ev.ID]++
	case storeline.KindReturn:
		v.returns[ev.ID]++
	}
}

// scanJournal calls fn for each event of origin's journal, in order.
func scanJournal(journal func(storeline.StoreID, ledger.Position, int) ([]storeline.Event, error), origin storeline.StoreID, fn func(storeline.Event) bool) error {
	from := ledger.Position{}
	for {
		evs, err := journal(origin, from, ledger.MaxJournalLimit)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if !fn(ev) {
				return nil
			}
		}
		if len(evs) < ledger.MaxJournalLimit {
			return nil
		}
		last := evs[len(evs)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

// stockByItem sums the shop's stock balances per item over departments.
func stockByItem(balances func(string) ([]ledger.Balance, error), store storeline.StoreID) (map[storeline.ItemID]decimal.Decimal, error) {
	prefix := "stock/" + string(store) + "/"
	bs, err := balances(prefix)
	out := map[storeline.ItemID]decimal.Decimal{}
	for _, b := range bs {
		_, item, ok := strings.Cut(strings.TrimPrefix(b.Account, prefix), "/")
		if !ok || b.Asset != storeline.ItemAsset(storeline.ItemID(item)) {
			continue
		}
		out[storeline.ItemID(item)] = out[storeline.ItemID(item)].Add(b.Amount)
	}
	return out, err
}

// heldGoods returns the nonzero balances of the store's reservations of
// goods (reserved/<store>/ and reservation/<store>/), by "account asset".
// Zero ones are left out: the shop keeps an ended reservation's balances
// at zero, central drops them.
func heldGoods(balances func(string) ([]ledger.Balance, error), store storeline.StoreID) (map[string]decimal.Decimal, error) {
	out := map[string]decimal.Decimal{}
	for _, prefix := range []string{"reserved/" + string(store) + "/", storeline.ReservationAccountPrefix(store)} {
		bs, err := balances(prefix)
		if err != nil {
			return out, err
		}
		for _, b := range bs {
			if !b.Amount.IsZero() {
				out[b.Account+" "+string(b.Asset)] = b.Amount
			}
		}
	}
	return out, nil
}

// stockByAccount returns the shop's stock per "dept/item": the units of
// the item and the value at cost (money) its stock account holds, the
// figures central's stock report (GET /v1/stock) gives per row.
func stockByAccount(balances func(string) ([]ledger.Balance, error), store storeline.StoreID) (units, value map[string]decimal.Decimal, err error) {
	prefix := "stock/" + string(store) + "/"
	bs, err := balances(prefix)
	units, value = map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, b := range bs {
		key := strings.TrimPrefix(b.Account, prefix)
		_, item, ok := strings.Cut(key, "/")
		switch {
		case !ok || b.Amount.IsZero():
		case b.Asset == storeline.ItemAsset(storeline.ItemID(item)):
			units[key] = units[key].Add(b.Amount)
		case b.Asset.IsMoney():
			value[key] = value[key].Add(b.Amount)
		}
	}
	return units, value, err
}

// soldByItem returns the units sold per item (the sold account, net of
// returns), the cost of sales per item (money on the cogs account, which
// central derives and sends down) and the total cost.
func soldByItem(balances func(string) ([]ledger.Balance, error), store storeline.StoreID) (sold, cogs map[storeline.ItemID]decimal.Decimal, cost decimal.Decimal, err error) {
	sold, cogs = map[storeline.ItemID]decimal.Decimal{}, map[storeline.ItemID]decimal.Decimal{}
	for _, k := range []struct {
		prefix string
		money  bool
	}{{"sold/" + string(store) + "/", false}, {"cogs/" + string(store) + "/", true}} {
		bs, e := balances(k.prefix)
		if e != nil {
			err = e
		}
		for _, b := range bs {
			item := storeline.ItemID(strings.TrimPrefix(b.Account, k.prefix))
			switch {
			case b.Amount.IsZero():
			case b.Asset == storeline.ItemAsset(item) && !k.money:
				sold[item] = sold[item].Add(b.Amount)
			case b.Asset.IsMoney() && k.money:
				cogs[item] = cogs[item].Add(b.Amount)
				cost = cost.Add(b.Amount)
			}
		}
	}
	return sold, cogs, cost, err
}

// pointsFlows returns, by "account asset", the non-zero balances of the
// points issued at store (points-issued/<store>, negative: where earned
// points come from) and redeemed there (points-redeemed/<store>) in
// programme prog.
func pointsFlows(balances func(string) ([]ledger.Balance, error), store storeline.StoreID, prog storeline.ProgrammeID) (map[string]decimal.Decimal, error) {
	out := map[string]decimal.Decimal{}
	asset := storeline.PointsAsset(prog)
	for _, acct := range []string{storeline.IssuedPointsAccount(store), storeline.RedeemedPointsAccount(store)} {
		bs, err := balances(acct)
		if err != nil {
			return out, err
		}
		for _, b := range bs {
			if b.Account == acct && b.Asset == asset && !b.Amount.IsZero() {
				out[b.Account+" "+string(b.Asset)] = b.Amount
			}
		}
	}
	return out, nil
}

// moneyBalances returns, by "account asset", the non-zero money balances
// of the accounts a shop's sales and shifts post to (its drawers, card
// takings, safe, revenue, VAT and points-paid takings), and the sales
// they record: revenue and VAT, negated.
func moneyBalances(balances func(string) ([]ledger.Balance, error), store storeline.StoreID) (map[string]decimal.Decimal, decimal.Decimal, error) {
	out := map[string]decimal.Decimal{}
	sales := decimal.Zero
	s := string(store)
	for _, k := range []struct {
		prefix string
		exact  bool
	}{{"cash/" + s + "/", false}, {"card/" + s + "/", false}, {"vat/" + s + "/", false},
		{storeline.SafeAccount(store), true}, {storeline.RevenueAccount(store), true}, {storeline.LoyaltyAccount(store), true}} {
		bs, err := balances(k.prefix)
		if err != nil {
			return out, sales, err
		}
		for _, b := range bs {
			if !b.Asset.IsMoney() || b.Amount.IsZero() || k.exact && b.Account != k.prefix {
				continue
			}
			out[b.Account+" "+string(b.Asset)] = b.Amount
			if b.Account == storeline.RevenueAccount(store) || strings.HasPrefix(b.Account, "vat/") {
				sales = sales.Sub(b.Amount)
			}
		}
	}
	return out, sales, nil
}

// diffBalances lists, sorted, the keys whose amounts differ between want
// and got (an absent key is zero), as "key want, got".
func diffBalances[K ~string](want, got map[K]decimal.Decimal) []string {
	var bad []string
	for _, k := range unionKeys(want, got) {
		if !want[k].Equal(got[k]) {
			bad = append(bad, fmt.Sprintf("%s %s, %s", k, want[k], got[k]))
		}
	}
	return bad
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[K ~string, V any](a, b map[K]V) []K {
	seen := map[K]bool{}
	var out []K
	for _, m := range []map[K]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// sortedIDs returns m's keys, sorted, so problems come in a stable order.
func sortedIDs[V any](m map[storeline.EventID]V) []storeline.EventID {
	out := make([]storeline.EventID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// loyaltyNote describes the shop's loyalty points, if its ledger posts
// any.
func loyaltyNote(l *ledger.Ledger, prog storeline.ProgrammeID) string {
	bs, err := l.Balances("")
	if err != nil {
		return "unreadable: " + err.Error()
	}
	asset := storeline.PointsAsset(prog)
	accounts := 0
	total := decimal.Zero
	for _, b := range bs {
		if b.Asset == asset {
			accounts++
			if b.Amount.IsPositive() {
				total = total.Add(b.Amount)
			}
		}
	}
	if accounts == 0 {
		return "no points posted in the shop's ledger (loyalty accrual is not recorded yet)"
	}
	return fmt.Sprintf("%d accounts, %s points outstanding", accounts, total)
}

// shopPoints returns, by account, the non-zero balances of the loyalty
// accounts store holds in programme prog: its rights for each customer
// (points/<prog>/<customer>/<store>) and the customers' debts there
// (points-debt/<store>/<prog>/<customer>). balances is a ledger's or a
// central node's Balances.
func shopPoints(balances func(prefix string) ([]ledger.Balance, error), store storeline.StoreID, prog storeline.ProgrammeID) (map[string]decimal.Decimal, error) {
	out := map[string]decimal.Decimal{}
	asset := storeline.PointsAsset(prog)
	for _, prefix := range []string{"points/" + string(prog) + "/", "points-debt/" + string(store) + "/" + string(prog) + "/"} {
		bs, err := balances(prefix)
		if err != nil {
			return out, err
		}
		for _, b := range bs {
			if b.Asset != asset || b.Amount.IsZero() {
				continue
			}
			if strings.HasPrefix(prefix, "points/") && !strings.HasSuffix(b.Account, "/"+string(store)) {
				continue
			}
			out[b.Account] = b.Amount
		}
	}
	return out, nil
}

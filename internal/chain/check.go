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
	// Problems lists every disagreement; none means the check passed.
	Problems []string
}

// ShopCheck is one shop's figures.
type ShopCheck struct {
	Store                  storeline.StoreID
	TillReceipts, Receipts int // acknowledged to the tills; in the shop's journal
	TillReturns, Returns   int
	Unknown                int // facts whose outcome the tills never learnt (all shops)
	ItemsChecked           int // items whose stock was compared
	Conservation           bool
	Loyalty                string
}

// OK reports whether nothing disagreed.
func (c Check) OK() bool { return len(c.Problems) == 0 && len(c.Shops) > 0 }

// Write prints the check.
func (c Check) Write(w io.Writer) {
	for _, s := range c.Shops {
		fmt.Fprintf(w, "  %s: receipts %d at the tills, %d in the shop's journal; returns %d/%d; stock of %d items as the tills sold; conservation %v; loyalty: %s\n",
			s.Store, s.TillReceipts, s.Receipts, s.TillReturns, s.Returns, s.ItemsChecked, okWord(s.Conservation), s.Loyalty)
	}
	fmt.Fprintf(w, "  central: %s\n", c.Central)
	if c.OK() {
		fmt.Fprintln(w, "  PASS: stock and receipts agree")
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

// check compares each shop with what its tills were told.
func (c *Chain) check(ctx context.Context, f *facts, sum tillsim.Summary) Check {
	var chk Check
	problem := func(format string, args ...any) { chk.Problems = append(chk.Problems, fmt.Sprintf(format, args...)) }
	f.mu.Lock()
	defer f.mu.Unlock()
	views := make([]shopView, len(c.shops))
	for i, s := range c.shops {
		t := f.shops[i]
		sc := ShopCheck{Store: s.ID, TillReceipts: len(t.receipts), TillReturns: len(t.returns), Unknown: sum.Unknown}
		receipts, returns, err := journalFacts(s.Node.Ledger(), s.ID)
		if err != nil {
			problem("%s: read journal: %v", s.ID, err)
		}
		sc.Receipts, sc.Returns = len(receipts), len(returns)
		views[i].receipts, views[i].returns = receipts, returns
		// Every acknowledged fact is in the journal; beyond them, only
		// facts whose answer the tills never saw may be.
		for id := range t.receipts {
			if !receipts[id] {
				problem("%s: receipt %s acknowledged to a till is not in the shop's journal", s.ID, id)
			}
		}
		for id := range t.returns {
			if !returns[id] {
				problem("%s: return %s acknowledged to a till is not in the shop's journal", s.ID, id)
			}
		}
		if extra := len(receipts) + len(returns) - len(t.receipts) - len(t.returns); extra > sum.Unknown {
			problem("%s: %d receipts and returns in the journal the tills were never told of (%d unknown outcomes)", s.ID, extra, sum.Unknown)
		}
		stock, err := stockByItem(s.Node.Ledger(), s.ID)
		if err != nil {
			problem("%s: read stock: %v", s.ID, err)
		}
		views[i].stock = stock
		items := map[storeline.ItemID]bool{}
		for id := range stock {
			items[id] = true
		}
		for id := range t.stock {
			items[id] = true
		}
		if sum.Unknown == 0 {
			var bad []string
			for id := range items {
				if !stock[id].Equal(t.stock[id]) {
					bad = append(bad, fmt.Sprintf("%s %s (tills sold %s)", id, stock[id], t.stock[id].Neg()))
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				problem("%s: stock differs from what the tills sold for %d items: %s", s.ID, len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
			}
			sc.ItemsChecked = len(items)
		}
		var cons struct {
			OK bool `json:"ok"`
		}
		if err := c.shopAdmin(ctx, s, "GET", "/admin/v1/conservation", nil, &cons); err != nil || !cons.OK {
			problem("%s: conservation check: ok=%v %v", s.ID, cons.OK, err)
		}
		sc.Conservation = cons.OK
		sc.Loyalty = loyaltyNote(s.Node.Ledger(), c.data.Programme.ID)
		if views[i].points, err = shopPoints(s.Node.Ledger().Balances, s.ID, c.data.Programme.ID); err != nil {
			problem("%s: read points: %v", s.ID, err)
		}
		chk.Shops = append(chk.Shops, sc)
	}
	chk.Central = c.checkCentral(ctx, views, problem)
	return chk
}

// journalFacts returns the IDs of the receipts and returns in the shop's
// own journal.
func journalFacts(l *ledger.Ledger, origin storeline.StoreID) (receipts, returns map[storeline.EventID]bool, err error) {
	receipts, returns = map[storeline.EventID]bool{}, map[storeline.EventID]bool{}
	from := ledger.Position{}
	for {
		evs, err := l.Journal(origin, from, ledger.MaxJournalLimit)
		if err != nil {
			return receipts, returns, err
		}
		for _, ev := range evs {
			switch ev.Kind {
			case storeline.KindReceipt:
				receipts[ev.ID] = true
			case storeline.KindReturn:
				returns[ev.ID] = true
			}
		}
		if len(evs) < ledger.MaxJournalLimit {
			return receipts, returns, nil
		}
		last := evs[len(evs)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

// stockByItem sums the shop's stock balances per item over departments.
func stockByItem(l *ledger.Ledger, store storeline.StoreID) (map[storeline.ItemID]decimal.Decimal, error) {
	prefix := "stock/" + string(store) + "/"
	bs, err := l.Balances(prefix)
	if err != nil {
		return nil, err
	}
	out := map[storeline.ItemID]decimal.Decimal{}
	for _, b := range bs {
		_, item, ok := strings.Cut(strings.TrimPrefix(b.Account, prefix), "/")
		if !ok || b.Asset != storeline.ItemAsset(storeline.ItemID(item)) {
			continue
		}
		out[storeline.ItemID(item)] = out[storeline.ItemID(item)].Add(b.Amount)
	}
	return out, nil
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

// shopView is what a shop holds of its own sales.
type shopView struct {
	receipts, returns map[storeline.EventID]bool
	stock             map[storeline.ItemID]decimal.Decimal
	points            map[string]decimal.Decimal // shopPoints
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

package chain

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/ledger"
)

// checkCentral compares every live central node's copy of each shop's
// journal and stock with the shop's own. Every node must answer the same:
// the copies are FSM state.
func (c *Chain) checkCentral(ctx context.Context, views []shopView, problem func(string, ...any)) string {
	if !linked {
		return "not compared: " + errNotLinked.Error()
	}
	c.mu.Lock()
	var nodes []*central.Node
	for _, s := range c.centrals {
		if s.node != nil {
			nodes = append(nodes, s.node)
		}
	}
	c.mu.Unlock()
	// Let every node apply what the leader has before reading its state.
	if l := c.leaderNode(); l != nil {
		target := l.AppliedIndex()
		_ = waitUntil(ctx, c.cfg.DrainTimeout, func() bool {
			for _, n := range nodes {
				if n.AppliedIndex() < target {
					return false
				}
			}
			return true
		})
	}
	events, items, points := 0, 0, 0
	for _, n := range nodes {
		for i, s := range c.shops {
			v := views[i]
			got := map[storeline.EventID]storeline.EventKind{}
			err := centralEvents(n, s.ID, func(ev storeline.Event) bool {
				if ev.Kind == storeline.KindReceipt || ev.Kind == storeline.KindReturn {
					got[ev.ID] = ev.Kind
				}
				return true
			})
			if err != nil {
				problem("%s: scan %s's events: %v", n.ID(), s.ID, err)
				continue
			}
			missing := 0
			for id := range v.receipts {
				if got[id] != storeline.KindReceipt {
					missing++
				}
			}
			for id := range v.returns {
				if got[id] != storeline.KindReturn {
					missing++
				}
			}
			if missing > 0 || len(got) != len(v.receipts)+len(v.returns) {
				problem("%s holds %d of %s's receipts and returns, the shop %d (%d of the shop's missing)",
					n.ID(), len(got), s.ID, len(v.receipts)+len(v.returns), missing)
			}
			events += len(got)
			bs, err := centralBalances(n, "stock/"+string(s.ID)+"/")
			if err != nil {
				problem("%s: %s's stock: %v", n.ID(), s.ID, err)
				continue
			}
			stock := map[storeline.ItemID]decimal.Decimal{}
			for _, b := range bs {
				_, item, ok := strings.Cut(strings.TrimPrefix(b.Account, "stock/"+string(s.ID)+"/"), "/")
				if ok && b.Asset == storeline.ItemAsset(storeline.ItemID(item)) {
					stock[storeline.ItemID(item)] = stock[storeline.ItemID(item)].Add(b.Amount)
				}
			}
			var bad []string
			for id, q := range v.stock {
				if !stock[id].Equal(q) {
					bad = append(bad, fmt.Sprintf("%s: shop %s, central %s", id, q, stock[id]))
				}
			}
			for id, q := range stock {
				if _, ok := v.stock[id]; !ok && !q.IsZero() {
					bad = append(bad, fmt.Sprintf("%s: shop 0, central %s", id, q))
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				problem("%s's stock of %s differs for %d items: %s", n.ID(), s.ID, len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
			}
			items += len(stock)

			// Loyalty: the shop's rights and its customers' debts there,
			// as central holds them, equal the shop's own.
			pts, err := shopPoints(func(prefix string) ([]ledger.Balance, error) { return centralBalances(n, prefix) }, s.ID, c.data.Programme.ID)
			if err != nil {
				problem("%s: %s's points: %v", n.ID(), s.ID, err)
				continue
			}
			bad = bad[:0]
			for acct, q := range v.points {
				if !pts[acct].Equal(q) {
					bad = append(bad, fmt.Sprintf("%s: shop %s, central %s", acct, q, pts[acct]))
				}
			}
			for acct, q := range pts {
				if _, ok := v.points[acct]; !ok {
					bad = append(bad, fmt.Sprintf("%s: shop 0, central %s", acct, q))
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				problem("%s's loyalty balances of %s differ for %d accounts: %s", n.ID(), s.ID, len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
			}
			points += len(pts)
		}
	}
	return fmt.Sprintf("%d nodes each hold every shop's receipts and returns, its stock and its loyalty balances (%d events, %d stock and %d points balances compared in all; as of %s)",
		len(nodes), events, items, points, time.Now().UTC().Format(time.TimeOnly))
}

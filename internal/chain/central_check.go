package chain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/ledger"
)

// checkCentral compares every central node's copy of each shop's journal,
// stock, money and loyalty balances with the shop's own. Every node must
// answer the same: the copies are FSM state. A configured node that is
// not running is a problem: its copy cannot be compared.
func (c *Chain) checkCentral(ctx context.Context, views []shopView, problem func(string, ...any)) string {
	if !linked {
		return "not compared: " + errNotLinked.Error()
	}
	c.mu.Lock()
	var nodes []*central.Node
	for _, s := range c.centrals {
		if s.node != nil {
			nodes = append(nodes, s.node)
		} else {
			problem("%s is not running: its copy of the shops was not compared", s.cfg.NodeID)
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
	var total centralCounts
	for _, n := range nodes {
		for i, s := range c.shops {
			cv, err := readView(nil, func(prefix string) ([]ledger.Balance, error) { return centralBalances(n, prefix) }, s.ID, c.data.Programme.ID)
			if err == nil {
				err = centralEvents(n, s.ID, func(ev storeline.Event) bool { cv.count(ev); return true })
			}
			if err != nil {
				problem("%s: read %s's copy: %v", n.ID(), s.ID, err)
				continue
			}
			if c.plant != nil && c.plant.central != nil {
				c.plant.central(n.ID(), s.ID, &cv)
			}
			total.add(compareCentral(n.ID(), s.ID, views[i], cv, problem))
		}
	}
	return fmt.Sprintf("%d nodes each hold every shop's receipts and returns, its stock, money and loyalty balances (%d events, %d stock, %d money and %d points balances compared in all; as of %s)",
		len(nodes), total.events, total.stock, total.money, total.points, time.Now().UTC().Format(time.TimeOnly))
}

// centralCounts is how much of a shop one node's comparison covered.
type centralCounts struct{ events, stock, money, points int }

func (c *centralCounts) add(o centralCounts) {
	c.events += o.events
	c.stock += o.stock
	c.money += o.money
	c.points += o.points
}

// compareCentral compares central node node's copy of store (cen) with the
// shop's own (shop): each of the shop's receipts and returns once, nothing
// else, and the same stock, money and loyalty balances.
func compareCentral(node string, store storeline.StoreID, shop, cen shopView, problem func(string, ...any)) centralCounts {
	var cnt centralCounts
	missing, extra, dups := 0, 0, []string{}
	for _, k := range []struct {
		what      string
		shop, cen map[storeline.EventID]int
	}{{"receipt", shop.receipts, cen.receipts}, {"return", shop.returns, cen.returns}} {
		for id := range k.shop {
			if k.cen[id] == 0 {
				missing++
			}
		}
		for _, id := range sortedIDs(k.cen) {
			n := k.cen[id]
			cnt.events += n
			if n > 1 {
				dups = append(dups, fmt.Sprintf("%s %s %d times", k.what, id, n))
			}
			if k.shop[id] == 0 {
				extra++
			}
		}
	}
	if missing > 0 || extra > 0 {
		problem("%s holds %d of %s's receipts and returns, the shop %d (%d of the shop's missing, %d the shop does not hold)",
			node, len(cen.receipts)+len(cen.returns), store, len(shop.receipts)+len(shop.returns), missing, extra)
	}
	if len(dups) > 0 {
		problem("%s holds %d of %s's receipts and returns more than once: %s", node, len(dups), store, strings.Join(dups[:min(5, len(dups))], "; "))
	}
	for _, k := range []struct {
		what string
		bad  []string
		n    *int
		len  int
	}{
		{"stock balances", diffBalances(shop.stock, cen.stock), &cnt.stock, len(cen.stock)},
		{"money balances", diffBalances(shop.money, cen.money), &cnt.money, len(cen.money)},
		{"loyalty balances", diffBalances(shop.points, cen.points), &cnt.points, len(cen.points)},
	} {
		*k.n = k.len
		if len(k.bad) > 0 {
			problem("%s's %s of %s differ (shop, central) for %d accounts: %s", node, k.what, store, len(k.bad), strings.Join(k.bad[:min(5, len(k.bad))], "; "))
		}
	}
	return cnt
}

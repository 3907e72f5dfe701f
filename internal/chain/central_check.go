package chain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

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
	return fmt.Sprintf("%d nodes each hold every shop's receipts and returns, its stock (units and value at cost), units sold and their cost, sales, money, loyalty balances, points issued and redeemed, and goods reserved "+
		"(%d events, %d stock, %d stock value, %d sold, %d cost, %d money, %d points balances, %d points issued/redeemed and %d reserved balances compared in all; as of %s)",
		len(nodes), total.events, total.stock, total.value, total.sold, total.cogs, total.money, total.points, total.flows, total.reserved, time.Now().UTC().Format(time.TimeOnly))
}

// centralCounts is how much of a shop one node's comparison covered.
type centralCounts struct{ events, stock, value, sold, cogs, money, points, flows, reserved int }

func (c *centralCounts) add(o centralCounts) {
	c.events += o.events
	c.stock += o.stock
	c.value += o.value
	c.sold += o.sold
	c.cogs += o.cogs
	c.money += o.money
	c.points += o.points
	c.flows += o.flows
	c.reserved += o.reserved
}

// compareCentral compares central node node's copy of store (cen) with the
// shop's own (shop): each of the shop's receipts and returns once, nothing
// else, the same sales (revenue and VAT), and the same stock (units and
// value at cost), units sold, cost of sales, money, loyalty balances and
// points issued and redeemed, and goods reserved, each to the last decimal.
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
		{"stock values at cost", diffBalances(prefixed("stock/"+string(store)+"/", shop.value), prefixed("stock/"+string(store)+"/", cen.value)), &cnt.value, len(cen.value)},
		{"units sold", diffBalances(prefixed("sold/"+string(store)+"/", shop.sold), prefixed("sold/"+string(store)+"/", cen.sold)), &cnt.sold, len(cen.sold)},
		{"costs of sales", diffBalances(prefixed("cogs/"+string(store)+"/", shop.cogs), prefixed("cogs/"+string(store)+"/", cen.cogs)), &cnt.cogs, len(cen.cogs)},
		{"money balances", diffBalances(shop.money, cen.money), &cnt.money, len(cen.money)},
		{"loyalty balances", diffBalances(shop.points, cen.points), &cnt.points, len(cen.points)},
		{"points issued and redeemed", diffBalances(shop.loyalty, cen.loyalty), &cnt.flows, len(cen.loyalty)},
		{"goods reserved", diffBalances(shop.reserved, cen.reserved), &cnt.reserved, len(cen.reserved)},
	} {
		*k.n = k.len
		if len(k.bad) > 0 {
			problem("%s's %s of %s differ (shop, central) for %d accounts: %s", node, k.what, store, len(k.bad), strings.Join(k.bad[:min(5, len(k.bad))], "; "))
		}
	}
	if !shop.sales.Equal(cen.sales) {
		problem("%s's sales (revenue and VAT) of %s differ: the shop %s, central %s", node, store, shop.sales, cen.sales)
	}
	return cnt
}

// prefixed returns m keyed by prefix+key, so a difference names the
// account.
func prefixed[K ~string](prefix string, m map[K]decimal.Decimal) map[string]decimal.Decimal {
	out := make(map[string]decimal.Decimal, len(m))
	for k, v := range m {
		out[prefix+string(k)] = v
	}
	return out
}

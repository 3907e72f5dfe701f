package central

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// The turnover report: a shop's sales (receipts less returns) over
// business dates, summed by whatever dimensions the user picks, from the
// events the shop pushed. Its figures are the shop's own line
// arithmetic (Line.Total, VAT included, and Line.VAT), as the margin
// report's and the shop's GET /v1/stats/sales use them.

// maxTurnoverDays bounds the business dates one turnover request covers,
// as the shop's MaxStatsDays bounds its sales statistics by default.
const maxTurnoverDays = 366

// maxGroupDepth bounds the parent chain followed to an item's top group
// (storeline.RuleFor's bound): the FSM refuses a cycle, so a longer
// chain is damaged master data.
const maxGroupDepth = 1000

// turnoverScanBound is the events a turnover page examines at most
// (maxReportScan; atomic so tests lower it under a running node).
var turnoverScanBound atomic.Int64

func init() { turnoverScanBound.Store(maxReportScan) }

// turnoverDims are the dimensions a turnover report groups by. The line
// ones take a value per receipt line, the others one per receipt.
var turnoverDims = map[string]bool{
	"date": false, "month": false, "seller": false, "terminal": false,
	"item": true, "group": true, "top_group": true, "dept": true,
}

// turnoverRow is one row of the report: the values of its key, in the
// order of the request's by, and its sums.
type turnoverRow struct {
	key      []string
	receipts int
	returns  int
	qty      decimal.Decimal
	revenue  decimal.Decimal // VAT included
	vat      decimal.Decimal
}

// turnoverByParam parses by: distinct known dimensions, comma separated.
func turnoverByParam(r *http.Request) ([]string, error) {
	s := r.URL.Query().Get("by")
	if s == "" {
		return []string{}, nil
	}
	by := strings.Split(s, ",")
	for i, d := range by {
		if _, ok := turnoverDims[d]; !ok {
			return nil, errMalformed("by", "%q: want a comma-separated list of date, month, item, group, top_group, dept, seller, terminal", d)
		}
		if slices.Contains(by[:i], d) {
			return nil, errMalformed("by", "%q twice", d)
		}
	}
	return by, nil
}

// turnoverMaster reads, once per request, what the report needs of the
// master data: an item's group and department, a group's root.
type turnoverMaster struct {
	rt    *ledger.ReplicaTxn
	items map[storeline.ItemID]*storeline.Item // nil: not in the master data
	tops  map[storeline.GroupID]storeline.GroupID
}

func (m *turnoverMaster) item(id storeline.ItemID) (*storeline.Item, error) {
	if it, ok := m.items[id]; ok {
		return it, nil
	}
	it := &storeline.Item{}
	ok, err := m.rt.GetMaster(storeline.KindItem, string(id), it)
	if err != nil {
		return nil, fmt.Errorf("item %s: %w", id, err)
	}
	if !ok {
		it = nil
	}
	m.items[id] = it
	return it, nil
}

// top returns the root of g's group tree: the last group of its parent
// chain that the master data holds.
func (m *turnoverMaster) top(g storeline.GroupID) (storeline.GroupID, error) {
	if t, ok := m.tops[g]; ok {
		return t, nil
	}
	seen := map[storeline.GroupID]bool{}
	top := g
	for p := g; p != ""; {
		if seen[p] || len(seen) > maxGroupDepth {
			return "", &storeline.Error{Op: "central.turnover", Kind: storeline.Internal,
				Err: fmt.Errorf("the parent chain of group %q does not end (at %q, %d groups)", g, p, len(seen))}
		}
		seen[p] = true
		var gr storeline.Group
		ok, err := m.rt.GetMaster(storeline.KindGroup, string(p), &gr)
		if err != nil {
			return "", fmt.Errorf("group %s: %w", p, err)
		}
		if !ok {
			break // a parent gone from the master data ends the chain
		}
		top, p = p, gr.Parent
	}
	m.tops[g] = top
	return top, nil
}

// lineValue is the value of a line dimension for line l.
func (m *turnoverMaster) lineValue(dim string, l *storeline.Line) (string, error) {
	it, err := m.item(l.Item)
	if err != nil {
		return "", err
	}
	switch dim {
	case "item":
		return string(l.Item), nil
	case "dept":
		if l.Dept != "" || it == nil {
			return string(l.Dept), nil
		}
		return string(it.Dept), nil
	}
	if it == nil {
		return "", nil // an item deleted since: no group to report it in
	}
	if dim == "group" {
		return string(it.Group), nil
	}
	t, err := m.top(it.Group)
	return string(t), err
}

// getTurnover answers a shop's turnover for business dates from to to,
// grouped by the dimensions of by (none: one total row, zero when
// nothing was sold): per row, the receipts and the returns touching it
// (each once however many of its lines fall in the row), units net of
// returns, revenue VAT included, net of VAT and VAT, returns subtracted.
// An item's group and department are the master data's now. A page
// examines at most turnoverScanBound events, whatever their dates (the
// events are keyed by position, not date), and stops before an event
// whose rows would take it past limit rows (it always takes its first);
// its rows sum the events it took, sorted by key, and its next
// (epoch/seq of the last) continues after them. A period read in
// several pages is the sum of their rows by key.
func (n *Node) getTurnover(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	from, to, err := dateRange(r)
	if err != nil {
		return err
	}
	ft, _ := time.Parse(time.DateOnly, string(from))
	tt, _ := time.Parse(time.DateOnly, string(to))
	if tt.Sub(ft) >= maxTurnoverDays*24*time.Hour { // from and to both count
		return errMalformed("to", "%s..%s spans more than %d days", from, to, maxTurnoverDays)
	}
	by, err := turnoverByParam(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after, err := positionParam(r, "after")
	if err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	lineDims := slices.ContainsFunc(by, func(d string) bool { return turnoverDims[d] })
	rows := map[string]*turnoverRow{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		// A store removed from the master data keeps its sales (as for
		// margin): known while it has pushed events.
		if err := knownStore(rt, "central.turnover", store); err != nil {
			return err
		}
		m := &turnoverMaster{rt: rt, items: map[storeline.ItemID]*storeline.Item{}, tops: map[storeline.GroupID]storeline.GroupID{}}
		budget := int(turnoverScanBound.Load())
		last, more, err := walkEvents(rt, store, after, &budget, func(ev storeline.Event) (bool, error) {
			if ev.BusinessDate < from || ev.BusinessDate > to {
				return true, nil
			}
			var lines []storeline.Line
			var seller storeline.SellerID
			var terminal storeline.TerminalID
			ret := false
			switch b := ev.Body.(type) {
			case *storeline.Receipt:
				lines, seller, terminal = b.Lines, b.Seller, b.Terminal
			case *storeline.Return:
				lines, seller, terminal, ret = b.Lines, b.Seller, b.Terminal, true
			default:
				return true, nil
			}
			eventValue := func(dim string) string {
				switch dim {
				case "date":
					return string(ev.BusinessDate)
				case "month":
					return string(ev.BusinessDate)[:min(7, len(ev.BusinessDate))] // YYYY-MM
				case "seller":
					return string(seller)
				}
				return string(terminal)
			}
			// The event's key per line (one key for them all without
			// line dimensions, so a receipt without lines still counts).
			keys := make([][]string, 0, len(lines))
			for i := range lines {
				if i > 0 && !lineDims {
					keys = append(keys, keys[0])
					continue
				}
				key := make([]string, len(by))
				for j, d := range by {
					if turnoverDims[d] {
						v, err := m.lineValue(d, &lines[i])
						if err != nil {
							return false, err
						}
						key[j] = v
					} else {
						key[j] = eventValue(d)
					}
				}
				keys = append(keys, key)
			}
			if len(lines) == 0 && !lineDims {
				key := make([]string, len(by))
				for j, d := range by {
					key[j] = eventValue(d)
				}
				keys = append(keys, key)
			}
			fresh := map[string]bool{}
			for _, k := range keys {
				if id := strings.Join(k, "\x00"); rows[id] == nil {
					fresh[id] = true
				}
			}
			if len(rows) > 0 && len(rows)+len(fresh) > limit {
				return false, nil // the next page starts with it
			}
			touched := map[string]bool{}
			for i, k := range keys {
				id := strings.Join(k, "\x00")
				row := rows[id]
				if row == nil {
					row = &turnoverRow{key: k}
					rows[id] = row
				}
				if !touched[id] {
					touched[id] = true
					if ret {
						row.returns++
					} else {
						row.receipts++
					}
				}
				if i >= len(lines) {
					continue // the key of a receipt without lines
				}
				l := &lines[i]
				if ret {
					row.qty, row.revenue, row.vat = row.qty.Sub(l.Qty), row.revenue.Sub(l.Total), row.vat.Sub(l.VAT)
				} else {
					row.qty, row.revenue, row.vat = row.qty.Add(l.Qty), row.revenue.Add(l.Total), row.vat.Add(l.VAT)
				}
			}
			return true, nil
		})
		next = positionCursor(last, more)
		return err
	})
	if err != nil {
		return err
	}
	if len(by) == 0 && len(rows) == 0 {
		rows[""] = &turnoverRow{key: []string{}} // the total of nothing sold
	}
	ids := make([]string, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.Sort(ids) // by key: \x00 sorts a value before its extensions
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		row := rows[id]
		key := make(map[string]string, len(by))
		for j, d := range by {
			key[d] = row.key[j]
		}
		out[i] = map[string]any{"key": key, "receipts": row.receipts, "returns": row.returns, "qty": row.qty,
			"revenue": row.revenue, "net": row.revenue.Sub(row.vat), "vat": row.vat}
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "from": from, "to": to, "by": by, "rows": out,
		"more": next != "", "next": next})
	return nil
}

package central

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
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

// turnoverScanBound is the events or sales index keys a turnover page
// examines at most (maxReportScan; atomic so tests lower it under a
// running node).
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
// An item's group and department are the master data's now.
//
// It reads the sales in two parts: first, by walking positions, the
// events of builds before the sales date index (below each epoch's
// rpSaleLow: none for a shop that pushed only since), whatever their
// dates; then the index's sales dated from..to, in (date, position)
// order. A page examines at most turnoverScanBound events or index keys,
// and stops before an event whose rows would take it past limit rows
// (it always takes its first); its rows sum the events it took, sorted
// by key, and its next continues after the last one examined or taken:
// "epoch/seq" in the walk, "d/date/epoch/seq" in the index (epoch/seq
// 0/0: before the date's first sale). A period read in several pages is
// the sum of their rows by key.
func (n *Node) getTurnover(w http.ResponseWriter, r *http.Request) error {
	asCSV, err := wantsCSV(r) // reports_saved.go
	if err != nil {
		return err
	}
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
	after, err := salesCursorParam(r)
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
		take := func(ev storeline.Event) (bool, error) {
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
		}
		last, more, err := walkSales(rt, store, after, from, to, &budget, take)
		if more {
			next = last.String()
		}
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
	answer := map[string]any{"store": store, "from": from, "to": to, "by": by, "rows": out, "more": next != "", "next": next}
	if asCSV {
		return writeTurnoverCSV(w, answer)
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// salesCursor is where a page of a report over a shop's sales
// continues (walkSales): after pos in the walk of the events before the
// sales index, or, inIndex, after the index key of (date, pos).
type salesCursor struct {
	inIndex bool
	date    storeline.Date
	pos     replication.Position
}

func (c salesCursor) String() string {
	if !c.inIndex {
		return c.pos.String()
	}
	return fmt.Sprintf("d/%s/%d/%d", c.date, c.pos.Epoch, c.pos.Seq)
}

// salesCursorParam parses after: a page's next, "epoch/seq" (the walk's,
// as pages gave it before the sales index) or "d/date/epoch/seq" (the
// index's; epoch/seq 0/0: before the date's first sale).
func salesCursorParam(r *http.Request) (salesCursor, error) {
	s := r.URL.Query().Get("after")
	rest, ok := strings.CutPrefix(s, "d/")
	if !ok {
		pos, err := positionParam(r, "after")
		return salesCursor{pos: pos}, err
	}
	bad := errMalformed("after", "%q: want epoch/seq or d/date/epoch/seq, as a page's next gives it", s)
	date, pos, ok := strings.Cut(rest, "/")
	e, q, ok2 := strings.Cut(pos, "/")
	if !ok || !ok2 {
		return salesCursor{}, bad
	}
	d, err := storeline.ParseDate("after", date)
	if err != nil {
		return salesCursor{}, bad
	}
	c := salesCursor{inIndex: true, date: d}
	var err1, err2 error
	c.pos.Epoch, err1 = strconv.ParseUint(e, 10, 64)
	c.pos.Seq, err2 = strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return salesCursor{}, bad
	}
	return c, nil
}

// saleLows returns store's rpSaleLow marks by epoch.
func saleLows(rt *ledger.ReplicaTxn, store storeline.StoreID) (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	p := rpSaleLow + string(store) + "\x00"
	err := rt.ScanMeta(p, func(k string, v []byte) (bool, error) {
		out[ledger.U64([]byte(k[len(p):]))] = ledger.U64(v)
		return true, nil
	})
	return out, err
}

// scanSales calls fn with store's sales of the date index (rpSaleDate)
// after the key of (after.date, after.pos), dated up to to, in key order,
// reading each by its position. It examines at most *budget keys, taking
// each from it; fn returns false to stop before taking the event it was
// given. last is the index key last taken or examined, more whether it
// stopped before the end of to.
func scanSales(rt *ledger.ReplicaTxn, store storeline.StoreID, after salesCursor, to storeline.Date, budget *int, fn func(storeline.Event) (bool, error)) (last salesCursor, more bool, err error) {
	last = after
	prefix := rpSaleDate + string(store) + "\x00"
	from := string(after.date) + "\x00" + string(ledger.PutU64(after.pos.Epoch)) + string(ledger.PutU64(after.pos.Seq))
	err = rt.ScanMetaFrom(prefix, from, func(k string, _ []byte) (bool, error) {
		rest := k[len(prefix):]
		if rest == from {
			return true, nil // the cursor's own
		}
		date, pos, ok := strings.Cut(rest, "\x00")
		if !ok || len(pos) != 16 {
			return false, fmt.Errorf("sales index key %q: want store \\0 date \\0 epoch8 seq8", k)
		}
		if storeline.Date(date) > to {
			return false, nil
		}
		if *budget <= 0 {
			more = true
			return false, nil
		}
		*budget--
		at := salesCursor{inIndex: true, date: storeline.Date(date),
			pos: replication.Position{Epoch: ledger.U64([]byte(pos[:8])), Seq: ledger.U64([]byte(pos[8:]))}}
		v, err := rt.Meta(eventKey(store, at.pos.Epoch, at.pos.Seq))
		if err != nil {
			return false, err
		}
		if v != nil {
			ev, err := decodeEvent(v)
			if err != nil {
				return false, err
			}
			goOn, err := fn(ev)
			if err != nil || !goOn {
				more = err == nil
				return false, err
			}
		}
		last = at
		return true, nil
	})
	return last, more, err
}

// walkSales calls fn with store's receipts and returns (and, in its
// first part, its other events) after `after`, in two parts: the events
// of builds before the sales date index, walked by position (walkEvents
// below each epoch's rpSaleLow: none for a shop that pushed only since),
// whatever their dates; then the index's sales dated from..to, in
// (date, position) order. It examines at most *budget positions or index
// keys, taking each from it; fn returns false to stop before taking the
// event it was given. next is the position or key last taken or
// examined, more whether it stopped before the end.
func walkSales(rt *ledger.ReplicaTxn, store storeline.StoreID, after salesCursor, from, to storeline.Date, budget *int, fn func(storeline.Event) (bool, error)) (next salesCursor, more bool, err error) {
	lows, err := saleLows(rt, store)
	if err != nil {
		return after, false, err
	}
	if !after.inIndex {
		// A position at or past the end of every epoch is past every
		// event, those of the index too (a page's position is always
		// below its epoch's low mark, so never such a one).
		end, err := pastEveryEpoch(rt, store, after.pos)
		if err != nil || end {
			return after, false, err
		}
		last, more, err := walkEventsBelow(rt, store, after.pos, lows, budget, fn)
		if err != nil || more {
			return salesCursor{pos: last}, more, err
		}
		after = salesCursor{inIndex: true, date: from}
	}
	if after.date < from {
		after = salesCursor{inIndex: true, date: from}
	}
	return scanSales(rt, store, after, to, budget, fn)
}

// pastEveryEpoch says whether store has no event after pos in (epoch,
// seq) order.
func pastEveryEpoch(rt *ledger.ReplicaTxn, store storeline.StoreID, pos replication.Position) (bool, error) {
	ms, err := marks(rt, store)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Epoch > pos.Epoch || m.Epoch == pos.Epoch && m.Seq > pos.Seq {
			return false, nil
		}
	}
	return true, nil
}

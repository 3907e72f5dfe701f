package central

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
)

// Back-office reports are views over what central holds: posted
// documents and the events shops pushed. They are computed on request
// from this node's state, bounded by MaxFeedLimit rows, and never stored.

func (n *Node) backOfficeReportRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/excise", false, n.getExcise)
	h("GET /v1/serials/conflicts", false, n.getSerialConflicts)
	h("GET /v1/margin", false, n.getMargin)
}

// getMargin answers the gross margin of a shop's sales for business dates
// from to to: per receipt (or return, negative) its revenue net of VAT, its
// cost as central derived it (absent while not yet costed), and the
// totals of the costed ones.
func (n *Node) getMargin(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	from, err := dateParam(r, "from")
	if err != nil {
		return err
	}
	to, err := dateParam(r, "to")
	if err != nil {
		return err
	}
	if to < from {
		return errMalformed("to", "%s is before from %s", to, from)
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	out := []any{}
	var revenue, cost decimal.Decimal
	uncosted, more := 0, false
	var readErr error
	err = n.ScanEvents(store, func(ev storeline.Event) bool {
		if ev.BusinessDate < from || ev.BusinessDate > to {
			return true
		}
		var lines []storeline.Line
		sign := decimal.NewFromInt(1)
		switch b := ev.Body.(type) {
		case *storeline.Receipt:
			lines = b.Lines
		case *storeline.Return:
			lines, sign = b.Lines, sign.Neg()
		default:
			return true
		}
		if len(out) == MaxFeedLimit {
			more = true
			return false
		}
		var rev decimal.Decimal
		for _, l := range lines {
			rev = rev.Add(l.Total.Sub(l.VAT))
		}
		rev = rev.Mul(sign)
		row := map[string]any{"event": ev.ID, "kind": ev.Kind, "date": ev.BusinessDate, "revenue": rev}
		v, err := n.rep.Meta(saleCostKey(store, ev.Epoch, ev.Seq))
		if err != nil {
			readErr = err
			return false
		}
		if v == nil {
			uncosted++
		} else {
			c, err := decimal.NewFromString(string(v))
			if err != nil {
				readErr = err
				return false
			}
			row["cost"], row["margin"] = c, rev.Sub(c)
			revenue, cost = revenue.Add(rev), cost.Add(c)
		}
		out = append(out, row)
		return true
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "sales": out, "revenue": revenue, "cost": cost,
		"uncosted": uncosted, "more": more})
	return nil
}

// exciseRow is one movement of an excise item in a shop's stock.
type exciseRow struct {
	Date   storeline.Date   `json:"date"`
	Source string           `json:"source"` // "document" or "event"
	Ref    string           `json:"ref"`
	Kind   string           `json:"kind"`
	Item   storeline.ItemID `json:"item"`
	Qty    decimal.Decimal  `json:"qty"` // + into the shop's stock, − out of it
	Serial string           `json:"serial,omitempty"`
}

func dateParam(r *http.Request, name string) (storeline.Date, error) {
	s := r.URL.Query().Get(name)
	d, err := storeline.ParseDate(name, s)
	if err != nil {
		return "", errMalformed(name, "%v", errMessage(err))
	}
	return d, nil
}

// getExcise answers the excise journal of a shop for business dates from
// to to (inclusive): every movement of an excise item in its stock, from
// documents head office posted or cancelled and from the shop's own
// events, with a total per item.
func (n *Node) getExcise(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	from, err := dateParam(r, "from")
	if err != nil {
		return err
	}
	to, err := dateParam(r, "to")
	if err != nil {
		return err
	}
	if to < from {
		return errMalformed("to", "%s is before from %s", to, from)
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var rows []exciseRow
	more := false
	add := func(row exciseRow) bool {
		if len(rows) == MaxFeedLimit {
			more = true
			return false
		}
		rows = append(rows, row)
		return true
	}
	excise := map[storeline.ItemID]bool{}
	isExcise := func(rt *ledger.ReplicaTxn, id storeline.ItemID) (bool, error) {
		if v, ok := excise[id]; ok {
			return v, nil
		}
		var it storeline.Item
		ok, err := rt.GetMaster(storeline.KindItem, string(id), &it)
		if err != nil {
			return false, err
		}
		excise[id] = ok && it.Excise
		return excise[id], nil
	}
	stockPrefix := "stock/" + string(store) + "/"
	// movements yields the units of excise items ps move in store's stock.
	movements := func(rt *ledger.ReplicaTxn, ps []storeline.Posting, fn func(storeline.ItemID, decimal.Decimal) bool) (bool, error) {
		for _, p := range ps {
			rest, ok := strings.CutPrefix(p.Account, stockPrefix)
			if !ok {
				continue
			}
			item := storeline.ItemID(rest[strings.LastIndexByte(rest, '/')+1:])
			if p.Asset != storeline.ItemAsset(item) {
				continue
			}
			ex, err := isExcise(rt, item)
			if err != nil {
				return false, err
			}
			if ex && !fn(item, p.Amount) {
				return false, nil
			}
		}
		return true, nil
	}
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var st storeline.Store
		ok, err := rt.GetMaster(storeline.KindStore, string(store), &st)
		if err != nil {
			return err
		}
		if !ok {
			return storeline.Errorf(storeline.NotFound, "central.excise", "unknown store %q", store)
		}
		loc, err := st.Location()
		if err != nil {
			return err
		}
		inRange := func(d storeline.Date) bool { return d >= from && d <= to }
		err = rt.ScanMeta(boDoc, func(_ string, v []byte) (bool, error) {
			var rec docRecord
			if err := msgpack.Unmarshal(v, &rec); err != nil {
				return false, err
			}
			for _, step := range []struct {
				ms   int64
				kind string
				ps   []storeline.Posting
			}{
				{rec.PostedMs, string(rec.Doc.Type), rec.Postings},
				{rec.CancelledMs, string(rec.Doc.Type) + ".cancel", storeline.CancelPostings(rec.Postings)},
			} {
				if step.ms == 0 {
					continue
				}
				d := storeline.DateOf(time.UnixMilli(step.ms), loc)
				if !inRange(d) {
					continue
				}
				goOn, err := movements(rt, step.ps, func(item storeline.ItemID, q decimal.Decimal) bool {
					return add(exciseRow{Date: d, Source: "document", Ref: rec.Doc.ID, Kind: step.kind, Item: item, Qty: q})
				})
				if err != nil || !goOn {
					return false, err
				}
			}
			return true, nil
		})
		return err
	})
	if err != nil {
		return err
	}
	if !more {
		var scanErr error
		err = n.ScanEvents(store, func(ev storeline.Event) bool {
			if ev.BusinessDate < from || ev.BusinessDate > to {
				return true
			}
			serials := map[storeline.ItemID]string{}
			switch b := ev.Body.(type) {
			case *storeline.Receipt:
				for _, l := range b.Lines {
					serials[l.Item] = l.Serial
				}
			case *storeline.Return:
				for _, l := range b.Lines {
					serials[l.Item] = l.Serial
				}
			}
			var goOn bool
			scanErr = n.rep.View(func(rt *ledger.ReplicaTxn) error {
				var err error
				goOn, err = movements(rt, ev.Postings, func(item storeline.ItemID, q decimal.Decimal) bool {
					return add(exciseRow{Date: ev.BusinessDate, Source: "event", Ref: ev.ID.String(), Kind: string(ev.Kind), Item: item, Qty: q, Serial: serials[item]})
				})
				return err
			})
			return scanErr == nil && goOn
		})
		if err == nil {
			err = scanErr
		}
		if err != nil {
			return err
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Date < rows[j].Date })
	totals := map[storeline.ItemID]map[string]decimal.Decimal{}
	for _, r := range rows {
		t := totals[r.Item]
		if t == nil {
			t = map[string]decimal.Decimal{"in": decimal.Zero, "out": decimal.Zero}
			totals[r.Item] = t
		}
		if r.Qty.IsPositive() {
			t["in"] = t["in"].Add(r.Qty)
		} else {
			t["out"] = t["out"].Sub(r.Qty)
		}
	}
	if rows == nil {
		rows = []exciseRow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "from": from, "to": to, "movements": rows, "totals": totals, "more": more})
	return nil
}

// getSerialConflicts answers the serials of marked goods sold (or written
// off, or returned to the supplier) more times than they were returned,
// over every shop's receipts and returns central holds and the documents
// it posted (a serial sold in two shops while one was offline), with each
// shop's counts.
func (n *Node) getSerialConflicts(w http.ResponseWriter, r *http.Request) error {
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var stores []storeline.StoreID
	err := n.rep.ScanMaster(storeline.KindStore, "", func(rec storeline.Record) error {
		stores = append(stores, rec.(*storeline.Store).ID)
		return nil
	})
	if err != nil {
		return err
	}
	var sc crdt.SerialCounts
	for _, s := range stores {
		err := n.ScanEvents(s, func(ev storeline.Event) bool {
			switch b := ev.Body.(type) {
			case *storeline.Receipt:
				for _, l := range b.Lines {
					if l.Serial != "" {
						sc.Sell(l.Serial, string(s))
					}
				}
			case *storeline.Return:
				for _, l := range b.Lines {
					if l.Serial != "" {
						sc.Return(l.Serial, string(s))
					}
				}
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	// A marked item written off or returned to its supplier has left the
	// chain as surely as one sold: a later sale of its serial conflicts.
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(boDoc, func(_ string, v []byte) (bool, error) {
			var rec docRecord
			if err := msgpack.Unmarshal(v, &rec); err != nil {
				return false, err
			}
			if rec.Status != storeline.DocPosted || (rec.Doc.Type != storeline.DocWriteOff && rec.Doc.Type != storeline.DocSupplierReturn) {
				return true, nil
			}
			for _, l := range rec.Doc.Lines {
				if l.Serial != "" {
					sc.Sell(l.Serial, string(rec.Doc.Store))
				}
			}
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	out := []any{}
	for _, serial := range sc.Conflicts() {
		if len(out) == MaxFeedLimit {
			break
		}
		shops := []any{}
		for _, s := range stores {
			row := sc.Row(serial, string(s))
			if row.Sold != 0 || row.Returned != 0 {
				shops = append(shops, map[string]any{"store": s, "sold": row.Sold, "returned": row.Returned})
			}
		}
		out = append(out, map[string]any{"serial": serial, "net": sc.Net(serial), "stores": shops})
	}
	writeJSON(w, http.StatusOK, map[string]any{"conflicts": out})
	return nil
}

package central

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// Back-office reports are views over what central holds: posted
// documents, the events shops pushed and the indexes kept at apply time
// (below). Every report pages: limit rows at most (MaxFeedLimit at
// most), and a cursor: the answer's "next", given back as "after",
// continues after the last row (empty: nothing more). A page also
// examines at most maxReportScan events or keys, so a report over a long
// journal answers in bounded time whatever its filter; a page cut short
// by that still gives a "next".

// maxReportScan bounds the events or keys one report page examines.
const maxReportScan = 10 * MaxFeedLimit

// marginScanBound is the events or keys a margin page examines at most
// (maxReportScan; atomic so tests lower it under a running node).
var marginScanBound atomic.Int64

func init() { marginScanBound.Store(maxReportScan) }

func (n *Node) backOfficeReportRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/excise", false, n.getExcise)
	h("GET /v1/serials/conflicts", false, n.getSerialConflicts)
	h("GET /v1/margin", false, n.getMargin)
	h("GET /v1/turnover", false, n.getTurnover)
}

// positionParam parses a cursor "epoch/seq" (zero when absent).
func positionParam(r *http.Request, name string) (replication.Position, error) {
	var p replication.Position
	s := r.URL.Query().Get(name)
	if s == "" {
		return p, nil
	}
	e, q, ok := strings.Cut(s, "/")
	var err1, err2 error
	if ok {
		p.Epoch, err1 = strconv.ParseUint(e, 10, 64)
		p.Seq, err2 = strconv.ParseUint(q, 10, 64)
	}
	if !ok || err1 != nil || err2 != nil {
		return p, errMalformed(name, "%q: want epoch/seq, as a page's next gives it", s)
	}
	return p, nil
}

func positionCursor(p replication.Position, more bool) string {
	if !more {
		return ""
	}
	return p.String()
}

// walkEvents calls fn with store's stored events after `after`, in
// position order, read by key. It examines at most *budget positions,
// taking each from it (what is left is the page's for other keys); fn
// returns false to stop before taking the event it was given. last is
// the last position taken or examined, more whether it stopped before the
// end.
func walkEvents(rt *ledger.ReplicaTxn, store storeline.StoreID, after replication.Position, budget *int, fn func(storeline.Event) (bool, error)) (last replication.Position, more bool, err error) {
	return walkEventsBelow(rt, store, after, nil, budget, fn)
}

// walkEventsBelow is walkEvents over the positions below the sales
// index's low marks (saleLows): of an epoch with a low mark, the seqs
// before it; of one without, all.
func walkEventsBelow(rt *ledger.ReplicaTxn, store storeline.StoreID, after replication.Position, lows map[uint64]uint64, budget *int, fn func(storeline.Event) (bool, error)) (last replication.Position, more bool, err error) {
	ms, err := marks(rt, store)
	if err != nil {
		return after, false, err
	}
	last = after
	for _, m := range ms {
		if m.Epoch < after.Epoch {
			continue
		}
		if low, ok := lows[m.Epoch]; ok {
			m.Seq = min(m.Seq, max(low, 1)-1)
		}
		seq := uint64(1)
		if m.Epoch == after.Epoch {
			if after.Seq >= m.Seq {
				continue // nothing after it (and after.Seq+1 may wrap to 0)
			}
			seq = after.Seq + 1
		}
		for ; seq <= m.Seq; seq++ {
			if *budget <= 0 {
				return last, true, nil
			}
			*budget--
			pos := replication.Position{Epoch: m.Epoch, Seq: seq}
			v, err := rt.Meta(eventKey(store, pos.Epoch, pos.Seq))
			if err != nil {
				return last, false, err
			}
			if v != nil {
				ev, err := decodeEvent(v)
				if err != nil {
					return last, false, err
				}
				goOn, err := fn(ev)
				if err != nil || !goOn {
					return last, err == nil, err
				}
			}
			last = pos
		}
	}
	return last, false, nil
}

// getMargin answers the gross margin of a shop's sales for business dates
// from to to, a page at a time, in three parts. First per receipt (or
// return, negative) its revenue net of VAT, its cost as central derived
// it (absent while not yet costed); then the re-costs of the period,
// each dated on the document that made it (boRecostRow); then the
// wholesale: per post of an outgoing invoice or a buyer return (a
// return's negative) and per cancel of one (netting it), dated the day
// it was made as re-costs are, its revenue net of VAT and its cost, what
// its postings moved into revenue/<store> and cogs/<store>/ (wholesale).
// The page's totals are revenue and cost of its costed sales and its
// wholesale, plus its re-costs in cost (given apart as recost, as the
// wholesale's are as wholesale_revenue and wholesale_cost). So the
// pages' revenue and cost over a period add up to what moved into the
// shop's revenue and cogs/ accounts in it: a sale's when it was costed,
// an invoice's (a transfer receipt's, a production's) re-cost of units
// sold short or its cancel's, and a wholesale document's or its
// cancel's, on the date it was posted. The sales are read as the
// turnover report reads them (walkSales): those pushed before the sales
// date index by position, then the index's by date and position. The
// cursor is the last sale's epoch/seq or d/date/epoch/seq while the
// sales last, then the last re-cost's date/document/kind/item, then the
// wholesale's w/buyer/currency/date/document/seq (w/: from its start).
func (n *Node) getMargin(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	from, to, err := dateRange(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after, recostAfter, wholesaleAfter, err := marginCursor(r, from)
	if err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	sales, recosts, wholesale := []any{}, []recostRow{}, []wholesaleRow{}
	var revenue, cost, recost, wholesaleRevenue, wholesaleCost decimal.Decimal
	uncosted := 0
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		// A store head office knows: in the master data, or one that
		// pushed before it was (its sales are listed, not costed), or
		// re-costed or sold wholesale (its revenue account has a
		// balance) before it was removed.
		ok, err := rt.HasMaster(storeline.KindStore, string(store))
		if err != nil {
			return err
		}
		if !ok {
			ms, err := marks(rt, store)
			if err != nil {
				return err
			}
			recosted := false
			if err := rt.ScanMeta(boRecostRow+string(store)+"\x00", func(string, []byte) (bool, error) {
				recosted = true
				return false, nil
			}); err != nil {
				return err
			}
			sold := false
			if err := rt.ScanMeta(rpBal+storeline.RevenueAccount(store)+"\x00", func(string, []byte) (bool, error) {
				sold = true
				return false, nil
			}); err != nil {
				return err
			}
			if len(ms) == 0 && !recosted && !sold {
				return unknownStore("central.margin", store)
			}
		}
		budget := int(marginScanBound.Load())
		if wholesaleAfter == nil {
			if recostAfter == nil {
				last, more, err := walkSales(rt, store, after, from, to, &budget, func(ev storeline.Event) (bool, error) {
					if ev.BusinessDate < from || ev.BusinessDate > to {
						return true, nil
					}
					var lines []storeline.Line
					sign := decimal.NewFromInt(1)
					switch b := ev.Body.(type) {
					case *storeline.Receipt:
						lines = b.Lines
					case *storeline.Return:
						lines, sign = b.Lines, sign.Neg()
					default:
						return true, nil
					}
					if len(sales) == limit {
						return false, nil
					}
					var rev decimal.Decimal
					for _, l := range lines {
						rev = rev.Add(l.Total.Sub(l.VAT))
					}
					rev = rev.Mul(sign)
					row := map[string]any{"event": ev.ID, "kind": ev.Kind, "date": ev.BusinessDate, "revenue": rev}
					v, err := rt.Meta(saleCostKey(store, ev.Epoch, ev.Seq))
					if err != nil {
						return false, err
					}
					if v == nil {
						uncosted++
					} else {
						c, err := decimal.NewFromString(string(v))
						if err != nil {
							return false, err
						}
						row["cost"], row["margin"] = c, rev.Sub(c)
						revenue, cost = revenue.Add(rev), cost.Add(c)
					}
					sales = append(sales, row)
					return true, nil
				})
				if err != nil || more {
					next = last.String()
					return err
				}
				// The sales are done: the re-costs follow, from the
				// period's start. A page with no room left for them ends
				// at its last sale, and the next page starts them.
				recostAfter = &recostCursor{date: from, key: string(from)}
				next = last.String()
			}
			rows, lastKey, cut, err := scanRecosts(rt, store, *recostAfter, to, limit-len(sales), &budget)
			recosts = rows
			if err != nil {
				return err
			}
			if cut {
				switch {
				case lastKey != "":
					next = strings.ReplaceAll(lastKey, "\x00", "/")
				case next == "":
					next = r.URL.Query().Get("after") // none taken: where this page started
				}
				return nil
			}
			// The re-costs are done: the wholesale follows, from its
			// start.
			wholesaleAfter = &wholesaleCursor{}
		}
		rows, wnext, cut, err := scanWholesale(rt, store, *wholesaleAfter, from, to, limit-len(sales)-len(recosts), &budget)
		wholesale, next = rows, ""
		if cut {
			next = wnext
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, rc := range recosts {
		recost = recost.Add(rc.Cost)
	}
	for _, wr := range wholesale {
		wholesaleRevenue, wholesaleCost = wholesaleRevenue.Add(wr.Revenue), wholesaleCost.Add(wr.Cost)
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "sales": sales, "recosts": recosts, "wholesale": wholesale,
		"revenue": revenue.Add(wholesaleRevenue), "cost": cost.Add(recost).Add(wholesaleCost), "recost": recost,
		"wholesale_revenue": wholesaleRevenue, "wholesale_cost": wholesaleCost,
		"uncosted": uncosted, "more": next != "", "next": next})
	return nil
}

// recostCursor is where a margin page's re-costs continue: after the row
// of key (date \0 document \0 kind \0 item under the store's prefix), or
// from the first of date when key is only the date.
type recostCursor struct {
	date storeline.Date
	key  string
}

// marginCursor parses a margin page's "after": a sale's epoch/seq or
// d/date/epoch/seq (salesCursorParam), a re-cost's
// date/document/kind/item (then recost is not nil), or a wholesale row's
// w/buyer/currency/date/document/seq or w/ (then wholesale is not nil),
// not before from.
func marginCursor(r *http.Request, from storeline.Date) (after salesCursor, recost *recostCursor, wholesale *wholesaleCursor, err error) {
	s := r.URL.Query().Get("after")
	if rest, ok := strings.CutPrefix(s, "w/"); ok {
		wholesale, err = wholesaleCursorParam(rest, from)
		if err != nil {
			return after, nil, nil, errMalformed("after", "%q: want w/buyer/currency/date/document/seq, w/buyer/currency or w/, as a page's next gives it", s)
		}
		return after, nil, wholesale, nil
	}
	d, _, ok := strings.Cut(s, "/")
	if !ok || !strings.Contains(d, "-") {
		after, err = salesCursorParam(r)
		return after, nil, nil, err
	}
	parts := strings.Split(s, "/")
	date, err := storeline.ParseDate("after", parts[0])
	if err != nil || date < from || len(parts) != 4 || !storeline.ValidID(parts[1]) || !validKind(parts[2]) || !storeline.ValidID(parts[3]) {
		return after, nil, nil, errMalformed("after", "%q: want epoch/seq, d/date/epoch/seq, date/document/kind/item or w/buyer/currency/date/document/seq, as a page's next gives it", s)
	}
	return after, &recostCursor{date, strings.Join(parts, "\x00")}, nil, nil
}

// validKind says whether s can be a re-cost row's kind (a document type,
// with ".cancel" for a cancel's).
func validKind(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' && r != '.' })
}

// scanRecosts reads store's re-costs after c up to date to: limit rows
// at most, taking keys from *budget. cut says whether it stopped before
// a row it did not take; lastKey is the key (under the store's prefix)
// of the last row taken or passed over, empty if none. What a buyer's
// document moved into cogs is its wholesale row's cost (scanWholesale),
// passed over here, unless the document has none (wholesaleListed).
func scanRecosts(rt *ledger.ReplicaTxn, store storeline.StoreID, c recostCursor, to storeline.Date, limit int, budget *int) (rows []recostRow, lastKey string, cut bool, err error) {
	rows = []recostRow{}
	prefix := boRecostRow + string(store) + "\x00"
	listed := map[string]bool{} // buyer's document ID → wholesaleListed
	err = rt.ScanMetaFrom(prefix, c.key, func(k string, v []byte) (bool, error) {
		key := k[len(prefix):]
		if date, _, _ := strings.Cut(key, "\x00"); storeline.Date(date) > to {
			return false, nil
		}
		if key == c.key {
			return true, nil // the cursor's own row
		}
		if *budget <= 0 {
			cut = true
			return false, nil
		}
		var row recostRow
		if err := msgpack.Unmarshal(v, &row); err != nil {
			return false, fmt.Errorf("re-cost row %q: %w", k, err)
		}
		if typ, _, _ := strings.Cut(row.Kind, "."); storeline.IsBuyerDoc(storeline.DocType(typ)) {
			l, seen := listed[row.Document]
			if !seen {
				if l, err = wholesaleListed(rt, row.Document); err != nil {
					return false, err
				}
				listed[row.Document] = l
			}
			if l {
				*budget--
				lastKey = key
				return true, nil
			}
		}
		if len(rows) >= limit {
			cut = true
			return false, nil
		}
		*budget--
		rows = append(rows, row)
		lastKey = key
		return true, nil
	})
	return rows, lastKey, cut, err
}

// wholesaleListed says whether the buyer's document id has wholesale
// rows: its post (and cancel) moved the buyer's receivable, so they have
// statement rows (receivables.go invariant 2), which scanWholesale
// reads. One whose total rounds to nothing moved none; what it moved
// into cogs stays a re-cost, so the report's cost still adds up.
func wholesaleListed(rt *ledger.ReplicaTxn, id string) (bool, error) {
	rec, ok, err := getDoc(rt, id)
	if err != nil || !ok {
		return false, err
	}
	for _, p := range rec.Postings {
		if _, money := p.Asset.Currency(); money && strings.HasPrefix(p.Account, "receivable/") && !p.Amount.IsZero() {
			return true, nil
		}
	}
	return false, nil
}

// wholesaleCursor is where a margin page's wholesale continues: in the
// statement rows of the buyer and currency pair (buyer \x00 currency),
// after the row of key (date \x00 document \x00 seq8), or after the
// pair when key is empty; from the first pair when pair is empty.
type wholesaleCursor struct {
	pair, key string
}

// wholesaleCursorParam parses a wholesale cursor after its "w/": empty,
// buyer/currency, or buyer/currency/date/document/seq with date not
// before from.
func wholesaleCursorParam(s string, from storeline.Date) (*wholesaleCursor, error) {
	if s == "" {
		return &wholesaleCursor{}, nil
	}
	parts := strings.Split(s, "/")
	if (len(parts) != 2 && len(parts) != 5) || !storeline.ValidID(parts[0]) || !storeline.Currency(parts[1]).Valid() {
		return nil, fmt.Errorf("not a wholesale cursor")
	}
	pair := parts[0] + "\x00" + parts[1]
	if len(parts) == 2 {
		return &wholesaleCursor{pair: pair}, nil
	}
	if !storeline.ValidID(parts[3]) {
		return nil, fmt.Errorf("not a wholesale cursor")
	}
	date, err := storeline.ParseDate("after", parts[2])
	if err != nil || date < from {
		return nil, fmt.Errorf("not a wholesale cursor")
	}
	seq, err := strconv.ParseUint(parts[4], 10, 64)
	if err != nil {
		return nil, err
	}
	return &wholesaleCursor{pair: pair, key: parts[2] + "\x00" + parts[3] + "\x00" + string(ledger.PutU64(seq))}, nil
}

// String is the cursor as a page's next gives it.
func (c wholesaleCursor) String() string {
	switch {
	case c.pair == "":
		return "w/"
	case c.key == "":
		return "w/" + strings.ReplaceAll(c.pair, "\x00", "/")
	}
	date, rest, _ := strings.Cut(c.key, "\x00")
	doc, seq8, _ := strings.Cut(rest, "\x00")
	return "w/" + strings.ReplaceAll(c.pair, "\x00", "/") + "/" + date + "/" + doc + "/" + strconv.FormatUint(ledger.U64([]byte(seq8)), 10)
}

// wholesaleRow is a post of a shop's outgoing invoice or buyer return, or
// a cancel of one (kind the document's type, with ".cancel"), dated the
// day it was made in the shop's time zone: what it moved into the shop's
// revenue (net of VAT, the credit negated) and cogs/ accounts.
type wholesaleRow struct {
	Date     storeline.Date    `json:"date"`
	Document string            `json:"document"`
	Kind     string            `json:"kind"`
	Buyer    storeline.BuyerID `json:"buyer"`
	Revenue  decimal.Decimal   `json:"revenue"`
	Cost     decimal.Decimal   `json:"cost"`
	Margin   decimal.Decimal   `json:"margin"`
}

// scanWholesale reads store's wholesale from date from to date to after
// c, limit rows at most, taking keys from *budget. No index holds a
// store's documents by date, and none may be added without a change to
// what the FSM applies: the buyers' statement rows (rcRow, by buyer,
// currency and date) name every post and cancel of a buyer's document
// that moved a receivable, with its store, dated as re-costs are, so the
// scan walks them pair by pair from the period's start (the period's
// rows of every buyer, other shops' too). cut says whether
// it stopped before the end; next is then where the next page goes on.
func scanWholesale(rt *ledger.ReplicaTxn, store storeline.StoreID, c wholesaleCursor, from, to storeline.Date, limit int, budget *int) (rows []wholesaleRow, next string, cut bool, err error) {
	rows = []wholesaleRow{}
	last := c // the last row or pair examined
	err = rt.ScanMetaFrom(rcTotal, c.pair, func(k string, _ []byte) (bool, error) {
		pair := k[len(rcTotal):]
		start := string(from)
		if pair == c.pair {
			if c.key == "" {
				return true, nil // the cursor's own pair, done
			}
			start = c.key
		}
		if *budget <= 0 {
			cut = true
			return false, nil
		}
		*budget--
		buyer, _, _ := strings.Cut(pair, "\x00")
		prefix := rcRow + pair + "\x00"
		err := rt.ScanMetaFrom(prefix, start, func(k string, v []byte) (bool, error) {
			key := k[len(prefix):]
			if date, _, _ := strings.Cut(key, "\x00"); storeline.Date(date) > to {
				return false, nil
			}
			if pair == c.pair && key == c.key {
				return true, nil // the cursor's own row
			}
			if *budget <= 0 {
				cut = true
				return false, nil
			}
			var sr recvRow
			if err := msgpack.Unmarshal(v, &sr); err != nil {
				return false, fmt.Errorf("receivable row %q: %w", k, err)
			}
			cancel := false
			switch sr.Type {
			case rowInvoice, rowReturn:
			case rowInvoiceCancel, rowReturnCancel:
				cancel = true
			default:
				sr.Store = "" // a payment's or a transfer's: not a sale
			}
			if sr.Store == store {
				if len(rows) >= limit {
					cut = true
					return false, nil
				}
				rec, ok, err := getDoc(rt, sr.ID)
				if err != nil {
					return false, err
				}
				if !ok {
					return false, fmt.Errorf("receivable row %q: no document %s", k, sr.ID)
				}
				rows = append(rows, newWholesaleRow(rec, cancel, storeline.BuyerID(buyer), sr.Date))
			}
			*budget--
			last = wholesaleCursor{pair, key}
			return true, nil
		})
		if err != nil || cut {
			return false, err
		}
		last = wholesaleCursor{pair: pair}
		return true, nil
	})
	return rows, last.String(), cut, err
}

// newWholesaleRow is the wholesale row of rec's post, or of its cancel
// (what it booked on revenue and cogs is the post's negated:
// storeline.CancelDocument sweeps only stock value to variance).
func newWholesaleRow(rec *docRecord, cancel bool, buyer storeline.BuyerID, date storeline.Date) wholesaleRow {
	d := &rec.Doc
	row := wholesaleRow{Date: date, Document: d.ID, Kind: string(d.Type), Buyer: buyer}
	ps := rec.Postings
	if cancel {
		ps, row.Kind = storeline.CancelPostings(ps), row.Kind+".cancel"
	}
	revenue, cogs := storeline.RevenueAccount(d.Store), "cogs/"+string(d.Store)+"/"
	for _, p := range ps {
		if _, money := p.Asset.Currency(); !money {
			continue
		}
		switch {
		case p.Account == revenue:
			row.Revenue = row.Revenue.Sub(p.Amount)
		case strings.HasPrefix(p.Account, cogs):
			row.Cost = row.Cost.Add(p.Amount)
		}
	}
	row.Margin = row.Revenue.Sub(row.Cost)
	return row
}

// recostRow is an amount a document moved into a shop's cogs/<store>/<item>
// other than a sale's cost: an invoice's, a transfer receipt's or a
// production's re-cost of units sold short (storeline recostShort), or its
// cancel's (negative), dated the day it was posted in the shop's time
// zone.
type recostRow struct {
	Date     storeline.Date   `json:"date" msgpack:"d"`
	Document string           `json:"document" msgpack:"r"`
	Kind     string           `json:"kind" msgpack:"k"`
	Item     storeline.ItemID `json:"item" msgpack:"i"`
	Cost     decimal.Decimal  `json:"cost" msgpack:"c"`
}

// exciseRow is one movement of an excise item in a shop's stock.
type exciseRow struct {
	Date   storeline.Date   `json:"date" msgpack:"d"`
	Source string           `json:"source" msgpack:"s"` // "document" or "event"
	Ref    string           `json:"ref" msgpack:"r"`
	Kind   string           `json:"kind" msgpack:"k"`
	Item   storeline.ItemID `json:"item" msgpack:"i"`
	Qty    decimal.Decimal  `json:"qty" msgpack:"q"` // + into the shop's stock, − out of it
	Serial string           `json:"serial,omitempty" msgpack:"n,omitempty"`
}

func dateParam(r *http.Request, name string) (storeline.Date, error) {
	s := r.URL.Query().Get(name)
	d, err := storeline.ParseDate(name, s)
	if err != nil {
		return "", errMalformed(name, "%v", errMessage(err))
	}
	return d, nil
}

// dateRange reads the business dates from and to (inclusive) of a
// report's query; to before from is refused naming to.
func dateRange(r *http.Request) (from, to storeline.Date, err error) {
	if from, err = dateParam(r, "from"); err != nil {
		return "", "", err
	}
	if to, err = dateParam(r, "to"); err != nil {
		return "", "", err
	}
	if to < from {
		return "", "", errMalformed("to", "%s is before from %s", to, from)
	}
	return from, to, nil
}

// maxExciseDays bounds the dates one excise journal request covers: its
// rows are read per date.
const maxExciseDays = 400

// getExcise answers the excise journal of a shop for business dates from
// to to (inclusive), a page at a time: every movement of an excise item
// in its stock, from documents head office posted or cancelled and from
// the shop's own events, in date order (then in the order central
// applied them), with the page's total per item: units received (in)
// and gone (out), a document's cancel netted in its document's column.
// Its rows are the index boExciseRow, read date by date.
func (n *Node) getExcise(w http.ResponseWriter, r *http.Request) error {
	store, err := storeParam(r)
	if err != nil {
		return err
	}
	from, to, err := dateRange(r)
	if err != nil {
		return err
	}
	ft, _ := time.Parse("2006-01-02", string(from))
	tt, _ := time.Parse("2006-01-02", string(to))
	if tt.Sub(ft) >= maxExciseDays*24*time.Hour { // from and to both count
		return errMalformed("to", "%s..%s spans more than %d days", from, to, maxExciseDays)
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	// The cursor is date/n: the last row's date and number.
	afterDate, afterN := from, int64(0)
	if s := r.URL.Query().Get("after"); s != "" {
		d, ns, ok := strings.Cut(s, "/")
		var err error
		if ok {
			afterDate, err = storeline.ParseDate("after", d)
			if err == nil {
				var u uint64
				u, err = strconv.ParseUint(ns, 10, 63)
				afterN = int64(u)
			}
		}
		if !ok || err != nil || afterDate < from {
			return errMalformed("after", "%q: want date/n, as a page's next gives it", s)
		}
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	rows := []exciseRow{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		ok, err := rt.GetMaster(storeline.KindStore, string(store), nil)
		if err != nil {
			return err
		}
		if !ok {
			// A store removed from the master data keeps its journal:
			// known while it has rows, or pushed events (as for margin).
			cnt, err := readCount(rt, boExcise+string(store))
			if err != nil {
				return err
			}
			ms, err := marks(rt, store)
			if err != nil {
				return err
			}
			if cnt == 0 && len(ms) == 0 {
				return unknownStore("central.excise", store)
			}
		}
		scanned := 0
		day, _ := time.Parse("2006-01-02", string(afterDate))
		for d := afterDate; d <= to && next == ""; day, d = day.AddDate(0, 0, 1), storeline.Date(day.AddDate(0, 0, 1).Format("2006-01-02")) {
			prefix := boExciseRow + string(store) + "\x00" + string(d) + "\x00"
			err := rt.ScanMeta(prefix, func(k string, v []byte) (bool, error) {
				num := int64(ledger.U64([]byte(k[len(prefix):])))
				if d == afterDate && num <= afterN {
					return true, nil
				}
				if scanned++; len(rows) == limit || scanned > maxReportScan {
					next = fmt.Sprintf("%s/%d", d, afterN)
					return false, nil
				}
				var row exciseRow
				if err := msgpack.Unmarshal(v, &row); err != nil {
					return false, fmt.Errorf("excise row %q: %w", k, err)
				}
				rows = append(rows, row)
				afterN = num
				return true, nil
			})
			if err != nil {
				return err
			}
			if next == "" {
				afterN = 0
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	totals := map[storeline.ItemID]map[string]decimal.Decimal{}
	for _, r := range rows {
		t := totals[r.Item]
		if t == nil {
			t = map[string]decimal.Decimal{"in": decimal.Zero, "out": decimal.Zero}
			totals[r.Item] = t
		}
		// A document's cancel takes its units back out of the column
		// its document put them in: a cancelled invoice was never
		// received, nor a cancelled write-off's bottles gone.
		if r.Qty.IsPositive() != strings.HasSuffix(r.Kind, ".cancel") {
			t["in"] = t["in"].Add(r.Qty)
		} else {
			t["out"] = t["out"].Sub(r.Qty)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"store": store, "from": from, "to": to, "movements": rows, "totals": totals,
		"more": next != "", "next": next})
	return nil
}

// getSerialConflicts answers, a page at a time in serial order, the
// serials of marked goods sold (or written off, or returned to the
// supplier) more times than they were returned, over every shop's
// receipts and returns central holds and the documents it posted (a
// serial sold in two shops while one was offline), with each shop's
// counts. They are the index boConflict, kept as events and documents are
// applied.
func (n *Node) getSerialConflicts(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	after := r.URL.Query().Get("after")
	if err := n.readConsistency(r); err != nil {
		return err
	}
	out := []any{}
	next := ""
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		scanned := 0
		// Seek to the cursor (its own key is skipped below).
		return rt.ScanMetaFrom(boConflict, after, func(k string, _ []byte) (bool, error) {
			serial := k[len(boConflict):]
			if serial <= after {
				return true, nil
			}
			if scanned++; len(out) == limit || scanned > maxReportScan {
				next = after
				return false, nil
			}
			net, err := readCount(rt, boSerialNet+serial)
			if err != nil {
				return false, err
			}
			shops := []any{}
			prefix := boSerial + serial + "\x00"
			if err := rt.ScanMeta(prefix, func(k string, v []byte) (bool, error) {
				var row serialRow
				if err := msgpack.Unmarshal(v, &row); err != nil {
					return false, fmt.Errorf("serial %q: %w", k, err)
				}
				shops = append(shops, map[string]any{"store": k[len(prefix):], "sold": row.Sold, "returned": row.Returned})
				return true, nil
			}); err != nil {
				return false, err
			}
			out = append(out, map[string]any{"serial": serial, "net": net, "stores": shops})
			after = serial
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"conflicts": out, "next": next})
	return nil
}

// The back office's indexes, kept at apply time so reports and metrics
// read what they need instead of scanning the journals: the serials of
// marked goods (per serial and store: sold, returned; the serials whose
// net count is above one), the count of excise movements per store, the
// (store, item) positions whose stock is below zero, and the count of
// documents per status and type. They are FSM state, written in the
// entries that change what they index, so every replica holds the same.
//
// State written before they existed has none: the first entry that needs
// them (boIdx absent) builds them from the stored events, documents and
// balances, and queues every store's uncosted sales for cost of sales
// (backoffice_cogs.go), so that from then on a store's queued cursor is
// also the end of what the indexes hold of its events.
const (
	boIdx       = "bo/ix/v"     // → "1" once built
	boSerial    = "bo/ix/ser/"  // serial \0 store → msgpack serialRow
	boSerialNet = "bo/ix/sern/" // serial → net count over every store (decimal string)
	boConflict  = "bo/ix/serc/" // serial → "" while its net count is above one
	boConflicts = "bo/ix/sercn" // → the number of boConflict keys (decimal string)
	boExcise    = "bo/ix/exc/"  // store → excise movements of its journal (decimal string)
	boExciseRow = "bo/ix/exr/"  // store \0 date \0 n8 → msgpack exciseRow, n its number in boExcise
	boNeg       = "bo/ix/neg/"  // store \0 item → "" while the store's stock of item is below zero
	boNegN      = "bo/ix/negn/" // store → the number of its boNeg keys (decimal string)
	boDocN      = "bo/ix/doc/"  // status \0 type → documents in that status (decimal string)
	// The re-costs documents moved into a store's cogs/ accounts, for
	// the margin report. State whose indexes were built before these
	// existed has none: boRecostV absent, the first entry that opens the
	// indexes adds them from the stored documents (openIndex).
	// A row's key names what made it, so rows indexed live and rebuilt
	// are the same keys whatever order they were indexed in.
	boRecostRow = "bo/ix/rcr/" // store \0 date \0 document \0 kind \0 item → msgpack recostRow
	boRecostV   = "bo/ix/rcv"  // → "1" once the re-cost rows are built
)

type serialRow struct {
	Sold     int64 `msgpack:"s"`
	Returned int64 `msgpack:"r"`
}

type storeItem struct {
	store storeline.StoreID
	item  storeline.ItemID
}

// boIndex updates the indexes within one entry.
type boIndex struct {
	tx      *Tx
	items   map[storeline.ItemID]bool // excise flag by item
	touched map[storeItem]bool        // stock positions to recheck
	counts  map[string]int64          // counter key → delta
	// stock, when not nil, is a book of one store's stock balances as
	// the entry stands at flush (recheckBook).
	stock *txBook
}

// openIndex returns the entry's index updater, building the indexes
// first if the state has none.
func openIndex(tx *Tx) (*boIndex, error) {
	ix := &boIndex{tx: tx, items: map[storeline.ItemID]bool{}, touched: map[storeItem]bool{}, counts: map[string]int64{}}
	v, err := tx.Meta(boIdx)
	if err != nil {
		return ix, err
	}
	if v == nil {
		return ix, ix.rebuild()
	}
	if v, err = tx.Meta(boRecostV); err != nil || v != nil {
		return ix, err
	}
	return ix, ix.rebuildRecosts()
}

// rebuildRecosts adds the re-cost rows of the stored documents to
// indexes built before they existed (the other indexes are there).
func (ix *boIndex) rebuildRecosts() error {
	rt := ix.tx.ReplicaTxn
	err := rt.ScanMeta(boDoc, func(_ string, v []byte) (bool, error) {
		var rec docRecord
		if err := msgpack.Unmarshal(v, &rec); err != nil {
			return false, err
		}
		if rec.PostedMs != 0 {
			if err := ix.docRecosts(&rec.Doc, rec.Postings, string(rec.Doc.Type), rec.PostedMs); err != nil {
				return false, err
			}
		}
		if rec.CancelledMs != 0 {
			if err := ix.docRecosts(&rec.Doc, storeline.CancelPostings(rec.Postings), string(rec.Doc.Type)+".cancel", rec.CancelledMs); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return rt.SetMeta(boRecostV, []byte("1"))
}

func (ix *boIndex) count(key string, d int64) { ix.counts[key] += d }

func readCount(rt *ledger.ReplicaTxn, key string) (int64, error) {
	v, err := rt.Meta(key)
	if err != nil || v == nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	return n, nil
}

func writeCount(rt *ledger.ReplicaTxn, key string, n int64) error {
	if n == 0 {
		return rt.SetMeta(key, nil)
	}
	return rt.SetMeta(key, []byte(strconv.FormatInt(n, 10)))
}

func (ix *boIndex) excise(id storeline.ItemID) (bool, error) {
	if v, ok := ix.items[id]; ok {
		return v, nil
	}
	var it storeline.Item
	ok, err := ix.tx.GetMaster(storeline.KindItem, string(id), &it)
	if err != nil {
		return false, err
	}
	ix.items[id] = ok && it.Excise
	return ix.items[id], nil
}

// stockItem names the store and item of a posting of units on a stock
// account (stock/<store>/<dept>/<item>).
func stockItem(p *storeline.Posting) (storeItem, bool) {
	rest, ok := strings.CutPrefix(p.Account, "stock/")
	if !ok {
		return storeItem{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || p.Asset != storeline.ItemAsset(storeline.ItemID(parts[2])) {
		return storeItem{}, false
	}
	return storeItem{storeline.StoreID(parts[0]), storeline.ItemID(parts[2])}, true
}

// serialQty is a sale line's serial and units.
type serialQty struct {
	serial string
	qty    decimal.Decimal
}

// postings indexes the stock postings of an event or a document: the
// positions they touch, and the rows of journal's excise journal (the
// movements of excise items on its own stock), each row as row with its
// item and quantity. A posting on a stock account that serials lists
// (a sale's lines with serials, by account) is one row per serial, with
// its line's units, and a row of the units left without one.
func (ix *boIndex) postings(journal storeline.StoreID, ps []storeline.Posting, row exciseRow, serials map[string][]serialQty) error {
	for i := range ps {
		si, ok := stockItem(&ps[i])
		if !ok {
			continue
		}
		ix.touched[si] = true
		if si.store != journal {
			continue
		}
		ex, err := ix.excise(si.item)
		if err != nil {
			return err
		}
		if !ex {
			continue
		}
		left := ps[i].Amount
		for _, s := range serials[ps[i].Account] {
			r := row
			r.Item, r.Qty, r.Serial = si.item, s.qty, s.serial
			if ps[i].Amount.IsNegative() {
				r.Qty = s.qty.Neg()
			}
			left = left.Sub(r.Qty)
			if err := ix.exciseRow(journal, &r); err != nil {
				return err
			}
		}
		if len(serials[ps[i].Account]) == 0 || !left.IsZero() {
			r := row
			r.Item, r.Qty = si.item, left
			if err := ix.exciseRow(journal, &r); err != nil {
				return err
			}
		}
	}
	return nil
}

// exciseRow adds a row to store's excise journal, numbered by boExcise.
func (ix *boIndex) exciseRow(store storeline.StoreID, r *exciseRow) error {
	rt := ix.tx.ReplicaTxn
	n, err := readCount(rt, boExcise+string(store))
	if err != nil {
		return err
	}
	n++
	if err := writeCount(rt, boExcise+string(store), n); err != nil {
		return err
	}
	enc, err := msgpack.Marshal(r)
	if err != nil {
		return err
	}
	return rt.SetMeta(boExciseRow+string(store)+"\x00"+string(r.Date)+"\x00"+string(ledger.PutU64(uint64(n))), enc)
}

// serial adds to a serial's counts at store.
func (ix *boIndex) serial(serial string, store storeline.StoreID, sold, returned int64) error {
	rt := ix.tx.ReplicaTxn
	k := boSerial + serial + "\x00" + string(store)
	var row serialRow
	if v, err := rt.Meta(k); err != nil {
		return err
	} else if v != nil {
		if err := msgpack.Unmarshal(v, &row); err != nil {
			return fmt.Errorf("serial %q: %w", k, err)
		}
	}
	row.Sold += sold
	row.Returned += returned
	var err error
	if row == (serialRow{}) {
		err = rt.SetMeta(k, nil)
	} else {
		var enc []byte
		if enc, err = msgpack.Marshal(&row); err == nil {
			err = rt.SetMeta(k, enc)
		}
	}
	if err != nil {
		return err
	}
	net, err := readCount(rt, boSerialNet+serial)
	if err != nil {
		return err
	}
	was, now := net > 1, net+sold-returned > 1
	if err := writeCount(rt, boSerialNet+serial, net+sold-returned); err != nil {
		return err
	}
	switch {
	case now && !was:
		ix.count(boConflicts, 1)
		return rt.SetMeta(boConflict+serial, []byte{})
	case was && !now:
		ix.count(boConflicts, -1)
		return rt.SetMeta(boConflict+serial, nil)
	}
	return nil
}

// event indexes a shop's event as it is applied (ps its postings).
func (ix *boIndex) event(store storeline.StoreID, w *replication.WireEvent, ps []storeline.Posting) error {
	// Decoding a body is most of an event's cost and only sales' lines
	// carry serials; the field is named only when set (omitempty), so a
	// body without the name has none.
	var serials map[string][]serialQty
	if isSale(w.Kind) && bytes.Contains(w.Body, []byte("Serial")) {
		body, err := storeline.NewBody(storeline.EventKind(w.Kind))
		if err != nil {
			return err
		}
		if err := msgpack.Unmarshal(w.Body, body); err != nil {
			return fmt.Errorf("event %s %d/%d body: %w", store, w.Epoch, w.Seq, err)
		}
		var lines []storeline.Line
		sold := int64(1)
		switch b := body.(type) {
		case *storeline.Receipt:
			lines = b.Lines
		case *storeline.Return:
			lines, sold = b.Lines, 0
		}
		serials = map[string][]serialQty{}
		for _, l := range lines {
			if l.Serial != "" {
				acct := storeline.StockAccount(store, l.Dept, l.Item)
				serials[acct] = append(serials[acct], serialQty{l.Serial, l.Qty})
				if err := ix.serial(l.Serial, store, sold, 1-sold); err != nil {
					return err
				}
			}
		}
	}
	row := exciseRow{Date: storeline.Date(w.Date), Source: "event", Ref: storeline.EventID(w.ID).String(), Kind: w.Kind}
	return ix.postings(store, ps, row, serials)
}

func docCountKey(status storeline.DocStatus, t storeline.DocType) string {
	return boDocN + string(status) + "\x00" + string(t)
}

// docCreated counts a new draft.
func (ix *boIndex) docCreated(d *storeline.Document) {
	ix.count(docCountKey(storeline.DocDraft, d.Type), 1)
}

// leavesChain says what posting a document of type t does to its marked
// goods' serials, as serial counts them: sold, taken out of the chain as
// surely as by a till's sale (a later sale of the serial conflicts), by a
// write-off, a return to the supplier or a sale on account; returned,
// back in the chain as by a till's return, by a buyer's return.
func leavesChain(t storeline.DocType) (sold, returned int64) {
	switch t {
	case storeline.DocWriteOff, storeline.DocSupplierReturn, storeline.DocOutgoingInvoice:
		return 1, 0
	case storeline.DocBuyerReturn:
		return 0, 1
	}
	return 0, 0
}

// docPosted indexes a document posted (cancel false) with postings ps,
// or cancelled with ps the postings negated, at ms (Unix ms).
func (ix *boIndex) docPosted(rec *docRecord, cancel bool, ps []storeline.Posting, ms int64) error {
	d := &rec.Doc
	from, to, sign, kind := storeline.DocDraft, storeline.DocPosted, int64(1), string(d.Type)
	if cancel {
		from, to, sign, kind = storeline.DocPosted, storeline.DocCancelled, -1, kind+".cancel"
	}
	ix.count(docCountKey(from, d.Type), -1)
	ix.count(docCountKey(to, d.Type), 1)
	if err := ix.docPostings(d, ps, kind, ms); err != nil {
		return err
	}
	if sold, returned := leavesChain(d.Type); sold != 0 || returned != 0 {
		for _, l := range d.Lines {
			if l.Serial != "" {
				if err := ix.serial(l.Serial, d.Store, sign*sold, sign*returned); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// docPostings indexes a document's postings, dated at ms in its store's
// time zone: its excise movements and its re-costs.
func (ix *boIndex) docPostings(d *storeline.Document, ps []storeline.Posting, kind string, ms int64) error {
	date, err := ix.docDate(d, ms)
	if err != nil {
		return err
	}
	row := exciseRow{Date: date, Source: "document", Ref: d.ID, Kind: kind}
	if err := ix.postings(d.Store, ps, row, nil); err != nil {
		return err
	}
	return ix.recosts(d, ps, kind, date)
}

// docDate is the business date of ms in d's store's time zone (UTC for a
// store no longer in the master data).
func (ix *boIndex) docDate(d *storeline.Document, ms int64) (storeline.Date, error) {
	b := &txBook{rt: ix.tx.ReplicaTxn}
	loc := time.UTC
	if st, ok := b.Store(d.Store); ok {
		l, err := st.Location()
		if err != nil {
			return "", err
		}
		loc = l
	} else if b.err != nil {
		return "", b.err
	}
	return storeline.DateOf(time.UnixMilli(ms), loc), nil
}

// docRecosts indexes only the re-costs of a document's postings.
func (ix *boIndex) docRecosts(d *storeline.Document, ps []storeline.Posting, kind string, ms int64) error {
	date, err := ix.docDate(d, ms)
	if err != nil {
		return err
	}
	return ix.recosts(d, ps, kind, date)
}

// recosts adds a row per posting of ps on a cogs/<store>/<item> account
// (a document's cost of sales is only ever a re-cost, never a sale's).
func (ix *boIndex) recosts(d *storeline.Document, ps []storeline.Posting, kind string, date storeline.Date) error {
	// One row per account: two lines of an item (two batches on one
	// invoice) each re-cost, and the row's key names the item only.
	sums := map[string]decimal.Decimal{}
	var order []string
	for _, p := range ps {
		rest, ok := strings.CutPrefix(p.Account, "cogs/")
		if !ok || !strings.HasPrefix(string(p.Asset), "cur:") || p.Amount.IsZero() || !strings.Contains(rest, "/") {
			continue
		}
		if _, seen := sums[rest]; !seen {
			order = append(order, rest)
		}
		sums[rest] = sums[rest].Add(p.Amount)
	}
	rt := ix.tx.ReplicaTxn
	for _, rest := range order {
		if sums[rest].IsZero() {
			continue
		}
		store, item, _ := strings.Cut(rest, "/")
		enc, err := msgpack.Marshal(&recostRow{Date: date, Document: d.ID, Kind: kind, Item: storeline.ItemID(item), Cost: sums[rest]})
		if err != nil {
			return err
		}
		if err := rt.SetMeta(boRecostRow+store+"\x00"+string(date)+"\x00"+d.ID+"\x00"+kind+"\x00"+item, enc); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the counters and rechecks the stock positions touched.
func (ix *boIndex) flush() error {
	rt := ix.tx.ReplicaTxn
	sis := make([]storeItem, 0, len(ix.touched))
	for si := range ix.touched {
		sis = append(sis, si)
	}
	sort.Slice(sis, func(i, j int) bool {
		if sis[i].store != sis[j].store {
			return sis[i].store < sis[j].store
		}
		return sis[i].item < sis[j].item
	})
	b, err := recheckBook(rt, sis, ix.stock) // backoffice_cogs.go
	ix.stock = nil
	if err != nil {
		return err
	}
	for _, si := range sis {
		st, ok := b.Store(si.store)
		if b.err != nil {
			return b.err
		}
		negative := false
		if ok {
			qty, _ := storeline.StockOf(b, st, si.item)
			if b.err != nil {
				return b.err
			}
			negative = qty.IsNegative()
		}
		k := boNeg + string(si.store) + "\x00" + string(si.item)
		marked, err := ix.tx.cache.negMark(rt, k) // backoffice_cogs.go
		if err != nil {
			return err
		}
		switch {
		case negative && !marked:
			err = rt.SetMeta(k, []byte{})
			ix.count(boNegN+string(si.store), 1)
		case !negative && marked:
			err = rt.SetMeta(k, nil)
			ix.count(boNegN+string(si.store), -1)
		}
		if err != nil {
			return err
		}
		if negative != marked {
			ix.tx.cache.wroteNeg(k, negative)
		}
	}
	ix.touched = map[storeItem]bool{}
	keys := make([]string, 0, len(ix.counts))
	for k, d := range ix.counts {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		n, err := readCount(rt, k)
		if err != nil {
			return err
		}
		if err := writeCount(rt, k, n+ix.counts[k]); err != nil {
			return err
		}
	}
	ix.counts = map[string]int64{}
	return nil
}

// rebuild builds the indexes from the stored events, documents and
// balances, and queues every store's uncosted sales.
func (ix *boIndex) rebuild() error {
	rt := ix.tx.ReplicaTxn
	var stores []storeline.StoreID
	err := rt.ScanMeta(rpEvent, func(k string, v []byte) (bool, error) {
		origin, _, ok := strings.Cut(k[len(rpEvent):], "\x00")
		if !ok || storeline.StoreID(origin) == storeline.Central {
			return true, nil
		}
		if len(stores) == 0 || stores[len(stores)-1] != storeline.StoreID(origin) {
			stores = append(stores, storeline.StoreID(origin))
		}
		var w replication.WireEvent
		if err := msgpack.Unmarshal(v, &w); err != nil {
			return false, fmt.Errorf("event %q: %w", k, err)
		}
		ps, err := wirePostings(&w)
		if err != nil {
			return false, err
		}
		return true, ix.event(storeline.StoreID(origin), &w, ps)
	})
	if err != nil {
		return err
	}
	err = rt.ScanMeta(boDoc, func(_ string, v []byte) (bool, error) {
		var rec docRecord
		if err := msgpack.Unmarshal(v, &rec); err != nil {
			return false, err
		}
		ix.count(docCountKey(rec.Status, rec.Doc.Type), 1)
		if rec.PostedMs != 0 {
			if err := ix.docPostings(&rec.Doc, rec.Postings, string(rec.Doc.Type), rec.PostedMs); err != nil {
				return false, err
			}
		}
		if rec.CancelledMs != 0 {
			if err := ix.docPostings(&rec.Doc, storeline.CancelPostings(rec.Postings), string(rec.Doc.Type)+".cancel", rec.CancelledMs); err != nil {
				return false, err
			}
		}
		if sold, returned := leavesChain(rec.Doc.Type); rec.Status == storeline.DocPosted && (sold != 0 || returned != 0) {
			for _, l := range rec.Doc.Lines {
				if l.Serial != "" {
					if err := ix.serial(l.Serial, rec.Doc.Store, sold, returned); err != nil {
						return false, err
					}
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	// Every stock position with units, not only those the events touched:
	// head office's own transfers move stock too.
	ix.touched = map[storeItem]bool{}
	err = rt.ScanMeta(rpBal+"stock/", func(k string, _ []byte) (bool, error) {
		acct, asset, ok := strings.Cut(k[len(rpBal):], "\x00")
		if ok {
			p := storeline.Posting{Account: acct, Asset: storeline.Asset(asset)}
			if si, ok := stockItem(&p); ok {
				ix.touched[si] = true
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := ix.flush(); err != nil {
		return err
	}
	for _, s := range stores {
		plan, err := planCosts(ix.tx, s, 0, nil, nil)
		if err != nil {
			return err
		}
		if err := plan.commit(ix.tx); err != nil {
			return err
		}
	}
	if err := rt.SetMeta(boRecostV, []byte("1")); err != nil {
		return err
	}
	return rt.SetMeta(boIdx, []byte("1"))
}

// expiringDays is the horizon of the expiring-batches metric.
const expiringDays = 7

// backOfficeStats is what the back-office metrics report, read from this
// node's state (so every node reports the same, up to its applied index).
type backOfficeStats struct {
	// Documents counts documents by status and type.
	Documents map[[2]string]int64
	// Per store: sales not yet costed (events after the costed cursor),
	// batches with stock expiring within expiringDays, excise journal
	// rows, stock positions below zero.
	Backlog, Expiring, Excise, Negative map[storeline.StoreID]int64
	Conflicts                           int64
}

// backOfficeStats reads the back office's figures at now (the expiry
// horizon's start).
func (n *Node) backOfficeStats(now time.Time) (*backOfficeStats, error) {
	s := &backOfficeStats{Documents: map[[2]string]int64{}, Backlog: map[storeline.StoreID]int64{},
		Expiring: map[storeline.StoreID]int64{}, Excise: map[storeline.StoreID]int64{}, Negative: map[storeline.StoreID]int64{}}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		// The stores: those in the master data and those that pushed.
		stores := map[storeline.StoreID]*storeline.Store{}
		err := rt.ScanMeta(rpStat, func(k string, _ []byte) (bool, error) {
			stores[storeline.StoreID(k[len(rpStat):])] = nil
			return true, nil
		})
		if err != nil {
			return err
		}
		if err := rt.ScanMeta(boDocN, func(k string, v []byte) (bool, error) {
			st, typ, _ := strings.Cut(k[len(boDocN):], "\x00")
			c, err := strconv.ParseInt(string(v), 10, 64)
			s.Documents[[2]string{st, typ}] = c
			return err == nil, err
		}); err != nil {
			return err
		}
		if s.Conflicts, err = readCount(rt, boConflicts); err != nil {
			return err
		}
		b := &txBook{rt: rt}
		ids := []storeline.StoreID{}
		for id := range stores {
			ids = append(ids, id)
		}
		var masters []storeline.StoreID
		if err := n.rep.ScanMaster(storeline.KindStore, "", func(rec storeline.Record) error {
			masters = append(masters, rec.(*storeline.Store).ID)
			return nil
		}); err != nil {
			return err
		}
		for _, id := range masters {
			if _, ok := stores[id]; !ok {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			from, _, err := readPosition(rt, boCogs+string(id))
			if err != nil {
				return err
			}
			ms, err := marks(rt, id)
			if err != nil {
				return err
			}
			var backlog int64
			for _, m := range ms {
				switch {
				case m.Epoch > from.Epoch:
					backlog += int64(m.Seq)
				case m.Epoch == from.Epoch && m.Seq > from.Seq:
					backlog += int64(m.Seq - from.Seq)
				}
			}
			s.Backlog[id] = backlog
			if s.Excise[id], err = readCount(rt, boExcise+string(id)); err != nil {
				return err
			}
			if s.Negative[id], err = readCount(rt, boNegN+string(id)); err != nil {
				return err
			}
			st, ok := b.Store(id)
			if b.err != nil {
				return b.err
			}
			loc := time.UTC
			if ok {
				if l, err := st.Location(); err == nil {
					loc = l
				}
			}
			until := daysAhead(now, loc, expiringDays)
			var expiring int64
			if err := rt.ScanMeta(boBatch+string(id)+"\x00", func(_ string, v []byte) (bool, error) {
				var bt storeline.Batch
				if err := msgpack.Unmarshal(v, &bt); err != nil {
					return false, err
				}
				if bt.Qty.IsPositive() && bt.Expiry != "" && bt.Expiry <= until {
					expiring++
				}
				return true, nil
			}); err != nil {
				return err
			}
			s.Expiring[id] = expiring
		}
		return nil
	})
	return s, err
}

// boDocTypes are the document types, the values of the documents
// metric's type label.
var boDocTypes = []storeline.DocType{storeline.DocIncomingInvoice, storeline.DocSupplierReturn, storeline.DocTransfer,
	storeline.DocTransferReceipt, storeline.DocStocktake, storeline.DocWriteOff, storeline.DocProduction, storeline.DocRepricing,
	storeline.DocOutgoingInvoice, storeline.DocBuyerReturn}

// daysAhead is the business date days calendar days after now's date in
// loc (not now plus 24-hour days, which a DST change moves by a day near
// midnight).
func daysAhead(now time.Time, loc *time.Location, days int) storeline.Date {
	today, _ := time.Parse(time.DateOnly, string(storeline.DateOf(now, loc)))
	return storeline.Date(today.AddDate(0, 0, days).Format(time.DateOnly))
}

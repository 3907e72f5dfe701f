package posbridge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

type shiftOpenIn struct {
	ID         storeline.EventID    `json:"id"`
	Terminal   storeline.TerminalID `json:"terminal"`
	Shift      storeline.ShiftID    `json:"shift"`
	Seller     storeline.SellerID   `json:"seller"`
	OccurredAt *time.Time           `json:"occurred_at"`
	Float      Dec                  `json:"float"`
}

type shiftOpenOut struct {
	eventHead
	Terminal storeline.TerminalID `json:"terminal"`
	Shift    storeline.ShiftID    `json:"shift"`
	Seller   storeline.SellerID   `json:"seller"`
	Currency storeline.Currency   `json:"currency"`
	Float    string               `json:"float"`
}

func (s *Server) openShift(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in shiftOpenIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if err := s.tillRefs(c, in.ID, in.Terminal, in.OccurredAt); err != nil {
		return err
	}
	if !in.Float.Set {
		return storeline.Invalidf("float", "the float (cash in the drawer at opening) is required")
	}
	// A retry is answered from the stored opening, compared by what the
	// till sent, before the session's rights are checked (its seller
	// logged out or deleted since the first try) or the store is read.
	prior, err := s.prior(in.ID, storeline.KindShiftOpen)
	if err != nil {
		return err
	}
	if prior != nil {
		return s.openRetry(w, &in, prior)
	}
	if err := s.mayPost(c, in.Seller); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	so := &storeline.ShiftOpen{Terminal: in.Terminal, Shift: in.Shift, Seller: in.Seller, Currency: st.Currency, Float: in.Float.Decimal}
	if err := so.Validate(); err != nil {
		return err
	}
	// A shift is opened once: a second opening under another id would put
	// a second float in the drawer's books that the Z report (the first
	// opening's float) never counts. Openings hold the shift's facts lock
	// for writing, so that of two racing ones the second sees the first.
	facts := s.shiftDays.factLock(in.Terminal, in.Shift)
	facts.Lock()
	defer facts.Unlock()
	tot, err := s.led.ShiftTotals(in.Terminal, in.Shift)
	if err != nil {
		return err
	}
	if tot.Opening != nil && tot.Opening.Event != in.ID {
		// Unless in.ID is stored already (a retry, answered below).
		prior, err := s.prior(in.ID, storeline.KindShiftOpen)
		if err != nil {
			return err
		}
		if prior == nil {
			return &storeline.Error{Kind: storeline.Conflict, Field: "shift", Err: fmt.Errorf("shift %s was opened by event %s", in.Shift, tot.Opening.Event)}
		}
	}
	ev, ok, err := s.appendEvent(context.WithoutCancel(r.Context()), in.ID, *in.OccurredAt, storeline.DateOf(*in.OccurredAt, loc), so)
	if errors.Is(err, storeline.Conflict) {
		// A retry racing its first try, which landed since the check
		// above: what the till sent decides, as for any retry.
		if prior, perr := s.prior(in.ID, storeline.KindShiftOpen); perr == nil && prior != nil {
			return s.openRetry(w, &in, prior)
		}
	}
	if err == nil {
		err = sameOccurredAt(ev, ok, *in.OccurredAt)
	}
	if err != nil {
		return err
	}
	writeJSON(w, created(ok), shiftOpenOf(ev, ev.Body.(*storeline.ShiftOpen)))
	return nil
}

// openRetry answers a shift opening whose ID is stored as prior: the
// stored opening if the till sent the same, else a conflict naming id.
func (s *Server) openRetry(w http.ResponseWriter, in *shiftOpenIn, prior *storeline.Event) error {
	p := prior.Body.(*storeline.ShiftOpen)
	var f string
	switch {
	case in.Terminal != p.Terminal:
		f = "terminal"
	case in.Shift != p.Shift:
		f = "shift"
	case in.Seller != p.Seller:
		f = "seller"
	case !in.OccurredAt.Equal(prior.OccurredAt):
		f = "occurred_at"
	case !in.Float.Decimal.Equal(p.Float):
		f = "float"
	}
	if f != "" {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("shift opening %s is stored with another %s", in.ID, f)}
	}
	writeJSON(w, http.StatusOK, shiftOpenOf(*prior, p))
	return nil
}

func shiftOpenOf(ev storeline.Event, b *storeline.ShiftOpen) shiftOpenOut {
	return shiftOpenOut{
		eventHead: headOf(ev), Terminal: b.Terminal, Shift: b.Shift, Seller: b.Seller,
		Currency: b.Currency, Float: money(b.Currency, b.Float),
	}
}

type shiftCloseIn struct {
	ID          *storeline.EventID `json:"id,omitempty"`
	CountedCash Dec                `json:"counted_cash"`
}

type tenderOut struct {
	Method storeline.PayMethod `json:"method"`
	Count  int                 `json:"count"`
	Amount string              `json:"amount"`
}

type zReportOut struct {
	Currency     storeline.Currency `json:"currency"`
	Receipts     int                `json:"receipts"`
	Returns      int                `json:"returns"`
	Sales        string             `json:"sales"`
	Refunds      string             `json:"refunds"`
	Tenders      []tenderOut        `json:"tenders"`
	Float        string             `json:"float"`
	CashIn       string             `json:"cash_in"`
	CashOut      string             `json:"cash_out"`
	ExpectedCash string             `json:"expected_cash"`
	CountedCash  *string            `json:"counted_cash,omitempty"`
	Difference   *string            `json:"difference,omitempty"`
}

type shiftCloseOut struct {
	eventHead
	Terminal   storeline.TerminalID `json:"terminal"`
	Shift      storeline.ShiftID    `json:"shift"`
	Seller     storeline.SellerID   `json:"seller"`
	Report     zReportOut           `json:"report"`
	AfterClose *afterCloseOut       `json:"after_close,omitempty"`
}

// afterCloseOut is what was stored in a shift after its close, so is in
// no Z report: receipts a till sent late (a sale that happened is never
// refused) and returns.
type afterCloseOut struct {
	Receipts int    `json:"receipts"`
	Returns  int    `json:"returns"`
	Sales    string `json:"sales"`
	Refunds  string `json:"refunds"`
	Cash     string `json:"cash"` // what the cash tender took, net of change and refunds
}

// countAfterClose counts a receipt or return just stored (its shift's
// facts lock held) if its shift is closed already. It reads no ledger: a
// read there waits for the applier (ledger, commit.go invariant 2), which
// every receipt's answer would then wait for too. The shifts seen closed
// are remembered instead (shiftDays.closed): at their close here, and
// when businessDate first reads their totals.
func (s *Server) countAfterClose(term storeline.TerminalID, shift storeline.ShiftID, kind string) {
	if s.shiftDays.isClosed(shiftKey{term, shift}) {
		s.m.afterClose.WithLabelValues(kind).Inc()
		s.log.Warn("posbridge: "+kind+" stored in a closed shift: in no Z report", "terminal", term, "shift", shift)
	}
}

// closeAnswer answers a stored close (a retry) as made, with what was
// stored in its shift since (after_close).
func (s *Server) closeAnswer(w http.ResponseWriter, ev storeline.Event, b *storeline.ShiftClose) error {
	out := shiftCloseOf(ev, b)
	tot, err := s.led.ShiftTotals(b.Terminal, b.Shift)
	if err != nil {
		return err
	}
	z, cur := b.Report, b.Report.Currency
	if now := tot.Report(cur); now.Receipts > z.Receipts || now.Returns > z.Returns {
		cash := func(ts []storeline.TenderTotal) decimal.Decimal {
			for _, t := range ts {
				if t.Method == storeline.Cash {
					return t.Amount
				}
			}
			return decimal.Zero
		}
		out.AfterClose = &afterCloseOut{
			Receipts: now.Receipts - z.Receipts, Returns: now.Returns - z.Returns,
			Sales: money(cur, now.Sales.Sub(z.Sales)), Refunds: money(cur, now.Refunds.Sub(z.Refunds)),
			Cash: money(cur, cash(now.Tenders).Sub(cash(z.Tenders))),
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func shiftCloseOf(ev storeline.Event, b *storeline.ShiftClose) shiftCloseOut {
	z := b.Report
	c := z.Currency
	out := zReportOut{
		Currency: c, Receipts: z.Receipts, Returns: z.Returns, Sales: money(c, z.Sales), Refunds: money(c, z.Refunds),
		Tenders: []tenderOut{}, Float: money(c, z.Float), CashIn: money(c, z.CashIn), CashOut: money(c, z.CashOut),
		ExpectedCash: money(c, z.ExpectedCash),
	}
	for _, t := range z.Tenders {
		out.Tenders = append(out.Tenders, tenderOut{Method: t.Method, Count: t.Count, Amount: money(c, t.Amount)})
	}
	if b.CountedCash != nil {
		cc, d := money(c, *b.CountedCash), money(c, z.Difference)
		out.CountedCash, out.Difference = &cc, &d
	}
	return shiftCloseOut{eventHead: headOf(ev), Terminal: b.Terminal, Shift: b.Shift, Seller: b.Seller, Report: out}
}

// sameClose refuses a retry under id of the stored close b that asks for
// another close: of another shift or terminal, or with another count.
// Another terminal's close is named as such only: nothing of it (its
// shift, its count) is told to a till that did not make it.
func sameClose(id storeline.EventID, b *storeline.ShiftClose, term storeline.TerminalID, shift storeline.ShiftID, counted *decimal.Decimal) error {
	if b.Terminal != term {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("id %s closed a shift at another terminal", id)}
	}
	if b.Shift != shift {
		return &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf("id %s closed shift %s at %s", id, b.Shift, b.Terminal)}
	}
	if (counted == nil) != (b.CountedCash == nil) || counted != nil && !counted.Equal(*b.CountedCash) {
		was := "none"
		if b.CountedCash != nil {
			was = b.CountedCash.String()
		}
		return &storeline.Error{Kind: storeline.Conflict, Field: "counted_cash", Err: fmt.Errorf("close %s counted %s", id, was)}
	}
	return nil
}

// closeShift reads the shift's Z report from the ledger's running totals
// of this terminal and shift (kept with each event, so the cost does not
// grow with the journal) and appends it as a shift close.
func (s *Server) closeShift(w http.ResponseWriter, r *http.Request, c *caller) error {
	shift := storeline.ShiftID(r.PathValue("id"))
	if err := storeline.CheckID("shift", string(shift)); err != nil {
		return err
	}
	var in shiftCloseIn
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	st, loc, err := s.store()
	if err != nil {
		return err
	}
	cur := st.Currency
	// Checked before a retry is answered: a retry is the same close only
	// with the same count, and a malformed one is refused as such.
	var counted *decimal.Decimal
	if in.CountedCash.Set {
		v, err := cur.Amount("counted_cash", in.CountedCash.Decimal)
		if err != nil {
			return err
		}
		if v.IsNegative() {
			return storeline.Invalidf("counted_cash", "counted cash %s is negative", v)
		}
		counted = &v
	}
	id := s.cfg.NewID()
	if in.ID != nil {
		if in.ID.IsZero() {
			return storeline.Invalidf("id", "the nil UUID is not an event id")
		}
		id = *in.ID
		// A retry of a close answers the close as made: the report must
		// not change because of what arrived since.
		prior, err := s.prior(id, storeline.KindShiftClose)
		if err != nil {
			return err
		}
		if prior != nil {
			b := prior.Body.(*storeline.ShiftClose)
			if err := sameClose(id, b, c.terminal.ID, shift, counted); err != nil {
				return err
			}
			return s.closeAnswer(w, *prior, b)
		}
	}
	// A new close needs a live seller's session; a retry, answered above,
	// is answered whatever has happened to it since.
	if c.denied != nil {
		return c.denied
	}
	now := s.cfg.Now()
	oldest := storeline.Date(now.In(loc).AddDate(0, 0, -s.cfg.MaxShiftDays).Format(time.DateOnly))
	facts := s.shiftDays.factLock(c.terminal.ID, shift)
	facts.Lock()
	defer facts.Unlock()
	tot, err := s.led.ShiftTotals(c.terminal.ID, shift)
	if err != nil {
		return err
	}
	if tot.Close != nil && storeline.EventID(tot.Close.Event) == id {
		// This very close landed since the retry check above (a retry
		// racing its first try): answer it as made.
		if prior, err := s.prior(id, storeline.KindShiftClose); err != nil || prior != nil {
			if err != nil {
				return err
			}
			b := prior.Body.(*storeline.ShiftClose)
			if err := sameClose(id, b, c.terminal.ID, shift, counted); err != nil {
				return err
			}
			return s.closeAnswer(w, *prior, b)
		}
	}
	if tot.Close != nil {
		return &storeline.Error{Kind: storeline.Conflict, Field: "shift", Err: fmt.Errorf("shift %s was closed by event %s", shift, tot.Close.Event)}
	}
	if tot.Opening == nil || tot.Opening.BusinessDate < oldest {
		return &storeline.Error{Kind: storeline.NotFound, Field: "shift", Err: fmt.Errorf("no opening of shift %s at terminal %s in the last %d days", shift, c.terminal.ID, s.cfg.MaxShiftDays)}
	}
	z := tot.Report(cur)
	seller := tot.Opening.Seller
	if c.session != nil {
		seller = c.session.seller
	}
	sc := &storeline.ShiftClose{Terminal: c.terminal.ID, Shift: shift, Seller: seller, Report: z}
	if counted != nil {
		sc.CountedCash = counted
		sc.Report.Difference = counted.Sub(z.ExpectedCash)
	}
	// A shift belongs to the business day it opened (DESIGN.md).
	// The ledger refuses a second close of the shift in the same step that
	// appends the first (a Conflict naming the field "shift"), so of racing
	// closes one wins. A retry of the winner's id that raced it gets the
	// stored close: deduplicated by the ledger if its report is the same,
	// read back here if the shift changed in between.
	// Not cancelled with the till's request: the shift's facts wait for
	// the close's outcome.
	ev, ok, err := s.appendEvent(context.WithoutCancel(r.Context()), id, now, tot.Opening.BusinessDate, sc)
	if errors.Is(err, storeline.Conflict) {
		if in.ID != nil {
			prior, perr := s.prior(id, storeline.KindShiftClose)
			if perr == nil && prior != nil {
				b := prior.Body.(*storeline.ShiftClose)
				if err := sameClose(id, b, c.terminal.ID, shift, counted); err != nil {
					return err
				}
				return s.closeAnswer(w, *prior, b)
			}
		}
		return err // naming the shift (closed by another event) or the id (appendEvent)
	}
	if err != nil {
		return err
	}
	s.shiftDays.markClosed(shiftKey{c.terminal.ID, shift})
	writeJSON(w, created(ok), shiftCloseOf(ev, ev.Body.(*storeline.ShiftClose)))
	return nil
}

// maxShiftDays bounds the shift openings businessDate remembers; past it
// the memory starts over (a miss reads the ledger).
const maxShiftDays = 4096

// shiftDays remembers the business date each shift opened on.
type shiftDays struct {
	// facts are striped by shift: a receipt, return or cash operation
	// holds its shift's for reading across its append; an opening or a
	// close for writing from its read of the shift's totals to its
	// append, so that no fact lands between the two (it would be in the
	// shift and in no Z report) and of two racing openings the second
	// sees the first.
	facts [64]sync.RWMutex

	mu sync.Mutex
	m  map[shiftKey]storeline.Date
	// closed holds the shifts seen closed (countAfterClose); it starts
	// over with m, so a shift forgotten here is read again.
	closed map[shiftKey]bool
}

type shiftKey struct {
	term  storeline.TerminalID
	shift storeline.ShiftID
}

// factLock is the stripe of shift's facts at term.
func (d *shiftDays) factLock(term storeline.TerminalID, shift storeline.ShiftID) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(term))
	h.Write([]byte{0})
	h.Write([]byte(shift))
	return &d.facts[h.Sum32()%uint32(len(d.facts))]
}

func (d *shiftDays) get(k shiftKey) (storeline.Date, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[k]
	return v, ok
}

func (d *shiftDays) put(k shiftKey, date storeline.Date) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startOver()
	d.m[k] = date
}

func (d *shiftDays) markClosed(k shiftKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startOver()
	d.closed[k] = true
}

func (d *shiftDays) isClosed(k shiftKey) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed[k]
}

// startOver forgets both memories once either is full (or at first use);
// d.mu is held.
func (d *shiftDays) startOver() {
	if d.m == nil || len(d.m) >= maxShiftDays || len(d.closed) >= maxShiftDays {
		d.m = map[shiftKey]storeline.Date{}
		d.closed = map[shiftKey]bool{}
	}
}

// businessDate is the business date of a fact of a till's shift that
// happened at at (DESIGN.md: a shift that crosses midnight belongs to the
// day it opened): the day the shift opened, else, for a shift this node
// holds no opening of (a till that opened it offline elsewhere, or never),
// at's date in the store's zone.
func (s *Server) businessDate(term storeline.TerminalID, shift storeline.ShiftID, at time.Time, loc *time.Location) (storeline.Date, error) {
	k := shiftKey{term, shift}
	if d, ok := s.shiftDays.get(k); ok {
		return d, nil
	}
	tot, err := s.led.ShiftTotals(term, shift)
	if err != nil {
		return "", err
	}
	if tot.Close != nil {
		s.shiftDays.markClosed(k)
	}
	if tot.Opening == nil || tot.Opening.BusinessDate == "" {
		return storeline.DateOf(at, loc), nil
	}
	s.shiftDays.put(k, tot.Opening.BusinessDate)
	return tot.Opening.BusinessDate, nil
}

package storeline

import (
	"slices"

	"github.com/shopspring/decimal"
)

// ShiftTotals is the running view of one shift at one terminal: the counts
// and sums its Z report needs, folded from the shift's events one at a time
// as they are stored. The ledger keeps one per (terminal, shift) of its own
// origin, written in the same transaction as each event, so closing a shift
// reads one record instead of scanning the journal.
//
// Fold is order-independent (sums, and the opening and close at the lowest
// journal position), so live appends, WAL replay, a restore's catch-up and
// a rebuild from the journal all give equal totals.
type ShiftTotals struct {
	Terminal TerminalID
	Shift    ShiftID
	Opening  *ShiftMark // the shift's opening, nil until one is stored
	Close    *ShiftMark // the shift's close, nil while it is open
	Receipts int
	Returns  int
	Sales    decimal.Decimal // receipts' totals
	Refunds  decimal.Decimal // returns' totals
	// Tenders are ordered by method; each is what the tender took: payments
	// minus (for cash) change, minus refunds.
	Tenders []TenderTotal
	CashIn  decimal.Decimal
	CashOut decimal.Decimal
	// Events counts the events folded in, of every kind.
	Events int
}

// ShiftMark is the event that opened or closed a shift, at its journal
// position.
type ShiftMark struct {
	Event        EventID
	Epoch, Seq   uint64
	BusinessDate Date
	Seller       SellerID
	Float        decimal.Decimal // an opening's float; zero for a close
}

func (m *ShiftMark) before(o *ShiftMark) bool {
	return m.Epoch < o.Epoch || m.Epoch == o.Epoch && m.Seq < o.Seq
}

// ShiftOf returns the terminal and shift an event body counts in, and false
// for kinds that belong to no shift.
func ShiftOf(b Body) (TerminalID, ShiftID, bool) {
	switch b := b.(type) {
	case *Receipt:
		return b.Terminal, b.Shift, true
	case *Return:
		return b.Terminal, b.Shift, true
	case *CashOp:
		return b.Terminal, b.Shift, true
	case *ShiftOpen:
		return b.Terminal, b.Shift, true
	case *ShiftClose:
		return b.Terminal, b.Shift, true
	}
	return "", "", false
}

// Fold adds one event of this shift: ev.Body is of a kind ShiftOf accepts
// and ev.Epoch, ev.Seq are the position where the event was first stored.
// Each event must be folded once (the ledger folds an event when it is
// first stored by (origin, ID)).
func (t *ShiftTotals) Fold(ev Event) {
	t.Events++
	switch b := ev.Body.(type) {
	case *Receipt:
		t.Receipts++
		t.Sales = t.Sales.Add(b.Total)
		for _, p := range b.Payments {
			tt := t.tender(p.Method)
			tt.Count++
			tt.Amount = tt.Amount.Add(p.Amount)
		}
		if !b.Change.IsZero() {
			cash := t.tender(Cash)
			cash.Amount = cash.Amount.Sub(b.Change)
		}
	case *Return:
		t.Returns++
		t.Refunds = t.Refunds.Add(b.Total)
		for _, p := range b.Refunds {
			tt := t.tender(p.Method)
			tt.Count++
			tt.Amount = tt.Amount.Sub(p.Amount)
		}
	case *CashOp:
		if b.Direction == CashIn {
			t.CashIn = t.CashIn.Add(b.Amount)
		} else {
			t.CashOut = t.CashOut.Add(b.Amount)
		}
	case *ShiftOpen:
		m := &ShiftMark{Event: ev.ID, Epoch: ev.Epoch, Seq: ev.Seq, BusinessDate: ev.BusinessDate, Seller: b.Seller, Float: b.Float}
		if t.Opening == nil || m.before(t.Opening) {
			t.Opening = m
		}
	case *ShiftClose:
		m := &ShiftMark{Event: ev.ID, Epoch: ev.Epoch, Seq: ev.Seq, BusinessDate: ev.BusinessDate, Seller: b.Seller}
		if t.Close == nil || m.before(t.Close) {
			t.Close = m
		}
	}
}

// tender returns the total of method, adding it in method order.
func (t *ShiftTotals) tender(m PayMethod) *TenderTotal {
	i, found := slices.BinarySearchFunc(t.Tenders, m, func(tt TenderTotal, m PayMethod) int {
		switch {
		case tt.Method < m:
			return -1
		case tt.Method > m:
			return 1
		}
		return 0
	})
	if !found {
		t.Tenders = slices.Insert(t.Tenders, i, TenderTotal{Method: m})
	}
	return &t.Tenders[i]
}

// Report returns the shift's Z report in currency cur (the shop's base
// currency): tenders cash first (always present), then card, points and any
// other in name order; expected cash is the float plus what the cash tender
// took plus cash in minus cash out. The caller sets Difference when the
// drawer was counted.
func (t *ShiftTotals) Report(cur Currency) ZReport {
	z := ZReport{
		Currency: cur, Receipts: t.Receipts, Returns: t.Returns,
		Sales: cur.Round(t.Sales), Refunds: cur.Round(t.Refunds),
		Float: cur.Round(decimal.Zero), CashIn: cur.Round(t.CashIn), CashOut: cur.Round(t.CashOut),
	}
	if t.Opening != nil {
		z.Float = cur.Round(t.Opening.Float)
	}
	rank := func(m PayMethod) int {
		switch m {
		case Cash:
			return 0
		case Card:
			return 1
		case Points:
			return 2
		}
		return 3
	}
	z.Tenders = append(z.Tenders, TenderTotal{Method: Cash, Amount: cur.Round(decimal.Zero)})
	for _, tt := range t.Tenders {
		tt.Amount = cur.Round(tt.Amount)
		if tt.Method == Cash {
			z.Tenders[0] = tt
			continue
		}
		z.Tenders = append(z.Tenders, tt)
	}
	slices.SortStableFunc(z.Tenders, func(a, b TenderTotal) int {
		if ra, rb := rank(a.Method), rank(b.Method); ra != rb {
			return ra - rb
		}
		if a.Method < b.Method {
			return -1
		}
		if a.Method > b.Method {
			return 1
		}
		return 0
	})
	z.ExpectedCash = z.Float.Add(z.Tenders[0].Amount).Add(z.CashIn).Sub(z.CashOut)
	return z
}

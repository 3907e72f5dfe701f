package ledger

// Shift totals: a view over the node's own events, one record per
// (terminal, shift), so that closing a shift (posbridge's Z report) reads
// one key instead of scanning the journal.
//
// Invariants:
//
//  1. The record of (terminal, shift) is the fold (storeline.ShiftTotals
//     Fold) of exactly the own-origin events of that shift stored so far,
//     each once. applyEvent folds an event in the Badger transaction that
//     first stores it by (origin, ID), on every path (Append, ApplyRemote,
//     pulled pages, WAL replay); a second copy (recCopy) folds nothing.
//  2. The live path folds the body the caller gave, whose encoding is the
//     one the WAL frame holds; replay folds the body decoded from that
//     frame. Fold is order-independent, so both, and a rebuild from the
//     journal, give equal records.
//  3. A database written before this view existed (no kViews marker, or
//     an older viewsVersion) gets it rebuilt from the journal at Open,
//     after WAL replay and before anything is served. The marker is
//     written only after the rebuilt records are synced, so a crash during
//     the rebuild makes the next Open start it again.

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// viewsVersion is the version of the derived views (the shift totals) a
// ledger keeps; Open rebuilds them when the stored marker is older.
//
// History:
//
//	1 (2026-11-29): shift totals by (terminal, shift).
const viewsVersion = 1

var kViews = []byte("xviews")

func shiftKey(term storeline.TerminalID, shift storeline.ShiftID) []byte {
	k := make([]byte, 0, 2+len(term)+len(shift))
	k = append(k, tShift)
	k = append(k, term...)
	k = append(k, 0)
	return append(k, shift...)
}

// storedShift is the storage form of storeline.ShiftTotals (without the
// terminal and shift, which are its key).
type storedShift struct {
	Opening  *storedMark     `msgpack:"o,omitempty"`
	Close    *storedMark     `msgpack:"c,omitempty"`
	Receipts int             `msgpack:"r"`
	Returns  int             `msgpack:"n"`
	Sales    decimal.Decimal `msgpack:"s"`
	Refunds  decimal.Decimal `msgpack:"f"`
	Tenders  []storedTender  `msgpack:"t,omitempty"`
	CashIn   decimal.Decimal `msgpack:"ci"`
	CashOut  decimal.Decimal `msgpack:"co"`
	Events   int             `msgpack:"e"`
}

type storedMark struct {
	Event  [16]byte        `msgpack:"i"`
	Epoch  uint64          `msgpack:"pe"`
	Seq    uint64          `msgpack:"ps"`
	Date   string          `msgpack:"d"`
	Seller string          `msgpack:"sl"`
	Float  decimal.Decimal `msgpack:"f"`
}

type storedTender struct {
	Method string          `msgpack:"m"`
	Count  int             `msgpack:"c"`
	Amount decimal.Decimal `msgpack:"a"`
}

func toStoredMark(m *storeline.ShiftMark) *storedMark {
	if m == nil {
		return nil
	}
	return &storedMark{Event: m.Event, Epoch: m.Epoch, Seq: m.Seq, Date: string(m.BusinessDate), Seller: string(m.Seller), Float: m.Float}
}

func fromStoredMark(m *storedMark) *storeline.ShiftMark {
	if m == nil {
		return nil
	}
	return &storeline.ShiftMark{Event: m.Event, Epoch: m.Epoch, Seq: m.Seq, BusinessDate: storeline.Date(m.Date), Seller: storeline.SellerID(m.Seller), Float: m.Float}
}

func toStoredShift(t *storeline.ShiftTotals) *storedShift {
	s := &storedShift{
		Opening: toStoredMark(t.Opening), Close: toStoredMark(t.Close),
		Receipts: t.Receipts, Returns: t.Returns, Sales: t.Sales, Refunds: t.Refunds,
		CashIn: t.CashIn, CashOut: t.CashOut, Events: t.Events,
	}
	for _, tt := range t.Tenders {
		s.Tenders = append(s.Tenders, storedTender{string(tt.Method), tt.Count, tt.Amount})
	}
	return s
}

func fromStoredShift(term storeline.TerminalID, shift storeline.ShiftID, s *storedShift) storeline.ShiftTotals {
	t := storeline.ShiftTotals{
		Terminal: term, Shift: shift, Opening: fromStoredMark(s.Opening), Close: fromStoredMark(s.Close),
		Receipts: s.Receipts, Returns: s.Returns, Sales: s.Sales, Refunds: s.Refunds,
		CashIn: s.CashIn, CashOut: s.CashOut, Events: s.Events,
	}
	for _, tt := range s.Tenders {
		t.Tenders = append(t.Tenders, storeline.TenderTotal{Method: storeline.PayMethod(tt.Method), Count: tt.Count, Amount: tt.Amount})
	}
	return t
}

func getShift(txn kvRW, term storeline.TerminalID, shift storeline.ShiftID) (storeline.ShiftTotals, error) {
	v, err := txn.get(shiftKey(term, shift))
	if err != nil {
		return storeline.ShiftTotals{}, err
	}
	if v == nil {
		return storeline.ShiftTotals{Terminal: term, Shift: shift}, nil
	}
	var s storedShift
	if err := msgpack.Unmarshal(v, &s); err != nil {
		return storeline.ShiftTotals{}, fmt.Errorf("ledger: shift totals of %s/%s: %w", term, shift, err)
	}
	return fromStoredShift(term, shift, &s), nil
}

func putShift(txn kvRW, t *storeline.ShiftTotals) error {
	b, err := msgpack.Marshal(toStoredShift(t))
	if err != nil {
		return err
	}
	return txn.set(shiftKey(t.Terminal, t.Shift), b)
}

// shiftTotalsTxn returns the totals of (term, shift) in txn, decoded into
// a fresh value the caller may fold; putShift writes them back.
func shiftTotalsTxn(txn kvRW, term storeline.TerminalID, shift storeline.ShiftID) (*storeline.ShiftTotals, error) {
	t, err := getShift(txn, term, shift)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// shiftKinds are the event kinds that count in a shift; other kinds are
// not decoded for it.
func shiftKind(k storeline.EventKind) bool {
	switch k {
	case storeline.KindReceipt, storeline.KindReturn, storeline.KindCash, storeline.KindShiftOpen, storeline.KindShiftClose:
		return true
	}
	return false
}

// shiftEvent returns se as a domain event with just what Fold reads (ID,
// first position, business date, body), and the terminal and shift it
// counts in; ok is false if it counts in none. The body is se.body when
// the caller gave one, else decoded from se.Body.
func shiftEvent(se *storedEvent) (ev storeline.Event, term storeline.TerminalID, shift storeline.ShiftID, ok bool, err error) {
	kind := storeline.EventKind(se.Kind)
	if !shiftKind(kind) {
		return ev, "", "", false, nil
	}
	body := se.body
	if body == nil || body.EventKind() != kind {
		if body, err = storeline.NewBody(kind); err != nil {
			return ev, "", "", false, err
		}
		if err := msgpack.Unmarshal(se.Body, body); err != nil {
			return ev, "", "", false, fmt.Errorf("ledger: decode %s body of %s: %w", kind, storeline.EventID(se.ID), err)
		}
	}
	term, shift, ok = storeline.ShiftOf(body)
	if !ok || checkKeyPart("terminal", string(term)) != nil || checkKeyPart("shift", string(shift)) != nil {
		return ev, "", "", false, nil
	}
	ev = storeline.Event{ID: se.ID, Epoch: se.Epoch, Seq: se.Seq, BusinessDate: storeline.Date(se.Date), Kind: kind, Body: body}
	return ev, term, shift, true, nil
}

// ErrShiftClosed is the cause of the Conflict (field "shift") that Append
// returns for a shift close of a shift that another event already closed.
var ErrShiftClosed = errors.New("shift already closed")

// checkCloseOnce refuses the append of a shift close se (a new event, not a
// retry of the stored close, which deduplication answered before) if its
// shift already has a close. The committer runs it in the batch's
// transaction, so of two racing closes the second sees the first.
func checkCloseOnce(txn kvRW, se *storedEvent) (refusal, err error) {
	_, term, shift, ok, err := shiftEvent(se)
	if err != nil || !ok {
		return nil, err
	}
	t, err := txn.shiftTotals(term, shift)
	if err != nil {
		return nil, err
	}
	if t.Close != nil {
		return &storeline.Error{Op: "ledger.Append", Kind: storeline.Conflict, Field: "shift",
			Err: fmt.Errorf("%w: shift %s of terminal %s by event %s", ErrShiftClosed, shift, term, storeline.EventID(t.Close.Event))}, nil
	}
	return nil, nil
}

// foldShift adds an own-origin event, stored for the first time in txn, to
// its shift's totals (invariant 1).
func foldShift(txn kvRW, se *storedEvent) error {
	ev, term, shift, ok, err := shiftEvent(se)
	if err != nil || !ok {
		return err
	}
	t, err := txn.shiftTotals(term, shift)
	if err != nil {
		return err
	}
	t.Fold(ev)
	return txn.putShiftTotals(t)
}

// ShiftTotals returns the running totals of shift at terminal, over this
// node's own events: what its Z report needs, read from one record kept in
// step with the journal. A shift with no events yet has zero totals and no
// opening.
func (l *Ledger) ShiftTotals(term storeline.TerminalID, shift storeline.ShiftID) (storeline.ShiftTotals, error) {
	const op = "ledger.ShiftTotals"
	if err := checkKeyPart("terminal", string(term)); err != nil {
		return storeline.ShiftTotals{}, storeline.E(op, storeline.Invalid, err)
	}
	if err := checkKeyPart("shift", string(shift)); err != nil {
		return storeline.ShiftTotals{}, storeline.E(op, storeline.Invalid, err)
	}
	var t storeline.ShiftTotals
	err := l.view(func(txn *badger.Txn) error {
		var err error
		t, err = getShift(plainTxn{txn}, term, shift)
		return err
	})
	return t, l.readErr(op, err)
}

// OpenShifts returns the totals of terminal term's shifts that are open
// (opened, not closed), read from the shift totals rather than the
// journal: a terminal has a few hundred shifts a year, a shop's journal
// tens of thousands of events a week.
func (l *Ledger) OpenShifts(term storeline.TerminalID) ([]storeline.ShiftTotals, error) {
	const op = "ledger.OpenShifts"
	if err := checkKeyPart("terminal", string(term)); err != nil {
		return nil, storeline.E(op, storeline.Invalid, err)
	}
	var out []storeline.ShiftTotals
	err := l.view(func(txn *badger.Txn) error {
		prefix := append(append([]byte{tShift}, term...), 0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			shift := storeline.ShiftID(it.Item().Key()[len(prefix):])
			var s storedShift
			if err := it.Item().Value(func(v []byte) error { return msgpack.Unmarshal(v, &s) }); err != nil {
				return fmt.Errorf("ledger: shift totals of %s/%s: %w", term, shift, err)
			}
			if s.Opening != nil && s.Close == nil {
				out = append(out, fromStoredShift(term, shift, &s))
			}
		}
		return nil
	})
	return out, l.readErr(op, err)
}

// upgradeViews rebuilds the views when the stored marker is older than
// viewsVersion (invariant 3). It runs in Open, after WAL replay, before the
// committer starts.
func (l *Ledger) upgradeViews() error {
	var have uint64
	err := l.ver.view(func(txn *badger.Txn) error {
		v, err := getValue(txn, kViews)
		if v != nil {
			have = getU64(v)
		}
		return err
	})
	if err != nil || have >= viewsVersion {
		return err
	}
	n, err := l.rebuildShifts()
	if err != nil {
		return fmt.Errorf("rebuild shift totals: %w", err)
	}
	if err := l.syncBadger(); err != nil {
		return err
	}
	if err := l.ver.update(func(txn *badger.Txn) error { return txn.Set(kViews, u64(viewsVersion)) }); err != nil {
		return err
	}
	if err := l.syncBadger(); err != nil {
		return err
	}
	if n > 0 {
		l.log.Info("ledger: rebuilt shift totals from the journal", "from_version", have, "to_version", viewsVersion, "events", n)
	}
	return nil
}

// rebuildShifts drops every shift record and folds the own-origin journal
// again, each event at the position where it was first stored. It returns
// the number of events folded.
func (l *Ledger) rebuildShifts() (int, error) {
	if err := l.db.DropPrefix([]byte{tShift}); err != nil {
		return 0, err
	}
	if err := l.rebuildSeam("shift totals"); err != nil {
		return 0, err
	}
	totals := map[string]*storeline.ShiftTotals{}
	n := 0
	err := l.ver.view(func(txn *badger.Txn) error {
		prefix := journalPrefix(l.o.Origin)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			pos := journalPos(it.Item().Key())
			idb, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(idb) != 16 {
				return fmt.Errorf("ledger: journal entry of %d bytes at %s", len(idb), pos)
			}
			se, err := getStored(txn, l.o.Origin, [16]byte(idb))
			if err != nil {
				return err
			}
			if se == nil {
				return fmt.Errorf("ledger: journal names missing event %x at %s", idb, pos)
			}
			if se.pos() != pos || se.Pruned {
				continue // a second copy: it had no effect; a stub has no body (retention.go)
			}
			ev, term, shift, ok, err := shiftEvent(se)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			k := string(shiftKey(term, shift))
			t := totals[k]
			if t == nil {
				t = &storeline.ShiftTotals{Terminal: term, Shift: shift}
				totals[k] = t
			}
			t.Fold(ev)
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, l.ver.writeBatch(func(wb *badger.WriteBatch) error {
		for k, t := range totals {
			b, err := msgpack.Marshal(toStoredShift(t))
			if err != nil {
				return err
			}
			if err := wb.Set([]byte(k), b); err != nil {
				return err
			}
		}
		return nil
	})
}

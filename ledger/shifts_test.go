package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

var (
	shiftTerminals = []storeline.TerminalID{"t1", "t2"}
	shiftIDs       = []storeline.ShiftID{"sh1", "sh2", "sh3"}
)

// naiveShift is the reference the shift totals are checked against: the
// same figures, recomputed by brute force from every event of the journal.
type naiveShift struct {
	events, receipts, returns int
	sales, refunds            decimal.Decimal
	cashIn, cashOut           decimal.Decimal
	tenders                   map[storeline.PayMethod]storeline.TenderTotal
	opening, close            *storeline.Event
}

type shiftRef struct {
	term  storeline.TerminalID
	shift storeline.ShiftID
}

// allEvents returns every event of origin's journal, page by page.
func allEvents(l *ledger.Ledger, origin storeline.StoreID) ([]storeline.Event, error) {
	var out []storeline.Event
	from := ledger.Position{}
	for {
		page, err := l.Journal(origin, from, ledger.MaxJournalLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < ledger.MaxJournalLimit {
			return out, nil
		}
		last := page[len(page)-1]
		from = ledger.Position{Epoch: last.Epoch, Seq: last.Seq + 1}
	}
}

// naiveShifts recomputes every shift's figures from the whole journal of
// origin, written without storeline.ShiftTotals so it checks it.
func naiveShifts(l *ledger.Ledger, origin storeline.StoreID) (map[shiftRef]*naiveShift, error) {
	evs, err := allEvents(l, origin)
	if err != nil {
		return nil, err
	}
	out := map[shiftRef]*naiveShift{}
	seen := map[storeline.EventID]bool{}
	get := func(t storeline.TerminalID, s storeline.ShiftID) *naiveShift {
		n := out[shiftRef{t, s}]
		if n == nil {
			n = &naiveShift{tenders: map[storeline.PayMethod]storeline.TenderTotal{}}
			out[shiftRef{t, s}] = n
		}
		return n
	}
	for _, ev := range evs {
		if seen[ev.ID] {
			continue // a second copy
		}
		seen[ev.ID] = true
		switch b := ev.Body.(type) {
		case *storeline.Receipt:
			n := get(b.Terminal, b.Shift)
			n.events++
			n.receipts++
			n.sales = n.sales.Add(b.Total)
			for _, p := range b.Payments {
				tt := n.tenders[p.Method]
				tt.Count++
				tt.Amount = tt.Amount.Add(p.Amount)
				n.tenders[p.Method] = tt
			}
			if !b.Change.IsZero() {
				tt := n.tenders[storeline.Cash]
				tt.Amount = tt.Amount.Sub(b.Change)
				n.tenders[storeline.Cash] = tt
			}
		case *storeline.Return:
			n := get(b.Terminal, b.Shift)
			n.events++
			n.returns++
			n.refunds = n.refunds.Add(b.Total)
			for _, p := range b.Refunds {
				tt := n.tenders[p.Method]
				tt.Count++
				tt.Amount = tt.Amount.Sub(p.Amount)
				n.tenders[p.Method] = tt
			}
		case *storeline.CashOp:
			n := get(b.Terminal, b.Shift)
			n.events++
			if b.Direction == storeline.CashIn {
				n.cashIn = n.cashIn.Add(b.Amount)
			} else {
				n.cashOut = n.cashOut.Add(b.Amount)
			}
		case *storeline.ShiftOpen:
			n := get(b.Terminal, b.Shift)
			n.events++
			if n.opening == nil {
				e := ev
				n.opening = &e
			}
		case *storeline.ShiftClose:
			n := get(b.Terminal, b.Shift)
			n.events++
			if n.close == nil {
				e := ev
				n.close = &e
			}
		}
	}
	return out, nil
}

// checkShiftTotals compares the ledger's shift totals of every shift in
// refs (and every shift the journal names) with the brute-force
// recomputation.
func checkShiftTotals(l *ledger.Ledger, refs []shiftRef) error {
	want, err := naiveShifts(l, l.Origin())
	if err != nil {
		return err
	}
	all := map[shiftRef]bool{}
	for _, r := range refs {
		all[r] = true
	}
	for r := range want {
		all[r] = true
	}
	for r := range all {
		got, err := l.ShiftTotals(r.term, r.shift)
		if err != nil {
			return err
		}
		w := want[r]
		if w == nil {
			w = &naiveShift{tenders: map[storeline.PayMethod]storeline.TenderTotal{}}
		}
		if err := compareShift(got, w); err != nil {
			return fmt.Errorf("ShiftTotals(%s, %s): %w", r.term, r.shift, err)
		}
	}
	return nil
}

func compareShift(got storeline.ShiftTotals, w *naiveShift) error {
	if got.Events != w.events || got.Receipts != w.receipts || got.Returns != w.returns {
		return fmt.Errorf("events/receipts/returns = %d/%d/%d, want %d/%d/%d",
			got.Events, got.Receipts, got.Returns, w.events, w.receipts, w.returns)
	}
	for _, c := range []struct {
		name      string
		got, want decimal.Decimal
	}{{"sales", got.Sales, w.sales}, {"refunds", got.Refunds, w.refunds}, {"cash in", got.CashIn, w.cashIn}, {"cash out", got.CashOut, w.cashOut}} {
		if !c.got.Equal(c.want) {
			return fmt.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if len(got.Tenders) != len(w.tenders) {
		return fmt.Errorf("tenders = %v, want %v", got.Tenders, w.tenders)
	}
	if !sort.SliceIsSorted(got.Tenders, func(i, j int) bool { return got.Tenders[i].Method < got.Tenders[j].Method }) {
		return fmt.Errorf("tenders %v are not in method order", got.Tenders)
	}
	for _, tt := range got.Tenders {
		wt, ok := w.tenders[tt.Method]
		if !ok || wt.Count != tt.Count || !wt.Amount.Equal(tt.Amount) {
			return fmt.Errorf("tender %s = %d × %s, want %d × %s", tt.Method, tt.Count, tt.Amount, wt.Count, wt.Amount)
		}
	}
	mark := func(name string, m *storeline.ShiftMark, ev *storeline.Event) error {
		switch {
		case m == nil && ev == nil:
			return nil
		case m == nil || ev == nil:
			return fmt.Errorf("%s = %v, want %v", name, m, ev)
		case m.Event != ev.ID || m.Epoch != ev.Epoch || m.Seq != ev.Seq || m.BusinessDate != ev.BusinessDate:
			return fmt.Errorf("%s = %s at %d/%d on %s, want %s at %d/%d on %s", name,
				m.Event, m.Epoch, m.Seq, m.BusinessDate, ev.ID, ev.Epoch, ev.Seq, ev.BusinessDate)
		}
		return nil
	}
	if err := mark("opening", got.Opening, w.opening); err != nil {
		return err
	}
	if w.opening != nil {
		b := w.opening.Body.(*storeline.ShiftOpen)
		if !got.Opening.Float.Equal(b.Float) || got.Opening.Seller != b.Seller {
			return fmt.Errorf("opening float/seller = %s/%s, want %s/%s", got.Opening.Float, got.Opening.Seller, b.Float, b.Seller)
		}
	}
	return mark("close", got.Close, w.close)
}

// shiftString renders totals by value (marks dereferenced).
func shiftString(t storeline.ShiftTotals) string {
	mark := func(m *storeline.ShiftMark) string {
		if m == nil {
			return "-"
		}
		return fmt.Sprintf("%s@%d/%d %s %s %s", m.Event, m.Epoch, m.Seq, m.BusinessDate, m.Seller, m.Float)
	}
	s := fmt.Sprintf("%s/%s open %s close %s: %d events, %d receipts %s, %d returns %s, in %s out %s",
		t.Terminal, t.Shift, mark(t.Opening), mark(t.Close), t.Events, t.Receipts, t.Sales, t.Returns, t.Refunds, t.CashIn, t.CashOut)
	for _, tt := range t.Tenders {
		s += fmt.Sprintf(", %s %d × %s", tt.Method, tt.Count, tt.Amount)
	}
	return s
}

var shiftAt = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func shiftEvent(id storeline.EventID, body storeline.Body) storeline.Event {
	return storeline.Event{ID: id, Body: body, OccurredAt: shiftAt, BusinessDate: "2026-11-28"}
}

func cents(n int) decimal.Decimal { return decimal.NewFromInt(int64(n)).Shift(-2) }

func shiftLines(t *rapid.T) ([]storeline.Line, decimal.Decimal) {
	var lines []storeline.Line
	total := decimal.Zero
	for i := rapid.IntRange(1, 3).Draw(t, "lines"); i > 0; i-- {
		qty := rapid.IntRange(1, 3).Draw(t, "qty")
		price := cents(rapid.IntRange(1, 5000).Draw(t, "price"))
		lines = append(lines, storeline.Line{
			Item: storeline.ItemID(rapid.SampledFrom([]string{"milk", "bread", "wine"}).Draw(t, "item")), Dept: "food",
			Unit: storeline.Piece, Qty: decimal.NewFromInt(int64(qty)), Price: price, VATRate: dec("10"),
		})
		total = total.Add(price.Mul(decimal.NewFromInt(int64(qty))))
	}
	return lines, total
}

// splitPays draws tenders for total: cash (maybe with change), card, or
// both; exact is for refunds, which must equal the total.
func splitPays(t *rapid.T, total decimal.Decimal, exact bool) []storeline.Payment {
	switch rapid.IntRange(0, 2).Draw(t, "tender") {
	case 0:
		amt := total
		if !exact {
			amt = amt.Add(cents(rapid.IntRange(0, 2000).Draw(t, "over")))
		}
		return []storeline.Payment{{Method: storeline.Cash, Amount: amt}}
	case 1:
		return []storeline.Payment{{Method: storeline.Card, Amount: total}}
	}
	card := total.Mul(decimal.NewFromInt(int64(rapid.IntRange(0, 100).Draw(t, "pct")))).Div(decimal.NewFromInt(100)).Truncate(2)
	if card.IsZero() || card.Equal(total) {
		return []storeline.Payment{{Method: storeline.Card, Amount: total}}
	}
	return []storeline.Payment{{Method: storeline.Card, Amount: card}, {Method: storeline.Cash, Amount: total.Sub(card)}}
}

// genShiftBody draws one event of a random shift, or a remote store's
// receipt naming one (which must not count: the totals are own-origin).
func genShiftBody(t *rapid.T) storeline.Body {
	term := rapid.SampledFrom(shiftTerminals).Draw(t, "terminal")
	shift := rapid.SampledFrom(shiftIDs).Draw(t, "shift")
	seller := storeline.SellerID(rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "seller"))
	// Rapid draws small numbers most often: receipts are 0-4.
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 5, 6:
		lines, total := shiftLines(t)
		return &storeline.Return{Terminal: term, Shift: shift, Seller: seller, Manager: "bob", Currency: "EUR", Reason: "r", Lines: lines, Refunds: splitPays(t, total, true)}
	case 7:
		dir := rapid.SampledFrom([]storeline.CashDirection{storeline.CashIn, storeline.CashOut}).Draw(t, "direction")
		return &storeline.CashOp{Terminal: term, Shift: shift, Seller: seller, Direction: dir, Currency: "EUR", Amount: cents(rapid.IntRange(1, 10000).Draw(t, "amount"))}
	case 8:
		return &storeline.ShiftOpen{Terminal: term, Shift: shift, Seller: seller, Currency: "EUR", Float: cents(rapid.IntRange(0, 20000).Draw(t, "float"))}
	case 9:
		return &storeline.ShiftClose{Terminal: term, Shift: shift, Seller: seller, Report: storeline.ZReport{Currency: "EUR"}}
	}
	lines, total := shiftLines(t)
	return &storeline.Receipt{Terminal: term, Shift: shift, Seller: seller, Currency: "EUR", Lines: lines, Payments: splitPays(t, total, false)}
}

var errHalt = errors.New("halted before the Badger apply")

// TestShiftTotalsMatchJournal drives random sales, returns, cash operations,
// openings and closes through the real Append path, with till retries,
// remote stores' receipts, clean reopens and crashes that leave Badger
// behind the WAL (so replay must rebuild the totals), and checks that every
// shift's totals equal a brute-force recomputation from all events.
func TestShiftTotalsMatchJournal(t *testing.T) {
	checks := 6
	if *long {
		checks = 200
	}
	setRapidChecks(checks)
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		var halt atomic.Bool
		o := testOptions(tempDir(t))
		o.Seams = &ledger.Seams{Apply: func(uint64) error {
			if halt.Load() {
				return errHalt
			}
			return nil
		}}
		l, err := ledger.Open(o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer func() { l.Close() }()
		reopen := func() {
			l.Close()
			halt.Store(false)
			if l, err = ledger.Open(o); err != nil {
				t.Fatalf("reopen: %v", err)
			}
		}
		var refs []shiftRef
		for _, term := range shiftTerminals {
			for _, sh := range shiftIDs {
				refs = append(refs, shiftRef{term, sh})
			}
		}
		var appended []storeline.Event
		remoteSeq := uint64(0)
		reopens := 0
		n := rapid.IntRange(1, 50).Draw(t, "events")
		for i := 0; i < n; i++ {
			// Rapid draws small numbers most often: appends are 0-15, and the
			// costly reopens are rare and bounded.
			action := rapid.IntRange(0, 19).Draw(t, "action")
			if action >= 17 && reopens >= 3 {
				action = 0
			}
			switch action {
			case 16: // a till retry of an earlier event: counted once
				if len(appended) > 0 {
					ev := rapid.SampledFrom(appended).Draw(t, "retry")
					if _, created, err := l.Append(ctx, ev); err != nil || created {
						t.Fatalf("retry Append(%s) = created %v, %v; want a duplicate", ev.ID, created, err)
					}
				}
			case 17:
				reopens++
				reopen()
			case 18: // a crash: the next event's batch is in the WAL, not in Badger
				reopens++
				halt.Store(true)
				ev := shiftEvent(eid(uint64(10_000+i)), genShiftBody(t))
				// Answered once its frame is synced, before the halted
				// apply: replay at the reopen must bring it back. Or
				// refused whole, if the apply of an earlier batch
				// (answered at its sync) halted first.
				_, _, err := l.Append(ctx, ev)
				_, isClose := ev.Body.(*storeline.ShiftClose)
				switch {
				case err == nil:
					appended = append(appended, ev)
				case storeline.KindOf(err) == storeline.Unavailable && l.Poisoned() != nil:
				case isClose && errors.Is(err, ledger.ErrShiftClosed):
				default:
					t.Fatalf("Append(%T) before a halted apply: %v", ev.Body, err)
				}
				reopen()
			case 19: // another store's receipt naming one of our shifts
				remoteSeq++
				body := genShiftBody(t)
				if _, ok := body.(*storeline.Receipt); !ok {
					continue
				}
				if err := body.(*storeline.Receipt).Compute(); err != nil {
					t.Fatalf("Compute: %v", err)
				}
				ps, err := storeline.DerivePostings("s9", body)
				if err != nil {
					t.Fatal(err)
				}
				ev := shiftEvent(eid(uint64(20_000+i)), body)
				ev.Kind, ev.Origin, ev.Epoch, ev.Seq, ev.Postings = storeline.KindReceipt, "s9", 1, remoteSeq, ps
				if _, err := l.ApplyRemote(ctx, ev); err != nil {
					t.Fatalf("ApplyRemote: %v", err)
				}
			default:
				ev := shiftEvent(eid(uint64(1+i)), genShiftBody(t))
				if _, _, err := l.Append(ctx, ev); err != nil {
					if _, isClose := ev.Body.(*storeline.ShiftClose); isClose && errors.Is(err, ledger.ErrShiftClosed) {
						continue // a shift closes once
					}
					t.Fatalf("Append(%T): %v", ev.Body, err)
				}
				appended = append(appended, ev)
			}
		}
		if err := checkShiftTotals(l, refs); err != nil {
			t.Fatal(err)
		}
		reopen()
		if err := checkShiftTotals(l, refs); err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	})
}

// fillShifts appends a day of trade at two terminals: n receipts spread over
// shifts sh1..sh3, each shift opened first, with returns and cash
// operations.
func fillShifts(t testing.TB, l *ledger.Ledger, n int) {
	t.Helper()
	ctx := context.Background()
	next := uint64(1)
	add := func(b storeline.Body) {
		if _, _, err := l.Append(ctx, shiftEvent(eid(next), b)); err != nil {
			t.Fatalf("Append(%T): %v", b, err)
		}
		next++
	}
	for _, term := range shiftTerminals {
		for _, sh := range shiftIDs {
			add(&storeline.ShiftOpen{Terminal: term, Shift: sh, Seller: "alice", Currency: "EUR", Float: dec("100")})
		}
	}
	for i := 0; i < n; i++ {
		term, sh := shiftTerminals[i%2], shiftIDs[i%3]
		r := receipt(1+i%3, i)
		r.Terminal, r.Shift = term, sh
		add(r)
		if i%7 == 0 {
			add(&storeline.Return{Terminal: term, Shift: sh, Seller: "alice", Manager: "bob", Currency: "EUR", Reason: "r",
				Lines:   []storeline.Line{{Item: "i0", Dept: "food", Unit: storeline.Piece, Qty: dec("1"), Price: dec("1.00"), VATRate: dec("10")}},
				Refunds: []storeline.Payment{{Method: storeline.Card, Amount: dec("1.00")}}})
		}
		if i%11 == 0 {
			add(&storeline.CashOp{Terminal: term, Shift: sh, Seller: "bob", Direction: storeline.CashOut, Currency: "EUR", Amount: dec("5")})
		}
	}
}

func shiftRefs() []shiftRef {
	var refs []shiftRef
	for _, term := range shiftTerminals {
		for _, sh := range shiftIDs {
			refs = append(refs, shiftRef{term, sh})
		}
	}
	return refs
}

// TestShiftTotalsRebuiltOnUpgrade opens a database as an older version left
// it (no shift records, no views marker): Open must rebuild the totals from
// the journal.
func TestShiftTotalsRebuiltOnUpgrade(t *testing.T) {
	o := testOptions(t.TempDir())
	l := open(t, o)
	fillShifts(t, l, 100)
	before, err := l.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DropViews(); err != nil {
		t.Fatalf("DropViews: %v", err)
	}
	if got, _ := l.ShiftTotals("t1", "sh1"); got.Events != 0 {
		t.Fatalf("after DropViews, ShiftTotals(t1, sh1) has %d events, want none", got.Events)
	}
	l.Close()
	l = open(t, o)
	if err := checkShiftTotals(l, shiftRefs()); err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	after, _ := l.ShiftTotals("t1", "sh1")
	if after.Events != before.Events || !after.Sales.Equal(before.Sales) {
		t.Fatalf("rebuilt totals %d events, %s sales; before %d, %s", after.Events, after.Sales, before.Events, before.Sales)
	}
}

// TestShiftTotalsBackupRestore checks that the totals travel in a backup,
// and keep counting in the restored node's new epoch.
func TestShiftTotalsBackupRestore(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	fillShifts(t, l, 40)
	var buf bytes.Buffer
	if err := l.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	dir := t.TempDir()
	if err := ledger.Restore(dir, &buf, 1000); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r := open(t, testOptions(dir))
	for _, ref := range shiftRefs() {
		a, _ := l.ShiftTotals(ref.term, ref.shift)
		b, err := r.ShiftTotals(ref.term, ref.shift)
		if err != nil {
			t.Fatal(err)
		}
		if a.Events == 0 || shiftString(a) != shiftString(b) {
			t.Fatalf("restored ShiftTotals(%s, %s) = %s, want %s", ref.term, ref.shift, shiftString(b), shiftString(a))
		}
	}
	rc := receipt(2, 1)
	if _, _, err := r.Append(context.Background(), shiftEvent(eid(1<<40), rc)); err != nil {
		t.Fatal(err)
	}
	if err := checkShiftTotals(r, shiftRefs()); err != nil {
		t.Fatalf("after an append in the new epoch: %v", err)
	}
}

// TestShiftTotalsReadOneShift checks that the totals of a shift cover its
// own events only, however many others the journal holds.
func TestShiftTotalsReadOneShift(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	fillShifts(t, l, 120)
	ctx := context.Background()
	mustAppend(t, l, shiftEvent(eid(1<<41), &storeline.ShiftOpen{Terminal: "t9", Shift: "late", Seller: "alice", Currency: "EUR", Float: dec("50")}))
	r := receipt(2, 0) // 1.00 + 1.01, cash
	r.Terminal, r.Shift = "t9", "late"
	mustAppend(t, l, shiftEvent(eid(1<<41+1), r))
	if _, _, err := l.Append(ctx, shiftEvent(eid(1<<41+2), &storeline.CashOp{Terminal: "t9", Shift: "late", Seller: "bob", Direction: storeline.CashIn, Currency: "EUR", Amount: dec("7")})); err != nil {
		t.Fatal(err)
	}
	got, err := l.ShiftTotals("t9", "late")
	if err != nil {
		t.Fatal(err)
	}
	z := got.Report("EUR")
	if got.Events != 3 || got.Receipts != 1 || !got.Sales.Equal(dec("2.01")) || !z.ExpectedCash.Equal(dec("59.01")) {
		t.Fatalf("ShiftTotals(t9, late) = %+v, report %+v; want 3 events, 1 receipt of 2.01, expected cash 59.01", got, z)
	}
	if _, err := l.ShiftTotals("t9", ""); storeline.KindOf(err) != storeline.Invalid {
		t.Fatalf("ShiftTotals with an empty shift: %v, want Invalid", err)
	}
}

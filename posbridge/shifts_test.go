package posbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// countingLedger is the real ledger with a count of the reads a handler
// makes of it.
type countingLedger struct {
	posbridge.Ledger
	byDate      atomic.Int64 // EventsByDate calls
	byDateSeen  atomic.Int64 // events EventsByDate handed out
	eventReads  atomic.Int64 // Event calls
	totalsReads atomic.Int64 // ShiftTotals calls
}

func (c *countingLedger) EventsByDate(from, to storeline.Date, fn func(storeline.Event) error) error {
	c.byDate.Add(1)
	return c.Ledger.EventsByDate(from, to, func(ev storeline.Event) error {
		c.byDateSeen.Add(1)
		return fn(ev)
	})
}

func (c *countingLedger) Event(origin storeline.StoreID, id storeline.EventID) (storeline.Event, error) {
	c.eventReads.Add(1)
	return c.Ledger.Event(origin, id)
}

func (c *countingLedger) ShiftTotals(term storeline.TerminalID, shift storeline.ShiftID) (storeline.ShiftTotals, error) {
	c.totalsReads.Add(1)
	return c.Ledger.ShiftTotals(term, shift)
}

func (c *countingLedger) reset() {
	c.byDate.Store(0)
	c.byDateSeen.Store(0)
	c.eventReads.Store(0)
	c.totalsReads.Store(0)
}

func newCountingEnv(t testing.TB) (*env, *countingLedger) {
	t.Helper()
	var cl *countingLedger
	e := newEnvWith(t, func(l posbridge.Ledger) posbridge.Ledger {
		cl = &countingLedger{Ledger: l}
		return cl
	})
	return e, cl
}

// fillJournal appends n receipts of other shifts (terminals t1 and t2,
// shifts bulk0..bulk9) on the fixture's business day straight to the
// ledger, from 8 writers so that they share fsyncs.
func fillJournal(t testing.TB, e *env, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				r := &storeline.Receipt{
					Terminal: storeline.TerminalID(fmt.Sprintf("t%d", 1+i%2)), Shift: storeline.ShiftID(fmt.Sprintf("bulk%d", i%10)),
					Seller: "alice", Currency: "EUR",
					Lines:    []storeline.Line{{Item: "milk", Dept: "food", Unit: storeline.Piece, Qty: dec("1"), Price: dec("1.19"), VATRate: dec("10")}},
					Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("2.00")}},
				}
				_, _, err := e.led.Append(context.Background(), storeline.Event{
					ID: storeline.NewEventID(), Body: r, OccurredAt: t0, BusinessDate: "2026-03-10",
				})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("fill: Append: %v", err)
	}
}

// bruteZ recomputes a shift's Z report figures from every event of the
// node's journal, as the close did before the ledger kept totals.
type bruteZ struct {
	receipts, returns               int
	sales, refunds, cashIn, cashOut decimal.Decimal
	float                           decimal.Decimal
	tenders                         map[storeline.PayMethod]decimal.Decimal
	counts                          map[storeline.PayMethod]int
	events, scanned                 int
}

func bruteShift(t testing.TB, e *env, term storeline.TerminalID, shift storeline.ShiftID) bruteZ {
	t.Helper()
	// The report always shows cash.
	z := bruteZ{tenders: map[storeline.PayMethod]decimal.Decimal{storeline.Cash: decimal.Zero}, counts: map[storeline.PayMethod]int{}}
	err := e.led.EventsByDate("2000-01-01", "2999-12-31", func(ev storeline.Event) error {
		z.scanned++
		bt, bs, ok := storeline.ShiftOf(ev.Body)
		if !ok || bt != term || bs != shift {
			return nil
		}
		z.events++
		switch b := ev.Body.(type) {
		case *storeline.ShiftOpen:
			z.float = b.Float
		case *storeline.Receipt:
			z.receipts++
			z.sales = z.sales.Add(b.Total)
			for _, p := range b.Payments {
				z.tenders[p.Method] = z.tenders[p.Method].Add(p.Amount)
				z.counts[p.Method]++
			}
			z.tenders[storeline.Cash] = z.tenders[storeline.Cash].Sub(b.Change)
		case *storeline.Return:
			z.returns++
			z.refunds = z.refunds.Add(b.Total)
			for _, p := range b.Refunds {
				z.tenders[p.Method] = z.tenders[p.Method].Sub(p.Amount)
				z.counts[p.Method]++
			}
		case *storeline.CashOp:
			if b.Direction == storeline.CashIn {
				z.cashIn = z.cashIn.Add(b.Amount)
			} else {
				z.cashOut = z.cashOut.Add(b.Amount)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EventsByDate: %v", err)
	}
	return z
}

func checkZ(t testing.TB, term storeline.TerminalID, rep map[string]any, want bruteZ) {
	t.Helper()
	expected := want.float.Add(want.tenders[storeline.Cash]).Add(want.cashIn).Sub(want.cashOut)
	for _, c := range []struct {
		field string
		want  string
	}{
		{"sales", want.sales.StringFixed(2)}, {"refunds", want.refunds.StringFixed(2)},
		{"cash_in", want.cashIn.StringFixed(2)}, {"cash_out", want.cashOut.StringFixed(2)},
		{"float", want.float.StringFixed(2)}, {"expected_cash", expected.StringFixed(2)},
	} {
		if rep[c.field] != c.want {
			t.Errorf("%s: report %s = %v, want %s", term, c.field, rep[c.field], c.want)
		}
	}
	if rep["receipts"] != float64(want.receipts) || rep["returns"] != float64(want.returns) {
		t.Errorf("%s: report receipts/returns = %v/%v, want %d/%d", term, rep["receipts"], rep["returns"], want.receipts, want.returns)
	}
	got := map[string]string{}
	for _, x := range rep["tenders"].([]any) {
		m := x.(map[string]any)
		got[m["method"].(string)] = fmt.Sprintf("%v × %s", m["count"], m["amount"])
	}
	for m, amt := range want.tenders {
		if w := fmt.Sprintf("%d × %s", want.counts[m], amt.StringFixed(2)); got[string(m)] != w {
			t.Errorf("%s: tender %s = %q, want %q", term, m, got[string(m)], w)
		}
	}
	if len(got) != len(want.tenders) {
		t.Errorf("%s: tenders %v, want %v", term, got, want.tenders)
	}
}

// TestShiftCloseReadsOnlyItsShift closes shifts of two terminals after
// random sales, returns and cash operations over HTTP, behind a journal of
// thousands of other shifts' receipts on the same day. The close must not
// scan the journal (it reads the ledger's shift totals once), and its
// report must equal a brute-force recomputation from every event.
func TestShiftCloseReadsOnlyItsShift(t *testing.T) {
	e, cl := newCountingEnv(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	fillJournal(t, e, 2000)

	at := t0.Format(time.RFC3339)
	type till struct {
		term         storeline.TerminalID
		token        string
		alice, bob   string
		ops, refunds int
	}
	tills := []*till{{term: "t1", token: tokenT1}, {term: "t2", token: tokenT2}}
	skus := []struct{ sku, price string }{{"MILK", "1.19"}, {"COLA", "2.00"}, {"WINE", "7.99"}}
	for _, tl := range tills {
		tl.alice, tl.bob = e.login(tl.token, "alice", "1234"), e.login(tl.token, "bob", "9999")
		e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tl.token, session: tl.alice, body: map[string]any{
			"id": newID(), "terminal": tl.term, "shift": "sh1", "seller": "alice", "occurred_at": at,
			"float": fmt.Sprintf("%d.00", rng.IntN(200))}}), 201)
	}
	pays := func(total decimal.Decimal, exact bool) []map[string]any {
		switch rng.IntN(3) {
		case 0:
			amt := total
			if !exact {
				amt = amt.Add(decimal.NewFromInt(int64(rng.IntN(500))).Shift(-2))
			}
			return []map[string]any{{"method": "cash", "amount": amt.StringFixed(2)}}
		case 1:
			return []map[string]any{{"method": "card", "amount": total.StringFixed(2)}}
		}
		card := total.Div(decimal.NewFromInt(2)).Truncate(2)
		return []map[string]any{{"method": "card", "amount": card.StringFixed(2)}, {"method": "cash", "amount": total.Sub(card).StringFixed(2)}}
	}
	for range 40 {
		tl := tills[rng.IntN(len(tills))]
		base := map[string]any{"id": newID(), "terminal": tl.term, "shift": "sh1", "seller": "alice", "occurred_at": at}
		switch k := rng.IntN(10); {
		case k < 6:
			var lines []map[string]any
			total := decimal.Zero
			for range 1 + rng.IntN(3) {
				s := skus[rng.IntN(len(skus))]
				q := 1 + rng.IntN(3)
				lines = append(lines, line("sku", s.sku, "qty", fmt.Sprint(q), "price", s.price))
				total = total.Add(dec(s.price).Mul(decimal.NewFromInt(int64(q))))
			}
			base["catalog_version"], base["lines"], base["payments"] = 1, lines, pays(total, false)
			e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tl.token, session: tl.alice, body: base}), 201)
		case k < 8:
			s := skus[rng.IntN(len(skus))]
			base["reason"], base["lines"], base["refunds"] = "changed mind", []map[string]any{line("sku", s.sku, "qty", "1", "price", s.price)}, pays(dec(s.price), true)
			e.must(e.do(req{method: "POST", path: "/v1/returns", token: tl.token, session: tl.bob, body: base}), 201)
		default:
			dir, session := "in", tl.alice
			if rng.IntN(2) == 0 {
				dir, session = "out", tl.bob
			}
			base["direction"], base["amount"], base["reason"] = dir, fmt.Sprintf("%d.50", 1+rng.IntN(30)), "float"
			e.must(e.do(req{method: "POST", path: "/v1/cash", token: tl.token, session: session, body: base}), 201)
		}
	}
	e.clock.Add(8 * time.Hour)
	for _, tl := range tills {
		want := bruteShift(t, e, tl.term, "sh1")
		if want.scanned < 2000 {
			t.Fatalf("the journal holds %d events, want the 2,000 of the fill and more", want.scanned)
		}
		cl.reset()
		z := e.must(e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tl.token, session: tl.alice, body: map[string]any{"id": newID()}}), 201)
		if n, seen := cl.byDate.Load(), cl.byDateSeen.Load(); n != 0 || seen != 0 {
			t.Fatalf("%s: the close scanned the journal: %d EventsByDate calls handing out %d events", tl.term, n, seen)
		}
		if n := cl.totalsReads.Load(); n != 1 {
			t.Fatalf("%s: the close read the shift totals %d times, want once", tl.term, n)
		}
		if n := cl.eventReads.Load(); n > 1 {
			t.Fatalf("%s: the close read %d events by id, want at most 1 (its own id, for a retry)", tl.term, n)
		}
		checkZ(t, tl.term, z["report"].(map[string]any), want)
		tot, err := e.led.ShiftTotals(tl.term, "sh1")
		if err != nil {
			t.Fatal(err)
		}
		// The shift's own events (opening, sales, returns, cash, close),
		// and nothing of the 2,000 others.
		if tot.Events != want.events+1 || tot.Close == nil {
			t.Fatalf("%s: ShiftTotals has %d events and close %v, want %d and a close", tl.term, tot.Events, tot.Close, want.events+1)
		}
	}
	if t.Failed() {
		t.Logf("seed %d", seed)
	}
}

// BenchmarkShiftClose closes a shift of 20 receipts behind a journal of
// 1,000 to 50,000 other receipts of the same day. "totals" is
// POST /v1/shifts/{id}/close through the handler (one shift-totals read,
// one durable append of the close); "scan" is the brute-force report over
// the day's events that the close computed before the ledger kept totals.
func BenchmarkShiftClose(b *testing.B) {
	for _, size := range []int{1000, 10000, 50000} {
		e := newEnv(b)
		fillJournal(b, e, size)
		alice := e.login(tokenT1, "alice", "1234")
		h := e.srv.Handler()
		serve := func(method, path, body string) {
			r := httptest.NewRequest(method, path, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+tokenT1)
			r.Header.Set("X-Session", alice)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 201 {
				b.Fatalf("%s %s: status %d: %s", method, path, w.Code, w.Body)
			}
		}
		at := t0.Format(time.RFC3339)
		shiftNo := 0
		openShift := func() string {
			shiftNo++
			sh := fmt.Sprintf("b%d", shiftNo)
			serve("POST", "/v1/shifts", fmt.Sprintf(`{"id":%q,"terminal":"t1","shift":%q,"seller":"alice","occurred_at":%q,"float":"100.00"}`, newID(), sh, at))
			for range 20 {
				serve("POST", "/v1/receipts", fmt.Sprintf(`{"id":%q,"terminal":"t1","shift":%q,"seller":"alice","occurred_at":%q,"catalog_version":1,"lines":[{"sku":"MILK","qty":"2","price":"1.19"}],"payments":[{"method":"cash","amount":"5.00"}]}`, newID(), sh, at))
			}
			return sh
		}
		b.Run(fmt.Sprintf("journal=%d/totals", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				sh := openShift()
				b.StartTimer()
				serve("POST", "/v1/shifts/"+sh+"/close", `{"counted_cash":"150.00"}`)
			}
		})
		b.Run(fmt.Sprintf("journal=%d/scan", size), func(b *testing.B) {
			sh := openShift()
			b.ReportAllocs()
			for b.Loop() {
				if z := bruteShift(b, e, "t1", storeline.ShiftID(sh)); z.receipts != 20 {
					b.Fatalf("scan found %d receipts, want 20", z.receipts)
				}
			}
		})
	}
}

// TestShiftCloseRace races closes of one shift over real HTTP: exactly one
// close is created (201); a racing close with another id gets 409 naming
// the shift, a racing retry of the winner's id gets the winner's Z report
// (200 or 201, the same event), and the shift holds one close.
func TestShiftCloseRace(t *testing.T) {
	e := newEnv(t)
	at := t0.Format(time.RFC3339)
	session := e.login(tokenT1, "alice", "1234")
	const shifts, closers = 12, 4
	for i := range shifts {
		sh := fmt.Sprintf("race%d", i)
		e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: session, body: map[string]any{
			"id": newID(), "terminal": "t1", "shift": sh, "seller": "alice", "occurred_at": at, "float": "10.00"}}), 201)
		e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: session, body: map[string]any{
			"id": newID(), "terminal": "t1", "shift": sh, "seller": "alice", "occurred_at": at, "catalog_version": 1,
			"lines":    []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19")},
			"payments": []map[string]any{{"method": "cash", "amount": "2.38"}}}}), 201)
	}
	e.clock.Add(8 * time.Hour)
	type answer struct {
		id     string
		status int
		body   map[string]any
	}
	for i := range shifts {
		sh := fmt.Sprintf("race%d", i)
		// Closers 0 and 1 share an id (a till's retry racing its first
		// try); the others each have their own.
		ids := make([]string, closers)
		for c := range ids {
			ids[c] = newID()
		}
		ids[1] = ids[0]
		answers := make([]answer, closers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range closers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := rawPost(e, "/v1/shifts/"+sh+"/close", session, map[string]any{"id": ids[c], "counted_cash": "12.38"})
				answers[c] = answer{id: ids[c], status: r.status}
				if err == nil {
					err = json.Unmarshal(r.body, &answers[c].body)
				}
				if err != nil {
					answers[c].body = map[string]any{"error": fmt.Sprintf("%v: %s", err, r.body)}
				}
			}()
		}
		close(start)
		wg.Wait()
		created, winner := 0, ""
		for _, a := range answers {
			if a.status == 201 {
				created++
				winner = a.id
			}
		}
		if created != 1 {
			t.Fatalf("%s: %d closes created, want exactly 1: %+v", sh, created, answers)
		}
		for c, a := range answers {
			switch {
			case a.id == winner:
				if a.status != 201 && a.status != 200 || a.body["id"] != winner {
					t.Fatalf("%s: closer %d retrying the winning id got %d %v, want the stored close", sh, c, a.status, a.body)
				}
			case a.status != 409 || a.body["field"] != "shift":
				t.Fatalf("%s: closer %d with another id got %d %v, want 409 naming the shift", sh, c, a.status, a.body)
			}
		}
		tot, err := e.led.ShiftTotals("t1", storeline.ShiftID(sh))
		if err != nil {
			t.Fatal(err)
		}
		if tot.Close == nil || tot.Close.Event.String() != winner {
			t.Fatalf("%s: totals close %v, want the winner %s", sh, tot.Close, winner)
		}
		// One close event on the journal for the shift: the opening, the
		// sale and the close.
		if tot.Events != 3 {
			t.Fatalf("%s: %d events folded, want 3 (open, sale, one close)", sh, tot.Events)
		}
		// A late close, checked against openapi.yaml: 409 naming the shift.
		e.problem(e.do(req{method: "POST", path: "/v1/shifts/" + sh + "/close", token: tokenT1, session: session, body: map[string]any{"id": newID()}}), 409, "shift")
	}
}

// rawPost posts body as JSON to the server with terminal t1's token and a
// session, without test helpers that may stop the test (it runs on other
// goroutines).
func rawPost(e *env, path, session string, body any) (resp, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return resp{}, err
	}
	r, err := http.NewRequest("POST", e.http.URL+path, bytes.NewReader(b))
	if err != nil {
		return resp{}, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+tokenT1)
	r.Header.Set("X-Session", session)
	hr, err := http.DefaultClient.Do(r)
	if err != nil {
		return resp{}, err
	}
	defer hr.Body.Close()
	rb, err := io.ReadAll(hr.Body)
	return resp{status: hr.StatusCode, header: hr.Header, body: rb}, err
}

package posbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

// syncGate holds the ledger's WAL syncs while closed, so a commit in
// progress keeps the commit token and later appends wait in the queue.
type syncGate struct {
	mu      sync.Mutex
	hold    chan struct{} // nil: syncs pass
	entered chan struct{}
}

func (g *syncGate) sync(f ledger.File) error {
	g.mu.Lock()
	h := g.hold
	g.mu.Unlock()
	if h != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-h
	}
	return f.Sync()
}

func (g *syncGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold == nil {
		g.hold = make(chan struct{})
	}
}

func (g *syncGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

// appendWatch is the real ledger, telling the test when a handler starts
// an append.
type appendWatch struct {
	posbridge.Ledger
	appends chan storeline.EventKind
	// before, if set, runs before an append of its kind.
	mu     sync.Mutex
	before map[storeline.EventKind]func()
}

func (a *appendWatch) Append(ctx context.Context, ev storeline.Event) (storeline.Event, bool, error) {
	a.mu.Lock()
	f := a.before[ev.Kind]
	a.mu.Unlock()
	if f != nil {
		f()
	}
	select {
	case a.appends <- ev.Kind:
	default:
	}
	return a.Ledger.Append(ctx, ev)
}

// newGatedEnv is newEnv over a ledger whose WAL syncs g can hold back.
func newGatedEnv(t *testing.T) (*env, *syncGate, *appendWatch, *ledger.Ledger) {
	t.Helper()
	return newGatedEnvConfig(t, nil)
}

func newGatedEnvConfig(t *testing.T, set func(*posbridge.Config)) (*env, *syncGate, *appendWatch, *ledger.Ledger) {
	t.Helper()
	g := &syncGate{entered: make(chan struct{}, 1)}
	o := testLedgerOptions(t.TempDir())
	o.Seams = &ledger.Seams{Sync: g.sync}
	led, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.open(); led.Close() })
	if _, err := led.PutMaster(context.Background(), fixture()); err != nil {
		t.Fatal(err)
	}
	w := &appendWatch{Ledger: led, appends: make(chan storeline.EventKind, 16)}
	e := newEnvConfig(t, nil, func(c *posbridge.Config) {
		c.Ledger = w
		c.Balances = func(prefix string) ([]posbridge.Balance, error) {
			bs, err := led.Balances(prefix)
			out := make([]posbridge.Balance, len(bs))
			for i, b := range bs {
				out[i] = posbridge.Balance(b)
			}
			return out, err
		}
		c.MasterChanges = func(after uint64, limit int) ([]posbridge.MasterChange, error) {
			cs, err := led.MasterChanges(after, limit)
			out := make([]posbridge.MasterChange, len(cs))
			for i, c := range cs {
				out[i] = posbridge.MasterChange(c)
			}
			return out, err
		}
		if set != nil {
			set(c)
		}
	})
	e.led = led
	t.Cleanup(g.open) // runs first: a held sync would block the server's Close
	return e, g, w, led
}

// holdCommits closes the gate and makes a commit take the commit token
// and wait in its sync, so the appends that follow queue behind it.
func holdCommits(t *testing.T, g *syncGate, led *ledger.Ledger) {
	t.Helper()
	g.close()
	go led.SetMeta(context.Background(), "review-blocker", []byte{1}) //nolint:errcheck
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking commit never reached its sync")
	}
}

// postAbandoned posts body to path as a till that gives up (its
// connection drops) once its append is queued in the ledger.
func postAbandoned(t *testing.T, e *env, w *appendWatch, path, token, session string, body any) {
	t.Helper()
	postAbandonedAt(t, e, w, "", path, token, session, body)
}

// postAbandonedAt is postAbandoned giving up at the append of kind
// ("": the first append).
func postAbandonedAt(t *testing.T, e *env, w *appendWatch, kind storeline.EventKind, path, token, session string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := http.NewRequestWithContext(ctx, "POST", e.http.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	if session != "" {
		r.Header.Set("X-Session", session)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(r); err == nil {
			resp.Body.Close()
		}
	}()
	for reached := false; !reached; {
		select {
		case k := <-w.appends:
			reached = kind == "" || k == kind
		case <-time.After(10 * time.Second):
			t.Fatal("the abandoned request never reached its append")
		}
	}
	time.Sleep(200 * time.Millisecond) // into the ledger's queue
	cancel()
	<-done
}

// raceAfterAbandon sends the second request while the first's append is
// still queued, then lets the commits through and returns its answer.
func raceAfterAbandon(t *testing.T, e *env, g *syncGate, w *appendWatch, q req) resp {
	t.Helper()
	got := make(chan resp, 1)
	go func() { got <- e.do(q) }()
	// Give the second request the chance to reach its own append: with
	// the first's lock released it does, else it waits for the lock.
	select {
	case <-w.appends:
	case <-time.After(time.Second):
	}
	g.open()
	select {
	case r := <-got:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the second request never answered")
	}
	return resp{}
}

// TestReviewAbandonedSpendKeepsCustomerLock: a till gives up on a receipt
// paying all of a customer's points while its append waits in the
// ledger's queue (the append still lands: "outcome unknown"). A second
// till paying the same points at that moment must not be taken against
// rights the first receipt is spending: the shop would spend beyond its
// rights.
func TestReviewAbandonedSpendKeepsCustomerLock(t *testing.T) {
	e, g, w, led := newGatedEnv(t)
	e.addPricing()
	e.addClub()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("1")}), 201)
	const n = 71
	if e.rights() != n {
		t.Fatalf("rights %d, want %d", e.rights(), n)
	}
	for len(w.appends) > 0 {
		<-w.appends
	}
	holdCommits(t, g, led)
	postAbandoned(t, e, w, "/v1/receipts", tokenT1, "", spendSale("t1", n))
	r := raceAfterAbandon(t, e, g, w, req{method: "POST", path: "/v1/receipts", token: tokenT2, body: spendSale("t2", n)})
	// The abandoned receipt has landed by now (its commit went first).
	if got := e.rights(); got < 0 {
		t.Fatalf("rights %d after two tills paid all %d points (second answered %d): the shop spent beyond its rights", got, n, r.status)
	}
	if r.status != 409 {
		t.Fatalf("second spend = %d %s, want 409", r.status, r.body)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// TestReviewAbandonedReturnKeepsReceiptLock: a manager's till gives up on
// a return of a receipt's only bottle while the append waits in the
// ledger's queue; a second return of the same bottle at that moment must
// be refused, not recorded as well.
func TestReviewAbandonedReturnKeepsReceiptLock(t *testing.T) {
	e, g, w, led := newGatedEnv(t)
	e.addPricing()
	e.addClub()
	bob := e.login(tokenT1, "bob", "9999")
	rc := earnSale("1")
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201)
	ret := func() map[string]any {
		return map[string]any{
			"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": "2026-03-10T10:30:00Z",
			"reason": "broken", "original": rc["id"],
			"lines":   []map[string]any{line("sku", "WINE", "qty", "1", "price", "7.19")},
			"refunds": []map[string]any{line("method", "cash", "amount", "7.19")},
		}
	}
	for len(w.appends) > 0 {
		<-w.appends
	}
	holdCommits(t, g, led)
	postAbandoned(t, e, w, "/v1/returns", tokenT1, bob, ret())
	r := raceAfterAbandon(t, e, g, w, req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: ret()})
	id, err := storeline.ParseEventID(rc["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	rets, err := led.ReturnsOf(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rets) != 1 || r.status != 422 {
		t.Fatalf("%d returns of the receipt's one bottle recorded, the second answered %d %s; want 1 and a 422", len(rets), r.status, r.body)
	}
	if e.rights() < 0 {
		t.Fatalf("rights %d after the returns", e.rights())
	}
}

// TestReviewPointsWorthOverPayments: points split over several payments
// are worth what the programme's ratio makes of them together. At 0.005
// a point, 6 points are worth 0.03; paid as 3 + 3 they must not be worth
// 0.02 + 0.02; and ten payments of 1 point must not pay 0.10 of a 0.10
// receipt when at most 50% of it may be paid with points.
func TestReviewPointsWorthOverPayments(t *testing.T) {
	e := newEnv(t)
	e.addPricing()
	half := &storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("10"),
		ExcludeItems: []storeline.ItemID{"cola"}, PointValue: dec("0.005"), MaxShare: dec("50")}
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{half}); err != nil {
		t.Fatal(err)
	}
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: earnSale("10")}), 201)
	pointsPaid := func(m map[string]any) (string, int64) {
		sum, pts := dec("0"), int64(0)
		for _, p := range m["payments"].([]any) {
			p := p.(map[string]any)
			if p["method"] == "points" {
				sum = sum.Add(dec(p["amount"].(string)))
				pts += int64(p["points"].(float64))
			}
		}
		return sum.StringFixed(2), pts
	}
	b := sale(newID(), []map[string]any{line("sku", "COLA", "qty", "4", "price", "1.80")},
		[]map[string]any{{"method": "points", "points": 3}, {"method": "points", "points": 3}, line("method", "cash", "amount", "7.20")})
	b["card"] = "CARD0001"
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 201)
	if worth, pts := pointsPaid(m); pts != 6 || worth != "0.03" {
		t.Errorf("%d points paid %s, want 6 points worth 0.03 (at 0.005 a point)", pts, worth)
	}

	pays := make([]map[string]any, 10)
	for i := range pays {
		pays[i] = map[string]any{"method": "points", "points": 1}
	}
	b = sale(newID(), []map[string]any{line("sku", "COLA", "qty", "1", "price", "0.10")}, pays)
	b["card"] = "CARD0001"
	r := e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b})
	if r.status == 201 {
		if worth, pts := pointsPaid(r.json(t)); dec(worth).GreaterThan(dec("0.05")) {
			t.Errorf("%d points paid %s of a 0.10 receipt; at most 50%% (0.05) may be paid with points", pts, worth)
		}
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// offlineCentral is a PointsBroker whose central counts as reachable for
// hand-backs but answers nothing else: a reservation is Unavailable.
type offlineCentral struct{}

func (offlineCentral) Online() bool { return true }
func (offlineCentral) Reserve(context.Context, storeline.ProgrammeID, storeline.CustomerID, storeline.EventID, int64) (int64, int64, error) {
	return 0, 0, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (offlineCentral) Points(context.Context, storeline.ProgrammeID, storeline.CustomerID) (posbridge.CentralPoints, bool, error) {
	return posbridge.CentralPoints{}, false, storeline.Errorf(storeline.Unavailable, "test", "central unreachable")
}
func (offlineCentral) OfflineSpent(storeline.ProgrammeID, storeline.CustomerID, storeline.Date) (int64, error) {
	return 0, nil
}
func (offlineCentral) AddOfflineSpent(context.Context, storeline.ProgrammeID, storeline.CustomerID, storeline.Date, int64) error {
	return nil
}

// TestReviewAbandonedHandbackKeepsCustomerLock: after an earning receipt
// the shop hands the points above its float (0 here) back to central; the
// till gives up while that hand-back waits in the ledger's queue. A spend
// of the same points at another till at that moment must not be taken
// against the rights being handed back.
func TestReviewAbandonedHandbackKeepsCustomerLock(t *testing.T) {
	e, g, w, led := newGatedEnvConfig(t, func(c *posbridge.Config) {
		c.Points = offlineCentral{}
		c.PointsFloat = 0
	})
	e.addPricing()
	e.addClub()
	w.mu.Lock()
	w.before = map[storeline.EventKind]func(){storeline.KindPointsHandback: func() { holdCommits(t, g, led) }}
	w.mu.Unlock()
	for len(w.appends) > 0 {
		<-w.appends
	}
	postAbandonedAt(t, e, w, storeline.KindPointsHandback, "/v1/receipts", tokenT1, "", earnSale("1"))
	w.mu.Lock()
	w.before = nil
	w.mu.Unlock()
	r := raceAfterAbandon(t, e, g, w, req{method: "POST", path: "/v1/receipts", token: tokenT2, body: spendSale("t2", 71)})
	if got := e.rights(); got < 0 {
		t.Fatalf("rights %d after 71 earned were handed back and spent at once (the spend answered %d): the shop spent beyond its rights", got, r.status)
	}
	if r.status != 409 {
		t.Fatalf("spend = %d %s, want 409", r.status, r.body)
	}
	if err := e.led.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

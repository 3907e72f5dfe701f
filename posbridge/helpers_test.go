package posbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// gtin appends the GS1 check digit to body.
func gtin(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return body + string(rune('0'+(10-sum%10)%10))
}

// The fixture: store s1 in Berlin selling in EUR from departments food and
// drinks, priced by list "promo" first, then "base".
var (
	t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) // 10:00 in Berlin

	milkEAN   = gtin("460123456789")  // EAN-13
	milkBox   = gtin("460123456790")  // a box of 12
	wineEAN8  = gtin("9638507")       // EAN-8
	colaUPC   = gtin("03600029145")   // UPC-A
	cheeseKey = gtin("201234500000")  // weighed item 12345, weight zeroed
	shoeGTIN  = gtin("0460000000001") // marked goods, GTIN-14
)

const (
	tokenT1 = "token-of-till-1-secret"
	tokenT2 = "token-of-till-2-secret"
	tokenX  = "token-of-another-store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t      testing.TB
	led    *ledger.Ledger
	srv    *posbridge.Server
	http   *httptest.Server
	clock  *clock
	reg    *prometheus.Registry
	router routers.Router
}

// pinHashes memoizes hashPIN: the salt is fixed, so a PIN's hash is too,
// and PBKDF2 in every test's fixture was a fifth of the package's CPU.
var pinHashes sync.Map // PIN → hash

func hashPIN(pin string) string {
	if h, ok := pinHashes.Load(pin); ok {
		return h.(string)
	}
	h := storeline.HashPIN(pin, []byte("0123456789abcdef"))
	pinHashes.Store(pin, h)
	return h
}

func fixture() []storeline.Record {
	item := func(id, sku, dept string, unit storeline.Unit, vat string, bcs ...storeline.ItemBarcode) *storeline.Item {
		return &storeline.Item{ID: storeline.ItemID(id), SKU: sku, Name: id, Group: "g-" + storeline.GroupID(dept), Dept: storeline.DeptID(dept), Unit: unit, VATRate: dec(vat), Barcodes: bcs}
	}
	one := decimal.NewFromInt(1)
	cheese := item("cheese", "CHS", "food", storeline.Kg, "10", storeline.ItemBarcode{Code: cheeseKey, Factor: one})
	cheese.Weighed = true
	shoe := item("shoe", "SHOE", "shoes", storeline.Piece, "20", storeline.ItemBarcode{Code: shoeGTIN, Factor: one})
	shoe.Marked = true
	return []storeline.Record{
		&storeline.Store{ID: "s1", Name: "Shop 1", TimeZone: "Europe/Berlin", Currency: "EUR",
			Departments: []storeline.Department{{ID: "food"}, {ID: "drinks"}, {ID: "shoes"}}, PriceLists: []storeline.PriceListID{"promo", "base"}},
		&storeline.Group{ID: "g-food", Name: "Food"}, &storeline.Group{ID: "g-drinks", Name: "Drinks"}, &storeline.Group{ID: "g-shoes", Name: "Shoes"},
		&storeline.Group{ID: "g-toys", Name: "Toys"},
		item("milk", "MILK", "food", storeline.Piece, "10", storeline.ItemBarcode{Code: milkEAN, Factor: one}, storeline.ItemBarcode{Code: milkBox, Factor: decimal.NewFromInt(12)}),
		item("wine", "WINE", "drinks", storeline.Piece, "20", storeline.ItemBarcode{Code: wineEAN8}),
		item("cola", "COLA", "drinks", storeline.Piece, "20", storeline.ItemBarcode{Code: colaUPC}),
		item("toy", "TOY", "toys", storeline.Piece, "20"), // a department s1 lacks
		cheese, shoe,
		&storeline.PriceList{ID: "base", Currency: "EUR"}, &storeline.PriceList{ID: "promo", Currency: "EUR"},
		&storeline.Price{List: "base", Item: "milk", From: t0.Add(-48 * time.Hour), Price: dec("1.29")},
		&storeline.Price{List: "base", Item: "milk", From: t0.Add(-24 * time.Hour), Price: dec("1.19")},
		&storeline.Price{List: "base", Item: "milk", From: t0.Add(24 * time.Hour), Price: dec("1.49")}, // not yet
		&storeline.Price{List: "promo", Item: "wine", From: t0.Add(-time.Hour), Price: dec("7.99")},
		&storeline.Price{List: "base", Item: "wine", From: t0.Add(-48 * time.Hour), Price: dec("9.99")},
		&storeline.Price{List: "base", Item: "cola", From: t0.Add(-48 * time.Hour), Price: dec("2.00")},
		&storeline.Price{List: "base", Item: "cheese", From: t0.Add(-48 * time.Hour), Price: dec("15.90")},
		&storeline.Price{List: "base", Item: "shoe", From: t0.Add(-48 * time.Hour), Price: dec("59.00")},
		&storeline.CustomerGroup{ID: "vip", Name: "VIP"},
		&storeline.Customer{ID: "cust1", Name: "Ann", Group: "vip"},
		&storeline.CardRecord{ID: "card1", Code: "CARD0001", Kind: storeline.LoyaltyCard, Customer: "cust1"},
		&storeline.Seller{ID: "alice", Name: "Alice", Role: storeline.Cashier, PINHash: hashPIN("1234"), Stores: []storeline.StoreID{"s1"}},
		&storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Manager, PINHash: hashPIN("9999")},
		&storeline.Seller{ID: "carol", Name: "Carol", Role: storeline.Cashier, PINHash: hashPIN("1111"), Stores: []storeline.StoreID{"s2"}},
		&storeline.Terminal{ID: "t1", Store: "s1", TokenHash: storeline.TokenHash(tokenT1)},
		&storeline.Terminal{ID: "t2", Store: "s1", TokenHash: storeline.TokenHash(tokenT2)},
		&storeline.Terminal{ID: "x1", Store: "s2", TokenHash: storeline.TokenHash(tokenX)},
		&storeline.Message{ID: "m1", Text: "Inventory on Friday", From: t0.Add(-time.Hour)},
		&storeline.Message{ID: "m2", Text: "For shop 2", From: t0.Add(-time.Hour), Stores: []storeline.StoreID{"s2"}},
		&storeline.Message{ID: "m3", Text: "Expired", From: t0.Add(-48 * time.Hour), Until: t0.Add(-24 * time.Hour)},
	}
}

// newEnv opens a real ledger in a temp dir, loads the fixture and serves
// posbridge on an ephemeral port.
func newEnv(t testing.TB) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the server's view of the ledger wrapped by wrap
// (nil: none), e.g. to count the calls a handler makes.
func newEnvWith(t testing.TB, wrap func(posbridge.Ledger) posbridge.Ledger) *env {
	t.Helper()
	return newEnvConfig(t, wrap, nil)
}

// testLedgerOptions are the ledger's defaults with a small WAL segment
// and memtable. Opening a ledger zero-fills its first segment and
// allocates its memtable: at the defaults (32 and 64 MiB) that was 0.6 s
// of every test's fixture under -race, a third of it at these; the tills'
// bodies (MaxBodyBytes 64 KiB) come nowhere near a batch of 1 MiB.
func testLedgerOptions(dir string) ledger.Options {
	o := ledger.DefaultOptions(dir, "s1")
	o.WALSegmentBytes, o.MaxBatchBytes, o.MemTableBytes = 4<<20, 1<<20, 8<<20
	return o
}

// newEnvConfig is newEnvWith with the server's config changed by set (nil:
// none) after the fixture's defaults are in.
func newEnvConfig(t testing.TB, wrap func(posbridge.Ledger) posbridge.Ledger, set func(*posbridge.Config)) *env {
	t.Helper()
	led, err := ledger.Open(testLedgerOptions(t.TempDir()))
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { led.Close() })
	if _, err := led.PutMaster(context.Background(), fixture()); err != nil {
		t.Fatalf("PutMaster: %v", err)
	}
	e := &env{t: t, led: led, clock: &clock{t: t0}, reg: prometheus.NewRegistry()}
	cfg := posbridge.DefaultConfig()
	cfg.Store = "s1"
	wireLedger(&cfg, led)
	if wrap != nil {
		cfg.Ledger = wrap(led)
	}
	cfg.Now = e.clock.Now
	cfg.Registerer = e.reg
	cfg.MaxBodyBytes = 64 << 10
	cfg.PINAttempts = 3
	cfg.PINWindow = time.Minute
	cfg.Version = "test"
	if set != nil {
		set(&cfg)
	}
	e.srv, err = posbridge.New(cfg)
	if err != nil {
		t.Fatalf("posbridge.New: %v", err)
	}
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	e.router = specRouter(t)
	return e
}

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specErr  error
)

func specRouter(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		l := openapi3.NewLoader()
		specDoc, specErr = l.LoadFromData(posbridge.OpenAPI())
		if specErr == nil {
			specErr = specDoc.Validate(l.Context)
		}
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	r, err := gorillamux.NewRouter(specDoc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return r
}

// req is one call to the API.
type req struct {
	method, path string
	body         any    // marshalled to JSON unless raw is set
	raw          string // sent as is
	token        string // terminal token; "" for none
	session      string
	invalid      bool // the request breaks the spec on purpose: do not validate it
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// do sends a request over real HTTP, validating the request (unless marked
// invalid) and always the answer against openapi.yaml.
func (e *env) do(q req) resp {
	e.t.Helper()
	var body []byte
	switch {
	case q.raw != "":
		body = []byte(q.raw)
	case q.body != nil:
		var err error
		if body, err = json.Marshal(q.body); err != nil {
			e.t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		r, err := http.NewRequest(q.method, e.http.URL+q.path, bytes.NewReader(body))
		if err != nil {
			e.t.Fatal(err)
		}
		if body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		if q.token != "" {
			r.Header.Set("Authorization", "Bearer "+q.token)
		}
		if q.session != "" {
			r.Header.Set("X-Session", q.session)
		}
		return r
	}
	vr := newReq()
	vr.URL.Host, vr.URL.Scheme = "", ""
	vr.Host = ""
	route, params, err := e.router.FindRoute(vr)
	if err != nil {
		e.t.Fatalf("%s %s: not in openapi.yaml: %v", q.method, q.path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if !q.invalid {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			e.t.Fatalf("%s %s: request breaks openapi.yaml: %v", q.method, q.path, err)
		}
	}
	hr, err := http.DefaultClient.Do(newReq())
	if err != nil {
		e.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer hr.Body.Close()
	rb, err := io.ReadAll(hr.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: hr.StatusCode, Header: hr.Header, Body: io.NopCloser(bytes.NewReader(rb)),
	}); err != nil {
		e.t.Fatalf("%s %s: answer %d breaks openapi.yaml: %v\n%s", q.method, q.path, hr.StatusCode, err, rb)
	}
	return resp{status: hr.StatusCode, header: hr.Header, body: rb}
}

// must checks the status of an answer.
func (e *env) must(r resp, status int) map[string]any {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	return r.json(e.t)
}

// problem checks a problem answer's status and field.
func (e *env) problem(r resp, status int, field string) {
	e.t.Helper()
	m := e.must(r, status)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		e.t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	if m["field"] != nil && m["field"] != field || m["field"] == nil && field != "" {
		e.t.Fatalf("problem field %v, want %q: %s", m["field"], field, r.body)
	}
}

// login opens a session for seller at the terminal with token.
func (e *env) login(token, seller, pin string) string {
	e.t.Helper()
	m := e.must(e.do(req{method: "POST", path: "/v1/sessions", token: token, body: map[string]any{"seller": seller, "pin": pin}}), 201)
	return m["token"].(string)
}

func newID() string { return storeline.NewEventID().String() }

// sale builds a receipt body at t1 in shift sh1 by alice.
func sale(id string, lines []map[string]any, pays []map[string]any) map[string]any {
	return map[string]any{
		"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice",
		"occurred_at": t0.Format(time.RFC3339), "catalog_version": 1,
		"lines": lines, "payments": pays,
	}
}

func line(kv ...string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// wireLedger serves cfg's reads from led: its events, balances and master
// changes.
func wireLedger(cfg *posbridge.Config, led *ledger.Ledger) {
	cfg.Ledger = led
	cfg.Balances = func(prefix string) ([]posbridge.Balance, error) {
		bs, err := led.Balances(prefix)
		out := make([]posbridge.Balance, len(bs))
		for i, b := range bs {
			out[i] = posbridge.Balance(b)
		}
		return out, err
	}
	cfg.MasterChanges = func(after uint64, limit int) ([]posbridge.MasterChange, error) {
		cs, err := led.MasterChanges(after, limit)
		out := make([]posbridge.MasterChange, len(cs))
		for i, c := range cs {
			out[i] = posbridge.MasterChange(c)
		}
		return out, err
	}
}

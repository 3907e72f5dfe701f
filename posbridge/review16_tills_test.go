package posbridge_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/posbridge"
)

// Review 16: the tills' API. Each test failed on the code before its fix.

// stockSeq numbers head office's events delivered by deliverStock.
var stockSeq atomic.Uint64

// deliverStock applies one head-office event moving units of items into
// the shop's stock: qty[i] of items[i] into department dept (from the
// supplier), and value in EUR with it, as a pulled delivery does.
func deliverStock(t testing.TB, led *ledger.Ledger, dept storeline.DeptID, items []storeline.ItemID, qty decimal.Decimal) {
	t.Helper()
	var ps []storeline.Posting
	for _, it := range items {
		acct := storeline.StockAccount("s1", dept, it)
		ps = append(ps,
			storeline.Posting{Account: acct, Asset: storeline.ItemAsset(it), Amount: qty},
			storeline.Posting{Account: "supplier/sup1", Asset: storeline.ItemAsset(it), Amount: qty.Neg()},
			storeline.Posting{Account: acct, Asset: storeline.MoneyAsset("EUR"), Amount: qty},
			storeline.Posting{Account: "supplier/sup1", Asset: storeline.MoneyAsset("EUR"), Amount: qty.Neg()},
		)
	}
	at := t0
	if _, err := led.ApplyRemote(context.Background(), storeline.Event{
		ID: storeline.NewEventID(), Origin: "hq", Epoch: 1, Seq: stockSeq.Add(1), SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery"},
		OccurredAt: at, BusinessDate: storeline.Date(at.Format(time.DateOnly)), Postings: ps,
	}); err != nil {
		t.Fatalf("deliver %s of %d items to %s: %v", qty, len(items), dept, err)
	}
}

// stockByScan is GET /v1/stock/{sku}'s answer as the node gave it before
// review 16: every balance of the shop's stock read, one item's kept.
func stockByScan(t *testing.T, led *ledger.Ledger, item storeline.ItemID) (string, string) {
	t.Helper()
	bs, err := led.Balances("stock/s1/")
	if err != nil {
		t.Fatal(err)
	}
	total := decimal.Zero
	var depts []string
	for _, b := range bs {
		dept, it, ok := strings.Cut(strings.TrimPrefix(b.Account, "stock/s1/"), "/")
		if !ok || it != string(item) || b.Asset != storeline.ItemAsset(item) {
			continue
		}
		total = total.Add(b.Amount)
		depts = append(depts, fmt.Sprintf("map[dept:%s qty:%s]", dept, b.Amount))
	}
	sort.Strings(depts)
	return total.String(), "[" + strings.Join(depts, " ") + "]"
}

// TestReview16StockLookupReadsOneItem: GET /v1/stock/{sku}, a till's
// every stock lookup, read every stock balance of the shop (two per item
// and department: units and value) to keep one item's: at a shop of 50,000
// items, 100,000 balances decoded per lookup. It now seeks to the item's
// own account in each department (ledger.BalancesAcross) and scans no
// balances of the shop.
func TestReview16StockLookupReadsOneItem(t *testing.T) {
	var scans atomic.Int64
	e := newEnvConfig(t, nil, func(c *posbridge.Config) {
		inner := c.Balances
		c.Balances = func(prefix string) ([]posbridge.Balance, error) {
			if strings.HasPrefix(prefix, "stock/") {
				scans.Add(1)
			}
			return inner(prefix)
		}
	})
	items := make([]storeline.ItemID, 2000)
	for i := range items {
		items[i] = storeline.ItemID(fmt.Sprintf("item%05d", i))
	}
	deliverStock(t, e.led, "food", append(items, "milk"), dec("3"))
	deliverStock(t, e.led, "drinks", items, dec("2"))
	for range 3 {
		m := e.must(e.do(req{method: "GET", path: "/v1/stock/MILK", token: tokenT1}), 200)
		if m["on_hand"] != "3" {
			t.Fatalf("stock = %v, want 3 on hand", m)
		}
	}
	if n := scans.Load(); n > 0 {
		t.Fatalf("3 stock lookups scanned the shop's stock balances %d times, want none", n)
	}
}

// TestReview16StockAnswerUnchanged: the item's own accounts give what the
// scan of the whole shop gave: every department holding it, a balance
// back at zero included, a department the store record no longer lists
// (stock stays there until moved) included, not an item whose ID
// begins with this one's, not the value the account also holds.
func TestReview16StockAnswerUnchanged(t *testing.T) {
	e := newEnv(t)
	check := func(sku string, item storeline.ItemID) {
		t.Helper()
		m := e.must(e.do(req{method: "GET", path: "/v1/stock/" + sku, token: tokenT1}), 200)
		total, depts := stockByScan(t, e.led, item)
		if m["on_hand"] != total || fmt.Sprint(m["departments"]) != depts {
			t.Fatalf("stock of %s = %v %v, want %s %s", sku, m["on_hand"], m["departments"], total, depts)
		}
	}
	check("MILK", "milk") // nothing yet: 0, no department
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk", "milk2"}, dec("5"))
	deliverStock(t, e.led, "drinks", []storeline.ItemID{"milk"}, dec("1.5"))
	deliverStock(t, e.led, "drinks", []storeline.ItemID{"milk"}, dec("-1.5")) // back to 0
	check("MILK", "milk")
	// Stock in a department the node's store record never listed (head
	// office's event pulled before the record's change).
	deliverStock(t, e.led, "cellar", []storeline.ItemID{"milk", "wine"}, dec("7"))
	check("MILK", "milk")
	check("WINE", "wine")
	// A sale moves stock out of food.
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(newID(),
		[]map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "2.38"}})}), 201)
	check("MILK", "milk")
	// The store drops a department that holds stock: it is still counted.
	e.putMaster(&storeline.Store{ID: "s1", Name: "Shop 1", TimeZone: "Europe/Berlin", Currency: "EUR",
		Departments: []storeline.Department{{ID: "drinks"}, {ID: "shoes"}}, PriceLists: []storeline.PriceListID{"promo", "base"}})
	check("MILK", "milk")
	// A department's first stock of any item, learnt without a master
	// change: one the store lists.
	deliverStock(t, e.led, "shoes", []storeline.ItemID{"milk"}, dec("1"))
	check("MILK", "milk")
	// One it does not list, without a master change.
	deliverStock(t, e.led, "attic", []storeline.ItemID{"milk"}, dec("4"))
	check("MILK", "milk")
}

// BenchmarkReview16StockLookup measures GET /v1/stock/{sku} at a shop
// holding 50,000 items in two departments (the handler alone).
func BenchmarkReview16StockLookup(b *testing.B) {
	e := newEnv(b)
	const n, per = 50000, 2000
	for start := 0; start < n; start += per {
		items := make([]storeline.ItemID, 0, per)
		for i := start; i < start+per && i < n; i++ {
			items = append(items, storeline.ItemID(fmt.Sprintf("item%05d", i)))
		}
		dept := storeline.DeptID("food")
		if start%(2*per) != 0 {
			dept = "drinks"
		}
		deliverStock(b, e.led, dept, items, decimal.NewFromInt(int64(start%7+1)))
	}
	deliverStock(b, e.led, "food", []storeline.ItemID{"milk"}, dec("3"))
	h := e.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/v1/stock/MILK", nil)
		r.Header.Set("Authorization", "Bearer "+tokenT1)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"on_hand":"3"`) {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// TestReview16ReceiptWithEndedSession: a receipt needs only the terminal
// token, and an expired session sent with it is ignored (openapi.yaml,
// OptionalSession): its seller is the one the receipt names. A session
// ended otherwise (README: its seller deleted, or their PIN reset) was not
// ignored but still checked against the receipt's seller: a manager's
// till ringing a sale for a cashier had the sale, which happened,
// refused 403 naming seller, every retry too, while the same receipt
// with the session expired was stored. An ended session is now ignored
// as an expired one is, and ended.
func TestReview16ReceiptWithEndedSession(t *testing.T) {
	e := newEnv(t)
	cash := []map[string]any{{"method": "cash", "amount": "1.19"}}
	post := func(session string) (string, resp) {
		id := newID()
		return id, e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: session,
			body: sale(id, []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, cash)})
	}
	stored := func(id string) {
		t.Helper()
		m := e.must(e.do(req{method: "GET", path: "/v1/receipts/" + id, token: tokenT1}), 200)
		if m["seller"] != "alice" {
			t.Fatalf("receipt %s seller %v, want alice", id, m["seller"])
		}
	}
	// A live manager's session may post for alice; an expired one is ignored.
	bob := e.login(tokenT1, "bob", "9999")
	id, r := post(bob)
	e.must(r, 201)
	stored(id)
	e.clock.Add(13 * time.Hour)
	id, r = post(bob)
	e.must(r, 201)
	stored(id)

	// Ended by a PIN reset.
	bob = e.login(tokenT1, "bob", "9999")
	e.putMaster(&storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Manager, PINHash: hashPIN("4242")})
	id, r = post(bob)
	e.must(r, 201)
	stored(id)
	// Ended by the seller's removal.
	bob = e.login(tokenT1, "bob", "4242")
	if _, err := e.led.DeleteMaster(context.Background(), storeline.KindSeller, "bob"); err != nil {
		t.Fatal(err)
	}
	id, r = post(bob)
	e.must(r, 201)
	stored(id)
	if n := e.srv.SessionsHeld(); n != 0 {
		t.Fatalf("%d sessions held, want 0: an ended session is ended", n)
	}
}

// TestReview16ReceiptRetryAfterDemotion: a manager's till stored a sale
// rung for a cashier (201) and lost the answer; the manager was demoted
// (their session lives on: README) before the till retried. The retry, a
// receipt the node holds already, was refused 403 naming seller before it
// was looked up: the till could never learn the sale was stored. A retry
// is now answered from the stored receipt (200) whoever's session it
// carries; a new receipt for another seller is still refused.
func TestReview16ReceiptRetryAfterDemotion(t *testing.T) {
	e := newEnv(t)
	cash := []map[string]any{{"method": "cash", "amount": "1.19"}}
	bob := e.login(tokenT1, "bob", "9999")
	id := newID()
	body := sale(id, []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, cash)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: bob, body: body}), 201)
	e.putMaster(&storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Cashier, PINHash: hashPIN("9999")})
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: bob, body: body}), 200)
	if m["id"] != id || m["seller"] != "alice" {
		t.Fatalf("retry answered %v", m)
	}
	// Another body under the ID is still a conflict, not a 403.
	other := sale(id, []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "2.38"}})
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: bob, body: other}), 409, "id")
	// A new receipt for alice under bob's cashier session is refused.
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: bob,
		body: sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, cash)}), 403, "seller")
}

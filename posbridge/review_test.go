package posbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// Regression tests for defects a review found, each probed first.

// as is e reporting to t, for a subtest.
func (e *env) as(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

func loginBody(seller, pin string) map[string]any {
	return map[string]any{"seller": seller, "pin": pin}
}

// TestPINLockoutSurvivesFlood: made-up sellers filling the failure records
// must not switch the lock-out off for a real seller.
func TestPINLockoutSurvivesFlood(t *testing.T) {
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.MaxSessions = 5 })
	login := func(seller, pin string) resp {
		return e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: loginBody(seller, pin)})
	}
	for i := range 20 {
		if r := login(fmt.Sprintf("ghost%d", i), "0000"); r.status != 401 && r.status != 429 {
			t.Fatalf("ghost %d: status %d: %s", i, r.status, r.body)
		}
	}
	for range 3 {
		if r := login("alice", "0000"); r.status != 401 && r.status != 429 {
			t.Fatalf("alice's wrong PIN: status %d: %s", r.status, r.body)
		}
	}
	r := login("alice", "1234")
	e.problem(r, 429, "")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	e.clock.Add(61 * time.Second)
	e.must(login("alice", "1234"), 201)
}

// TestPINAttemptsConcurrent: concurrent wrong PINs check at most
// PINAttempts PINs; the rest are locked out.
func TestPINAttemptsConcurrent(t *testing.T) {
	e := newEnv(t) // PINAttempts 3
	const tries = 12
	status := make([]int, tries)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := rawPost(e, "/v1/sessions", "", loginBody("alice", "0000"))
			if err != nil {
				status[i] = -1
				return
			}
			status[i] = r.status
		}()
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, s := range status {
		switch s {
		case 401:
			checked++
		case 429:
		default:
			t.Fatalf("statuses %v: want only 401 and 429", status)
		}
	}
	if checked != 3 {
		t.Fatalf("%d PINs checked (401), want 3: %v", checked, status)
	}
	e.problem(e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: loginBody("alice", "1234")}), 429, "")
}

// slowReturns holds each read of a receipt's returns long enough for a
// concurrent return to read them too before either appends.
type slowReturns struct{ posbridge.Ledger }

func (l slowReturns) ReturnsOf(orig storeline.EventID) ([]storeline.Event, error) {
	evs, err := l.Ledger.ReturnsOf(orig)
	time.Sleep(100 * time.Millisecond)
	return evs, err
}

// TestConcurrentReturnsOfLastUnit: two returns of the last unit at once
// refund it once.
func TestConcurrentReturnsOfLastUnit(t *testing.T) {
	e := newEnvWith(t, func(l posbridge.Ledger) posbridge.Ledger { return slowReturns{l} })
	bob := e.login(tokenT1, "bob", "9999")
	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid,
		[]map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
		[]map[string]any{{"method": "cash", "amount": "1.19"}})}), 201)
	const n = 2
	answers := make([]resp, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := rawPost(e, "/v1/returns", bob, map[string]any{
				"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339),
				"original": rid, "reason": "sour",
				"lines":   []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
				"refunds": []map[string]any{{"method": "cash", "amount": "1.19"}},
			})
			if err != nil {
				r.status = -1
			}
			answers[i] = r
		}()
	}
	close(start)
	wg.Wait()
	slices.SortFunc(answers, func(a, b resp) int { return a.status - b.status })
	if answers[0].status != 201 || answers[1].status != 422 {
		t.Fatalf("statuses %d, %d; want one 201 and one 422: %s / %s", answers[0].status, answers[1].status, answers[0].body, answers[1].body)
	}
	var p map[string]any
	if err := json.Unmarshal(answers[1].body, &p); err != nil || p["field"] != "lines[0].qty" {
		t.Fatalf("refusal %s, want field lines[0].qty", answers[1].body)
	}
}

// TestReceiptRetryAfterSessionExpired: a receipt needs only the terminal
// token; its retry lands after the seller's session has expired.
func TestReceiptRetryAfterSessionExpired(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "1.19"}})
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: alice, body: body}), 201)
	e.clock.Add(13 * time.Hour)
	m2 := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: alice, body: body}), 200)
	if m2["seq"] != m["seq"] {
		t.Fatalf("retry = %v, want the stored receipt %v", m2, m)
	}
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: "no-such-session", body: sale(newID(),
		[]map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "1.19"}})}), 201)
	// Routes that need a session still refuse an expired one.
	e.problem(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: alice}), 401, "")
}

// TestReceiptRetryAfterMasterDataChange: a retry is compared by what the
// till sent, so master data changed since does not make it a conflict.
func TestReceiptRetryAfterMasterDataChange(t *testing.T) {
	e := newEnv(t)
	id := newID()
	body := sale(id, []map[string]any{
		line("sku", "MILK", "qty", "2", "price", "1.19"),
		line("barcode", milkBox, "qty", "1", "price", "1.19"),
		line("barcode", gtin("201234500347"), "price", "15.90"),
		line("barcode", "01"+shoeGTIN+"21SER001", "price", "59.00"),
	}, []map[string]any{{"method": "card", "amount": "50.00", "reference": "R1"}, {"method": "cash", "amount": "50"}})
	body["card"] = "CARD0001"
	body["fiscal"] = map[string]any{"document_number": "F-1", "sign": "abc"}
	first := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 201)

	var milk storeline.Item
	if err := e.led.GetMaster(storeline.KindItem, "milk", &milk); err != nil {
		t.Fatal(err)
	}
	milk.VATRate, milk.Dept = dec("20"), "drinks"
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&milk,
		&storeline.Customer{ID: "cust2", Name: "Bea"},
		&storeline.CardRecord{ID: "card1", Code: "CARD0001", Kind: storeline.LoyaltyCard, Customer: "cust2"},
	}); err != nil {
		t.Fatal(err)
	}
	again := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 200)
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v\nwant the stored receipt %v", again, first)
	}
	for name, change := range map[string]func(b map[string]any){
		"price":       func(b map[string]any) { b["lines"].([]map[string]any)[0]["price"] = "1.29" },
		"qty":         func(b map[string]any) { b["lines"].([]map[string]any)[1]["qty"] = "2" },
		"weight":      func(b map[string]any) { b["lines"].([]map[string]any)[2]["qty"] = "0.5" },
		"serial":      func(b map[string]any) { b["lines"].([]map[string]any)[3]["barcode"] = "01" + shoeGTIN + "21SER002" },
		"sku":         func(b map[string]any) { b["lines"].([]map[string]any)[0]["sku"] = "COLA" },
		"reference":   func(b map[string]any) { b["payments"].([]map[string]any)[0]["reference"] = "R2" },
		"card":        func(b map[string]any) { delete(b, "card") },
		"fiscal":      func(b map[string]any) { b["fiscal"] = map[string]any{"document_number": "F-2", "sign": "abc"} },
		"occurred_at": func(b map[string]any) { b["occurred_at"] = t0.Add(time.Minute).Format(time.RFC3339) },
		"shift":       func(b map[string]any) { b["shift"] = "sh2" },
	} {
		t.Run(name, func(t *testing.T) {
			b := maps.Clone(body)
			b["lines"], b["payments"] = copyMaps(body["lines"]), copyMaps(body["payments"])
			change(b)
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b}), 409, "id")
		})
	}
}

func copyMaps(v any) []map[string]any {
	var out []map[string]any
	for _, m := range v.([]map[string]any) {
		out = append(out, maps.Clone(m))
	}
	return out
}

// TestShiftCloseRetryChangedCount: a close's retry with another counted
// cash is a conflict naming it, and a malformed one is refused first.
func TestShiftCloseRetryChangedCount(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339), "float": "100.00"}}), 201)
	cid := newID()
	close := func(counted any) resp {
		b := map[string]any{"id": cid}
		if counted != nil {
			b["counted_cash"] = counted
		}
		return e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: b})
	}
	first := e.must(close("66.00"), 201)
	e.problem(close("65.00"), 409, "counted_cash")
	e.problem(close("1.234"), 422, "counted_cash")
	e.problem(close("-1.00"), 422, "counted_cash")
	e.problem(close(nil), 409, "counted_cash")
	if again := e.must(close("66"), 200); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v, want %v", again, first)
	}
}

// TestDemotedManager: manager rights follow the seller's current record,
// not the role cached when the session opened.
func TestDemotedManager(t *testing.T) {
	e := newEnv(t)
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Seller{ID: "dave", Name: "Dave", Role: storeline.Manager, PINHash: hashPIN("4242"), Stores: []storeline.StoreID{"s1"}},
	}); err != nil {
		t.Fatal(err)
	}
	bob := e.login(tokenT1, "bob", "9999")
	dave := e.login(tokenT1, "dave", "4242")
	at := t0.Format(time.RFC3339)
	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid,
		[]map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19")},
		[]map[string]any{{"method": "cash", "amount": "3.57"}})}), 201)
	ret := func(session string) resp {
		return e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: session, body: map[string]any{
			"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "original": rid, "reason": "sour",
			"lines":   []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
			"refunds": []map[string]any{{"method": "cash", "amount": "1.19"}},
		}})
	}
	cash := func(session, seller, dir string) resp {
		return e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: session, body: map[string]any{
			"id": newID(), "terminal": "t1", "shift": "sh1", "seller": seller, "occurred_at": at, "direction": dir, "amount": "5.00"}})
	}
	e.must(ret(bob), 201)
	e.must(cash(bob, "bob", "out"), 201)
	e.must(cash(bob, "alice", "in"), 201) // a manager may act for a seller

	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{
		&storeline.Seller{ID: "bob", Name: "Bob", Role: storeline.Cashier, PINHash: hashPIN("9999")},
		&storeline.Seller{ID: "dave", Name: "Dave", Role: storeline.Manager, PINHash: hashPIN("4242"), Stores: []storeline.StoreID{"s2"}},
	}); err != nil {
		t.Fatal(err)
	}
	e.problem(ret(bob), 403, "")
	e.problem(cash(bob, "bob", "out"), 403, "direction")
	e.problem(cash(bob, "alice", "in"), 403, "seller")
	e.must(cash(bob, "bob", "in"), 201) // still a seller's session
	// Dave, moved to another store, no longer works here: his session
	// ends, as a login of his would be refused.
	e.problem(cash(dave, "dave", "in"), 401, "")
	e.problem(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: dave}), 401, "")
}

// TestProblemFieldNames: a problem names the field at fault by its JSON
// path.
func TestProblemFieldNames(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bob := e.login(tokenT1, "bob", "9999")
	at := t0.Format(time.RFC3339)
	long := func(n int) string { return strings.Repeat("A", n) }
	post := func(path, session string, body map[string]any) resp {
		return e.do(req{method: "POST", path: path, token: tokenT1, session: session, body: body, invalid: true})
	}
	customer := func(card, phone, email string) map[string]any {
		c := map[string]any{"id": "cust-x", "name": "X"}
		if phone != "" {
			c["phone"] = phone
		}
		if email != "" {
			c["email"] = email
		}
		return map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice", "customer": c, "card_code": card}
	}
	e.problem(post("/v1/customers", alice, customer("ab", "", "")), 422, "card_code")
	e.problem(post("/v1/customers", alice, customer("CARD0009", long(40), "")), 422, "customer.phone")
	e.problem(post("/v1/customers", alice, customer("CARD0009", "", long(300))), 422, "customer.email")

	doc := func(k string, v any, line map[string]any) map[string]any {
		d := map[string]any{"id": newID(), "occurred_at": at, "type": "write_off", "terminal": "t1", "seller": "alice", "reason": "broken",
			"lines": []map[string]any{line}}
		d[k] = v
		return d
	}
	milk := map[string]any{"sku": "MILK", "qty": "1"}
	e.problem(post("/v1/documents", alice, doc("number", long(65), milk)), 422, "number")
	e.problem(post("/v1/documents", alice, doc("reason", long(501), milk)), 422, "reason")
	e.problem(post("/v1/documents", alice, doc("note", long(2001), milk)), 422, "note")
	e.problem(post("/v1/documents", alice, doc("note", "", map[string]any{"sku": "MILK", "qty": "1", "certificate": long(129)})), 422, "lines[0].certificate")
	e.problem(post("/v1/documents", alice, doc("note", "", map[string]any{"sku": "MILK", "qty": "1", "batch": long(65)})), 422, "lines[0].batch")

	milkLine := []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}
	pay := func(k, v string) []map[string]any {
		return []map[string]any{{"method": "cash", "amount": "0.19"}, {"method": "card", "amount": "1.00", k: v}}
	}
	e.problem(post("/v1/receipts", "", sale(newID(), milkLine, pay("reference", long(129)))), 422, "payments[1].reference")
	e.problem(post("/v1/receipts", "", sale(newID(), milkLine, pay("auth_code", long(65)))), 422, "payments[1].auth_code")
	fiscal := sale(newID(), milkLine, pay("reference", "R"))
	fiscal["fiscal"] = map[string]any{"document_number": long(65), "sign": "s"}
	e.problem(post("/v1/receipts", "", fiscal), 422, "fiscal.document_number")
	fiscal["fiscal"] = map[string]any{"document_number": "1", "sign": long(257)}
	e.problem(post("/v1/receipts", "", fiscal), 422, "fiscal.sign")

	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid, milkLine, []map[string]any{{"method": "cash", "amount": "1.19"}})}), 201)
	e.problem(post("/v1/returns", bob, map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "original": rid, "reason": "sour",
		"lines": milkLine, "refunds": []map[string]any{{"method": "card", "amount": "1.19", "auth_code": long(65)}},
	}), 422, "refunds[0].auth_code")
}

// TestMalformedValuesNameTheirField: a value its type refuses while the
// body is decoded is named by its JSON path, array indices included.
func TestMalformedValuesNameTheirField(t *testing.T) {
	e := newEnv(t)
	pos := e.led.Position()
	good := func() map[string]any {
		return sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19"), line("sku", "COLA", "qty", "1", "price", "2.00")},
			[]map[string]any{{"method": "cash", "amount": "5.00"}, {"method": "card", "amount": "1.00"}})
	}
	for _, c := range []struct {
		name, field string
		set         func(b map[string]any)
	}{
		{"exponent", "lines[1].qty", func(b map[string]any) { b["lines"].([]map[string]any)[1]["qty"] = "1e3" }},
		{"decimal as number", "lines[1].price", func(b map[string]any) { b["lines"].([]map[string]any)[1]["price"] = 2 }},
		{"decimal as object", "payments[1].amount", func(b map[string]any) { b["payments"].([]map[string]any)[1]["amount"] = map[string]any{} }},
		{"long decimal", "lines[0].discount", func(b map[string]any) { b["lines"].([]map[string]any)[0]["discount"] = strings.Repeat("1", 40) }},
		{"time", "occurred_at", func(b map[string]any) { b["occurred_at"] = "yesterday" }},
		{"uuid", "id", func(b map[string]any) { b["id"] = "nope" }},
		{"points fraction", "payments[1].points", func(b map[string]any) {
			b["payments"].([]map[string]any)[1] = map[string]any{"method": "points", "points": 1.5}
		}},
		{"string as integer", "catalog_version", func(b map[string]any) { b["catalog_version"] = "x" }},
		{"nested unknown field", "lines[1].colour", func(b map[string]any) { b["lines"].([]map[string]any)[1]["colour"] = "red" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := good()
			c.set(b)
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b, invalid: true}), 400, c.field)
		})
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("bad input moved the journal from %v to %v", pos, got)
	}
}

// TestBarcodePathUnescapedOnce: the mux unescapes the path once; a '%' in
// a marking code's serial stays.
func TestBarcodePathUnescapedOnce(t *testing.T) {
	e := newEnv(t)
	code := "01" + shoeGTIN + "21AB%41"
	m := e.must(e.do(req{method: "GET", path: "/v1/barcodes/" + url.PathEscape(code), token: tokenT1}), 200)
	if m["serial"] != "AB%41" {
		t.Fatalf("serial = %v, want AB%%41", m["serial"])
	}
}

// TestShiftOpenNeedsFloat: the float is required (openapi.yaml).
func TestShiftOpenNeedsFloat(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	e.problem(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, invalid: true, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339)}}), 422, "float")
}

// TestConflictNamesID: the same ID with another body is a 409 naming id.
func TestConflictNamesID(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := map[string]any{"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339),
		"direction": "in", "amount": "10.00"}
	e.must(e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: alice, body: body}), 201)
	body["amount"] = "11.00"
	e.problem(e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: alice, body: body}), 409, "id")
	bk := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "terminal": "t1", "seller": "alice",
		"lines": []map[string]any{line("sku", "WINE", "qty", "2")}}
	e.must(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: bk}), 201)
	bk["note"] = "for later"
	e.problem(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: bk}), 409, "id")
}

// TestMarkedLineOneUnitPerCode: a marking code names one unit, so a
// marked line carries a quantity of one and no code comes twice in a
// receipt; either refusal names the field and records nothing.
func TestMarkedLineOneUnitPerCode(t *testing.T) {
	e := newEnv(t)
	pos := e.led.Position()
	post := func(lines []map[string]any, amount string) resp {
		return e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, invalid: true,
			body: sale(newID(), lines, []map[string]any{{"method": "cash", "amount": amount}})})
	}
	code := func(serial string) string { return "01" + shoeGTIN + "21" + serial }
	e.problem(post([]map[string]any{line("barcode", code("SER101"), "qty", "3", "price", "59.00")}, "177.00"), 422, "lines[0].qty")
	e.problem(post([]map[string]any{line("sku", "SHOE", "serial", "SER102", "qty", "2", "price", "59.00")}, "118.00"), 422, "lines[0].qty")
	e.problem(post([]map[string]any{
		line("barcode", code("SER103"), "price", "59.00"),
		line("barcode", code("SER103"), "price", "59.00"),
	}, "118.00"), 422, "lines[1].serial")
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused receipts moved the journal: %v → %v", pos, got)
	}
	e.must(post([]map[string]any{
		line("barcode", code("SER104"), "price", "59.00"),
		line("barcode", code("SER105"), "price", "59.00"),
	}, "118.00"), 201)
}

package posbridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/posbridge"
)

// Regression tests for the third review (baskets, customers, document
// drafts, catalogue changes, cards, stock, stats), each probed first.

func (e *env) putMaster(recs ...storeline.Record) {
	e.t.Helper()
	if _, err := e.led.PutMaster(context.Background(), recs); err != nil {
		e.t.Fatalf("PutMaster: %v", err)
	}
}

// item reads an item's record as master data holds it now.
func (e *env) item(id string) *storeline.Item {
	e.t.Helper()
	var it storeline.Item
	if err := e.led.GetMaster(storeline.KindItem, id, &it); err != nil {
		e.t.Fatalf("GetMaster %s: %v", id, err)
	}
	return &it
}

// TestRetryWithOtherOccurredAtConflicts: occurred_at is part of what the
// till sent, so the same ID with another occurred_at is another fact:
// 409 naming id, not the first fact answered as if it were a retry.
func TestRetryWithOtherOccurredAtConflicts(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	// Fractions of a second, in another zone: the retry is the same instant.
	at := t0.Add(123456789).In(time.FixedZone("", 3600)).Format(time.RFC3339Nano)
	later := t0.Add(time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/baskets", map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice",
			"lines": []map[string]any{line("sku", "WINE", "qty", "2")}}},
		{"/v1/documents", map[string]any{"id": newID(), "occurred_at": at, "type": "write_off", "terminal": "t1", "seller": "alice",
			"reason": "broken", "lines": []map[string]any{{"sku": "MILK", "qty": "1"}}}},
		{"/v1/customers", map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice",
			"customer": map[string]any{"id": "cust-t", "name": "Tom"}, "card_code": "CARD0077"}},
		{"/v1/shifts", map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "shift": "sh-t", "seller": "alice",
			"float": "100.00"}},
		{"/v1/cash", map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "shift": "sh-t", "seller": "alice",
			"direction": "in", "amount": "20.00", "reason": "change"}},
	} {
		t.Run(c.path, func(t *testing.T) {
			e := e.as(t)
			post := func() resp {
				return e.do(req{method: "POST", path: c.path, token: tokenT1, session: alice, body: c.body})
			}
			e.must(post(), 201)
			e.must(post(), 200)
			c.body["occurred_at"] = later
			e.problem(post(), 409, "id")
		})
	}
}

// TestDocumentRetryAfterVATChange: a draft's retry is answered with the
// stored draft though the item's VAT rate changed at head office in
// between: the till sent the same.
func TestDocumentRetryAfterVATChange(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	doc := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "type": "incoming_invoice", "terminal": "t1",
		"seller": "alice", "supplier": "sup1", "lines": []map[string]any{{"sku": "MILK", "qty": "6", "purchase_price": "0.80"}}}
	post := func() resp {
		return e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: doc})
	}
	first := e.must(post(), 201)
	milk := e.item("milk")
	milk.VATRate = dec("7")
	e.putMaster(milk)
	again := e.must(post(), 200)
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v, want %v", again, first)
	}
	doc["lines"] = []map[string]any{{"sku": "MILK", "qty": "7", "purchase_price": "0.80"}}
	e.problem(post(), 409, "id")
}

// TestBasketRetryAfterItemMoved: a basket's retry is answered with the
// stored basket though its item has since moved to a department this
// store lacks.
func TestBasketRetryAfterItemMoved(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bk := map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "terminal": "t1", "seller": "alice",
		"lines": []map[string]any{line("sku", "WINE", "qty", "2")}}
	post := func() resp {
		return e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: bk})
	}
	first := e.must(post(), 201)
	wine := e.item("wine")
	wine.Dept = "toys"
	e.putMaster(wine)
	again := e.must(post(), 200)
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v, want %v", again, first)
	}
	bk["lines"] = []map[string]any{line("sku", "WINE", "qty", "3")}
	e.problem(post(), 409, "id")
}

// TestTextLimitsCountCharacters: openapi.yaml's maxLength counts
// characters, so a Cyrillic note within it is accepted.
func TestTextLimitsCountCharacters(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	at := t0.Format(time.RFC3339)
	note := strings.Repeat("ж", 400) // 400 characters, 800 bytes
	e.must(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice", "note": note,
		"lines": []map[string]any{line("sku", "WINE", "qty", "2")}}}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "occurred_at": at, "type": "write_off", "terminal": "t1", "seller": "alice", "reason": note,
		"note": note, "lines": []map[string]any{{"sku": "MILK", "qty": "1"}}}}), 201)
	// One over is still refused, naming the field.
	e.problem(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, invalid: true, body: map[string]any{
		"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice", "note": strings.Repeat("ж", 501),
		"lines": []map[string]any{line("sku", "WINE", "qty", "2")}}}), 422, "note")
}

// TestCatalogChangesPastTheLedgersPage: a node whose MaxPageSize is above
// what the ledger answers in one page still tells the till there is more.
func TestCatalogChangesPastTheLedgersPage(t *testing.T) {
	e := newEnvConfig(t, nil, func(c *posbridge.Config) { c.MaxPageSize = 20000 })
	const n = 10100
	for lo := 0; lo < n; lo += 4000 {
		var recs []storeline.Record
		for i := lo; i < min(lo+4000, n); i++ {
			recs = append(recs, &storeline.Group{ID: storeline.GroupID(fmt.Sprintf("bulk-%05d", i)), Name: "bulk"})
		}
		e.putMaster(recs...)
	}
	seen := map[string]bool{}
	since := 0
	for range 10 {
		m := e.must(e.do(req{method: "GET", path: fmt.Sprintf("/v1/catalog/changes?since=%d&limit=15000", since), token: tokenT1, invalid: true}), 200)
		for _, c := range m["changes"].([]any) {
			c := c.(map[string]any)
			if c["kind"] == "group" {
				seen[c["id"].(string)] = true
			}
		}
		since = int(m["next"].(float64))
		if m["more"] != true {
			break
		}
	}
	got := 0
	for id := range seen {
		if strings.HasPrefix(id, "bulk-") {
			got++
		}
	}
	if got != n {
		t.Fatalf("the till saw %d of %d groups", got, n)
	}
}

// TestDraftFieldNames: bad input to the drafts' routes is answered with
// the field's JSON path and the right status.
func TestDraftFieldNames(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	at := t0.Format(time.RFC3339)
	pos := e.led.Position()
	basket := func(set func(map[string]any)) map[string]any {
		b := map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice",
			"lines": []map[string]any{line("sku", "WINE", "qty", "2"), line("sku", "MILK", "qty", "1")}}
		set(b)
		return b
	}
	doc := func(set func(map[string]any)) map[string]any {
		d := map[string]any{"id": newID(), "occurred_at": at, "type": "stocktake", "terminal": "t1", "seller": "alice",
			"position": map[string]any{"epoch": 1, "seq": 0, "pull_cursor": 0},
			"lines":    []map[string]any{{"sku": "MILK", "qty": "1"}, {"sku": "WINE", "qty": "0"}}}
		set(d)
		return d
	}
	cust := func(set func(map[string]any)) map[string]any {
		c := map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice",
			"customer": map[string]any{"id": "cust-z", "name": "Zoe"}, "card_code": "CARD0042"}
		set(c)
		return c
	}
	for _, c := range []struct {
		name, path string
		body       map[string]any
		status     int
		field      string
	}{
		{"basket unknown line field", "/v1/baskets", basket(func(b map[string]any) { b["lines"].([]map[string]any)[1]["price"] = "1.00" }), 400, "lines[1].price"},
		{"basket exponent", "/v1/baskets", basket(func(b map[string]any) { b["lines"].([]map[string]any)[1]["qty"] = "1e2" }), 400, "lines[1].qty"},
		{"basket no qty", "/v1/baskets", basket(func(b map[string]any) { delete(b["lines"].([]map[string]any)[1], "qty") }), 422, "lines[1].qty"},
		{"basket fraction of pieces", "/v1/baskets", basket(func(b map[string]any) { b["lines"].([]map[string]any)[1]["qty"] = "1.5" }), 422, "lines[1].qty"},
		{"basket unknown sku", "/v1/baskets", basket(func(b map[string]any) { b["lines"].([]map[string]any)[1]["sku"] = "NOPE" }), 422, "lines[1].sku"},
		{"basket bad card", "/v1/baskets", basket(func(b map[string]any) { b["card"] = "ab" }), 422, "card"},
		{"basket time", "/v1/baskets", basket(func(b map[string]any) { b["occurred_at"] = "today" }), 400, "occurred_at"},
		{"basket no lines", "/v1/baskets", basket(func(b map[string]any) { b["lines"] = []map[string]any{} }), 422, "lines"},
		{"basket other terminal", "/v1/baskets", basket(func(b map[string]any) { b["terminal"] = "t2" }), 403, "terminal"},
		{"doc position type", "/v1/documents", doc(func(d map[string]any) { d["position"].(map[string]any)["seq"] = "x" }), 400, "position.seq"},
		{"doc expiry", "/v1/documents", doc(func(d map[string]any) { d["lines"].([]map[string]any)[1]["expiry"] = "2026-02-30" }), 422, "lines[1].expiry"},
		{"doc negative qty", "/v1/documents", doc(func(d map[string]any) { d["lines"].([]map[string]any)[1]["qty"] = "-1" }), 422, "lines[1].qty"},
		{"doc unknown sku", "/v1/documents", doc(func(d map[string]any) { d["lines"].([]map[string]any)[1]["sku"] = "NOPE" }), 422, "lines[1].sku"},
		{"doc price places", "/v1/documents", doc(func(d map[string]any) { d["lines"].([]map[string]any)[1]["purchase_price"] = "1.001" }), 422, "lines[1].purchase_price"},
		{"doc no position", "/v1/documents", doc(func(d map[string]any) { delete(d, "position") }), 422, "position"},
		{"doc dept", "/v1/documents", doc(func(d map[string]any) { d["from_dept"] = "toys" }), 422, "from_dept"},
		{"doc type", "/v1/documents", doc(func(d map[string]any) { d["type"] = "gift" }), 422, "type"},
		{"doc packs", "/v1/documents", doc(func(d map[string]any) { d["lines"].([]map[string]any)[1]["packs"] = "2" }), 422, "lines[1].packs"},
		{"customer unknown field", "/v1/customers", cust(func(c map[string]any) { c["customer"].(map[string]any)["colour"] = "red" }), 400, "customer.colour"},
		{"customer no name", "/v1/customers", cust(func(c map[string]any) { c["customer"].(map[string]any)["name"] = " " }), 422, "customer.name"},
		{"customer bad id", "/v1/customers", cust(func(c map[string]any) { c["customer"].(map[string]any)["id"] = "a b" }), 422, "customer.id"},
		{"customer card", "/v1/customers", cust(func(c map[string]any) { c["card_code"] = "abcd" }), 422, "card_code"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: c.path, token: tokenT1, session: alice, body: c.body, invalid: true}), c.status, c.field)
		})
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("refused drafts moved the journal: %v → %v", pos, got)
	}
}

// TestPriceBasketFieldNames: the same for POST /v1/baskets/price.
func TestPriceBasketFieldNames(t *testing.T) {
	e := newEnv(t)
	body := func(set func(map[string]any)) map[string]any {
		b := map[string]any{"lines": []map[string]any{line("sku", "WINE", "qty", "2"), line("sku", "MILK", "qty", "1")}}
		set(b)
		return b
	}
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"time", body(func(b map[string]any) { b["occurred_at"] = "x" }), 422, "occurred_at"},
		{"bad card", body(func(b map[string]any) { b["card"] = "ab" }), 422, "card"},
		{"negative price", body(func(b map[string]any) { b["lines"].([]map[string]any)[1]["price"] = "-1" }), 422, "lines[1].price"},
		{"no qty", body(func(b map[string]any) { delete(b["lines"].([]map[string]any)[1], "qty") }), 422, "lines[1].qty"},
		{"no price", body(func(b map[string]any) { b["lines"].([]map[string]any)[1]["sku"] = "TOY" }), 422, "lines[1].sku"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: c.body, invalid: true}), c.status, c.field)
		})
	}
}

// TestStatsByBusinessDate: stats sum receipts and returns over the shop's
// business dates (Berlin), returns subtracted, and agree with the stored
// receipts and returns.
func TestStatsByBusinessDate(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bob := e.login(tokenT1, "bob", "9999")
	at := func(t time.Time) string { return t.Format(time.RFC3339) }
	lateEve := time.Date(2026, 3, 10, 22, 30, 0, 0, time.UTC)  // 23:30 on the 10th in Berlin
	afterMid := time.Date(2026, 3, 10, 23, 30, 0, 0, time.UTC) // 00:30 on the 11th in Berlin
	r1 := sale(newID(), []map[string]any{line("sku", "WINE", "qty", "1", "price", "7.99"), line("sku", "MILK", "qty", "2", "price", "1.19")},
		[]map[string]any{{"method": "cash", "amount": "10.37"}})
	r1["occurred_at"] = at(lateEve)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: r1}), 201)
	r2 := sale(newID(), []map[string]any{line("sku", "COLA", "qty", "3", "price", "2.00")}, []map[string]any{{"method": "card", "amount": "6.00"}})
	r2["occurred_at"] = at(afterMid)
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: r2}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at(afterMid.Add(time.Minute)), "original": r1["id"],
		"reason": "sour", "lines": []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
		"refunds": []map[string]any{{"method": "cash", "amount": "1.19"}}}}), 201)
	stats := func(from, to string) map[string]any {
		return e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=" + from + "&to=" + to, token: tokenT1, session: alice}), 200)
	}
	tot := func(m map[string]any) string {
		x := m["total"].(map[string]any)
		return fmt.Sprintf("%v/%v %v-%v=%v", x["receipts"], x["returns"], x["sales"], x["refunds"], x["net"])
	}
	if got, want := tot(stats("2026-03-10", "2026-03-10")), "1/0 10.37-0.00=10.37"; got != want {
		t.Errorf("10th: %s, want %s", got, want)
	}
	if got, want := tot(stats("2026-03-11", "2026-03-11")), "1/1 6.00-1.19=4.81"; got != want {
		t.Errorf("11th: %s, want %s", got, want)
	}
	all := stats("2026-03-10", "2026-03-11")
	if got, want := tot(all), "2/1 16.37-1.19=15.18"; got != want {
		t.Errorf("both: %s, want %s", got, want)
	}
	if g := fmt.Sprint(all["by_group"]); !strings.Contains(g, "key:g-food net:1.19 receipts:1 refunds:1.19 returns:1 sales:2.38") {
		t.Errorf("by group: %s", g)
	}
}

// TestCardAndStockViews: a card shows its own customer only; stock is
// this shop's, by department.
func TestCardAndStockViews(t *testing.T) {
	e := newEnv(t)
	e.putMaster(&storeline.Customer{ID: "cust10", Name: "Other", Phone: "+49 555"},
		&storeline.CardRecord{ID: "card10", Code: "CARD0010", Kind: storeline.LoyaltyCard, Customer: "cust10"})
	m := e.must(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: tokenT1}), 200)
	if c := m["customer"].(map[string]any); c["id"] != "cust1" || c["phone"] != nil {
		t.Fatalf("card = %v", m)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/cards/CARD9999", token: tokenT1}), 404, "")
	e.problem(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: tokenX}), 401, "")
	r := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "2", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "2.38"}})
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: r}), 201)
	s := e.must(e.do(req{method: "GET", path: "/v1/stock/MILK", token: tokenT1}), 200)
	if s["on_hand"] != "-2" || fmt.Sprint(s["departments"]) != "[map[dept:food qty:-2]]" {
		t.Fatalf("stock = %v", s)
	}
}

// TestBasketReadOnlyHere: a basket is read only by this shop's tills and
// only as a basket.
func TestBasketReadOnlyHere(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: map[string]any{"id": bid,
		"occurred_at": t0.Format(time.RFC3339), "terminal": "t1", "seller": "alice", "lines": []map[string]any{line("sku", "WINE", "qty", "2")}}}), 201)
	e.problem(e.do(req{method: "GET", path: "/v1/baskets/" + bid, token: tokenX}), 401, "")
	e.problem(e.do(req{method: "GET", path: "/v1/baskets/" + bid}), 401, "")
	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid, []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
		[]map[string]any{{"method": "cash", "amount": "1.19"}})}), 201)
	e.problem(e.do(req{method: "GET", path: "/v1/baskets/" + rid, token: tokenT1}), 404, "")
	// The same ID posted as a basket is another fact.
	e.problem(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: map[string]any{"id": rid,
		"occurred_at": t0.Format(time.RFC3339), "terminal": "t1", "seller": "alice", "lines": []map[string]any{line("sku", "WINE", "qty", "2")}}}), 409, "id")
}

// TestShiftAcrossMidnightKeepsItsDay: a shift that crosses midnight
// belongs to the day it opened (DESIGN.md, "Time"): its receipt and cash
// after midnight carry the opening's business date, and the day's stats
// count the receipt; a receipt of a shift this node holds no opening of
// takes its own date.
func TestShiftAcrossMidnightKeepsItsDay(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Date(2026, 3, 10, 23, 30, 0, 0, berlin)
	after := opened.Add(time.Hour) // 00:30 on the 11th
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "night", "seller": "alice", "occurred_at": opened.Format(time.RFC3339), "float": "50.00"}}), 201)
	rc := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "1.19"}})
	rc["shift"], rc["occurred_at"] = "night", after.Format(time.RFC3339)
	if m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 201); m["business_date"] != "2026-03-10" {
		t.Fatalf("receipt at %s of a shift opened on the 10th: business_date %v, want 2026-03-10", after, m["business_date"])
	}
	cash := e.must(e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "night", "seller": "alice", "occurred_at": after.Format(time.RFC3339),
		"direction": "in", "amount": "5.00", "reason": "change"}}), 201)
	if cash["business_date"] != "2026-03-10" {
		t.Fatalf("cash in at %s: business_date %v, want 2026-03-10", after, cash["business_date"])
	}
	other := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "1.19"}})
	other["shift"], other["occurred_at"] = "never-opened", after.Format(time.RFC3339)
	if m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: other}), 201); m["business_date"] != "2026-03-11" {
		t.Fatalf("receipt of a shift never opened here: business_date %v, want its own date 2026-03-11", m["business_date"])
	}
}

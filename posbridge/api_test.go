package posbridge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

func TestHealthAndSpec(t *testing.T) {
	e := newEnv(t)
	m := e.must(e.do(req{method: "GET", path: "/v1/health"}), 200)
	if m["store"] != "s1" || m["replication"] != "standalone" || m["version"] != "test" {
		t.Fatalf("health = %v", m)
	}
	r := e.do(req{method: "GET", path: "/v1/openapi.yaml"})
	if r.status != 200 || !strings.Contains(string(r.body), "openapi: 3") {
		t.Fatalf("spec: %d %.80s", r.status, r.body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	e.problem(e.do(req{method: "GET", path: "/v1/items/MILK"}), 401, "")
	e.problem(e.do(req{method: "GET", path: "/v1/items/MILK", token: "nope"}), 401, "")
	e.problem(e.do(req{method: "GET", path: "/v1/items/MILK", token: tokenX}), 401, "") // another store's till
	e.must(e.do(req{method: "GET", path: "/v1/items/MILK", token: tokenT1}), 200)
	// A session is bound to the terminal that opened it.
	ses := e.login(tokenT1, "alice", "1234")
	cash := map[string]any{"id": newID(), "terminal": "t2", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339), "direction": "in", "amount": "10.00"}
	e.problem(e.do(req{method: "POST", path: "/v1/cash", token: tokenT2, session: ses, body: cash}), 401, "")
	e.problem(e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, body: cash, invalid: true}), 401, "")
}

func TestSessionsRateLimit(t *testing.T) {
	e := newEnv(t)
	login := func(seller, pin string) resp {
		return e.do(req{method: "POST", path: "/v1/sessions", token: tokenT1, body: map[string]any{"seller": seller, "pin": pin}})
	}
	m := e.must(login("bob", "9999"), 201)
	if m["role"] != "manager" || m["token"] == "" {
		t.Fatalf("session = %v", m)
	}
	e.problem(login("carol", "1111"), 401, "") // works at s2 only
	e.problem(login("nobody", "1111"), 401, "")
	for i := 0; i < 3; i++ {
		e.problem(login("alice", "0000"), 401, "")
	}
	r := login("alice", "1234") // right PIN, but locked out
	e.problem(r, 429, "")
	if r.header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
	}
	e.must(login("bob", "9999"), 201) // another seller at the same till is not locked
	e.clock.Add(61 * time.Second)
	ses := e.must(login("alice", "1234"), 201)["token"].(string)
	e.must(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: ses}), 204)
	e.problem(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: ses}), 401, "")
	// Sessions expire.
	ses = e.login(tokenT1, "alice", "1234")
	e.clock.Add(13 * time.Hour)
	e.problem(e.do(req{method: "DELETE", path: "/v1/sessions/current", token: tokenT1, session: ses}), 401, "")
}

func TestItemsAndBarcodes(t *testing.T) {
	e := newEnv(t)
	get := func(path string) map[string]any {
		t.Helper()
		return e.must(e.do(req{method: "GET", path: path, token: tokenT1}), 200)
	}
	if m := get("/v1/items/MILK"); m["price"] != "1.19" || m["price_list"] != "base" || m["unit"] != "pcs" {
		t.Fatalf("milk = %v", m) // 1.29 is older, 1.49 not yet effective
	}
	if m := get("/v1/items/WINE"); m["price"] != "7.99" || m["price_list"] != "promo" {
		t.Fatalf("wine = %v", m) // the first list with a price wins
	}
	if m := get("/v1/items/TOY"); m["price"] != nil {
		t.Fatalf("toy price = %v, want null", m["price"])
	}
	e.problem(e.do(req{method: "GET", path: "/v1/items/NOPE", token: tokenT1}), 404, "sku")

	gs := "\x1d"
	for _, c := range []struct {
		name, code, kind, item, qty, serial string
	}{
		{"EAN-13", milkEAN, "gtin", "milk", "1", ""},
		{"EAN-13 pack", milkBox, "gtin", "milk", "12", ""},
		{"EAN-8", wineEAN8, "gtin", "wine", "1", ""},
		{"UPC-A", colaUPC, "gtin", "cola", "1", ""},
		{"weighed", gtin("201234500347"), "weighed", "cheese", "0.347", ""},
		{"DataMatrix GS", "01" + shoeGTIN + "21SER001" + gs + "93abcd", "marked", "shoe", "1", "SER001"},
		{"DataMatrix leading GS", gs + "01" + shoeGTIN + "21SER002", "marked", "shoe", "1", "SER002"},
		{"DataMatrix text GS", "01" + shoeGTIN + "21SER003<GS>93abcd", "marked", "shoe", "1", "SER003"},
		{"DataMatrix ]d2", "]d201" + shoeGTIN + "21SER004" + gs + "93abcd", "marked", "shoe", "1", "SER004"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := get("/v1/barcodes/" + url.PathEscape(c.code))
			item := m["item"].(map[string]any)
			if m["kind"] != c.kind || item["id"] != c.item || m["qty"] != c.qty || (c.serial != "" && m["serial"] != c.serial) {
				t.Fatalf("scan %q = %v", c.code, m)
			}
		})
	}
	bad := milkEAN[:12] + string(rune('0'+(milkEAN[12]-'0'+1)%10))
	e.problem(e.do(req{method: "GET", path: "/v1/barcodes/" + bad, token: tokenT1}), 422, "code")
	e.problem(e.do(req{method: "GET", path: "/v1/barcodes/12345", token: tokenT1}), 422, "code")
	e.problem(e.do(req{method: "GET", path: "/v1/barcodes/" + gtin("400000000000"), token: tokenT1}), 404, "code")
}

func TestCatalogCardsSellersMessages(t *testing.T) {
	e := newEnv(t)
	m := e.must(e.do(req{method: "GET", path: "/v1/catalog/changes?since=0&limit=10", token: tokenT1}), 200)
	if m["more"] != true || len(m["changes"].([]any)) == 0 {
		t.Fatalf("changes page = %v", m)
	}
	seen := map[string]bool{}
	next := 0.0
	for i := 0; i < 100; i++ {
		m = e.must(e.do(req{method: "GET", path: fmt.Sprintf("/v1/catalog/changes?since=%d&limit=7", int(next)), token: tokenT1}), 200)
		for _, c := range m["changes"].([]any) {
			c := c.(map[string]any)
			seen[c["kind"].(string)+"/"+c["id"].(string)] = true
		}
		if m["next"].(float64) < next {
			t.Fatalf("cursor went back from %v to %v", next, m["next"])
		}
		next = m["next"].(float64)
		if m["more"] == false {
			break
		}
	}
	if !seen["item/milk"] || !seen["store/s1"] || !seen["price_list/base"] || seen["seller/alice"] || seen["terminal/t1"] {
		t.Fatalf("changes seen = %v", seen)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/catalog/changes?since=x", token: tokenT1, invalid: true}), 422, "since")

	c := e.must(e.do(req{method: "GET", path: "/v1/cards/CARD0001", token: tokenT1}), 200)
	if c["customer"].(map[string]any)["id"] != "cust1" || c["group"].(map[string]any)["id"] != "vip" {
		t.Fatalf("card = %v", c)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/cards/CARD9999", token: tokenT1}), 404, "")

	s := e.must(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT1}), 200)
	sellers := fmt.Sprint(s["sellers"])
	if !strings.Contains(sellers, "alice") || !strings.Contains(sellers, "bob") || strings.Contains(sellers, "carol") || strings.Contains(string(e.do(req{method: "GET", path: "/v1/sellers", token: tokenT1}).body), "pbkdf2") {
		t.Fatalf("sellers = %v", sellers)
	}
	msgs := e.must(e.do(req{method: "GET", path: "/v1/messages", token: tokenT1}), 200)["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != "m1" {
		t.Fatalf("messages = %v", msgs)
	}
}

func TestReceipt(t *testing.T) {
	e := newEnv(t)
	id := newID()
	body := sale(id, []map[string]any{
		line("sku", "MILK", "qty", "2", "price", "1.19"),
		line("barcode", milkBox, "qty", "1", "price", "1.19"),                       // 12 units
		line("barcode", gtin("201234500347"), "price", "15.90", "discount", "0.50"), // 0.347 kg
		line("barcode", wineEAN8, "qty", "1", "price", "9.99"),                      // node's price is 7.99
		line("barcode", "01"+shoeGTIN+"21SER001\x1d93abcd", "price", "59.00"),
	}, []map[string]any{{"method": "card", "amount": "50.00", "reference": "R1", "auth_code": "A1"}, {"method": "cash", "amount": "100"}})
	body["card"] = "CARD0001"
	body["fiscal"] = map[string]any{"document_number": "F-1", "sign": "abc"}
	m := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 201)
	// 2×1.19 + 12×1.19 + (5.52−0.50) + 9.99 + 59.00 = 2.38+14.28+5.02+9.99+59.00 = 90.67
	if m["total"] != "90.67" || m["change"] != "59.33" || m["customer"] != "cust1" || m["business_date"] != "2026-03-10" {
		t.Fatalf("receipt = %v", m)
	}
	lines := m["lines"].([]any)
	if q := lines[1].(map[string]any)["qty"]; q != "12" {
		t.Fatalf("pack line qty = %v, want 12", q)
	}
	if q := lines[2].(map[string]any)["qty"]; q != "0.347" {
		t.Fatalf("weighed line qty = %v, want 0.347", q)
	}
	if s := lines[4].(map[string]any)["serial"]; s != "SER001" {
		t.Fatalf("marked line serial = %v", s)
	}
	d := m["discrepancies"].([]any)
	// Line 2: the till took 0.50 off that no promotion gives; line 3: its
	// price differs from the list's.
	if len(d) != 2 || d[0].(map[string]any)["line"] != 2.0 || d[0].(map[string]any)["till_discount"] != "0.50" ||
		d[0].(map[string]any)["node_discount"] != "0.00" || d[1].(map[string]any)["line"] != 3.0 || d[1].(map[string]any)["node_price"] != "7.99" {
		t.Fatalf("discrepancies = %v", d)
	}
	if len(m["vat"].([]any)) != 2 || m["seq"].(float64) < 1 {
		t.Fatalf("vat/seq = %v %v", m["vat"], m["seq"])
	}
	// A retry answers 200 with the same receipt; another body 409.
	m2 := e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 200)
	if m2["seq"] != m["seq"] || m2["total"] != m["total"] {
		t.Fatalf("retry = %v", m2)
	}
	body["catalog_version"] = 2
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: body}), 409, "id")
	got := e.must(e.do(req{method: "GET", path: "/v1/receipts/" + id, token: tokenT1}), 200)
	if got["total"] != "90.67" {
		t.Fatalf("GET receipt = %v", got)
	}
	if v := metric(t, e, "storeline_receipts_committed_total"); v != 1 {
		t.Fatalf("committed = %v, want 1", v)
	}
	if v := metric(t, e, "storeline_receipt_discrepancies_total"); v != 2 {
		t.Fatalf("discrepancies = %v, want 2", v)
	}
	// The sale moved stock: milk 14 units out of food.
	st := e.must(e.do(req{method: "GET", path: "/v1/stock/MILK", token: tokenT1}), 200)
	if st["on_hand"] != "-14" {
		t.Fatalf("stock = %v", st)
	}
}

func metric(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestReceiptBadInput(t *testing.T) {
	e := newEnv(t)
	pos := e.led.Position()
	cash := []map[string]any{{"method": "cash", "amount": "10.00"}}
	post := func(b map[string]any, invalid bool) resp {
		return e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: b, invalid: invalid})
	}
	for _, c := range []struct {
		name    string
		lines   []map[string]any
		pays    []map[string]any
		status  int
		field   string
		invalid bool
	}{
		{"unknown sku", []map[string]any{line("sku", "NOPE", "qty", "1", "price", "1.00")}, cash, 422, "lines[0].sku", false},
		{"bad check digit", []map[string]any{line("barcode", milkEAN[:12]+"0", "qty", "1", "price", "1.00")}, cash, 422, "lines[0].barcode", false},
		{"zero qty", []map[string]any{line("sku", "MILK", "qty", "0", "price", "1.19")}, cash, 422, "lines[0].qty", false},
		{"negative qty", []map[string]any{line("sku", "MILK", "qty", "-1", "price", "1.19")}, cash, 422, "lines[0].qty", false},
		{"fractional piece", []map[string]any{line("sku", "MILK", "qty", "1.5", "price", "1.19")}, cash, 422, "lines[0].qty", false},
		{"fractional packs", []map[string]any{line("barcode", milkBox, "qty", "0.5", "price", "1.19")}, cash, 422, "lines[0].qty", false},
		{"missing price", []map[string]any{line("sku", "MILK", "qty", "1")}, cash, 422, "lines[0].price", false},
		{"foreign dept", []map[string]any{line("sku", "TOY", "qty", "1", "price", "1.00")}, cash, 422, "lines[0].sku", false},
		{"marked without serial", []map[string]any{line("sku", "SHOE", "qty", "1", "price", "59.00")}, cash, 422, "lines[0].serial", false},
		{"short", []map[string]any{line("sku", "MILK", "qty", "10", "price", "1.19")}, cash, 422, "payments", false},
		{"points", []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "points", "amount": "1.19"}}, 422, "payments[0].method", false},
		{"card over total", []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "card", "amount": "5.00"}}, 422, "payments", false},
		{"cents", []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.191")}, cash, 422, "lines[0].price", false},
		{"no lines", []map[string]any{}, cash, 422, "lines", true},
		{"exponent", []map[string]any{line("sku", "MILK", "qty", "1e3", "price", "1.19")}, cash, 400, "lines[0].qty", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.problem(post(sale(newID(), c.lines, c.pays), c.invalid), c.status, c.field)
		})
	}
	raw := func(s string) resp {
		return e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, raw: s, invalid: true})
	}
	ok := `{"id":"` + newID() + `","terminal":"t1","shift":"sh1","seller":"alice","occurred_at":"2026-03-10T09:00:00Z","lines":[{"sku":"MILK","qty":"1","price":"1.19"}],"payments":[{"method":"cash","amount":"2"}]`
	e.problem(raw(ok+`,"extra":1}`), 400, "extra")
	e.problem(raw(ok+`}{}`), 400, "")
	e.problem(raw(ok), 400, "")
	e.problem(raw(`{"lines":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`), 400, "")
	e.problem(raw(`{"card":"`+strings.Repeat("A", 70<<10)+`"}`), 413, "")
	e.problem(raw(`{"id":"not-a-uuid"}`), 400, "id")
	e.problem(raw(`{"catalog_version":"x"}`), 400, "catalog_version")
	// Another till's name in the body is refused.
	b := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, cash)
	b["terminal"] = "t2"
	e.problem(post(b, false), 403, "terminal")
	if got := e.led.Position(); got != pos {
		t.Fatalf("bad input moved the journal from %v to %v", pos, got)
	}
}

func TestReturnsCashShiftZReport(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bob := e.login(tokenT1, "bob", "9999")
	at := t0.Format(time.RFC3339)
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "float": "100.00"}}), 201)
	rid := newID()
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, session: alice, body: sale(rid,
		[]map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19"), line("sku", "COLA", "qty", "2", "price", "2.00")},
		[]map[string]any{{"method": "cash", "amount": "10.00"}})}), 201) // 7.57, change 2.43
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(newID(),
		[]map[string]any{line("sku", "COLA", "qty", "1", "price", "2.00")},
		[]map[string]any{{"method": "card", "amount": "2.00"}})}), 201)

	ret := func(id string, qty string, session string) resp {
		return e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: session, invalid: session == "", body: map[string]any{
			"id": id, "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "original": rid, "reason": "sour",
			"lines":   []map[string]any{line("sku", "MILK", "qty", qty, "price", "1.19")},
			"refunds": []map[string]any{{"method": "cash", "amount": dec(qty).Mul(dec("1.19")).StringFixed(2)}},
		}})
	}
	e.problem(ret(newID(), "1", alice), 403, "")
	e.problem(ret(newID(), "1", ""), 401, "")
	r1 := newID()
	m := e.must(ret(r1, "2", bob), 201)
	if m["manager"] != "bob" || m["total"] != "2.38" {
		t.Fatalf("return = %v", m)
	}
	e.must(ret(r1, "2", bob), 200) // a retry is not counted twice
	e.problem(ret(newID(), "2", bob), 422, "lines[0].qty")
	e.must(ret(newID(), "1", bob), 201)
	e.problem(ret(newID(), "1", bob), 422, "lines[0].qty")

	cash := func(dir, amount, session string) resp {
		return e.do(req{method: "POST", path: "/v1/cash", token: tokenT1, session: session, body: map[string]any{
			"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": at, "direction": dir, "amount": amount, "reason": "change"}})
	}
	e.must(cash("in", "20.00", alice), 201)
	e.problem(cash("out", "5.00", alice), 403, "direction")
	e.must(cash("out", "50.00", bob), 201)

	e.clock.Add(8 * time.Hour)
	cid := newID()
	close := func(id string) resp {
		return e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: map[string]any{"id": id, "counted_cash": "66.00"}})
	}
	z := e.must(close(cid), 201)
	rep := z["report"].(map[string]any)
	// expected = 100 float + 10 cash − 2.43 change − 3.57 refunds + 20 in − 50 out = 74.00
	if rep["receipts"] != 2.0 || rep["returns"] != 2.0 || rep["sales"] != "9.57" || rep["refunds"] != "3.57" ||
		rep["expected_cash"] != "74.00" || rep["difference"] != "-8.00" || z["business_date"] != "2026-03-10" {
		t.Fatalf("Z report = %v", z)
	}
	tenders := fmt.Sprint(rep["tenders"])
	if !strings.Contains(tenders, "amount:4.00 count:3 method:cash") || !strings.Contains(tenders, "amount:2.00 count:1 method:card") {
		t.Fatalf("tenders = %s", tenders)
	}
	z2 := e.must(close(cid), 200)
	if fmt.Sprint(z2["report"]) != fmt.Sprint(z["report"]) {
		t.Fatalf("retried close = %v, want %v", z2, z)
	}
	e.problem(close(newID()), 409, "shift")
	e.problem(e.do(req{method: "POST", path: "/v1/shifts/nope/close", token: tokenT1, session: alice, body: map[string]any{}}), 404, "shift")

	s := e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-10", token: tokenT1, session: alice}), 200)
	if tot := s["total"].(map[string]any); tot["sales"] != "9.57" || tot["refunds"] != "3.57" || tot["net"] != "6.00" || tot["receipts"] != 2.0 {
		t.Fatalf("stats = %v", s)
	}
	if g := fmt.Sprint(s["by_group"]); !strings.Contains(g, "key:g-drinks net:6.00") || !strings.Contains(g, "key:g-food net:0.00") {
		t.Fatalf("by group = %s", g)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-03-10&to=2026-03-01", token: tokenT1, session: alice}), 422, "to")
	// Both dates count: 366 days is the default most, 367 one too many.
	e.must(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-01-01&to=2027-01-01", token: tokenT1, session: alice}), 200)
	e.problem(e.do(req{method: "GET", path: "/v1/stats/sales?from=2026-01-01&to=2027-01-02", token: tokenT1, session: alice}), 422, "to")
}

func TestDocumentsCustomersBaskets(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	at := t0.Format(time.RFC3339)
	doc := map[string]any{
		"id": newID(), "occurred_at": at, "type": "incoming_invoice", "number": "INV-1", "terminal": "t1", "seller": "alice",
		"supplier": "sup1", "lines": []map[string]any{{"sku": "MILK", "packs": "2", "pack_factor": "12", "purchase_price": "0.80", "expiry": "2026-04-01"}},
	}
	m := e.must(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: doc}), 201)
	if l := m["lines"].([]any)[0].(map[string]any); l["qty"] != "24" || l["item"] != "milk" {
		t.Fatalf("document = %v", m)
	}
	wo := map[string]any{"id": newID(), "occurred_at": at, "type": "write_off", "terminal": "t1", "seller": "alice",
		"lines": []map[string]any{{"sku": "MILK", "qty": "1"}}}
	e.problem(e.do(req{method: "POST", path: "/v1/documents", token: tokenT1, session: alice, body: wo}), 422, "reason")

	cust := map[string]any{"id": newID(), "occurred_at": at, "terminal": "t1", "seller": "alice",
		"customer": map[string]any{"id": "cust-new", "name": "Ben"}, "card_code": "CARD0002"}
	e.must(e.do(req{method: "POST", path: "/v1/customers", token: tokenT1, session: alice, body: cust}), 201)
	e.must(e.do(req{method: "POST", path: "/v1/customers", token: tokenT1, session: alice, body: cust}), 200)
	cust["id"], cust["card_code"] = newID(), "CARD0001"
	e.problem(e.do(req{method: "POST", path: "/v1/customers", token: tokenT1, session: alice, body: cust}), 409, "card_code")

	bid := newID()
	bk := map[string]any{"id": bid, "occurred_at": at, "terminal": "t1", "seller": "alice", "card": "CARD0001",
		"lines": []map[string]any{line("sku", "WINE", "qty", "2"), line("barcode", milkBox, "qty", "1")}}
	e.must(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: bk}), 201)
	g := e.must(e.do(req{method: "GET", path: "/v1/baskets/" + bid, token: tokenT2}), 200)
	if ls := g["lines"].([]any); len(ls) != 2 || ls[1].(map[string]any)["qty"] != "12" {
		t.Fatalf("basket = %v", g)
	}
	e.problem(e.do(req{method: "GET", path: "/v1/baskets/" + newID(), token: tokenT1}), 404, "")
	_ = storeline.KindBasket
}

// TestStoreChangeReachesPricing: the tills' API keeps the store's record
// between requests (store, catalog.go); a change of it, here the store's
// price lists, prices the next request.
func TestStoreChangeReachesPricing(t *testing.T) {
	e := newEnv(t)
	get := func() map[string]any {
		return e.must(e.do(req{method: "GET", path: "/v1/items/MILK", token: tokenT1}), 200)
	}
	if m := get(); m["price"] != "1.19" || m["price_list"] != "base" {
		t.Fatalf("milk = %v, want 1.19 from base", m)
	}
	vip := []storeline.Record{&storeline.PriceList{ID: "vip", Currency: "EUR"},
		&storeline.Price{List: "vip", Item: "milk", From: t0.Add(-time.Hour), Price: dec("0.99")}}
	if _, err := e.led.PutMaster(context.Background(), vip); err != nil {
		t.Fatal(err)
	}
	if m := get(); m["price"] != "1.19" {
		t.Fatalf("milk = %v, want 1.19: vip is not among s1's lists yet", m)
	}
	var st storeline.Store
	if err := e.led.GetMaster(storeline.KindStore, "s1", &st); err != nil {
		t.Fatal(err)
	}
	st.PriceLists = append([]storeline.PriceListID{"vip"}, st.PriceLists...)
	if _, err := e.led.PutMaster(context.Background(), []storeline.Record{&st}); err != nil {
		t.Fatal(err)
	}
	if m := get(); m["price"] != "0.99" || m["price_list"] != "vip" {
		t.Fatalf("milk = %v, want 0.99 from vip after s1 took the list", m)
	}
}

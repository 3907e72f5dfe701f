package posbridge_test

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// Regression tests: a retry of a stored basket or document draft is
// answered from the stored event whatever the catalogue says now (its
// items deleted, its barcodes moved, its store's departments changed),
// and another body under the same ID is still a conflict naming id. Each
// failed on the code before the fix (a 422 naming the line's SKU, or a
// 409 for the same body).

func basketBody(ls ...map[string]any) map[string]any {
	return map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "terminal": "t1", "seller": "alice",
		"customer": "cust1", "card": "CARD0001", "note": "for pick-up", "lines": ls}
}

// TestBasketRetryAfterItemDeleted: the items of a stored basket deleted
// at head office since, its retry is the stored basket, not a 422 naming
// the line; what the stored basket keeps (the item, the quantity in base
// units) still tells another body from it.
func TestBasketRetryAfterItemDeleted(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := basketBody(
		line("sku", "WINE", "qty", "2"),
		line("barcode", milkBox, "qty", "1"),
		line("barcode", gtin("201234500347")),
		line("barcode", "01"+shoeGTIN+"21SER001"),
		line("sku", "COLA", "qty", "1"),
	)
	retryCase(t, e, "/v1/baskets", alice, body, func() {
		for _, id := range []string{"wine", "milk", "cheese", "shoe"} {
			e.deleteMaster(storeline.KindItem, id)
		}
	}, map[string]func(b map[string]any){
		"qty":            func(b map[string]any) { lines(b)[0]["qty"] = "3" },
		"sku":            func(b map[string]any) { lines(b)[0]["sku"] = "COLA" },
		"weight":         func(b map[string]any) { lines(b)[2]["qty"] = "0.5" },
		"barcode to sku": func(b map[string]any) { delete(lines(b)[1], "barcode"); lines(b)[1]["sku"] = "MILK" },
		"kept item qty":  func(b map[string]any) { lines(b)[4]["qty"] = "2" },
		"lines":          func(b map[string]any) { b["lines"] = lines(b)[:4] },
		"note":           func(b map[string]any) { b["note"] = "for delivery" },
		"card":           func(b map[string]any) { delete(b, "card") },
		"customer":       func(b map[string]any) { b["customer"] = "cust2" },
		"occurred_at":    func(b map[string]any) { b["occurred_at"] = t0.Add(time.Second).Format(time.RFC3339) },
	})
}

// TestBasketRetryAfterBarcodeMoved: the barcodes of a stored basket moved
// to other items since, or left the catalogue: a barcode names the product
// the till scanned, so its retry is the stored basket, not a conflict (a
// moved barcode) or a 422 (a barcode no item carries).
func TestBasketRetryAfterBarcodeMoved(t *testing.T) {
	for name, change := range map[string]func(e *env){
		"moved": func(e *env) {
			cola, wine := e.item("cola"), e.item("wine")
			wine.Barcodes = append(wine.Barcodes, cola.Barcodes...)
			cola.Barcodes = nil
			e.putMaster(cola)
			e.putMaster(wine)
		},
		"gone": func(e *env) {
			milk := e.item("milk")
			milk.Barcodes = milk.Barcodes[:1] // the box barcode
			e.putMaster(milk)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			alice := e.login(tokenT1, "alice", "1234")
			body := basketBody(
				line("barcode", colaUPC, "qty", "2"),
				line("barcode", milkBox, "qty", "1"),
				line("sku", "MILK", "qty", "1"),
			)
			retryCase(t, e, "/v1/baskets", alice, body, func() { change(e) }, map[string]func(b map[string]any){
				"qty":  func(b map[string]any) { lines(b)[0]["qty"] = "3" },
				"sku":  func(b map[string]any) { lines(b)[2]["sku"] = "WINE" },
				"note": func(b map[string]any) { b["note"] = "" },
			})
		})
	}
}

// TestDraftChangedBodyAfterItemDeleted: another body under a stored ID is
// a conflict naming id, not a 422 about the deleted item the stored basket
// or draft names.
func TestDraftChangedBodyAfterItemDeleted(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bk := basketBody(line("sku", "WINE", "qty", "2"))
	doc := docBody("write_off", map[string]any{"sku": "WINE", "qty": "2"})
	doc["reason"] = "broken"
	for path, b := range map[string]map[string]any{"/v1/baskets": bk, "/v1/documents": doc} {
		e.must(e.do(req{method: "POST", path: path, token: tokenT1, session: alice, body: b}), 201)
	}
	e.deleteMaster(storeline.KindItem, "wine")
	for path, b := range map[string]map[string]any{"/v1/baskets": bk, "/v1/documents": doc} {
		t.Run(path, func(t *testing.T) {
			e := e.as(t)
			b = clone(b)
			lines(b)[0]["qty"] = "3"
			e.problem(e.do(req{method: "POST", path: path, token: tokenT1, session: alice, body: b}), 409, "id")
		})
	}
}

// TestBasketRetryMalformed: a malformed line in a retry is refused as on
// a first try, naming the line, though the basket is stored.
func TestBasketRetryMalformed(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := basketBody(line("sku", "WINE", "qty", "2"))
	e.must(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: body}), 201)
	e.deleteMaster(storeline.KindItem, "wine")
	for name, c := range map[string]struct {
		line  map[string]any
		field string
	}{
		"both":        {line("sku", "WINE", "barcode", colaUPC, "qty", "2"), "lines[0]"},
		"neither":     {line("qty", "2"), "lines[0].sku"},
		"no qty":      {line("sku", "WINE"), "lines[0].qty"},
		"fraction":    {line("sku", "WINE", "qty", "1.5"), "lines[0].qty"},
		"check digit": {line("barcode", milkEAN[:12]+string(rune('0'+(milkEAN[12]-'0'+1)%10)), "qty", "1"), "lines[0].barcode"},
	} {
		t.Run(name, func(t *testing.T) {
			e := e.as(t)
			b := clone(body)
			b["lines"] = []map[string]any{c.line}
			e.problem(e.do(req{method: "POST", path: "/v1/baskets", token: tokenT1, session: alice, body: b}), 422, c.field)
		})
	}
}

func docBody(typ string, ls ...map[string]any) map[string]any {
	return map[string]any{"id": newID(), "occurred_at": t0.Format(time.RFC3339), "type": typ, "number": "INV-7",
		"terminal": "t1", "seller": "alice", "note": "checked", "lines": ls}
}

// TestDocumentRetryAfterItemDeleted: a draft's items deleted since, its
// retry is the stored draft; every field of a line the draft keeps still
// tells another body from it.
func TestDocumentRetryAfterItemDeleted(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	body := docBody("incoming_invoice",
		map[string]any{"sku": "MILK", "packs": "2", "pack_factor": "12", "purchase_price": "0.80", "expiry": "2026-04-01"},
		map[string]any{"sku": "WINE", "qty": "6", "purchase_price": "5.00", "batch": "B1", "certificate": "C1"},
		map[string]any{"sku": "COLA", "qty": "1"},
	)
	body["supplier"] = "sup1"
	retryCase(t, e, "/v1/documents", alice, body, func() {
		e.deleteMaster(storeline.KindItem, "milk")
		e.deleteMaster(storeline.KindItem, "wine")
	}, map[string]func(b map[string]any){
		"qty":            func(b map[string]any) { lines(b)[1]["qty"] = "7" },
		"packs":          func(b map[string]any) { lines(b)[0]["packs"] = "3" },
		"pack_factor":    func(b map[string]any) { lines(b)[0]["pack_factor"] = "6"; lines(b)[0]["packs"] = "4" },
		"purchase_price": func(b map[string]any) { lines(b)[1]["purchase_price"] = "5.10" },
		"batch":          func(b map[string]any) { lines(b)[1]["batch"] = "B2" },
		"expiry":         func(b map[string]any) { delete(lines(b)[0], "expiry") },
		"certificate":    func(b map[string]any) { lines(b)[1]["certificate"] = "C2" },
		"sku":            func(b map[string]any) { lines(b)[1]["sku"] = "COLA" },
		"kept item sku":  func(b map[string]any) { lines(b)[2]["sku"] = "TOY" },
		"lines":          func(b map[string]any) { b["lines"] = lines(b)[:2] },
		"type":           func(b map[string]any) { b["type"] = "supplier_return" },
		"number":         func(b map[string]any) { b["number"] = "INV-8" },
		"supplier":       func(b map[string]any) { b["supplier"] = "sup2" },
		"note":           func(b map[string]any) { delete(b, "note") },
		"occurred_at":    func(b map[string]any) { b["occurred_at"] = t0.Add(time.Second).Format(time.RFC3339) },
	})
}

// TestDocumentRetryAfterStoreChange: a transfer between departments and a
// stocktake are answered as stored though their items are deleted and the
// store has lost a department since; their other fields still conflict.
func TestDocumentRetryAfterStoreChange(t *testing.T) {
	change := func(e *env) func() {
		return func() {
			e.deleteMaster(storeline.KindItem, "milk")
			var st storeline.Store
			if err := e.led.GetMaster(storeline.KindStore, "s1", &st); err != nil {
				e.t.Fatalf("GetMaster store: %v", err)
			}
			st.Departments = st.Departments[:1] // drinks and shoes are gone
			e.putMaster(&st)
		}
	}
	t.Run("transfer", func(t *testing.T) {
		e := newEnv(t)
		alice := e.login(tokenT1, "alice", "1234")
		body := docBody("transfer", map[string]any{"sku": "MILK", "qty": "3"})
		body["from_dept"], body["to_dept"] = "food", "drinks"
		retryCase(t, e, "/v1/documents", alice, body, change(e), map[string]func(b map[string]any){
			"to_dept":   func(b map[string]any) { b["to_dept"] = "shoes" },
			"from_dept": func(b map[string]any) { delete(b, "from_dept") },
			"to_store":  func(b map[string]any) { b["to_store"] = "s2" },
			"qty":       func(b map[string]any) { lines(b)[0]["qty"] = "4" },
		})
	})
	t.Run("stocktake", func(t *testing.T) {
		e := newEnv(t)
		alice := e.login(tokenT1, "alice", "1234")
		body := docBody("stocktake", map[string]any{"sku": "MILK", "qty": "0"}, map[string]any{"sku": "WINE", "qty": "3"})
		body["position"] = map[string]any{"epoch": 1, "seq": 10, "pull_cursor": 4}
		retryCase(t, e, "/v1/documents", alice, body, change(e), map[string]func(b map[string]any){
			"counted": func(b map[string]any) { lines(b)[0]["qty"] = "1" },
			"position": func(b map[string]any) {
				b["position"] = map[string]any{"epoch": 1, "seq": 11, "pull_cursor": 4}
			},
			"type": func(b map[string]any) { delete(b, "position"); b["type"] = "write_off"; b["reason"] = "x" },
		})
	})
}

package posbridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// Regression tests: a retry of a stored receipt or return is answered from
// the stored event whatever the catalogue says now, and a blocked card
// answers without its holder's data. Each failed on the code before its
// fix.

func (e *env) deleteMaster(kind storeline.MasterKind, id string) {
	e.t.Helper()
	if _, err := e.led.DeleteMaster(context.Background(), kind, id); err != nil {
		e.t.Fatalf("DeleteMaster %s %s: %v", kind, id, err)
	}
}

// retryCase posts body to path, changes master data, then checks that the
// same body again answers 200 with the first answer, and that each of the
// changed bodies answers 409 naming id.
func retryCase(t *testing.T, e *env, path, session string, body map[string]any, change func(), others map[string]func(b map[string]any)) {
	t.Helper()
	post := func(b map[string]any) resp {
		return e.do(req{method: "POST", path: path, token: tokenT1, session: session, body: b})
	}
	first := e.must(post(body), 201)
	change()
	again := e.must(post(body), 200)
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retry = %v\nwant the stored answer %v", again, first)
	}
	for name, other := range others {
		t.Run(name, func(t *testing.T) {
			b := clone(body)
			other(b)
			e := e.as(t)
			e.problem(e.do(req{method: "POST", path: path, token: tokenT1, session: session, body: b}), 409, "id")
		})
	}
}

// clone copies a till body deep enough for its lines and payments to be
// changed.
func clone(body map[string]any) map[string]any {
	b := make(map[string]any, len(body))
	for k, v := range body {
		if ms, ok := v.([]map[string]any); ok {
			v = copyMaps(ms)
		}
		b[k] = v
	}
	return b
}

func lines(b map[string]any) []map[string]any { return b["lines"].([]map[string]any) }

// TestReceiptRetryAfterItemDeleted: the items of a stored receipt deleted at
// head office since (tombstoned), its retry is still the stored receipt,
// not a 422 naming the line; another body is still a conflict.
func TestReceiptRetryAfterItemDeleted(t *testing.T) {
	e := newEnv(t)
	body := sale(newID(), []map[string]any{
		line("sku", "MILK", "qty", "2", "price", "1.19"),
		line("barcode", milkBox, "qty", "1", "price", "1.19"),
		line("barcode", gtin("201234500347"), "price", "15.90"),
		line("barcode", "01"+shoeGTIN+"21SER001", "price", "59.00"),
	}, []map[string]any{{"method": "cash", "amount": "100.00"}})
	retryCase(t, e, "/v1/receipts", "", body, func() {
		e.deleteMaster(storeline.KindItem, "milk")
		e.deleteMaster(storeline.KindItem, "cheese")
		e.deleteMaster(storeline.KindItem, "shoe")
	}, map[string]func(b map[string]any){
		"qty":         func(b map[string]any) { lines(b)[0]["qty"] = "3" },
		"price":       func(b map[string]any) { lines(b)[1]["price"] = "1.29" },
		"weight":      func(b map[string]any) { lines(b)[2]["qty"] = "0.5" },
		"serial":      func(b map[string]any) { lines(b)[3]["barcode"] = "01" + shoeGTIN + "21SER002" },
		"sku":         func(b map[string]any) { lines(b)[0]["sku"] = "COLA" },
		"barcode":     func(b map[string]any) { delete(lines(b)[1], "barcode"); lines(b)[1]["sku"] = "MILK" },
		"occurred_at": func(b map[string]any) { b["occurred_at"] = t0.Add(time.Second).Format(time.RFC3339) },
	})
}

// TestReceiptRetryAfterBarcodeMoved: the barcodes of a stored receipt
// moved to other items since (or the SKU's item lost them); a barcode
// names the product the till scanned, so its retry is the stored receipt.
func TestReceiptRetryAfterBarcodeMoved(t *testing.T) {
	e := newEnv(t)
	body := sale(newID(), []map[string]any{
		line("barcode", colaUPC, "qty", "2", "price", "2.00"),
		line("barcode", milkBox, "qty", "1", "price", "1.19"),
	}, []map[string]any{{"method": "card", "amount": "18.28", "reference": "R1"}})
	retryCase(t, e, "/v1/receipts", "", body, func() {
		cola, wine, milk := e.item("cola"), e.item("wine"), e.item("milk")
		wine.Barcodes = append(wine.Barcodes, cola.Barcodes...)
		cola.Barcodes = nil
		milk.Barcodes = milk.Barcodes[:1] // the box barcode is gone
		e.putMaster(cola, milk)
		e.putMaster(wine)
	}, map[string]func(b map[string]any){
		"qty":       func(b map[string]any) { lines(b)[0]["qty"] = "3" },
		"reference": func(b map[string]any) { b["payments"].([]map[string]any)[0]["reference"] = "R2" },
	})
}

// TestReturnRetryAfterMasterDataChange: a return's retry is compared by
// what the till sent, as a receipt's: its item deleted or its VAT rate
// changed since, the retry answers the stored return.
func TestReturnRetryAfterMasterDataChange(t *testing.T) {
	for name, change := range map[string]func(e *env){
		"deleted": func(e *env) { e.deleteMaster(storeline.KindItem, "milk") },
		"vat": func(e *env) {
			milk := e.item("milk")
			milk.VATRate = dec("20")
			e.putMaster(milk)
		},
		"barcode moved": func(e *env) {
			milk, cola := e.item("milk"), e.item("cola")
			cola.Barcodes = append(cola.Barcodes, milk.Barcodes...)
			milk.Barcodes = nil
			e.putMaster(milk)
			e.putMaster(cola)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			bob := e.login(tokenT1, "bob", "9999")
			rid := newID()
			e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rid,
				[]map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19"), line("barcode", milkEAN, "qty", "2", "price", "1.19")},
				[]map[string]any{{"method": "cash", "amount": "10.00"}})}), 201)
			ret := map[string]any{
				"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339),
				"original": rid, "reason": "sour",
				"lines":   []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19"), line("barcode", milkEAN, "qty", "1", "price", "1.19")},
				"refunds": []map[string]any{{"method": "cash", "amount": "2.38"}},
			}
			retryCase(t, e, "/v1/returns", bob, ret, func() { change(e) }, map[string]func(b map[string]any){
				"qty": func(b map[string]any) {
					lines(b)[0]["qty"] = "2"
					b["refunds"] = []map[string]any{{"method": "cash", "amount": "3.57"}}
				},
				"reason":      func(b map[string]any) { b["reason"] = "broken" },
				"refund":      func(b map[string]any) { b["refunds"] = []map[string]any{{"method": "card", "amount": "2.38"}} },
				"occurred_at": func(b map[string]any) { b["occurred_at"] = t0.Add(time.Second).Format(time.RFC3339) },
				"original":    func(b map[string]any) { delete(b, "original") },
			})
		})
	}
}

// TestBlockedCardAnswersNoPersonalData: a blocked card answers that it is
// blocked, its code and kind, and nothing of whom it was issued to (name,
// phone, email, group, points, seller); an unblocked one answers them.
func TestBlockedCardAnswersNoPersonalData(t *testing.T) {
	e := newEnv(t)
	e.addClub()
	e.putMaster(
		&storeline.Customer{ID: "cust1", Name: "Ann Example", Phone: "+4915112345678", Email: "ann@example.org", Group: "vip"},
		&storeline.CardRecord{ID: "card2", Code: "STAFF0002", Kind: storeline.StaffCard, Seller: "alice"},
	)
	get := func(code string) (map[string]any, string) {
		r := e.do(req{method: "GET", path: "/v1/cards/" + code, token: tokenT1})
		return e.must(r, 200), string(r.body)
	}
	open, _ := get("CARD0001")
	if c, _ := open["customer"].(map[string]any); c["phone"] != "+4915112345678" || open["points"] == nil {
		t.Fatalf("unblocked card = %v, want its customer and points", open)
	}
	if staff, _ := get("STAFF0002"); staff["seller"] != "alice" {
		t.Fatalf("unblocked staff card = %v, want its seller", staff)
	}

	e.putMaster(
		&storeline.CardRecord{ID: "card1", Code: "CARD0001", Kind: storeline.LoyaltyCard, Customer: "cust1", Blocked: true},
		&storeline.CardRecord{ID: "card2", Code: "STAFF0002", Kind: storeline.StaffCard, Seller: "alice", Blocked: true},
	)
	for code, kind := range map[string]string{"CARD0001": "loyalty", "STAFF0002": "staff"} {
		m, raw := get(code)
		if m["code"] != code || m["kind"] != kind || m["blocked"] != true {
			t.Fatalf("blocked card %s = %v, want its code, kind and blocked", code, m)
		}
		if len(m) != 3 {
			t.Errorf("blocked card %s = %v, want code, kind and blocked only", code, m)
		}
		for _, personal := range []string{"cust1", "Ann", "+4915112345678", "ann@example.org", "vip", "alice"} {
			if strings.Contains(raw, personal) {
				t.Errorf("blocked card %s answers %q: %s", code, personal, raw)
			}
		}
	}
}

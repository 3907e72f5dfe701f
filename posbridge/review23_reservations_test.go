package posbridge_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// reservationPage lists a page of the active reservations after after
// ("" for the first) and returns their ids and its next.
func reservationPage(t *testing.T, e *env, after string, limit string) (ids []string, next string) {
	t.Helper()
	q := url.Values{"limit": {limit}}
	if after != "" {
		q.Set("after", after)
	}
	m := e.must(e.do(req{method: "GET", path: "/v1/reservations?" + q.Encode(), token: tokenT1}), 200)
	for _, r := range m["reservations"].([]any) {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	if n, ok := m["next"]; ok {
		next = n.(string)
		if next == "" {
			t.Fatalf("next present but empty: %v", m)
		}
	}
	return ids, next
}

// TestReview23ReservationsPaged: a shop with more active reservations
// than a page lists them all by following next, in the list's order
// (until, then id), each once, next absent on the last page; one ended
// between pages moves no other across the cursor.
func TestReview23ReservationsPaged(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("20"))
	untils := []string{"2026-03-14", "2026-03-11", "2026-03-12", "2026-03-11", "2026-03-13", "2026-03-11", "2026-03-12"}
	type held struct{ until, id string }
	var want []held
	for _, until := range untils {
		id := newID()
		e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
			body: reservationBody(id, until, map[string]any{"sku": "MILK", "qty": "1"})}), 201)
		want = append(want, held{until, id})
	}
	slices.SortFunc(want, func(a, b held) int {
		if c := strings.Compare(a.until, b.until); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var wantIDs []string
	for _, h := range want {
		wantIDs = append(wantIDs, h.id)
	}
	if all, next := reservationPage(t, e, "", "100"); !slices.Equal(all, wantIDs) || next != "" {
		t.Fatalf("one page: %v next %q, want %v and no next", all, next, wantIDs)
	}

	var got []string
	ids, next := reservationPage(t, e, "", "3")
	if next != want[2].until+"/"+want[2].id {
		t.Fatalf("first page's next %q, want the until and id of its last, %s/%s", next, want[2].until, want[2].id)
	}
	got = append(got, ids...)
	// Ended between pages: one already listed, one not yet.
	release := map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339)}
	for _, h := range []held{want[1], want[4]} {
		e.must(e.do(req{method: "POST", path: "/v1/reservations/" + h.id + "/release", token: tokenT1, session: alice, body: release}), 201)
	}
	for pages := 0; next != ""; pages++ {
		if pages > len(want) {
			t.Fatalf("paging does not end: %v", got)
		}
		ids, next = reservationPage(t, e, next, "3")
		got = append(got, ids...)
	}
	wantIDs = slices.Delete(slices.Clone(wantIDs), 4, 5)
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("pages: %v\nwant  %v", got, wantIDs)
	}
	// A page ending exactly at the last: no next.
	if ids, next := reservationPage(t, e, want[2].until+"/"+want[2].id, "3"); len(ids) != 3 || next != "" {
		t.Fatalf("the last three: %v next %q, want 3 and no next", ids, next)
	}

	for _, after := range []string{"2026-03-11", "x/" + want[0].id, "2026-13-01/" + want[0].id, "2026-03-11/" + strings.ToUpper(want[0].id)[:35]} {
		e.problem(e.do(req{method: "GET", path: "/v1/reservations?after=" + url.QueryEscape(after), token: tokenT1,
			invalid: after != "2026-13-01/"+want[0].id}), 422, "after")
	}
}

// TestReview23CollectNamesTheSale: a collection's receipt must have sold
// at least one of the reservation's items; one that sold none is refused
// naming receipt and writes nothing. One selling some of them collects
// it, every unit held given back.
func TestReview23CollectNamesTheSale(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	deliverStock(t, e.led, "food", []storeline.ItemID{"milk"}, dec("5"))
	deliverStock(t, e.led, "drinks", []storeline.ItemID{"cola", "wine"}, dec("5"))
	id := newID()
	e.must(e.do(req{method: "POST", path: "/v1/reservations", token: tokenT1, session: alice,
		body: reservationBody(id, "2026-03-12", map[string]any{"sku": "MILK", "qty": "2"}, map[string]any{"sku": "COLA", "qty": "3"})}), 201)

	sell := func(ls ...map[string]any) string {
		rc, total := newID(), dec("0")
		for _, l := range ls {
			total = total.Add(dec(l["qty"].(string)).Mul(dec(l["price"].(string))))
		}
		e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(rc, ls,
			[]map[string]any{{"method": "cash", "amount": total.StringFixed(2)}})}), 201)
		return rc
	}
	wineOnly := sell(line("sku", "WINE", "qty", "1", "price", "7.99"))
	colaOne := sell(line("sku", "COLA", "qty", "1", "price", "2.00"), line("sku", "WINE", "qty", "1", "price", "7.99"))

	collect := map[string]any{"terminal": "t1", "occurred_at": t0.Add(time.Hour).Format(time.RFC3339), "receipt": wineOnly}
	pos := e.led.Position()
	r := e.do(req{method: "POST", path: "/v1/reservations/" + id + "/collect", token: tokenT1, session: alice, body: collect})
	e.problem(r, 422, "receipt")
	if !strings.Contains(string(r.body), wineOnly) || !strings.Contains(string(r.body), "none of the items") {
		t.Fatalf("the refusal does not say the receipt sold none of the items: %s", r.body)
	}
	if got := e.led.Position(); got != pos {
		t.Fatalf("a refused collection moved the journal: %v → %v", pos, got)
	}
	if _, res, _ := reservedStock(t, e, "MILK"); res != "2" {
		t.Fatalf("milk reserved %s after a refused collection, want 2", res)
	}

	collect["receipt"] = colaOne
	m := e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/collect", token: tokenT1, session: alice, body: collect}), 201)
	if m["status"] != "collected" || m["receipt"] != colaOne {
		t.Fatalf("collected = %v", m)
	}
	for _, sku := range []string{"MILK", "COLA"} {
		if _, res, _ := reservedStock(t, e, sku); res != "0" {
			t.Fatalf("%s reserved %s once collected, want 0", sku, res)
		}
	}
	// The retry of the accepted collection answers as before.
	e.must(e.do(req{method: "POST", path: "/v1/reservations/" + id + "/collect", token: tokenT1, session: alice, body: collect}), 200)
	conserved(t, e)
}

package central_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// seedBackOffice adds to seed's shop s1: a second shop, a supplier and
// three items (one weighed).
func seedBackOffice(t *testing.T, a string) {
	t.Helper()
	seed(t, a, 0)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s2", adminKey, map[string]any{
		"name": "Shop 2", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}}, "price_lists": []string{"retail"},
	}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/suppliers/p1", adminKey, map[string]any{"name": "Dairy"}, nil))
	for _, it := range []map[string]any{
		{"id": "milk", "sku": "MILK", "name": "Milk", "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "10",
			"barcodes": []any{map[string]any{"code": "4601234567893"}, map[string]any{"code": "04601234567800", "factor": "12"}}},
		{"id": "flour", "sku": "FLOUR", "name": "Flour", "group": "food", "dept": "main", "unit": "kg", "vat_rate": "10"},
		{"id": "bread", "sku": "BREAD", "name": "Bread", "group": "food", "dept": "main", "unit": "pcs", "vat_rate": "10"},
	} {
		mustOK(t, apiDo(t, "PUT", a, "/v1/items/"+it["id"].(string), adminKey, it, nil))
	}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// balances returns every balance at addr, keyed "account asset".
func balances(t *testing.T, addr string) map[string]decimal.Decimal {
	t.Helper()
	var body struct {
		Balances []struct {
			Account, Asset string
			Amount         decimal.Decimal
		}
		More bool
	}
	r := mustOK(t, apiDo(t, "GET", addr, "/v1/balances", viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil || body.More {
		t.Fatalf("balances %s: %v (more %v)", r.body, err, body.More)
	}
	out := map[string]decimal.Decimal{}
	sums := map[string]decimal.Decimal{}
	for _, b := range body.Balances {
		out[b.Account+" "+b.Asset] = b.Amount
		sums[b.Asset] = sums[b.Asset].Add(b.Amount)
	}
	for a, s := range sums {
		if !s.IsZero() {
			t.Fatalf("asset %s sums to %s over all accounts, want 0", a, s)
		}
	}
	return out
}

func sameBalances(t *testing.T, what string, got, want map[string]decimal.Decimal) {
	t.Helper()
	for k := range want {
		if !got[k].Equal(want[k]) {
			t.Fatalf("%s: %s = %s, want %s", what, k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Fatalf("%s: new balance %s = %s", what, k, got[k])
		}
	}
}

func stockOf(t *testing.T, addr, store, item string) (qty, value decimal.Decimal) {
	t.Helper()
	var body struct {
		Stock []struct {
			Dept, Item string
			Qty, Value decimal.Decimal
		}
	}
	r := mustOK(t, apiDo(t, "GET", addr, "/v1/stock?store="+store+"&item="+item, viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, s := range body.Stock {
		qty, value = qty.Add(s.Qty), value.Add(s.Value)
	}
	return qty, value
}

// wantStock checks a store's units of an item and, unless value is "",
// their value.
func wantStock(t *testing.T, addr, store, item, qty, value string) {
	t.Helper()
	q, v := stockOf(t, addr, store, item)
	if !q.Equal(dec(qty)) || (value != "" && !v.Equal(dec(value))) {
		t.Fatalf("stock of %s at %s = %s units worth %s, want %s worth %s", item, store, q, v, qty, value)
	}
}

type docOut struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Duplicate  bool   `json:"duplicate"`
	ReceivedBy string `json:"received_by"`
	Postings   []struct {
		Account, Asset string
		Amount         decimal.Decimal
	} `json:"postings"`
}

func decodeDoc(t *testing.T, r response) docOut {
	t.Helper()
	var d docOut
	if err := json.Unmarshal(mustOK(t, r).body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d docOut) posting(acct, asset string) decimal.Decimal {
	for _, p := range d.Postings {
		if p.Account == acct && p.Asset == asset {
			return p.Amount
		}
	}
	return decimal.Zero
}

// createAndPost creates a document and posts it.
func createAndPost(t *testing.T, a, id string, doc map[string]any) docOut {
	t.Helper()
	if d := decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/"+id, adminKey, doc, nil)); d.Status != "draft" {
		t.Fatalf("created %s: status %s", id, d.Status)
	}
	d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/"+id+"/post", adminKey, nil, nil))
	if d.Status != "posted" {
		t.Fatalf("posted %s: status %s", id, d.Status)
	}
	return d
}

func lines(ls ...map[string]any) []any {
	out := make([]any, len(ls))
	for i, l := range ls {
		out[i] = l
	}
	return out
}

// TestBackOfficeDocuments runs every document kind through the real HTTP
// API of a one-node cluster and checks stock, cost and lifecycle.
func TestBackOfficeDocuments(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	riga, _ := time.LoadLocation("Europe/Riga")
	soon := storeline.DateOf(time.Now().AddDate(0, 0, 5), riga)

	// An incoming invoice: milk counted in 2 boxes by the box's barcode
	// (12 each), with a batch.
	inv := map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "number": "INV-1", "lines": lines(
		map[string]any{"item": "milk", "packs": "2", "barcode": "04601234567800", "purchase_price": "1.10", "batch": "B1", "expiry": string(soon), "certificate": "C-1"},
		map[string]any{"item": "flour", "qty": "50", "purchase_price": "0.80"},
	)}
	d := createAndPost(t, a, "inv1", inv)
	if got := d.posting("payable/p1", "cur:EUR"); !got.Equal(dec("-66.40")) {
		t.Fatalf("payable/p1 = %s, want -66.40 (26.40 + 40.00)", got)
	}
	wantStock(t, a, "s1", "milk", "24", "24")     // 26.40 less 10% VAT 2.40
	wantStock(t, a, "s1", "flour", "50", "36.36") // 40.00 less VAT 3.64

	// The same document again is a duplicate; other content is a conflict.
	if d := decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, inv, nil)); !d.Duplicate || d.Status != "posted" {
		t.Fatalf("re-create inv1 = %+v, want a duplicate that is posted", d)
	}
	other := map[string]any{"type": "write_off", "store": "s1", "reason": "x", "lines": lines(map[string]any{"item": "milk", "qty": "1"})}
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, other, nil), 409, "id")

	// Bad documents: 4xx naming the field, and nothing changes.
	before := balances(t, a)
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/inv1/post", adminKey, nil, nil), 409, "status")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad1", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "nope", "qty": "1"})}, nil), 422, "lines[0].item")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad2", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "milk", "qty": "-3"})}, nil), 422, "lines[0].qty")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad5", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "flour", "packs": "2", "barcode": "04601234567800"})}, nil), 422, "lines[0].barcode")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/bad3", adminKey, map[string]any{"type": "write_off", "store": "s1", "reason": "x",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "colour": "red"})}, nil), 400, "lines[0].colour")
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/wo-draft", adminKey, other, nil))
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/wo-draft/cancel", adminKey, nil, nil), 409, "status")
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/none/post", adminKey, nil, nil), 404, "id")
	problemOf(t, apiDo(t, "GET", a, "/v1/documents/bad1", viewerKey, nil, nil), 404, "")
	// A recipe that uses itself, and one that does through a sub-recipe.
	problemOf(t, apiDo(t, "PUT", a, "/v1/recipes/bread", adminKey, map[string]any{"yield": "1",
		"components": []any{map[string]any{"item": "bread", "qty": "1"}}}, nil), 422, "components[0].item")
	mustOK(t, apiDo(t, "PUT", a, "/v1/recipes/bread", adminKey, map[string]any{"yield": "10",
		"components": []any{map[string]any{"item": "flour", "qty": "5"}, map[string]any{"item": "milk", "qty": "2"}}}, nil))
	if rc := mustOK(t, apiDo(t, "GET", a, "/v1/recipes/bread", viewerKey, nil, nil)).json(t); rc["yield"] != "10" || len(rc["components"].([]any)) != 2 {
		t.Fatalf("recipe of bread = %v", rc)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/recipes/milk", viewerKey, nil, nil), 404, "")
	problemOf(t, apiDo(t, "PUT", a, "/v1/recipes/flour", adminKey, map[string]any{"yield": "1",
		"components": []any{map[string]any{"item": "bread", "qty": "1"}}}, nil), 422, "components[0].item")
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/bad4", adminKey, map[string]any{"type": "production", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})}, nil))
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/bad4/post", adminKey, nil, nil), 422, "lines[0].item")
	sameBalances(t, "after refused documents", balances(t, a), before)

	// A transfer from s1 to s2: one milk of six never arrives.
	createAndPost(t, a, "tr1", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2",
		"lines": lines(map[string]any{"item": "milk", "qty": "6"})})
	wantStock(t, a, "s1", "milk", "18", "18")
	rc := createAndPost(t, a, "rc1", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5"})})
	if got := rc.posting("discrepancy/s2/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Fatalf("discrepancy/s2/milk = %s, want 1", got)
	}
	wantStock(t, a, "s2", "milk", "5", "5")
	if d := decodeDoc(t, apiDo(t, "GET", a, "/v1/documents/tr1", viewerKey, nil, nil)); d.ReceivedBy != "rc1" {
		t.Fatalf("tr1 received_by = %q, want rc1", d.ReceivedBy)
	}
	// A shipment received once; cancelling it needs the receipt cancelled first.
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/rc2", adminKey, map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1",
		"lines": lines(map[string]any{"item": "milk", "qty": "6"})}, nil))
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/rc2/post", adminKey, nil, nil), 409, "")
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/tr1/cancel", adminKey, nil, nil), 409, "status")

	// A stocktake finds one milk missing; production makes bread at cost.
	st := createAndPost(t, a, "st1", map[string]any{"type": "stocktake", "store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "17"})})
	if got := st.posting("shrinkage/s1/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Fatalf("shrinkage = %s, want 1", got)
	}
	createAndPost(t, a, "pr1", map[string]any{"type": "production", "store": "s1", "lines": lines(map[string]any{"item": "bread", "qty": "10"})})
	wantStock(t, a, "s1", "bread", "10", "5.64") // 5 kg flour at 0.7272 = 3.64, 2 milk at 1.00
	wantStock(t, a, "s1", "flour", "45", "32.72")

	// Cancelling restores every quantity and value at its original amount.
	mid := balances(t, a)
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoiled", "lines": lines(map[string]any{"item": "flour", "qty": "2.5"})})
	if d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/wo1/cancel", adminKey, nil, nil)); d.Status != "cancelled" {
		t.Fatalf("cancel wo1: status %s", d.Status)
	}
	sameBalances(t, "after cancelling wo1", balances(t, a), mid)
	// A retry with the request's Idempotency-Key gets the first outcome
	// (a post whose answer was lost is safe to resend).
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/wo2", adminKey, other, nil))
	key := map[string]string{"Idempotency-Key": "post-wo2"}
	first := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/wo2/post", adminKey, nil, key))
	again := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/wo2/post", adminKey, nil, key))
	if first.Duplicate || !again.Duplicate || again.Status != "posted" || len(again.Postings) != len(first.Postings) {
		t.Fatalf("post retried with its key: first %+v, again %+v", first, again)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/wo2/cancel", adminKey, nil, nil))
	sameBalances(t, "after posting wo2 twice with one key and cancelling it", balances(t, a), mid)
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/wo1/cancel", adminKey, nil, nil), 409, "status")
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/wo1/post", adminKey, nil, nil), 409, "status")

	// Repricing writes prices into the list; cancelling withdraws them.
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	createAndPost(t, a, "rp1", map[string]any{"type": "repricing", "store": "s1", "price_list": "retail", "from": from,
		"lines": lines(map[string]any{"item": "milk", "price": "1.49"})})
	ps := mustOK(t, apiDo(t, "GET", a, "/v1/prices?list=retail&item=milk", viewerKey, nil, nil)).json(t)["prices"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["price"] != "1.49" {
		t.Fatalf("prices after repricing = %v", ps)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/rp1/cancel", adminKey, nil, nil))
	ps = mustOK(t, apiDo(t, "GET", a, "/v1/prices?list=retail&item=milk", viewerKey, nil, nil)).json(t)["prices"].([]any)
	if len(ps) != 0 {
		t.Fatalf("prices after cancelling the repricing = %v", ps)
	}

	// Batches: B1 expires within a week, not within a day.
	bs := mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1&expiring_within_days=7", viewerKey, nil, nil)).json(t)["batches"].([]any)
	if len(bs) != 1 || bs[0].(map[string]any)["batch"] != "B1" || bs[0].(map[string]any)["certificate"] != "C-1" {
		t.Fatalf("batches expiring within 7 days = %v", bs)
	}
	bs = mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1&expiring_within_days=1", viewerKey, nil, nil)).json(t)["batches"].([]any)
	if len(bs) != 0 {
		t.Fatalf("batches expiring within 1 day = %v", bs)
	}

	// A document made from a till's draft: one document per draft.
	ev := storeline.NewEventID().String()
	fromDraft := map[string]any{"type": "write_off", "store": "s1", "reason": "broken", "draft": map[string]any{"store": "s1", "event": ev},
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})}
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/wo-till", adminKey, fromDraft, nil))
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/wo-till2", adminKey, fromDraft, nil), 409, "draft.event")

	lst := mustOK(t, apiDo(t, "GET", a, "/v1/documents?store=s2", viewerKey, nil, nil)).json(t)["documents"].([]any)
	if len(lst) != 2 {
		t.Fatalf("documents of s2 = %v, want rc1 and rc2", lst)
	}
	balances(t, a) // conservation, once more
}

// TestBackOfficeOnCluster posts through a follower of a 3-node cluster; every
// replica derives and holds the same books.
func TestBackOfficeOnCluster(t *testing.T) {
	c := startCluster(t, 3)
	f := c.follower()
	a := f.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "12.5", "purchase_price": "0.99"})})
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "wet",
		"lines": lines(map[string]any{"item": "flour", "qty": "0.75"})})
	// Every write above is applied where it was answered (the follower);
	// each replica, once it has applied as much, holds the same books.
	target := f.AppliedIndex()
	want := balances(t, a)
	for _, n := range c.nodes {
		n := n
		waitFor(t, "replica "+n.APIAddr()+" applied", 10*time.Second, func() bool {
			return n.AppliedIndex() >= target
		})
		sameBalances(t, "replica "+n.APIAddr(), balances(t, n.APIAddr()), want)
	}
	// 12.5 kg × 0.99 = 12.375 → 12.38 incl. 10% VAT 1.13: net 11.25,
	// 0.90/kg; 0.75 kg written off at 0.675 → 0.68.
	wantStock(t, a, "s1", "flour", "11.75", "10.57")
}

// milkSales builds a push of store's receipts at seq from..from+n-1, each
// selling one milk from department main.
func milkSales(t *testing.T, store storeline.StoreID, from uint64, n int) []byte {
	t.Helper()
	bodies := make([]datedBody, n)
	for i := range bodies {
		r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
			Lines:    []storeline.Line{{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec("1"), Price: dec("1.50"), VATRate: dec("10")}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.50")}}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		bodies[i] = datedBody{"2026-11-29", r}
	}
	return datedPush(t, store, from, bodies...)
}

func pushOK(t *testing.T, addr string, body []byte) {
	t.Helper()
	status, prob, resp := pushRaw(t, addr, testShops[0].token, body)
	if status != http.StatusOK || resp.Gap != nil || len(resp.Rejections) != 0 {
		t.Fatalf("push: status %d %v %+v", status, prob, resp)
	}
}

// TestStocktakeWhileSelling: a shop counts while it goes on selling and
// head office posts a write-off during the count. Head office refuses the
// stocktake until it has applied the shop's journal up to where counting
// started, then compares the count with the books as of that moment.
func TestStocktakeWhileSelling(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "20", "purchase_price": "1.10"})})
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 1, 3))
	// Units and cost at once: the push's entry costs its sales.
	wantStock(t, a, "s1", "milk", "17", "17")
	cs := mustOK(t, apiDo(t, "POST", a, "/v1/cost_of_sales?store=s1", adminKey, nil, nil)).json(t)
	if cs["costed"] != float64(0) {
		t.Fatalf("cost of sales = %v, want nothing left to cost", cs)
	}
	if got := balances(t, a)["cogs/s1/milk cur:EUR"]; !got.Equal(dec("3")) {
		t.Fatalf("cogs/s1/milk = %s, want 3.00", got)
	}
	// Each sale: 1.50 less 10% VAT 0.14 = 1.36 revenue, 1.00 cost.
	var mg struct {
		Sales []struct {
			Revenue, Cost, Margin decimal.Decimal
		}
		Revenue, Cost decimal.Decimal
		Uncosted      int
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/margin?store=s1&from=2026-11-29&to=2026-11-29", viewerKey, nil, nil)).body, &mg); err != nil {
		t.Fatal(err)
	}
	if len(mg.Sales) != 3 || !mg.Sales[0].Margin.Equal(dec("0.36")) || !mg.Revenue.Equal(dec("4.08")) || !mg.Cost.Equal(dec("3")) || mg.Uncosted != 0 {
		t.Fatalf("margin = %+v, want 3 sales of margin 0.36, revenue 4.08, cost 3", mg)
	}

	// Counting starts after the shop's 5th event, having pulled
	// everything central had; central has applied only 3 of them.
	cursor := central.Version{Index: n.AppliedIndex() + 1}.Pack() - 1
	st := map[string]any{"type": "stocktake", "store": "s1", "position": map[string]any{"epoch": 1, "seq": 5, "pull_cursor": cursor},
		"lines": lines(map[string]any{"item": "milk", "qty": "14"})}
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/st1", adminKey, st, nil))
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/st1/post", adminKey, nil, nil), 409, "position")

	// Sales 4-5 came before the count; 6-7 during it, and so did a
	// write-off posted at head office the shop had not pulled.
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 4, 4))
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "leaking",
		"lines": lines(map[string]any{"item": "milk", "qty": "1"})})
	wantStock(t, a, "s1", "milk", "12", "12") // the write-off costed sales 4-7 first

	// Books as of the count: 20 − 5 = 15; 14 counted: one is missing.
	d := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/st1/post", adminKey, nil, nil))
	if got := d.posting("shrinkage/s1/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Fatalf("shrinkage = %s units, want 1: %+v", got, d.Postings)
	}
	wantStock(t, a, "s1", "milk", "11", "11")
	balances(t, a)
}

// pushDraft sends a till's document draft as the shop's event at seq.
func pushDraft(t *testing.T, addr string, store storeline.StoreID, seq uint64, dr *storeline.DocumentDraft) storeline.EventID {
	t.Helper()
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindDocumentDraft, Body: dr, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"}
	w, err := replication.EventToWire(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replication.Encode(&replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: 1, Events: []replication.WireEvent{w}})
	if err != nil {
		t.Fatal(err)
	}
	pushOK(t, addr, b)
	return ev.ID
}

// TestDocumentFromTillDraft: a till drafts an incoming invoice; it reaches
// head office through replication, is listed, and head office posts a
// document made of it.
func TestDocumentFromTillDraft(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Number: "D-7", Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Packs: dec("3"), PackFactor: dec("6"), PurchasePrice: dec("0.55"), Batch: "L9", Expiry: "2027-02-01"}}}
	if err := dr.Validate(); err != nil {
		t.Fatal(err)
	}
	id := pushDraft(t, n.ReplicationAddr(), "s1", 1, dr)

	ds := mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s1", viewerKey, nil, nil)).json(t)["drafts"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["event"] != id.String() || ds[0].(map[string]any)["number"] != "D-7" {
		t.Fatalf("drafts = %v", ds)
	}
	ref := map[string]any{"draft": map[string]any{"store": "s1", "event": id.String()}}
	d := decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/inv-d7", adminKey, ref, nil))
	if d.Status != "draft" {
		t.Fatalf("document from draft: %+v", d)
	}
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-d7b", adminKey, ref, nil), 409, "draft.event")
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv-x", adminKey,
		map[string]any{"draft": map[string]any{"store": "s1", "event": storeline.NewEventID().String()}}, nil), 404, "draft.event")
	d = decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/inv-d7/post", adminKey, nil, nil))
	if got := d.posting("payable/p1", "cur:EUR"); !got.Equal(dec("-9.90")) {
		t.Fatalf("payable = %s, want -9.90 (18 × 0.55)", got)
	}
	wantStock(t, a, "s1", "milk", "18", "9") // 9.90 less 10% VAT 0.90
	ds = mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s1", viewerKey, nil, nil)).json(t)["drafts"].([]any)
	if ds[0].(map[string]any)["document"] != "inv-d7" {
		t.Fatalf("draft's document = %v, want inv-d7", ds[0])
	}
}

// salesPush builds a push of store's receipts from seq on, one per line
// (each line one unit at 1.50, paid in cash), dated today in Riga.
func salesPush(t *testing.T, store storeline.StoreID, seq uint64, ls ...storeline.Line) []byte {
	t.Helper()
	bodies := make([]storeline.Body, len(ls))
	for i, l := range ls {
		l.Unit, l.Qty, l.Price, l.VATRate = storeline.Piece, dec("1"), dec("1.50"), dec("21")
		r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
			Lines: []storeline.Line{l}, Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.50")}}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		bodies[i] = r
	}
	return eventsPush(t, store, seq, bodies...)
}

// TestExciseJournalAndSerialConflicts: excise goods arrive by invoice,
// move by transfer and are sold with their serials in two shops; the same
// serial sold in both (one was offline) is a conflict.
func TestExciseJournalAndSerialConflicts(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true, "marked": true}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "vodka", "qty": "10", "purchase_price": "6.05"}, map[string]any{"item": "milk", "qty": "5", "purchase_price": "1"})})
	createAndPost(t, a, "tr1", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2", "lines": lines(map[string]any{"item": "vodka", "qty": "2"})})
	pushOK(t, n.ReplicationAddr(), salesPush(t, "s1", 1,
		storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-1"}, storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-2"},
		storeline.Line{Item: "milk", Dept: "main"}))
	status, prob, resp := pushRaw(t, n.ReplicationAddr(), testShops[1].token, salesPush(t, "s2", 1, storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-1"}))
	if status != http.StatusOK || len(resp.Rejections) != 0 {
		t.Fatalf("push s2: %d %v %+v", status, prob, resp)
	}

	day := func(d int) string { return time.Now().AddDate(0, 0, d).Format(time.DateOnly) }
	var ex struct {
		Movements []struct {
			Source, Ref, Kind, Item, Serial string
			Qty                             decimal.Decimal
		}
		Totals map[string]map[string]decimal.Decimal
	}
	r := mustOK(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from="+day(-1)+"&to="+day(1), viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &ex); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ex.Movements {
		ref := m.Ref
		if m.Source == "event" {
			ref = "ev"
		}
		got = append(got, m.Source+" "+ref+" "+m.Kind+" "+m.Item+" "+m.Qty.String()+" "+m.Serial)
	}
	want := []string{
		"document inv1 incoming_invoice vodka 10 ",
		"document tr1 transfer vodka -2 ",
		"event ev receipt vodka -1 SN-1",
		"event ev receipt vodka -1 SN-2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("excise journal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tot := ex.Totals["vodka"]; !tot["in"].Equal(dec("10")) || !tot["out"].Equal(dec("4")) || len(ex.Totals) != 1 {
		t.Fatalf("excise totals = %v, want vodka in 10 out 4", ex.Totals)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/excise?store=s1&from="+day(1)+"&to="+day(-1), viewerKey, nil, nil), 400, "to")

	// A serial written off at s2 and then sold there is a conflict too;
	// one written off and never sold is not.
	createAndPost(t, a, "rc1", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1", "lines": lines(map[string]any{"item": "vodka", "qty": "2"})})
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s2", "reason": "broken", "lines": lines(
		map[string]any{"item": "vodka", "qty": "1", "serial": "SN-7"}, map[string]any{"item": "vodka", "qty": "1", "serial": "SN-8"})})
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/wo2", adminKey, map[string]any{"type": "write_off", "store": "s2", "reason": "broken",
		"lines": lines(map[string]any{"item": "vodka", "qty": "2", "serial": "SN-9"})}, nil), 422, "lines[0].qty")
	status, prob, resp = pushRaw(t, n.ReplicationAddr(), testShops[1].token, salesPush(t, "s2", 2, storeline.Line{Item: "vodka", Dept: "main", Serial: "SN-7"}))
	if status != http.StatusOK || len(resp.Rejections) != 0 {
		t.Fatalf("push s2: %d %v %+v", status, prob, resp)
	}
	var sc struct {
		Conflicts []struct {
			Serial string
			Net    int
			Stores []struct {
				Store    string
				Sold     int
				Returned int
			}
		}
	}
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/serials/conflicts", viewerKey, nil, nil)).body, &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.Conflicts) != 2 || sc.Conflicts[0].Serial != "SN-1" || sc.Conflicts[0].Net != 2 || len(sc.Conflicts[0].Stores) != 2 ||
		sc.Conflicts[1].Serial != "SN-7" || sc.Conflicts[1].Net != 2 || len(sc.Conflicts[1].Stores) != 1 {
		t.Fatalf("serial conflicts = %+v, want SN-1 sold in s1 and s2, SN-7 written off and sold in s2", sc.Conflicts)
	}
}

// TestAutomaticRepricing: a rule prices food at 30% over cost with .99
// endings; posting an invoice drafts a repricing for review, and one can
// be asked for on demand and posted.
func TestAutomaticRepricing(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	problemOf(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r0", adminKey, map[string]any{"group": "toys", "price_list": "retail", "markup": "30"}, nil), 422, "group")
	problemOf(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r0", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "-1"}, nil), 422, "markup")
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30", "ending": "0.99"}, nil))
	rs := mustOK(t, apiDo(t, "GET", a, "/v1/reprice_rules", viewerKey, nil, nil)).json(t)["rules"].([]any)
	if len(rs) != 1 {
		t.Fatalf("rules = %v", rs)
	}
	// 10 milk at 2.20 incl. 10% VAT: cost 2.00; 2.00 × 1.30 × 1.10 = 2.86 → 2.99.
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"})})
	ds := mustOK(t, apiDo(t, "GET", a, "/v1/documents?type=repricing&status=draft", viewerKey, nil, nil)).json(t)["documents"].([]any)
	if len(ds) != 1 {
		t.Fatalf("repricing drafts after the invoice = %v, want 1", ds)
	}
	auto := mustOK(t, apiDo(t, "GET", a, "/v1/documents/"+ds[0].(map[string]any)["id"].(string), viewerKey, nil, nil)).json(t)
	if ls := auto["lines"].([]any); len(ls) != 1 || ls[0].(map[string]any)["price"] != "2.99" {
		t.Fatalf("automatic repricing lines = %v, want milk at 2.99", auto["lines"])
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp9", "store": "s1", "price_list": "wholesale"}, nil), 422, "price_list")
	d := decodeDoc(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp1", "store": "s1", "price_list": "retail"}, nil))
	if d.Status != "draft" {
		t.Fatalf("on-demand repricing: %+v", d)
	}
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/rp1/post", adminKey, nil, nil))
	ps := mustOK(t, apiDo(t, "GET", a, "/v1/prices?list=retail&item=milk", viewerKey, nil, nil)).json(t)["prices"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["price"] != "2.99" {
		t.Fatalf("prices after the automatic repricing = %v", ps)
	}
}

// TestShopDraftPostedReachesShops is the back office end to end with real
// shop nodes: shop 1's till drafts an incoming invoice; it reaches head
// office by replication; head office posts it, then ships a transfer to
// shop 2 and receives it there. Each shop's own ledger ends with the
// units and value head office booked for it.
func TestShopDraftPostedReachesShops(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 200 * time.Millisecond
	})
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	urls := []string{"http://" + n.ReplicationAddr()}
	s1 := startShopNode(t, testShops[0], t.TempDir(), shopReplication(urls, testShops[0].token))
	s2 := startShopNode(t, testShops[1], t.TempDir(), shopReplication(urls, testShops[1].token))

	dr := &storeline.DocumentDraft{Type: storeline.DocIncomingInvoice, Terminal: "till-1", Seller: "alice", Currency: "EUR", Supplier: "p1",
		Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("20"), PurchasePrice: dec("1.10")}}}
	ev, _, err := s1.Ledger().Append(context.Background(), storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindDocumentDraft, Body: dr,
		OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the draft at head office", 15*time.Second, func() bool {
		ds := mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s1", viewerKey, nil, nil)).json(t)["drafts"].([]any)
		return len(ds) == 1
	})
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, map[string]any{"draft": map[string]any{"store": "s1", "event": ev.ID.String()}}, nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/inv1/post", adminKey, nil, nil))
	createAndPost(t, a, "tr1", map[string]any{"type": "transfer", "store": "s1", "to_store": "s2", "lines": lines(map[string]any{"item": "milk", "qty": "6"})})
	createAndPost(t, a, "rc1", map[string]any{"type": "transfer_receipt", "store": "s2", "shipment": "tr1", "lines": lines(map[string]any{"item": "milk", "qty": "6"})})

	shopHas := func(shop *node.Node, store storeline.StoreID, qty, value string) {
		t.Helper()
		acct := storeline.StockAccount(store, "main", "milk")
		waitFor(t, fmt.Sprintf("%s to hold %s milk worth %s", store, qty, value), 15*time.Second, func() bool {
			q, err1 := shop.Ledger().Balance(acct, storeline.ItemAsset("milk"))
			v, err2 := shop.Ledger().Balance(acct, storeline.MoneyAsset("EUR"))
			return err1 == nil && err2 == nil && q.Equal(dec(qty)) && v.Equal(dec(value))
		})
	}
	shopHas(s1, "s1", "14", "14") // 20 at 1.10 incl. VAT: 1.00 each; 6 shipped
	shopHas(s2, "s2", "6", "6")
	wantStock(t, a, "s1", "milk", "14", "14")

	// A stocktake at shop 1 while it goes on selling: 2 sold before the
	// count starts (12 on the books then), 11 counted, 3 sold during it.
	sell := func(k int) {
		for i := 0; i < k; i++ {
			r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
				Lines:    []storeline.Line{{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec("1"), Price: dec("1.50"), VATRate: dec("10")}},
				Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.50")}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s1.Ledger().Append(context.Background(), storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r,
				OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sell(2)
	pos := s1.Ledger().Position()
	count := &storeline.DocumentDraft{Type: storeline.DocStocktake, Terminal: "till-1", Seller: "alice", Currency: "EUR",
		Position: &storeline.JournalPosition{Epoch: pos.Epoch, Seq: pos.Seq, PullCursor: s1.Replication().Status().Cursor},
		Lines:    []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: dec("11")}}}
	sell(1)
	cev, _, err := s1.Ledger().Append(context.Background(), storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindDocumentDraft, Body: count,
		OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"})
	if err != nil {
		t.Fatal(err)
	}
	sell(2)
	waitFor(t, "the stocktake draft at head office", 15*time.Second, func() bool {
		ds := mustOK(t, apiDo(t, "GET", a, "/v1/drafts?store=s1", viewerKey, nil, nil)).json(t)["drafts"].([]any)
		return len(ds) == 2
	})
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/st1", adminKey, map[string]any{"draft": map[string]any{"store": "s1", "event": cev.ID.String()}}, nil))
	st := decodeDoc(t, apiDo(t, "POST", a, "/v1/documents/st1/post", adminKey, nil, nil))
	if got := st.posting("shrinkage/s1/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Fatalf("shrinkage = %s units, want 1 (12 on the books when counting started, 11 counted): %+v", got, st.Postings)
	}
	// 14 − 5 sold − 1 missing, worth 1.00 each: the sales were costed
	// before the stocktake posted, and the shop's own books agree once it
	// pulls the cost and the stocktake.
	shopHas(s1, "s1", "8", "8")
	wantStock(t, a, "s1", "milk", "8", "8")
	if got := balances(t, a)["cogs/s1/milk cur:EUR"]; !got.Equal(dec("5")) {
		t.Fatalf("cogs/s1/milk = %s, want 5.00", got)
	}
}

// TestDocumentAfterLongBacklog: a shop pushed more sales than one entry
// costs (a pass costs at most its limit); posting a document refuses inside the FSM until they are costed,
// and the API costs them in passes first, so the post succeeds with every
// sale costed at the average.
func TestDocumentAfterLongBacklog(t *testing.T) {
	// Pushes cost their sales as they are applied; a pass limit below the
	// push size leaves a backlog, as state from before that did.
	const limit = 50
	central.SetCostPassLimit(t, limit)
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	total := 10*limit + 100
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": fmt.Sprint(total + 10), "purchase_price": "1.10"})})
	for seq := 1; seq <= total; seq += 300 {
		k := min(300, total-seq+1)
		ls := make([]storeline.Line, k)
		for i := range ls {
			ls[i] = storeline.Line{Item: "milk", Dept: "main"}
		}
		pushOK(t, n.ReplicationAddr(), salesPush(t, "s1", uint64(seq), ls...))
	}
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "x", "lines": lines(map[string]any{"item": "milk", "qty": "1"})})
	wantStock(t, a, "s1", "milk", "9", "9")
	if got := balances(t, a)["cogs/s1/milk cur:EUR"]; !got.Equal(decimal.NewFromInt(int64(total))) {
		t.Fatalf("cogs/s1/milk = %s, want %d", got, total)
	}
}

// TestSerialSoldTwiceWhileOffline: shop 2 is cut off from head office and
// sells a marked bottle whose serial shop 1 sells online; when shop 2
// comes back and uploads, head office records the serial as a conflict.
func TestSerialSoldTwiceWhileOffline(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 200 * time.Millisecond
	})
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/items/vodka", adminKey, map[string]any{"sku": "VODKA", "name": "Vodka", "group": "food", "dept": "main",
		"unit": "pcs", "vat_rate": "21", "excise": true, "marked": true}, nil))
	online := []string{"http://" + n.ReplicationAddr()}
	s1 := startShopNode(t, testShops[0], t.TempDir(), shopReplication(online, testShops[0].token))
	dir2 := t.TempDir()
	// Shop 2 knows no reachable head office: it sells offline.
	s2 := startShopNode(t, testShops[1], dir2, shopReplication([]string{"http://127.0.0.1:1"}, testShops[1].token))
	sellSerial := func(shop *node.Node, serial string) {
		t.Helper()
		r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
			Lines:    []storeline.Line{{Item: "vodka", Dept: "main", Unit: storeline.Piece, Qty: dec("1"), Price: dec("9.99"), VATRate: dec("21"), Serial: serial}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("9.99")}}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := shop.Ledger().Append(context.Background(), storeline.Event{ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r,
			OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29"}); err != nil {
			t.Fatal(err)
		}
	}
	sellSerial(s1, "0104600000000017215ABC")
	sellSerial(s2, "0104600000000017215ABC")
	conflicts := func() []any {
		return mustOK(t, apiDo(t, "GET", a, "/v1/serials/conflicts", viewerKey, nil, nil)).json(t)["conflicts"].([]any)
	}
	waitFor(t, "shop 1's sale at head office", 15*time.Second, func() bool { return caughtUpAt(s1) })
	if cs := conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts before shop 2 uploads = %v", cs)
	}
	// Shop 2 comes back online (restarted with head office's address).
	if err := s2.Stop(); err != nil {
		t.Fatal(err)
	}
	s2 = startShopNode(t, testShops[1], dir2, shopReplication(online, testShops[1].token))
	waitFor(t, "shop 2's upload", 15*time.Second, func() bool { return caughtUpAt(s2) })
	cs := conflicts()
	if len(cs) != 1 || cs[0].(map[string]any)["serial"] != "0104600000000017215ABC" || len(cs[0].(map[string]any)["stores"].([]any)) != 2 {
		t.Fatalf("conflicts = %v, want the serial sold at s1 and s2", cs)
	}
}

// TestCancelOnDeletedItemWritesNothing: a document whose item was deleted
// after posting cannot be cancelled, and the refusal writes nothing, not
// even the cost-of-sales pass that runs before a cancel (a refused op
// writes nothing).
func TestCancelOnDeletedItemWritesNothing(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"},
			map[string]any{"item": "bread", "qty": "5", "purchase_price": "0.55"})})
	pushOK(t, n.ReplicationAddr(), milkSales(t, "s1", 1, 1))
	mustOK(t, apiDo(t, "DELETE", a, "/v1/items/bread", adminKey, nil, nil))
	before := balances(t, a)
	problemOf(t, apiDo(t, "POST", a, "/v1/documents/inv1/cancel", adminKey, nil, nil), 404, "lines")
	sameBalances(t, "after a refused cancel", balances(t, a), before)
	if d := decodeDoc(t, apiDo(t, "GET", a, "/v1/documents/inv1", viewerKey, nil, nil)); d.Status != "posted" {
		t.Fatalf("inv1 after a refused cancel: status %s, want posted", d.Status)
	}
}

// TestDocumentRetryWithOtherDecimalSpelling: "1.1" and "1.10" are the same
// price, so a retry that spells it differently is the same document.
func TestDocumentRetryWithOtherDecimalSpelling(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	doc := func(price, packs string) map[string]any {
		return map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
			map[string]any{"item": "milk", "packs": packs, "barcode": "04601234567800", "purchase_price": price})}
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, doc("1.1", "2"), nil))
	if d := decodeDoc(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, doc("1.10", "2.0"), nil)); !d.Duplicate {
		t.Fatalf("the same invoice spelt 1.10 and 2.0 = %+v, want a duplicate", d)
	}
	problemOf(t, apiDo(t, "PUT", a, "/v1/documents/inv1", adminKey, doc("1.11", "2"), nil), 409, "id")
}

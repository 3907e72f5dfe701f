package central_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// repricingDraftIDs lists the ids of the repricing drafts at a.
func repricingDraftIDs(t *testing.T, a string) []string {
	t.Helper()
	var body struct {
		Documents []struct {
			ID string `json:"id"`
		} `json:"documents"`
	}
	r := mustOK(t, apiDo(t, "GET", a, "/v1/documents?type=repricing&status=draft", viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(body.Documents))
	for i, d := range body.Documents {
		ids[i] = d.ID
	}
	return ids
}

// repricingDoc is a repricing document's from and lines.
type repricingDoc struct {
	Status string    `json:"status"`
	From   time.Time `json:"from"`
	Lines  []struct {
		Item  string `json:"item"`
		Price string `json:"price"`
	} `json:"lines"`
}

func getRepricing(t *testing.T, a, id string) repricingDoc {
	t.Helper()
	var d repricingDoc
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/documents/"+id, viewerKey, nil, nil)).body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// milkPriceFroms answers the effective times of milk's prices in retail.
func milkPriceFroms(t *testing.T, a string) []time.Time {
	t.Helper()
	var body struct {
		Prices []struct {
			Item  string    `json:"item"`
			From  time.Time `json:"from"`
			Price string    `json:"price"`
		} `json:"prices"`
	}
	r := mustOK(t, apiDo(t, "GET", a, "/v1/prices?list=retail&item=milk", viewerKey, nil, nil))
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, p := range body.Prices {
		out = append(out, p.From)
	}
	return out
}

// TestReview11AutoRepricingTakesEffectWhenPosted: an automatic repricing
// drafted after an invoice, and one drafted on demand, are reviewed and
// posted days later. Their prices take effect when each is posted, not
// when it was drafted: the shop charged the old price until then.
func TestReview11AutoRepricingTakesEffectWhenPosted(t *testing.T) {
	var skew atomic.Int64
	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	a := c.waitLeader().APIAddr()
	seedBackOffice(t, a)
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30", "ending": "0.99"}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"})})
	ids := repricingDraftIDs(t, a)
	if len(ids) != 1 {
		t.Fatalf("repricing drafts after the invoice = %v, want 1", ids)
	}
	auto := ids[0]

	// A day later head office asks for a draft on demand.
	skew.Store(int64(24 * time.Hour))
	mustOK(t, apiDo(t, "POST", a, "/v1/repricing/auto", adminKey, map[string]any{"id": "rp1", "store": "s1", "price_list": "retail"}, nil))

	// Three days after the invoice the automatic draft is posted.
	skew.Store(int64(72 * time.Hour))
	before := time.Now().Add(72 * time.Hour)
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/"+auto+"/post", adminKey, nil, nil))
	after := time.Now().Add(72 * time.Hour)
	d := getRepricing(t, a, auto)
	lo, hi := storeline.WallClock(before, riga).Truncate(time.Millisecond), storeline.WallClock(after, riga)
	if d.Status != "posted" || d.From.Before(lo) || d.From.After(hi) {
		t.Fatalf("automatic repricing posted between %s and %s (wall clock): status %s, from %s", lo, hi, d.Status, d.From)
	}
	for _, f := range milkPriceFroms(t, a) {
		if f.Before(before.Truncate(time.Millisecond)) {
			t.Fatalf("milk's new price is from %s, before the repricing was posted (%s): the shop charged the old price then", f, before)
		}
	}

	// Five days after the invoice the on-demand draft is posted.
	skew.Store(int64(120 * time.Hour))
	before = time.Now().Add(120 * time.Hour)
	mustOK(t, apiDo(t, "POST", a, "/v1/documents/rp1/post", adminKey, nil, nil))
	after = time.Now().Add(120 * time.Hour)
	d = getRepricing(t, a, "rp1")
	lo, hi = storeline.WallClock(before, riga).Truncate(time.Millisecond), storeline.WallClock(after, riga)
	if d.Status != "posted" || d.From.Before(lo) || d.From.After(hi) {
		t.Fatalf("on-demand repricing posted between %s and %s (wall clock): status %s, from %s", lo, hi, d.Status, d.From)
	}

	// A repricing made by hand keeps the from it names, even a past one.
	past := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	createAndPost(t, a, "rp2", map[string]any{"type": "repricing", "store": "s1", "price_list": "retail", "from": past.Format(time.RFC3339),
		"lines": lines(map[string]any{"item": "bread", "price": "1.50"})})
	if d := getRepricing(t, a, "rp2"); !d.From.Equal(past) {
		t.Fatalf("a repricing by hand from %s is now from %s", past, d.From)
	}
}

// TestReview11InvoiceCostWeightedOverLines: an invoice with a paid line
// and a free bonus line of one item sets the item's last purchase cost to
// the invoice's value over its units, not the last line's 0.00; an item
// bought only free costs 0.
func TestReview11InvoiceCostWeightedOverLines(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/reprice_rules/r1", adminKey, map[string]any{"group": "food", "price_list": "retail", "markup": "30", "ending": "0.99"}, nil))
	// 10 milk at 2.20 incl. 10% VAT (20.00 net) and 10 free: 1.00 a unit;
	// 1.00 × 1.30 × 1.10 = 1.43 → 1.99. Bread, only free, gets no price.
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "2.20"},
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "0.00"},
		map[string]any{"item": "bread", "qty": "5", "purchase_price": "0"},
	)})
	ids := repricingDraftIDs(t, a)
	if len(ids) != 1 {
		t.Fatalf("repricing drafts after the invoice = %v, want 1 (milk from its average cost)", ids)
	}
	d := getRepricing(t, a, ids[0])
	if len(d.Lines) != 1 || d.Lines[0].Item != "milk" || d.Lines[0].Price != "1.99" {
		t.Fatalf("automatic repricing lines = %+v, want milk at 1.99", d.Lines)
	}
	// Below zero, stock is costed at the last purchase cost: 25 milk
	// written off of 20 worth 20.00 leaves −5 worth −5.00.
	createAndPost(t, a, "wo1", map[string]any{"type": "write_off", "store": "s1", "reason": "spoilt", "lines": lines(map[string]any{"item": "milk", "qty": "25"})})
	wantStock(t, a, "s1", "milk", "-5", "-5")
	// Bread came in free: its cost stays 0 below zero too.
	createAndPost(t, a, "wo2", map[string]any{"type": "write_off", "store": "s1", "reason": "spoilt", "lines": lines(map[string]any{"item": "bread", "qty": "7"})})
	wantStock(t, a, "s1", "bread", "-2", "0")
}

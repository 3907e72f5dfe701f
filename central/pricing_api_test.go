package central_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

var pricingSeed = flag.Uint64("pricing.seed", 0, "seed of TestNodeAndCentralPriceIdentically (0: from the clock)")

// pricingSeedData adds to seed's store s1 and items i0..: a customer group
// with a customer and a card, prices, and a nested goods group.
func pricingSeedData(t *testing.T, a string) {
	t.Helper()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{
		"groups":          []any{map[string]any{"id": "dairy", "name": "Dairy", "parent": "food"}},
		"customer_groups": []any{map[string]any{"id": "vip", "name": "VIP"}},
		"customers":       []any{map[string]any{"id": "c1", "name": "Ann", "group": "vip"}},
		"cards":           []any{map[string]any{"id": "card1", "code": "1001", "kind": "loyalty", "customer": "c1"}},
		"prices": []any{
			map[string]any{"list": "retail", "item": "i0", "from": from, "price": "2.00"},
			map[string]any{"list": "retail", "item": "i1", "from": from, "price": "5.00"},
		},
	}, nil))
}

func promoBody(kind string, mod func(map[string]any)) map[string]any {
	p := map[string]any{"name": "P", "kind": kind, "from": "2026-01-01T00:00:00Z", "items": []string{"i0"}, "percent": "10"}
	mod(p)
	for k, v := range p {
		if v == nil {
			delete(p, k) // a field set to nil is left out
		}
	}
	return p
}

// TestPricingRulesAPI authors promotions, price policies and loyalty
// programmes through the head-office API: each bad one is a 422 (400 when
// malformed) naming the field and writes nothing; good ones are served
// back, and the basket endpoint prices with them.
func TestPricingRulesAPI(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 3)
	pricingSeedData(t, a)

	mustOK(t, apiDo(t, "PUT", a, "/v1/promotions/p10", adminKey, promoBody("percent", func(map[string]any) {}), nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/price_policies/vip5", adminKey, map[string]any{"name": "VIP", "customer_group": "vip", "percent": "5"}, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/loyalty_programmes/eur", adminKey, map[string]any{"name": "Points", "currency": "EUR",
		"default_rate": "1", "point_value": "0.01", "max_share": "50", "daily_offline_cap": 500, "staff_discount": "20"}, nil))
	got := mustOK(t, apiDo(t, "GET", a, "/v1/promotions/p10", viewerKey, nil, nil)).json(t)
	if got["kind"] != "percent" || got["percent"] != "10" || !reflect.DeepEqual(got["items"], []any{"i0"}) {
		t.Fatalf("promotion p10 = %v", got)
	}
	if l := mustOK(t, apiDo(t, "GET", a, "/v1/loyalty_programmes", viewerKey, nil, nil)).json(t); len(l["records"].([]any)) != 1 {
		t.Fatalf("programmes = %v", l)
	}

	before := n.Replica().AppliedIndex()
	cases := []struct {
		name, path string
		body       any
		status     int
		field      string
	}{
		{"unknown item", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["items"] = []string{"ghost"} }), 422, "items[0]"},
		{"unknown group", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["items"], p["groups"] = nil, []string{"nope"} }), 422, "groups[0]"},
		{"unknown store", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["stores"] = []string{"s9"} }), 422, "stores[0]"},
		{"unknown bundle item", "/v1/promotions/x", promoBody("bundle", func(p map[string]any) {
			p["items"], p["percent"], p["amount"] = nil, nil, "3"
			p["bundle"] = []any{map[string]any{"item": "i1", "qty": 1}, map[string]any{"item": "ghost", "qty": 1}}
		}), 422, "bundle[1].item"},
		{"percent over 100", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["percent"] = "120" }), 422, "percent"},
		{"until before from", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["until"] = "2025-12-31T00:00:00Z" }), 422, "until"},
		{"no start", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { delete(p, "from") }), 422, "from"},
		{"m not below n", "/v1/promotions/x", promoBody("n_for_m", func(p map[string]any) { p["percent"], p["n"], p["m"] = nil, 3, 3 }), 422, "m"},
		{"overlaps p10", "/v1/promotions/x", promoBody("fixed", func(p map[string]any) {
			p["items"], p["percent"], p["amount"] = []string{"i1", "i0"}, nil, "0.5"
		}), 422, "items[1]"},
		{"overlaps p10 in a window", "/v1/promotions/x", promoBody("percent", func(p map[string]any) {
			p["from"], p["until"] = "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"
		}), 422, "items[0]"},
		{"unknown field", "/v1/promotions/x", promoBody("percent", func(p map[string]any) { p["colour"] = "red" }), 400, "colour"},
		{"policy unknown customer group", "/v1/price_policies/x", map[string]any{"customer_group": "nobody", "percent": "5"}, 422, "customer_group"},
		{"policy unknown goods group", "/v1/price_policies/x", map[string]any{"customer_group": "vip", "percent": "5", "groups": []string{"nope"}}, 422, "groups[0]"},
		{"policy percent zero", "/v1/price_policies/x", map[string]any{"customer_group": "vip", "percent": "0"}, 422, "percent"},
		{"policy overlaps vip5", "/v1/price_policies/x", map[string]any{"customer_group": "vip", "percent": "7", "stores": []string{"s1"}}, 422, "customer_group"},
		{"programme point value zero", "/v1/loyalty_programmes/x", map[string]any{"name": "X", "currency": "USD", "default_rate": "1", "point_value": "0", "max_share": "50"}, 422, "point_value"},
		{"programme share over 100", "/v1/loyalty_programmes/x", map[string]any{"name": "X", "currency": "USD", "default_rate": "1", "point_value": "0.01", "max_share": "150"}, 422, "max_share"},
		{"programme staff discount over 100", "/v1/loyalty_programmes/x", map[string]any{"name": "X", "currency": "USD", "default_rate": "1", "point_value": "0.01", "max_share": "5", "staff_discount": "101"}, 422, "staff_discount"},
		{"programme unknown rate group", "/v1/loyalty_programmes/x", map[string]any{"name": "X", "currency": "USD", "default_rate": "1", "point_value": "0.01", "max_share": "5",
			"rates": []any{map[string]any{"group": "nope", "rate": "2"}}}, 422, "rates[0].group"},
		{"second programme in EUR", "/v1/loyalty_programmes/x", map[string]any{"name": "X", "currency": "EUR", "default_rate": "1", "point_value": "0.01", "max_share": "5"}, 422, "currency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problemOf(t, apiDo(t, "PUT", a, c.path, adminKey, c.body, nil), c.status, c.field)
		})
	}
	// Two promotions of one import that overlap each other: the whole
	// import is refused.
	r := apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"promotions": []any{
		promoBody("percent", func(p map[string]any) { p["id"], p["items"], p["priority"] = "y1", []string{"i1"}, 2 }),
		promoBody("percent", func(p map[string]any) { p["id"], p["items"], p["priority"] = "y2", []string{"i2", "i1"}, 2 }),
	}}, nil)
	problemOf(t, r, 422, "promotions[0].items[0]")
	for _, kind := range []storeline.MasterKind{storeline.KindPromotion, storeline.KindPricePolicy, storeline.KindLoyaltyProgramme} {
		var ids []string
		_ = n.Replica().ScanMaster(kind, "", func(rec storeline.Record) error { ids = append(ids, rec.MasterID()); return nil })
		if len(ids) != 1 {
			t.Errorf("%s records after refused writes: %v", kind, ids)
		}
	}
	cs, err := n.Changes("s1", central.Version{Index: before, Pos: central.MaxChangesPerEntry}, 100)
	if err != nil || len(cs.Changes) != 0 {
		t.Fatalf("changes after refused writes: %+v, %v", cs.Changes, err)
	}

	// Not overlapping: another priority, a later window, another item.
	mustOK(t, apiDo(t, "PUT", a, "/v1/promotions/p11", adminKey, promoBody("fixed", func(p map[string]any) {
		p["percent"], p["amount"], p["priority"] = nil, "0.5", 1
	}), nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/promotions/p12", adminKey, promoBody("percent", func(p map[string]any) { p["items"] = []string{"i1"} }), nil))
	// Replacing a promotion does not overlap with itself.
	mustOK(t, apiDo(t, "PUT", a, "/v1/promotions/p10", adminKey, promoBody("percent", func(p map[string]any) { p["percent"] = "15" }), nil))

	// Concurrent overlapping promotions: the check and the write are
	// serialised, so exactly one is written.
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for k := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[k] = apiDo(t, "PUT", a, fmt.Sprintf("/v1/promotions/race%d", k), adminKey, promoBody("percent", func(p map[string]any) {
				p["items"], p["priority"] = []string{"i2"}, 7
			}), nil).status
		}()
	}
	wg.Wait()
	if ok := slices.Index(statuses, http.StatusOK); ok < 0 || slices.Index(statuses[ok+1:], http.StatusOK) >= 0 || slices.Contains(statuses, 500) {
		t.Fatalf("concurrent overlapping promotions answered %v, want one 200 and 422s", statuses)
	}

	// Central prices a basket with these rules.
	price := func(body map[string]any) map[string]any {
		t.Helper()
		return mustOK(t, apiDo(t, "POST", a, "/v1/stores/s1/baskets/price", viewerKey, body, nil)).json(t)
	}
	lines := []any{map[string]any{"item": "i0", "qty": "2"}, map[string]any{"item": "i1", "qty": "1"}}
	res := price(map[string]any{"occurred_at": "2026-03-10T10:00:00Z", "lines": lines})
	l0 := res["lines"].([]any)[0].(map[string]any)
	// i0: 2 × 2.00; p11 (priority 1) takes 0.50 a unit before p10.
	if l0["gross"] != "4.00" || l0["discount"] != "1.00" || l0["rule"] != "price_list:retail" || l0["promotions"].([]any)[0].(map[string]any)["promotion"] != "p11" {
		t.Fatalf("line 0 = %v", l0)
	}
	if res["total"] != "7.50" { // 3.00 + 5.00 − 10% (p12)
		t.Fatalf("total = %v: %v", res["total"], res)
	}
	vip := price(map[string]any{"occurred_at": "2026-03-10T10:00:00Z", "card": "1001", "lines": lines})
	if v := vip["lines"].([]any)[1].(map[string]any); v["policy"] != "vip5" || v["price"] != "4.75" || v["rule"] != "price_list:retail policy:vip5" {
		t.Fatalf("vip line 1 = %v", v)
	}
	if vip["customer"] != "c1" || vip["customer_group"] != "vip" {
		t.Fatalf("vip basket = %v", vip)
	}
	bad := []struct {
		body   any
		status int
		field  string
	}{
		{map[string]any{"lines": []any{map[string]any{"item": "ghost", "qty": "1"}}}, 422, "lines[0].item"},
		{map[string]any{"lines": []any{map[string]any{"item": "i0"}}}, 422, "lines[0].qty"},
		{map[string]any{"lines": []any{map[string]any{"item": "i2", "qty": "1"}}}, 422, "lines[0].price"}, // no list price
		{map[string]any{"lines": []any{}}, 422, "lines"},
		{map[string]any{"customer_group": "nobody", "lines": lines}, 422, "customer_group"},
		{map[string]any{"occurred_at": "yesterday", "lines": lines}, 422, "occurred_at"},
		{map[string]any{"lines": lines, "coupon": "X"}, 400, ""},
	}
	for i, b := range bad {
		r := apiDo(t, "POST", a, "/v1/stores/s1/baskets/price", viewerKey, b.body, nil)
		if r.status != b.status {
			t.Fatalf("bad basket %d: status %d, want %d: %s", i, r.status, b.status, r.body)
		}
		if b.field != "" {
			problemOf(t, r, b.status, b.field)
		}
	}
	problemOf(t, apiDo(t, "POST", a, "/v1/stores/s9/baskets/price", viewerKey, map[string]any{"lines": lines}, nil), 404, "")
}

// pricedLine and pricedBasket are the fields a shop's POST
// /v1/baskets/price and central's POST /v1/stores/{id}/baskets/price
// share.
type pricedLine struct {
	Item       string `json:"item"`
	Group      string `json:"group"`
	Unit       string `json:"unit"`
	Qty        string `json:"qty"`
	Source     string `json:"source"`
	PriceList  string `json:"price_list"`
	BasePrice  string `json:"base_price"`
	Policy     string `json:"policy"`
	Staff      string `json:"staff"`
	Price      string `json:"price"`
	Gross      string `json:"gross"`
	Discount   string `json:"discount"`
	Total      string `json:"total"`
	VATRate    string `json:"vat_rate"`
	VAT        string `json:"vat"`
	Rule       string `json:"rule"`
	Promotions []struct {
		Promotion string `json:"promotion"`
		Kind      string `json:"kind"`
		Amount    string `json:"amount"`
	} `json:"promotions"`
}

type pricedBasket struct {
	Currency      string       `json:"currency"`
	Customer      string       `json:"customer"`
	CustomerGroup string       `json:"customer_group"`
	StaffCard     bool         `json:"staff_card"`
	Lines         []pricedLine `json:"lines"`
	Subtotal      string       `json:"subtotal"`
	Discount      string       `json:"discount"`
	Total         string       `json:"total"`
	Threshold     string       `json:"threshold_promotion"`
}

// TestNodeAndCentralPriceIdentically makes random master-data changes at
// central through the head-office API (prices, promotions, price
// policies, the programme's staff discount), lets a real shop node pull
// them over its replication link, then prices random baskets at the
// shop's POST /v1/baskets/price and at central's POST
// /v1/stores/{id}/baskets/price: every answer agrees, line by line. Run
// with -pricing.seed N to repeat a run; the seed is logged.
func TestNodeAndCentralPriceIdentically(t *testing.T) {
	t.Parallel()
	seedV := *pricingSeed
	if seedV == 0 {
		seedV = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -pricing.seed %d)", seedV, seedV)
	rng := rand.New(rand.NewPCG(seedV, seedV^0x9e3779b97f4a7c15))

	c := startClusterWith(t, 1, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 200 * time.Millisecond
		cfg.Logger = testLogger()
	})
	ho := c.waitLeader()
	a := ho.APIAddr()

	const items = 12
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := testShops[0]
	imp := map[string]any{
		"price_lists": []any{map[string]any{"id": "retail", "currency": "EUR"}, map[string]any{"id": "club", "currency": "EUR"}},
		"stores": []any{map[string]any{"id": string(spec.store), "name": "Shop", "time_zone": "Europe/Riga", "currency": "EUR",
			"departments": []any{map[string]any{"id": "food", "name": "Food"}}, "price_lists": []string{"club", "retail"}}},
		"groups": []any{map[string]any{"id": "food", "name": "Food"}, map[string]any{"id": "dairy", "name": "Dairy", "parent": "food"},
			map[string]any{"id": "drinks", "name": "Drinks"}},
		"customer_groups": []any{map[string]any{"id": "vip", "name": "VIP"}, map[string]any{"id": "gold", "name": "Gold", "parent": "vip"}},
		"customers":       []any{map[string]any{"id": "c-vip", "name": "V", "group": "vip"}, map[string]any{"id": "c-gold", "name": "G", "group": "gold"}},
	}
	groups := []string{"food", "dairy", "drinks"}
	var its, prices []any
	for i := 0; i < items; i++ {
		unit := "pcs"
		if i%5 == 4 {
			unit = "kg"
		}
		its = append(its, map[string]any{"id": fmt.Sprintf("i%d", i), "sku": fmt.Sprintf("SKU%d", i), "name": "x", "group": groups[i%3],
			"dept": "food", "unit": unit, "vat_rate": []string{"21", "12", "0"}[i%3]})
		prices = append(prices, map[string]any{"list": "retail", "item": fmt.Sprintf("i%d", i), "from": from, "price": fmt.Sprintf("%d.%02d", 1+rng.IntN(20), rng.IntN(100))})
	}
	imp["items"], imp["prices"] = its, prices
	mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, imp, nil))
	mustOK(t, apiDo(t, "PUT", a, "/v1/sellers/staff1", adminKey, map[string]any{"name": "Sam", "role": "cashier", "pin": "1234", "stores": []string{string(spec.store)}}, nil))
	mustOK(t, apiDo(t, "POST", a, "/v1/import", adminKey, map[string]any{"cards": []any{
		map[string]any{"id": "k-vip", "code": "2001", "kind": "loyalty", "customer": "c-vip"},
		map[string]any{"id": "k-gold", "code": "2002", "kind": "loyalty", "customer": "c-gold"},
		map[string]any{"id": "k-staff", "code": "2003", "kind": "staff", "seller": "staff1"},
	}, "loyalty_programmes": []any{map[string]any{"id": "eur", "name": "Points", "currency": "EUR", "default_rate": "1",
		"point_value": "0.01", "max_share": "50", "staff_discount": "10"}}}, nil))

	shop := startShopNode(t, spec, t.TempDir(), shopReplication([]string{"http://" + ho.ReplicationAddr()}, spec.token))

	// The wall-clock moments baskets are priced at (Riga is UTC+2 in
	// March): promotions' windows are drawn among them.
	moments := []time.Time{
		time.Date(2026, 3, 10, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 16, 30, 0, 0, time.UTC),
		time.Date(2026, 3, 11, 9, 15, 0, 0, time.UTC), time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC),
	}
	day := func(d int) time.Time { return time.Date(2026, 3, 9+d, 0, 0, 0, 0, time.UTC) }
	item := func() string { return fmt.Sprintf("i%d", rng.IntN(items)) }
	dec := func(lo, hi int) string {
		v := lo*100 + rng.IntN((hi-lo)*100+1)
		return fmt.Sprintf("%d.%02d", v/100, v%100)
	}
	var promoIDs, policyIDs []string
	accepted, refused := 0, 0
	write := func(method, path string, body any) {
		t.Helper()
		r := apiDo(t, method, a, path, adminKey, body, nil)
		switch r.status {
		case http.StatusOK:
			accepted++
		case http.StatusUnprocessableEntity:
			refused++ // an overlap or a zero amount the generator drew: nothing was written
		case http.StatusNotFound:
			if method != "DELETE" {
				t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
			}
			refused++ // deleting what was refused or deleted before
		default:
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
	}
	randomChange := func(k int) {
		switch rng.IntN(7) {
		case 0, 1: // a price, in either list, effective now or later
			list := []string{"retail", "club"}[rng.IntN(2)]
			write("POST", "/v1/prices", map[string]any{"prices": []any{map[string]any{"list": list, "item": item(),
				"from": day(rng.IntN(4)).Add(-48 * time.Hour), "price": dec(0, 30)}}})
		case 2, 3, 4: // a promotion, new or replacing one
			id := fmt.Sprintf("pr%d", k)
			if len(promoIDs) > 0 && rng.IntN(3) == 0 {
				id = promoIDs[rng.IntN(len(promoIDs))]
			}
			p := map[string]any{"name": "P", "from": day(rng.IntN(3)), "priority": rng.IntN(3)}
			if rng.IntN(2) == 0 {
				p["until"] = day(3 + rng.IntN(3))
			}
			if rng.IntN(4) == 0 {
				p["stores"] = []string{string(spec.store)}
			}
			switch kind := []string{"percent", "fixed", "n_for_m", "bundle", "threshold"}[rng.IntN(5)]; kind {
			case "percent", "fixed", "n_for_m":
				p["kind"] = kind
				if rng.IntN(3) == 0 {
					p["groups"] = []string{groups[rng.IntN(3)]}
				} else {
					p["items"] = []string{item()}
				}
				switch kind {
				case "percent":
					p["percent"] = dec(1, 60)
				case "fixed":
					p["amount"] = dec(0, 3)
				default:
					n := 2 + rng.IntN(3)
					p["n"], p["m"] = n, 1+rng.IntN(n-1)
				}
			case "bundle":
				a, b := rng.IntN(items), rng.IntN(items-1)
				if b >= a {
					b++
				}
				p["kind"], p["amount"] = kind, dec(1, 15)
				p["bundle"] = []any{map[string]any{"item": fmt.Sprintf("i%d", a), "qty": 1 + rng.IntN(2)}, map[string]any{"item": fmt.Sprintf("i%d", b), "qty": 1}}
			case "threshold":
				p["kind"], p["threshold"] = kind, dec(5, 60)
				if rng.IntN(2) == 0 {
					p["percent"] = dec(1, 15)
				} else {
					p["amount"] = dec(1, 5)
				}
			}
			write("PUT", "/v1/promotions/"+id, p)
			if !slices.Contains(promoIDs, id) {
				promoIDs = append(promoIDs, id)
			}
		case 5: // a price policy
			id := fmt.Sprintf("pol%d", k)
			p := map[string]any{"customer_group": []string{"vip", "gold"}[rng.IntN(2)], "percent": dec(1, 25)}
			if rng.IntN(2) == 0 {
				p["groups"] = []string{groups[rng.IntN(3)]}
			}
			write("PUT", "/v1/price_policies/"+id, p)
			policyIDs = append(policyIDs, id)
		case 6: // delete a rule, or change the staff discount
			switch {
			case len(promoIDs) > 0 && rng.IntN(2) == 0:
				write("DELETE", "/v1/promotions/"+promoIDs[rng.IntN(len(promoIDs))], nil)
			case len(policyIDs) > 0 && rng.IntN(2) == 0:
				write("DELETE", "/v1/price_policies/"+policyIDs[rng.IntN(len(policyIDs))], nil)
			default:
				write("PUT", "/v1/loyalty_programmes/eur", map[string]any{"name": "Points", "currency": "EUR", "default_rate": "1",
					"point_value": "0.01", "max_share": "50", "staff_discount": dec(0, 30)})
			}
		}
	}
	shopPrice := func(body map[string]any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", shop.TillURL()+"/v1/baskets/price", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+spec.terminal)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		return resp.StatusCode, raw
	}

	const rounds, changes, baskets = 4, 12, 25
	compared, discounted, staffLines := 0, 0, 0
	for round := 0; round < rounds; round++ {
		for k := 0; k < changes; k++ {
			randomChange(round*changes + k)
		}
		// A marker written last: once the shop holds it, it holds every
		// change before it (the feed is in version order).
		mark := fmt.Sprintf("mark%d", round)
		mustOK(t, apiDo(t, "PUT", a, "/v1/groups/"+mark, adminKey, map[string]any{"name": "marker"}, nil))
		waitFor(t, "the shop to pull "+mark, 15*time.Second, func() bool {
			return shop.Ledger().GetMaster(storeline.KindGroup, mark, &storeline.Group{}) == nil
		})
		for b := 0; b < baskets; b++ {
			var shopLines, hoLines []any
			for l := 1 + rng.IntN(8); l > 0; l-- {
				i := rng.IntN(items)
				qty := fmt.Sprint(1 + rng.IntN(4))
				if i%5 == 4 {
					qty = fmt.Sprintf("%d.%03d", rng.IntN(3), 1+rng.IntN(999))
				}
				shopLines = append(shopLines, map[string]any{"sku": fmt.Sprintf("SKU%d", i), "qty": qty})
				hoLines = append(hoLines, map[string]any{"item": fmt.Sprintf("i%d", i), "qty": qty})
			}
			at := moments[rng.IntN(len(moments))].Format(time.RFC3339)
			sb := map[string]any{"occurred_at": at, "lines": shopLines}
			hb := map[string]any{"occurred_at": at, "lines": hoLines}
			if card := []string{"", "", "2001", "2002", "2003"}[rng.IntN(5)]; card != "" {
				sb["card"], hb["card"] = card, card
			}
			st, sraw := shopPrice(sb)
			hr := apiDo(t, "POST", a, "/v1/stores/"+string(spec.store)+"/baskets/price", viewerKey, hb, nil)
			if st != hr.status {
				t.Fatalf("round %d basket %d: shop %d %s, central %d %s", round, b, st, sraw, hr.status, hr.body)
			}
			if st != http.StatusOK {
				continue // both refuse (a line without a price)
			}
			var sp, hp pricedBasket
			if err := json.Unmarshal(sraw, &sp); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(hr.body, &hp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sp, hp) {
				for i := range sp.Lines {
					if i < len(hp.Lines) && !reflect.DeepEqual(sp.Lines[i], hp.Lines[i]) {
						t.Errorf("line %d: shop %+v\ncentral %+v", i, sp.Lines[i], hp.Lines[i])
					}
				}
				t.Fatalf("round %d basket %d (%v) priced differently:\nshop    %s\ncentral %s", round, b, hb, sraw, hr.body)
			}
			compared++
			if sp.Discount != "0.00" {
				discounted++
			}
			for _, l := range sp.Lines {
				if l.Staff != "" {
					staffLines++
				}
			}
		}
	}
	t.Logf("%d changes accepted, %d refused; %d baskets priced identically, %d with a discount, %d lines with a staff discount",
		accepted, refused, compared, discounted, staffLines)
	if compared < rounds*baskets/2 || discounted == 0 || staffLines == 0 {
		t.Fatalf("too little compared: %d baskets, %d with a discount, %d staff lines", compared, discounted, staffLines)
	}
}

// TestRuleOverlapCheckedInTheEntry: two overlapping promotions sent through
// two central nodes at one moment can each pass the check made before
// submitting; the entry that applies second is refused all the same.
func TestRuleOverlapCheckedInTheEntry(t *testing.T) {
	n := singleNode(t)
	a := n.APIAddr()
	seed(t, a, 3)
	pricingSeedData(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/promotions/p10", adminKey, promoBody("percent", func(map[string]any) {}), nil))
	var p storeline.Promotion
	if err := n.Replica().GetMaster(storeline.KindPromotion, "p10", &p); err != nil {
		t.Fatal(err)
	}
	p.ID = "p11" // the same item, priority, window and shops
	err := n.SubmitUnchecked(context.Background(), &p)
	if storeline.KindOf(err) != storeline.Invalid {
		t.Fatalf("overlapping promotion applied: %v", err)
	}
	if err := n.Replica().GetMaster(storeline.KindPromotion, "p11", &storeline.Promotion{}); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("p11 stored: %v", err)
	}
	p.Priority++ // no longer overlapping: applies
	if err := n.SubmitUnchecked(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
}

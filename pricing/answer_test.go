package pricing_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// fixtureFacts answers ItemFacts from the fixture's items, recording the
// lines asked about.
func fixtureFacts(asked *[]int) pricing.ItemFacts {
	items := map[storeline.ItemID]*storeline.Item{}
	for _, r := range fixture() {
		if it, ok := r.(*storeline.Item); ok {
			items[it.ID] = it
		}
	}
	return func(i int, id storeline.ItemID) (storeline.Unit, decimal.Decimal, error) {
		*asked = append(*asked, i)
		it, ok := items[id]
		if !ok {
			return "", decimal.Decimal{}, storeline.NotFound
		}
		return it.Unit, it.VATRate, nil
	}
}

// TestAnswerBytes pins the answer both APIs give, byte for byte: field
// names and order, money at the currency's scale, quantities and base
// prices as held, VAT included in each line's total, empty promotions as
// [] (the OpenAPI specs require the array), and the store only when
// named (head office names it, a node does not).
func TestAnswerBytes(t *testing.T) {
	manual := bl("cola", "1")
	manual.Manual, manual.ManualPrice = true, dec("1.5")
	res := price(t, goldenRules(), "gold", t0, bl("milk", "1"), bl("brie", "1.5"), bl("juice", "4"), manual)
	var asked []int
	a, err := pricing.NewAnswer(res, fixtureFacts(&asked))
	if err != nil {
		t.Fatal(err)
	}
	a.CatalogVersion, a.PricedAt, a.Customer, a.CustomerGroup = 7, "2026-03-10T09:00:00Z", "c1", "gold"
	const lines = `"lines":[` +
		`{"item":"milk","group":"dairy","unit":"pcs","qty":"1","source":"price_list","price_list":"base","base_price":"1.19","policy":"gold-dairy-12.5","price":"1.04","gross":"1.04","discount":"0.13","total":"0.91","vat_rate":"7","vat":"0.06","rule":"price_list:base policy:gold-dairy-12.5","promotions":[{"promotion":"dairy-10","kind":"percent","amount":"0.10"},{"promotion":"over-25","kind":"threshold","amount":"0.03"}]},` +
		`{"item":"brie","group":"cheese","unit":"kg","qty":"1.5","source":"price_list","price_list":"base","base_price":"19.9","policy":"gold-dairy-12.5","price":"17.41","gross":"26.12","discount":"3.31","total":"22.81","vat_rate":"7","vat":"1.49","rule":"price_list:base policy:gold-dairy-12.5","promotions":[{"promotion":"dairy-10","kind":"percent","amount":"2.61"},{"promotion":"over-25","kind":"threshold","amount":"0.70"}]},` +
		`{"item":"juice","group":"drinks","unit":"pcs","qty":"4","source":"price_list","price_list":"base","base_price":"1.2345","policy":"vip-5","price":"1.17","gross":"4.68","discount":"0.14","total":"4.54","vat_rate":"7","vat":"0.30","rule":"price_list:base policy:vip-5","promotions":[{"promotion":"over-25","kind":"threshold","amount":"0.14"}]},` +
		`{"item":"cola","group":"drinks","unit":"pcs","qty":"1","source":"manual","base_price":"1.5","price":"1.50","gross":"1.50","discount":"0.00","total":"1.50","vat_rate":"7","vat":"0.10","rule":"manual","promotions":[]}]`
	node := `{"currency":"EUR","catalog_version":7,"priced_at":"2026-03-10T09:00:00Z","customer":"c1","customer_group":"gold",` + lines + `,"subtotal":"33.34","discount":"3.58","total":"29.76","threshold_promotion":"over-25"}`
	if b, err := json.Marshal(a); err != nil || string(b) != node {
		t.Fatalf("node answer (err %v):\n got %s\nwant %s", err, b, node)
	}
	a.Store = "s1"
	if b, err := json.Marshal(a); err != nil || string(b) != `{"store":"s1",`+node[1:] {
		t.Fatalf("head office answer (err %v):\n got %s\nwant {\"store\":\"s1\",%s", err, b, node[1:])
	}
	if len(asked) != 4 || asked[0] != 0 || asked[3] != 3 {
		t.Fatalf("facts asked for lines %v, want 0..3 in order", asked)
	}
}

// TestAnswerStaff: a staff card's line names the programme and its rule
// says so; the basket names no customer group.
func TestAnswerStaff(t *testing.T) {
	prog := &storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: dec("1"), PointValue: dec("0.01"), MaxShare: dec("50"), StaffDiscount: dec("20")}
	recs := append(fixture(), prog)
	res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: store(), At: t0, Staff: true, Lines: []pricing.BasketLine{bl("cola", "3")}})
	if err != nil {
		t.Fatal(err)
	}
	var asked []int
	a, err := pricing.NewAnswer(res, fixtureFacts(&asked))
	if err != nil {
		t.Fatal(err)
	}
	a.StaffCard = true
	const want = `{"currency":"EUR","catalog_version":0,"priced_at":"","staff_card":true,"lines":[` +
		`{"item":"cola","group":"drinks","unit":"pcs","qty":"3","source":"price_list","price_list":"base","base_price":"2","staff":"club","price":"1.60","gross":"4.80","discount":"0.00","total":"4.80","vat_rate":"7","vat":"0.31","rule":"price_list:base staff:club","promotions":[]}],` +
		`"subtotal":"4.80","discount":"0.00","total":"4.80"}`
	if b, err := json.Marshal(a); err != nil || string(b) != want {
		t.Fatalf("staff answer (err %v):\n got %s\nwant %s", err, b, want)
	}
}

// TestAnswerRefusesUnpriced: a line without a price is refused naming
// lines[i].price, before the item facts of any later line are looked up;
// an error looking up facts is returned as is.
func TestAnswerRefusesUnpriced(t *testing.T) {
	res := price(t, nil, "", t0, bl("milk", "1"), bl("nolist", "1"), bl("bread", "1"))
	var asked []int
	a, err := pricing.NewAnswer(res, fixtureFacts(&asked))
	if !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "lines[1].price" || a != nil {
		t.Fatalf("NewAnswer = %v, %v; want Invalid naming lines[1].price", a, err)
	}
	if len(asked) != 1 || asked[0] != 0 {
		t.Fatalf("facts asked for lines %v, want [0]", asked)
	}
	gone := errors.New("replica closed")
	_, err = pricing.NewAnswer(price(t, nil, "", t0, bl("milk", "1")), func(int, storeline.ItemID) (storeline.Unit, decimal.Decimal, error) {
		return "", decimal.Decimal{}, gone
	})
	if !errors.Is(err, gone) {
		t.Fatalf("NewAnswer with failing facts = %v, want %v", err, gone)
	}
}

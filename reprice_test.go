package storeline_test

import (
	"testing"

	"github.com/storeline/storeline"
)

func TestAutoPrice(t *testing.T) {
	cases := []struct {
		markup, ending, cost, vat, want string
	}{
		{"30", "0.99", "2.00", "21", "3.99"},   // 2 × 1.3 × 1.21 = 3.146
		{"30", "0", "2.00", "21", "3.15"},      // rounded up to the cent
		{"0", "0.99", "0.8264", "21", "1.99"},  // 0.99994 → 1.00 → 1.99
		{"50", "0.49", "1.00", "0", "2.49"},    // 1.50 is past 1.49: the next ending up
		{"25", "0.90", "0.72", "10", "1.90"},   // 0.99 is past 0.90
		{"20", "0.99", "2.4793", "21", "3.99"}, // 3.59994 → 3.60 → 3.99
		{"10", "0.99", "0", "21", "0"},         // never bought
	}
	for _, c := range cases {
		r := &storeline.RepriceRule{ID: "r", Group: "g", PriceList: "l", Markup: dec(c.markup), Ending: dec(c.ending)}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := storeline.AutoPrice("EUR", r, dec(c.cost), dec(c.vat)); !got.Equal(dec(c.want)) {
			t.Errorf("AutoPrice(%s) of cost %s, VAT %s = %s, want %s", r, c.cost, c.vat, got, c.want)
		}
	}
	bad := &storeline.RepriceRule{ID: "r", Group: "g", PriceList: "l", Markup: dec("10"), Ending: dec("1")}
	if err := bad.Validate(); storeline.FieldOf(err) != "ending" {
		t.Fatalf("Validate(ending 1) = %v", err)
	}
	rules := map[storeline.GroupID]*storeline.RepriceRule{"food": {ID: "f"}, "dairy": {ID: "d"}}
	parent := map[storeline.GroupID]storeline.GroupID{"milk": "dairy", "dairy": "food", "bread": "bakery", "bakery": "food"}
	pf := func(g storeline.GroupID) storeline.GroupID { return parent[g] }
	for g, want := range map[storeline.GroupID]string{"milk": "d", "bread": "f", "toys": ""} {
		r, err := storeline.RuleFor(g, pf, rules)
		if err != nil || (r != nil && r.ID != want) || (r == nil && want != "") {
			t.Errorf("RuleFor(%s) = %v, %v; want %q", g, r, err, want)
		}
	}
}

package pricing_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

func sampleProgramme() *storeline.LoyaltyProgramme {
	return &storeline.LoyaltyProgramme{
		ID: "club", Name: "Club", Currency: "EUR",
		DefaultRate: dec("1"),
		Rates: []storeline.AccrualRate{
			{Group: "food", Rate: dec("2")},
			{Group: "cheese", Rate: dec("5")},
		},
		ExcludeItems:  []storeline.ItemID{"water"},
		ExcludeGroups: []storeline.GroupID{"dairy"},
		PointValue:    dec("0.01"), MaxShare: dec("50"), DailyOfflineCap: 500,
	}
}

func TestAccrue(t *testing.T) {
	p := sampleProgramme()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	rules := pricing.NewRules(fixture())
	lines := []pricing.AccrualLine{
		{Item: "bread", Group: "food", Total: dec("2.49")},  // food: floor(4.98) = 4
		{Item: "brie", Group: "cheese", Total: dec("9.99")}, // cheese is under dairy, excluded
		{Item: "cola", Group: "drinks", Total: dec("3.50")}, // default: 3
		{Item: "water", Group: "drinks", Total: dec("5")},   // excluded item
		{Item: "juice", Group: "drinks", Total: dec("0")},
	}
	pts, sum := pricing.Accrue(rules, p, "EUR", lines)
	want := []int64{4, 0, 3, 0, 0}
	for i := range want {
		if pts[i] != want[i] {
			t.Errorf("line %d earns %d, want %d", i, pts[i], want[i])
		}
	}
	if sum != 7 {
		t.Errorf("sum %d, want 7", sum)
	}
	// Without the dairy exclusion, cheese's own rate (nearest) applies.
	p.ExcludeGroups = nil
	if pts, _ := pricing.Accrue(rules, p, "EUR", lines); pts[1] != 49 {
		t.Errorf("brie earns %d, want floor(9.99 × 5) = 49", pts[1])
	}
	if _, sum := pricing.Accrue(rules, p, "USD", lines); sum != 0 {
		t.Errorf("a USD receipt earns %d in a EUR programme", sum)
	}
}

func TestReverse(t *testing.T) {
	for _, tc := range []struct {
		earned                  int64
		sold, before, returning string
		want                    int64
	}{
		{10, "3", "0", "3", 10},
		{10, "3", "0", "1", 3},
		{10, "3", "1", "1", 3},
		{10, "3", "2", "1", 4}, // the parts sum to 10
		{10, "3", "2", "5", 4}, // more than is left takes what is left
		{10, "3", "3", "1", 0},
		{7, "0.5", "0", "0.25", 3},
		{0, "1", "0", "1", 0},
	} {
		if got := pricing.Reverse(tc.earned, dec(tc.sold), dec(tc.before), dec(tc.returning)); got != tc.want {
			t.Errorf("Reverse(%d, %s, %s, %s) = %d, want %d", tc.earned, tc.sold, tc.before, tc.returning, got, tc.want)
		}
	}
}

func TestSpendable(t *testing.T) {
	p := sampleProgramme()
	for _, tc := range []struct {
		balance int64
		total   string
		capLeft int64
		want    int64
	}{
		{1000, "100", -1, 1000},  // online: 50% of 100 = 50.00 = 5000 points, balance 1000
		{10000, "100", -1, 5000}, // the share limits
		{10000, "100", 300, 300}, // offline: the cap limits
		{10000, "0.03", -1, 1},   // floor(1.5)
		{-5, "100", -1, 0},
		{100, "100", 0, 0},
	} {
		if got := pricing.Spendable(p, tc.balance, dec(tc.total), tc.capLeft); got != tc.want {
			t.Errorf("Spendable(%d, %s, %d) = %d, want %d", tc.balance, tc.total, tc.capLeft, got, tc.want)
		}
	}
	if m := pricing.PointsMoney(p, "EUR", 1234); !m.Equal(decimal.RequireFromString("12.34")) {
		t.Errorf("1234 points = %s, want 12.34", m)
	}
}

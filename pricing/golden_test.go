package pricing_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenRules are one of each rule, competing where they can.
func goldenRules() []storeline.Record {
	return []storeline.Record{
		&storeline.PricePolicy{ID: "vip-5", CustomerGroup: "vip", Percent: dec("5")},
		&storeline.PricePolicy{ID: "gold-dairy-12.5", CustomerGroup: "gold", Percent: dec("12.5"), Groups: []storeline.GroupID{"dairy"}},
		promo("dairy-10", storeline.PromoPercent, func(p *storeline.Promotion) { p.Groups = []storeline.GroupID{"dairy"}; p.Percent = dec("10") }),
		promo("cola-30c", storeline.PromoFixed, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"cola"}; p.Amount = dec("0.30") }),
		promo("water-3for2", storeline.PromoNForM, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"water"}; p.N, p.M = 3, 2 }),
		promo("breakfast", storeline.PromoBundle, func(p *storeline.Promotion) {
			p.Bundle = []storeline.BundlePart{{Item: "milk", Qty: 2}, {Item: "bread", Qty: 1}}
			p.Amount = dec("3.00")
			p.Priority = 1
		}),
		promo("over-25", storeline.PromoThreshold, func(p *storeline.Promotion) { p.Threshold = dec("25"); p.Percent = dec("3") }),
		promo("evening", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"bread"}
			p.Percent = dec("50")
			p.From, p.Until = wall("2026-03-10T19:00"), wall("2026-03-10T22:00")
		}),
	}
}

// TestGolden prices a transcript of baskets and compares the results with
// testdata/baskets.golden (go test ./pricing -run Golden -update rewrites
// it; read the diff like code).
func TestGolden(t *testing.T) {
	type basket struct {
		name string
		cg   storeline.CustGroupID
		at   time.Time
		ls   []pricing.BasketLine
	}
	manual := bl("cola", "1")
	manual.Manual, manual.ManualPrice = true, dec("1.00")
	baskets := []basket{
		{"anonymous mixed", "", t0, []pricing.BasketLine{bl("milk", "5"), bl("bread", "2"), bl("cola", "3"), bl("water", "7"), bl("brie", "0.412")}},
		{"gold customer", "gold", t0, []pricing.BasketLine{bl("milk", "1"), bl("brie", "1.5"), bl("cola", "1"), bl("juice", "4")}},
		{"vip at 19:30 Berlin", "vip", t0.Add(9*time.Hour + 30*time.Minute), []pricing.BasketLine{bl("bread", "3"), bl("water", "3"), manual}},
		{"threshold missed by 1.05, an unpriced line", "", t0, []pricing.BasketLine{bl("brie", "1.2"), bl("juice", "2"), bl("nolist", "1")}},
	}
	recs := append(fixture(), goldenRules()...)
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	eng := pricing.New(pricing.NewMemCatalog(recs))
	var b strings.Builder
	for _, bk := range baskets {
		res, err := eng.Price(pricing.Basket{Store: store(), At: bk.at, CustomerGroup: bk.cg, Lines: bk.ls})
		if err != nil {
			t.Fatalf("%s: %v", bk.name, err)
		}
		checkResult(t, res)
		b.WriteString("## " + bk.name + " (customer group " + string(bk.cg) + ", " + bk.at.Format(time.RFC3339) + ")\n")
		b.WriteString(render(res))
		b.WriteString("\n")
	}
	path := filepath.Join("testdata", "baskets.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("priced baskets differ from %s (rerun with -update and review the diff):\n%s", path, got)
	}
}

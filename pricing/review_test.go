package pricing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// TestReviewLocalZoneRefused: a store whose time zone is "Local" would be
// priced in whatever zone the process runs in (time.LoadLocation("Local")
// is time.Local), so a shop and head office given the same basket, data
// and time could answer differently. It is not an IANA zone: refused.
func TestReviewLocalZoneRefused(t *testing.T) {
	st := store()
	st.TimeZone = "Local"
	_, err := pricing.New(pricing.NewMemCatalog(fixture())).Price(pricing.Basket{Store: st, At: t0, Lines: []pricing.BasketLine{bl("milk", "1")}})
	if storeline.KindOf(err) != storeline.Invalid || storeline.FieldOf(err) != "store.time_zone" {
		t.Fatalf("Price with time zone Local = %v, want Invalid naming store.time_zone", err)
	}
}

// TestReviewBoundaries: effective times at their exact edges (a price and
// a promotion from 10:00 apply at 10:00:00, a promotion until 10:00 does
// not), in the shop's zone.
func TestReviewBoundaries(t *testing.T) {
	recs := []storeline.Record{
		promo("from-10", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"cola"}
			p.Percent = dec("10")
			p.From = wall("2026-03-10T10:00")
		}),
		promo("until-10", storeline.PromoPercent, func(p *storeline.Promotion) {
			p.Items = []storeline.ItemID{"water"}
			p.Percent = dec("10")
			p.Until = wall("2026-03-10T10:00")
		}),
	}
	check(t, price(t, recs, "", t0, bl("milk", "1"), bl("cola", "1"), bl("water", "1")),
		want{"1.19", "0.00", "1.19", "price_list:base", ""},
		want{"2.00", "0.20", "1.80", "price_list:base", "from-10"},
		want{"0.50", "0.00", "0.50", "price_list:base", ""},
	)
	check(t, price(t, recs, "", t0.Add(-time.Nanosecond), bl("milk", "1"), bl("cola", "1"), bl("water", "1")),
		want{"1.29", "0.00", "1.29", "price_list:base", ""},
		want{"2.00", "0.00", "2.00", "price_list:base", ""},
		want{"0.50", "0.05", "0.45", "price_list:base", "until-10"},
	)
}

// TestReviewBounds: the largest basket the engine accepts (1000 lines of
// 100,000 units at 10^10 minor units) prices exactly, with a policy, a
// line promotion and a 100% threshold, in every scale.
func TestReviewBounds(t *testing.T) {
	for _, cur := range []storeline.Currency{"JPY", "EUR", "KWD"} {
		sc := cur.Scale()
		max := storeline.Price{List: "base", Item: "big", From: wall("2026-01-01T00:00")}
		max.Price = dec(fmt.Sprintf("1e%d", 10-sc))
		recs := append(fixture(),
			&storeline.Item{ID: "big", SKU: "BIG", Name: "big", Group: "food", Dept: "d", Unit: storeline.Piece, VATRate: dec("7")},
			&max,
			&storeline.PricePolicy{ID: "vip-1", CustomerGroup: "vip", Percent: dec("0.01")},
			promo("big-3", storeline.PromoPercent, func(p *storeline.Promotion) { p.Items = []storeline.ItemID{"big"}; p.Percent = dec("33.33") }),
			promo("all", storeline.PromoThreshold, func(p *storeline.Promotion) { p.Threshold = dec("1"); p.Percent = dec("100") }),
		)
		st := store()
		st.Currency = cur
		lines := make([]pricing.BasketLine, pricing.MaxLines)
		for i := range lines {
			lines[i] = bl("big", "100000")
		}
		res, err := pricing.New(pricing.NewMemCatalog(recs)).Price(pricing.Basket{Store: st, At: t0, CustomerGroup: "vip", Lines: lines})
		if err != nil {
			t.Fatalf("%s: %v", cur, err)
		}
		checkResult(t, res)
		if !res.Total.IsZero() || res.Threshold != "all" {
			t.Fatalf("%s: total %s threshold %q", cur, res.Total, res.Threshold)
		}
	}
}

package central

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// TestReviewExpiringHorizonAcrossDST: the expiring-batches metric counts
// the batches with stock expiring within 7 days of today in the store's
// time zone, whatever the clocks do in between: at 00:30 in Riga a week
// before the clocks go back (or forward), the horizon is still today + 7.
func TestReviewExpiringHorizonAcrossDST(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Supplier{ID: "p1", Name: "P"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "Europe/Riga", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")}); err != nil {
		t.Fatal(err)
	}
	submit := func(op, key string, payload any) {
		t.Helper()
		b, err := msgpack.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := n.Submit(ctx, op, key, b)
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatalf("%s %s: %v", op, key, err)
		}
	}
	submit(OpDocCreate, "inv1", &storeline.Document{ID: "inv1", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1", Lines: []storeline.DocumentLine{
		{Item: "milk", Qty: d("4"), PurchasePrice: d("1"), Batch: "A", Expiry: "2026-10-26"},
		{Item: "milk", Qty: d("4"), PurchasePrice: d("1"), Batch: "B", Expiry: "2027-03-29"},
	}})
	submit(OpDocPost, "inv1/post", &docIDPayload{ID: "inv1"})
	for _, c := range []struct {
		now  string
		want int64
	}{
		{"2026-10-18T21:30:00Z", 1}, // 2026-10-19 00:30 EEST: through 10-26, A
		{"2026-10-18T20:30:00Z", 0}, // 2026-10-18 23:30 EEST: through 10-25
		{"2027-03-21T21:30:00Z", 0}, // 2027-03-21 23:30 EET: through 03-28
		{"2027-03-21T22:30:00Z", 1}, // 2027-03-22 00:30 EET: through 03-29, B (A has expired: counted too)
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		s, err := n.backOfficeStats(now)
		if err != nil {
			t.Fatal(err)
		}
		want := c.want
		if c.now >= "2027" {
			want++ // A, long expired, still has stock
		}
		if s.Expiring["s1"] != want {
			t.Errorf("at %s: %d batches expiring within %d days, want %d", c.now, s.Expiring["s1"], expiringDays, want)
		}
	}
}

// TestDaysAheadCountsCalendarDays: GET /v1/batches?expiring_within_days=
// and the expiring-batches metric share daysAhead: today in the store's
// zone plus calendar days, across the DST changes of both directions.
func TestDaysAheadCountsCalendarDays(t *testing.T) {
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, c := range []struct {
		now  string
		days int
		want storeline.Date
	}{
		{"2026-10-18T21:30:00Z", 7, "2026-10-26"}, // 00:30 EEST; the clocks go back on 10-25
		{"2026-10-18T20:30:00Z", 7, "2026-10-25"}, // 23:30 EEST the day before
		{"2027-03-21T21:30:00Z", 7, "2027-03-28"}, // 23:30 EET; the clocks go forward on 03-28
		{"2027-03-21T22:30:00Z", 7, "2027-03-29"},
		{"2027-03-21T22:30:00Z", 0, "2027-03-22"},
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		if got := daysAhead(now, riga, c.days); got != c.want {
			t.Errorf("daysAhead(%s, Riga, %d) = %s, want %s", c.now, c.days, got, c.want)
		}
	}
}

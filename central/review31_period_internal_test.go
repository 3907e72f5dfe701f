package central

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
)

func TestReview31PeriodRules(t *testing.T) {
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC) // a leap year's March 1
	for _, c := range []struct {
		rule     string
		from, to storeline.Date
	}{
		{"today", "2024-03-01", "2024-03-01"},
		{"yesterday", "2024-02-29", "2024-02-29"},
		{"last_7_days", "2024-02-24", "2024-03-01"},
		{"last_30_days", "2024-02-01", "2024-03-01"},
		{"month_to_date", "2024-03-01", "2024-03-01"},
		{"previous_month", "2024-02-01", "2024-02-29"},
	} {
		d := savedReport{ID: "r", Title: "t", Source: "turnover", Period: c.rule}
		if err := d.Validate(); err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		if from, to := d.resolve(day); from != c.from || to != c.to {
			t.Errorf("%s on %s: %s..%s, want %s..%s", c.rule, day.Format(time.DateOnly), from, to, c.from, c.to)
		}
	}
	jan := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	d := savedReport{Period: "previous_month"}
	if from, to := d.resolve(jan); from != "2023-12-01" || to != "2023-12-31" {
		t.Errorf("previous_month of January: %s..%s", from, to)
	}
	d = savedReport{Period: "fixed", From: "2023-05-01", To: "2023-05-31"}
	if from, to := d.resolve(jan); from != "2023-05-01" || to != "2023-05-31" {
		t.Errorf("fixed: %s..%s", from, to)
	}
}

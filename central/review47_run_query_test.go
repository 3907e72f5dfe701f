package central_test

import (
	"net/http"
	"testing"
)

// TestReview47RunUnreadableParameterRefused: a run read its query with
// url.Values, which drops a pair it cannot read (a ";" in it, a bad
// %-escape) without a word, so ?date=2020-02-15;x=1 lost its date and
// answered the period of today, 200, though a run refuses any parameter
// it would drop. Such a pair is a 400 naming its parameter now, and so
// is an empty date, which also ran today's period.
func TestReview47RunUnreadableParameterRefused(t *testing.T) {
	a := review31World(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/reports/monthly", adminKey, map[string]any{"title": "M", "source": "turnover", "by": []string{"item"}, "period": "previous_month"}, nil))
	for _, c := range []struct{ path, field string }{
		{"/v1/reports/monthly/run?store=s1&date=2020-02-15;x=1", "date"},
		{"/v1/reports/monthly/run?store=s1&date=2020-02-1%5", "date"},
		{"/v1/reports/monthly/run?store=s1&from=2020-02-01&to=2020-02-29;format=csv", "to"},
		// An empty date (a script's unset variable) was taken for none:
		// today's period, 200, where an empty from is refused.
		{"/v1/reports/monthly/run?store=s1&date=", "date"},
	} {
		r := apiDo(t, "GET", a, c.path, viewerKey, nil, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %.300s, want 400 naming %s", c.path, r.status, r.body, c.field)
			continue
		}
		if f := problemField(t, r); f != c.field {
			t.Errorf("%s: names %q (%s), want %q", c.path, f, r.body, c.field)
		}
	}
}

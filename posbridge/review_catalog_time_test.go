package posbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// A price's From is a wall-clock time in the shop's zone (storeline.WallClock):
// the node switches an item's price at the first instant its wall clock
// reads From or later. The catalogue feed must tell a till that instant.

// ctZonedStore moves the fixture's store s1 to zone and returns the master
// version before the move, to read the feed from.
func ctZonedStore(t *testing.T, e *env, zone string, more ...storeline.Record) uint64 {
	t.Helper()
	var st storeline.Store
	if err := e.led.GetMaster(storeline.KindStore, "s1", &st); err != nil {
		t.Fatal(err)
	}
	st.TimeZone = zone
	since := e.led.MasterVersion()
	if _, err := e.led.PutMaster(context.Background(), append([]storeline.Record{&st}, more...)); err != nil {
		t.Fatal(err)
	}
	return since
}

// ctFeedRecords reads the feed after since and returns the live records of
// kind, in feed order.
func ctFeedRecords(t *testing.T, e *env, since uint64, kind string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i := 0; i < 100; i++ {
		m := e.must(e.do(req{method: "GET", path: fmt.Sprintf("/v1/catalog/changes?since=%d&limit=100", since), token: tokenT1}), 200)
		for _, c := range m["changes"].([]any) {
			c := c.(map[string]any)
			if c["kind"] == kind && c["deleted"] == false {
				out = append(out, c["record"].(map[string]any))
			}
		}
		since = uint64(m["next"].(float64))
		if m["more"] == false {
			return out
		}
	}
	t.Fatal("the feed never ended")
	return nil
}

// ctTillTime decodes a feed time as a till does (tillsim decodes a price's
// from into a time.Time).
func ctTillTime(t *testing.T, s any) time.Time {
	t.Helper()
	var at time.Time
	b, _ := json.Marshal(s)
	if err := json.Unmarshal(b, &at); err != nil {
		t.Fatalf("from %v: %v", s, err)
	}
	return at
}

// ctItemPrice is GET /v1/items/{sku}'s price with the node's clock at at.
func ctItemPrice(t *testing.T, e *env, sku string, at time.Time) any {
	t.Helper()
	e.clock.mu.Lock()
	e.clock.t = at
	e.clock.mu.Unlock()
	return e.must(e.do(req{method: "GET", path: "/v1/items/" + sku, token: tokenT1}), 200)["price"]
}

// ctWall is a wall-clock time in the form of Price.From.
func ctWall(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

// TestCatalogPriceFromIsTheNodesSwitchInstant: in shops east and west of
// UTC, with and without DST (its gap and its overlap included), a price's
// from in the feed is the instant GET /v1/items switches to that price,
// written with the shop's offset then (so it also reads as the wall clock).
func TestCatalogPriceFromIsTheNodesSwitchInstant(t *testing.T) {
	type step struct {
		wall  time.Time // the price's From: the shop's wall clock
		price string    // the price, two places
		want  string    // from, as the feed must say it
	}
	cases := []struct {
		zone  string
		steps []step
	}{
		{"Europe/Moscow", []step{
			{ctWall(2026, 12, 1, 8, 0), "2.50", "2026-12-01T08:00:00+03:00"},
		}},
		{"America/New_York", []step{
			// 02:30 on 14 March 2027 is skipped: the clocks jump from 02:00
			// EST to 03:00 EDT, when the node's wall clock first passes 02:30.
			{ctWall(2027, 3, 14, 2, 30), "3.00", "2027-03-14T03:00:00-04:00"},
			{ctWall(2027, 7, 1, 8, 0), "3.10", "2027-07-01T08:00:00-04:00"},
			// 01:30 on 7 November 2027 comes twice; the node first reaches it
			// in EDT.
			{ctWall(2027, 11, 7, 1, 30), "3.20", "2027-11-07T01:30:00-04:00"},
			{ctWall(2027, 12, 1, 8, 0), "3.30", "2027-12-01T08:00:00-05:00"},
		}},
		{"Asia/Kolkata", []step{
			{ctWall(2026, 6, 1, 0, 0), "2.40", "2026-06-01T00:00:00+05:30"},
		}},
	}
	for _, c := range cases {
		t.Run(c.zone, func(t *testing.T) {
			e := newEnv(t)
			var recs []storeline.Record
			for _, s := range c.steps {
				recs = append(recs, &storeline.Price{List: "base", Item: "cola", From: s.wall, Price: dec(s.price)})
			}
			since := ctZonedStore(t, e, c.zone, recs...)
			froms := map[string]any{} // by price
			for _, r := range ctFeedRecords(t, e, since, "price") {
				if r["list"] == "base" && r["item"] == "cola" {
					froms[r["price"].(string)] = r["from"]
				}
			}
			prev := "2.00" // the fixture's cola
			for _, s := range c.steps {
				from, ok := froms[dec(s.price).String()]
				if !ok {
					t.Fatalf("the feed lacks cola at %s: %v", s.price, froms)
				}
				if from != s.want {
					t.Errorf("price %s from wall clock %s in %s: feed says from %v, want %s",
						s.price, s.wall.Format("2006-01-02 15:04"), c.zone, from, s.want)
				}
				at := ctTillTime(t, from)
				if got := ctItemPrice(t, e, "COLA", at.Add(-time.Millisecond)); got != prev {
					t.Errorf("%s: a till switches to %s at %v, but the node a moment before answers %v, want %s", c.zone, s.price, from, got, prev)
				}
				if got := ctItemPrice(t, e, "COLA", at); got != s.price {
					t.Errorf("%s: a till switches to %s at %v (%v), but the node then answers %v", c.zone, s.price, from, at.UTC(), got)
				}
				prev = s.price
			}
		})
	}
}

// TestCatalogPromotionFromIsStoreWallClock: a promotion's from and until
// go out as wall-clock times without an offset, to be read in the store
// record's time_zone, and read so they are the instants the node's basket
// pricing starts and stops applying the promotion.
func TestCatalogPromotionFromIsStoreWallClock(t *testing.T) {
	e := newEnv(t)
	promo := &storeline.Promotion{ID: "cola-10", Name: "Cola 10%", Kind: storeline.PromoPercent,
		From: ctWall(2026, 12, 1, 8, 0), Until: ctWall(2026, 12, 2, 20, 0), Items: []storeline.ItemID{"cola"}, Percent: dec("10")}
	since := ctZonedStore(t, e, "Europe/Moscow", promo)
	var rec map[string]any
	for _, r := range ctFeedRecords(t, e, since, "promotion") {
		if r["id"] == "cola-10" {
			rec = r
		}
	}
	stores := ctFeedRecords(t, e, since, "store")
	if rec == nil || len(stores) == 0 {
		t.Fatalf("the feed lacks the promotion or the store")
	}
	if rec["from"] != "2026-12-01T08:00:00" || rec["until"] != "2026-12-02T20:00:00" {
		t.Fatalf("promotion from %v until %v, want store wall clock 2026-12-01T08:00:00 and 2026-12-02T20:00:00", rec["from"], rec["until"])
	}
	loc, err := time.LoadLocation(stores[len(stores)-1]["time_zone"].(string))
	if err != nil {
		t.Fatal(err)
	}
	discount := func(at time.Time) any {
		body := map[string]any{"occurred_at": at.Format(time.RFC3339Nano), "lines": []map[string]any{line("sku", "COLA", "qty", "1")}}
		return e.must(e.do(req{method: "POST", path: "/v1/baskets/price", token: tokenT1, body: body}), 200)["discount"]
	}
	for _, b := range []struct {
		field string
		off   time.Duration
		want  string
	}{
		{"from", -time.Millisecond, "0.00"}, {"from", 0, "0.20"},
		{"until", -time.Millisecond, "0.20"}, {"until", 0, "0.00"},
	} {
		at, err := time.ParseInLocation("2006-01-02T15:04:05", rec[b.field].(string), loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := discount(at.Add(b.off)); got != b.want {
			t.Errorf("at %s %v: discount %v, want %s", b.field, b.off, got, b.want)
		}
	}
}

// TestCatalogPricesWaitForTheStore: without the store record the node
// does not know the shop's zone, so a page with prices is a 503 (the till
// retries), never prices dated in the wrong zone.
func TestCatalogPricesWaitForTheStore(t *testing.T) {
	e := newEnv(t)
	if _, err := e.led.DeleteMaster(context.Background(), storeline.KindStore, "s1"); err != nil {
		t.Fatal(err)
	}
	r := e.do(req{method: "GET", path: "/v1/catalog/changes?since=0&limit=100", token: tokenT1})
	if r.status == http.StatusOK {
		for _, c := range r.json(t)["changes"].([]any) {
			if c := c.(map[string]any); c["kind"] == "price" && c["deleted"] == false {
				t.Fatalf("a price went out without the store's zone: %v", c["record"])
			}
		}
		return
	}
	e.problem(r, http.StatusServiceUnavailable, "")
}

package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// The loyalty master data: a programme of 10 points per EUR, a point worth
// 0.01 EUR, all of a receipt payable in points, a daily offline cap of
// 150; goods of group "gifts" earn nothing, so receipts that spend points
// earn none back and the arithmetic stays exact.
const offlineCap = 150

func loyaltyData(customers ...string) []storeline.Record {
	recs := []storeline.Record{
		&storeline.Group{ID: "gifts", Name: "Gifts"},
		&storeline.Item{ID: "gift", SKU: "gift", Name: "Gift", Group: "gifts", Dept: "food", Unit: storeline.Piece, VATRate: decimal.NewFromInt(10)},
		&storeline.Price{List: "retail", Item: "gift", From: time.Now().Add(-time.Hour), Price: decimal.NewFromFloat(0.5)},
		&storeline.LoyaltyProgramme{ID: "club", Name: "Club", Currency: "EUR", DefaultRate: decimal.NewFromInt(10),
			ExcludeGroups: []storeline.GroupID{"gifts"}, PointValue: decimal.RequireFromString("0.01"),
			MaxShare: decimal.NewFromInt(100), DailyOfflineCap: offlineCap},
	}
	for _, c := range customers {
		recs = append(recs,
			&storeline.Customer{ID: storeline.CustomerID(c), Name: c},
			&storeline.CardRecord{ID: storeline.CardID("card-" + c), Code: cardOf(c), Kind: storeline.LoyaltyCard, Customer: storeline.CustomerID(c)})
	}
	return recs
}

func cardOf(c string) string { return "CARD" + strings.ToUpper(c) }

// tillPost posts a receipt through a shop's till API.
func tillPost(t testing.TB, shop *node.Node, token string, body map[string]any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, shop.TillURL()+"/v1/receipts", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()} // the till's retry case
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func receiptBody(id storeline.EventID, card, sku, price string, qty int, pays ...map[string]any) map[string]any {
	return map[string]any{
		"id": id, "terminal": "till-1", "shift": "shift-1", "seller": "alice",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "card": card,
		"lines":    []map[string]any{{"sku": sku, "qty": fmt.Sprint(qty), "price": price}},
		"payments": pays,
	}
}

// earn sells qty of i0 (1.00 EUR, 10 points each) for cash with the card.
func earn(t testing.TB, shop *node.Node, token, card string, qty int) {
	t.Helper()
	code, out := tillPost(t, shop, token, receiptBody(storeline.NewEventID(), card, "sku0", "1.00", qty,
		map[string]any{"method": "cash", "amount": fmt.Sprintf("%d.00", qty)}))
	if code != 201 || out["points_earned"] != float64(10*qty) {
		t.Fatalf("earning receipt = %d %v, want 201 earning %d", code, out, 10*qty)
	}
}

// spend pays for gifts (0.50 EUR, 50 points each) with points alone.
func spend(t testing.TB, shop *node.Node, token, card string, id storeline.EventID, points int) (int, map[string]any) {
	t.Helper()
	return tillPost(t, shop, token, receiptBody(id, card, "gift", "0.50", points/50, map[string]any{"method": "points", "points": points}))
}

// spendOnline is spend as a till does it while the shop is online: an
// answer lost in transport, or a refusal because central was between
// leaders (the shop was offline for a moment), is retried with the same
// receipt ID, which a shop and central answer idempotently.
func spendOnline(t testing.TB, shop *node.Node, token, card string, id storeline.EventID, points int, online bool) (int, map[string]any) {
	t.Helper()
	var code int
	var body map[string]any
	testwait.Retry(90*time.Second, func() bool {
		code, body = spend(t, shop, token, card, id, points)
		detail, _ := body["detail"].(string)
		return !(code == 0 || code == 503 || online && code == 409 && strings.Contains(detail, "offline"))
	})
	return code, body
}

func rightsAt(t testing.TB, shop *node.Node, store storeline.StoreID, cust string) int64 {
	t.Helper()
	b, err := shop.Ledger().Balance(storeline.PointsAccount("club", storeline.CustomerID(cust), store), storeline.PointsAsset("club"))
	if err != nil {
		t.Fatal(err)
	}
	return b.IntPart()
}

func pointsAt(t testing.TB, n *central.Node, cust string) central.PointsStatus {
	t.Helper()
	st, err := n.Points("club", storeline.CustomerID(cust))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func grant(t testing.TB, c *cluster, id string, store storeline.StoreID, cust string, points int64) {
	t.Helper()
	retryUnavailable(t, func() error {
		ans, err := c.follower().MoveRights(context.Background(), store, "club", storeline.CustomerID(cust), points, "grant/"+id, "test pre-grant")
		if err == nil && ans.Granted != points {
			t.Fatalf("grant %s of %d to %s: %+v", id, points, store, ans)
		}
		return err
	})
}

// TestLoyaltyPointsNeverSpentTwice is issue 6's two-shop test: a 3-node
// central, two shops whose every link to it goes through fault proxies.
//
// Customer a has 1,000 points, earned in both shops, handed back above
// the float and partly pre-granted; both shops spend concurrently online
// until refused: exactly 1,000 are spent. Customer b likewise, then both
// shops are cut off and keep spending: neither spends beyond its rights
// or the daily offline cap, and after reconnection every replica agrees
// on the balance and every spend is accounted for.
func TestLoyaltyPointsNeverSpentTwice(t *testing.T) {
	c := loyaltyCluster(t, 0) // the pre-grants are head office's alone here
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("a", "b")...)
	pxs, urls := proxyEach(t, c)
	shops := make([]*node.Node, 2)
	for i, s := range testShops {
		rc := shopReplication(urls, s.token)
		rc.LoyaltyTimeout = 2 * time.Second
		shops[i] = startShopNode(t, s, t.TempDir(), rc)
	}
	for i, s := range shops {
		waitFor(t, "the gifts at "+string(testShops[i].store), 30*time.Second, func() bool {
			_, ok := tillItem(t, s, testShops[i].terminal, "gift")
			return ok
		})
	}
	for i, s := range shops {
		waitOnline(t, s, string(store0(i)))
	}
	tok := func(i int) string { return testShops[i].terminal }
	store := func(i int) storeline.StoreID { return testShops[i].store }

	// Both customers earn 600 points at shop 1 and 400 at shop 2. Each
	// shop keeps its float (100) and hands the rest back to central.
	for _, cust := range []string{"a", "b"} {
		earn(t, shops[0], tok(0), cardOf(cust), 60)
		earn(t, shops[1], tok(1), cardOf(cust), 40)
	}
	for _, cust := range []string{"a", "b"} {
		waitFor(t, "central to hold 800 of "+cust+"'s points", 30*time.Second, func() bool {
			return pointsAt(t, c.waitLeader(), cust).Rights["central"] == 800
		})
	}
	for i := range shops {
		for _, cust := range []string{"a", "b"} {
			if r := rightsAt(t, shops[i], store(i), cust); r != 100 {
				t.Fatalf("%s keeps %d of %s's rights, want its float 100", store(i), r, cust)
			}
		}
	}
	// Pre-grants: a gets 100 more at each shop; b 100 at shop 1, 300 at
	// shop 2.
	grant(t, c, "a1", "s1", "a", 100)
	grant(t, c, "a2", "s2", "a", 100)
	grant(t, c, "b1", "s1", "b", 100)
	grant(t, c, "b2", "s2", "b", 300)
	waitFor(t, "the pre-grants at the shops", 30*time.Second, func() bool {
		return rightsAt(t, shops[0], "s1", "a") == 200 && rightsAt(t, shops[1], "s2", "a") == 200 &&
			rightsAt(t, shops[0], "s1", "b") == 200 && rightsAt(t, shops[1], "s2", "b") == 400
	})

	// Online, customer a: 12 tills' worth of 100-point receipts in each
	// shop at once, 2,400 asked of 1,000.
	type outcome struct {
		shop, points int
		id           storeline.EventID
		code         int
		body         map[string]any
	}
	race := func(cust string, perShop, points int, online bool) []outcome {
		var mu sync.Mutex
		var out []outcome
		var wg sync.WaitGroup
		for i := range shops {
			for range perShop {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := storeline.NewEventID()
					code, body := spendOnline(t, shops[i], tok(i), cardOf(cust), id, points, online)
					mu.Lock()
					out = append(out, outcome{i, points, id, code, body})
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		return out
	}
	spent := map[string]int{}
	accepted := map[storeline.StoreID][]storeline.EventID{}
	tally := func(cust string, os []outcome) (perShop [2]int) {
		t.Helper()
		for _, o := range os {
			switch o.code {
			case 201, 200: // 200: a retry found the receipt taken
				spent[cust] += o.points
				perShop[o.shop] += o.points
				accepted[store(o.shop)] = append(accepted[store(o.shop)], o.id)
			case 409:
				if o.body["field"] != "payments[0].points" {
					t.Errorf("refusal names %v, want payments[0].points: %v", o.body["field"], o.body)
				}
			default:
				t.Errorf("spend at %s = %d %v", store(o.shop), o.code, o.body)
			}
		}
		return perShop
	}
	tally("a", race("a", 12, 100, true))
	if spent["a"] != 1000 {
		t.Fatalf("online, customer a spent %d of 1,000 points, want exactly 1,000", spent["a"])
	}

	// Customer b online: 2 × 50 at each shop at once, within the shops'
	// rights, then a 300-point receipt at shop 1 that needs a reservation.
	tally("b", race("b", 2, 50, true))
	if code, body := spendOnline(t, shops[0], tok(0), cardOf("b"), storeline.NewEventID(), 300, true); code != 201 && code != 200 {
		t.Fatalf("a 300-point receipt at s1 holding %d = %d %v", rightsAt(t, shops[0], "s1", "b"), code, body)
	} else {
		spent["b"] += 300
	}
	if spent["b"] != 500 {
		t.Fatalf("customer b spent %d online, want 500", spent["b"])
	}
	// s1 held 100 after the race, reserved 200 of central's 400 and spent
	// them. Rights left: s1 0, s2 300, central 200; head office then
	// grants s1 100 more.
	r1, r2 := rightsAt(t, shops[0], "s1", "b"), rightsAt(t, shops[1], "s2", "b")
	if r1 != 0 || r2 != 300 {
		t.Fatalf("before the cut b's rights are s1 %d, s2 %d; want 0 and 300", r1, r2)
	}
	grant(t, c, "b3", "s1", "b", 100)
	waitFor(t, "the grant at s1", 30*time.Second, func() bool { return rightsAt(t, shops[0], "s1", "b") == 100 })
	r1 = 100

	// Both shops cut off. Each keeps spending b's points: 10 receipts of
	// 50 at once. s1 holds 100 rights (below the cap), s2 300 (above it).
	// A spend of the online phases that a shop took while it briefly
	// could not reach central (a replication request timing out on a
	// loaded machine makes it offline until the next sync) already
	// counts against today's cap: read what each shop counted rather
	// than assume nothing.
	var capLeft [2]int64
	for i, s := range shops {
		capLeft[i] = offlineCap - offlineCounted(t, s, "b")
	}
	cutAt := time.Now()
	for _, px := range pxs {
		px.Cut()
	}
	for i, s := range shops {
		waitFor(t, string(store(i))+" to see central unreachable", 10*time.Second, func() bool { return !s.Replication().Status().Reachable })
	}
	off := tally("b", race("b", 10, 50, false))
	for i, r := range [2]int64{r1, r2} {
		if want := min(r, capLeft[i]); int64(off[i]) != want {
			t.Errorf("offline, %s spent %d (rights %d, %d left of the cap %d), want %d; last sync %s after the cut",
				store(i), off[i], r, capLeft[i], offlineCap, want, shops[i].Replication().Status().LastSync.Sub(cutAt))
		}
	}
	if spent["b"] > 1000 {
		t.Fatalf("customer b spent %d > 1,000", spent["b"])
	}
	// A card scan offline answers the last known balance and what may be
	// spent here now: nothing more at s1 (rights gone), none at s2 (cap).
	for i := range shops {
		pts := cardPoints(t, shops[i], tok(i), cardOf("b"))
		if pts["source"] != "last_known" || pts["spendable_now"] != float64(0) {
			t.Errorf("card of b at %s offline: %v, want last_known with spendable_now 0", store(i), pts)
		}
	}

	// Reconnect: every spend reaches central; every replica agrees.
	for _, px := range pxs {
		px.Heal()
	}
	for i, s := range shops {
		waitFor(t, string(store(i))+" to catch up", 20*time.Second, func() bool { return caughtUpAt(s) })
	}
	c.waitSettled()
	for _, cn := range c.nodes {
		for cust, want := range map[string]int64{"a": 0, "b": int64(1000 - spent["b"])} {
			st := pointsAt(t, cn, cust)
			if st.Balance != want {
				t.Errorf("%s: %s's balance %d, want %d (rights %v)", cn.ID(), cust, st.Balance, want, st.Rights)
			}
			for holder, r := range st.Rights {
				if r < 0 {
					t.Errorf("%s: %s's rights at %s are %d", cn.ID(), cust, holder, r)
				}
			}
			for i, s := range shops {
				if got, want := st.Rights[string(store(i))], rightsAt(t, s, store(i), cust); got != want {
					t.Errorf("%s: %s's rights at %s = %d, the shop has %d", cn.ID(), cust, store(i), got, want)
				}
			}
		}
		for st, ids := range accepted {
			seen := map[storeline.EventID]bool{}
			for _, ev := range centralJournal(t, cn, st) {
				seen[ev.ID] = true
			}
			for _, id := range ids {
				if !seen[id] {
					t.Errorf("%s lacks the spend %s of %s", cn.ID(), id, st)
				}
			}
		}
	}
	// Online again, the card shows central's figures.
	for i := range shops {
		pts := cardPoints(t, shops[i], tok(i), cardOf("b"))
		if pts["source"] != "central" || pts["balance"] != float64(1000-spent["b"]) {
			t.Errorf("card of b at %s online: %v, want central's balance %d", store(i), pts, 1000-spent["b"])
		}
	}
}

// offlineCounted is the points of cust's the shop counted today (the
// test shops' business date, in Riga) against the daily offline cap
// (node/loyalty.go's per-customer record).
func offlineCounted(t testing.TB, shop *node.Node, cust string) int64 {
	t.Helper()
	riga, err := time.LoadLocation("Europe/Riga")
	if err != nil {
		t.Fatal(err)
	}
	today := storeline.Date(time.Now().In(riga).Format("2006-01-02"))
	v, ok, err := shop.Ledger().Meta("loyalty/offline-cap/club/" + cust)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	var days []struct {
		Date storeline.Date `msgpack:"d"`
		N    int64          `msgpack:"n"`
	}
	if err := msgpack.Unmarshal(v, &days); err != nil {
		t.Fatalf("offline counter of %s: %v", cust, err)
	}
	for _, d := range days {
		if d.Date == today {
			return d.N
		}
	}
	return 0
}

// loyaltyCluster is replCluster (3 nodes) with head office's loyalty
// sweep every sweep (0: off, so only the test moves rights).
func loyaltyCluster(t testing.TB, sweep time.Duration) *cluster {
	t.Helper()
	return startClusterWith(t, 3, func(cfg *central.Config) {
		cfg.ReplicationTokens = replTokens()
		cfg.ReplicationMaxWait = 500 * time.Millisecond
		cfg.ReplicationPageItems = 1000
		cfg.Logger = testLogger()
		cfg.Loyalty.SweepInterval = sweep
	})
}

func store0(i int) storeline.StoreID { return testShops[i].store }

// waitOnline waits until the shop has synced with central, so it hands
// points above its float back after an earning receipt (it keeps them
// while it cannot reach central).
func waitOnline(t testing.TB, shop *node.Node, name string) {
	t.Helper()
	waitFor(t, name+" to sync with central", 30*time.Second, func() bool {
		st := shop.Replication().Status()
		return st.Reachable && !st.LastSync.IsZero()
	})
}

// apiRetry is apiDo, retried while central answers 503 (an election).
func apiRetry(t testing.TB, method, addr, path, key string, body any) response {
	t.Helper()
	var r response
	testwait.Retry(30*time.Second, func() bool {
		r = apiDo(t, method, addr, path, key, body, nil)
		return r.status != 503
	})
	return r
}

func cardPoints(t testing.TB, shop *node.Node, token, code string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, shop.TillURL()+"/v1/cards/"+code, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Points map[string]any `json:"points"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Points == nil {
		t.Fatalf("GET /v1/cards/%s = %d", code, resp.StatusCode)
	}
	return out.Points
}

// reserveRaw posts a reservation to a central node's replication listener
// as a shop would.
func reserveRaw(t testing.TB, addr, token string, q central.ReserveRequest, deadline time.Time) (int, central.RightsAnswer, []byte) {
	t.Helper()
	b, err := replication.Encode(q)
	if err != nil {
		t.Fatal(err)
	}
	var status int
	var body []byte
	testwait.Retry(time.Until(deadline), func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+central.PathLoyaltyReserve, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/msgpack")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		status = resp.StatusCode
		// 503 is an election (short Raft timers, a loaded machine):
		// nothing was applied, and asking again is what a shop does.
		return status != 503
	})
	var ans central.RightsAnswer
	if status == 200 {
		if err := replication.Decode(body, &ans); err != nil {
			t.Fatal(err)
		}
	}
	return status, ans, body
}

// TestLoyaltyReservationAnswerLost: central commits a reservation whose
// answer never reaches the shop. The grant still arrives by pull; the
// till's retry of the receipt is taken against it; asking again with the
// same receipt ID answers the same and moves nothing; bad and
// unauthenticated requests change nothing.
func TestLoyaltyReservationAnswerLost(t *testing.T) {
	c := loyaltyCluster(t, 0)
	ctx := context.Background()
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("d")...)
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "http://"+n.ReplicationAddr())
	}
	s := testShops[0]
	shop := startShopNode(t, s, t.TempDir(), shopReplication(urls, s.token))
	waitFor(t, "the gifts at s1", 30*time.Second, func() bool {
		_, ok := tillItem(t, shop, s.terminal, "gift")
		return ok
	})
	waitOnline(t, shop, "s1")
	earn(t, shop, s.terminal, cardOf("d"), 60) // keeps 100, hands back 500
	waitFor(t, "central to hold 500 of d's points", 30*time.Second, func() bool {
		return pointsAt(t, c.waitLeader(), "d").Rights["central"] == 500
	})

	// The shop asked for 200 for receipt X and central granted them, but
	// the answer was lost: the till got a refusal.
	x := storeline.NewEventID()
	var first central.RightsAnswer
	retryUnavailable(t, func() error {
		var err error
		first, err = c.follower().MoveRights(ctx, "s1", "club", "d", 200, "reserve/"+x.String(), "loyalty reservation")
		return err
	})
	if first.Granted != 200 || first.Available != 300 || first.Event == nil {
		t.Fatalf("reservation = %+v, want 200 granted, 300 left, with its event", first)
	}
	waitFor(t, "the grant at s1 by pull", 30*time.Second, func() bool { return rightsAt(t, shop, "s1", "d") == 300 })

	// Asking again for X, at any node: the same answer, nothing moves.
	for _, n := range c.nodes {
		code, again, body := reserveRaw(t, n.ReplicationAddr(), s.token, central.ReserveRequest{Programme: "club", Customer: "d", Points: 250, Receipt: x}, time.Now().Add(30*time.Second))
		if code != 200 || again.Granted != first.Granted || again.Seq != first.Seq || again.Available != first.Available {
			t.Errorf("%s: asking again = %d %+v %s, want the first answer %+v", n.ID(), code, again, body, first)
		}
	}
	// The till retries X: taken against the rights that arrived.
	if code, body := spend(t, shop, s.terminal, cardOf("d"), x, 300); code != 201 {
		t.Fatalf("retry of %s = %d %v", x, code, body)
	}
	// Bad requests change nothing.
	for name, tc := range map[string]struct {
		token string
		q     central.ReserveRequest
		code  int
	}{
		"no token":   {"", central.ReserveRequest{Programme: "club", Customer: "d", Points: 10, Receipt: storeline.NewEventID()}, 401},
		"no receipt": {s.token, central.ReserveRequest{Programme: "club", Customer: "d", Points: 10}, 422},
		"no points":  {s.token, central.ReserveRequest{Programme: "club", Customer: "d", Receipt: storeline.NewEventID()}, 422},
		"bad id":     {s.token, central.ReserveRequest{Programme: "club", Customer: "d/x", Points: 10, Receipt: storeline.NewEventID()}, 422},
	} {
		code, _, body := reserveRaw(t, c.nodes[0].ReplicationAddr(), tc.token, tc.q, time.Now().Add(30*time.Second))
		if code != tc.code || !strings.Contains(string(body), `"kind"`) {
			t.Errorf("%s: %d %s, want %d with a problem", name, code, body, tc.code)
		}
	}
	waitFor(t, "s1 to catch up", 30*time.Second, func() bool { return caughtUpAt(shop) })
	c.waitSettled()
	for _, n := range c.nodes {
		st := pointsAt(t, n, "d")
		if st.Balance != 300 || st.Rights["central"] != 300 || st.Rights["s1"] != 0 {
			t.Errorf("%s: d's points %+v, want 300, all at central", n.ID(), st)
		}
	}

	// The head-office API's pre-grant: admins only, refused beyond what
	// central holds, idempotent by id; every answer as openapi.yaml says.
	addr := c.waitLeader().APIAddr()
	g := map[string]any{"id": "g-1", "programme": "club", "customer": "d", "store": "s1", "points": 100}
	if r := apiRetry(t, "POST", addr, "/v1/loyalty/grants", viewerKey, g); r.status != 403 {
		t.Errorf("grant by a viewer = %d %s", r.status, r.body)
	}
	too := map[string]any{"id": "g-2", "programme": "club", "customer": "d", "store": "s1", "points": 301}
	if r := apiRetry(t, "POST", addr, "/v1/loyalty/grants", adminKey, too); r.status != 409 || r.json(t)["field"] != "points" {
		t.Errorf("grant beyond central's 300 = %d %s, want 409 naming points", r.status, r.body)
	}
	bad := map[string]any{"id": "g-3", "programme": "club", "customer": "d", "store": "nowhere", "points": 1}
	if r := apiRetry(t, "POST", addr, "/v1/loyalty/grants", adminKey, bad); r.status != 404 || r.json(t)["field"] != "store" {
		t.Errorf("grant to an unknown store = %d %s, want 404 naming store", r.status, r.body)
	}
	for range 2 {
		r := mustOK(t, apiRetry(t, "POST", addr, "/v1/loyalty/grants", adminKey, g))
		if j := r.json(t); j["granted"] != float64(100) || j["available"] != float64(200) {
			t.Errorf("grant g-1 = %s, want 100 granted, 200 left", r.body)
		}
	}
	r := mustOK(t, apiRetry(t, "GET", addr, "/v1/loyalty/points/club/d", viewerKey, nil))
	var st central.PointsStatus
	if err := json.Unmarshal(r.body, &st); err != nil || st.Balance != 300 || st.Rights["central"] != 200 || st.Rights["s1"] != 100 {
		t.Errorf("d's points after the grant: %s, want 300: 200 at central, 100 at s1", r.body)
	}
	waitFor(t, "the grant at s1", 30*time.Second, func() bool { return rightsAt(t, shop, "s1", "d") == 100 })
}

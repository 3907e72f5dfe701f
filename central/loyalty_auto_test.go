package central_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/node"
)

var loyaltySeed = flag.Uint64("loyalty.seed", 0, "seed of TestLoyaltyGrantsNeverExceedBalance (0: from the clock; a failure prints its seed)")

// loyaltyShops starts the test shops against the cluster, and waits until
// each has the loyalty master data and has synced.
func loyaltyShops(t *testing.T, c *cluster, n int) []*node.Node {
	t.Helper()
	var urls []string
	for _, cn := range c.nodes {
		urls = append(urls, "http://"+cn.ReplicationAddr())
	}
	shops := make([]*node.Node, n)
	for i := range n {
		s := testShops[i]
		shops[i] = startShopNode(t, s, t.TempDir(), shopReplication(urls, s.token))
		waitFor(t, "the gifts at "+string(s.store), 30*time.Second, func() bool {
			_, ok := tillItem(t, shops[i], s.terminal, "gift")
			return ok
		})
		waitOnline(t, shops[i], string(s.store))
	}
	return shops
}

// TestLoyaltyAutoPreGrantToUsualShops: with no head-office call, central
// pre-grants rights to the shops where the customer shops. Customer a
// earns 600 at s1 (keeps the float of 100, hands 500 back): s1 is their
// usual shop and is topped up to half the balance, 300. Then a earns 400
// at s2 (hands 300 back): both are usual, each topped up to a quarter of
// 1,000 (s1 already holds more). Every replica agrees and the rights add
// up to the balance.
func TestLoyaltyAutoPreGrantToUsualShops(t *testing.T) {
	t.Parallel()
	c := loyaltyCluster(t, 50*time.Millisecond)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("a")...)
	shops := loyaltyShops(t, c, 2)

	// A sale without a card first: the sweep reads past it (no entry) and
	// still notes the earning after it.
	if code, out := tillPost(t, shops[0], testShops[0].terminal, receiptBody(storeline.NewEventID(), "", "sku0", "1.00", 1,
		map[string]any{"method": "cash", "amount": "1.00"})); code != 201 {
		t.Fatalf("cash sale = %d %v", code, out)
	}
	waitFor(t, "s1 to push the cash sale", 20*time.Second, func() bool { return caughtUpAt(shops[0]) })
	c.waitSettled()
	if ans, err := c.waitLeader().SweepLoyalty(context.Background()); err != nil || ans.Granted != 0 {
		t.Fatalf("a sweep over the cash sale: %+v %v", ans, err)
	}
	earn(t, shops[0], testShops[0].terminal, cardOf("a"), 60)
	waitFor(t, "s1's pre-grant at s1", 30*time.Second, func() bool { return rightsAt(t, shops[0], "s1", "a") == 300 })
	if st := pointsAt(t, c.waitLeader(), "a"); st.Balance != 600 || st.Rights["central"] != 300 || st.Rights["s1"] != 300 || st.Rights["s2"] != 0 {
		t.Fatalf("a's points after earning at s1: %+v, want 600: 300 at s1, 300 at central", st)
	}

	earn(t, shops[1], testShops[1].terminal, cardOf("a"), 40)
	waitFor(t, "s2's pre-grant at s2", 30*time.Second, func() bool { return rightsAt(t, shops[1], "s2", "a") == 250 })
	for i, s := range shops {
		waitFor(t, string(testShops[i].store)+" to catch up", 20*time.Second, func() bool { return caughtUpAt(s) })
	}
	c.waitSettled()
	for _, n := range c.nodes {
		st := pointsAt(t, n, "a")
		want := map[string]int64{"s1": 300, "s2": 250, "central": 450}
		for h, w := range want {
			if st.Rights[h] != w {
				t.Errorf("%s: a's rights %v, want %v", n.ID(), st.Rights, want)
				break
			}
		}
		if st.Balance != 1000 {
			t.Errorf("%s: a's balance %d, want 1000", n.ID(), st.Balance)
		}
		if fmt.Sprint(st.Usual) != "[s1 s2]" {
			t.Errorf("%s: a's usual shops %v, want [s1 s2]", n.ID(), st.Usual)
		}
	}
	// Online, the whole balance is spendable at s2: its rights first, the
	// rest reserved at central.
	if code, body := spendOnline(t, shops[1], testShops[1].terminal, cardOf("a"), storeline.NewEventID(), 700, true); code != 201 {
		t.Fatalf("spending 700 at s2 = %d %v", code, body)
	}
	waitFor(t, "s2 to catch up", 20*time.Second, func() bool { return caughtUpAt(shops[1]) })
	c.waitSettled()
	if st := pointsAt(t, c.waitLeader(), "a"); st.Balance != 300 {
		t.Errorf("a's points after spending 700: %+v, want 300", st)
	}
}

// managerSession adds a manager at the shop and logs them in at its till.
func managerSession(t *testing.T, shop *node.Node, terminal string) string {
	t.Helper()
	const pin = "93770521"
	b, _ := json.Marshal(node.SellerRequest{ID: "manager-1", Name: "Max", Role: storeline.Manager, PIN: pin})
	req, _ := http.NewRequest(http.MethodPost, shop.AdminURL()+"/admin/v1/sellers", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+shopAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("add manager: %v %v", err, resp)
	}
	resp.Body.Close()
	b, _ = json.Marshal(map[string]string{"seller": "manager-1", "pin": pin})
	req, _ = http.NewRequest(http.MethodPost, shop.TillURL()+"/v1/sessions", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+terminal)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct{ Token string }
	if json.NewDecoder(resp.Body).Decode(&sess) != nil || sess.Token == "" {
		t.Fatalf("login = %d", resp.StatusCode)
	}
	return sess.Token
}

// TestLoyaltyDebtNettedByLaterEarnings: customer e earns 100 at s1 (kept:
// the float), spends them, and returns the goods that earned them: a debt
// of 100. Their next earnings at s1, 150, go back to central whole (a
// customer who owes keeps no float), which nets the debt first and
// pre-grants from the rest. The card at s1 shows the debt gone.
func TestLoyaltyDebtNettedByLaterEarnings(t *testing.T) {
	c := loyaltyCluster(t, 50*time.Millisecond)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("e")...)
	shop := loyaltyShops(t, c, 1)[0]
	s := testShops[0]
	sess := managerSession(t, shop, s.terminal)

	earnID := storeline.NewEventID()
	if code, out := tillPost(t, shop, s.terminal, receiptBody(earnID, cardOf("e"), "sku0", "1.00", 10,
		map[string]any{"method": "cash", "amount": "10.00"})); code != 201 || out["points_earned"] != float64(100) {
		t.Fatalf("earning receipt = %d %v", code, out)
	}
	if code, body := spend(t, shop, s.terminal, cardOf("e"), storeline.NewEventID(), 100); code != 201 {
		t.Fatalf("spending 100 = %d %v", code, body)
	}
	ret, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "manager-1",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "reason": "changed mind", "original": earnID,
		"lines":   []map[string]string{{"sku": "sku0", "qty": "10", "price": "1.00"}},
		"refunds": []map[string]string{{"method": "cash", "amount": "10.00"}},
	})
	req, _ := http.NewRequest(http.MethodPost, shop.TillURL()+"/v1/returns", strings.NewReader(string(ret)))
	req.Header.Set("Authorization", "Bearer "+s.terminal)
	req.Header.Set("X-Session", sess)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("return = %d", resp.StatusCode)
	}
	waitFor(t, "central to see e's debt", 30*time.Second, func() bool { return pointsAt(t, c.waitLeader(), "e").Debt == 100 })

	earn(t, shop, s.terminal, cardOf("e"), 15)
	waitFor(t, "the debt netted at central", 30*time.Second, func() bool { return pointsAt(t, c.waitLeader(), "e").Debt == 0 })
	waitFor(t, "s1 to see the debt netted", 30*time.Second, func() bool {
		d, err := shop.Ledger().Balance(storeline.PointsDebtAccount("club", "e", "s1"), storeline.PointsAsset("club"))
		return err == nil && d.IsZero()
	})
	waitFor(t, "s1 to catch up", 20*time.Second, func() bool { return caughtUpAt(shop) })
	// 150 earned pay the 100 owed: 50 left, half of it pre-granted to s1
	// by the automatic sweep, which runs on its own timer after the
	// netting: wait for it at the leader, then every replica must agree.
	waitFor(t, "the sweep's pre-grant to s1", 30*time.Second, func() bool {
		st := pointsAt(t, c.waitLeader(), "e")
		return st.Rights["s1"] == 25
	})
	c.waitSettled()
	for _, n := range c.nodes {
		st := pointsAt(t, n, "e")
		if st.Balance != 50 || st.Debt != 0 || st.Rights["s1"] != 25 || st.Rights["central"] != 25 {
			t.Errorf("%s: e's points %+v, want 50 (25 at s1, 25 at central), no debt", n.ID(), st)
		}
	}
	pts := cardPoints(t, shop, s.terminal, cardOf("e"))
	if pts["debt"] != float64(0) || pts["balance"] != float64(50) {
		t.Errorf("card of e at s1: %v, want balance 50, debt 0", pts)
	}
}

// TestLoyaltyGrantsNeverExceedBalance: random histories of one customer's
// points (earning, spending, hand-backs and debts at three shops, moved by
// central transfers) interleaved with sweeps of random policy. A sweep
// never makes a holder's rights negative, never overpays a debt, never
// grants more than central held, and changes the balance only by what it
// nets against debt.
func TestLoyaltyGrantsNeverExceedBalance(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	n := c.waitLeader()
	ctx := context.Background()
	recs := append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("r")...)
	recs = append(recs, &storeline.Store{ID: "s3", Name: "Shop s3", TimeZone: "Europe/Riga", Currency: "EUR",
		Departments: []storeline.Department{{ID: "food", Name: "Food"}}, PriceLists: []storeline.PriceListID{"retail"}})
	c.put(t, "seed", recs...)
	stores := []storeline.StoreID{"s1", "s2", "s3"}
	asset := storeline.PointsAsset("club")
	move := func(from, to string, k int64) {
		t.Helper()
		if k <= 0 {
			return
		}
		if _, err := n.Transfer(ctx, storeline.NewEventID(), "test", "", []storeline.Posting{
			{Account: from, Asset: asset, Amount: decimal.NewFromInt(-k)},
			{Account: to, Asset: asset, Amount: decimal.NewFromInt(k)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	acct := func(h storeline.StoreID) string { return storeline.PointsAccount("club", "r", h) }
	seed := *loyaltySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := rand.New(rand.NewPCG(seed, 6))
	today := time.Now().UTC()
	for step := range 120 {
		before := pointsAt(t, n, "r")
		s := stores[r.IntN(len(stores))]
		switch r.IntN(5) {
		case 0: // earning at s
			move(storeline.IssuedPointsAccount(s), acct(s), 1+r.Int64N(500))
		case 1: // spending at s, within its rights
			move(acct(s), storeline.RedeemedPointsAccount(s), r.Int64N(before.Rights[string(s)]+1))
		case 2: // a hand-back from s
			move(acct(s), acct(storeline.Central), r.Int64N(before.Rights[string(s)]+1))
		case 3: // a return's debt at s
			move(storeline.PointsDebtAccount("club", "r", s), storeline.IssuedPointsAccount(s), 1+r.Int64N(200))
		default:
			kind := []string{"visit", "handback", "debt"}[r.IntN(3)]
			date := storeline.Date(today.AddDate(0, 0, -r.IntN(120)).Format("2006-01-02"))
			ans, err := n.SweepSeen(ctx, s, "club", "r", date, kind, 1+r.IntN(3), r.IntN(101))
			if err != nil {
				t.Fatal(err)
			}
			after := pointsAt(t, n, "r")
			where := fmt.Sprintf("seed %d step %d (%s at %s): %+v -> %+v (%+v)", seed, step, kind, s, before, after, ans)
			if ans.Granted+ans.Netted > before.Rights["central"] {
				t.Fatalf("moved more than central held: %s", where)
			}
			if after.Balance != before.Balance-ans.Netted || after.Debt != before.Debt-ans.Netted {
				t.Fatalf("the balance moved by other than the netting: %s", where)
			}
			for h, v := range after.Rights {
				if v < 0 {
					t.Fatalf("%s's rights negative: %s", h, where)
				}
			}
			for h, v := range after.Debts {
				if v < 0 {
					t.Fatalf("%s's debt overpaid: %s", h, where)
				}
			}
		}
	}
}

// TestLoyaltyAnswersPruned: a reservation's stored answer (and its age
// index) goes once it is older than the retention, and not before.
func TestLoyaltyAnswersPruned(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.Loyalty.SweepInterval = 0 })
	n := c.waitLeader()
	ctx := context.Background()
	c.put(t, "seed", append(masterData(1, time.Now().Add(-time.Hour)), loyaltyData("p")...)...)
	if _, err := n.Transfer(ctx, storeline.NewEventID(), "test", "", []storeline.Posting{
		{Account: storeline.IssuedPointsAccount("s1"), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(-50)},
		{Account: storeline.PointsAccount("club", "p", storeline.Central), Asset: storeline.PointsAsset("club"), Amount: decimal.NewFromInt(50)},
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ans, err := n.MoveRights(ctx, "s1", "club", "p", 10, fmt.Sprintf("reserve/%d", i), "test"); err != nil || ans.Granted != 10 {
			t.Fatalf("reservation %d: %+v %v", i, ans, err)
		}
	}
	count := func() (int, int) {
		a, x, err := n.RightsAnswerKeys()
		if err != nil {
			t.Fatal(err)
		}
		return a, x
	}
	if a, x := count(); a != 3 || x != 3 {
		t.Fatalf("%d answers, %d indexed; want 3 and 3", a, x)
	}
	if k, err := n.PruneLoyaltyAnswers(ctx, time.Now().Add(-time.Hour)); err != nil || k != 0 {
		t.Fatalf("pruning answers older than an hour: %d %v, want none", k, err)
	}
	// The same key within the retention: the first answer, nothing moved.
	if ans, err := n.MoveRights(ctx, "s1", "club", "p", 10, "reserve/0", "test"); err != nil || ans.Available != 40 {
		t.Fatalf("asking again: %+v %v, want the first answer (40 left)", ans, err)
	}
	if k, err := n.PruneLoyaltyAnswers(ctx, time.Now().Add(time.Second)); err != nil || k != 3 {
		t.Fatalf("pruning every answer: %d %v, want 3", k, err)
	}
	if a, x := count(); a != 0 || x != 0 {
		t.Fatalf("%d answers, %d indexed after the prune; want none", a, x)
	}
	if st := pointsAt(t, n, "p"); st.Rights["central"] != 20 || st.Rights["s1"] != 30 {
		t.Fatalf("p's rights %v, want 20 at central, 30 at s1", st.Rights)
	}
	// The same key once its answer is pruned: decided afresh, a new move
	// under a new event ID (the first transfer's ID, which the shop holds,
	// would be taken for a copy), and central goes on applying.
	ans, err := n.MoveRights(ctx, "s1", "club", "p", 10, "reserve/0", "test")
	if err != nil || ans.Granted != 10 || ans.Available != 10 {
		t.Fatalf("asking again after the prune: %+v %v, want 10 granted afresh, 10 left", ans, err)
	}
	if ans, err := n.MoveRights(ctx, "s1", "club", "p", 5, "reserve/3", "test"); err != nil || ans.Granted != 5 {
		t.Fatalf("a new reservation after that: %+v %v", ans, err)
	}
	if st := pointsAt(t, n, "p"); st.Rights["central"] != 5 || st.Rights["s1"] != 45 {
		t.Fatalf("p's rights %v, want 5 at central, 45 at s1", st.Rights)
	}
}

// TestLoyaltyOfflineEarningsHandedBackOnReconnect: a shop cut off from
// central takes an earning receipt and keeps the rights, and restarts
// still cut off; once the link heals, its sweep hands the rights above
// the float back to central with no further receipt, once.
func TestLoyaltyOfflineEarningsHandedBackOnReconnect(t *testing.T) {
	t.Parallel()
	c := loyaltyCluster(t, 0)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("h")...)
	pxs, s, start := proxiedShop(t, c)
	shop := start()
	waitFor(t, "the gifts at s1", 30*time.Second, func() bool {
		_, ok := tillItem(t, shop, s.terminal, "gift")
		return ok
	})
	waitOnline(t, shop, "s1")
	cutOff(t, shop, pxs)
	earn(t, shop, s.terminal, cardOf("h"), 60)
	if r := rightsAt(t, shop, "s1", "h"); r != 600 {
		t.Fatalf("offline, s1 holds %d of h's rights, want all 600", r)
	}
	// The shop restarts while still cut off: what it owes survives.
	if err := shop.Stop(); err != nil {
		t.Fatal(err)
	}
	shop = start()
	for _, px := range pxs {
		px.Heal()
	}
	waitFor(t, "central to hold the 500 above s1's float", 30*time.Second, func() bool {
		return pointsAt(t, c.waitLeader(), "h").Rights["central"] == 500
	})
	waitFor(t, "s1 to catch up", 20*time.Second, func() bool { return caughtUpAt(shop) })
	// One hand-back, however many sweeps ran.
	hb := 0
	for _, ev := range centralJournal(t, c.waitLeader(), "s1") {
		if ev.Kind == storeline.KindPointsHandback {
			hb++
		}
	}
	if hb != 1 {
		t.Errorf("central holds %d hand-backs of s1, want 1", hb)
	}
	if r := rightsAt(t, shop, "s1", "h"); r != 100 {
		t.Errorf("s1 holds %d of h's rights, want its float 100", r)
	}
}

// proxiedShop prepares testShops[0] with every link to c's nodes through
// a fault proxy and its hand-back sweep on a 50 ms timer: start starts
// the node on the same data directory each time (and stops it at the
// test's end).
func proxiedShop(t *testing.T, c *cluster) (pxs []*faultproxy.Proxy, s shopSpec, start func() *node.Node) {
	t.Helper()
	pxs, urls := proxyEach(t, c)
	s = testShops[0]
	cfg := node.DefaultConfig()
	cfg.StoreID, cfg.DataDir, cfg.TillAddr, cfg.AdminAddr = s.store, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken = shopAdminToken
	cfg.Terminals = []node.TerminalToken{{ID: "till-1", Token: s.terminal}}
	cfg.Replication = shopReplication(urls, s.token)
	cfg.PointsSweepInterval = 50 * time.Millisecond
	start = func() *node.Node {
		shop, err := node.New(cfg, testLogger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := shop.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shop.Stop() })
		return shop
	}
	return pxs, s, start
}

// cutOff cuts every link of shop through pxs and waits until it sees
// central unreachable.
func cutOff(t *testing.T, shop *node.Node, pxs []*faultproxy.Proxy) {
	t.Helper()
	for _, px := range pxs {
		px.Cut()
	}
	waitFor(t, "the shop to see central unreachable", 10*time.Second, func() bool { return !shop.Replication().Status().Reachable })
}

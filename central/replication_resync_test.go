package central_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/node"
)

// tillCatalog replays a till's catalogue feed (GET /v1/catalog/changes)
// from the start and returns the live records by "kind/id", as a till's
// cache would hold them.
func tillCatalog(t testing.TB, n *node.Node, token string) map[string]map[string]any {
	t.Helper()
	live := map[string]map[string]any{}
	for since := uint64(0); ; {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/catalog/changes?since=%d&limit=500", n.TillURL(), since), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Changes []struct {
				Kind    string         `json:"kind"`
				ID      string         `json:"id"`
				Deleted bool           `json:"deleted"`
				Record  map[string]any `json:"record"`
			} `json:"changes"`
			Next uint64 `json:"next"`
			More bool   `json:"more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog changes since %d: HTTP %d, %v", since, resp.StatusCode, err)
		}
		for _, c := range page.Changes {
			if c.Deleted {
				delete(live, c.Kind+"/"+c.ID)
			} else {
				live[c.Kind+"/"+c.ID] = c.Record
			}
		}
		if !page.More || page.Next == since {
			return live
		}
		since = page.Next
	}
}

// pricesOfList returns the live prices of list in a till's catalogue.
func pricesOfList(cat map[string]map[string]any, list string) int {
	n := 0
	for k, r := range cat {
		if strings.HasPrefix(k, string(storeline.KindPrice)+"/") && r["list"] == list {
			n++
		}
	}
	return n
}

// TestResyncRemovesWhatNoLongerConcernsTheShop: a shop moved off a price
// list at central resyncs, and afterwards neither its ledger nor its
// till's catalogue holds the old list or its prices; the receipts it sold
// while cut off (unsent when the resync began) are all pushed.
func TestResyncRemovesWhatNoLongerConcernsTheShop(t *testing.T) {
	c, _ := replCluster(t)
	from := time.Now().Add(-time.Hour)
	c.put(t, "seed", masterData(10, from)...)
	vip := []storeline.Record{&storeline.PriceList{ID: "vip", Name: "VIP", Currency: "EUR"}}
	for i := 0; i < 5; i++ {
		vip = append(vip, &storeline.Price{List: "vip", Item: storeline.ItemID(fmt.Sprintf("i%d", i)), From: from,
			Price: decimal.RequireFromString("0.50")})
	}
	c.put(t, "vip", vip...)
	st := masterData(0, from)[2].(*storeline.Store)
	st.PriceLists = []storeline.PriceListID{"vip", "retail"}
	c.put(t, "assign-vip", st)

	s := testShops[0]
	px, err := faultproxy.New(c.nodes[1].ReplicationAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rc := shopReplication([]string{px.URL()}, s.token)
	rc.LoyaltyTimeout = time.Second
	shop := startShopNode(t, s, t.TempDir(), rc)
	waitFor(t, "the VIP price at the till", 15*time.Second, func() bool {
		p, ok := tillItem(t, shop, s.terminal, "sku0")
		return ok && p == "0.50"
	})
	if got := pricesOfList(tillCatalog(t, shop, s.terminal), "vip"); got != 5 {
		t.Fatalf("till catalogue holds %d VIP prices before the move, want 5", got)
	}

	// Cut off, the shop sells; head office moves it off the VIP list.
	px.Cut()
	sold := sellAt(t, shop.Ledger(), 50)
	st.PriceLists = []storeline.PriceListID{"retail"}
	c.put(t, "unassign-vip", st)
	px.Heal()

	waitFor(t, "the retail price after the resync", 15*time.Second, func() bool {
		p, ok := tillItem(t, shop, s.terminal, "sku0")
		return ok && p == "1.00"
	})
	waitFor(t, "the VIP list gone from the shop", 15*time.Second, func() bool {
		var pl storeline.PriceList
		return shop.Ledger().GetMaster(storeline.KindPriceList, "vip", &pl) != nil
	})
	cat := tillCatalog(t, shop, s.terminal)
	if got := pricesOfList(cat, "vip"); got != 0 {
		t.Errorf("till catalogue holds %d VIP prices after the resync, want 0", got)
	}
	if _, ok := cat[string(storeline.KindPriceList)+"/vip"]; ok {
		t.Errorf("till catalogue still holds the VIP price list")
	}
	if got := pricesOfList(cat, "retail"); got != 10 {
		t.Errorf("till catalogue holds %d retail prices, want 10", got)
	}
	if _, ok := cat[string(storeline.KindItem)+"/i9"]; !ok {
		t.Errorf("till catalogue lost item i9 (a record the snapshot sent again)")
	}
	waitFor(t, "the receipts sold while cut off acknowledged", 15*time.Second, func() bool { return caughtUpAt(shop) })
	if got := shopCounter(t, shop, "storeline_replication_resyncs_total"); got < 1 {
		t.Errorf("resyncs_total = %v, want at least 1", got)
	}
	if got := shopCounter(t, shop, "storeline_replication_swept_records_total"); got != 6 {
		t.Errorf("swept_records_total = %v, want 6 (the VIP list and its 5 prices)", got)
	}
	c.waitSettled()
	checkAgree(t, c, shop, "s1", nil)
	held := map[storeline.EventID]bool{}
	for _, ev := range centralJournal(t, c.nodes[0], "s1") {
		held[ev.ID] = true
	}
	for _, ev := range sold {
		if !held[ev.ID] {
			t.Fatalf("receipt %s sold while cut off is not at central", ev.ID)
		}
	}
}

// TestOldCursorAfterFeedPruneConverges: a shop cut off while head office
// delivers stock to it comes back after the history window has passed and
// its feed entries were pruned. It resyncs, gets the deliveries anyway
// (from central's event store), keeps and pushes what it sold meanwhile,
// and agrees with every central node on every balance.
func TestOldCursorAfterFeedPruneConverges(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	ctx := context.Background()
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	s := testShops[0]
	px, err := faultproxy.New(c.nodes[2].ReplicationAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rc := shopReplication([]string{px.URL()}, s.token)
	rc.LoyaltyTimeout = time.Second
	shop := startShopNode(t, s, t.TempDir(), rc)
	waitFor(t, "the catalogue at the shop", 15*time.Second, func() bool {
		_, ok := tillItem(t, shop, s.terminal, "sku9")
		return ok
	})

	px.Cut()
	sold := sellAt(t, shop.Ledger(), 40)
	for i := 0; i < 3; i++ {
		id := storeline.NewEventID()
		retryUnavailable(t, func() error {
			_, err := c.waitLeader().Transfer(ctx, id, "delivery", "", []storeline.Posting{
				{Account: storeline.StockAccount(s.store, "food", "i3"), Asset: storeline.ItemAsset("i3"), Amount: decimal.NewFromInt(5)},
				{Account: "warehouse/i3", Asset: storeline.ItemAsset("i3"), Amount: decimal.NewFromInt(-5)},
			})
			return err
		})
	}
	var dropped int
	retryUnavailable(t, func() error {
		// A retry after a leader change finds pruned what the entries
		// committed before it dropped: count those too.
		d, err := c.waitLeader().PruneHistory(ctx, time.Now().Add(2*time.Hour))
		dropped += d
		return err
	})
	if dropped < 3 {
		t.Fatalf("PruneHistory dropped %d feed entries, want the 3 deliveries at least", dropped)
	}
	px.Heal()

	want := decimal.NewFromInt(15)
	for _, ev := range sold {
		for _, p := range ev.Postings {
			if p.Account == storeline.StockAccount(s.store, "food", "i3") {
				want = want.Add(p.Amount)
			}
		}
	}
	waitFor(t, "the pruned deliveries at the shop", 20*time.Second, func() bool {
		b, err := shop.Ledger().Balance(storeline.StockAccount(s.store, "food", "i3"), storeline.ItemAsset("i3"))
		return err == nil && b.Equal(want)
	})
	waitFor(t, "what the shop sold while cut off acknowledged", 15*time.Second, func() bool { return caughtUpAt(shop) })
	if got := shopCounter(t, shop, "storeline_replication_resyncs_total"); got < 1 {
		t.Errorf("resyncs_total = %v, want at least 1", got)
	}
	c.waitSettled()
	checkAgree(t, c, shop, s.store, nil)
}

package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// owedHandbacks is the node's durable mark of the hand-back sweep
// (node/loyalty.go): the earliest business date of receipts earned
// offline whose hand-back is owed, "" when none is.
const owedHandbacks = "loyalty/handbacks-owed"

// TestLoyaltyHandbackSweepRerunAfterCrash: a shop earns for a customer
// three times while cut off from central, reconnects and hands back what
// is above its float; then head office pre-grants it 300 of the rights.
// It loses what the sweep did in memory with its mark still saying the
// hand-backs are owed, as a crash between the hand-backs and the mark's
// update leaves it, and restarts: the sweep runs again over the same
// receipts, now with rights above the float to hand back, and hands back
// nothing more (one hand-back per receipt, the pre-grant kept).
func TestLoyaltyHandbackSweepRerunAfterCrash(t *testing.T) {
	c := loyaltyCluster(t, 0)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("h")...)
	pxs, s, start := proxiedShop(t, c)
	owed := func(shop *node.Node) string {
		v, _, err := shop.Ledger().Meta(owedHandbacks)
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	handbacks := func() int {
		n := 0
		for _, ev := range centralJournal(t, c.waitLeader(), s.store) {
			if ev.Kind == storeline.KindPointsHandback {
				n++
			}
		}
		return n
	}
	shop := start()
	waitFor(t, "the gifts at s1", 30*time.Second, func() bool {
		_, ok := tillItem(t, shop, s.terminal, "gift")
		return ok
	})
	waitOnline(t, shop, "s1")
	cutOff(t, shop, pxs)
	for range 3 {
		earn(t, shop, s.terminal, cardOf("h"), 20) // 200 points each
	}
	mark := owed(shop)
	if mark == "" {
		t.Fatal("no hand-back owed after earning offline")
	}
	for _, px := range pxs {
		px.Heal()
	}
	// 600 earned, a float of 100 kept: the first receipt hands back 100,
	// the next two 200 each.
	waitFor(t, "central to hold the 500 above s1's float", 30*time.Second, func() bool {
		return pointsAt(t, c.waitLeader(), "h").Rights["central"] == 500
	})
	waitFor(t, "the sweep to finish", 20*time.Second, func() bool { return owed(shop) == "" })
	waitFor(t, "s1 to catch up", 20*time.Second, func() bool { return caughtUpAt(shop) })
	before := handbacks()
	if before != 3 {
		t.Fatalf("central holds %d hand-backs of s1, want 3", before)
	}

	grant(t, c, "resweep", "s1", "h", 300)
	waitFor(t, "s1 to hold the pre-grant", 20*time.Second, func() bool { return rightsAt(t, shop, "s1", "h") == 400 })

	// The state a crash after the hand-backs but before the mark's update
	// leaves: the mark back, and nothing in memory.
	if err := shop.Ledger().SetMeta(context.Background(), owedHandbacks, []byte(mark)); err != nil {
		t.Fatal(err)
	}
	if err := shop.Stop(); err != nil {
		t.Fatal(err)
	}
	shop = start()
	waitFor(t, "the sweep to run again and finish", 20*time.Second, func() bool { return owed(shop) == "" })
	waitFor(t, "s1 to catch up again", 20*time.Second, func() bool { return caughtUpAt(shop) })
	c.waitSettled()
	if n := handbacks(); n != before {
		t.Errorf("after the sweep ran again, central holds %d hand-backs of s1, want %d", n, before)
	}
	for _, n := range c.nodes {
		if st := pointsAt(t, n, "h"); st.Balance != 600 || st.Rights["central"] != 200 || st.Rights["s1"] != 400 {
			t.Errorf("%s: h's points %+v, want 600 (400 at s1, 200 at central)", n.ID(), st)
		}
	}
	if r := rightsAt(t, shop, "s1", "h"); r != 400 {
		t.Errorf("s1 holds %d of h's rights, want its float and the pre-grant, 400", r)
	}
}

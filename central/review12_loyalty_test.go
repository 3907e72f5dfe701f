package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview12CrashBeforeHandbackReconciledOnRestart: a shop online takes
// an earning receipt and crashes after the receipt is durable but before
// its hand-back (the receipt is in the ledger, no hand-back follows).
// Once it is back and online, and the till has resent the receipt whose
// answer it never got, the rights the receipt earned above the float go
// back to head office, as they would have without the crash.
func TestReview12CrashBeforeHandbackReconciledOnRestart(t *testing.T) {
	c := loyaltyCluster(t, 0)
	c.put(t, "seed", masterData(10, time.Now().Add(-time.Hour))...)
	c.put(t, "loyalty", loyaltyData("h")...)
	_, s, start := proxiedShop(t, c)
	shop := start()
	waitFor(t, "the items at s1", 30*time.Second, func() bool {
		_, ok := tillItem(t, shop, s.terminal, "sku0")
		return ok
	})
	waitOnline(t, shop, "s1")
	earn(t, shop, s.terminal, cardOf("h"), 20) // 200 points, 100 above the float handed back
	waitFor(t, "central to hold the 100 above s1's float", 30*time.Second, func() bool {
		return pointsAt(t, c.waitLeader(), "h").Rights["central"] == 100
	})
	// The crash: a second earning receipt durable, its hand-back never
	// made, its answer never sent (the till resends it).
	evs, err := shop.Ledger().Journal(s.store, ledger.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var first storeline.Event
	for _, ev := range evs {
		if ev.Kind == storeline.KindReceipt {
			first = ev
		}
	}
	if first.Body == nil {
		t.Fatal("no receipt in s1's journal")
	}
	id := storeline.NewEventID()
	rc := *first.Body.(*storeline.Receipt)
	if _, created, err := shop.Ledger().Append(context.Background(), storeline.Event{
		ID: id, Kind: storeline.KindReceipt, Body: &rc, OccurredAt: first.OccurredAt, BusinessDate: first.BusinessDate,
	}); err != nil || !created {
		t.Fatalf("append the crashed receipt: %v %v", created, err)
	}
	if r := rightsAt(t, shop, s.store, "h"); r != 300 {
		t.Fatalf("s1 holds %d of h's rights after the crashed receipt, want 300", r)
	}
	if err := shop.Stop(); err != nil {
		t.Fatal(err)
	}
	shop = start()
	waitOnline(t, shop, "s1")
	body := receiptBody(id, cardOf("h"), "sku0", "1.00", 20, map[string]any{"method": "cash", "amount": "20.00"})
	body["occurred_at"] = first.OccurredAt.Format(time.RFC3339Nano)
	if code, out := tillPost(t, shop, s.terminal, body); code != 200 {
		t.Fatalf("the till's retry of the crashed receipt = %d %v, want 200", code, out)
	}
	waitFor(t, "s1 to hand back the crashed receipt's 200 points", 20*time.Second, func() bool {
		return rightsAt(t, shop, s.store, "h") == 100 && pointsAt(t, c.waitLeader(), "h").Rights["central"] == 300
	})
}

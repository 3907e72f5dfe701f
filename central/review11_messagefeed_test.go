package central_test

import (
	"testing"
	"time"
)

// TestMessageNarrowedOffShopLeavesIt: head office narrows a message for
// shops s1 and s2 to s2 alone. s1 pulls its feed and must no longer hold
// (and so show its tills) the message, as with a seller moved off it.
func TestMessageNarrowedOffShopLeavesIt(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(1, time.Now().Add(-time.Hour))...)
	a := c.waitLeader().APIAddr()
	s := testShops[0]
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	mustOK(t, apiDo(t, "PUT", a, "/v1/messages/notice", adminKey,
		map[string]any{"text": "stocktake tonight", "stores": []string{string(s.store), "s2"}, "from": from}, nil))

	shop := startShopNode(t, s, t.TempDir(), shopReplication([]string{"http://" + c.nodes[0].ReplicationAddr()}, s.token))
	waitFor(t, "the message at "+string(s.store), 15*time.Second, func() bool { return hasMessage(shop, "notice") })

	mustOK(t, apiDo(t, "PUT", a, "/v1/messages/notice", adminKey,
		map[string]any{"text": "stocktake tonight", "stores": []string{"s2"}, "from": from}, nil))
	putMarker(t, a, "after-narrow", s.store)
	waitFor(t, "the marker at the shop", 15*time.Second, func() bool { return hasMessage(shop, "after-narrow") })
	if hasMessage(shop, "notice") {
		t.Errorf("shop %s still holds a message head office narrowed to s2", s.store)
	}
}

package central_test

import (
	"net/http"
	"testing"

	"github.com/storeline/storeline/central"
)

// TestReview22ReservationsOfDeletedItem: an item deleted from the master
// data while a shop's reservations still hold it is listed by its ID, as
// the stock report still lists its stock: head office can see who holds
// it. An ID neither the master data nor any reservation knows is a 404.
func TestReview22ReservationsOfDeletedItem(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a, ra := n.APIAddr(), n.ReplicationAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"})})
	id := reserve(t, ra, 0, 1, "2")
	mustOK(t, apiDo(t, "DELETE", a, "/v1/items/milk", adminKey, nil, nil))
	got := getReservations(t, a, "store=s1&item=milk")
	if len(got.Reservations) != 1 || got.Reservations[0].ID != id.String() || !got.Reserved["milk"].Equal(dec("2")) {
		t.Fatalf("s1's reservations of the deleted milk = %+v, want %s holding 2", got, id)
	}
	problemOf(t, apiDo(t, "GET", a, "/v1/reservations?store=s2&item=milk", viewerKey, nil, nil), http.StatusNotFound, "item")
	problemOf(t, apiDo(t, "GET", a, "/v1/reservations?store=s1&item=nosuch", viewerKey, nil, nil), http.StatusNotFound, "item")
}

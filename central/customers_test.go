package central_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/internal/faultproxy"
	"github.com/storeline/storeline/node"
)

// tillCall sends a JSON request to a shop's till API and decodes the
// answer into out (if not nil); it returns the status.
func tillCall(t testing.TB, n *node.Node, method, path, token, session string, in, out any) int {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, n.TillURL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if session != "" {
		req.Header.Set("X-Session", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s = %d %s", method, path, resp.StatusCode, body)
	}
	return resp.StatusCode
}

// register signs customer id up at a shop's till (POST /v1/customers)
// and returns the event's ID.
func register(t testing.TB, n *node.Node, s shopSpec, session, id, name, card string) storeline.EventID {
	t.Helper()
	evID := storeline.NewEventID()
	in := map[string]any{"id": evID, "occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "terminal": "till-1", "seller": "ann",
		"customer": map[string]any{"id": id, "name": name}, "card_code": card}
	if code := tillCall(t, n, "POST", "/v1/customers", s.terminal, session, in, nil); code != http.StatusCreated {
		t.Fatalf("register %s at %s = %d", id, s.store, code)
	}
	return evID
}

// registrationStamp is the (HLC, origin) of a registration in a shop's
// journal.
func registrationStamp(t testing.TB, n *node.Node, store storeline.StoreID, id storeline.EventID) crdt.Stamp {
	t.Helper()
	for _, ev := range shopJournal(t, n.Ledger(), store) {
		if ev.ID == id {
			return crdt.Stamp{Time: crdt.Timestamp(ev.HLC), Origin: string(ev.Origin)}
		}
	}
	t.Fatalf("registration %s not in %s's journal", id, store)
	return crdt.Stamp{}
}

// customerEverywhere waits until every central node and every shop holds
// customer id named want.
func customerEverywhere(t testing.TB, c *cluster, shops []*node.Node, id, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("customer %s named %q everywhere", id, want), 20*time.Second, func() bool {
		for _, n := range c.nodes {
			if cu, err := n.Customer(storeline.CustomerID(id)); err != nil || cu.Name != want {
				return false
			}
		}
		for _, s := range shops {
			var cu storeline.Customer
			if s.Ledger().GetMaster(storeline.KindCustomer, id, &cu) != nil || cu.Name != want {
				return false
			}
		}
		return true
	})
}

// TestConcurrentRegistrationsConverge: two shops cut off from a 3-node
// central register the same customer with different names. Whatever
// order their pushes reach central in, the registration with the greater
// (HLC, origin) wins at every central node and both shops, each card
// issued comes down, and head office's later edit wins over both.
func TestConcurrentRegistrationsConverge(t *testing.T) {
	t.Parallel()
	c, _ := replCluster(t)
	c.put(t, "seed", masterData(3, time.Now().Add(-time.Hour))...)
	ann, err := node.SellerRecord(node.SellerRequest{ID: "ann", Name: "Ann", Role: storeline.Cashier, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	c.put(t, "seller", ann)

	var shops []*node.Node
	var pxs []*faultproxy.Proxy
	var sessions []string
	for i, s := range testShops {
		px, err := faultproxy.New(c.nodes[i].ReplicationAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer px.Close()
		rc := shopReplication([]string{px.URL()}, s.token)
		rc.LoyaltyTimeout = time.Second
		n := startShopNode(t, s, t.TempDir(), rc)
		var ses struct {
			Token string `json:"token"`
		}
		waitFor(t, "the seller at "+string(s.store), 15*time.Second, func() bool {
			var sel storeline.Seller
			return n.Ledger().GetMaster(storeline.KindSeller, "ann", &sel) == nil
		})
		waitFor(t, "a session at "+string(s.store), 15*time.Second, func() bool {
			return tillCall(t, n, "POST", "/v1/sessions", s.terminal, "", map[string]string{"seller": "ann", "pin": "1234"}, &ses) == http.StatusCreated
		})
		shops, pxs, sessions = append(shops, n), append(pxs, px), append(sessions, ses.Token)
	}
	s1, s2 := testShops[0], testShops[1]

	// round registers id at both shops while they are cut off, first at
	// shops[first]. The shop whose registration has the greater stamp (the
	// winner) is healed first and its push applied before the other's:
	// the loser arrives last, so a merge by arrival would pick it. It
	// returns the winner's name.
	round := func(id string, first int) string {
		t.Helper()
		for _, px := range pxs {
			px.Cut()
		}
		names := [2]string{id + " at s1", id + " at s2"}
		cards := [2]string{"1" + id[len(id)-1:] + "00000001", "2" + id[len(id)-1:] + "00000002"}
		var evs [2]storeline.EventID
		for _, i := range []int{first, 1 - first} {
			evs[i] = register(t, shops[i], testShops[i], sessions[i], id, names[i], cards[i])
		}
		st := [2]crdt.Stamp{
			registrationStamp(t, shops[0], s1.store, evs[0]),
			registrationStamp(t, shops[1], s2.store, evs[1]),
		}
		win := 0
		if st[1].Compare(st[0]) > 0 {
			win = 1
		}
		heal := win
		pxs[heal].Heal()
		waitFor(t, "the first shop's registration acknowledged", 15*time.Second, func() bool { return caughtUpAt(shops[heal]) })
		c.waitSettled()
		pxs[1-heal].Heal()
		waitFor(t, "the second shop's registration acknowledged", 15*time.Second, func() bool { return caughtUpAt(shops[1-heal]) })
		c.waitSettled()
		for _, code := range cards { // both cards are the customer's, at both shops
			for _, s := range shops {
				waitFor(t, "card "+code+" at the shops", 15*time.Second, func() bool {
					var card storeline.CardRecord
					return s.Ledger().LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card) == nil && string(card.Customer) == id
				})
			}
		}
		// Both registrations are applied at central and pulled by both
		// shops (the second one's card came down): the record is final.
		for _, n := range c.nodes {
			if cu, err := n.Customer(storeline.CustomerID(id)); err != nil || cu.Name != names[win] {
				t.Errorf("%s: customer %s = %+v, %v; want %q", n.ID(), id, cu, err, names[win])
			}
			got, err := n.CustomerStamp(storeline.CustomerID(id))
			if err != nil || got != st[win] {
				t.Errorf("%s: stamp of %s = %v, %v; want %v", n.ID(), id, got, err, st[win])
			}
		}
		for i, s := range shops {
			var cu storeline.Customer
			if err := s.Ledger().GetMaster(storeline.KindCustomer, id, &cu); err != nil || cu.Name != names[win] {
				t.Errorf("shop %s: customer %s = %+v, %v; want %q", testShops[i].store, id, cu, err, names[win])
			}
		}
		t.Logf("%s: s1 %v, s2 %v; winner %q (registered first at s%d, healed first s%d)", id, st[0], st[1], names[win], first+1, heal+1)
		return names[win]
	}
	round("cust-1", 0)
	round("cust-2", 1)

	// Head office edits cust-1 afterwards: the edit wins everywhere.
	c.put(t, "ho-edit", &storeline.Customer{ID: "cust-1", Name: "Anna (head office)"})
	customerEverywhere(t, c, shops, "cust-1", "Anna (head office)")
	for _, n := range c.nodes {
		if got, err := n.CustomerStamp("cust-1"); err != nil || got.Origin != string(storeline.Central) {
			t.Errorf("%s: stamp of cust-1 after head office's edit = %v, %v", n.ID(), got, err)
		}
	}
}

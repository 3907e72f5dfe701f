package central

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/replication"
)

// review14Reg pushes a customer_registered event of store, made at at.
func review14Reg(t *testing.T, n *Node, seqs map[storeline.StoreID]uint64, store storeline.StoreID, at time.Time, cust storeline.CustomerID, card string) {
	t.Helper()
	seqs[store]++
	ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seqs[store], SchemaVersion: storeline.SchemaVersion,
		HLC: uint64(crdt.MakeTimestamp(at.UnixMilli(), 0)), Kind: storeline.KindCustomerRegistered, OccurredAt: at.UTC(), BusinessDate: "2026-11-29",
		Body: &storeline.CustomerRegistered{Terminal: "t1", Seller: "ann", CardCode: card,
			Customer: storeline.Customer{ID: cust, Name: string(cust)}}}
	res, err := backend{n}.Push(context.Background(), replication.Batch{Store: store, Epoch: 1, Events: []storeline.Event{ev}})
	if err != nil || len(res.Rejections) != 0 || res.Gap != nil {
		t.Fatalf("push: %+v, %v", res, err)
	}
}

// TestReview14LateRegistrationIssuesNoCardToDeletedCustomer: a customer
// registered at s1 is deleted at head office. A registration of the same
// customer made at s2 before the delete, with another card, arrives after
// it: the customer stays deleted (it loses to head office's later write),
// and its card must not be issued either: a card naming a customer
// central does not have is one head office's own PUT refuses, and earns
// nothing at a till.
func TestReview14LateRegistrationIssuesNoCardToDeletedCustomer(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	seqs := map[storeline.StoreID]uint64{}
	t0 := time.Now().Add(-10 * time.Minute)
	review14Reg(t, n, seqs, "s1", t0, "cust-d", "78000001")
	if _, err := n.Customer("cust-d"); err != nil {
		t.Fatal(err)
	}
	del, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindCustomer, ID: "cust-d"})
	res, err := n.Submit(ctx, OpMasterDelete, "", del)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatalf("delete customer: %v", err)
	}
	review14Reg(t, n, seqs, "s2", t0.Add(time.Minute), "cust-d", "78000002")
	if c, err := n.Customer("cust-d"); !errors.Is(err, storeline.NotFound) {
		t.Fatalf("customer deleted at head office after the registration was made: %+v, %v; want it to stay deleted", c, err)
	}
	var card storeline.CardRecord
	if err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey("78000002"), &card); err == nil {
		t.Errorf("card %+v issued to customer cust-d, deleted at head office", card)
	}
}

// TestReview14RecodedCardKeptWhenOldCodeRegisteredAgain: a card a till
// issued with code X is recoded at head office to Z (the customer's card
// replaced, the record kept). Code X is free again, and a till later
// registers another customer with it. The registration's card ID derives
// from the code, so it is the ID of the recoded card: the registration
// must not take that record (moving Z's card to the new customer under
// code X, leaving the first customer without a card).
func TestReview14RecodedCardKeptWhenOldCodeRegisteredAgain(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	seqs := map[storeline.StoreID]uint64{}
	const x, z = "79000001", "79000009"
	review14Reg(t, n, seqs, "s1", time.Now().Add(-10*time.Minute), "cust-a", x)
	if _, err := n.PutRecords(ctx, "", &storeline.CardRecord{ID: registrationCardID(x), Code: z, Kind: storeline.LoyaltyCard, Customer: "cust-a"}); err != nil {
		t.Fatal(err)
	}
	review14Reg(t, n, seqs, "s2", time.Now().Add(time.Minute), "cust-b", x)
	var card storeline.CardRecord
	if err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey(z), &card); err != nil || card.Customer != "cust-a" {
		t.Errorf("card %s of cust-a after another registration of its old code %s: %+v, %v; want it kept", z, x, card, err)
	}
	if _, err := n.Customer("cust-b"); err != nil {
		t.Errorf("customer of the second registration: %v", err)
	}
}

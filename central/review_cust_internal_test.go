package central

import (
	"context"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/replication"
)

// TestReviewCustHeadOfficeCardEditNotUndoneByLateRegistration: a till
// registers customer a with card code X, and head office then gives that
// card to customer c (or withdraws it). A registration of the same code
// made at another shop before head office's edit (its stamp is older)
// arrives afterwards: it must lose to head office's edit, as a till's
// registration loses to head office's later edit of the customer
// (customers.go, invariant 2), rather than take the card back because it
// beats the first registration's stamp.
func TestReviewCustHeadOfficeCardEditNotUndoneByLateRegistration(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	seqs := map[storeline.StoreID]uint64{}
	reg := func(store storeline.StoreID, at time.Time, cust storeline.CustomerID, card string) {
		t.Helper()
		seqs[store]++
		ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seqs[store], SchemaVersion: storeline.SchemaVersion,
			HLC: uint64(crdt.MakeTimestamp(at.UnixMilli(), 0)), Kind: storeline.KindCustomerRegistered, OccurredAt: at.UTC(), BusinessDate: "2026-11-29",
			Body: &storeline.CustomerRegistered{Terminal: "t1", Seller: "ann", CardCode: card,
				Customer: storeline.Customer{ID: cust, Name: string(cust)}}}
		res, err := b.Push(ctx, replication.Batch{Store: store, Epoch: 1, Events: []storeline.Event{ev}})
		if err != nil || len(res.Rejections) != 0 || res.Gap != nil {
			t.Fatalf("push: %+v, %v", res, err)
		}
	}
	card := func(code string) (storeline.CardRecord, error) {
		var c storeline.CardRecord
		err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &c)
		return c, err
	}
	if _, err := n.PutRecords(ctx, "", &storeline.Customer{ID: "cust-c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-10 * time.Minute)

	// Reassigned by head office.
	const x = "77000001"
	reg("s1", t0, "cust-a", x)
	if c, err := card(x); err != nil || c.Customer != "cust-a" || c.ID != registrationCardID(x) {
		t.Fatalf("card %s after s1's registration: %+v, %v", x, c, err)
	}
	if _, err := n.PutRecords(ctx, "", &storeline.CardRecord{ID: registrationCardID(x), Code: x, Kind: storeline.LoyaltyCard, Customer: "cust-c"}); err != nil {
		t.Fatal(err)
	}
	reg("s2", t0.Add(time.Minute), "cust-b", x) // made before head office's edit, arriving after it
	if c, err := card(x); err != nil || c.Customer != "cust-c" {
		t.Errorf("card %s given to cust-c by head office, after a registration made before that arrives: %+v, %v; want cust-c's", x, c, err)
	}

	// Withdrawn by head office.
	const y = "77000002"
	reg("s1", t0, "cust-a", y)
	del, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindCard, ID: string(registrationCardID(y))})
	res, err := n.Submit(ctx, OpMasterDelete, "", del)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatalf("delete card: %v", err)
	}
	reg("s2", t0.Add(time.Minute), "cust-b", y)
	if c, err := card(y); err == nil {
		t.Errorf("card %s deleted by head office came back with a registration made before the delete: %+v", y, c)
	}

	// A registration made after head office's edit still wins (LWW).
	reg("s3", time.Now().Add(time.Minute), "cust-b", x)
	if c, err := card(x); err != nil || c.Customer != "cust-b" {
		t.Errorf("card %s after a registration made after head office's edit: %+v, %v; want cust-b's", x, c, err)
	}
}

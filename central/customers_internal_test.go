package central

import (
	"context"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/replication"
)

// TestRegistrationClockClampedAndHeadOfficeWins: a till whose HLC is a
// year ahead is believed only up to maxCustomerSkew past the entry's time;
// head office's edit after it wins; a registration stamped before that
// edit loses, and a card it issues still comes to the customer.
func TestRegistrationClockClampedAndHeadOfficeWins(t *testing.T) {
	n := openSingle(t)
	ctx := context.Background()
	b := backend{n}
	reg := func(store storeline.StoreID, seq uint64, hlc crdt.Timestamp, name, card string) {
		t.Helper()
		ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
			HLC: uint64(hlc), Kind: storeline.KindCustomerRegistered, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29",
			Body: &storeline.CustomerRegistered{Terminal: "t1", Seller: "ann", CardCode: card,
				Customer: storeline.Customer{ID: "cust-9", Name: name}}}
		res, err := b.Push(ctx, replication.Batch{Store: store, Epoch: 1, Events: []storeline.Event{ev}})
		if err != nil || len(res.Rejections) != 0 || res.Gap != nil {
			t.Fatalf("push: %+v, %v", res, err)
		}
	}
	before := time.Now()
	reg("s1", 1, crdt.MakeTimestamp(before.Add(365*24*time.Hour).UnixMilli(), 0), "from the future", "90000001")
	st, err := n.CustomerStamp("cust-9")
	if err != nil {
		t.Fatal(err)
	}
	if ceiling := crdt.MakeTimestamp(time.Now().Add(maxCustomerSkew).UnixMilli(), 0); st.Time > ceiling || st.Origin != "s1" {
		t.Errorf("stamp %v of a till a year ahead, want clamped at most to %v", st, ceiling)
	}
	if c, err := n.Customer("cust-9"); err != nil || c.Name != "from the future" {
		t.Fatalf("Customer = %+v, %v", c, err)
	}
	if _, err := n.PutRecords(ctx, "", &storeline.Customer{ID: "cust-9", Name: "head office"}); err != nil {
		t.Fatal(err)
	}
	if c, err := n.Customer("cust-9"); err != nil || c.Name != "head office" {
		t.Errorf("after head office's edit: %+v, %v", c, err)
	}
	ho, _ := n.CustomerStamp("cust-9")
	if ho.Origin != string(storeline.Central) || ho.Compare(st) <= 0 {
		t.Errorf("head office's stamp %v is not above the registration's %v", ho, st)
	}
	// A registration made before head office's edit arrives late: it
	// loses, but the card it issued is the customer's.
	reg("s2", 1, crdt.MakeTimestamp(before.UnixMilli(), 0), "late", "90000002")
	if c, err := n.Customer("cust-9"); err != nil || c.Name != "head office" {
		t.Errorf("after a late registration: %+v, %v", c, err)
	}
	var card storeline.CardRecord
	if err := n.rep.LookupMaster(storeline.KindCard, storeline.CardCodeKey("90000002"), &card); err != nil || card.Customer != "cust-9" {
		t.Errorf("card of the late registration: %+v, %v", card, err)
	}
}

package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/storeline/storeline"
)

// Review 17: master-data reads. Each test failed on the code before its
// fix.

// TestReview17MasterReadIntoReusedRecord: GetMaster and LookupMaster
// decoded the stored msgpack over the caller's record without clearing
// it, and a field a record leaves out when empty (omitempty: a customer's
// phone and group, a card's customer) is not in its bytes at all. A
// caller reading records into one variable (a loop over a list of cards)
// kept the previous record's customer on a card that has none, and the
// previous customer's phone and group on one who has none: a staff card
// priced as a VIP's. Every read now yields the stored record alone,
// whether it is served from Badger or from the record cache.
func TestReview17MasterReadIntoReusedRecord(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	if _, err := l.PutMaster(context.Background(), []storeline.Record{
		&storeline.CustomerGroup{ID: "vip", Name: "VIP"},
		&storeline.Customer{ID: "ann", Name: "Ann", Phone: "+4930123", Email: "ann@example.com", Group: "vip"},
		&storeline.Customer{ID: "bea", Name: "Bea"},
		&storeline.CardRecord{ID: "c1", Code: "CARD0001", Kind: storeline.LoyaltyCard, Customer: "ann"},
		&storeline.CardRecord{ID: "c2", Code: "STAFF002", Kind: storeline.StaffCard, Seller: "sam"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"from Badger", "from the cache"} {
		var c storeline.Customer
		for _, id := range []string{"ann", "bea"} {
			if err := l.GetMaster(storeline.KindCustomer, id, &c); err != nil {
				t.Fatal(err)
			}
		}
		if want := (storeline.Customer{ID: "bea", Name: "Bea"}); c != want {
			t.Errorf("%s: GetMaster(bea) after ann into one record = %+v, want %+v", pass, c, want)
		}
		var card storeline.CardRecord
		for _, code := range []string{"CARD0001", "STAFF002"} {
			if err := l.LookupMaster(storeline.KindCard, storeline.CardCodeKey(code), &card); err != nil {
				t.Fatal(err)
			}
		}
		if want := (storeline.CardRecord{ID: "c2", Code: "STAFF002", Kind: storeline.StaffCard, Seller: "sam"}); card != want {
			t.Errorf("%s: LookupMaster(STAFF002) after CARD0001 into one record = %+v, want %+v", pass, card, want)
		}
	}
	// NotFound leaves the record as it was: nothing was read.
	c := storeline.Customer{ID: "keep"}
	if err := l.GetMaster(storeline.KindCustomer, "nobody", &c); storeline.KindOf(err) != storeline.NotFound || c.ID != "keep" {
		t.Fatalf("GetMaster(nobody) = %v, record %+v; want NotFound, record untouched", err, c)
	}
}

// BenchmarkReview17GetMaster is a cached master read (the tills' API
// reads the terminal, the store and the items so for every request),
// into one record reused and into a fresh one:
//
//	go test -run '^$' -bench Review17GetMaster ./ledger/
func BenchmarkReview17GetMaster(b *testing.B) {
	l := open(b, testOptions(b.TempDir()))
	it := &storeline.Item{ID: "milk", SKU: "MILK", Name: "Milk 1l", Group: "dairy", Dept: "food", Unit: storeline.Piece,
		VATRate: dec("10"), Barcodes: []storeline.ItemBarcode{{Code: "4601234567893", Factor: dec("1")}, {Code: "4601234567909", Factor: dec("12")}}}
	if _, err := l.PutMaster(context.Background(), []storeline.Record{it}); err != nil {
		b.Fatal(err)
	}
	for _, reuse := range []bool{true, false} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			var into storeline.Item
			b.ReportAllocs()
			for b.Loop() {
				if !reuse {
					into = storeline.Item{}
				}
				if err := l.GetMaster(storeline.KindItem, "milk", &into); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package storeline

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestReview19ShopEventsPassCheckFromShop: what a shop authors from
// bodies its own checks took (a weighed sale, a return, cash taken out)
// is never refused by head office's check of the same event.
func TestReview19ShopEventsPassCheckFromShop(t *testing.T) {
	d := decimal.RequireFromString
	sale := &Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
		Lines: []Line{{Item: "cheese", Dept: "d", Unit: Kg, Qty: d("0.125"), Price: d("13.99"), Discount: d("0.05"), VATRate: d("21")},
			{Item: "milk", Dept: "d", Unit: Piece, Qty: d("3"), Price: d("1.15"), VATRate: d("5.5")}},
		Payments: []Payment{{Method: Card, Amount: d("1")}, {Method: Cash, Amount: d("10")}}}
	ret := &Return{Terminal: "t1", Shift: "sh", Seller: "x", Manager: "x", Currency: "EUR", Reason: "sour",
		Lines:   []Line{{Item: "milk", Dept: "d", Unit: Piece, Qty: d("2"), Price: d("1.15"), VATRate: d("5.5")}},
		Refunds: []Payment{{Method: Cash, Amount: d("2.30")}}}
	cash := &CashOp{Terminal: "t1", Shift: "sh", Seller: "x", Direction: CashOut, Currency: "JPY", Amount: d("5000"), Reason: "bank"}
	at := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	for _, b := range []Body{sale, ret, cash} {
		var err error
		switch v := b.(type) {
		case interface{ Compute() error }:
			err = v.Compute()
		case interface{ Validate() error }:
			err = v.Validate()
		}
		if err != nil {
			t.Fatalf("%s: %v", b.EventKind(), err)
		}
		ps, err := DerivePostings("s1", b)
		if err != nil {
			t.Fatal(err)
		}
		ev := Event{Kind: b.EventKind(), Body: b, Postings: ps, OccurredAt: at, BusinessDate: DateOf(at, time.FixedZone("+14", 14*3600))}
		if err := ev.CheckFromShop(); err != nil {
			t.Errorf("%s with postings %v: %v", b.EventKind(), ps, err)
		}
	}
}

package storeline

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// A return of a receipt paid partly with points gives the points back as a
// refund of method points: its postings mirror the payment's, the body
// still encodes as reflection does, and Compute holds money refunds to
// the total less the points' worth.
func TestReviewReturnGivesPointsBack(t *testing.T) {
	lines := func() []Line {
		return []Line{{Item: "cola", Dept: "drinks", Unit: Piece, Qty: mustDec("4"), Price: mustDec("1.80"), VATRate: mustDec("20")}}
	}
	rc := &Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR", Card: "CARD0001", Customer: "cust1", Programme: "club",
		Lines: lines(), Payments: []Payment{{Method: Points, Amount: mustDec("7.00"), Points: 700}, {Method: Cash, Amount: mustDec("0.20")}}}
	if err := rc.Compute(); err != nil {
		t.Fatal(err)
	}
	ret := &Return{Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR", Reason: "x", Lines: lines(),
		Refunds: []Payment{{Method: Cash, Amount: mustDec("7.20")}}}
	// Without a customer's points, a till's refunds are all money.
	if err := ret.Compute(); err != nil {
		t.Fatalf("a plain return: %v", err)
	}
	ret.Points = &PointsReversal{Programme: "club", Customer: "cust1"}
	ret.Refunds = append(ret.Refunds, Payment{Method: Points, Amount: mustDec("7.00"), Points: 700})
	err := ret.Compute()
	if FieldOf(err) != "refunds" || !strings.Contains(err.Error(), "0.20 refundable in money") {
		t.Fatalf("7.20 in cash and 700 points back: %v, want a refusal naming refunds and 0.20", err)
	}
	ret.Refunds[0].Amount = mustDec("0.20")
	if err := ret.Compute(); err != nil {
		t.Fatal(err)
	}
	// A points refund needs the customer.
	bad := *ret
	bad.Points = nil
	if err := bad.Compute(); FieldOf(err) != "refunds[1].method" {
		t.Fatalf("points given back without a customer: %v", err)
	}
	// A worth that stands for less than a point (no points) is accepted.
	part := *ret
	part.Refunds = []Payment{{Method: Cash, Amount: mustDec("7.19")}, {Method: Points, Amount: mustDec("0.01")}}
	if err := part.Compute(); err != nil {
		t.Fatalf("a points worth without points: %v", err)
	}
	if ps, err := DerivePostings("s1", &part); err != nil || len(ps) == 0 {
		t.Fatalf("postings of a worth without points: %v", err)
	}

	sold, err := DerivePostings("s1", rc)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DerivePostings("s1", ret)
	if err != nil {
		t.Fatal(err)
	}
	net := map[string]string{}
	for _, p := range MergePostings(append(append([]Posting(nil), sold...), back...)) {
		net[p.Account+" "+string(p.Asset)] = p.Amount.String()
	}
	for _, k := range []string{"points/club/cust1/s1 pts:club", "points-redeemed/s1 pts:club", "loyalty/s1 cur:EUR", "cash/s1/t1 cur:EUR", "revenue/s1 cur:EUR"} {
		if v, ok := net[k]; ok && !mustDec(v).IsZero() {
			t.Errorf("%s nets to %s over the sale and its return, want 0", k, v)
		}
	}

	// The hand-written encoder still matches reflection, and the body
	// comes back as it went.
	got, err := msgpack.Marshal(ret)
	if err != nil {
		t.Fatal(err)
	}
	want, err := msgpack.Marshal(mirror(reflect.ValueOf(ret)).Interface())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("return encodes as\n%x\nreflection gives\n%x", got, want)
	}
	var dec Return
	if err := msgpack.Unmarshal(got, &dec); err != nil {
		t.Fatal(err)
	}
	if len(dec.Refunds) != 2 || dec.Refunds[1].Points != 700 || !dec.Refunds[1].Amount.Equal(mustDec("7.00")) || dec.Points == nil {
		t.Fatalf("decoded %+v", dec)
	}
}

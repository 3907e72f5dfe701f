package storeline_test

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
	vmsgpack "github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// benchReceipt is the ledger benchmark's 5-line receipt (ledger/helpers_test.go),
// as a till sends it: quantities and rates not yet normalised.
func benchReceipt() *storeline.Receipt {
	r := &storeline.Receipt{Terminal: "t1", Shift: "sh1", Seller: "alice", Currency: "EUR"}
	total := decimal.Zero
	for i := 0; i < 5; i++ {
		price := decimal.NewFromInt(int64(100 + i)).Shift(-2)
		r.Lines = append(r.Lines, storeline.Line{
			Item: storeline.ItemID(fmt.Sprintf("i%d", i)), Dept: "food", Unit: storeline.Piece,
			Qty: decimal.NewFromInt(1), Price: price, VATRate: dec("10"),
		})
		total = total.Add(price)
	}
	r.Payments = []storeline.Payment{{Method: storeline.Cash, Amount: total}}
	return r
}

// fresh returns a copy of r whose lines and payments Compute may rewrite.
func fresh(r *storeline.Receipt) *storeline.Receipt {
	c := *r
	c.Lines = append([]storeline.Line(nil), r.Lines...)
	c.Payments = append([]storeline.Payment(nil), r.Payments...)
	return &c
}

// The root package's share of one ledger Append of a receipt: Compute
// (ledger normalise), DerivePostings, and the body's msgpack encoding.
//
//	go test -run '^$' -bench 'Receipt|DerivePostings|EventBody' -benchmem .

func BenchmarkReceiptCompute(b *testing.B) {
	tmpl := benchReceipt()
	b.ReportAllocs()
	for b.Loop() {
		if err := fresh(tmpl).Compute(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDerivePostings(b *testing.B) {
	r := benchReceipt()
	if err := r.Compute(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := storeline.DerivePostings("s1", r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventBodyEncode(b *testing.B) {
	r := benchReceipt()
	if err := r.Compute(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vmsgpack.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventBodyDecode(b *testing.B) {
	r := benchReceipt()
	if err := r.Compute(); err != nil {
		b.Fatal(err)
	}
	enc, err := vmsgpack.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var got storeline.Receipt
		if err := vmsgpack.Unmarshal(enc, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiptAppendPath is all three, as ledger.Append does them.
func BenchmarkReceiptAppendPath(b *testing.B) {
	tmpl := benchReceipt()
	b.ReportAllocs()
	for b.Loop() {
		r := fresh(tmpl)
		if err := r.Compute(); err != nil {
			b.Fatal(err)
		}
		if _, err := storeline.DerivePostings("s1", r); err != nil {
			b.Fatal(err)
		}
		if _, err := vmsgpack.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

package storeline_test

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// Sales on account at prices and VAT rates whose VAT-included split
// rounds (a cent's fraction either way): every line's revenue and VAT
// add up to its rounded total, the receivable is the sum of the totals,
// and every asset nets to zero for the invoice, a return and both
// cancels, cheese sold by weight included.
func TestReview33OutgoingInvoiceConservation(t *testing.T) {
	b := &buyerBook{memBook: newMemBook(), buyers: map[storeline.BuyerID]bool{"b1": true}}
	in := &storeline.Document{ID: "in1", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("7"), PurchasePrice: dec("0.37")},
			{Item: "cheese", Qty: dec("3.333"), PurchasePrice: dec("7.01")}}}
	if _, err := b.post(in); err != nil {
		t.Fatal(err)
	}
	nine, zero := dec("9.5"), dec("0")
	out := &storeline.Document{ID: "out1", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1",
		Lines: []storeline.DocumentLine{
			{Item: "milk", Qty: dec("3"), Price: dec("0.0333")},               // total 0.0999 → 0.10
			{Item: "cheese", Qty: dec("1.237"), Price: dec("9.9999")},         // 12.369876… → 12.37, 21%
			{Item: "milk", Qty: dec("1"), Price: dec("0.05"), VATRate: &nine}, // 0.05 at 9.5%
			{Item: "milk", Qty: dec("1"), Price: dec("1.01"), VATRate: &zero}, // an explicit 0%
		}}
	der, err := b.post(out)
	if err != nil {
		t.Fatal(err)
	}
	eur := storeline.MoneyAsset("EUR")
	want := decimal.Zero
	for _, l := range out.Lines {
		want = want.Add(l.Qty.Mul(l.Price).Round(2))
	}
	sums := func(what string, ps []storeline.Posting) {
		t.Helper()
		for a, s := range sumsByAsset(ps) {
			if !s.IsZero() {
				t.Errorf("%s: asset %s nets to %s", what, a, s)
			}
		}
	}
	sums("invoice", der.Postings)
	var recv, revVAT decimal.Decimal
	for _, p := range der.Postings {
		switch {
		case p.Account == "receivable/b1" && p.Asset == eur:
			recv = recv.Add(p.Amount)
		case (p.Account == "revenue/s1" || len(p.Account) > 6 && p.Account[:6] == "vat/s1") && p.Asset == eur:
			revVAT = revVAT.Add(p.Amount)
		}
	}
	if !recv.Equal(want) || !revVAT.Neg().Equal(want) {
		t.Fatalf("receivable %s, revenue+VAT %s, want both %s: %v", recv, revVAT.Neg(), want, der.Postings)
	}
	ret := &storeline.Document{ID: "r1", Type: storeline.DocBuyerReturn, Store: "s1", Buyer: "b1",
		Lines: []storeline.DocumentLine{{Item: "cheese", Qty: dec("0.5"), Price: dec("9.9999")}}}
	rd, err := b.post(ret)
	if err != nil {
		t.Fatal(err)
	}
	sums("return", rd.Postings)
	for i, ps := range [][]storeline.Posting{storeline.CancelPostings(rd.Postings), storeline.CancelPostings(der.Postings)} {
		sums(fmt.Sprint("cancel ", i), ps)
		b.apply(ps)
	}
	if got := b.Balance("receivable/b1", eur); !got.IsZero() {
		t.Fatalf("receivable after both cancels = %s, want 0", got)
	}
}

package storeline_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// buyerBook is memBook with buyers.
type buyerBook struct {
	*memBook
	buyers map[storeline.BuyerID]bool
}

func (b *buyerBook) Buyer(id storeline.BuyerID) bool { return b.buyers[id] }

func (b *buyerBook) post(d *storeline.Document) (*storeline.Derived, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	der, err := storeline.PostDocument(b, d)
	if err != nil {
		return nil, err
	}
	b.apply(der.Postings)
	return der, nil
}

func sumsByAsset(ps []storeline.Posting) map[storeline.Asset]decimal.Decimal {
	m := map[storeline.Asset]decimal.Decimal{}
	for _, p := range ps {
		m[p.Asset] = m[p.Asset].Add(p.Amount)
	}
	return m
}

// An outgoing invoice moves units to sold at their moving-average cost,
// debits the buyer's receivable by the total (VAT included), credits
// revenue and output VAT; its cancel and a buyer return reverse it; every
// asset nets to zero.
func TestOutgoingInvoicePostings(t *testing.T) {
	b := &buyerBook{memBook: newMemBook(), buyers: map[storeline.BuyerID]bool{"b1": true}}
	in := &storeline.Document{ID: "in1", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "sup1",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("10"), PurchasePrice: dec("1.10")}}} // net 1.00 a unit
	if _, err := b.post(in); err != nil {
		t.Fatal(err)
	}
	out := &storeline.Document{ID: "out1", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1", DueOn: "2026-12-31",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("4"), Price: dec("2.20")}}}
	der, err := b.post(out)
	if err != nil {
		t.Fatal(err)
	}
	for a, s := range sumsByAsset(der.Postings) {
		if !s.IsZero() {
			t.Errorf("asset %s nets to %s", a, s)
		}
	}
	eur, milk := storeline.MoneyAsset("EUR"), storeline.ItemAsset("milk")
	for _, c := range []struct {
		acct  string
		asset storeline.Asset
		want  string
	}{
		{"receivable/b1", eur, "8.8"},
		{"revenue/s1", eur, "-8"},
		{storeline.VATAccount("s1", dec("10")), eur, "-0.8"},
		{"cogs/s1/milk", eur, "4"},
		{"stock/s1/main/milk", eur, "6"},
		{"stock/s1/main/milk", milk, "6"},
		{"sold/s1/milk", milk, "4"},
	} {
		if got := b.Balance(c.acct, c.asset); !got.Equal(dec(c.want)) {
			t.Errorf("%s %s = %s, want %s", c.acct, c.asset, got, c.want)
		}
	}
	ret := &storeline.Document{ID: "ret1", Type: storeline.DocBuyerReturn, Store: "s1", Buyer: "b1",
		Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("1"), Price: dec("2.20")}}}
	if _, err := b.post(ret); err != nil {
		t.Fatal(err)
	}
	if got := b.Balance("receivable/b1", eur); !got.Equal(dec("6.6")) {
		t.Errorf("receivable after return = %s, want 6.6", got)
	}
	if got := b.Balance("stock/s1/main/milk", eur); !got.Equal(dec("7")) {
		t.Errorf("stock value after return = %s, want 7 (back at cost)", got)
	}
	b.apply(storeline.CancelPostings(der.Postings))
	if got := b.Balance("receivable/b1", eur); !got.Equal(dec("-2.2")) {
		t.Errorf("receivable after the invoice's cancel = %s, want -2.2 (the return's credit)", got)
	}
}

func TestOutgoingInvoiceRefusals(t *testing.T) {
	b := &buyerBook{memBook: newMemBook(), buyers: map[storeline.BuyerID]bool{"b1": true}}
	line := []storeline.DocumentLine{{Item: "milk", Qty: dec("1"), Price: dec("2")}}
	for _, c := range []struct {
		doc   storeline.Document
		field string
	}{
		{storeline.Document{ID: "x", Type: storeline.DocOutgoingInvoice, Store: "s1", Lines: line}, "buyer"},
		{storeline.Document{ID: "x", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "nobody", Lines: line}, "buyer"},
		{storeline.Document{ID: "x", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1", DueOn: "31.12.2026", Lines: line}, "due_on"},
		{storeline.Document{ID: "x", Type: storeline.DocBuyerReturn, Store: "s1", Buyer: "b1", DueOn: "2026-12-31", Lines: line}, "due_on"},
		{storeline.Document{ID: "x", Type: storeline.DocWriteOff, Store: "s1", Buyer: "b1", Reason: "r", Lines: line}, "buyer"},
		{storeline.Document{ID: "x", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1",
			Lines: []storeline.DocumentLine{{Item: "milk", Qty: dec("1")}}}, "lines[0].price"},
	} {
		_, err := b.post(&c.doc)
		if storeline.FieldOf(err) != c.field {
			t.Errorf("%+v: err %v, want one naming %s", c.doc, err, c.field)
		}
	}
	// A book that cannot say which buyers there are posts none.
	d := storeline.Document{ID: "x", Type: storeline.DocOutgoingInvoice, Store: "s1", Buyer: "b1", Lines: line}
	if _, err := storeline.PostDocument(b.memBook, &d); storeline.FieldOf(err) != "buyer" {
		t.Errorf("book without buyers: %v", err)
	}
}

package storeline_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"
	msgpackv5 "github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// TestReview49ReturnNamesItsInvoice: a buyer return may name the outgoing
// invoice it returns; a document of another type naming one, or an
// invoice that is not an ID, is refused naming invoice. A document naming
// none encodes as before the field existed.
func TestReview49ReturnNamesItsInvoice(t *testing.T) {
	doc := func(typ storeline.DocType, invoice string) *storeline.Document {
		d := &storeline.Document{ID: "r1", Type: typ, Store: "s1", Invoice: invoice,
			Lines: []storeline.DocumentLine{{Item: "milk", Qty: decimal.NewFromInt(2), Price: decimal.RequireFromString("2.20")}}}
		switch typ {
		case storeline.DocOutgoingInvoice, storeline.DocBuyerReturn:
			d.Buyer = "b1"
		case storeline.DocIncomingInvoice, storeline.DocSupplierReturn:
			d.Supplier = "p1"
		case storeline.DocWriteOff:
			d.Reason = "broken"
		}
		return d
	}
	for _, inv := range []string{"out-1", ""} {
		if err := doc(storeline.DocBuyerReturn, inv).Validate(); err != nil {
			t.Fatalf("a buyer return naming invoice %q: %v", inv, err)
		}
	}
	for _, d := range []*storeline.Document{
		doc(storeline.DocBuyerReturn, "out 1!"),
		doc(storeline.DocOutgoingInvoice, "out-1"),
		doc(storeline.DocSupplierReturn, "out-1"),
		doc(storeline.DocWriteOff, "out-1"),
	} {
		var e *storeline.Error
		if err := d.Validate(); !errors.As(err, &e) || e.Field != "invoice" || e.Kind != storeline.Invalid {
			t.Errorf("%s naming invoice %q: %v, want invalid naming invoice", d.Type, d.Invoice, err)
		}
	}

	// The field is optional in the FSM's encoding: a document naming no
	// invoice carries no key for it (its bytes are those of before, so
	// an entry created again compares equal), one naming it does.
	for _, tc := range []struct {
		invoice string
		has     bool
	}{{"", false}, {"out-1", true}} {
		enc, err := msgpackv5.Marshal(doc(storeline.DocBuyerReturn, tc.invoice))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := msgpackv5.Unmarshal(enc, &m); err != nil {
			t.Fatal(err)
		}
		if v, ok := m["Invoice"]; ok != tc.has || (ok && v != tc.invoice) {
			t.Errorf("encoded with invoice %q: key %v (%v), want %v", tc.invoice, ok, v, tc.has)
		}
	}
}

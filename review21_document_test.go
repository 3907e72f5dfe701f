package storeline_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// TestReview21DraftNamesItsOrder: an incoming invoice drafted at a till may
// name the purchase order it delivers; any other draft naming one, or an
// order that is not an ID, is refused naming order.
func TestReview21DraftNamesItsOrder(t *testing.T) {
	draft := func(typ storeline.DocType, order string) *storeline.DocumentDraft {
		d := &storeline.DocumentDraft{Type: typ, Terminal: "t1", Seller: "s1", Currency: "EUR", Order: order,
			Lines: []storeline.DocLine{{Item: "milk", Unit: storeline.Piece, Qty: decimal.NewFromInt(12)}}}
		switch typ {
		case storeline.DocIncomingInvoice, storeline.DocSupplierReturn:
			d.Supplier = "dairy"
		case storeline.DocWriteOff:
			d.Reason = "broken"
		}
		return d
	}
	if err := draft(storeline.DocIncomingInvoice, "po-1").Validate(); err != nil {
		t.Fatalf("an invoice naming its order: %v", err)
	}
	if err := draft(storeline.DocIncomingInvoice, "").Validate(); err != nil {
		t.Fatalf("an invoice naming no order: %v", err)
	}
	for _, d := range []*storeline.DocumentDraft{
		draft(storeline.DocIncomingInvoice, "po 1!"),
		draft(storeline.DocSupplierReturn, "po-1"),
		draft(storeline.DocWriteOff, "po-1"),
		draft(storeline.DocRequest, "po-1"),
	} {
		var e *storeline.Error
		if err := d.Validate(); !errors.As(err, &e) || e.Field != "order" {
			t.Errorf("%s naming order %q: %v, want Invalid naming order", d.Type, d.Order, err)
		}
	}
}

package storeline_test

import (
	"errors"
	"testing"

	"github.com/storeline/storeline"
)

func TestReceiptCompute(t *testing.T) {
	r := saleReceipt()
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	// milk 2×1.19 = 2.38; cheese round(0.347×15.90 = 5.5173) = 5.52 − 0.50 = 5.02; wine 9.99.
	for i, want := range []string{"2.38", "5.02", "9.99"} {
		if !r.Lines[i].Total.Equal(dec(want)) {
			t.Errorf("line %d total = %s, want %s", i, r.Lines[i].Total, want)
		}
	}
	// VAT: 2.38×10/110 = 0.2164 → 0.22; 5.02×10/110 = 0.4564 → 0.46; 9.99×20/120 = 1.665 → 1.67 (half away from zero).
	for i, want := range []string{"0.22", "0.46", "1.67"} {
		if !r.Lines[i].VAT.Equal(dec(want)) {
			t.Errorf("line %d VAT = %s, want %s", i, r.Lines[i].VAT, want)
		}
	}
	if !r.Total.Equal(dec("17.39")) || !r.Change.Equal(dec("12.61")) {
		t.Fatalf("total %s change %s, want 17.39 and 12.61", r.Total, r.Change)
	}
	if len(r.VAT) != 2 || !r.VAT[0].Gross.Equal(dec("7.40")) || !r.VAT[0].VAT.Equal(dec("0.68")) || !r.VAT[1].VAT.Equal(dec("1.67")) {
		t.Fatalf("VAT per rate = %+v", r.VAT)
	}
}

func TestReceiptComputeRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*storeline.Receipt)
		field string
	}{
		{"no lines", func(r *storeline.Receipt) { r.Lines = nil }, "lines"},
		{"zero qty", func(r *storeline.Receipt) { r.Lines[0].Qty = dec("0") }, "lines[0].qty"},
		{"negative qty", func(r *storeline.Receipt) { r.Lines[0].Qty = dec("-1") }, "lines[0].qty"},
		{"fractional piece", func(r *storeline.Receipt) { r.Lines[0].Qty = dec("1.5") }, "lines[0].qty"},
		{"too many qty places", func(r *storeline.Receipt) { r.Lines[1].Qty = dec("0.3471") }, "lines[1].qty"},
		{"price cents", func(r *storeline.Receipt) { r.Lines[0].Price = dec("1.191") }, "lines[0].price"},
		{"negative price", func(r *storeline.Receipt) { r.Lines[0].Price = dec("-1") }, "lines[0].price"},
		{"discount over line", func(r *storeline.Receipt) { r.Lines[0].Discount = dec("3") }, "lines[0].discount"},
		{"bad VAT", func(r *storeline.Receipt) { r.Lines[0].VATRate = dec("100") }, "lines[0].vat_rate"},
		{"short", func(r *storeline.Receipt) { r.Payments[1].Amount = dec("7") }, "payments"},
		{"card over total", func(r *storeline.Receipt) { r.Payments[0].Amount = dec("20") }, "payments"},
		{"zero payment", func(r *storeline.Receipt) { r.Payments[0].Amount = dec("0") }, "payments[0].amount"},
		{"points without points", func(r *storeline.Receipt) { r.Payments[0].Method = storeline.Points }, "payments[0].points"},
		{"points without a card", func(r *storeline.Receipt) {
			r.Payments[0].Method, r.Payments[0].Points = storeline.Points, 10
		}, "card"},
		{"points without a programme", func(r *storeline.Receipt) {
			r.Payments[0].Method, r.Payments[0].Points, r.Customer = storeline.Points, 10, "c1"
		}, "programme"},
		{"negative accrual", func(r *storeline.Receipt) { r.Earned = -1 }, "earned"},
		{"unknown method", func(r *storeline.Receipt) { r.Payments[0].Method = "cheque" }, "payments[0].method"},
		{"no payments", func(r *storeline.Receipt) { r.Payments = nil }, "payments"},
		{"bad currency", func(r *storeline.Receipt) { r.Currency = "eur" }, "currency"},
		{"bad terminal", func(r *storeline.Receipt) { r.Terminal = "a/b" }, "terminal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := saleReceipt()
			c.edit(r)
			err := r.Compute()
			if !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != c.field {
				t.Fatalf("Compute = %v (field %q), want Invalid naming %s", err, storeline.FieldOf(err), c.field)
			}
		})
	}
}

func TestReceiptExactPayment(t *testing.T) {
	r := saleReceipt()
	r.Payments = []storeline.Payment{{Method: storeline.Card, Amount: dec("17.39")}}
	if err := r.Compute(); err != nil || !r.Change.IsZero() {
		t.Fatalf("Compute = %v, change %s", err, r.Change)
	}
}

func TestReturnCompute(t *testing.T) {
	rt := &storeline.Return{
		Terminal: "t1", Shift: "sh1", Seller: "alice", Manager: "bob", Currency: "EUR",
		Lines:   []storeline.Line{{Item: "milk", Dept: "food", Unit: storeline.Piece, Qty: dec("1"), Price: dec("1.19"), VATRate: dec("10")}},
		Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.20")}},
	}
	if err := rt.Compute(); !errors.Is(err, storeline.Invalid) || storeline.FieldOf(err) != "refunds" {
		t.Fatalf("Compute = %v, want Invalid naming refunds", err)
	}
	rt.Refunds[0].Amount = dec("1.19")
	if err := rt.Compute(); err != nil {
		t.Fatal(err)
	}
}

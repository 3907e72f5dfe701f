package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
)

// The workload every store contender commits: one receipt of receiptLines
// distinct items (qty 1 to 3 each, at the price list's price) paid by two
// tenders, cash and card, with the stock of every line's item decremented.
const (
	receiptLines = 5
	benchStore   = storeline.StoreID("shop-1")
	benchSeller  = storeline.SellerID("cashier-1")
	benchShift   = storeline.ShiftID("shift-1")
)

// stockItem is an item of the sample chain as the workload sells it.
type stockItem struct {
	ID    storeline.ItemID
	SKU   string
	Dept  storeline.DeptID
	VAT   decimal.Decimal
	Price decimal.Decimal
}

// workload draws receipts over the sample chain's items sold by the piece.
type workload struct {
	chain *sample.Chain
	items []stockItem
	skus  map[storeline.ItemID]string
}

func newWorkload() *workload {
	c := sample.New(benchStore)
	w := &workload{chain: c, skus: map[storeline.ItemID]string{}}
	prices := map[storeline.ItemID]decimal.Decimal{}
	for _, p := range c.Prices {
		prices[p.Item] = p.Price
	}
	for _, it := range c.Items {
		if it.Weighed || it.Unit != storeline.Piece {
			continue
		}
		w.items = append(w.items, stockItem{ID: it.ID, SKU: it.SKU, Dept: it.Dept, VAT: it.VATRate, Price: prices[it.ID]})
		w.skus[it.ID] = it.SKU
	}
	// Index order is item order: receipts list their lines by index.
	slices.SortFunc(w.items, func(a, b stockItem) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return w
}

// receipt returns a computed receipt from terminal term: receiptLines
// distinct items in ascending item order (so SQL peers lock stock rows in one
// order and never deadlock), cash for about half the total and card for the
// rest.
func (w *workload) receipt(rng *rand.Rand, term storeline.TerminalID) *storeline.Receipt {
	idx := make([]int, 0, receiptLines)
	for len(idx) < receiptLines {
		i := rng.IntN(len(w.items))
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	r := &storeline.Receipt{Terminal: term, Shift: benchShift, Seller: benchSeller, Currency: "EUR"}
	total := decimal.Zero
	for _, i := range idx {
		it := w.items[i]
		qty := decimal.NewFromInt(int64(1 + rng.IntN(3)))
		r.Lines = append(r.Lines, storeline.Line{
			Item: it.ID, Dept: it.Dept, Unit: storeline.Piece, Qty: qty, Price: it.Price, VATRate: it.VAT,
		})
		total = total.Add(qty.Mul(it.Price))
	}
	cash := total.Div(decimal.NewFromInt(2)).Round(2)
	r.Payments = []storeline.Payment{
		{Method: storeline.Cash, Amount: cash},
		{Method: storeline.Card, Amount: total.Sub(cash), Reference: fmt.Sprintf("ref-%d", rng.Uint32())},
	}
	if err := r.Compute(); err != nil {
		panic(fmt.Sprintf("bench: workload receipt does not compute: %v", err)) // the workload is ours: a bug
	}
	return r
}

// receiptEvent wraps a receipt as the till's event.
func receiptEvent(r *storeline.Receipt, at time.Time) storeline.Event {
	return storeline.Event{
		ID: storeline.NewEventID(), Kind: storeline.KindReceipt, Body: r,
		OccurredAt: at.UTC(), BusinessDate: storeline.Date(at.UTC().Format("2006-01-02")),
	}
}

// unitsSold is the total quantity a receipt takes from stock.
func unitsSold(r *storeline.Receipt) decimal.Decimal {
	q := decimal.Zero
	for _, l := range r.Lines {
		q = q.Add(l.Qty)
	}
	return q
}

// sku returns the SKU of one of the workload's items.
func (w *workload) sku(id storeline.ItemID) string { return w.skus[id] }

package central_test

import (
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// review19World is a one-node cluster with shops s1 and s2 (s1 with a
// second department, deli) taking pushes from s1.
func review19World(t *testing.T) (a, repl string) {
	t.Helper()
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a = n.APIAddr()
	seedBackOffice(t, a)
	mustOK(t, apiDo(t, "PUT", a, "/v1/stores/s1", adminKey, map[string]any{
		"name": "Shop 1", "time_zone": "Europe/Riga", "currency": "EUR",
		"departments": []any{map[string]any{"id": "main", "name": "Main"}, map[string]any{"id": "deli", "name": "Deli"}},
		"price_lists": []string{"retail"},
	}, nil))
	return a, n.ReplicationAddr()
}

// reconcileMilk checks that s1's cost of sales (the cogs account) plus
// its closing stock value of milk is what came in at cost (opening zero).
func reconcileMilk(t *testing.T, a string, receipts string) {
	t.Helper()
	cogs := balances(t, a)["cogs/s1/milk cur:EUR"]
	_, value := stockOf(t, a, "s1", "milk")
	if !cogs.Add(value).Equal(dec(receipts)) {
		t.Fatalf("cost of sales %s + closing stock value %s = %s, want receipts at cost %s", cogs, value, cogs.Add(value), receipts)
	}
}

func wantCOGS(t *testing.T, a, want string) {
	t.Helper()
	if got := balances(t, a)["cogs/s1/milk cur:EUR"]; !got.Equal(dec(want)) {
		t.Fatalf("cogs/s1/milk = %s, want %s", got, want)
	}
}

// TestReview19TransferReceiptRecostsShortfall: s1 bought 1 milk at 3.00
// and sold 3 (9.00 at cost: 2 short worth -6.00). A transfer from s2
// brings 2 milk at s2's cost, 1.00 each. Like an invoice of 2 at 1.00
// (recostShort), the receipt covers the shortfall at its own cost: s1
// holds 0 milk worth 0 (not -4.00 on no units), and cost of sales is 5.00
// (3.00 + 2 × 1.00), whichever department the units land in. Cancelling
// the receipt restores the books.
func TestReview19TransferReceiptRecostsShortfall(t *testing.T) {
	t.Parallel()
	for _, into := range []string{"main", "deli"} {
		t.Run("into "+into, func(t *testing.T) {
			a, repl := review19World(t)
			createAndPost(t, a, "inv-s1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
				"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30"})})
			pushOK(t, repl, milkSales(t, "s1", 1, 3))
			wantStock(t, a, "s1", "milk", "-2", "-6")
			createAndPost(t, a, "inv-s2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
				"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
			createAndPost(t, a, "tr", map[string]any{"type": "transfer", "store": "s2", "to_store": "s1",
				"lines": lines(map[string]any{"item": "milk", "qty": "2"})})
			before := balances(t, a)

			createAndPost(t, a, "rc", map[string]any{"type": "transfer_receipt", "store": "s1", "shipment": "tr", "to_dept": into,
				"lines": lines(map[string]any{"item": "milk", "qty": "2"})})
			wantStock(t, a, "s1", "milk", "0", "0")
			wantCOGS(t, a, "5")
			reconcileMilk(t, a, "5") // 3.00 invoiced + 2.00 received

			mustOK(t, apiDo(t, "POST", a, "/v1/documents/rc/cancel", adminKey, nil, nil))
			sameBalances(t, "after cancelling the receipt", balances(t, a), before)
		})
	}
}

// TestReview19TransferReceiptCoversPart: the same shortfall (2 worth
// -6.00) and a receipt of 3 at 1.00: 2 cover it at 1.00, re-costing the
// sales by -4.00, and 1 stays on the shelf worth 1.00.
func TestReview19TransferReceiptCoversPart(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv-s1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30"})})
	pushOK(t, repl, milkSales(t, "s1", 1, 3))
	createAndPost(t, a, "inv-s2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	createAndPost(t, a, "tr", map[string]any{"type": "transfer", "store": "s2", "to_store": "s1",
		"lines": lines(map[string]any{"item": "milk", "qty": "3"})})
	createAndPost(t, a, "rc", map[string]any{"type": "transfer_receipt", "store": "s1", "shipment": "tr",
		"lines": lines(map[string]any{"item": "milk", "qty": "3"})})
	wantStock(t, a, "s1", "milk", "1", "1")
	wantCOGS(t, a, "5")
	reconcileMilk(t, a, "6")
}

// TestReview19ReturnIntoShortStock: s1 bought 1 milk at 1.00, sold 3 (2
// short worth -2.00), then an invoice of 1 at 3.00 re-costed 1 of them
// (1 short worth -1.00, last cost 3.00). A customer returns 1 milk: it
// covers the unit sold short and comes back at what it went out at, 1.00,
// as a stocktake's surplus while short would: s1 holds 0 milk worth
// 0, not 2.00 on no units, and cost of sales is 4.00 (the receipts at
// cost), not 2.00.
func TestReview19ReturnIntoShortStock(t *testing.T) {
	a, repl := review19World(t)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "1.10"})})
	pushOK(t, repl, milkSales(t, "s1", 1, 3))
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "milk", "qty": "1", "purchase_price": "3.30"})})
	wantStock(t, a, "s1", "milk", "-1", "-1")
	wantCOGS(t, a, "5")

	pushOK(t, repl, eventsPush(t, "s1", 4, milkReturn(t, "1")))
	wantStock(t, a, "s1", "milk", "0", "0")
	wantCOGS(t, a, "4")
	reconcileMilk(t, a, "4")

	// A return beyond the shortfall comes back at the last cost.
	pushOK(t, repl, eventsPush(t, "s1", 5, milkReturn(t, "2")))
	wantStock(t, a, "s1", "milk", "2", "6")
	wantCOGS(t, a, "-2")
	reconcileMilk(t, a, "4")
}

// TestReview19ProductionRecostsShortfall: s1 made 10 bread for 5.00
// (0.50 each) and sold 12: the last 2 short, at no cost (bread has no
// purchase cost: a production sets none). The next batch of 10 costs
// 10.00 (flour at 2.00): the 2 that cover the shortfall cost 2.00,
// re-costing the sales by +2.00, as an invoice would, and 8 stay worth
// 8.00 (not 10.00 on 8 units: every unit of one making costs the same).
func TestReview19ProductionRecostsShortfall(t *testing.T) {
	a, repl := review19World(t)
	mustOK(t, apiDo(t, "PUT", a, "/v1/recipes/bread", adminKey, map[string]any{"yield": "10",
		"components": []any{map[string]any{"item": "flour", "qty": "5"}}}, nil))
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "5", "purchase_price": "1.10"})})
	createAndPost(t, a, "pr1", map[string]any{"type": "production", "store": "s1", "lines": lines(map[string]any{"item": "bread", "qty": "10"})})
	wantStock(t, a, "s1", "bread", "10", "5")
	sales := make([]storeline.Line, 12)
	for i := range sales {
		sales[i] = storeline.Line{Item: "bread", Dept: "main"}
	}
	pushOK(t, repl, salesPush(t, "s1", 1, sales...))
	wantStock(t, a, "s1", "bread", "-2", "0")

	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s1", "supplier": "p1",
		"lines": lines(map[string]any{"item": "flour", "qty": "5", "purchase_price": "2.20"})})
	createAndPost(t, a, "pr2", map[string]any{"type": "production", "store": "s1", "lines": lines(map[string]any{"item": "bread", "qty": "10"})})
	wantStock(t, a, "s1", "bread", "8", "8")
	if got := balances(t, a)["cogs/s1/bread cur:EUR"]; !got.Equal(dec("7")) {
		t.Fatalf("cogs/s1/bread = %s, want 7.00 (10 at 0.50, 2 at 1.00)", got)
	}
}

package chain

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
)

// The demo's wholesale: once the opening stock is in, head office sells a
// few units of it from one shop to a buyer on account (an outgoing
// invoice, PUT /v1/documents/{id} and POST .../post), takes part of it
// back (a buyer return) and books the buyer's payment of part of what is
// left (POST /v1/buyer_payments). A posted document is one central-authored
// event touching the shop's stock, sold, cogs, revenue and VAT accounts,
// so replication carries it to the shop's ledger as it carries the
// opening invoices (central's touched: receivable/<buyer> belongs to no
// shop, the rest to the shop); the payment moves only receivable/<buyer>
// and bank/<bank>, which no shop holds, and stays at head office. The
// closing check therefore takes the wholesale out of what it compares
// with the tills and the turnover report, and keeps it in the margin
// report's comparison, whose wholesale rows must account for it.

// The demo's buyer and the bank it pays into.
const (
	Buyer = "demo-cafe"
	Bank  = "demo-bank"
)

// wholesaleItems is how many of the catalogue's counted items (sold by
// the piece, so every quantity below is whole) the invoice sells.
const wholesaleItems = 3

// wholesaleQty and returnQty are the units of each item the invoice sells
// and of the first the buyer returns.
var wholesaleQty, returnQty = decimal.NewFromInt(5), decimal.NewFromInt(2)

// wholesaleShare is the wholesale price as a share of the base list price
// (VAT included in both): below retail, above the purchase cost.
var wholesaleShare = decimal.RequireFromString("0.8")

// wholesale is what the wholesale step booked at one shop, as central's
// postings of its documents and payment said: the check's truth for it.
// A shop without wholesale has the zero value.
type wholesale struct {
	buyer    storeline.BuyerID
	currency storeline.Currency
	// units is, per item, what the documents moved out of the shop's
	// stock into its sold account (net of the return).
	units map[storeline.ItemID]decimal.Decimal
	// revenue is what they moved into revenue/<store> (net of VAT, the
	// account's balance negated), gross that with the output VAT, cost
	// what they moved into cogs/<store>/.
	revenue, gross, cost decimal.Decimal
	// invoiced, returned and paid are what the invoice, the return and
	// the payment moved on receivable/<buyer> (the return's and the
	// payment's positive): the buyer owes invoiced − returned − paid.
	invoiced, returned, paid decimal.Decimal
	documents                int // documents posted
}

// owed is what the buyer's statement must close at.
func (w wholesale) owed() decimal.Decimal { return w.invoiced.Sub(w.returned).Sub(w.paid) }

// sold reports whether the shop sold wholesale.
func (w wholesale) sold() bool { return w.buyer != "" }

// wholesaleLines returns the invoice's lines for shop i: the first
// wholesaleItems counted items of the opening invoices' lines the shop
// holds units of. It runs before the tills start, so what the shop holds
// is what its opening invoices brought (c.received): nothing else has
// moved its stock yet, and every line is covered.
func (c *Chain) wholesaleLines(i int) []map[string]any {
	base := map[storeline.ItemID]decimal.Decimal{}
	for _, p := range c.data.Prices {
		if p.List == "base" && p.Price.IsPositive() {
			base[p.Item] = p.Price
		}
	}
	var lines []map[string]any
	for _, it := range c.data.Items {
		price, ok := base[it.ID]
		if !ok || it.Unit.Fractional() || c.received[i][it.ID].LessThan(wholesaleQty) {
			continue
		}
		price = price.Mul(wholesaleShare).Round(2)
		if !price.IsPositive() {
			continue
		}
		lines = append(lines, map[string]any{"item": string(it.ID), "qty": wholesaleQty.String(), "price": price.StringFixed(2)})
		if len(lines) == wholesaleItems {
			break
		}
	}
	return lines
}

// sellWholesale runs the wholesale step at the first shop: the buyer and
// the bank in the master data, an outgoing invoice of wholesaleLines, a
// return of returnQty of its first line, and a payment of half what the
// buyer then owes. Every request is idempotent (fixed document and
// payment IDs, fixed idempotency keys), so a retry books nothing twice.
// It records what was booked in c.wholesale.
func (c *Chain) sellWholesale(ctx context.Context) error {
	t0 := time.Now()
	c.wholesale = make([]wholesale, len(c.shops))
	if len(c.shops) == 0 {
		return nil
	}
	s := c.shops[0]
	lines := c.wholesaleLines(0)
	if len(lines) == 0 {
		return fmt.Errorf("chain: wholesale at %s: no counted item in stock to sell", s.ID)
	}
	cur := c.currencyOf(s.ID)
	if err := c.ho.do(ctx, "PUT", "/v1/buyers/"+Buyer, "demo-buyer", map[string]any{"name": "Demo Cafe Ltd"}, nil); err != nil {
		return fmt.Errorf("chain: buyer: %w", err)
	}
	if err := c.ho.do(ctx, "PUT", "/v1/banks/"+Bank, "demo-bank", map[string]any{"name": "Demo Bank"}, nil); err != nil {
		return fmt.Errorf("chain: bank: %w", err)
	}
	w := wholesale{buyer: Buyer, currency: cur, units: map[storeline.ItemID]decimal.Decimal{}}
	invoice := "wholesale-" + string(s.ID) + "-1"
	ret := "wholesale-return-" + string(s.ID) + "-1"
	back := map[string]any{"item": lines[0]["item"], "qty": returnQty.String(), "price": lines[0]["price"]}
	for _, d := range []struct {
		id  string
		doc map[string]any
	}{
		{invoice, map[string]any{"type": "outgoing_invoice", "store": string(s.ID), "buyer": Buyer, "number": "W-" + string(s.ID) + "-1",
			"due_on": time.Now().UTC().AddDate(0, 0, 14).Format(time.DateOnly), "note": "wholesale of the demo", "lines": lines}},
		{ret, map[string]any{"type": "buyer_return", "store": string(s.ID), "buyer": Buyer, "number": "WR-" + string(s.ID) + "-1",
			"note": "part of " + invoice + " back", "lines": []map[string]any{back}}},
	} {
		owed, err := c.postWholesale(ctx, s.ID, d.id, d.doc, &w)
		if err != nil {
			return err
		}
		if d.id == invoice {
			w.invoiced = owed
		} else {
			w.returned = owed.Neg()
		}
	}
	pay := w.invoiced.Sub(w.returned).Div(decimal.NewFromInt(2)).Round(2)
	payID := "wholesale-payment-" + string(s.ID) + "-1"
	var paid struct {
		Amount decimal.Decimal `json:"amount"`
	}
	if err := c.ho.do(ctx, "POST", "/v1/buyer_payments", "demo-"+payID, map[string]any{
		"id": payID, "buyer": Buyer, "bank": Bank, "currency": string(cur), "amount": pay.StringFixed(2),
		"paid_on": time.Now().UTC().Format(time.DateOnly), "reference": invoice,
	}, &paid); err != nil {
		return fmt.Errorf("chain: buyer payment %s: %w", payID, err)
	}
	w.paid = paid.Amount
	c.wholesale[0] = w
	c.say("head office: wholesale at %s: an outgoing invoice to %s of %s units each of %d items for %s, a buyer return of %s units for %s and a payment of %s; revenue %s net of VAT at cost %s; %s owes %s (%s)",
		s.ID, Buyer, wholesaleQty, len(lines), w.invoiced.StringFixed(2), returnQty, w.returned.StringFixed(2), w.paid.StringFixed(2),
		w.revenue.StringFixed(2), w.cost.StringFixed(2), Buyer, w.owed().StringFixed(2), time.Since(t0).Round(time.Millisecond))
	return nil
}

// postWholesale creates and posts document id of store, adds what its
// postings moved to w, and returns what it moved on the buyer's
// receivable (positive: the buyer owes more).
func (c *Chain) postWholesale(ctx context.Context, store storeline.StoreID, id string, doc map[string]any, w *wholesale) (decimal.Decimal, error) {
	if err := c.ho.do(ctx, "PUT", "/v1/documents/"+id, "demo-"+id, doc, nil); err != nil {
		return decimal.Zero, fmt.Errorf("chain: %s %s: %w", doc["type"], id, err)
	}
	var posted struct {
		Postings []struct {
			Account string          `json:"account"`
			Asset   string          `json:"asset"`
			Amount  decimal.Decimal `json:"amount"`
		} `json:"postings"`
	}
	if err := c.ho.do(ctx, "POST", "/v1/documents/"+id+"/post", "demo-"+id+"-post", nil, &posted); err != nil {
		return decimal.Zero, fmt.Errorf("chain: post %s %s: %w", doc["type"], id, err)
	}
	stock, cogs, vat := "stock/"+string(store)+"/", "cogs/"+string(store)+"/", "vat/"+string(store)+"/"
	money := string(storeline.MoneyAsset(w.currency))
	owed := decimal.Zero
	for _, p := range posted.Postings {
		if item, ok := stockItem(stock, p.Account, p.Asset); ok {
			w.units[item] = w.units[item].Sub(p.Amount)
			continue
		}
		if p.Asset != money {
			continue
		}
		switch {
		case p.Account == storeline.RevenueAccount(store):
			w.revenue, w.gross = w.revenue.Sub(p.Amount), w.gross.Sub(p.Amount)
		case strings.HasPrefix(p.Account, vat):
			w.gross = w.gross.Sub(p.Amount)
		case strings.HasPrefix(p.Account, cogs):
			w.cost = w.cost.Add(p.Amount)
		case p.Account == storeline.ReceivableAccount(w.buyer):
			owed = owed.Add(p.Amount)
		}
	}
	for item, q := range w.units {
		if q.IsZero() {
			delete(w.units, item)
		}
	}
	w.documents++
	return owed, nil
}

// currencyOf returns the currency store keeps its books in.
func (c *Chain) currencyOf(store storeline.StoreID) storeline.Currency {
	for _, st := range c.data.Stores {
		if st.ID == store {
			return st.Currency
		}
	}
	return ""
}

// wholesaleOf returns what the wholesale step booked at shop i (the zero
// value when it sold nothing there, or did not run).
func (c *Chain) wholesaleOf(i int) wholesale {
	if i < len(c.wholesale) {
		return c.wholesale[i]
	}
	return wholesale{}
}

// openingStock returns, per shop, the units of each item the tills start
// from: what the opening invoices brought less what the wholesale step
// sold net of its return.
func (c *Chain) openingStock() []map[storeline.ItemID]decimal.Decimal {
	out := make([]map[storeline.ItemID]decimal.Decimal, len(c.received))
	for i, got := range c.received {
		out[i] = map[storeline.ItemID]decimal.Decimal{}
		for item, q := range got {
			out[i][item] = q
		}
		for item, q := range c.wholesaleOf(i).units {
			out[i][item] = out[i][item].Sub(q)
		}
	}
	return out
}

// buyerOwes reads what the buyer's statement (GET
// /v1/buyers/{id}/statement, over every date) says it owes in cur at its
// close.
func (c *Chain) buyerOwes(ctx context.Context, buyer storeline.BuyerID, cur storeline.Currency) (decimal.Decimal, error) {
	var st struct {
		Closing decimal.Decimal `json:"closing"`
	}
	err := c.ho.do(ctx, "GET", "/v1/buyers/"+url.PathEscape(string(buyer))+"/statement?consistency=linearizable&currency="+url.QueryEscape(string(cur))+
		"&from=0001-01-01&to=9999-12-31", "", nil, &st)
	return st.Closing, err
}

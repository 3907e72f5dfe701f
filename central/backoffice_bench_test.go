package central

// Benchmarks of cost of sales with a long backlog: costing on push with
// running add-back sums (now) against lazy passes that re-read the whole
// backlog (before). make bench-backoffice; figures in BENCHMARKS.md.

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/testwait"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

var benchBacklog = flag.Int("backoffice.backlog", 2000, "sales in BenchmarkCostBacklog's backlog (make bench-backoffice: 20,000)")

// benchShop opens a node with a shop, its items and a large stock.
func benchShop(b *testing.B) *Node {
	cfg := DefaultConfig(b.TempDir())
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond
	n, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	testwait.For(b, "a leader", 10*time.Second, n.IsLeader)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"}, &storeline.Supplier{ID: "p1", Name: "P"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")},
		&storeline.Item{ID: "egg", SKU: "E", Name: "Egg", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")}); err != nil {
		b.Fatal(err)
	}
	for _, it := range []string{"milk", "egg"} {
		stock := storeline.StockAccount("s1", "food", storeline.ItemID(it))
		if _, err := n.Transfer(ctx, storeline.NewEventID(), "delivery", "", []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset(storeline.ItemID(it)), Amount: d("1000000")},
			{Account: "warehouse/" + it, Asset: storeline.ItemAsset(storeline.ItemID(it)), Amount: d("-1000000")},
			{Account: stock, Asset: "cur:EUR", Amount: d("2345678.91")},
			{Account: "warehouse/" + it, Asset: "cur:EUR", Amount: d("-2345678.91")},
		}); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// benchSales pushes count one-line receipts to n in batches of 500.
func benchSales(b *testing.B, n *Node, count int) {
	d := decimal.RequireFromString
	for seq := 1; seq <= count; seq += 500 {
		var evs []storeline.Event
		for i := seq; i < seq+500 && i <= count; i++ {
			item := storeline.ItemID("milk")
			if i%3 == 0 {
				item = "egg"
			}
			r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
				Lines:    []storeline.Line{{Item: item, Dept: "food", Unit: storeline.Piece, Qty: d("1"), Price: d("4"), VATRate: d("10")}},
				Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d("4")}}}
			if err := r.Compute(); err != nil {
				b.Fatal(err)
			}
			ps, err := storeline.DerivePostings("s1", r)
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: uint64(i), SchemaVersion: storeline.SchemaVersion,
				Kind: storeline.KindReceipt, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29", Body: r, Postings: ps})
		}
		if res, err := (backend{n}).Push(context.Background(), replication.Batch{Store: "s1", Epoch: 1, Events: evs}); err != nil || len(res.Rejections) != 0 {
			b.Fatalf("push: %+v, %v", res, err)
		}
	}
}

// benchPost posts an invoice (which costs the shop's sales first).
func benchPost(b *testing.B, n *Node, id string) {
	d := decimal.RequireFromString
	for _, op := range []struct {
		op string
		v  any
	}{
		{OpDocCreate, &storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1",
			Lines: []storeline.DocumentLine{{Item: "milk", Qty: d("100"), PurchasePrice: d("1.10")}}}},
		{OpDocPost, &docIDPayload{ID: id}},
	} {
		body, _ := msgpack.Marshal(op.v)
		res, err := n.Submit(context.Background(), op.op, "", body)
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			b.Fatalf("%s: %v", op.op, err)
		}
	}
}

// BenchmarkCostBacklog: a shop uploads a backlog of sales (say after a
// day offline), then head office posts an invoice for it.
//
//   - before: pushes apply the sales only (the push hook is off); the
//     post needs the backlog costed first, in passes of
//     MaxCostedPerEntry each re-reading the whole backlog (oldPlanCosts,
//     run as entries on the replica directly).
//   - after: each push entry costs its sales (add-back sums), the post
//     finds nothing to cost.
//
// Reported per run: push-s (uploading the backlog), cost-s (the passes
// the post needed), post-s, and ns/op their sum.
func BenchmarkCostBacklog(b *testing.B) {
	for _, mode := range []string{"before", "after"} {
		b.Run(fmt.Sprintf("%s/sales=%d", mode, *benchBacklog), func(b *testing.B) {
			var push, cost, post time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				n := benchShop(b)
				boHookOff.Store(mode == "before")
				b.StartTimer()
				t0 := time.Now()
				benchSales(b, n, *benchBacklog)
				t1 := time.Now()
				if mode == "before" {
					for passes := 0; ; passes++ {
						var done bool
						_, err := n.rep.Apply(n.rep.AppliedIndex()+1, func(rt *ledger.ReplicaTxn) error {
							tx := &Tx{ReplicaTxn: rt, At: time.Now()}
							p, err := oldPlanCosts(tx, "s1", MaxCostedPerEntry)
							if err != nil {
								return err
							}
							done = p.answer.Done
							return p.oldCommit(tx)
						})
						if err != nil {
							b.Fatal(err)
						}
						if done {
							break
						}
					}
				}
				t2 := time.Now()
				if mode == "after" {
					benchPost(b, n, "inv")
				}
				t3 := time.Now()
				b.StopTimer()
				boHookOff.Store(false)
				push, cost, post = push+t1.Sub(t0), cost+t2.Sub(t1), post+t3.Sub(t2)
				n.Close()
				b.StartTimer()
			}
			b.ReportMetric(push.Seconds()/float64(b.N), "push-s")
			b.ReportMetric(cost.Seconds()/float64(b.N), "cost-s")
			b.ReportMetric(post.Seconds()/float64(b.N), "post-s")
		})
	}
}

// oldPlanCosts is the pass as it was before costing on push and the
// add-back sums (git history of backoffice_cogs.go), kept to benchmark
// against: it reads the whole backlog every pass. oldPlanCosts computes one pass (invariants 1-2) over at most limit events,
// reading only.
func oldPlanCosts(tx *Tx, store storeline.StoreID, limit int) (*costPlan, error) {
	v, err := tx.Meta(boCogs + string(store))
	if err != nil {
		return nil, err
	}
	var from replication.Position
	if len(v) == 16 {
		from = replication.Position{Epoch: ledger.U64(v[:8]), Seq: ledger.U64(v[8:])}
	}
	ms, err := marks(tx.ReplicaTxn, store)
	if err != nil {
		return nil, err
	}
	// Read every uncosted event: the pass costs the first limit of them,
	// but all their units are in the balances already and are added back
	// (invariant 2), or a backlog longer than a pass would be costed at
	// an average of too few units.
	var sales, beyond []storeline.Event
	var at []replication.Position
	last, read, done := from, 0, true
	for _, m := range ms {
		if m.Epoch < from.Epoch {
			continue
		}
		seq := uint64(1)
		if m.Epoch == from.Epoch {
			seq = from.Seq + 1
		}
		for ; seq <= m.Seq; seq++ {
			inPass := read < limit
			if inPass {
				read++
				last = replication.Position{Epoch: m.Epoch, Seq: seq}
			} else {
				done = false
			}
			raw, err := tx.Meta(eventKey(store, m.Epoch, seq))
			if err != nil {
				return nil, err
			}
			if raw == nil {
				continue // rejected: it moved nothing
			}
			var w replication.WireEvent
			if err := msgpack.Unmarshal(raw, &w); err != nil {
				return nil, fmt.Errorf("event %s %d/%d: %w", store, m.Epoch, seq, err)
			}
			if w.Kind != string(storeline.KindReceipt) && w.Kind != string(storeline.KindReturn) {
				continue
			}
			ev := storeline.Event{Origin: store}
			for _, wp := range w.Postings {
				var amt decimal.Decimal
				if err := amt.UnmarshalBinary(wp.Amount); err != nil {
					return nil, fmt.Errorf("event %s %d/%d: %w", store, m.Epoch, seq, err)
				}
				ev.Postings = append(ev.Postings, storeline.Posting{Account: wp.Account, Asset: storeline.Asset(wp.Asset), Amount: amt})
			}
			if inPass {
				sales = append(sales, ev)
				at = append(at, last)
			} else {
				beyond = append(beyond, ev)
			}
		}
	}
	plan := &costPlan{store: store, from: from, pending: map[string]decimal.Decimal{}, sold: map[storeline.ItemID]decimal.Decimal{},
		answer: catchUpAnswer{Done: done, Costed: len(sales), Epoch: last.Epoch, Seq: last.Seq}}
	// Add back the units of every uncosted sale; each of the pass gives
	// its own back as it is costed (invariant 2).
	units := func(ps []storeline.Posting, sign int64) {
		for _, p := range ps {
			if !p.Asset.IsMoney() {
				k := balKey(p.Account, p.Asset)
				plan.pending[k] = plan.pending[k].Add(p.Amount.Mul(decimal.NewFromInt(sign)))
			}
		}
	}
	for i := range sales {
		units(sales[i].Postings, -1)
	}
	for i := range beyond {
		units(beyond[i].Postings, -1)
	}
	for i := range sales {
		ps, err := CostOfSales(tx, &sales[i], plan.pending)
		if err != nil {
			return nil, err // its store exists (checked by the caller): storage
		}
		units(sales[i].Postings, 1)
		soldUnits(&sales[i], plan.sold)
		var c decimal.Decimal
		for _, p := range ps {
			k := balKey(p.Account, p.Asset)
			plan.pending[k] = plan.pending[k].Add(p.Amount)
			if strings.HasPrefix(p.Account, "cogs/") {
				c = c.Add(p.Amount)
			}
		}
		plan.costs = append(plan.costs, saleCost{at[i], c})
		plan.cost = append(plan.cost, ps...)
	}
	plan.cost = storeline.MergePostings(plan.cost)
	return plan, nil
}

// oldCommit is commit as it was (no queued cursor, no sums).
func (p *costPlan) oldCommit(tx *Tx) error {
	last := replication.Position{Epoch: p.answer.Epoch, Seq: p.answer.Seq}
	if last == p.from {
		return nil
	}
	h := sha256.Sum256(fmt.Appendf(nil, "storeline/cogs/%s/%d/%d/%d/%d", p.store, p.from.Epoch, p.from.Seq, last.Epoch, last.Seq))
	var id storeline.EventID
	copy(id[:], h[:16])
	id[6], id[8] = id[6]&0x0f|0x80, id[8]&0x3f|0x80
	ref := fmt.Sprintf("%s %d/%d-%d/%d", p.store, p.from.Epoch, p.from.Seq+1, last.Epoch, last.Seq)
	if err := bookPostings(tx, id, "cost_of_sales", ref, p.cost); err != nil {
		return err
	}
	if err := consumeBatches(tx, p.store, p.sold); err != nil {
		return err
	}
	for _, c := range p.costs {
		if err := tx.SetMeta(saleCostKey(p.store, c.pos.Epoch, c.pos.Seq), []byte(c.cost.String())); err != nil {
			return err
		}
	}
	return tx.SetMeta(boCogs+string(p.store), append(ledger.PutU64(last.Epoch), ledger.PutU64(last.Seq)...))
}

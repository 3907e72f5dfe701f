package central

// Cost of sales at central. Shops post the units and money of their
// sales; central derives what the units cost (DESIGN.md, "Cost of
// sales"). It does so in bounded catch-up passes over each shop's events
// after a per-shop cursor, run inside Raft entries:
//
//  1. A pass reads the shop's events by key from the cursor up to each
//     epoch's mark, costs at most MaxCostedPerEntry of them, and books the
//     cost postings of its receipts and returns as one central-authored
//     event (ID derived from the shop and the range), then moves the
//     cursor.
//  2. Each sale is costed at the moving average as it stood just before
//     it: the units of every uncosted sale after it, already in the
//     balances, are added back while it is costed (so a pass reads the
//     whole backlog, and a backlog of B events costs O(B²/limit) reads
//     over its passes), and the costs of the pass's earlier ones are
//     counted as pending. Sales move units at the average, so
//     costing them late changes nothing as long as no document moved the
//     average in between; hence
//  3. Posting or cancelling a document first plans a pass for its shop
//     and derives the document against the books with the pass's costs
//     pending; only if both succeed are the pass and the document written
//     (an op that refuses writes nothing). If one pass would not catch
//     the shop up, the document is refused (409, field "store"): the API
//     runs passes (OpCostCatchUp) until the shop is caught up first.

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// OpCostCatchUp runs one cost-of-sales pass for a store.
const OpCostCatchUp = "backoffice.cogs.catchup"

// MaxCostedPerEntry bounds the shop events one pass reads, so an entry's
// transaction stays small whatever the backlog.
const MaxCostedPerEntry = 2000

const (
	boCogs   = "bo/cogs/"   // store → epoch8 seq8 of the last event costed
	boMargin = "bo/margin/" // store \0 epoch8 seq8 → the sale's cost (decimal string; negative for a return)
)

func saleCostKey(store storeline.StoreID, epoch, seq uint64) string {
	return boMargin + string(store) + "\x00" + string(ledger.PutU64(epoch)) + string(ledger.PutU64(seq))
}

type catchUpPayload struct {
	Store storeline.StoreID `msgpack:"s"`
}

// catchUpAnswer says whether the store is caught up after the pass.
type catchUpAnswer struct {
	Done   bool   `msgpack:"d"`
	Costed int    `msgpack:"n"`
	Epoch  uint64 `msgpack:"e"`
	Seq    uint64 `msgpack:"q"`
}

func applyCostCatchUp(tx *Tx, payload []byte) ([]byte, error) {
	var p catchUpPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payload: %v", err)
	}
	if ok, err := tx.GetMaster(storeline.KindStore, string(p.Store), nil); err != nil || !ok {
		if err == nil {
			err = storeline.Invalidf("store", "unknown store %q", p.Store)
		}
		return nil, err
	}
	plan, err := planCosts(tx, p.Store, MaxCostedPerEntry)
	if err != nil {
		return nil, err
	}
	if err := plan.commit(tx); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&plan.answer)
}

// costPlan is a pass computed but not yet written.
type costPlan struct {
	store   storeline.StoreID
	from    replication.Position
	answer  catchUpAnswer
	cost    []storeline.Posting
	pending map[string]decimal.Decimal // the pass's balance changes, by balKey
	sold    map[storeline.ItemID]decimal.Decimal
	// costs are each sale's cost, for its margin.
	costs []saleCost
}

type saleCost struct {
	pos  replication.Position
	cost decimal.Decimal
}

// planCosts computes one pass (invariants 1-2) over at most limit events,
// reading only.
func planCosts(tx *Tx, store storeline.StoreID, limit int) (*costPlan, error) {
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

// commit books the pass's costs as one central-authored event, takes the
// sold units from the batches first-expiring first, and moves the cursor.
func (p *costPlan) commit(tx *Tx) error {
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

// planForDocument plans the pass a document of store needs first
// (invariant 3): a Conflict naming "store" if one pass is not enough.
func planForDocument(tx *Tx, store storeline.StoreID) (*costPlan, error) {
	plan, err := planCosts(tx, store, MaxCostedPerEntry)
	if err != nil {
		return nil, err
	}
	if !plan.answer.Done {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "store",
			Err: fmt.Errorf("head office is still costing %s's sales (at %d/%d); retry", store, plan.answer.Epoch, plan.answer.Seq)}
	}
	return plan, nil
}

package central

// Batches and documents: every document that takes units out of a shop's
// stock takes them from the item's batches there, by the rule sales follow
// (consumeBatches: first-expiring first, storeline.ConsumeFEFO), after the
// batch a line names (its batch and expiry, where given). What a post took
// is stored with the document (docRecord.Taken), so its cancel puts back
// exactly that; a transfer between shops carries what it took to the
// receiving shop when it is received (the receipt's docRecord.Batches,
// which its cancel takes back as an invoice's cancel does). A buyer's
// returns (from level 8, levelBuyerReturnBatches) put back into the
// batches its outgoing invoices at the shop took, as many units as those
// took less what its other returns put back (the buyer's returnable
// batches, boReturnable), the rest unbatched as a received line without a
// batch; what a return put in is stored with it (docRecord.Returned) for
// its cancel to take out. A return that names no invoice can be told no
// more of where its units came from than its buyer's invoices; from level
// 10 (levelReturnInvoice) it may name the one it returns
// (Document.Invoice), and then returns no more of an item than that
// invoice sold less what the standing returns naming it took back
// (boInvoiceReturns), its units back into that invoice's batches first
// (no more of one than the buyer's returnable batches hold: other returns
// may have put them back), the buyer's other batches after. A batch
// never goes below zero: what a cancel cannot take back is owed by the
// batch (storedBatch) and paid by the next units put in, so a batch's
// quantity does not depend on the order of cancels. All of it runs in the entry that posts or cancels, in
// line and item order, so every replica writes the same.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// batchTake is units a document's post took from one batch of an item at
// a store.
type batchTake struct {
	Store       storeline.StoreID `msgpack:"s"`
	Item        storeline.ItemID  `msgpack:"i"`
	Batch       string            `msgpack:"b,omitempty"`
	Expiry      storeline.Date    `msgpack:"e,omitempty"`
	Certificate string            `msgpack:"c,omitempty"`
	Qty         decimal.Decimal   `msgpack:"q"`
}

func (t *batchTake) batch() storeline.Batch {
	return storeline.Batch{Store: t.Store, Item: t.Item, Batch: t.Batch, Expiry: t.Expiry, Certificate: t.Certificate}
}

// netUnits sums, per item, the units ps move on store's stock accounts
// over all of its departments (a move between departments nets to
// nothing), and returns the items whose sum has sign (-1: out, 1: in), in
// item order, with the sums' absolute values.
func netUnits(ps []storeline.Posting, store storeline.StoreID, sign int) ([]storeline.ItemID, map[storeline.ItemID]decimal.Decimal) {
	prefix := "stock/" + string(store) + "/"
	sums := map[storeline.ItemID]decimal.Decimal{}
	var items []storeline.ItemID
	for _, p := range ps {
		rest, ok := strings.CutPrefix(p.Account, prefix)
		if !ok {
			continue
		}
		item := storeline.ItemID(rest[strings.LastIndexByte(rest, '/')+1:])
		if p.Asset != storeline.ItemAsset(item) {
			continue
		}
		if _, seen := sums[item]; !seen {
			items = append(items, item)
		}
		sums[item] = sums[item].Add(p.Amount)
	}
	out := map[storeline.ItemID]decimal.Decimal{}
	var keep []storeline.ItemID
	for _, it := range items {
		if sums[it].Sign() == sign {
			keep = append(keep, it)
			out[it] = sums[it].Abs()
		}
	}
	slices.Sort(keep)
	return keep, out
}

// takeFEFO takes up to q units from the batches of bs that match accepts
// (all when nil), first-expiring first as ConsumeFEFO orders them,
// lowering their quantities in bs; it returns the takes and what of q
// they did not cover.
func takeFEFO(bs []storeline.Batch, match func(*storeline.Batch) bool, q decimal.Decimal) ([]storeline.Batch, decimal.Decimal) {
	var sub []storeline.Batch
	var idx []int
	for i := range bs {
		if match == nil || match(&bs[i]) {
			sub = append(sub, bs[i])
			idx = append(idx, i)
		}
	}
	ts, short := storeline.ConsumeFEFO(sub, q)
	var out []storeline.Batch
	for _, t := range ts {
		for _, i := range idx {
			if bs[i].Batch == t.Batch && bs[i].Expiry == t.Expiry {
				bs[i].Qty = bs[i].Qty.Sub(t.Qty)
				tk := bs[i]
				tk.Qty = t.Qty
				out = append(out, tk)
				break
			}
		}
	}
	return out, short
}

// allocate takes, for each item of items, q[item] units from avail[item]:
// first, line by line, from the batches a line of d on the item names (up
// to the line's quantity), then first-expiring first. It returns the
// takes merged by batch, in the order first taken, and the first line
// naming a batch or expiry of which avail held nothing at all (-1: none).
// An item without batches (avail has none) is not tracked by batch: its
// lines name nothing to check.
func allocate(d *storeline.Document, items []storeline.ItemID, q map[storeline.ItemID]decimal.Decimal, avail map[storeline.ItemID][]storeline.Batch) ([]storeline.Batch, int) {
	var out []storeline.Batch
	unheld := -1
	at := map[string]int{}
	add := func(ts []storeline.Batch) {
		for _, t := range ts {
			k := string(t.Item) + "\x00" + string(t.Expiry) + "\x00" + t.Batch
			if i, ok := at[k]; ok {
				out[i].Qty = out[i].Qty.Add(t.Qty)
				continue
			}
			at[k] = len(out)
			out = append(out, t)
		}
	}
	// What each item's batches held before any line took from them.
	held := map[storeline.ItemID][]storeline.Batch{}
	for it, bs := range avail {
		for _, b := range bs {
			if b.Qty.IsPositive() {
				held[it] = append(held[it], b)
			}
		}
	}
	for _, it := range items {
		bs, left := avail[it], q[it]
		if len(bs) == 0 {
			continue
		}
		// A production's lines name its products, not its components.
		if d.Type != storeline.DocProduction {
			for i, l := range d.Lines {
				if l.Item != it || (l.Batch == "" && l.Expiry == "") || !left.IsPositive() {
					continue
				}
				named := func(b *storeline.Batch) bool {
					return (l.Batch == "" || b.Batch == l.Batch) && (l.Expiry == "" || b.Expiry == l.Expiry)
				}
				if unheld < 0 && !slices.ContainsFunc(held[it], func(b storeline.Batch) bool { return named(&b) }) {
					unheld = i
				}
				want := decimal.Min(l.Qty, left)
				ts, short := takeFEFO(bs, named, want)
				add(ts)
				left = left.Sub(want.Sub(short))
			}
		}
		ts, _ := takeFEFO(bs, nil, left)
		add(ts)
	}
	return out, unheld
}

// planTakes plans what d (with postings ps) takes from d.Store's batches:
// the units of each item the postings take out of the store's stock
// (allocate). Units no batch covers are not tracked by batch (the stock
// may go below zero; a batch never does). A line's named batch or expiry
// is taken first and what it lacks first-expiring first, but one the
// store holds none of is refused, naming the line's field: a mistyped
// batch would take every unit from other batches, short in the books
// while the named one went. It only reads, so a post plans before its
// writes (applyDocPost) and refuses whole. sold are the units the
// entry's cost pass sells before the takes are written (costPlan.sold,
// which its commit takes from the batches first-expiring first, as
// consumeBatches): the plan starts from the batches as they leave them.
func planTakes(tx *Tx, d *storeline.Document, ps []storeline.Posting, sold map[storeline.ItemID]decimal.Decimal) ([]storeline.Batch, error) {
	items, out := netUnits(ps, d.Store, -1)
	if len(items) == 0 {
		return nil, nil
	}
	if err := batchMarkers(tx.ReplicaTxn, tx.cache); err != nil {
		return nil, err
	}
	avail := map[storeline.ItemID][]storeline.Batch{}
	for _, it := range items {
		if has, err := tx.cache.batchMark(tx.ReplicaTxn, batchItemKey(d.Store, it)); err != nil || !has {
			if err != nil {
				return nil, err
			}
			continue
		}
		bs, err := batchesOf(tx.ReplicaTxn, d.Store, it)
		if err != nil {
			return nil, err
		}
		if q := sold[it]; q.IsPositive() {
			takeFEFO(bs, nil, q) // what consumeBatches will take first
		}
		avail[it] = bs
	}
	takes, line := allocate(d, items, out, avail)
	if line >= 0 {
		l := d.Lines[line]
		field, what := "batch", fmt.Sprintf("batch %q", l.Batch)
		if l.Batch == "" {
			field, what = "expiry", "a batch expiring "+string(l.Expiry)
		} else if l.Expiry != "" {
			what += " expiring " + string(l.Expiry)
		}
		return nil, storeline.Invalidf(fmt.Sprintf("lines[%d].%s", line, field),
			"%s holds no units of %s of %s: name a batch it holds (GET /v1/batches), or none to take first-expiring first", d.Store, what, l.Item)
	}
	return takes, nil
}

// takeBatches writes the takes planTakes planned and returns them, for
// docRecord.Taken.
func takeBatches(tx *Tx, takes []storeline.Batch) ([]batchTake, error) {
	var taken []batchTake
	for _, b := range takes {
		if err := addBatch(tx, b, b.Qty.Neg()); err != nil {
			return nil, err
		}
		taken = append(taken, batchTake{Store: b.Store, Item: b.Item, Batch: b.Batch, Expiry: b.Expiry, Certificate: b.Certificate, Qty: b.Qty})
	}
	return taken, nil
}

// restoreBatches puts back what a post took (docRecord.Taken).
func restoreBatches(tx *Tx, taken []batchTake) error {
	for i := range taken {
		if err := addBatch(tx, taken[i].batch(), taken[i].Qty); err != nil {
			return err
		}
	}
	return nil
}

// carriedBatches are the batches a transfer receipt d (with postings ps)
// brings to its shop from what the transfer ship took at the sender: per
// item, as many units as the receipt puts into stock, a batch the
// receipt's line names first, then first-expiring first. Units the
// transfer took from no batch (or a surplus) arrive unbatched; a transfer
// posted before its post recorded what it took carries nothing.
func carriedBatches(d *storeline.Document, ps []storeline.Posting, ship *docRecord) []storeline.BatchIn {
	if len(ship.Taken) == 0 {
		return nil
	}
	items, in := netUnits(ps, d.Store, 1)
	avail := map[storeline.ItemID][]storeline.Batch{}
	for i := range ship.Taken {
		t := &ship.Taken[i]
		b := t.batch()
		b.Qty = t.Qty
		avail[t.Item] = append(avail[t.Item], b)
	}
	var out []storeline.BatchIn
	// A receipt's line naming a batch the transfer did not carry takes
	// what it did carry: the units arrived whatever the line says.
	carried, _ := allocate(d, items, in, avail)
	for _, b := range carried {
		out = append(out, storeline.BatchIn{Store: d.Store, Item: b.Item, Batch: b.Batch, Expiry: b.Expiry, Certificate: b.Certificate, Qty: b.Qty})
	}
	return out
}

// boReturnable holds, per shop, buyer, item and batch, what the buyer's
// standing outgoing invoices (posted from level 8 on: docRecord.Pooled)
// took from the batch less what its standing returns put back, a plain
// sum of the documents' deltas (it may go below zero when an invoice is
// cancelled under its returns), so it does not depend on the order of
// cancels either.
const boReturnable = "bo/bret/" // store \0 buyer \0 item \0 expiry \0 batch → msgpack batchTake

func returnableKey(buyer storeline.BuyerID, t *batchTake) string {
	return returnablePrefix(t.Store, buyer, t.Item) + string(t.Expiry) + "\x00" + t.Batch
}

func returnablePrefix(store storeline.StoreID, buyer storeline.BuyerID, item storeline.ItemID) string {
	return boReturnable + string(store) + "\x00" + string(buyer) + "\x00" + string(item) + "\x00"
}

// addReturnable adds sign × each take's units to buyer's returnable
// batches; a sum that comes to zero leaves no key.
func addReturnable(tx *Tx, buyer storeline.BuyerID, takes []batchTake, sign int64) error {
	for i := range takes {
		t := takes[i]
		k := returnableKey(buyer, &t)
		cur := batchTake{Store: t.Store, Item: t.Item, Batch: t.Batch, Expiry: t.Expiry, Certificate: t.Certificate}
		if v, err := tx.Meta(k); err != nil {
			return err
		} else if v != nil {
			if err := msgpack.Unmarshal(v, &cur); err != nil {
				return fmt.Errorf("returnable batch %q: %w", k, err)
			}
		}
		cur.Qty = cur.Qty.Add(t.Qty.Mul(decimal.NewFromInt(sign)))
		if cur.Qty.IsZero() {
			if err := tx.SetMeta(k, nil); err != nil {
				return err
			}
			continue
		}
		enc, err := msgpack.Marshal(&cur)
		if err != nil {
			return fmt.Errorf("returnable batch %q: %w", k, err)
		}
		if err := tx.SetMeta(k, enc); err != nil {
			return err
		}
	}
	return nil
}

// pooledTakes reports whether an outgoing invoice's post counts what it
// took (docRecord.Taken) in its buyer's returnable batches: from level 8
// on, so a cancel of one posted before takes nothing out of them.
func pooledTakes(tx *Tx, d *storeline.Document, taken []batchTake) (bool, error) {
	if d.Type != storeline.DocOutgoingInvoice || len(taken) == 0 {
		return false, nil
	}
	lv, err := readClusterLevel(tx.ReplicaTxn)
	return lv >= levelBuyerReturnBatches, err
}

// planReturn plans what a buyer return d (with postings ps) puts back
// into d.Store's batches (level 8 on, else nothing): per item, up to the
// units the postings bring into the store's stock, from the buyer's
// returnable batches, a batch a line names first, then first-expiring
// first (of the batches the buyer took, the one whose expiry matters
// soonest, so expiry control errs towards warning early). A line naming
// a batch the buyer has none of to return takes what it has, as a
// transfer's receipt does (carriedBatches): the units came back whatever
// the line says, and beyond what the invoices took they come back
// unbatched. A return naming its invoice (inv, from level 10) takes from
// that invoice's batches first, by the same rule, as far as the buyer's
// returnable batches still hold them, and from the buyer's others only
// what they do not cover. It only reads.
func planReturn(tx *Tx, d *storeline.Document, ps []storeline.Posting, inv *returnedInvoice) (returnPlan, error) {
	var plan returnPlan
	if d.Type != storeline.DocBuyerReturn {
		return plan, nil
	}
	if lv, err := readClusterLevel(tx.ReplicaTxn); err != nil || lv < levelBuyerReturnBatches {
		return plan, err
	}
	items, in := netUnits(ps, d.Store, 1)
	var pool []batchTake
	for _, it := range items {
		err := tx.ScanMeta(returnablePrefix(d.Store, d.Buyer, it), func(k string, v []byte) (bool, error) {
			var t batchTake
			if err := msgpack.Unmarshal(v, &t); err != nil {
				return false, fmt.Errorf("returnable batch %q: %w", k, err)
			}
			pool = append(pool, t)
			return true, nil
		})
		if err != nil {
			return plan, err
		}
	}
	fromInvoice := map[string]decimal.Decimal{}
	if inv != nil {
		plan.invoice, _ = allocate(d, items, in, inv.unreturned(d.Store, pool))
		for _, b := range plan.invoice {
			in[b.Item] = in[b.Item].Sub(b.Qty)
			fromInvoice[takeKey(b.Item, b.Expiry, b.Batch)] = b.Qty
		}
	}
	avail := map[storeline.ItemID][]storeline.Batch{}
	for _, t := range pool {
		// What the named invoice's batches gave is its share of the
		// buyer's returnable units (unreturned takes no more).
		if q := t.Qty.Sub(fromInvoice[takeKey(t.Item, t.Expiry, t.Batch)]); q.IsPositive() {
			b := t.batch()
			b.Qty = q
			avail[t.Item] = append(avail[t.Item], b)
		}
	}
	fromPool, _ := allocate(d, items, in, avail)
	plan.back = mergeTakes(plan.invoice, fromPool)
	return plan, nil
}

// returnPlan is what a buyer return's post puts back into its store's
// batches (planReturn).
type returnPlan struct {
	// back is all of it, each unit out of the buyer's returnable batches.
	back []storeline.Batch
	// invoice is the part of back that went into the batches of the
	// invoice the return names (docRecord.InvoiceReturned).
	invoice []storeline.Batch
}

func takeKey(item storeline.ItemID, expiry storeline.Date, batch string) string {
	return string(item) + "\x00" + string(expiry) + "\x00" + batch
}

// mergeTakes returns the batches of a then b, one entry per batch.
func mergeTakes(a, b []storeline.Batch) []storeline.Batch {
	var out []storeline.Batch
	at := map[string]int{}
	for _, t := range slices.Concat(a, b) {
		k := takeKey(t.Item, t.Expiry, t.Batch)
		if i, ok := at[k]; ok {
			out[i].Qty = out[i].Qty.Add(t.Qty)
			continue
		}
		at[k] = len(out)
		out = append(out, t)
	}
	return out
}

// returnBatches writes what planReturn planned for buyer: into the
// store's batches, out of the buyer's returnable ones. It returns it,
// for docRecord.Returned.
func returnBatches(tx *Tx, buyer storeline.BuyerID, back []storeline.Batch) ([]batchTake, error) {
	for _, b := range back {
		if err := addBatch(tx, b, b.Qty); err != nil {
			return nil, err
		}
	}
	returned := batchTakes(back)
	return returned, addReturnable(tx, buyer, returned, -1)
}

// batchTakes are bs as a document's record keeps them.
func batchTakes(bs []storeline.Batch) []batchTake {
	var out []batchTake
	for _, b := range bs {
		out = append(out, batchTake{Store: b.Store, Item: b.Item, Batch: b.Batch, Expiry: b.Expiry, Certificate: b.Certificate, Qty: b.Qty})
	}
	return out
}

// cancelBuyerBatches undoes, in a document's cancel, what its post did
// to its buyer's returnable batches and, for a return, to the store's
// batches: the invoice's takes leave the buyer's returnable batches, a
// return's units leave the store's batches (owed where gone) and are
// returnable again.
func cancelBuyerBatches(tx *Tx, rec *docRecord) error {
	if rec.Pooled {
		if err := addReturnable(tx, rec.Doc.Buyer, rec.Taken, -1); err != nil {
			return err
		}
	}
	for i := range rec.Returned {
		if err := addBatch(tx, rec.Returned[i].batch(), rec.Returned[i].Qty.Neg()); err != nil {
			return err
		}
	}
	if err := addReturnable(tx, rec.Doc.Buyer, rec.Returned, 1); err != nil {
		return err
	}
	if rec.Doc.Type != storeline.DocBuyerReturn || rec.Doc.Invoice == "" {
		return nil
	}
	// A return keeps its invoice only from level 10 on (applyDocCreate
	// drops it below), and levels never go down: its post recorded it.
	return addInvoiceReturns(tx, &rec.Doc, rec.InvoiceReturned, -1)
}

// levelReturnInvoice is the level from which a buyer return may name the
// outgoing invoice it returns (Document.Invoice): checked against what the
// invoice sold, its units put back into that invoice's batches first.
// Below it, nodes of the version before decode the field as one they do
// not know and drop it: every replica drops it too when the document is
// created (dropInvoiceBelowLevel), so a return posts and cancels as it
// did, and the API refuses it (503) until the level is raised.
const levelReturnInvoice = 10

// boInvoiceReturns holds, per outgoing invoice that standing buyer
// returns name, what they took back (invoiceReturns): a plain sum of the
// returns' deltas, added by a post and taken out by its cancel, so it
// does not depend on the order of cancels and a cancelled return frees
// its units. It stays as small as the invoice: one entry per item it sold
// and per batch it took. A record that comes to nothing leaves no key.
const boInvoiceReturns = "bo/invret/" // invoice id → msgpack invoiceReturns

// invoiceReturns is what the standing returns naming an invoice took
// back: units per item (their lines' quantities), and of them what went
// back into the batches the invoice took (its docRecord.Taken).
type invoiceReturns struct {
	Items   []itemUnits `msgpack:"i,omitempty"` // in item order
	Batches []batchTake `msgpack:"b,omitempty"` // in item, expiry, batch order
}

type itemUnits struct {
	Item storeline.ItemID `msgpack:"i"`
	Qty  decimal.Decimal  `msgpack:"q"`
}

// returnedInvoice is the posted outgoing invoice a buyer return names,
// with what the standing returns naming it took back.
type returnedInvoice struct {
	rec     *docRecord
	returns invoiceReturns
}

// unreturned are the batches of store the invoice took that its returns
// have not filled again, by item. An invoice whose post did not count its
// takes among its buyer's returnable batches (posted below level 8: not
// Pooled) gives none: its units come back as an unnamed return's do, so
// every unit a return puts back comes out of the buyer's returnable
// batches and its cancel puts it there again (cancelBuyerBatches). For
// the same reason a batch gives no more than the buyer's returnable units
// of it (pool, the buyer's returnable batches of store): its unnamed
// returns, and a return naming another invoice whose batches fell short,
// may have put the invoice's units back already, and a batch never holds
// more than came into it.
func (inv *returnedInvoice) unreturned(store storeline.StoreID, pool []batchTake) map[storeline.ItemID][]storeline.Batch {
	avail := map[storeline.ItemID][]storeline.Batch{}
	if !inv.rec.Pooled {
		return avail
	}
	back := map[string]decimal.Decimal{}
	for _, t := range inv.returns.Batches {
		back[takeKey(t.Item, t.Expiry, t.Batch)] = t.Qty
	}
	pooled := map[string]decimal.Decimal{}
	for _, t := range pool {
		pooled[takeKey(t.Item, t.Expiry, t.Batch)] = t.Qty
	}
	for i := range inv.rec.Taken {
		t := &inv.rec.Taken[i]
		if t.Store != store {
			continue
		}
		k := takeKey(t.Item, t.Expiry, t.Batch)
		if q := decimal.Min(t.Qty.Sub(back[k]), pooled[k]); q.IsPositive() {
			b := t.batch()
			b.Qty = q
			avail[t.Item] = append(avail[t.Item], b)
		}
	}
	return avail
}

// returnInvoiceOn reports whether the cluster's level lets a buyer return
// name its invoice.
func returnInvoiceOn(rt *ledger.ReplicaTxn) (bool, error) {
	lv, err := readClusterLevel(rt)
	return err == nil && lv >= levelReturnInvoice, err
}

// dropInvoiceBelowLevel drops a document's invoice below levelReturnInvoice,
// as nodes that do not know the field do.
func dropInvoiceBelowLevel(tx *Tx, d *storeline.Document) error {
	if d.Invoice == "" {
		return nil
	}
	on, err := returnInvoiceOn(tx.ReplicaTxn)
	if err == nil && !on {
		d.Invoice = ""
	}
	return err
}

// checkReturnInvoiceLevel refuses a document naming an invoice until the
// cluster runs levelReturnInvoice: the FSM would drop it.
func (n *Node) checkReturnInvoiceLevel(d *storeline.Document) error {
	if d.Invoice == "" {
		return nil
	}
	return n.checkLevelAt(levelReturnInvoice, "a "+string(d.Type)+" naming its invoice")
}

func getInvoiceReturns(rt *ledger.ReplicaTxn, invoice string) (invoiceReturns, error) {
	r, ok, err := getMetaRecord[invoiceReturns](rt, boInvoiceReturns+invoice, "returns of invoice "+invoice)
	if err != nil || !ok {
		return invoiceReturns{}, err
	}
	return *r, nil
}

// invoiceOfReturn returns the invoice a buyer return d names, checked as
// one it may return (nil if it names none or the level has no such
// returns): a posted outgoing invoice of d's buyer and store, each line
// an item the invoice sold, no more of an item than it sold less what
// the standing returns naming it took back. A refusal names invoice, or
// the line's item or qty. It runs when the return is created (a draft
// typed against the invoice) and again when it is posted, which is what
// counts: the returns standing then.
func invoiceOfReturn(tx *Tx, d *storeline.Document) (*returnedInvoice, error) {
	if d.Invoice == "" || d.Type != storeline.DocBuyerReturn {
		return nil, nil
	}
	if on, err := returnInvoiceOn(tx.ReplicaTxn); err != nil || !on {
		return nil, err
	}
	rec, ok, err := getDoc(tx.ReplicaTxn, d.Invoice)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, storeline.Invalidf("invoice", "unknown document %q", d.Invoice)
	case rec.Doc.Type != storeline.DocOutgoingInvoice:
		return nil, storeline.Invalidf("invoice", "document %q is a %s, not an outgoing invoice", d.Invoice, rec.Doc.Type)
	case rec.Doc.Buyer != d.Buyer:
		return nil, storeline.Invalidf("invoice", "outgoing invoice %q sold to buyer %q, not %q", d.Invoice, rec.Doc.Buyer, d.Buyer)
	case rec.Doc.Store != d.Store:
		return nil, storeline.Invalidf("invoice", "outgoing invoice %q sold from store %q, not %q", d.Invoice, rec.Doc.Store, d.Store)
	case rec.Status != storeline.DocPosted:
		return nil, storeline.Invalidf("invoice", "outgoing invoice %q is %s: only a posted one can be returned", d.Invoice, rec.Status)
	}
	inv := &returnedInvoice{rec: rec}
	if inv.returns, err = getInvoiceReturns(tx.ReplicaTxn, d.Invoice); err != nil {
		return nil, err
	}
	sold := map[storeline.ItemID]decimal.Decimal{}
	for _, l := range rec.Doc.Lines {
		sold[l.Item] = sold[l.Item].Add(l.Qty)
	}
	back := map[storeline.ItemID]decimal.Decimal{}
	for _, u := range inv.returns.Items {
		back[u.Item] = u.Qty
	}
	for i, l := range d.Lines {
		s, ok := sold[l.Item]
		if !ok {
			return nil, storeline.Invalidf(fmt.Sprintf("lines[%d].item", i), "outgoing invoice %q sold no %q", d.Invoice, l.Item)
		}
		if left := s.Sub(back[l.Item]); l.Qty.GreaterThan(left) {
			return nil, storeline.Invalidf(fmt.Sprintf("lines[%d].qty", i),
				"outgoing invoice %q sold %s of %q, of which %s is left to return after its standing returns (and this one's lines before): not %s",
				d.Invoice, s, l.Item, decimal.Max(left, decimal.Zero), l.Qty)
		}
		back[l.Item] = back[l.Item].Add(l.Qty)
	}
	return inv, nil
}

// addInvoiceReturns adds sign × what buyer return d took back (its lines'
// units, and fromInvoice, what went into its invoice's batches) to the
// record of its invoice's returns.
func addInvoiceReturns(tx *Tx, d *storeline.Document, fromInvoice []batchTake, sign int64) error {
	r, err := getInvoiceReturns(tx.ReplicaTxn, d.Invoice)
	if err != nil {
		return err
	}
	by := decimal.NewFromInt(sign)
	items := map[storeline.ItemID]decimal.Decimal{}
	for _, u := range r.Items {
		items[u.Item] = u.Qty
	}
	for _, l := range d.Lines {
		items[l.Item] = items[l.Item].Add(l.Qty.Mul(by))
	}
	batches := map[string]batchTake{}
	for _, t := range r.Batches {
		batches[takeKey(t.Item, t.Expiry, t.Batch)] = t
	}
	for _, t := range fromInvoice {
		k := takeKey(t.Item, t.Expiry, t.Batch)
		cur, ok := batches[k]
		if !ok {
			cur = t
			cur.Qty = decimal.Zero
		}
		cur.Qty = cur.Qty.Add(t.Qty.Mul(by))
		batches[k] = cur
	}
	var out invoiceReturns
	for _, it := range slices.Sorted(maps.Keys(items)) {
		if q := items[it]; !q.IsZero() {
			out.Items = append(out.Items, itemUnits{Item: it, Qty: q})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(batches)) {
		if t := batches[k]; !t.Qty.IsZero() {
			out.Batches = append(out.Batches, t)
		}
	}
	k := boInvoiceReturns + d.Invoice
	if len(out.Items) == 0 && len(out.Batches) == 0 {
		return tx.SetMeta(k, nil)
	}
	return putMetaRecord(tx.ReplicaTxn, k, "returns of invoice "+d.Invoice, &out)
}

package central

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// bo5Replica is a replica with a shop (s1: EUR, department main, price
// list retail), milk in it, a supplier p1, and milk's retail price from
// bo5From at 1.29 (set by hand). Ops are applied one entry each, as the
// FSM does, and an op's business error is returned (its entry applied).
type bo5Replica struct {
	t     *testing.T
	rep   *ledger.Replica
	index uint64
}

var bo5From = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func newBO5Replica(t *testing.T) *bo5Replica {
	t.Helper()
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	r := &bo5Replica{t: t, rep: rep}
	d := decimal.RequireFromString
	r.must("master data", func(tx *Tx) error {
		i := tx.Index
		return tx.PutMasters([]ledger.MasterWrite{
			{Version: Version{i, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}, PriceLists: []storeline.PriceListID{"retail"}}},
			{Version: Version{i, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
			{Version: Version{i, 3}.Pack(), Record: &storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("10")}},
			{Version: Version{i, 4}.Pack(), Record: &storeline.PriceList{ID: "retail", Name: "Retail", Currency: "EUR"}},
			{Version: Version{i, 5}.Pack(), Record: &storeline.Supplier{ID: "p1", Name: "P"}},
			{Version: Version{i, 6}.Pack(), Record: &storeline.Price{List: "retail", Item: "milk", From: bo5From, Price: d("1.29")}},
			{Version: Version{i, 7}.Pack(), Record: &storeline.Store{ID: "s2", Name: "S2", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}, PriceLists: []storeline.PriceListID{"retail"}}},
		})
	})
	return r
}

// apply applies fn as one entry; a business error is answered, anything
// else fails the test.
func (r *bo5Replica) apply(fn func(tx *Tx) error) error {
	r.t.Helper()
	r.index++
	var berr error
	if _, err := r.rep.Apply(r.index, func(rt *ledger.ReplicaTxn) error {
		berr = fn(&Tx{ReplicaTxn: rt, Index: r.index, At: bo5From.Add(-time.Hour).Add(time.Duration(r.index) * time.Millisecond)})
		if berr != nil && storeline.KindOf(berr) == storeline.Internal {
			return berr
		}
		return nil
	}); err != nil {
		r.t.Fatalf("entry %d: %v", r.index, err)
	}
	return berr
}

func (r *bo5Replica) must(what string, fn func(tx *Tx) error) {
	r.t.Helper()
	if err := r.apply(fn); err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
}

func (r *bo5Replica) doc(d storeline.Document) error {
	r.t.Helper()
	enc, _ := msgpack.Marshal(&d)
	id, _ := msgpack.Marshal(&docIDPayload{ID: d.ID})
	return r.apply(func(tx *Tx) error {
		if _, err := applyDocCreate(tx, enc); err != nil {
			return err
		}
		_, err := applyDocPost(tx, id)
		return err
	})
}

func (r *bo5Replica) cancel(id string) error {
	r.t.Helper()
	p, _ := msgpack.Marshal(&docIDPayload{ID: id})
	return r.apply(func(tx *Tx) error {
		_, err := applyDocCancel(tx, p)
		return err
	})
}

// handPrice sets milk's retail price from bo5From by hand (master.put).
func (r *bo5Replica) handPrice(price string) error {
	r.t.Helper()
	w, err := encodeRecord(&storeline.Price{List: "retail", Item: "milk", From: bo5From, Price: decimal.RequireFromString(price)}, "")
	if err != nil {
		r.t.Fatal(err)
	}
	p, _ := msgpack.Marshal(&putPayload{Records: []wireRecord{w}})
	return r.apply(func(tx *Tx) error {
		_, err := applyPut(tx, p)
		return err
	})
}

// deletePrice deletes milk's retail price from bo5From (master.delete).
func (r *bo5Replica) deletePrice() error {
	r.t.Helper()
	id := (&storeline.Price{List: "retail", Item: "milk", From: bo5From}).MasterID()
	p, _ := msgpack.Marshal(&deletePayload{Kind: storeline.KindPrice, ID: id})
	return r.apply(func(tx *Tx) error {
		_, err := applyDelete(tx, p)
		return err
	})
}

// price is milk's retail price from bo5From, "" if none.
func (r *bo5Replica) price() string {
	r.t.Helper()
	var p storeline.Price
	var ok bool
	if err := r.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		ok, err = rt.GetMaster(storeline.KindPrice, (&storeline.Price{List: "retail", Item: "milk", From: bo5From}).MasterID(), &p)
		return err
	}); err != nil {
		r.t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return p.Price.StringFixed(2)
}

// meta reads a metadata key, "" when absent.
func (r *bo5Replica) meta(k string) (string, bool) {
	r.t.Helper()
	var v []byte
	if err := r.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		v, err = rt.Meta(k)
		return err
	}); err != nil {
		r.t.Fatal(err)
	}
	return string(v), v != nil
}

func (r *bo5Replica) record(id string) *docRecord {
	r.t.Helper()
	var rec *docRecord
	if err := r.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		rec, _, err = getDoc(rt, id)
		return err
	}); err != nil {
		r.t.Fatal(err)
	}
	return rec
}

func bo5Repricing(id, price string) storeline.Document {
	return storeline.Document{ID: id, Type: storeline.DocRepricing, Store: "s1", PriceList: "retail", From: bo5From,
		Lines: []storeline.DocumentLine{{Item: "milk", Price: decimal.RequireFromString(price)}}}
}

// TestReviewBO5PriceModel: random sequences (20 seeds, 80 with
// -central.long) of repricings of one price, their cancels in any order,
// prices set and deleted by hand between them; after every step the price is the one the latest standing write
// set (a repricing posted and not cancelled, or any hand write; a DELETE
// writes "no price"), or the price set at the start.
func TestReviewBO5PriceModel(t *testing.T) {
	values := []string{"1.29", "1.49", "1.59"}
	for seed := range modelSeeds(20, 80) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 5))
			r := newBO5Replica(t)
			type write struct {
				doc       string // "" by hand
				val       string // "" deleted
				cancelled bool
			}
			ws := []write{{val: "1.29"}}
			want := func() string {
				for i := len(ws) - 1; i >= 0; i-- {
					if !ws[i].cancelled {
						return ws[i].val
					}
				}
				return ""
			}
			var log []string
			for step := range 12 {
				var standing []int
				for i, w := range ws {
					if w.doc != "" && !w.cancelled {
						standing = append(standing, i)
					}
				}
				switch k := rng.IntN(10); {
				case k < 4:
					id, v := fmt.Sprintf("rp%d", step), values[rng.IntN(len(values))]
					if err := r.doc(bo5Repricing(id, v)); err != nil {
						t.Fatalf("post %s: %v", id, err)
					}
					ws = append(ws, write{doc: id, val: v})
					log = append(log, id+"="+v)
				case k < 7 && len(standing) > 0:
					i := standing[rng.IntN(len(standing))]
					if err := r.cancel(ws[i].doc); err != nil {
						t.Fatalf("cancel %s: %v", ws[i].doc, err)
					}
					ws[i].cancelled = true
					log = append(log, "cancel "+ws[i].doc)
				case k < 9:
					v := values[rng.IntN(len(values))]
					if err := r.handPrice(v); err != nil {
						t.Fatalf("hand %s: %v", v, err)
					}
					ws = append(ws, write{val: v})
					log = append(log, "hand="+v)
				default:
					if r.price() == "" {
						continue
					}
					if err := r.deletePrice(); err != nil {
						t.Fatalf("delete: %v", err)
					}
					ws = append(ws, write{})
					log = append(log, "delete")
				}
				if got, w := r.price(), want(); got != w {
					t.Fatalf("after %v: price %q, want %q", log, got, w)
				}
			}
		})
	}
}

// TestReviewBO5CostModel: random sequences (12 seeds, 40 with
// -central.long) of invoices of one item, some at the same cost, and
// their cancels in any order; after every step the last purchase cost is
// the one the latest invoice standing set, none if none stands.
func TestReviewBO5CostModel(t *testing.T) {
	prices := []string{"1.10", "2.20", "3.30"}
	for seed := range modelSeeds(12, 40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			r := newBO5Replica(t)
			type inv struct {
				id, cost  string
				cancelled bool
			}
			var invs []inv
			var log []string
			for step := range 12 {
				var standing []int
				for i, v := range invs {
					if !v.cancelled {
						standing = append(standing, i)
					}
				}
				if len(standing) == 0 || rng.IntN(2) == 0 {
					id, p := fmt.Sprintf("inv%d", step), prices[rng.IntN(len(prices))]
					if err := r.doc(storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1",
						Lines: []storeline.DocumentLine{{Item: "milk", Qty: decimal.NewFromInt(10), PurchasePrice: decimal.RequireFromString(p)}}}); err != nil {
						t.Fatalf("post %s: %v", id, err)
					}
					rec := r.record(id)
					if len(rec.Costs) != 1 {
						t.Fatalf("%s recorded costs %+v", id, rec.Costs)
					}
					invs = append(invs, inv{id: id, cost: rec.Costs[0].Set})
					log = append(log, id+"="+p)
				} else {
					i := standing[rng.IntN(len(standing))]
					if err := r.cancel(invs[i].id); err != nil {
						t.Fatalf("cancel %s: %v", invs[i].id, err)
					}
					invs[i].cancelled = true
					log = append(log, "cancel "+invs[i].id)
				}
				want := ""
				for i := len(invs) - 1; i >= 0; i-- {
					if !invs[i].cancelled {
						want = invs[i].cost
						break
					}
				}
				if got, _ := r.meta(boCost + "s1\x00milk"); got != want {
					t.Fatalf("after %v: last cost %q, want %q", log, got, want)
				}
			}
		})
	}
}

// batches reads every batch as stored, by batchKey.
func (r *bo5Replica) batches() map[string]storedBatch {
	r.t.Helper()
	out := map[string]storedBatch{}
	if err := r.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(boBatch, func(k string, v []byte) (bool, error) {
			var b storedBatch
			if err := msgpack.Unmarshal(v, &b); err != nil {
				return false, err
			}
			out[k] = b
			return true, nil
		})
	}); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestReviewBO5BatchModel (12 seeds, 40 with -central.long): random
// invoices bringing batches to two shops, write-offs and transfers taking
// them (a line naming a batch or not), receipts carrying them, sales
// consuming them, and cancels in any order; after every step each batch
// holds, less what it owes, what the documents standing put into it minus
// what they took, less what sales took, and it never both holds and owes
// units.
func TestReviewBO5BatchModel(t *testing.T) {
	stores := []storeline.StoreID{"s1", "s2"}
	names := []string{"B1", "B2", "B3"}
	expiry := map[string]storeline.Date{"B1": "2027-01-03", "B2": "2027-01-05", "B3": "2027-02-01"}
	for seed := range modelSeeds(12, 40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			r := newBO5Replica(t)
			q := func(n int) decimal.Decimal { return decimal.NewFromInt(int64(1 + rng.IntN(n))) }
			type doc struct {
				id, typ   string
				cancelled bool
			}
			var docs []doc
			sold := map[string]decimal.Decimal{} // batch key → units sales took
			var log []string
			for step := range 16 {
				id := fmt.Sprintf("d%d", step)
				st := stores[rng.IntN(2)]
				name := names[rng.IntN(len(names))]
				var err error
				switch k := rng.IntN(12); {
				case k < 4:
					err = r.doc(storeline.Document{ID: id, Type: storeline.DocIncomingInvoice, Store: st, Supplier: "p1",
						Lines: []storeline.DocumentLine{{Item: "milk", Qty: q(5), PurchasePrice: decimal.RequireFromString("1.10"), Batch: name, Expiry: expiry[name]}}})
					docs = append(docs, doc{id: id, typ: "invoice"})
				case k < 6:
					l := storeline.DocumentLine{Item: "milk", Qty: q(6)}
					if rng.IntN(2) == 0 {
						l.Batch = name
					}
					// A batch the store tracks milk by but holds none of is
					// refused (a mistyped batch would take others').
					tracked, held := false, false
					for _, b := range r.batches() {
						if b.Store == st && b.Item == "milk" {
							tracked = true
							held = held || b.Batch == name && b.Qty.IsPositive()
						}
					}
					err = r.doc(storeline.Document{ID: id, Type: storeline.DocWriteOff, Store: st, Reason: "spoiled", Lines: []storeline.DocumentLine{l}})
					refused := storeline.FieldOf(err) == "lines[0].batch"
					if want := l.Batch != "" && tracked && !held; refused != want {
						t.Fatalf("after %v: write-off %s of batch %q at %s (tracked %v, held %v): refused %v (%v), want refused %v",
							log, id, l.Batch, st, tracked, held, refused, err, want)
					}
					if refused {
						log = append(log, id+" write-off refused")
						continue
					}
					docs = append(docs, doc{id: id, typ: "write-off"})
				case k < 8:
					n := q(4)
					err = r.doc(storeline.Document{ID: id, Type: storeline.DocTransfer, Store: "s1", ToStore: "s2", Lines: []storeline.DocumentLine{{Item: "milk", Qty: n}}})
					if err == nil {
						docs = append(docs, doc{id: id, typ: "transfer"})
						log = append(log, id+" transfer "+n.String())
						id += "r"
						err = r.doc(storeline.Document{ID: id, Type: storeline.DocTransferReceipt, Store: "s2", Shipment: id[:len(id)-1], Lines: []storeline.DocumentLine{{Item: "milk", Qty: n}}})
						docs = append(docs, doc{id: id, typ: "receipt"})
					}
				case k < 10:
					var standing []int
					for i, d := range docs {
						if !d.cancelled {
							standing = append(standing, i)
						}
					}
					if len(standing) == 0 {
						continue
					}
					i := standing[rng.IntN(len(standing))]
					if err := r.cancel(docs[i].id); err != nil {
						if storeline.KindOf(err) == storeline.Conflict && docs[i].typ == "transfer" {
							continue // received: the receipt first
						}
						t.Fatalf("after %v: cancel %s: %v", log, docs[i].id, err)
					}
					docs[i].cancelled = true
					log = append(log, "cancel "+docs[i].id)
					id = ""
				default:
					n := q(5)
					before := r.batches()
					r.must("sale", func(tx *Tx) error {
						return consumeBatches(tx, st, map[storeline.ItemID]decimal.Decimal{"milk": n})
					})
					for k, b := range r.batches() {
						o := before[k]
						sold[k] = sold[k].Add(o.Qty.Sub(o.Owed).Sub(b.Qty.Sub(b.Owed)))
					}
					log = append(log, "sale "+string(st)+" "+n.String())
					id = ""
				}
				if err != nil {
					t.Fatalf("after %v: post %s: %v", log, id, err)
				}
				if id != "" {
					log = append(log, id+" "+docs[len(docs)-1].typ)
				}
				want := map[string]decimal.Decimal{}
				for k, s := range sold {
					want[k] = s.Neg()
				}
				for _, d := range docs {
					if d.cancelled {
						continue
					}
					rec := r.record(d.id)
					for _, b := range rec.Batches {
						k := batchKey(storeline.Batch(b))
						want[k] = want[k].Add(b.Qty)
					}
					for _, tk := range rec.Taken {
						k := batchKey(tk.batch())
						want[k] = want[k].Sub(tk.Qty)
					}
				}
				got := r.batches()
				for k, b := range got {
					if b.Qty.IsNegative() || b.Owed.IsNegative() || (b.Qty.IsPositive() && b.Owed.IsPositive()) {
						t.Fatalf("after %v: batch %q holds %s and owes %s", log, k, b.Qty, b.Owed)
					}
					if !b.Qty.Sub(b.Owed).Equal(want[k]) {
						t.Fatalf("after %v: batch %q holds %s and owes %s, want a net %s", log, k, b.Qty, b.Owed, want[k])
					}
				}
				for k, w := range want {
					if _, ok := got[k]; !ok && !w.IsZero() {
						t.Fatalf("after %v: no batch %q, want a net %s", log, k, w)
					}
				}
			}
		})
	}
}

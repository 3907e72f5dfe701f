package central

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// TestCostOfSalesInEntry derives a sale's cost inside a replica entry:
// from the stored balances plus the entry's pending changes, consuming
// batches first-expiring first.
func TestCostOfSalesInEntry(t *testing.T) {
	rep, err := ledger.OpenReplica(t.TempDir(), ledger.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	d := decimal.RequireFromString
	stock := storeline.StockAccount("s1", "main", "milk")
	var got []storeline.Posting
	var left []storeline.Batch
	_, err = rep.Apply(1, func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, Index: 1, At: time.Now()}
		if err := rt.PutMasters([]ledger.MasterWrite{
			{Version: Version{1, 1}.Pack(), Record: &storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "main"}}}},
			{Version: Version{1, 2}.Pack(), Record: &storeline.Group{ID: "g", Name: "G"}},
			{Version: Version{1, 3}.Pack(), Record: &storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "main", Unit: storeline.Piece, VATRate: d("10")}},
		}); err != nil {
			return err
		}
		// 10 on the books worth 25.00, in two batches.
		if err := rt.SetMeta(balKey(stock, storeline.ItemAsset("milk")), []byte("10")); err != nil {
			return err
		}
		if err := rt.SetMeta(balKey(stock, storeline.MoneyAsset("EUR")), []byte("25")); err != nil {
			return err
		}
		for _, b := range []storeline.Batch{{Batch: "late", Expiry: "2027-03-01", Qty: d("6")}, {Batch: "early", Expiry: "2026-12-01", Qty: d("4")}} {
			b.Store, b.Item = "s1", "milk"
			if err := addBatch(tx, b, b.Qty); err != nil {
				return err
			}
		}
		// An earlier sale of 2 in the same entry is pending: 8 left, worth 25.
		pending := map[string]decimal.Decimal{balKey(stock, storeline.ItemAsset("milk")): d("-2")}
		sale := &storeline.Event{Origin: "s1", Postings: []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset("milk"), Amount: d("-5")},
			{Account: storeline.SoldAccount("s1", "milk"), Asset: storeline.ItemAsset("milk"), Amount: d("5")},
		}}
		var err error
		if got, err = CostOfSales(tx, sale, pending); err != nil {
			return err
		}
		sold := map[storeline.ItemID]decimal.Decimal{}
		soldUnits(sale, sold)
		if err := consumeBatches(tx, "s1", sold); err != nil {
			return err
		}
		left, err = batchesOf(rt, "s1", "milk")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// 25.00 × 5 / 8 = 15.625 → 15.63.
	want := []storeline.Posting{
		{Account: storeline.COGSAccount("s1", "milk"), Asset: "cur:EUR", Amount: d("15.63")},
		{Account: stock, Asset: "cur:EUR", Amount: d("-15.63")},
	}
	if len(got) != 2 || got[0].String() != want[0].String() || got[1].String() != want[1].String() {
		t.Fatalf("CostOfSales = %v, want %v", got, want)
	}
	// FEFO: the early batch (4) first, then 1 of the late one.
	if len(left) != 2 || left[0].Batch != "early" || !left[0].Qty.IsZero() || left[1].Batch != "late" || !left[1].Qty.Equal(d("5")) {
		t.Fatalf("batches after the sale = %+v, want early 0, late 5", left)
	}
}

// FuzzDocumentDecode feeds the head-office API's document decoder and
// validator arbitrary bodies: they may refuse, never panic, and what they
// accept encodes for the FSM and validates again unchanged.
func FuzzDocumentDecode(f *testing.F) {
	f.Add([]byte(`{"type":"incoming_invoice","store":"s1","supplier":"p1","lines":[{"item":"milk","packs":"2","pack_factor":"12","purchase_price":"1.10","expiry":"2026-12-01"}]}`))
	f.Add([]byte(`{"type":"stocktake","store":"s1","position":{"epoch":1,"seq":5},"lines":[{"item":"milk","qty":"0"}]}`))
	f.Add([]byte(`{"type":"repricing","store":"s1","price_list":"retail","from":"2027-01-01T00:00:00Z","lines":[{"item":"milk","price":"1.49"}]}`))
	f.Add([]byte(`{"type":"write_off","store":"s1","reason":"x","lines":[{"item":"milk","qty":"-1e9999"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var d storeline.Document
		if err := decodeWire(body, &d); err != nil {
			return
		}
		d.ID = "doc"
		if err := d.Validate(); err != nil {
			return
		}
		enc, err := msgpack.Marshal(&d)
		if err != nil {
			t.Fatalf("encode %+v: %v", d, err)
		}
		var back storeline.Document
		if err := msgpack.Unmarshal(enc, &back); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid document is invalid after the round trip: %v", err)
		}
	})
}

// SetCostPassLimit sets the limit of the FSM's cost-of-sales passes until
// the test ends (a small one makes a backlog of a few sales).
func SetCostPassLimit(t testing.TB, limit int) {
	old := costPassLimit.Swap(int64(limit))
	t.Cleanup(func() { costPassLimit.Store(old) })
}

// costScenario is one shop's life at central: 10 units worth 25.00
// delivered, then sales pushed in batches.
func costScenario(t *testing.T) (*Node, func(seq, k int, qty func(int) string)) {
	n := openSingle(t)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "", &storeline.Group{ID: "g", Name: "G"},
		&storeline.Store{ID: "s1", Name: "S", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Item{ID: "milk", SKU: "M", Name: "Milk", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")},
		&storeline.Item{ID: "egg", SKU: "E", Name: "Egg", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("10")}); err != nil {
		t.Fatal(err)
	}
	for _, it := range []string{"milk", "egg"} {
		stock := storeline.StockAccount("s1", "food", storeline.ItemID(it))
		if _, err := n.Transfer(ctx, storeline.NewEventID(), "delivery", "", []storeline.Posting{
			{Account: stock, Asset: storeline.ItemAsset(storeline.ItemID(it)), Amount: d("10")},
			{Account: "warehouse/" + it, Asset: storeline.ItemAsset(storeline.ItemID(it)), Amount: d("-10")},
			{Account: stock, Asset: "cur:EUR", Amount: d("25")},
			{Account: "warehouse/" + it, Asset: "cur:EUR", Amount: d("-25")},
		}); err != nil {
			t.Fatal(err)
		}
	}
	push := func(seq, k int, qty func(int) string) {
		t.Helper()
		var evs []storeline.Event
		for i := 0; i < k; i++ {
			item := storeline.ItemID("milk")
			if (seq+i)%3 == 0 {
				item = "egg"
			}
			r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
				Lines:    []storeline.Line{{Item: item, Dept: "food", Unit: storeline.Piece, Qty: d(qty(seq + i)), Price: d("4"), VATRate: d("10")}},
				Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d("4").Mul(d(qty(seq + i)))}}}
			if err := r.Compute(); err != nil {
				t.Fatal(err)
			}
			ps, err := storeline.DerivePostings("s1", r)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, storeline.Event{ID: storeline.NewEventID(), Origin: "s1", Epoch: 1, Seq: uint64(seq + i), SchemaVersion: storeline.SchemaVersion,
				Kind: storeline.KindReceipt, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29", Body: r, Postings: ps})
		}
		if res, err := (backend{n}).Push(ctx, replication.Batch{Store: "s1", Epoch: 1, Events: evs}); err != nil || len(res.Rejections) != 0 {
			t.Fatalf("push: %+v, %v", res, err)
		}
	}
	return n, push
}

// saleCosts reads every sale's cost, and the add-back sums, of s1.
func saleCosts(t *testing.T, n *Node) (costs map[string]string, sums map[string]string) {
	costs, sums = map[string]string{}, map[string]string{}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		if err := rt.ScanMeta(boMargin+"s1\x00", func(k string, v []byte) (bool, error) {
			costs[fmt.Sprint(ledger.U64([]byte(k[len(k)-8:])))] = string(v)
			return true, nil
		}); err != nil {
			return err
		}
		return rt.ScanMeta(boAddBack+"s1\x00", func(k string, v []byte) (bool, error) {
			sums[k[len(boAddBack)+3+len(rpBal):]] = string(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return costs, sums
}

func catchUp(t *testing.T, n *Node) (passes int) {
	t.Helper()
	body, _ := msgpack.Marshal(&catchUpPayload{Store: "s1"})
	for ; passes < 100; passes++ {
		res, err := n.Submit(context.Background(), OpCostCatchUp, "", body)
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatal(err)
		}
		var a catchUpAnswer
		if err := msgpack.Unmarshal(res.Body, &a); err != nil {
			t.Fatal(err)
		}
		if a.Done {
			return passes + 1
		}
	}
	t.Fatalf("not caught up after %d passes", passes)
	return passes
}

// TestCostsOnPushAndBacklog: sales are costed in the entry that applies
// their push; when a pass cannot cost them all, the rest wait with their
// units in the add-back sums, and later passes cost them at the average
// before each, leaving no sum behind.
func TestCostsOnPushAndBacklog(t *testing.T) {
	SetCostPassLimit(t, 2)
	n, push := costScenario(t)
	one := func(int) string { return "1" }
	push(1, 1, one) // egg? seq 1 is milk
	costs, sums := saleCosts(t, n)
	if len(costs) != 1 || costs["1"] != "2.5" || len(sums) != 0 {
		t.Fatalf("after one sale: costs %v, sums %v; want sale 1 at 2.50 and no sums", costs, sums)
	}
	// Seqs 2..6: milk at 2, 4, 5 and egg at 3, 6. The pass costs 2 and 3;
	// 4, 5 (milk) and 6 (egg) wait.
	push(2, 5, one)
	costs, sums = saleCosts(t, n)
	want := map[string]string{
		"stock/s1/food/milk\x00item:milk": "-2", "sold/s1/milk\x00item:milk": "2",
		"stock/s1/food/egg\x00item:egg": "-1", "sold/s1/egg\x00item:egg": "1",
	}
	if len(costs) != 3 || fmt.Sprint(sums) != fmt.Sprint(want) {
		t.Fatalf("after a batch over the limit: costs %v, sums %v; want 3 costs and sums %v", costs, sums, want)
	}
	if p := catchUp(t, n); p != 2 {
		t.Errorf("catch-up took %d passes, want 2", p)
	}
	costs, sums = saleCosts(t, n)
	if len(costs) != 6 || len(sums) != 0 {
		t.Fatalf("after catch-up: costs %v, sums %v", costs, sums)
	}
	for seq, c := range costs {
		if c != "2.5" {
			t.Errorf("sale %s cost %s, want 2.50 (10 worth 25.00 before any sale)", seq, c)
		}
	}
}

// TestCostsIndependentOfPassLimit: the same pushes costed with a pass
// limit of 3 (a backlog most of the time, caught up by passes between
// batches) or of MaxCostedPerEntry (never a backlog) give every sale the
// same cost. Quantities vary, so averages are not round.
func TestCostsIndependentOfPassLimit(t *testing.T) {
	run := func(limit int, catchEvery int) map[string]string {
		SetCostPassLimit(t, limit)
		n, push := costScenario(t)
		qty := func(i int) string { return fmt.Sprint(1 + i*7%3) }
		seq := 1
		for b, k := range []int{4, 1, 7, 2, 5, 3, 6} {
			push(seq, k, qty)
			seq += k
			if b%catchEvery == catchEvery-1 {
				catchUp(t, n)
			}
		}
		catchUp(t, n)
		costs, sums := saleCosts(t, n)
		if len(sums) != 0 {
			t.Fatalf("limit %d: sums left %v", limit, sums)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		return costs
	}
	small := run(3, 3)
	big := run(MaxCostedPerEntry, 1)
	if len(big) != 28 || fmt.Sprint(small) != fmt.Sprint(big) {
		t.Fatalf("costs with a pass limit of 3:\n%v\nwith %d:\n%v", small, MaxCostedPerEntry, big)
	}
}

// indexState reads every key of the back office's indexes and cost
// queue. Excise rows are numbered in the order they were indexed, which
// a rebuild does not keep: they are listed by store and date, sorted. A
// queued cursor equal to the costed one is the same as none.
func indexState(rt *ledger.ReplicaTxn) (map[string]string, error) {
	out := map[string]string{}
	rows := map[string][]string{}
	for _, p := range []string{"bo/ix/", boAddBack, boCogsQ} {
		if err := rt.ScanMeta(p, func(k string, v []byte) (bool, error) {
			if rest, ok := strings.CutPrefix(k, boExciseRow); ok {
				day := rest[:len(rest)-9]
				rows[day] = append(rows[day], fmt.Sprintf("%x", v))
				return true, nil
			}
			if store, ok := strings.CutPrefix(k, boCogsQ); ok {
				if c, err := rt.Meta(boCogs + store); err != nil || bytes.Equal(c, v) {
					return err == nil, err
				}
			}
			out[k] = fmt.Sprintf("%x", v)
			return true, nil
		}); err != nil {
			return nil, err
		}
	}
	for day, rs := range rows {
		sort.Strings(rs)
		out[boExciseRow+day] = strings.Join(rs, ",")
	}
	return out, nil
}

// TestIndexesRebuiltMatchLive: the indexes kept as events and documents
// are applied (serials and conflicts, excise journal, negative stock,
// document counts, cost queue) equal the ones built from scratch from the
// same state, as state written before they existed gets them.
func TestIndexesRebuiltMatchLive(t *testing.T) {
	SetCostPassLimit(t, 3) // leaves a backlog, so the rebuild must queue it
	n, _ := costScenario(t)
	ctx := context.Background()
	d := decimal.RequireFromString
	if _, err := n.PutRecords(ctx, "",
		&storeline.Store{ID: "s2", Name: "S2", TimeZone: "UTC", Currency: "EUR", Departments: []storeline.Department{{ID: "food", Name: "Food"}}},
		&storeline.Supplier{ID: "p1", Name: "P"},
		&storeline.Item{ID: "vodka", SKU: "V", Name: "Vodka", Group: "g", Dept: "food", Unit: storeline.Piece, VATRate: d("21"), Excise: true, Marked: true}); err != nil {
		t.Fatal(err)
	}
	submit := func(op string, v any) {
		t.Helper()
		body, _ := msgpack.Marshal(v)
		res, err := n.Submit(ctx, op, "", body)
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	doc := func(doc storeline.Document) {
		t.Helper()
		submit(OpDocCreate, &doc)
		submit(OpDocPost, &docIDPayload{ID: doc.ID})
	}
	doc(storeline.Document{ID: "inv1", Type: storeline.DocIncomingInvoice, Store: "s1", Supplier: "p1", Lines: []storeline.DocumentLine{
		{Item: "vodka", Qty: d("10"), PurchasePrice: d("6.05")}, {Item: "milk", Qty: d("1"), PurchasePrice: d("1")}}})
	doc(storeline.Document{ID: "wo1", Type: storeline.DocWriteOff, Store: "s1", Reason: "broken", Lines: []storeline.DocumentLine{
		{Item: "vodka", Qty: d("1"), Serial: "SN-7"}}})
	doc(storeline.Document{ID: "wo2", Type: storeline.DocWriteOff, Store: "s1", Reason: "broken", Lines: []storeline.DocumentLine{
		{Item: "vodka", Qty: d("1"), Serial: "SN-8"}}})
	submit(OpDocCancel, &docIDPayload{ID: "wo2"})
	submit(OpDocCreate, &storeline.Document{ID: "wo3", Type: storeline.DocWriteOff, Store: "s1", Reason: "draft", Lines: []storeline.DocumentLine{
		{Item: "vodka", Qty: d("1")}}})
	sale := func(store storeline.StoreID, seq uint64, item storeline.ItemID, qty, serial string) storeline.Event {
		r := &storeline.Receipt{Terminal: "t1", Shift: "sh", Seller: "x", Currency: "EUR",
			Lines:    []storeline.Line{{Item: item, Dept: "food", Unit: storeline.Piece, Qty: d(qty), Price: d("4"), VATRate: d("10"), Serial: serial}},
			Payments: []storeline.Payment{{Method: storeline.Cash, Amount: d("4").Mul(d(qty))}}}
		if err := r.Compute(); err != nil {
			t.Fatal(err)
		}
		ps, err := storeline.DerivePostings(store, r)
		if err != nil {
			t.Fatal(err)
		}
		return storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seq, SchemaVersion: storeline.SchemaVersion,
			Kind: storeline.KindReceipt, OccurredAt: time.Now().UTC(), BusinessDate: "2026-11-29", Body: r, Postings: ps}
	}
	push := func(store storeline.StoreID, evs ...storeline.Event) {
		t.Helper()
		if res, err := (backend{n}).Push(ctx, replication.Batch{Store: store, Epoch: 1, Events: evs}); err != nil || len(res.Rejections) != 0 {
			t.Fatalf("push: %+v, %v", res, err)
		}
	}
	// SN-1 sold at both shops, SN-7 written off and sold: conflicts.
	// Milk: 10 delivered + 1 bought, 13 sold: negative. s2 sells vodka
	// it never received: negative too.
	push("s1", sale("s1", 1, "vodka", "1", "SN-1"), sale("s1", 2, "vodka", "1", "SN-7"), sale("s1", 3, "milk", "6", ""),
		sale("s1", 4, "milk", "7", ""), sale("s1", 5, "vodka", "1", "SN-2"))
	push("s2", sale("s2", 1, "vodka", "1", "SN-1"))

	var live map[string]string
	if err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		live, err = indexState(rt)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		boConflicts:                           fmt.Sprintf("%x", "2"),
		boConflict + "SN-1":                   "",
		boConflict + "SN-7":                   "",
		boNegN + "s1":                         fmt.Sprintf("%x", "1"),
		boNeg + "s1\x00milk":                  "",
		boNeg + "s2\x00vodka":                 "",
		boExcise + "s1":                       fmt.Sprintf("%x", "7"), // the invoice, wo1, wo2 and its cancel, 3 sales
		docCountKey("posted", "write_off"):    fmt.Sprintf("%x", "1"),
		docCountKey("cancelled", "write_off"): fmt.Sprintf("%x", "1"),
		docCountKey("draft", "write_off"):     fmt.Sprintf("%x", "1"),
	} {
		if got, ok := live[k]; !ok || got != want {
			t.Errorf("live index %q = %q (present %v), want %q", k, got, ok, want)
		}
	}
	// Build from scratch in an entry that is then dropped (an error
	// discards its transaction), comparing within it.
	errDrop := fmt.Errorf("drop")
	_, err := n.rep.Apply(n.rep.AppliedIndex()+1, func(rt *ledger.ReplicaTxn) error {
		tx := &Tx{ReplicaTxn: rt, At: time.Now()}
		// indexState folds the excise rows of a day into one entry: drop
		// the rows themselves. (Folded keys are not keys; the rows stayed
		// and the rebuild added them again, unnoticed while every row was
		// of one date and the rebuild renumbered them in place.)
		var rowKeys []string
		if err := rt.ScanMeta(boExciseRow, func(k string, _ []byte) (bool, error) {
			rowKeys = append(rowKeys, k)
			return true, nil
		}); err != nil {
			return err
		}
		for _, k := range rowKeys {
			if err := rt.SetMeta(k, nil); err != nil {
				return err
			}
		}
		for k := range live {
			if err := rt.SetMeta(k, nil); err != nil {
				return err
			}
		}
		if err := rt.SetMeta(boIdx, nil); err != nil {
			return err
		}
		if _, err := openIndex(tx); err != nil {
			return err
		}
		rebuilt, err := indexState(rt)
		if err != nil {
			return err
		}
		for k, v := range live {
			if rebuilt[k] != v {
				t.Errorf("index %q: live %q, rebuilt %q", k, v, rebuilt[k])
			}
		}
		for k, v := range rebuilt {
			if _, ok := live[k]; !ok {
				t.Errorf("index %q: rebuilt %q, not live", k, v)
			}
		}
		return errDrop
	})
	if !errors.Is(err, errDrop) {
		t.Fatalf("apply: %v", err)
	}
}

// TestMovedSinceOnePass: a stocktake's correction sums what moved since
// its position for every line from one read of the events since.
func TestMovedSinceOnePass(t *testing.T) {
	n, push := costScenario(t)
	push(1, 6, func(int) string { return "1" }) // milk at 1, 2, 4, 5; egg at 3, 6
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		b := &txBook{rt: rt}
		pos := storeline.JournalPosition{Epoch: 1, Seq: 2, PullCursor: Version{Index: n.AppliedIndex() + 1}.Pack() - 1}
		milk := b.MovedSince("s1", pos, storeline.StockAccount("s1", "food", "milk"), storeline.ItemAsset("milk"))
		egg := b.MovedSince("s1", pos, storeline.StockAccount("s1", "food", "egg"), storeline.ItemAsset("egg"))
		if b.err != nil {
			return b.err
		}
		if !milk.Equal(decimal.NewFromInt(-2)) || !egg.Equal(decimal.NewFromInt(-2)) {
			t.Errorf("moved since 1/2: milk %s, egg %s; want -2 each", milk, egg)
		}
		if len(b.moved) != 1 {
			t.Errorf("%d reads of the events since, want 1", len(b.moved))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

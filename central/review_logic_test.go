package central_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/replication"
)

// eventsPush builds a push of store's events from seq on, dated today in
// Riga.
func eventsPush(t *testing.T, store storeline.StoreID, seq uint64, bodies ...storeline.Body) []byte {
	t.Helper()
	riga, _ := time.LoadLocation("Europe/Riga")
	dated := make([]datedBody, len(bodies))
	for i, b := range bodies {
		dated[i] = datedBody{storeline.DateOf(time.Now(), riga), b}
	}
	return datedPush(t, store, seq, dated...)
}

// datedBody is an event's body and business date, for datedPush.
type datedBody struct {
	date storeline.Date
	body storeline.Body
}

// datedPush builds a push of store's events from seq on, with the
// postings the shop derives.
func datedPush(t *testing.T, store storeline.StoreID, seq uint64, bodies ...datedBody) []byte {
	t.Helper()
	req := replication.PushRequest{V: replication.ProtocolVersion, Store: string(store), Epoch: 1}
	for i, d := range bodies {
		ev := storeline.Event{ID: storeline.NewEventID(), Origin: store, Epoch: 1, Seq: seq + uint64(i), SchemaVersion: storeline.SchemaVersion,
			Kind: d.body.EventKind(), Body: d.body, OccurredAt: time.Now().UTC(), BusinessDate: d.date}
		ps, err := storeline.DerivePostings(store, d.body)
		if err != nil {
			t.Fatal(err)
		}
		ev.Postings = ps
		w, err := replication.EventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, w)
	}
	b, err := replication.Encode(&req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func milkReceipt(t *testing.T, qty string) *storeline.Receipt {
	r := &storeline.Receipt{Terminal: "till-1", Shift: "sh1", Seller: "alice", Currency: "EUR",
		Lines:    []storeline.Line{{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec(qty), Price: dec("1.50"), VATRate: dec("10")}},
		Payments: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.50").Mul(dec(qty))}}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	return r
}

func milkReturn(t *testing.T, qty string) *storeline.Return {
	r := &storeline.Return{Terminal: "till-1", Shift: "sh1", Seller: "alice", Manager: "alice", Currency: "EUR", Reason: "x",
		Lines:   []storeline.Line{{Item: "milk", Dept: "main", Unit: storeline.Piece, Qty: dec(qty), Price: dec("1.50"), VATRate: dec("10")}},
		Refunds: []storeline.Payment{{Method: storeline.Cash, Amount: dec("1.50").Mul(dec(qty))}}}
	if err := r.Compute(); err != nil {
		t.Fatal(err)
	}
	return r
}

func batchList(t *testing.T, a, q string) []map[string]any {
	t.Helper()
	var body struct{ Batches []map[string]any }
	if err := json.Unmarshal(mustOK(t, apiDo(t, "GET", a, "/v1/batches?store=s1"+q, viewerKey, nil, nil)).body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Batches
}

// TestReviewStocktakeBeforeFirstEvent: a shop counts before its journal
// holds any event (an opening count, or the first count of a new epoch):
// position seq 0 is applied trivially, so the stocktake posts against the
// books as of the pull cursor rather than being refused forever.
func TestReviewStocktakeBeforeFirstEvent(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *central.Config) { cfg.ReplicationTokens = replTokens() })
	n := c.nodes[0]
	a := n.APIAddr()
	seedBackOffice(t, a)
	createAndPost(t, a, "inv1", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "10", "purchase_price": "1.10"})})
	cursor := central.Version{Index: n.AppliedIndex() + 1}.Pack() - 1
	// Delivered during the count, after the shop's pull cursor.
	createAndPost(t, a, "inv2", map[string]any{"type": "incoming_invoice", "store": "s2", "supplier": "p1", "lines": lines(
		map[string]any{"item": "milk", "qty": "5", "purchase_price": "1.10"})})
	d := createAndPost(t, a, "st1", map[string]any{"type": "stocktake", "store": "s2",
		"position": map[string]any{"epoch": 1, "seq": 0, "pull_cursor": cursor},
		"lines":    lines(map[string]any{"item": "milk", "qty": "9"})})
	if got := d.posting("shrinkage/s2/milk", "item:milk"); !got.Equal(dec("1")) {
		t.Fatalf("shrinkage = %s units, want 1 (10 on the books at the count, 9 counted): %+v", got, d.Postings)
	}
	wantStock(t, a, "s2", "milk", "14", "")
	balances(t, a)
}

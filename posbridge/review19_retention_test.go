package posbridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// TestReview19TillsAfterRetention: once the journal's retention pruned a
// day, the tills get clear answers, not short ones: sales statistics
// reaching into it are a 422 naming from (totals missing the pruned
// receipts would look whole), a return naming a pruned receipt is a 404
// naming original that says why, and a retry of the pruned receipt is a
// 409, never a second sale. Days after the pruned one still answer.
func TestReview19TillsAfterRetention(t *testing.T) {
	e := newEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	bob := e.login(tokenT1, "bob", "9999")
	rid := newID()
	receipt := sale(rid, []map[string]any{line("sku", "MILK", "qty", "3", "price", "1.19")},
		[]map[string]any{{"method": "cash", "amount": "3.57"}})
	e.must(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: receipt}), 201)
	stats := func(from, to string) resp {
		return e.do(req{method: "GET", path: "/v1/stats/sales?from=" + from + "&to=" + to, token: tokenT1, session: alice})
	}
	e.must(stats("2026-03-10", "2026-03-10"), 200)

	// Everything central acknowledged (here: all) and older than now.
	res, err := e.led.PruneJournal(context.Background(), ledger.PruneJournal{Before: time.Now().Add(time.Hour), Acked: e.led.Position()})
	if err != nil || res.Pruned != 1 {
		t.Fatalf("PruneJournal = %+v, %v; want the receipt pruned", res, err)
	}

	r := stats("2026-03-01", "2026-03-12")
	e.problem(r, 422, "from")
	if p := r.json(t); !strings.Contains(p["detail"].(string), "2026-03-11") {
		t.Errorf("stats into the pruned days: detail %q does not say from which date the shop keeps its journal", p["detail"])
	}
	e.must(stats("2026-03-11", "2026-03-12"), 200)

	r = e.do(req{method: "POST", path: "/v1/returns", token: tokenT1, session: bob, body: map[string]any{
		"id": newID(), "terminal": "t1", "shift": "sh1", "seller": "alice", "occurred_at": t0.Format(time.RFC3339),
		"original": rid, "reason": "sour",
		"lines":   []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
		"refunds": []map[string]any{{"method": "cash", "amount": "1.19"}},
	}})
	e.problem(r, 404, "original")
	if p := r.json(t); !strings.Contains(p["detail"].(string), "retention") {
		t.Errorf("return of a pruned receipt: detail %q does not say the receipt was pruned", p["detail"])
	}

	// The retry is answered as already recorded before anything of it is
	// checked again: not as a new sale refused for what changed since
	// (here: its item is gone), which a till would take for a lost sale.
	if _, err := e.led.DeleteMaster(context.Background(), storeline.KindItem, "milk"); err != nil {
		t.Fatal(err)
	}
	e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: receipt}), 409, "id")
}

// TestReview19TillTimeOutOfRange: a fact stamped outside the years a
// shop's event can happen in (a till's clock reset to 1970) is a 422
// naming occurred_at and stores nothing: head office rejects such an
// event, so the shop would have kept a sale the chain's books never get.
func TestReview19TillTimeOutOfRange(t *testing.T) {
	e := newEnv(t)
	for _, at := range []string{"1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z"} {
		rc := sale(newID(), []map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")},
			[]map[string]any{{"method": "cash", "amount": "1.19"}})
		rc["occurred_at"] = at
		e.problem(e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: rc}), 422, "occurred_at")
	}
	if err := e.led.EventsByDate("0001-01-01", "9999-12-31", func(ev storeline.Event) error {
		t.Errorf("stored %s of %s", ev.Kind, ev.BusinessDate)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

package posbridge_test

import (
	"testing"
	"time"

	"github.com/storeline/storeline"
)

// TestCloseWaitsForTheShiftsFactsInFlight: a receipt whose append is
// still in the ledger's queue when its shift's close is asked for lands
// either in the close's Z report or not in the shift at all; it used to
// land in the shift after the close had read its totals (counted in no
// report).
func TestCloseWaitsForTheShiftsFactsInFlight(t *testing.T) {
	e, g, w, led := newGatedEnv(t)
	alice := e.login(tokenT1, "alice", "1234")
	e.must(e.do(req{method: "POST", path: "/v1/shifts", token: tokenT1, session: alice, body: openShiftBody(newID(), "sh1", "100.00")}), 201)
	for len(w.appends) > 0 {
		<-w.appends
	}
	holdCommits(t, g, led)
	receipt := make(chan resp, 1)
	go func() {
		receipt <- e.do(req{method: "POST", path: "/v1/receipts", token: tokenT1, body: sale(newID(),
			[]map[string]any{line("sku", "MILK", "qty", "1", "price", "1.19")}, []map[string]any{{"method": "cash", "amount": "1.19"}})})
	}()
	if k := <-w.appends; k != storeline.KindReceipt {
		t.Fatalf("first append %s, want the receipt", k)
	}
	closed := make(chan resp, 1)
	go func() {
		closed <- e.do(req{method: "POST", path: "/v1/shifts/sh1/close", token: tokenT1, session: alice, body: map[string]any{"id": newID()}})
	}()
	// Without the shift's lock the close reads its totals (the receipt
	// not yet among them) and queues its append behind the receipt's;
	// with it, it waits for the receipt. Either way, let the commits go
	// once it had the time to queue.
	select {
	case <-w.appends:
	case <-time.After(500 * time.Millisecond):
	}
	g.open()
	if r := <-receipt; r.status != 201 {
		t.Fatalf("receipt = %d %s", r.status, r.body)
	}
	z := e.must(<-closed, 201)
	rep := z["report"].(map[string]any)
	tot, err := led.ShiftTotals("t1", "sh1")
	if err != nil {
		t.Fatal(err)
	}
	if rep["receipts"] != float64(tot.Receipts) || tot.Receipts != 1 {
		t.Fatalf("Z report counts %v receipts, the shift holds %d (want 1 in both): %v", rep["receipts"], tot.Receipts, rep)
	}
}

package node_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/node"
)

// TestPointsOnRealNode: on a started node with the sample chain, a card's
// receipt earns N points; N+1 is refused with a problem naming the field;
// two tills paying N at once: exactly one is taken; conservation holds.
func TestPointsOnRealNode(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	imp := sampleImport(t)
	for _, r := range []storeline.Record{
		&storeline.Customer{ID: "cust-1", Name: "Ann"},
		&storeline.CardRecord{ID: "card-1", Code: sample.CardCode(0), Kind: storeline.LoyaltyCard, Customer: "cust-1"},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		imp.Records = append(imp.Records, node.MasterEntry{Kind: r.MasterKind(), Record: b})
	}
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, imp); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	tokens := map[string]string{}
	for _, id := range []string{"till-1", "till-2"} {
		_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: storeline.TerminalID(id)})
		var term node.TerminalResponse
		if err := json.Unmarshal(body, &term); err != nil || term.Token == "" {
			t.Fatalf("terminal %s: %s", id, body)
		}
		tokens[id] = term.Token
	}
	till, card := n.TillURL(), sample.CardCode(0)
	receipt := func(term, qty string, pays ...map[string]any) map[string]any {
		return map[string]any{
			"id": storeline.NewEventID(), "terminal": term, "shift": "shift-1", "seller": "cashier-1",
			"occurred_at": "2026-11-28T10:00:00Z", "card": card,
			"lines":    []map[string]string{{"sku": "SKU00001", "qty": qty, "price": "1.19"}},
			"payments": pays,
		}
	}
	code, body := call(t, "POST", till+"/v1/receipts", tokens["till-1"], receipt("till-1", "100", map[string]any{"method": "cash", "amount": "119.00"}))
	var earned struct {
		PointsEarned int64 `json:"points_earned"`
	}
	if code != 201 || json.Unmarshal(body, &earned) != nil || earned.PointsEarned <= 0 {
		t.Fatalf("earning receipt = %d %s", code, body)
	}
	pts := earned.PointsEarned
	spend := func(term string, p int64) (int, []byte) {
		// 11.90 earns 11 points, fewer than it pays: the loser of the race
		// cannot live on the winner's accrual.
		return call(t, "POST", till+"/v1/receipts", tokens[term], receipt(term, "10",
			map[string]any{"method": "points", "points": p}, map[string]any{"method": "cash", "amount": "11.90"}))
	}
	if code, body := spend("till-1", pts+1); code != 409 || !strings.Contains(string(body), `"field":"payments[0].points"`) {
		t.Fatalf("spending %d of %d points = %d %s, want 409 naming payments[0].points", pts+1, pts, code, body)
	}
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, term := range []string{"till-1", "till-2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = spend(term, pts)
		}()
	}
	wg.Wait()
	if !(codes[0] == 201 && codes[1] == 409 || codes[0] == 409 && codes[1] == 201) {
		t.Fatalf("two tills paying all %d points: %v, want one 201 and one 409", pts, codes)
	}
	if code, body := call(t, "GET", n.AdminURL()+"/admin/v1/conservation", adminToken, nil); code != 200 {
		t.Errorf("conservation = %d %s", code, body)
	}
}

package node_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

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

// TestReturnOfSpentPointsRecordsDebt: a return takes back the points its
// receipt earned from the shop's rights as far as they go; what the
// customer has already spent becomes a recorded debt, shown on the card,
// and the return is never refused for it. A retry keeps the figures.
func TestReturnOfSpentPointsRecordsDebt(t *testing.T) {
	const managerPIN = "93770521"
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
	_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
	var term node.TerminalResponse
	if err := json.Unmarshal(body, &term); err != nil || term.Token == "" {
		t.Fatalf("terminal: %s", body)
	}
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken,
		node.SellerRequest{ID: "manager-1", Name: "Max", Role: storeline.Manager, PIN: managerPIN}); code != 200 {
		t.Fatalf("seller = %d %s", code, body)
	}
	b, _ := json.Marshal(map[string]string{"seller": "manager-1", "pin": managerPIN})
	_, _, lb := rawCall(t, "POST", n.TillURL()+"/v1/sessions", term.Token, "", b)
	var sess struct{ Token string }
	if json.Unmarshal(lb, &sess) != nil || sess.Token == "" {
		t.Fatalf("login: %s", lb)
	}
	till, card := n.TillURL(), sample.CardCode(0)
	earnID := storeline.NewEventID()
	code, body := call(t, "POST", till+"/v1/receipts", term.Token, map[string]any{
		"id": earnID, "terminal": "till-1", "shift": "shift-1", "seller": "manager-1",
		"occurred_at": "2026-11-28T10:00:00Z", "card": card,
		"lines":    []map[string]string{{"sku": "SKU00001", "qty": "100", "price": "1.19"}},
		"payments": []map[string]string{{"method": "cash", "amount": "119.00"}},
	})
	var earned struct {
		PointsEarned int64 `json:"points_earned"`
	}
	if code != 201 || json.Unmarshal(body, &earned) != nil || earned.PointsEarned <= 5 {
		t.Fatalf("earning receipt = %d %s", code, body)
	}
	p := earned.PointsEarned
	// Spend all but 5 on a bottle of spirits, which earns no points.
	var sku string
	var price decimal.Decimal
	ch := sample.New("x")
	for i, it := range ch.Items {
		if it.Group == "spirits" {
			sku, price = it.SKU, ch.Prices[i].Price
			break
		}
	}
	worth := decimal.NewFromInt(p - 5).Shift(-2) // the sample programme: a point is 0.01
	code, body = call(t, "POST", till+"/v1/receipts", term.Token, map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "manager-1",
		"occurred_at": "2026-11-28T10:01:00Z", "card": card,
		"lines":    []map[string]string{{"sku": sku, "qty": "1", "price": price.StringFixed(2)}},
		"payments": []map[string]any{{"method": "points", "points": p - 5}, {"method": "cash", "amount": price.Sub(worth).StringFixed(2)}},
	})
	if code != 201 {
		t.Fatalf("spending receipt = %d %s", code, body)
	}
	var spent struct {
		PointsEarned int64 `json:"points_earned"`
	}
	_ = json.Unmarshal(body, &spent)
	rights := 5 + spent.PointsEarned

	ret, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "manager-1",
		"occurred_at": "2026-11-28T10:05:00Z", "reason": "changed mind", "original": earnID,
		"lines":   []map[string]string{{"sku": "SKU00001", "qty": "100", "price": "1.19"}},
		"refunds": []map[string]string{{"method": "cash", "amount": "119.00"}},
	})
	for attempt, want := range []int{201, 200} {
		if code, _, body := rawCall(t, "POST", till+"/v1/returns", term.Token, sess.Token, ret); code != want {
			t.Fatalf("return attempt %d = %d %s, want %d", attempt, code, body, want)
		}
	}
	_, cb := call(t, "GET", till+"/v1/cards/"+card, term.Token, nil)
	var c struct {
		Points struct {
			Debt       int64 `json:"debt"`
			RightsHere int64 `json:"rights_here"`
			Balance    int64 `json:"balance"`
		} `json:"points"`
	}
	if err := json.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	if c.Points.Debt != p-rights || c.Points.RightsHere != 0 || c.Points.Balance != 0 {
		t.Errorf("card after the return: %s; want debt %d, no rights, balance 0", cb, p-rights)
	}
	if code, body := call(t, "GET", n.AdminURL()+"/admin/v1/conservation", adminToken, nil); code != 200 {
		t.Errorf("conservation = %d %s", code, body)
	}
}

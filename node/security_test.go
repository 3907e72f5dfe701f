package node_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/node"
)

// lockedBuffer collects a node's logs; the node logs from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawCall sends body as is, with optional session, and returns the status,
// content type and body.
func rawCall(t *testing.T, method, url, token, session string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("X-Session", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out.Bytes()
}

// journalLen is the number of events in the node's own journal.
func journalLen(t *testing.T, n *node.Node) int {
	t.Helper()
	code, body := call(t, "GET", n.AdminURL()+"/admin/v1/journal?limit=1000", adminToken, nil)
	var page node.JournalPage
	if code != 200 || json.Unmarshal(body, &page) != nil {
		t.Fatalf("journal = %d %s", code, body)
	}
	return len(page.Events)
}

// TestSecurityRefusals is the tills' side of the security checks: a till
// without a token, a cashier doing a manager's action, PIN guessing beyond
// the limit, oversized bodies and deep JSON nesting are each refused with
// the right status and a problem+json body, the journal does not change,
// and no secret (admin token, terminal token, session token, PIN) ever
// appears in the logs or in /metrics.
func TestSecurityRefusals(t *testing.T) {
	logs := &lockedBuffer{}
	c := node.DefaultConfig()
	c.StoreID = "shop-1"
	c.DataDir = t.TempDir()
	c.TillAddr, c.AdminAddr, c.AdminToken = "127.0.0.1:0", "127.0.0.1:0", adminToken
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	n, err := node.New(c, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })

	const cashierPIN, managerPIN, guessPIN = "48213977", "93770521", "11235813"
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
	var term node.TerminalResponse
	if err := json.Unmarshal(body, &term); err != nil || term.Token == "" {
		t.Fatalf("terminal = %s", body)
	}
	for _, s := range []node.SellerRequest{
		{ID: "cashier-1", Name: "Ann", Role: storeline.Cashier, PIN: cashierPIN},
		{ID: "manager-1", Name: "Max", Role: storeline.Manager, PIN: managerPIN},
		{ID: "cashier-2", Name: "Bob", Role: storeline.Cashier, PIN: cashierPIN},
	} {
		if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken, s); code != 200 {
			t.Fatalf("seller %s = %d %s", s.ID, code, body)
		}
	}
	till := n.TillURL()
	login := func(seller, pin string) (int, string) {
		b, _ := json.Marshal(map[string]string{"seller": seller, "pin": pin})
		code, _, body := rawCall(t, "POST", till+"/v1/sessions", term.Token, "", b)
		var s struct{ Token string }
		json.Unmarshal(body, &s)
		return code, s.Token
	}
	code, cashierSession := login("cashier-1", cashierPIN)
	if code != 201 || cashierSession == "" {
		t.Fatalf("cashier login = %d", code)
	}
	before := journalLen(t, n)

	receipt, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:00:00Z",
		"lines":       []map[string]string{{"sku": "SKU00001", "qty": "1", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "1.19"}},
	})
	ret, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:05:00Z", "reason": "damaged",
		"lines":   []map[string]string{{"sku": "SKU00001", "qty": "1", "price": "1.19"}},
		"refunds": []map[string]string{{"method": "cash", "amount": "1.19"}},
	})
	// A new fact with a forged session: the session's rights are checked
	// for a new fact once its body holds (a retry is answered whatever
	// its session), so the body is a valid cash-in.
	cash, _ := json.Marshal(map[string]any{
		"id": storeline.NewEventID(), "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:05:00Z", "direction": "in", "amount": "1.00",
	})
	deep := []byte(strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200))
	huge := append(append([]byte(`{"id":"`), bytes.Repeat([]byte("x"), 4<<20)...), []byte(`"}`)...)

	refusals := []struct {
		name, method, path, token, session string
		body                               []byte
		want                               int
	}{
		{"receipt without a token", "POST", "/v1/receipts", "", "", receipt, 401},
		{"receipt with a wrong token", "POST", "/v1/receipts", "not-a-terminal-token-0123", "", receipt, 401},
		{"stock without a token", "GET", "/v1/stock/SKU00001", "", "", nil, 401},
		{"cash without a session", "POST", "/v1/cash", term.Token, "", []byte(`{}`), 401},
		{"cash with a forged session", "POST", "/v1/cash", term.Token, "forged-session-0123456789", cash, 401},
		{"return by a cashier", "POST", "/v1/returns", term.Token, cashierSession, ret, 403},
		{"deep JSON nesting", "POST", "/v1/receipts", term.Token, "", deep, 400},
		{"oversized body", "POST", "/v1/receipts", term.Token, "", huge, 413},
		{"truncated body", "POST", "/v1/receipts", term.Token, "", receipt[:len(receipt)/2], 400},
	}
	for _, r := range refusals {
		code, ctype, body := rawCall(t, r.method, till+r.path, r.token, r.session, r.body)
		if code != r.want || !strings.HasPrefix(ctype, "application/problem+json") {
			t.Errorf("%s: %d %s %s, want %d problem+json", r.name, code, ctype, body, r.want)
		}
	}

	// PIN guessing: PINAttempts failures lock the seller out on this till,
	// and then even the right PIN is refused.
	for i := 0; i < c.PINAttempts; i++ {
		if code, _ := login("cashier-2", guessPIN); code != 401 {
			t.Fatalf("guess %d = %d, want 401", i+1, code)
		}
	}
	if code, _ := login("cashier-2", guessPIN); code != 429 {
		t.Errorf("guess beyond the limit = %d, want 429", code)
	}
	if code, _ := login("cashier-2", cashierPIN); code != 429 {
		t.Errorf("the right PIN while locked out = %d, want 429", code)
	}

	if after := journalLen(t, n); after != before {
		t.Errorf("refused requests changed the journal: %d events, had %d", after, before)
	}

	// A manager's return goes through, so the refusal above was the role's.
	code, managerSession := login("manager-1", managerPIN)
	if code != 201 {
		t.Fatalf("manager login = %d", code)
	}
	if code, _, body := rawCall(t, "POST", till+"/v1/receipts", term.Token, "", receipt); code != 201 {
		t.Fatalf("receipt = %d %s", code, body)
	}
	if code, _, body := rawCall(t, "POST", till+"/v1/returns", term.Token, managerSession, ret); code != 201 && code != 200 {
		t.Errorf("return by a manager = %d %s", code, body)
	}

	_, metrics := call(t, "GET", n.AdminURL()+"/metrics", "", nil)
	secrets := map[string]string{
		"admin token": adminToken, "terminal token": term.Token,
		"cashier session": cashierSession, "manager session": managerSession,
		"cashier PIN": cashierPIN, "manager PIN": managerPIN, "guessed PIN": guessPIN,
	}
	for what, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the %s appears in the logs", what)
		}
		if strings.Contains(string(metrics), s) {
			t.Errorf("the %s appears in /metrics", what)
		}
	}
}

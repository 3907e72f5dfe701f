package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

const review11TillToken = "review11-till-token-0123456789"

// review11Receipt is a receipt of two SKU00001 at till-1 by cashier-1.
func review11Receipt(id storeline.EventID) map[string]any {
	return map[string]any{
		"id": id, "terminal": "till-1", "shift": "shift-1", "seller": "cashier-1",
		"occurred_at": "2026-11-28T10:00:00Z",
		"lines":       []map[string]string{{"sku": "SKU00001", "qty": "2", "price": "1.19"}},
		"payments":    []map[string]string{{"method": "cash", "amount": "5.00"}},
	}
}

// TestReviewBackupWhileTillsWriteRestoresConsistent: an online backup over
// the admin API taken while tills commit receipts restores (with the real
// restore code) to a ledger whose balances sum to zero, which holds every
// receipt acknowledged before the backup was asked for, whose journal has
// no gap, and whose stock agrees with the receipts it holds.
func TestReviewBackupWhileTillsWriteRestoresConsistent(t *testing.T) {
	withTill := func(c *node.Config) {
		c.Terminals = []node.TerminalToken{{ID: "till-1", Token: review11TillToken}}
	}
	n := startNode(t, t.TempDir(), withTill)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/sellers", adminToken,
		node.SellerRequest{ID: "cashier-1", Name: "Ann", Role: storeline.Cashier, PIN: "1234"}); code != 200 {
		t.Fatalf("seller = %d %s", code, body)
	}
	if code, body := call(t, "POST", n.TillURL()+"/v1/sessions", review11TillToken, map[string]string{"seller": "cashier-1", "pin": "1234"}); code != 201 {
		t.Fatalf("login = %d %s", code, body)
	}

	const tills, perTill, before = 4, 40, 20
	var (
		mu     sync.Mutex
		acked  []storeline.EventID
		failed []string
	)
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perTill {
				id := storeline.NewEventID()
				b, _ := json.Marshal(review11Receipt(id))
				req, _ := http.NewRequest("POST", n.TillURL()+"/v1/receipts", bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer "+review11TillToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
					continue
				}
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode == http.StatusCreated {
					acked = append(acked, id)
					if len(acked) >= before {
						once.Do(func() { close(enough) })
					}
				} else {
					failed = append(failed, fmt.Sprint(resp.StatusCode))
				}
				mu.Unlock()
			}
		}()
	}
	<-enough
	mu.Lock()
	ackedBefore := append([]storeline.EventID(nil), acked...)
	mu.Unlock()
	code, backup := call(t, "GET", n.AdminURL()+"/admin/v1/backup", adminToken, nil)
	wg.Wait()
	if code != 200 {
		t.Fatalf("backup = %d %s", code, backup)
	}
	if len(failed) > 0 {
		t.Fatalf("receipts refused during the backup: %v", failed)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if err := ledger.Restore(dir, bytes.NewReader(backup), n.Ledger().Epoch()+1); err != nil {
		t.Fatalf("restore: %v", err)
	}
	n2 := startNode(t, dir, withTill)
	led := n2.Ledger()
	if err := led.CheckConservation(); err != nil {
		t.Errorf("restored ledger breaks conservation: %v", err)
	}
	for _, id := range ackedBefore {
		if _, err := led.Event("shop-1", id); err != nil {
			t.Errorf("receipt %s acknowledged before the backup began is not in the restore: %v", id, err)
		}
	}
	evs, err := led.Journal("shop-1", ledger.Position{}, ledger.MaxJournalLimit)
	if err != nil {
		t.Fatal(err)
	}
	receipts := 0
	for i, ev := range evs {
		if i > 0 && ev.Epoch == evs[i-1].Epoch && ev.Seq != evs[i-1].Seq+1 {
			t.Errorf("restored journal has a gap: seq %d after %d", ev.Seq, evs[i-1].Seq)
		}
		if ev.Kind == storeline.KindReceipt {
			receipts++
		}
	}
	if receipts < len(ackedBefore) {
		t.Errorf("restored journal holds %d receipts, %d were acknowledged before the backup", receipts, len(ackedBefore))
	}
	want := fmt.Sprintf(`"on_hand":"%d"`, -2*receipts)
	if code, body := call(t, "GET", n2.TillURL()+"/v1/stock/SKU00001", review11TillToken, nil); code != 200 || !strings.Contains(string(body), want) {
		t.Errorf("restored stock = %d %s, want %s (%d receipts of 2 in the journal)", code, body, want, receipts)
	}
	if code, body := call(t, "GET", n2.AdminURL()+"/admin/v1/conservation", adminToken, nil); code != 200 {
		t.Errorf("restored node's conservation = %d %s", code, body)
	}
}

// review11Entry is one import entry of rec.
func review11Entry(t *testing.T, rec storeline.Record) node.MasterEntry {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return node.MasterEntry{Kind: rec.MasterKind(), Record: b}
}

// TestReviewImportRefusesAnotherStoresTerminal: a master import holding a
// terminal of another shop (head office's terminal list, say) is refused
// naming the record, and stores nothing: accepted, it replaced this shop's
// own terminal of that ID, whose till was then locked out (401), and stored
// a terminal the tills' API never accepts.
func TestReviewImportRefusesAnotherStoresTerminal(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	_, body := call(t, "POST", n.AdminURL()+"/admin/v1/terminals", adminToken, node.TerminalRequest{ID: "till-1"})
	var term node.TerminalResponse
	if err := json.Unmarshal(body, &term); err != nil || term.Token == "" {
		t.Fatalf("issue terminal: %s", body)
	}
	version := n.Ledger().MasterVersion()
	imp := node.MasterImport{Records: []node.MasterEntry{
		review11Entry(t, &storeline.Terminal{ID: "till-2", Store: "shop-1", Name: "Till 2", TokenHash: storeline.TokenHash("till-two-token-0123456789")}),
		review11Entry(t, &storeline.Terminal{ID: "till-1", Store: "shop-2", Name: "Till 1 of shop 2", TokenHash: storeline.TokenHash("shop-2-till-token-0123456789")}),
	}}
	code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, imp)
	var p node.Problem
	_ = json.Unmarshal(body, &p)
	if code != http.StatusBadRequest || p.Field != "records[1].record.store" {
		t.Errorf("import of another shop's terminal = %d %s, want 400 naming records[1].record.store", code, body)
	}
	if got := n.Ledger().MasterVersion(); got != version {
		t.Errorf("a refused import moved the master version %d -> %d", version, got)
	}
	if code, body := call(t, "GET", n.TillURL()+"/v1/catalog/changes?after=0&limit=5", term.Token, nil); code != 200 {
		t.Errorf("till-1 after the import = %d %s, want 200 (its token still valid)", code, body)
	}
}

// TestReviewImportDuplicateUniqueKeysStoresNothing: an import whose
// records share a unique key (two items with one barcode, two cards with
// one code), within the request or with what is stored, is a 409 and
// stores none of its records.
func TestReviewImportDuplicateUniqueKeysStoresNothing(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	if code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, sampleImport(t)); code != 200 {
		t.Fatalf("import = %d %s", code, body)
	}
	var milk storeline.Item
	if err := n.Ledger().GetMaster(storeline.KindItem, "milk-1l", &milk); err != nil {
		t.Fatal(err)
	}
	item := func(id, sku, code string) storeline.Record {
		it := milk
		it.ID, it.SKU, it.Name = storeline.ItemID(id), sku, "Review "+id
		it.Barcodes = []storeline.ItemBarcode{{Code: code, Factor: milk.Barcodes[0].Factor}}
		return &it
	}
	card := func(id, code string) storeline.Record {
		return &storeline.CardRecord{ID: storeline.CardID(id), Code: code, Kind: storeline.LoyaltyCard, Customer: "review-cust"}
	}
	cust := &storeline.Customer{ID: "review-cust", Name: "Review"}
	for name, recs := range map[string][]storeline.Record{
		"two new items, one barcode":      {cust, item("rv-a", "RVSKU-A", "4006381333931"), item("rv-b", "RVSKU-B", "4006381333931")},
		"a new item, milk's barcode":      {cust, item("rv-c", "RVSKU-C", milk.Barcodes[0].Code)},
		"two cards, one code":             {cust, card("rv-card-1", "9990001"), card("rv-card-2", "9990001")},
		"a new item, milk's SKU and code": {cust, item("rv-d", milk.SKU, "4006381333948")},
	} {
		version := n.Ledger().MasterVersion()
		imp := node.MasterImport{}
		for _, r := range recs {
			imp.Records = append(imp.Records, review11Entry(t, r))
		}
		code, body := call(t, "POST", n.AdminURL()+"/admin/v1/master", adminToken, imp)
		if code != http.StatusConflict {
			t.Errorf("%s: import = %d %s, want 409", name, code, body)
		}
		if got := n.Ledger().MasterVersion(); got != version {
			t.Errorf("%s: a refused import moved the master version %d -> %d", name, version, got)
		}
	}
}

// TestReviewValidateRefusesSharedTerminalToken: two configured terminals
// with one token pass Validate today, and the node then fails to start
// (the token's hash is a unique key of terminals). Validate names it.
func TestReviewValidateRefusesSharedTerminalToken(t *testing.T) {
	c := reviewConfig(t.TempDir())
	c.Terminals = []node.TerminalToken{
		{ID: "till-1", Token: "shared-till-token-0123456789"},
		{ID: "till-2", Token: "shared-till-token-0123456789"},
	}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "Terminals[1].Token") {
		t.Errorf("Validate of two terminals with one token = %v, want an error naming Terminals[1].Token", err)
	}
	if err == nil {
		n, nerr := node.New(c, slog.New(slog.DiscardHandler), nil)
		if nerr != nil {
			t.Fatal(nerr)
		}
		if serr := n.Start(); serr != nil {
			t.Logf("and Start fails: %v", serr)
		}
		n.Stop()
	}
}

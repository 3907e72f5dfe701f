package tillsim_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/internal/tillsim"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/node"
)

const adminToken = "admin-token-0123456789"

// startNode starts a store node with the sample chain, a few loyalty
// cards, on ephemeral ports in a temp dir.
func startNode(t testing.TB, store storeline.StoreID) *node.Node {
	t.Helper()
	c := node.DefaultConfig()
	c.StoreID, c.DataDir, c.AdminToken = store, t.TempDir(), adminToken
	c.TillAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.WALSegmentBytes, c.MaxBatchBytes = 8<<20, 1<<20
	n, err := node.New(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	chain := sample.New(store)
	var herr error
	recs := chain.Records(func(s sample.SellerPIN) *storeline.Seller {
		rec, err := node.SellerRecord(node.SellerRequest{ID: s.ID, Name: s.Name, Role: s.Role, PIN: s.PIN})
		if err != nil {
			herr = err
		}
		return rec
	})
	if herr != nil {
		t.Fatal(herr)
	}
	for i, code := range testCards {
		id := storeline.CustomerID("cust-" + code)
		var group storeline.CustGroupID
		if i == 0 {
			group = "vip" // the sample's customer group with a price policy
		}
		recs = append(recs, &storeline.Customer{ID: id, Name: "Customer " + code, Group: group},
			&storeline.CardRecord{ID: storeline.CardID("card-" + code), Code: code, Kind: storeline.LoyaltyCard, Customer: id})
	}
	if _, err := n.Ledger().PutMaster(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return n
}

var testCards = []string{"C1000001", "C1000002", "C1000003"}

// issueTerminal issues a terminal token through the node's admin API.
func issueTerminal(t testing.TB, n *node.Node, id string) string {
	t.Helper()
	var tr node.TerminalResponse
	if code := doJSON(t, "POST", n.AdminURL()+"/admin/v1/terminals", map[string]string{"Authorization": "Bearer " + adminToken}, node.TerminalRequest{ID: storeline.TerminalID(id)}, &tr); code != 200 {
		t.Fatalf("issue terminal %s = %d", id, code)
	}
	return tr.Token
}

func doJSON(t testing.TB, method, url string, headers map[string]string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// faulty is a transport that loses answers: for every dropEvery-th
// distinct fact it forwards the request, lets the node commit it, and
// then reports a transport error instead of the answer (the first time
// only); for every failEvery-th distinct fact it answers 503 without
// forwarding. The simulator must retry both with the same body.
type faulty struct {
	next                 http.RoundTripper
	dropEvery, failEvery int

	mu      sync.Mutex
	seen    map[[32]byte]bool
	n       int
	dropped int
	failed  int
}

var factPaths = []string{"/v1/receipts", "/v1/returns", "/v1/cash", "/v1/shifts"}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	isFact := false
	for _, p := range factPaths {
		isFact = isFact || (r.Method == "POST" && strings.HasPrefix(r.URL.Path, p))
	}
	if !isFact {
		return f.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	key := sha256.Sum256(append([]byte(r.URL.Path), body...))
	f.mu.Lock()
	first := !f.seen[key]
	f.seen[key] = true
	drop, fail := false, false
	if first {
		f.n++
		drop = f.n%f.dropEvery == 0
		fail = !drop && f.n%f.failEvery == 0
	}
	if drop {
		f.dropped++
	}
	if fail {
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return &http.Response{StatusCode: 503, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
	}
	resp, err := f.next.RoundTrip(r)
	if err != nil || !drop {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("faulty: answer lost")
}

// TestAgainstNodes runs the simulator against two real nodes, one with
// terminals provisioned through its admin API and one with terminals
// given, through a transport that loses answers, and checks the run
// against what the nodes hold.
func TestAgainstNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := startNode(t, "shop-1"), startNode(t, "shop-2")
	var terms []tillsim.Terminal
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("till-%d", i)
		terms = append(terms, tillsim.Terminal{ID: id, Token: issueTerminal(t, n2, id)})
	}
	ft := &faulty{next: http.DefaultTransport, dropEvery: 7, failEvery: 11, seen: map[[32]byte]bool{}}
	var mu sync.Mutex
	var facts []tillsim.Fact
	var progress []tillsim.Progress
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{
		{URL: n1.TillURL(), AdminURL: n1.AdminURL(), AdminToken: adminToken, Cards: testCards},
		{URL: n2.TillURL(), Terminals: terms, Cards: append([]string{"C9999999"}, testCards...)}, // one card the node does not know
	}
	cfg.TillsPerShop = 3 // shop-1 provisions 3; shop-2 has 2 listed
	cfg.Receipts = 200
	cfg.Seed = 7
	cfg.ReceiptsPerShift = 20
	cfg.ReturnRate, cfg.CashOpRate = 0.08, 0.08
	cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Millisecond, 10*time.Millisecond
	cfg.Transport = ft
	cfg.Observe = func(f tillsim.Fact) {
		mu.Lock()
		defer mu.Unlock()
		facts = append(facts, f)
	}
	cfg.Progress = func(p tillsim.Progress) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, p)
	}
	cfg.ProgressEvery = 50 * time.Millisecond
	sum, err := tillsim.Run(context.Background(), cfg)
	var out bytes.Buffer
	sum.Write(&out)
	t.Logf("summary:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}

	// The run as the simulator saw it.
	if sum.Receipts != cfg.Receipts || sum.Unknown != 0 || sum.Failed != 0 {
		t.Errorf("receipts %d, unknown %d, failed %d; want %d, 0, 0 (first error: %s)", sum.Receipts, sum.Unknown, sum.Failed, cfg.Receipts, sum.FirstError)
	}
	if ft.dropped == 0 || ft.failed == 0 {
		t.Fatalf("the faulty transport dropped %d answers and failed %d requests; want some of each", ft.dropped, ft.failed)
	}
	if sum.Replayed != ft.dropped {
		t.Errorf("replayed (200) = %d, want one per answer lost (%d)", sum.Replayed, ft.dropped)
	}
	if sum.Retries < ft.dropped+ft.failed {
		t.Errorf("retries = %d, want at least %d", sum.Retries, ft.dropped+ft.failed)
	}
	if sum.Discrepancies != 0 || sum.LocallyPriced != 0 {
		t.Errorf("discrepancies = %d, receipts priced from the catalogue alone = %d; want 0, 0: the tills price with the node's engine (a VIP card's policy included)", sum.Discrepancies, sum.LocallyPriced)
	}
	if sum.Returns == 0 || sum.CashOps == 0 || sum.Weighed == 0 || sum.Packs == 0 || sum.LoyaltyCards == 0 || sum.CardPayments == 0 {
		t.Errorf("the mix lacks something: %+v", sum)
	}
	if sum.ShiftsClosed != sum.ShiftsOpened || sum.ShiftsClosed < 5 || sum.ShiftMismatches != 0 {
		t.Errorf("shifts opened %d, closed %d, mismatches %d; want equal, >= 5, 0", sum.ShiftsOpened, sum.ShiftsClosed, sum.ShiftMismatches)
	}
	if len(progress) == 0 || progress[len(progress)-1].Receipts != sum.Receipts {
		t.Errorf("progress = %v, want reports ending at %d receipts", progress, sum.Receipts)
	}
	for _, e := range sum.Endpoints {
		if e.Count == 0 || e.P50 > e.P99 || e.P99 > e.Max {
			t.Errorf("endpoint stats %+v are not ordered", e)
		}
	}

	for i, n := range []*node.Node{n1, n2} {
		checkShop(t, n, i, sum.Shops[i], facts)
	}
}

// checkShop compares one shop's facts with what its node holds.
func checkShop(t *testing.T, n *node.Node, shop int, ss tillsim.ShopSummary, facts []tillsim.Fact) {
	t.Helper()
	store := storeline.StoreID(fmt.Sprintf("shop-%d", shop+1))
	led := n.Ledger()

	// Every acknowledged fact is in the journal exactly once, and the
	// journal holds nothing else.
	acked := map[storeline.EventID]tillsim.FactKind{}
	for _, f := range facts {
		if f.Shop == shop {
			if _, dup := acked[f.ID]; dup {
				t.Errorf("%s: fact %s acknowledged twice", store, f.ID)
			}
			acked[f.ID] = f.Kind
		}
	}
	inJournal := map[storeline.EventID]int{}
	var from ledger.Position
	for {
		evs, err := led.Journal(store, from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			inJournal[ev.ID]++
			from = ledger.Position{Epoch: ev.Epoch, Seq: ev.Seq + 1}
		}
	}
	for id, kind := range acked {
		if inJournal[id] != 1 {
			t.Errorf("%s: acknowledged %s %s is in the journal %d times, want once", store, kind, id, inJournal[id])
		}
	}
	if len(inJournal) != len(acked) {
		t.Errorf("%s: journal holds %d events, the tills had %d acknowledged", store, len(inJournal), len(acked))
	}

	// Stock: what left the shelves is what the tills sold less what came
	// back, item by item: a retry counted twice would show here.
	want := map[storeline.Asset]decimal.Decimal{}
	for _, f := range facts {
		if f.Shop != shop {
			continue
		}
		for _, l := range f.Lines {
			a := storeline.ItemAsset(storeline.ItemID(l.Item))
			switch f.Kind {
			case tillsim.FactReceipt:
				want[a] = want[a].Sub(l.Qty)
			case tillsim.FactReturn:
				want[a] = want[a].Add(l.Qty)
			}
		}
	}
	bs, err := led.Balances("stock/" + string(store) + "/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[storeline.Asset]decimal.Decimal{}
	for _, b := range bs {
		got[b.Asset] = got[b.Asset].Add(b.Amount)
	}
	for a, w := range want {
		if !got[a].Equal(w) {
			t.Errorf("%s: stock of %s = %s, want %s", store, a, got[a], w)
		}
	}
	for a, g := range got {
		if _, ok := want[a]; !ok && !g.IsZero() {
			t.Errorf("%s: stock of %s = %s, but the tills never sold it", store, a, g)
		}
	}
	if err := led.CheckConservation(); err != nil {
		t.Errorf("%s: conservation: %v", store, err)
	}

	// Shifts: each close's expected cash (the node's Z report) is the
	// till's drawer, which is the float plus the drawer effects of the
	// shift's facts.
	drawer := map[string]decimal.Decimal{}
	closes := 0
	for _, f := range facts {
		if f.Shop != shop {
			continue
		}
		switch f.Kind {
		case tillsim.FactShiftClose:
			closes++
			if !f.Amount.Equal(f.Counted) || !f.Counted.Equal(drawer[f.Shift]) {
				t.Errorf("%s: shift %s: node expects %s, till counted %s, facts add up to %s", store, f.Shift, f.Amount, f.Counted, drawer[f.Shift])
			}
		default:
			drawer[f.Shift] = drawer[f.Shift].Add(f.Drawer)
		}
	}
	if closes == 0 {
		t.Errorf("%s: no shift closed", store)
	}

	// Sales statistics: the node's figures are the summary's.
	tok := issueTerminal(t, n, "checker")
	var ses struct{ Token string }
	if code := doJSON(t, "POST", n.TillURL()+"/v1/sessions", map[string]string{"Authorization": "Bearer " + tok}, map[string]string{"seller": "manager-1", "pin": "9876"}, &ses); code != 201 {
		t.Fatalf("%s: checker login = %d", store, code)
	}
	today := time.Now().UTC()
	var stats struct {
		Total struct {
			Receipts, Returns int
			Sales, Refunds    string
		}
	}
	url := fmt.Sprintf("%s/v1/stats/sales?from=%s&to=%s", n.TillURL(), today.AddDate(0, 0, -1).Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly))
	if code := doJSON(t, "GET", url, map[string]string{"Authorization": "Bearer " + tok, "X-Session": ses.Token}, nil, &stats); code != 200 {
		t.Fatalf("%s: stats = %d", store, code)
	}
	st := stats.Total
	if st.Receipts != ss.Receipts || st.Returns != ss.Returns || st.Sales != ss.Sales.StringFixed(2) || st.Refunds != ss.Refunds.StringFixed(2) {
		t.Errorf("%s: node's stats %+v, summary %d receipts %d returns sales %s refunds %s", store, st, ss.Receipts, ss.Returns, ss.Sales, ss.Refunds)
	}

	// The node's own counter counts each receipt once, retries or not.
	if c := metric(t, n, "storeline_receipts_committed_total"); c != fmt.Sprint(ss.Receipts) {
		t.Errorf("%s: storeline_receipts_committed_total = %s, want %d", store, c, ss.Receipts)
	}
}

// metric scrapes a node's /metrics for one unlabelled sample.
func metric(t *testing.T, n *node.Node, name string) string {
	t.Helper()
	resp, err := http.Get(n.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// TestStopsOnDuration: with a duration and a rate, the run ends by
// itself (how much it sold depends on the machine) with every shift it
// opened closed and balanced.
func TestStopsOnDuration(t *testing.T) {
	t.Parallel()
	n := startNode(t, "shop-1")
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: n.TillURL(), AdminURL: n.AdminURL(), AdminToken: adminToken}}
	cfg.TillsPerShop = 2
	cfg.Duration = 500 * time.Millisecond
	cfg.Rate = 50
	sum, err := tillsim.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ShiftsClosed != sum.ShiftsOpened || sum.ShiftMismatches != 0 || sum.Unknown != 0 || sum.Failed != 0 {
		t.Errorf("summary = %+v", sum)
	}
}

// TestLongTerminalIDs: terminals whose IDs are as long as an ID may be
// (64 characters, or a TerminalPrefix as long as Validate allows) still
// open shifts: the shift IDs the tills make fit the spec's ID pattern.
func TestLongTerminalIDs(t *testing.T) {
	t.Parallel()
	n := startNode(t, "shop-1")
	long := strings.Repeat("t", 64)
	tok := issueTerminal(t, n, long)
	for name, shop := range map[string]tillsim.Shop{
		"terminals given":       {URL: n.TillURL(), Terminals: []tillsim.Terminal{{ID: long, Token: tok}}},
		"terminals provisioned": {URL: n.TillURL(), AdminURL: n.AdminURL(), AdminToken: adminToken},
	} {
		cfg := tillsim.DefaultConfig()
		cfg.Shops = []tillsim.Shop{shop}
		cfg.TillsPerShop = 2
		cfg.TerminalPrefix = strings.Repeat("p", 59) // "-1000" makes 64
		cfg.Receipts = 6
		cfg.ReceiptsPerShift = 2
		sum, err := tillsim.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sum.ShiftsOpened < 2 || sum.ShiftsClosed != sum.ShiftsOpened || sum.Failed != 0 || sum.Receipts != 6 {
			t.Errorf("%s: summary = %+v", name, sum)
		}
	}
}

// TestSetupErrors: a wrong PIN or an unknown seller ends the run with an
// error naming it.
func TestSetupErrors(t *testing.T) {
	t.Parallel()
	n := startNode(t, "shop-1")
	tok := issueTerminal(t, n, "till-1")
	for _, tc := range []struct {
		sellers []tillsim.Seller
		want    string
	}{
		{[]tillsim.Seller{{ID: "cashier-1", PIN: "0000"}}, "log cashier-1 in"},
		{[]tillsim.Seller{{ID: "nobody", PIN: "1234"}}, "seller nobody does not work"},
	} {
		cfg := tillsim.DefaultConfig()
		cfg.Shops = []tillsim.Shop{{URL: n.TillURL(), Terminals: []tillsim.Terminal{{ID: "till-1", Token: tok}}, Sellers: tc.sellers}}
		cfg.Receipts = 5
		_, err := tillsim.Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sellers %v: err = %v, want it to contain %q", tc.sellers, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: "ftp://x"}, {URL: "http://x", AdminURL: "http://y"}}
	cfg.ZipfS, cfg.ReturnRate, cfg.MaxAttempts, cfg.Rate = 1, 2, 0, -1
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate = nil")
	}
	for _, f := range []string{"Shops[0].URL", "Shops[0]:", "Shops[1].AdminToken", "ZipfS", "ReturnRate", "MaxAttempts", "Rate"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Validate does not name %s: %v", f, err)
		}
	}
	if err := tillsim.DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "Shops") {
		t.Errorf("a config without shops: %v", err)
	}
	// NaN fails every comparison: a range check written as two
	// "out of range" tests let `till -rate NaN` through.
	cfg = tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: "http://x", AdminURL: "http://y", AdminToken: "t"}}
	nan := math.NaN()
	cfg.Rate, cfg.ReturnRate, cfg.CardRate, cfg.PointsRate, cfg.ZipfS = nan, nan, nan, nan, nan
	err = cfg.Validate()
	for _, f := range []string{"Rate", "ReturnRate", "CardRate", "PointsRate", "ZipfS"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("Validate with %s NaN does not name it: %v", f, err)
		}
	}
}

package tillsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/tillsim"
)

// fakeNode is a minimal tills' API on an httptest server: a catalogue of
// three items, two sellers, and facts it stores by ID. It tests the
// simulator's own client logic against answers a real node does not give.
type fakeNode struct {
	// brokenFacts answers 201 to a receipt or return with a body that
	// does not decode.
	brokenFacts bool
	// slowPolls holds every catalogue poll after the first read until
	// the request is cancelled.
	slowPolls bool
	// cardPoints answers a card lookup with 1,000 points spendable at 0.01
	// each, up to half a receipt; refusePoints refuses every receipt
	// paying with points (409 naming payments[0].points).
	cardPoints, refusePoints bool

	mu       sync.Mutex
	receipts map[storeline.EventID]bool
	returns  map[storeline.EventID]bool
	created  int // 201 answers to facts
	// points holds each stored receipt's points payment: points and
	// amount as the till sent them.
	points map[storeline.EventID]fakePoints
}

type fakePoints struct {
	points int64
	amount string
}

func newFakeNode(t *testing.T, f *fakeNode) *httptest.Server {
	t.Helper()
	f.receipts, f.returns, f.points = map[storeline.EventID]bool{}, map[storeline.EventID]bool{}, map[storeline.EventID]fakePoints{}
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
	rec := func(kind, id string, v any) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"version": 1, "kind": kind, "id": id, "record": v})
		return b
	}
	mux.HandleFunc("GET /v1/catalog/changes", func(w http.ResponseWriter, r *http.Request) {
		if since, _ := strconv.Atoi(r.URL.Query().Get("since")); since > 0 {
			if f.slowPolls {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}
			answer(w, 200, fmt.Sprintf(`{"changes":[],"next":%d,"more":false}`, since))
			return
		}
		changes := []json.RawMessage{rec("store", "shop-1", map[string]any{
			"id": "shop-1", "currency": "EUR", "departments": []any{map[string]string{"id": "d1"}}, "price_lists": []string{"base"}})}
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("item-%d", i)
			changes = append(changes,
				rec("item", id, map[string]any{"id": id, "sku": fmt.Sprintf("SKU%d", i), "dept": "d1", "unit": "pcs"}),
				rec("price", "base/"+id, map[string]any{"list": "base", "item": id, "from": "2020-01-01T03:00:00+03:00", "price": fmt.Sprintf("%d.50", i)}))
		}
		b, _ := json.Marshal(map[string]any{"changes": changes, "next": 1, "more": false})
		answer(w, 200, string(b))
	})
	mux.HandleFunc("GET /v1/sellers", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"sellers":[{"id":"cashier-1","role":"cashier"},{"id":"manager-1","role":"manager"}]}`)
	})
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Seller string }
		json.NewDecoder(r.Body).Decode(&in)
		role := "cashier"
		if in.Seller == "manager-1" {
			role = "manager"
		}
		answer(w, 201, fmt.Sprintf(`{"token":"session-%s","role":%q}`, in.Seller, role))
	})
	fact := func(kind map[storeline.EventID]bool, broken bool, good string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var in struct {
				ID          storeline.EventID `json:"id"`
				CountedCash string            `json:"counted_cash"`
				Payments    []struct {
					Method string `json:"method"`
					Amount string `json:"amount"`
					Points int64  `json:"points"`
				} `json:"payments"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				answer(w, 400, `{"title":"bad body"}`)
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var pts *fakePoints
			for _, p := range in.Payments {
				if p.Method == "points" {
					pts = &fakePoints{p.Points, p.Amount}
				}
			}
			if pts != nil && f.refusePoints && !kind[in.ID] {
				answer(w, 409, `{"title":"conflict","status":409,"field":"payments[0].points","detail":"points beyond what this shop may take now"}`)
				return
			}
			if kind != nil {
				if kind[in.ID] {
					answer(w, 200, good)
					return
				}
				kind[in.ID] = true
				if pts != nil {
					f.points[in.ID] = *pts
				}
			}
			f.created++
			if broken {
				answer(w, 201, `{"total": "12.`) // cut short
				return
			}
			body := good
			if strings.Contains(good, "%") {
				body = fmt.Sprintf(good, in.CountedCash)
			}
			answer(w, 201, body)
		}
	}
	mux.HandleFunc("POST /v1/receipts", fact(f.receipts, f.brokenFacts, `{"total":"1.00","change":"0.00","discrepancies":[]}`))
	mux.HandleFunc("POST /v1/returns", fact(f.returns, f.brokenFacts, `{}`))
	mux.HandleFunc("POST /v1/cash", fact(nil, false, `{}`))
	mux.HandleFunc("POST /v1/shifts", fact(nil, false, `{}`))
	mux.HandleFunc("POST /v1/shifts/{id}/close", fact(nil, false, `{"report":{"expected_cash":%q}}`))
	mux.HandleFunc("GET /v1/cards/{code}", func(w http.ResponseWriter, r *http.Request) {
		if !f.cardPoints {
			answer(w, 404, `{"title":"no such card"}`)
			return
		}
		answer(w, 200, `{"code":"CARD1","kind":"loyalty","blocked":false,"points":{"programme":"club","balance":1000,"debt":0,"rights_here":1000,`+
			`"spendable_now":1000,"source":"central","point_value":"0.01","max_share":"50"}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func fakeConfig(url string) tillsim.Config {
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: url, Terminals: []tillsim.Terminal{{ID: "till-1", Token: "tok-1"}, {ID: "till-2", Token: "tok-2"}}}}
	cfg.TillsPerShop = 0
	cfg.NodePricing = false
	cfg.LoyaltyRate = 0
	cfg.ReturnRate, cfg.CashOpRate = 0.4, 0.2
	cfg.ReceiptsPerShift = 5
	cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Millisecond, 5*time.Millisecond
	return cfg
}

// TestBrokenAnswerIsAcknowledged: a node answers 201 to receipts and
// returns with a body that does not decode. The facts are stored under
// the IDs the tills chose, so the simulator counts them as created and
// reports each one to Observe (the closing check's view of what the tills
// were told), and the summary names the undecodable answers.
func TestBrokenAnswerIsAcknowledged(t *testing.T) {
	f := &fakeNode{brokenFacts: true}
	srv := newFakeNode(t, f)
	cfg := fakeConfig(srv.URL)
	cfg.Receipts = 30
	var mu sync.Mutex
	seen := map[tillsim.FactKind]map[storeline.EventID]bool{tillsim.FactReceipt: {}, tillsim.FactReturn: {}}
	observed := 0
	cfg.Observe = func(x tillsim.Fact) {
		mu.Lock()
		defer mu.Unlock()
		observed++
		if m := seen[x.Kind]; m != nil {
			m[x.ID] = true
		}
	}
	sum, err := tillsim.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(f.receipts) != cfg.Receipts {
		t.Fatalf("the node stored %d receipts, want %d", len(f.receipts), cfg.Receipts)
	}
	if len(f.returns) == 0 {
		t.Errorf("the node stored no return (a till returns items of the receipts it was told of)")
	}
	for _, k := range []struct {
		kind   tillsim.FactKind
		stored map[storeline.EventID]bool
	}{{tillsim.FactReceipt, f.receipts}, {tillsim.FactReturn, f.returns}} {
		for id := range k.stored {
			if !seen[k.kind][id] {
				t.Errorf("%s %s stored (201 with an undecodable body) but never reported to Observe", k.kind, id)
			}
		}
		if len(seen[k.kind]) != len(k.stored) {
			t.Errorf("%d %ss reported, the node stored %d", len(seen[k.kind]), k.kind, len(k.stored))
		}
	}
	if sum.Created != f.created || observed != f.created {
		t.Errorf("created %d, observed %d; the node created %d", sum.Created, observed, f.created)
	}
	if sum.Receipts != len(f.receipts) || sum.Returns != len(f.returns) || sum.Unknown != 0 || sum.Failed != 0 {
		t.Errorf("summary: receipts %d, returns %d, unknown %d, failed %d; want %d, %d, 0, 0",
			sum.Receipts, sum.Returns, sum.Unknown, sum.Failed, len(f.receipts), len(f.returns))
	}
	if got := sum.Errors["bad answer"]; got != len(f.receipts) {
		t.Errorf(`Errors["bad answer"] = %d, want one per receipt (%d); errors %v`, got, len(f.receipts), sum.Errors)
	}
}

// TestOwnCancellationIsNoError: when the selling ends while a catalogue
// poll is in flight, the simulator cancels the poll itself; that is no
// transport error of the node's (make demo printed "errors transport×2",
// one per shop, for it).
func TestOwnCancellationIsNoError(t *testing.T) {
	f := &fakeNode{slowPolls: true}
	srv := newFakeNode(t, f)
	cfg := fakeConfig(srv.URL)
	cfg.Duration = 300 * time.Millisecond
	cfg.CatalogRefresh = 10 * time.Millisecond
	cfg.Rate = 100
	sum, err := tillsim.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if sum.Receipts == 0 {
		t.Fatalf("no receipts")
	}
	if len(sum.Errors) > 0 {
		t.Errorf("errors %v; want none (the only failed request is the poll the run itself cancelled)", sum.Errors)
	}
}

// TestPointsPayments: customers whose card has points pay part of a
// receipt with them. Each points payment the node stored is reported to
// Observe with its points and their worth, as the till sent them; when
// the node refuses the points (409 naming payments[i].points), the till
// pays it all otherwise on a new receipt, which is no failure.
func TestPointsPayments(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refused=%v", refuse), func(t *testing.T) {
			f := &fakeNode{cardPoints: true, refusePoints: refuse}
			srv := newFakeNode(t, f)
			cfg := fakeConfig(srv.URL)
			cfg.Shops[0].Cards = []string{"CARD1"}
			cfg.LoyaltyRate, cfg.PointsRate = 1, 0.5
			cfg.Receipts = 40
			var mu sync.Mutex
			paid := map[storeline.EventID]tillsim.Fact{}
			var back int64 // points returns gave back
			backWorth := decimal.Zero
			cfg.Observe = func(x tillsim.Fact) {
				mu.Lock()
				defer mu.Unlock()
				if x.Kind == tillsim.FactReceipt && x.Points != 0 {
					paid[x.ID] = x
				}
				if x.Kind == tillsim.FactReturn {
					back, backWorth = back+x.Points, backWorth.Add(x.PointsPaid)
				}
			}
			sum, err := tillsim.Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if sum.Receipts != cfg.Receipts || len(f.receipts) != cfg.Receipts || sum.Failed != 0 || sum.Unknown != 0 {
				t.Fatalf("receipts %d (node %d), failed %d, unknown %d; want %d, 0, 0", sum.Receipts, len(f.receipts), sum.Failed, sum.Unknown, cfg.Receipts)
			}
			if refuse {
				if len(f.points) != 0 || len(paid) != 0 || sum.PointsPayments != 0 || sum.PointsRefused == 0 {
					t.Errorf("refused: node stored %d points payments, observed %d, summary %d, refused %d; want 0, 0, 0, >0",
						len(f.points), len(paid), sum.PointsPayments, sum.PointsRefused)
				}
				return
			}
			if len(f.points) == 0 || len(paid) != len(f.points) || sum.PointsPayments != len(f.points) || sum.PointsRefused != 0 {
				t.Fatalf("node stored %d points payments, observed %d, summary %d (refused %d)", len(f.points), len(paid), sum.PointsPayments, sum.PointsRefused)
			}
			var points int64
			for id, p := range f.points {
				x, ok := paid[id]
				if !ok || x.Points != p.points || x.PointsPaid.StringFixed(2) != p.amount || !x.PointsPaid.Equal(decimal.New(p.points, -2)) ||
					!x.PointsPaid.LessThan(x.Amount) {
					t.Errorf("receipt %s: node got %d points for %s; observed %d for %s of %s", id, p.points, p.amount, x.Points, x.PointsPaid, x.Amount)
				}
				points += p.points
			}
			// The summary's points are net of what returns gave back as
			// points; refunds are what returns gave back in all.
			sh := sum.Shops[0]
			if sh.PointsSpent != points-back || !sh.Points.Equal(decimal.New(points, -2).Sub(backWorth)) || !sh.Cash.Add(sh.Card).Add(sh.Points).Equal(sh.Sales.Sub(sh.Refunds)) {
				t.Errorf("shop summary: %d points worth %s, cash %s, card %s, sales %s, refunds %s; the node got %d points, returns gave back %d worth %s",
					sh.PointsSpent, sh.Points, sh.Cash, sh.Card, sh.Sales, sh.Refunds, points, back, backWorth)
			}
		})
	}
}

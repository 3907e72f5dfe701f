package tillsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/sample"
	"github.com/storeline/storeline/internal/tillsim"
	"github.com/storeline/storeline/node"
)

// deliverAll puts qty of every sample item on the shop's shelves, as head
// office's delivery would: without stock nothing is available to reserve.
func deliverAll(t *testing.T, n *node.Node, store storeline.StoreID, qty decimal.Decimal) []*storeline.Item {
	t.Helper()
	items := sample.New(store).Items
	var ps []storeline.Posting
	for _, it := range items {
		acct := storeline.StockAccount(store, it.Dept, it.ID)
		a := storeline.ItemAsset(it.ID)
		ps = append(ps,
			storeline.Posting{Account: acct, Asset: a, Amount: qty},
			storeline.Posting{Account: "supplier/sup1", Asset: a, Amount: qty.Neg()})
	}
	at := time.Now().UTC().Add(-time.Hour)
	if _, err := n.Ledger().ApplyRemote(context.Background(), storeline.Event{
		ID: storeline.NewEventID(), Origin: "hq", Epoch: 1, Seq: 1, SchemaVersion: storeline.SchemaVersion,
		Kind: storeline.KindTransfer, Body: &storeline.Transfer{Reason: "delivery"},
		OccurredAt: at, BusinessDate: storeline.Date(at.Format(time.DateOnly)), Postings: ps,
	}); err != nil {
		t.Fatalf("deliver %s of %d items: %v", qty, len(items), err)
	}
	return items
}

// otherTill is a transport that, before the first end of a reservation a
// simulated till sends, releases that reservation from another terminal:
// the till's end then meets a reservation ended already (409).
type otherTill struct {
	next           http.RoundTripper
	url            string
	token, session string

	mu    sync.Mutex
	ended storeline.EventID
	err   error
}

var endPath = regexp.MustCompile(`^/v1/reservations/([0-9a-f-]{36})/(release|collect)$`)

func (o *otherTill) RoundTrip(r *http.Request) (*http.Response, error) {
	m := endPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodPost || m == nil {
		return o.next.RoundTrip(r)
	}
	o.mu.Lock()
	if o.ended.IsZero() {
		o.ended, _ = storeline.ParseEventID(m[1])
		o.err = o.release(r.Context(), m[1])
	}
	o.mu.Unlock()
	return o.next.RoundTrip(r)
}

func (o *otherTill) release(ctx context.Context, id string) error {
	body, _ := json.Marshal(map[string]any{"terminal": "other-till", "occurred_at": time.Now().UTC(), "reason": "taken back by the shop"})
	status, _, ans, err := tillsim.Call(ctx, http.DefaultClient, http.MethodPost, o.url+"/v1/reservations/"+id+"/release",
		map[string]string{"Authorization": "Bearer " + o.token, "X-Session": o.session}, body)
	if err == nil && status != http.StatusCreated {
		err = fmt.Errorf("release from another till = %d %s", status, ans)
	}
	return err
}

// TestReview21TillsReserveGoods: with a high ReservationRate the tills
// reserve popular items for customers (a loyalty card when they have a
// known one, else a contact), and later collect some (a receipt of those
// goods, then collect naming it) and release others. Each reservation and
// end the node acknowledged is reported to Observe once; one that another
// till ended first is a 409 counted as such, no error. Afterwards the
// node's active reservations are exactly those made and not ended, and
// each item's reserved units are what they still hold.
func TestReview21TillsReserveGoods(t *testing.T) {
	t.Parallel()
	n := startNode(t, "shop-1")
	items := deliverAll(t, n, "shop-1", decimal.NewFromInt(1000))
	otherTok := issueTerminal(t, n, "other-till")
	var ses struct{ Token string }
	if code := doJSON(t, "POST", n.TillURL()+"/v1/sessions", map[string]string{"Authorization": "Bearer " + otherTok},
		map[string]string{"seller": "manager-1", "pin": "9876"}, &ses); code != http.StatusCreated {
		t.Fatalf("other till's login = %d", code)
	}
	other := &otherTill{next: http.DefaultTransport, url: n.TillURL(), token: otherTok, session: ses.Token}

	var mu sync.Mutex
	var facts []tillsim.Fact
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: n.TillURL(), AdminURL: n.AdminURL(), AdminToken: adminToken, Cards: testCards}}
	cfg.TillsPerShop = 2
	cfg.Receipts = 200
	cfg.Seed = 21
	cfg.ReceiptsPerShift = 50
	cfg.ReservationRate = 0.3
	cfg.Transport = other
	cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Millisecond, 10*time.Millisecond
	cfg.Observe = func(f tillsim.Fact) {
		mu.Lock()
		defer mu.Unlock()
		facts = append(facts, f)
	}
	sum, err := tillsim.Run(context.Background(), cfg)
	var out bytes.Buffer
	sum.Write(&out)
	t.Logf("summary:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if other.err != nil || other.ended.IsZero() {
		t.Fatalf("the other till released %s: %v", other.ended, other.err)
	}
	if sum.ReservationsMade < 10 || sum.ReservationsCollected == 0 || sum.ReservationsReleased == 0 {
		t.Errorf("reservations made %d, collected %d, released %d; want some of each", sum.ReservationsMade, sum.ReservationsCollected, sum.ReservationsReleased)
	}
	if sum.ReservationsRefused != 0 || sum.ReservationsEndedElsewhere != 1 {
		t.Errorf("reservations refused %d, ended elsewhere %d; want 0, 1 (every item is stocked; one released by another till)", sum.ReservationsRefused, sum.ReservationsEndedElsewhere)
	}
	if sum.Receipts != cfg.Receipts || sum.Failed != 0 || sum.Unknown != 0 || len(sum.Errors) != 0 {
		t.Errorf("receipts %d, failed %d, unknown %d, errors %v; want %d, 0, 0, none (first error: %s)",
			sum.Receipts, sum.Failed, sum.Unknown, sum.Errors, cfg.Receipts, sum.FirstError)
	}
	want := fmt.Sprintf("%d reservations made, %d collected, %d released, %d refused (too few available), %d ended elsewhere first",
		sum.ReservationsMade, sum.ReservationsCollected, sum.ReservationsReleased, sum.ReservationsRefused, sum.ReservationsEndedElsewhere)
	if !strings.Contains(out.String(), want) {
		t.Errorf("the summary does not say %q", want)
	}

	// What the tills were told: each reservation and end once, an end
	// under the ID the node derives from its reservation, a collection
	// naming a receipt acknowledged before it.
	mu.Lock()
	defer mu.Unlock()
	made := map[storeline.EventID]tillsim.Fact{}
	ended := map[storeline.EventID]bool{other.ended: true}
	receipts := map[storeline.EventID]bool{}
	count := map[tillsim.FactKind]int{}
	for _, f := range facts {
		count[f.Kind]++
		switch f.Kind {
		case tillsim.FactReceipt:
			receipts[f.ID] = true
		case tillsim.FactReservation:
			if _, dup := made[f.ID]; dup {
				t.Errorf("reservation %s reported twice", f.ID)
			}
			if len(f.Lines) < 1 || len(f.Lines) > 3 || f.Status != http.StatusCreated {
				t.Errorf("reservation %s: %d lines, status %d; want 1-3, 201", f.ID, len(f.Lines), f.Status)
			}
			made[f.ID] = f
		case tillsim.FactReservationCollected, tillsim.FactReservationReleased:
			if _, ok := made[f.Reservation]; !ok || ended[f.Reservation] {
				t.Errorf("%s of reservation %s: not made before, or ended already", f.Kind, f.Reservation)
			}
			if f.ID != storeline.ReservationEndID(f.Reservation) {
				t.Errorf("%s of reservation %s has ID %s, want the derived end ID", f.Kind, f.Reservation, f.ID)
			}
			if f.Kind == tillsim.FactReservationCollected && !receipts[f.Receipt] {
				t.Errorf("collection of %s names receipt %s, which no till was told of before", f.Reservation, f.Receipt)
			}
			ended[f.Reservation] = true
		}
	}
	if count[tillsim.FactReservation] != sum.ReservationsMade || count[tillsim.FactReservationCollected] != sum.ReservationsCollected ||
		count[tillsim.FactReservationReleased] != sum.ReservationsReleased {
		t.Errorf("observed %v, summary made %d collected %d released %d", count, sum.ReservationsMade, sum.ReservationsCollected, sum.ReservationsReleased)
	}

	// What the node holds: the reservations made and not ended, and on
	// each item the units they hold.
	headers := map[string]string{"Authorization": "Bearer " + otherTok}
	var list struct {
		Reservations []struct {
			ID     storeline.EventID `json:"id"`
			Status string            `json:"status"`
		} `json:"reservations"`
	}
	if code := doJSON(t, "GET", n.TillURL()+"/v1/reservations?limit=1000", headers, nil, &list); code != http.StatusOK {
		t.Fatalf("list reservations = %d", code)
	}
	active := map[storeline.EventID]bool{}
	for _, r := range list.Reservations {
		active[r.ID] = true
		if _, ok := made[r.ID]; !ok || ended[r.ID] || r.Status != "active" {
			t.Errorf("the node lists reservation %s (%s); the tills made it: %v, ended it: %v", r.ID, r.Status, ok, ended[r.ID])
		}
	}
	held := map[string]decimal.Decimal{}
	for id, f := range made {
		if ended[id] {
			continue
		}
		if !active[id] {
			t.Errorf("reservation %s was made and not ended, but the node does not list it", id)
		}
		for _, l := range f.Lines {
			held[l.Item] = held[l.Item].Add(l.Qty)
		}
	}
	for _, it := range items {
		var st struct{ Reserved string }
		if code := doJSON(t, "GET", n.TillURL()+"/v1/stock/"+it.SKU, headers, nil, &st); code != http.StatusOK {
			t.Fatalf("stock of %s = %d", it.SKU, code)
		}
		if got := decimal.RequireFromString(st.Reserved); !got.Equal(held[string(it.ID)]) {
			t.Errorf("%s (%s): reserved %s, the tills' active reservations hold %s", it.ID, it.SKU, got, held[string(it.ID)])
		}
	}
}

// TestReview21ReservationRefusedIsNoError: at a shop with nothing on its
// shelves every reservation is refused naming lines[i].qty: a business
// answer the summary counts as refused, neither a failure nor an error.
func TestReview21ReservationRefusedIsNoError(t *testing.T) {
	t.Parallel()
	n := startNode(t, "shop-1")
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: n.TillURL(), AdminURL: n.AdminURL(), AdminToken: adminToken}}
	cfg.TillsPerShop = 2
	cfg.Receipts = 40
	cfg.ReservationRate = 0.5
	var mu sync.Mutex
	observed := 0
	cfg.Observe = func(f tillsim.Fact) {
		mu.Lock()
		defer mu.Unlock()
		if f.Kind == tillsim.FactReservation {
			observed++
		}
	}
	sum, err := tillsim.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sum.ReservationsRefused == 0 || sum.ReservationsMade != 0 || observed != 0 {
		t.Errorf("refused %d, made %d, observed %d; want >0, 0, 0", sum.ReservationsRefused, sum.ReservationsMade, observed)
	}
	if sum.Failed != 0 || sum.Unknown != 0 || len(sum.Errors) != 0 {
		t.Errorf("failed %d, unknown %d, errors %v; want 0, 0, none (first error: %s)", sum.Failed, sum.Unknown, sum.Errors, sum.FirstError)
	}
}

func TestReview21ReservationRateValidated(t *testing.T) {
	cfg := tillsim.DefaultConfig()
	cfg.Shops = []tillsim.Shop{{URL: "http://x", AdminURL: "http://y", AdminToken: "t"}}
	if cfg.ReservationRate <= 0 || cfg.ReservationRate > 0.05 {
		t.Errorf("default ReservationRate %v, want small and positive", cfg.ReservationRate)
	}
	for _, bad := range []float64{-0.1, 1.5} {
		cfg.ReservationRate = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ReservationRate:") {
			t.Errorf("ReservationRate %v: Validate = %v, want it named", bad, err)
		}
	}
}

package simtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/internal/tillsim"
)

// The shops' staff, head office's master data: a cashier and a manager
// (returns and cash out need the manager's session).
const (
	cashierID  = "alice"
	cashierPIN = "4821"
	managerID  = "bob"
	managerPIN = "7365"
	tillID     = "till-1"
	floatCash  = 100
)

// till is the one till of a shop as the simulation drives it through the
// tills' API (posbridge): its sessions, its open shift and what its drawer
// and Z report must show, and the lines it may take back.
type till struct {
	cashier, manager string // session tokens; empty after the node restarted
	shift            string // open shift, "" if none
	shiftN           int
	drawer           decimal.Decimal // float + cash taken - cash refunded + cash in - cash out
	receipts         int             // in the open shift
	returns          int
	recent           []soldLine
}

// soldLine is one unit of a receipt line, for a later return.
type soldLine struct {
	receipt storeline.EventID
	sku     string
	price   decimal.Decimal
	serial  string // a marked item's
}

// Wire bodies of the tills' API (posbridge/openapi.yaml).
type (
	lineJSON struct {
		SKU    string `json:"sku"`
		Qty    string `json:"qty"`
		Price  string `json:"price"`
		Serial string `json:"serial,omitempty"`
	}
	payJSON struct {
		Method string `json:"method"`
		Amount string `json:"amount,omitempty"` // left out of a points payment: the node converts
		Points int64  `json:"points,omitempty"`
	}
	receiptJSON struct {
		ID         storeline.EventID `json:"id"`
		Terminal   string            `json:"terminal"`
		Shift      string            `json:"shift"`
		Seller     string            `json:"seller"`
		OccurredAt time.Time         `json:"occurred_at"`
		Card       string            `json:"card,omitempty"`
		Lines      []lineJSON        `json:"lines"`
		Payments   []payJSON         `json:"payments"`
	}
	returnJSON struct {
		ID         storeline.EventID  `json:"id"`
		Terminal   string             `json:"terminal"`
		Shift      string             `json:"shift"`
		Seller     string             `json:"seller"`
		OccurredAt time.Time          `json:"occurred_at"`
		Original   *storeline.EventID `json:"original,omitempty"`
		Reason     string             `json:"reason"`
		Lines      []lineJSON         `json:"lines"`
		Refunds    []payJSON          `json:"refunds"`
	}
	cashJSON struct {
		ID         storeline.EventID `json:"id"`
		Terminal   string            `json:"terminal"`
		Shift      string            `json:"shift"`
		Seller     string            `json:"seller"`
		OccurredAt time.Time         `json:"occurred_at"`
		Direction  string            `json:"direction"`
		Amount     string            `json:"amount"`
		Reason     string            `json:"reason"`
	}
	shiftOpenJSON struct {
		ID         storeline.EventID `json:"id"`
		Terminal   string            `json:"terminal"`
		Shift      string            `json:"shift"`
		Seller     string            `json:"seller"`
		OccurredAt time.Time         `json:"occurred_at"`
		Float      string            `json:"float"`
	}
	shiftCloseJSON struct {
		ID          storeline.EventID `json:"id"`
		CountedCash string            `json:"counted_cash"`
	}
	docLineJSON struct {
		SKU string `json:"sku"`
		Qty string `json:"qty"`
	}
	documentJSON struct {
		ID         storeline.EventID `json:"id"`
		OccurredAt time.Time         `json:"occurred_at"`
		Type       string            `json:"type"`
		Terminal   string            `json:"terminal"`
		Seller     string            `json:"seller"`
		Reason     string            `json:"reason,omitempty"`
		Lines      []docLineJSON     `json:"lines"`
	}
	customerJSON struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	customerRegJSON struct {
		ID         storeline.EventID `json:"id"`
		OccurredAt time.Time         `json:"occurred_at"`
		Terminal   string            `json:"terminal"`
		Seller     string            `json:"seller"`
		Customer   customerJSON      `json:"customer"`
		CardCode   string            `json:"card_code"`
	}
	// eventAnswer is the head every stored fact is answered with.
	eventAnswer struct {
		ID   storeline.EventID `json:"id"`
		Kind string            `json:"kind"`
		Seq  uint64            `json:"seq"`
	}
	receiptAnswer struct {
		Customer     storeline.CustomerID `json:"customer"`
		PointsEarned int64                `json:"points_earned"`
	}
	closeAnswer struct {
		eventAnswer
		Report struct {
			Receipts     int    `json:"receipts"`
			Returns      int    `json:"returns"`
			ExpectedCash string `json:"expected_cash"`
		} `json:"report"`
	}
)

// tillCall is one request to a shop's tills' API.
type tillCall struct {
	method, path string
	session      string // X-Session, "" for none
	body         []byte
}

// call sends c once and returns the status and body.
func (s *sim) call(ctx context.Context, sh *shop, c tillCall) (int, []byte, error) {
	h := map[string]string{"Authorization": "Bearer " + termToken}
	if c.session != "" {
		h["X-Session"] = c.session
	}
	st, _, b, err := tillsim.Call(ctx, httpClient, c.method, sh.node.TillURL()+c.path, h, c.body)
	return st, b, err
}

// login opens the cashier's and the manager's sessions at the shop's till
// (a node forgets its sessions when it restarts).
func (s *sim) login(ctx context.Context, sh *shop) error {
	for _, who := range []struct {
		id, pin string
		tok     *string
	}{{cashierID, cashierPIN, &sh.till.cashier}, {managerID, managerPIN, &sh.till.manager}} {
		body, _ := json.Marshal(map[string]string{"seller": who.id, "pin": who.pin})
		st, b, err := s.call(ctx, sh, tillCall{method: http.MethodPost, path: "/v1/sessions", body: body})
		if err != nil || st != http.StatusOK && st != http.StatusCreated {
			return fmt.Errorf("simtest: %s: log %s in: %d %s %v", sh.id, who.id, st, b, err)
		}
		var a struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(b, &a); err != nil || a.Token == "" {
			return fmt.Errorf("simtest: %s: log %s in: answer %s", sh.id, who.id, b)
		}
		*who.tok = a.Token
	}
	return nil
}

// fact posts a fact through the tills' API and records it as acknowledged
// once answered 201. Now and then the till "missed" the answer and sends
// the same bytes again: the node must answer 200 with the same event.
func (s *sim) fact(ctx context.Context, i int, path string, manager bool, in any, out any) error {
	st, b, err := s.tryFact(ctx, i, path, manager, in, out)
	if err == nil && st != http.StatusCreated {
		err = fmt.Errorf("simtest: %s: POST %s: %d %s", s.shops[i].id, path, st, b)
	}
	return err
}

// tryFact is fact for a request the node may refuse (a 4xx, returned
// with its body; nothing recorded).
func (s *sim) tryFact(ctx context.Context, i int, path string, manager bool, in any, out any) (int, []byte, error) {
	sh := s.shops[i]
	body, err := json.Marshal(in)
	if err != nil {
		return 0, nil, fmt.Errorf("simtest: encode %s: %w", path, err)
	}
	sess := sh.till.cashier
	if manager {
		sess = sh.till.manager
	}
	c := tillCall{method: http.MethodPost, path: path, session: sess, body: body}
	st, b, err := s.call(ctx, sh, c)
	if err == nil && st >= 400 && st < 500 {
		return st, b, nil
	}
	if err != nil || st != http.StatusCreated {
		return st, b, fmt.Errorf("simtest: %s: POST %s: %d %s %v", sh.id, path, st, b, err)
	}
	var head eventAnswer
	if err := json.Unmarshal(b, &head); err != nil || head.ID.IsZero() {
		return st, b, fmt.Errorf("simtest: %s: POST %s: answer %s", sh.id, path, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return st, b, fmt.Errorf("simtest: %s: POST %s: answer %s: %w", sh.id, path, b, err)
		}
	}
	if s.rng.IntN(5) == 0 {
		st2, b2, err := s.call(ctx, sh, c)
		var again eventAnswer
		if err != nil || st2 != http.StatusOK || json.Unmarshal(b2, &again) != nil || again.ID != head.ID || again.Seq != head.Seq {
			s.problem("%s: a retried POST %s %s was not answered as the stored fact (status %d, %s, first seq %d)", sh.id, path, head.ID, st2, b2, head.Seq)
		}
		s.res.Faults[FaultTillRetry]++
	}
	if path == "/v1/receipts" {
		sh.sent = append(sh.sent, sentReceipt{id: head.ID, seq: head.Seq, body: body})
	}
	s.acked[head.ID] = acked{shop: i, kind: storeline.EventKind(head.Kind)}
	s.res.Acked++
	s.res.Events[head.Kind]++
	return st, b, nil
}

func money(d decimal.Decimal) string { return d.StringFixed(2) }

// openShift opens a shift with the float in the drawer.
func (s *sim) openShift(ctx context.Context, i int) error {
	sh := s.shops[i]
	t := &sh.till
	t.shiftN++
	shift := fmt.Sprintf("%s-%d", sh.id, t.shiftN)
	f := decimal.NewFromInt(floatCash)
	if err := s.fact(ctx, i, "/v1/shifts", false, shiftOpenJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: shift,
		Seller: cashierID, OccurredAt: sh.now(), Float: money(f)}, nil); err != nil {
		return err
	}
	t.shift, t.drawer, t.receipts, t.returns = shift, f, 0, 0
	return nil
}

// closeShift closes the open shift declaring the drawer the simulation
// kept, and checks the Z report against the receipts, returns and cash of
// the shift.
func (s *sim) closeShift(ctx context.Context, i int) error {
	sh := s.shops[i]
	t := &sh.till
	if t.shift == "" {
		return nil
	}
	var a closeAnswer
	if err := s.fact(ctx, i, "/v1/shifts/"+url.PathEscape(t.shift)+"/close", false,
		shiftCloseJSON{ID: storeline.NewEventID(), CountedCash: money(t.drawer)}, &a); err != nil {
		return err
	}
	exp, err := decimal.NewFromString(a.Report.ExpectedCash)
	if err != nil || !exp.Equal(t.drawer) || a.Report.Receipts != t.receipts || a.Report.Returns != t.returns {
		s.problem("%s: Z report of shift %s: %d receipts, %d returns, expected cash %s; the till rang %d, %d, %s",
			sh.id, t.shift, a.Report.Receipts, a.Report.Returns, a.Report.ExpectedCash, t.receipts, t.returns, t.drawer)
	}
	s.res.ShiftsClosed++
	t.shift = ""
	return nil
}

// ensureShift opens a shift when the till has none.
func (s *sim) ensureShift(ctx context.Context, i int) error {
	if s.shops[i].till.shift != "" {
		return nil
	}
	return s.openShift(ctx, i)
}

// sell rings up a receipt of one to three lines at the prices head office
// last set (a shop that has not heard of a change yet records a
// discrepancy, as a real till's would), paid cash or by card, sometimes
// with a loyalty card.
func (s *sim) sell(ctx context.Context, i int) error {
	card := ""
	if s.rng.IntN(3) == 0 {
		card = cardCode(s.rng.IntN(len(s.customers)))
	}
	return s.sellCard(ctx, i, card)
}

// sellCard is sell with the loyalty card card ("" none).
func (s *sim) sellCard(ctx context.Context, i int, card string) error {
	if err := s.ensureShift(ctx, i); err != nil {
		return err
	}
	sh := s.shops[i]
	t := &sh.till
	r := receiptJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: t.shift, Seller: cashierID, OccurredAt: sh.now(), Card: card}
	var total decimal.Decimal
	var kept []soldLine
	r.Lines, total, kept = s.basket(sh, r.ID)
	byCard := s.rng.IntN(3) == 0
	method := "cash"
	if byCard {
		method = "card"
	}
	r.Payments = []payJSON{{Method: method, Amount: money(total)}}
	if card != "" {
		s.res.Events["loyalty-receipt"]++
	}
	var a receiptAnswer
	if err := s.fact(ctx, i, "/v1/receipts", false, r, &a); err != nil {
		return err
	}
	s.earn(a)
	t.receipts++
	if !byCard {
		t.drawer = t.drawer.Add(total)
		// Only cash lines go back to the drawer on a return; card ones
		// are refunded to the card, outside the drawer.
		t.recent = append(t.recent, kept...)
	}
	return nil
}

// giveBack returns one unit of a recent cash receipt line, refunded in
// cash, on the manager's session.
func (s *sim) giveBack(ctx context.Context, i int) error {
	sh := s.shops[i]
	t := &sh.till
	if len(t.recent) == 0 || t.shift == "" {
		return s.sell(ctx, i)
	}
	k := s.rng.IntN(len(t.recent))
	l := t.recent[k]
	orig := l.receipt
	r := returnJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: t.shift, Seller: cashierID, OccurredAt: sh.now(),
		Original: &orig, Reason: "simulated", Lines: []lineJSON{{SKU: l.sku, Qty: "1", Price: money(l.price), Serial: l.serial}},
		Refunds: []payJSON{{Method: "cash", Amount: money(l.price)}}}
	if _, pruned := s.pruned[orig]; pruned {
		if err := s.returnUnnamed(ctx, i, r); err != nil {
			return err
		}
	} else if err := s.fact(ctx, i, "/v1/returns", true, r, nil); err != nil {
		return err
	}
	t.recent = append(t.recent[:k], t.recent[k+1:]...)
	if l.serial != "" {
		s.serialCount(l.serial, sh.id).returned++
	}
	t.returns++
	t.drawer = t.drawer.Sub(l.price)
	return nil
}

// cash puts change money in, or (the manager) takes cash out while the
// drawer holds enough.
func (s *sim) cash(ctx context.Context, i int) error {
	if err := s.ensureShift(ctx, i); err != nil {
		return err
	}
	sh := s.shops[i]
	t := &sh.till
	amount := decimal.NewFromInt(int64(1 + s.rng.IntN(50)))
	out := s.rng.IntN(2) == 0 && t.drawer.GreaterThanOrEqual(amount)
	c := cashJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: t.shift, Seller: cashierID, OccurredAt: sh.now(),
		Direction: "in", Amount: money(amount), Reason: "simulated"}
	if out {
		c.Direction = "out"
	}
	if err := s.fact(ctx, i, "/v1/cash", out, c, nil); err != nil {
		return err
	}
	if out {
		t.drawer = t.drawer.Sub(amount)
	} else {
		t.drawer = t.drawer.Add(amount)
	}
	return nil
}

// draft records a document draft (a write-off) made at the till for head
// office to post.
func (s *sim) draft(ctx context.Context, i int) error {
	sh := s.shops[i]
	d := documentJSON{ID: storeline.NewEventID(), OccurredAt: sh.now(), Type: string(storeline.DocWriteOff),
		Terminal: tillID, Seller: cashierID, Reason: "simulated damage"}
	for range 1 + s.rng.IntN(2) {
		d.Lines = append(d.Lines, docLineJSON{SKU: string(s.sellable(sh, s.items[s.rng.IntN(len(s.items))])), Qty: fmt.Sprint(1 + s.rng.IntN(3))})
	}
	return s.fact(ctx, i, "/v1/documents", false, d, nil)
}

// register signs a new customer up at the till with a new card.
func (s *sim) register(ctx context.Context, i int) error {
	sh := s.shops[i]
	s.registered++
	n := s.registered
	c := customerRegJSON{ID: storeline.NewEventID(), OccurredAt: sh.now(), Terminal: tillID, Seller: cashierID,
		Customer: customerJSON{ID: fmt.Sprintf("%s-new%d", sh.id, n), Name: fmt.Sprintf("New customer %d", n)},
		CardCode: fmt.Sprintf("N%s%06d", sh.id[1:], n)}
	return s.fact(ctx, i, "/v1/customers", false, c, nil)
}

// sellable is id, or the first item while id is an item added during the
// run that the shop has not shown yet (the node refuses an unknown SKU).
func (s *sim) sellable(sh *shop, id storeline.ItemID) storeline.ItemID {
	if slices.Index(s.items, id) < s.cfg.Items || sh.known[id] {
		return id
	}
	var it struct {
		ID string `json:"id"`
	}
	if s.getJSON(sh, "/v1/items/"+url.PathEscape(string(id)), &it) {
		sh.known[id] = true
		return id
	}
	return s.items[0]
}

func cardCode(i int) string { return fmt.Sprintf("CARD%04d", i) }

// getJSON reads a resource of the tills' API; false unless 200.
func (s *sim) getJSON(sh *shop, path string, out any) bool {
	st, b, err := s.call(context.Background(), sh, tillCall{method: http.MethodGet, path: path})
	return err == nil && st == http.StatusOK && json.Unmarshal(b, out) == nil
}

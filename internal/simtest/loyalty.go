package simtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
)

// Loyalty and marked goods in the simulation. Head office runs one
// programme in the chain's currency: ten points per euro, a point worth a
// cent, at most half a receipt paid with points, and a daily cap on what a
// customer may spend in a shop cut off from central. Each shop keeps a
// float of rights per customer drawn by the seed (0 hands every earned
// point back to central at once, so every spend there reserves at
// central). The tills earn with a loyalty card on ordinary receipts and
// pay with points on others, as much as the card's spendable_now showed
// or, one time in four, more (the node must refuse what it may not
// take); head office pre-grants its rights to shops now and then.
//
// A marked item is sold with a fresh serial each time, except that a shop
// cut off from central now and then sells a serial another shop already
// sold, and every run does so once: central must list each such serial
// as a double sale, with each shop's count.
const (
	programme       storeline.ProgrammeID = "club"
	pointsPerEuro                         = 10
	maxSharePercent                       = 50
	offlineCap                            = 60
	markedItem      storeline.ItemID      = "marked"
	// viewerKey is a head-office viewer's API key: the back-office reports
	// the checks read.
	viewerKey = "simtest-viewer-key-0123456789"
)

var pointValue = decimal.New(1, -2)

func loyaltyRecords() []storeline.Record {
	return []storeline.Record{
		&storeline.LoyaltyProgramme{ID: programme, Name: "Club", Currency: "EUR", DefaultRate: decimal.NewFromInt(pointsPerEuro),
			PointValue: pointValue, MaxShare: decimal.NewFromInt(maxSharePercent), DailyOfflineCap: offlineCap},
		&storeline.Item{ID: markedItem, SKU: string(markedItem), Name: "Marked item", Group: "g", Dept: "food",
			Unit: storeline.Piece, VATRate: decimal.NewFromInt(10), Marked: true},
	}
}

// spendKey is a customer at a shop.
type spendKey struct {
	shop storeline.StoreID
	cust storeline.CustomerID
}

// serialCounts is a serial's sales and returns at one shop, as the tills
// were answered.
type serialCounts struct{ sold, returned int64 }

func (s *sim) serialCount(serial string, shop storeline.StoreID) *serialCounts {
	m := s.serials[serial]
	if m == nil {
		m = map[storeline.StoreID]*serialCounts{}
		s.serials[serial] = m
	}
	c := m[shop]
	if c == nil {
		c = &serialCounts{}
		m[shop] = c
	}
	return c
}

// earn records the points a receipt's answer says it earned.
func (s *sim) earn(a receiptAnswer) {
	if a.PointsEarned > 0 {
		s.earned[a.Customer] += a.PointsEarned
		s.res.PointsEarned += a.PointsEarned
	}
}

// cardPoints is the points part of GET /v1/cards/{code}.
type cardPoints struct {
	Balance      int64  `json:"balance"`
	Debt         int64  `json:"debt"`
	RightsHere   int64  `json:"rights_here"`
	SpendableNow int64  `json:"spendable_now"`
	Source       string `json:"source"`
}

func (s *sim) card(sh *shop, code string) (*cardPoints, bool) {
	var c struct {
		Points *cardPoints `json:"points"`
	}
	ok := s.getJSON(sh, "/v1/cards/"+url.PathEscape(code), &c)
	return c.Points, ok && c.Points != nil
}

// basket draws one to three lines at head office's prices.
func (s *sim) basket(sh *shop, id storeline.EventID) ([]lineJSON, decimal.Decimal, []soldLine) {
	var lines []lineJSON
	total := decimal.Zero
	var kept []soldLine
	for range 1 + s.rng.IntN(3) {
		item := s.sellable(sh, s.items[s.rng.IntN(len(s.items))])
		qty := 1 + s.rng.IntN(3)
		price := s.prices[item]
		lines = append(lines, lineJSON{SKU: string(item), Qty: fmt.Sprint(qty), Price: money(price)})
		total = total.Add(price.Mul(decimal.NewFromInt(int64(qty))))
		for range qty {
			kept = append(kept, soldLine{receipt: id, sku: string(item), price: price})
		}
	}
	return lines, total, kept
}

// spend rings up a receipt paid partly with a customer's points, the rest
// in cash: as many points as the card showed spendable, or (one time in
// four, or when it showed none) more, which the node must refuse with 409
// naming the points unless it may take them after all (a reservation at
// central can grant more than the card showed).
func (s *sim) spend(ctx context.Context, i int) error {
	return s.spendBy(ctx, i, -1)
}

// spendBy is spend by customer c (-1: drawn).
func (s *sim) spendBy(ctx context.Context, i, c int) error {
	if err := s.ensureShift(ctx, i); err != nil {
		return err
	}
	sh := s.shops[i]
	t := &sh.till
	// Mostly a customer who has earned points somewhere.
	if c < 0 && s.rng.IntN(4) != 0 {
		c = s.rng.IntN(len(s.customers))
		var rich []int
		for k := range s.customers {
			if s.earned[customerID(k)] > 0 {
				rich = append(rich, k)
			}
		}
		if len(rich) > 0 {
			c = rich[s.rng.IntN(len(rich))]
		}
	}
	if c < 0 {
		c = s.rng.IntN(len(s.customers))
	}
	code, cust := cardCode(c), customerID(c)
	cp, _ := s.card(sh, code)
	var shown int64
	if cp != nil {
		shown = cp.SpendableNow
	}
	r := receiptJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: t.shift, Seller: cashierID, OccurredAt: sh.now(), Card: code}
	lines, total, _ := s.basket(sh, r.ID)
	r.Lines = lines
	byShare := total.Mul(decimal.NewFromInt(maxSharePercent)).Div(decimal.NewFromInt(100)).Div(pointValue).IntPart()
	n := min(shown, byShare)
	if n <= 0 || s.rng.IntN(4) == 0 {
		n = max(n, 0) + 1 + s.rng.Int64N(40)
	} else {
		n -= s.rng.Int64N(n/2 + 1) // the larger half: spends that use up rights
	}
	// Points beyond the receipt's total would leave no cash part: the
	// share rule refuses them anyway.
	n = min(n, total.Div(pointValue).IntPart())
	worth := decimal.NewFromInt(n).Mul(pointValue)
	cash := total.Sub(worth)
	r.Payments = []payJSON{{Method: "points", Points: n}}
	if cash.IsPositive() {
		r.Payments = append(r.Payments, payJSON{Method: "cash", Amount: money(cash)})
	}
	var a receiptAnswer
	st, b, err := s.tryFact(ctx, i, "/v1/receipts", false, r, &a)
	if err != nil {
		return err
	}
	if st != http.StatusCreated {
		var p struct {
			Field string `json:"field"`
		}
		if st != http.StatusConflict || json.Unmarshal(b, &p) != nil || p.Field != "payments[0].points" {
			s.problem("%s: a points payment of %d for %s (card showed %d) answered %d %s", sh.id, n, cust, shown, st, b)
		}
		s.res.PointsRefused++
		return nil
	}
	if a.Customer != cust {
		s.problem("%s: receipt %s with card %s recorded for customer %q", sh.id, r.ID, code, a.Customer)
	}
	s.earn(a)
	s.spent[spendKey{sh.id, cust}] += n
	s.res.PointsSpent += n
	if sh.cut {
		s.res.PointsSpentCut += n
	}
	t.receipts++
	if cash.IsPositive() {
		t.drawer = t.drawer.Add(cash)
	}
	return nil
}

// sellMarked sells one unit of the marked item with serial, paid cash.
func (s *sim) sellMarked(ctx context.Context, i int, serial string) error {
	if err := s.ensureShift(ctx, i); err != nil {
		return err
	}
	sh := s.shops[i]
	t := &sh.till
	price := s.prices[markedItem]
	r := receiptJSON{ID: storeline.NewEventID(), Terminal: tillID, Shift: t.shift, Seller: cashierID, OccurredAt: sh.now(),
		Lines:    []lineJSON{{SKU: string(markedItem), Qty: "1", Price: money(price), Serial: serial}},
		Payments: []payJSON{{Method: "cash", Amount: money(price)}}}
	if err := s.fact(ctx, i, "/v1/receipts", false, r, nil); err != nil {
		return err
	}
	s.serialCount(serial, sh.id).sold++
	s.res.Events["marked-sale"]++
	t.receipts++
	t.drawer = t.drawer.Add(price)
	t.recent = append(t.recent, soldLine{receipt: r.ID, sku: string(markedItem), price: price, serial: serial})
	return nil
}

func (s *sim) freshSerial() string {
	s.serialN++
	return fmt.Sprintf("SN%08d", s.serialN)
}

// marked sells the marked item at shop i: a fresh serial, or, while the
// shop is cut off, now and then one another shop sold and has not taken
// back (a double sale central must record).
func (s *sim) marked(ctx context.Context, i int) error {
	sh := s.shops[i]
	serial := s.freshSerial()
	if sh.cut && s.rng.IntN(2) == 0 {
		var elsewhere []string
		for _, ser := range slices.Sorted(maps.Keys(s.serials)) {
			if c := s.serials[ser][sh.id]; c != nil && c.sold > c.returned {
				continue
			}
			if s.net(ser) > 0 {
				elsewhere = append(elsewhere, ser)
			}
		}
		if len(elsewhere) > 0 {
			serial = elsewhere[s.rng.IntN(len(elsewhere))]
			s.res.Faults[FaultDoubleSale]++
		}
	}
	return s.sellMarked(ctx, i, serial)
}

// loyaltyAndDoubleSale is what every run does once: a customer earns at
// shop i and pays with points there; then shop i, cut off from central,
// sells a serial that shop j sells too, and takes points again.
func (s *sim) loyaltyAndDoubleSale(ctx context.Context) error {
	i := s.rng.IntN(len(s.shops))
	c := s.rng.IntN(len(s.customers))
	for range 2 {
		if err := s.sellCard(ctx, i, cardCode(c)); err != nil {
			return err
		}
	}
	if err := s.spendBy(ctx, i, c); err != nil {
		return err
	}
	if len(s.shops) < 2 {
		return nil
	}
	j := (i + 1 + s.rng.IntN(len(s.shops)-1)) % len(s.shops)
	s.cut(i)
	serial := s.freshSerial()
	if err := s.sellMarked(ctx, i, serial); err != nil {
		return err
	}
	if err := s.sellMarked(ctx, j, serial); err != nil {
		return err
	}
	s.res.Faults[FaultDoubleSale]++
	return s.spendBy(ctx, i, c)
}

// net is a serial's sales less its returns over every shop.
func (s *sim) net(serial string) int64 {
	var n int64
	for _, c := range s.serials[serial] {
		n += c.sold - c.returned
	}
	return n
}

// grant has head office pre-grant some of central's rights for a
// customer to a shop (refused, moving nothing, while central holds too
// few), or, every other time, run central's automatic loyalty sweep now:
// pre-grants to each customer's usual shops and debts netted against
// later earnings, under whatever faults are on. (Its timer is off in the
// simulation, so that no sweep lands between convergence and the closing
// checks; see centralConfig.)
func (s *sim) grant(ctx context.Context, step int) error {
	if s.rng.IntN(2) == 0 {
		return s.sweep(ctx)
	}
	c := customerID(s.rng.IntN(len(s.customers)))
	shop := s.shops[s.rng.IntN(len(s.shops))].id
	points := 1 + s.rng.Int64N(100)
	return s.onLeader(ctx, "pre-grant", func(l *central.Node) error {
		ans, err := l.MoveRights(ctx, shop, programme, c, points, fmt.Sprintf("grant/simtest-%d", step), "simulated pre-grant")
		if err == nil {
			s.res.Faults[FaultPreGrant]++
			s.res.PointsGranted += ans.Granted
		}
		return err
	})
}

// adoptHandbacks counts the rights hand-backs each shop's node authored
// after a receipt (no till posts them) as acknowledged: from here on they
// are held to the same exactly-once checks as the tills' facts.
func (s *sim) adoptHandbacks() {
	for i, sh := range s.shops {
		if err := scanHistory(sh, func(ev storeline.Event) {
			if _, ok := s.acked[ev.ID]; !ok && ev.Kind == storeline.KindPointsHandback {
				s.acked[ev.ID] = acked{shop: i, kind: ev.Kind}
				s.res.Events[string(ev.Kind)]++
			}
		}); err != nil {
			s.problem("%s: read journal: %v", sh.id, err)
		}
	}
}

// rightsLag lists the customers whose rights the shop's ledger shows
// otherwise than the central node l: rights central moved to the shop
// arrive through its feed.
func (s *sim) rightsLag(l *central.Node, sh *shop) []string {
	var out []string
	for c := range s.customers {
		cust := customerID(c)
		st, err := l.Points(programme, cust)
		if err != nil {
			return []string{fmt.Sprintf("%s: points of %s: %v", l.ID(), cust, err)}
		}
		own, err := sh.node.Ledger().Balance(storeline.PointsAccount(programme, cust, sh.id), storeline.PointsAsset(programme))
		if err != nil || own.IntPart() != st.Rights[string(sh.id)] {
			out = append(out, fmt.Sprintf("%s holds %s of %s's points, %s says %d (%v)", sh.id, own, cust, l.ID(), st.Rights[string(sh.id)], err))
		}
	}
	return out
}

// checkLoyalty checks, on the converged chain, that no points were spent
// beyond rights: no holder's rights below zero at any replica (a shop
// that paid more than it held, or central that moved more than it had),
// every customer's balance equal to what the tills were told was earned
// less what they paid with points and what returns took back, the
// points each shop's journal shows paid equal to what its till paid, and
// every replica (the central nodes, each shop's ledger and its tills' API)
// agreeing on each customer's balance, debt and each holder's rights.
func (s *sim) checkLoyalty() {
	asset := storeline.PointsAsset(programme)
	paid := map[spendKey]int64{}
	reversed := map[storeline.CustomerID]int64{}
	debtRecorded := map[storeline.CustomerID]int64{}
	for _, sh := range s.shops {
		if err := scanHistory(sh, func(ev storeline.Event) {
			switch b := ev.Body.(type) {
			case *storeline.Receipt:
				for _, p := range b.Payments {
					if p.Method == storeline.Points {
						paid[spendKey{sh.id, b.Customer}] += p.Points
					}
				}
			case *storeline.Return:
				if b.Points != nil {
					reversed[b.Points.Customer] += b.Points.Reversed
					debtRecorded[b.Points.Customer] += b.Points.Debt
				}
			}
		}); err != nil {
			s.problem("%s: read journal: %v", sh.id, err)
		}
	}
	for k, v := range paid {
		if s.spent[k] != v {
			s.problem("%s: its journal pays %d of %s's points, its till paid %d", k.shop, v, k.cust, s.spent[k])
		}
	}
	for k, v := range s.spent {
		if paid[k] != v {
			s.problem("%s: its till paid %d of %s's points, its journal %d", k.shop, v, k.cust, paid[k])
		}
	}
	for c := range s.customers {
		cust := customerID(c)
		var spentAll int64
		for _, sh := range s.shops {
			spentAll += s.spent[spendKey{sh.id, cust}]
		}
		want := s.earned[cust] - spentAll - reversed[cust]
		var first *central.PointsStatus
		var firstNode string
		for _, sl := range s.centrals {
			st, err := sl.node.Points(programme, cust)
			if err != nil {
				s.problem("%s: points of %s: %v", sl.cfg.NodeID, cust, err)
				continue
			}
			st.Rights = nonZero(st.Rights)
			st.Debts = nonZero(st.Debts)
			for holder, v := range st.Rights {
				if v < 0 {
					s.problem("%s: %s holds %d of %s's points: spent beyond its rights", sl.cfg.NodeID, holder, v, cust)
				}
			}
			if st.Balance < 0 || st.Debt < 0 {
				s.problem("%s: %s's points balance %d, debt %d", sl.cfg.NodeID, cust, st.Balance, st.Debt)
			}
			// A debt paid from later earnings lowers the balance and the
			// debt alike, so balance less debt is what the tills decide,
			// whenever central nets it.
			if st.Debt > debtRecorded[cust] {
				s.problem("%s: %s owes %d points, more than returns left owed (%d)", sl.cfg.NodeID, cust, st.Debt, debtRecorded[cust])
			}
			if st.Balance-st.Debt != want-debtRecorded[cust] {
				s.problem("%s: %s's points balance is %d with debt %d; the tills were told %d earned, paid %d, returns took back %d and left %d owed (%d)",
					sl.cfg.NodeID, cust, st.Balance, st.Debt, s.earned[cust], spentAll, reversed[cust], debtRecorded[cust], want-debtRecorded[cust])
			}
			if first == nil {
				first, firstNode = &st, sl.cfg.NodeID
			} else if st.Balance != first.Balance || st.Debt != first.Debt || !maps.Equal(st.Rights, first.Rights) {
				s.problem("%s and %s disagree on %s's points: %+v, %+v", firstNode, sl.cfg.NodeID, cust, *first, st)
			}
		}
		if first == nil {
			continue
		}
		for _, sh := range s.shops {
			own, err := sh.node.Ledger().Balance(storeline.PointsAccount(programme, cust, sh.id), asset)
			if err != nil {
				s.problem("%s: points of %s: %v", sh.id, cust, err)
				continue
			}
			spent := s.spent[spendKey{sh.id, cust}]
			if own.IsNegative() {
				s.problem("%s: paid %d of %s's points, beyond its rights (%s)", sh.id, spent, cust, own.Add(decimal.NewFromInt(spent)))
			}
			if own.IntPart() != first.Rights[string(sh.id)] {
				s.problem("%s holds %s of %s's points, central says %d", sh.id, own, cust, first.Rights[string(sh.id)])
			}
			cp, ok := s.card(sh, cardCode(c))
			switch {
			case !ok:
				s.problem("%s: card %s shows no points", sh.id, cardCode(c))
			case cp.Balance != first.Balance || cp.Debt != first.Debt || cp.RightsHere != own.IntPart() || cp.Source != "central":
				s.problem("%s: card %s shows %+v; central balance %d, debt %d, rights here %s", sh.id, cardCode(c), *cp, first.Balance, first.Debt, own)
			}
		}
	}
}

func nonZero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// checkSerials checks that every central node lists as double sales
// exactly the serials sold more often than taken back, with each shop's
// counts.
func (s *sim) checkSerials() {
	want := map[string]bool{}
	for ser := range s.serials {
		if s.net(ser) > 1 {
			want[ser] = true
		}
	}
	for k, sl := range s.centrals {
		got, err := serialConflicts("http://" + sl.cfg.APIAddr)
		if err != nil {
			s.problem("%s: serial conflicts: %v", sl.cfg.NodeID, err)
			continue
		}
		if k == 0 {
			s.res.DoubleSales = len(got)
		}
		for ser := range want {
			c, ok := got[ser]
			if !ok {
				s.problem("%s: serial %s sold %d times net at %d shops is not recorded as a double sale", sl.cfg.NodeID, ser, s.net(ser), len(s.serials[ser]))
				continue
			}
			if c.Net != s.net(ser) {
				s.problem("%s: serial %s recorded net %d, the tills sold %d net", sl.cfg.NodeID, ser, c.Net, s.net(ser))
			}
			for _, st := range c.Stores {
				w := s.serials[ser][st.Store]
				if w == nil || w.sold != st.Sold || w.returned != st.Returned {
					s.problem("%s: serial %s at %s recorded sold %d returned %d; the till %+v", sl.cfg.NodeID, ser, st.Store, st.Sold, st.Returned, w)
				}
			}
		}
		for ser, c := range got {
			if !want[ser] {
				s.problem("%s: serial %s recorded as a double sale (%+v), the tills sold it %d times net", sl.cfg.NodeID, ser, c, s.net(ser))
			}
		}
	}
}

type serialConflict struct {
	Net    int64 `json:"net"`
	Stores []struct {
		Store    storeline.StoreID `json:"store"`
		Sold     int64             `json:"sold"`
		Returned int64             `json:"returned"`
	} `json:"stores"`
}

// serialConflicts reads GET /v1/serials/conflicts, every page, as a
// head-office viewer.
func serialConflicts(base string) (map[string]serialConflict, error) {
	out := map[string]serialConflict{}
	after := ""
	for {
		req, err := http.NewRequest(http.MethodGet, base+"/v1/serials/conflicts?limit=500&after="+url.QueryEscape(after), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+viewerKey)
		resp, err := httpClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%d %s %v", resp.StatusCode, bytes.TrimSpace(b), err)
		}
		var page struct {
			Conflicts []struct {
				Serial string `json:"serial"`
				serialConflict
			} `json:"conflicts"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("answer %s: %w", b, err)
		}
		for _, c := range page.Conflicts {
			out[c.Serial] = c.serialConflict
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// sweep runs central's loyalty sweep on the leader.
func (s *sim) sweep(ctx context.Context) error {
	return s.onLeader(ctx, "loyalty sweep", func(l *central.Node) error {
		ans, err := l.SweepLoyalty(ctx)
		if err == nil {
			s.res.Faults[FaultLoyaltySweep]++
			s.res.PointsGranted += ans.Granted
			s.res.PointsNetted += ans.Netted
		}
		return err
	})
}

// onLeader runs fn on central's leader, again while there is none or fn
// answers Unavailable (an election), for at most the convergence bound.
func (s *sim) onLeader(ctx context.Context, what string, fn func(*central.Node) error) error {
	deadline := time.Now().Add(s.cfg.Converge)
	for {
		err := storeline.Errorf(storeline.Unavailable, "simtest", "no leader")
		if l := s.leader(); l != nil {
			err = fn(l)
		}
		if err == nil {
			return nil
		}
		if storeline.KindOf(err) != storeline.Unavailable || time.Now().After(deadline) {
			return fmt.Errorf("simtest: %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

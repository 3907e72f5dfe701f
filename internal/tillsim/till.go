package tillsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/pricing"
)

// FactKind names a fact a till posts.
type FactKind string

// The facts.
const (
	FactReceipt    FactKind = "receipt"
	FactReturn     FactKind = "return"
	FactCashIn     FactKind = "cash_in"
	FactCashOut    FactKind = "cash_out"
	FactShiftOpen  FactKind = "shift_open"
	FactShiftClose FactKind = "shift_close"
	// A reservation of goods for a customer, and its end at a till: the
	// customer collected the goods (a receipt sold them) or called it off.
	FactReservation          FactKind = "reservation"
	FactReservationCollected FactKind = "reservation_collected"
	FactReservationReleased  FactKind = "reservation_released"
)

// Fact is a fact a node acknowledged, as the till sent it.
type Fact struct {
	Shop     int // index into Config.Shops
	Kind     FactKind
	ID       storeline.EventID
	Status   int // 201 created, 200 replayed
	Terminal string
	Shift    string
	Seller   string
	// Lines of a receipt or return, the goods a reservation holds or its
	// end gives back: item IDs and quantities in base units.
	Lines []FactLine
	// Reservation is, for a reservation's end (whose ID is the one the
	// node derives from it, storeline.ReservationEndID), the reservation
	// ended; Receipt, for a collection, the receipt that sold its goods.
	Reservation storeline.EventID
	Receipt     storeline.EventID
	// Amount is a receipt's or return's total, a cash operation's amount,
	// a shift's float, or, for a close, the node's expected cash.
	Amount decimal.Decimal
	// Points are the loyalty points a receipt paid (part of Amount, worth
	// PointsPaid in money), or a return gave back (part of Amount, worth
	// PointsPaid; the rest was refunded in money).
	Points     int64
	PointsPaid decimal.Decimal
	// Drawer is the fact's effect on the till's cash drawer: cash taken
	// less change, less a cash refund, plus cash in, less cash out.
	Drawer decimal.Decimal
	// Counted is, for a close, the till's own drawer count.
	Counted decimal.Decimal
	// Discrepancies are the receipt lines the node priced differently.
	Discrepancies int
}

// FactLine is an item and its quantity in base units.
type FactLine struct {
	Item string
	Qty  decimal.Decimal
}

// Wire bodies of the tills' API (posbridge/openapi.yaml).
type lineJSON struct {
	SKU      string `json:"sku,omitempty"`
	Barcode  string `json:"barcode,omitempty"`
	Qty      string `json:"qty,omitempty"`
	Price    string `json:"price,omitempty"`
	Discount string `json:"discount,omitempty"`
	Serial   string `json:"serial,omitempty"`
}

// priceJSON is POST /v1/baskets/price; pricedJSON its answer.
type priceJSON struct {
	OccurredAt time.Time  `json:"occurred_at"`
	Card       string     `json:"card,omitempty"`
	Lines      []lineJSON `json:"lines"`
}

type pricedJSON struct {
	Lines []struct {
		Item     string `json:"item"`
		Price    string `json:"price"`
		Discount string `json:"discount"`
		Total    string `json:"total"`
	} `json:"lines"`
}

type payJSON struct {
	Method    string `json:"method"`
	Amount    string `json:"amount"`
	Points    int64  `json:"points,omitempty"`
	Reference string `json:"reference,omitempty"`
	AuthCode  string `json:"auth_code,omitempty"`
}

type receiptJSON struct {
	ID             storeline.EventID `json:"id"`
	Terminal       string            `json:"terminal"`
	Shift          string            `json:"shift"`
	Seller         string            `json:"seller"`
	OccurredAt     time.Time         `json:"occurred_at"`
	CatalogVersion uint64            `json:"catalog_version"`
	Card           string            `json:"card,omitempty"`
	Lines          []lineJSON        `json:"lines"`
	Payments       []payJSON         `json:"payments"`
	Fiscal         *fiscalJSON       `json:"fiscal,omitempty"`
}

type fiscalJSON struct {
	DocumentNumber string `json:"document_number"`
	Sign           string `json:"sign"`
}

type returnJSON struct {
	ID         storeline.EventID  `json:"id"`
	Terminal   string             `json:"terminal"`
	Shift      string             `json:"shift"`
	Seller     string             `json:"seller"`
	OccurredAt time.Time          `json:"occurred_at"`
	Original   *storeline.EventID `json:"original,omitempty"`
	Reason     string             `json:"reason,omitempty"`
	Lines      []lineJSON         `json:"lines"`
	Refunds    []payJSON          `json:"refunds"`
}

type cashJSON struct {
	ID         storeline.EventID `json:"id"`
	Terminal   string            `json:"terminal"`
	Shift      string            `json:"shift"`
	Seller     string            `json:"seller"`
	OccurredAt time.Time         `json:"occurred_at"`
	Direction  string            `json:"direction"`
	Amount     string            `json:"amount"`
	Reason     string            `json:"reason,omitempty"`
}

type shiftOpenJSON struct {
	ID         storeline.EventID `json:"id"`
	Terminal   string            `json:"terminal"`
	Shift      string            `json:"shift"`
	Seller     string            `json:"seller"`
	OccurredAt time.Time         `json:"occurred_at"`
	Float      string            `json:"float"`
}

type shiftCloseJSON struct {
	ID          storeline.EventID `json:"id"`
	CountedCash string            `json:"counted_cash"`
}

// reservationJSON is POST /v1/reservations: goods held for a customer,
// named by a loyalty card or a contact.
type reservationJSON struct {
	ID         storeline.EventID `json:"id"`
	Terminal   string            `json:"terminal"`
	Seller     string            `json:"seller"`
	OccurredAt time.Time         `json:"occurred_at"`
	Card       string            `json:"card,omitempty"`
	Contact    string            `json:"contact,omitempty"`
	Until      string            `json:"until"`
	Lines      []lineJSON        `json:"lines"`
}

// reservationEndJSON is POST /v1/reservations/{id}/collect (naming the
// receipt) or /release (with a reason).
type reservationEndJSON struct {
	Terminal   string             `json:"terminal"`
	Seller     string             `json:"seller"`
	OccurredAt time.Time          `json:"occurred_at"`
	Receipt    *storeline.EventID `json:"receipt,omitempty"`
	Reason     string             `json:"reason,omitempty"`
}

type receiptAnswer struct {
	Total         string     `json:"total"`
	Change        string     `json:"change"`
	Discrepancies []struct{} `json:"discrepancies"`
}

type closeAnswer struct {
	Report struct {
		Receipts     int    `json:"receipts"`
		Returns      int    `json:"returns"`
		ExpectedCash string `json:"expected_cash"`
		Difference   string `json:"difference"`
	} `json:"report"`
}

// cardAnswer is what a till reads of GET /v1/cards/{code}: the points
// the customer may spend on a receipt here now, a point's worth, and the
// largest share of a receipt (percent) points may pay.
type cardAnswer struct {
	Points *struct {
		SpendableNow int64  `json:"spendable_now"`
		PointValue   string `json:"point_value"`
		MaxShare     string `json:"max_share"`
	} `json:"points"`
}

// most is the most points the node takes of a receipt of total: the
// card's spendable points within the programme's share of the receipt,
// a point's worth rounded to the currency as the node converts them (0
// when the answer has no points or they cannot be read), and value, a
// point's worth.
func (a *cardAnswer) most(total decimal.Decimal, scale int32) (n int64, value decimal.Decimal) {
	if a == nil || a.Points == nil || a.Points.SpendableNow < 1 || !total.IsPositive() {
		return 0, decimal.Zero
	}
	value, err1 := decimal.NewFromString(a.Points.PointValue)
	share, err2 := decimal.NewFromString(a.Points.MaxShare)
	if err1 != nil || err2 != nil || !value.IsPositive() || !share.IsPositive() {
		return 0, decimal.Zero
	}
	limit := total.Mul(share).Div(decimal.NewFromInt(100))
	n = min(limit.Div(value).Floor().IntPart(), a.Points.SpendableNow)
	for n > 0 && decimal.NewFromInt(n).Mul(value).Round(scale).GreaterThan(limit) {
		n--
	}
	return max(n, 0), value
}

// spend picks the points a customer pays of a receipt of total, a random
// part (one point at least) of the most the node takes, and their worth;
// 0 when none may be paid, or the points would pay it all.
func (a *cardAnswer) spend(rng *rand.Rand, total decimal.Decimal, scale int32) (int64, decimal.Decimal) {
	most, value := a.most(total, scale)
	if most < 1 {
		return 0, decimal.Zero
	}
	n := 1 + rng.Int64N(most)
	if w := decimal.NewFromInt(n).Mul(value).Round(scale); w.IsPositive() && w.LessThan(total) {
		return n, w
	}
	return 0, decimal.Zero
}

// pointsRefused reports whether err is the node's refusal of a receipt's
// points payment (409 naming payments[i].points): the points were spent
// meanwhile, at another till or by a hand-back, or the shop went offline
// and may take fewer.
func pointsRefused(err error) bool {
	var r *refused
	return errors.As(err, &r) && r.status == http.StatusConflict && strings.Contains(r.body, `.points"`)
}

type sessionAnswer struct {
	Token string `json:"token"`
	Role  string `json:"role"`
}

// sold is a receipt line a till remembers, for a later return.
type sold struct {
	line    lineJSON // as a return line: by SKU, in base units
	item    string
	qty     decimal.Decimal
	total   decimal.Decimal
	payment string
}

type soldReceipt struct {
	id    storeline.EventID
	lines []sold
	// A receipt paid partly with points: its total, the points and their
	// worth, its currency, and the money its returns took back so far
	// (the node gives back that share of a return as points, the rest as
	// money: pricing.Restore).
	total    decimal.Decimal
	points   int64
	worth    decimal.Decimal
	currency storeline.Currency
	returned decimal.Decimal
}

// till is one simulated till: its terminal, its sellers' sessions, its
// shift and drawer, and the receipts it may take returns against.
type till struct {
	sim     *Sim
	shop    *shopRun
	index   int // within the shop
	term    Terminal
	cashier Seller
	manager *Seller
	rng     *rand.Rand
	zipf    *rand.Zipf
	zipfN   int

	cashierTok, managerTok string

	shift         string
	shiftN        int
	shiftReceipts int
	drawer        decimal.Decimal
	recent        []soldReceipt
	// held are the reservations the till made and will end.
	held []heldReservation
}

// run is the till's day: log in, open a shift, sell until the run stops,
// close the shift.
func (t *till) run(sell, grace context.Context) error {
	if err := t.login(grace); err != nil {
		return err
	}
	defer func() {
		if t.shift != "" {
			t.closeShift(grace)
		}
	}()
	for sell.Err() == nil {
		if t.shift == "" {
			if err := t.openShift(grace); err != nil {
				var r *refused
				if errors.As(err, &r) {
					return err // the node refuses this till's shifts: a setup error
				}
				// No answer: the node may hold the opening or not. The till
				// opens a new shift next time round; an orphan opening
				// stays open at the node, as a real till's would.
				continue
			}
		}
		if !t.sim.claim(sell) {
			return nil
		}
		// The receipt claimed is the goods of a reservation whose customer
		// came to collect them, or a basket (after a release, when the
		// customer called theirs off).
		if r := t.due(); r == nil || !r.collect || !t.collect(grace, *r) {
			if r != nil {
				t.release(grace, *r)
			}
			t.receipt(grace)
		}
		if rate := t.sim.cfg.ReservationRate; rate > 0 && t.rng.Float64() < rate {
			t.reserve(grace)
		}
		if t.manager != nil && t.rng.Float64() < t.sim.cfg.ReturnRate {
			t.returnItem(grace)
		}
		if t.rng.Float64() < t.sim.cfg.CashOpRate {
			t.cashOp(grace)
		}
		if t.shiftReceipts >= t.sim.cfg.ReceiptsPerShift {
			t.closeShift(grace)
		}
	}
	return nil
}

func (t *till) auth(session string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + t.term.Token}
	if session != "" {
		h["X-Session"] = session
	}
	return h
}

// login opens the cashier's session and, if the shop has a manager, the
// manager's at the same terminal.
func (t *till) login(ctx context.Context) error {
	tok, role, err := t.session(ctx, t.cashier)
	if err != nil {
		return err
	}
	t.cashierTok = tok
	if role == string(storeline.Manager) && t.manager == nil {
		t.manager = &t.cashier
	}
	if t.manager != nil && t.manager.ID == t.cashier.ID {
		t.managerTok = tok
	} else if t.manager != nil {
		if t.managerTok, _, err = t.session(ctx, *t.manager); err != nil {
			return err
		}
	}
	return nil
}

func (t *till) session(ctx context.Context, s Seller) (token, role string, err error) {
	req, err := post(epLogin, t.shop.url+"/v1/sessions", map[string]string{"seller": s.ID, "pin": s.PIN}, t.auth(""))
	if err != nil {
		return "", "", err
	}
	var a sessionAnswer
	if _, err := t.sim.client.do(ctx, t.rng, req, &a); err != nil {
		return "", "", fmt.Errorf("tillsim: %s: log %s in at %s: %w", t.shop.url, s.ID, t.term.ID, err)
	}
	return a.Token, a.Role, nil
}

// fact posts a fact and counts the answer. A 401 (the node restarted and
// forgot its sessions) logs the sellers in again and resends the same
// body once. A 2xx whose body does not decode is an acknowledgement all
// the same (the fact is stored under the ID the till chose): fact returns
// no error for it and out stays as it was.
func (t *till) fact(ctx context.Context, endpoint, path string, body any, manager bool, out any) (int, error) {
	send := func() (int, error) {
		tok := t.cashierTok
		if manager {
			tok = t.managerTok
		}
		req, err := post(endpoint, t.shop.url+path, body, t.auth(tok))
		if err != nil {
			return 0, err
		}
		return t.sim.client.do(ctx, t.rng, req, out)
	}
	status, err := send()
	var r *refused
	if errors.As(err, &r) && r.status == http.StatusUnauthorized {
		if lerr := t.login(ctx); lerr == nil {
			status, err = send()
		}
	}
	if errors.Is(err, errBadAnswer) {
		// The node stored the fact under the ID the till chose; only the
		// answer's details are lost. It is acknowledged, as a 201 or 200
		// says, and reported as such (the caller gets a zero answer).
		err = nil
	}
	t.sim.cnt.add(func(c *counters) {
		switch {
		case status == http.StatusCreated:
			c.created++
		case status == http.StatusOK:
			c.replayed++
		case errors.Is(err, errUnknown):
			c.unknown++
		case pointsRefused(err):
			// A definite answer: nothing stored; the till pays otherwise.
			c.pointsRefused++
		case answered(endpoint, err) == answerTooFewAvailable:
			c.reservationsRefused++
		case answered(endpoint, err) == answerEndedElsewhere:
			c.reservationsEnded++
		default:
			c.failed++
		}
	})
	return status, err
}

func (t *till) now() time.Time { return t.sim.now().UTC().Truncate(time.Millisecond) }

func (t *till) openShift(ctx context.Context) error {
	t.shiftN++
	shift := shiftID(t.term.ID, t.sim.tag, t.shiftN)
	float := t.sim.cfg.Float.Round(t.shop.scale())
	body := shiftOpenJSON{ID: storeline.NewEventID(), Terminal: t.term.ID, Shift: shift, Seller: t.cashier.ID,
		OccurredAt: t.now(), Float: float.StringFixed(t.shop.scale())}
	status, err := t.fact(ctx, epOpen, "/v1/shifts", body, false, nil)
	if err != nil {
		return fmt.Errorf("tillsim: %s: open shift %s: %w", t.shop.url, shift, err)
	}
	t.shift, t.shiftReceipts, t.drawer = shift, 0, float
	t.shop.add(func(s *shopTally) { s.shiftsOpened++ })
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactShiftOpen, ID: body.ID, Status: status, Terminal: t.term.ID, Shift: shift, Seller: t.cashier.ID, Amount: float, Drawer: float})
	return nil
}

// shiftID names a till's n-th shift of the run: TERMINAL-TAG-N, an ID of
// at most 64 characters as the spec's ID pattern allows. A terminal ID
// too long for that is cut, and a hash of it keeps terminals whose IDs
// differ only in the part cut off apart.
func shiftID(terminal, tag string, n int) string {
	suffix := fmt.Sprintf("-%s-%d", tag, n)
	if id := terminal + suffix; storeline.ValidID(id) {
		return id
	}
	h := sha256.Sum256([]byte(terminal))
	mark := "-" + hex.EncodeToString(h[:4])
	keep := max(1, min(len(terminal), maxIDLen-len(mark)-len(suffix)))
	return terminal[:keep] + mark + suffix
}

// maxIDLen is the longest ID the tills' API takes (its ID pattern).
const maxIDLen = 64

// closeShift closes the shift, declaring the till's own drawer count, and
// checks the node's expected cash against it. Whatever the answer, the
// till starts a new shift next: a shift whose close failed stays open at
// the node, which is what a real till would leave behind too.
func (t *till) closeShift(ctx context.Context) {
	shift, counted := t.shift, t.drawer
	t.shift = ""
	body := shiftCloseJSON{ID: storeline.NewEventID(), CountedCash: counted.StringFixed(t.shop.scale())}
	var a closeAnswer
	status, err := t.fact(ctx, epClose, "/v1/shifts/"+url.PathEscape(shift)+"/close", body, false, &a)
	if err != nil {
		return
	}
	expected, perr := decimal.NewFromString(a.Report.ExpectedCash)
	mismatch := perr != nil || !expected.Equal(counted)
	t.shop.add(func(s *shopTally) {
		s.shiftsClosed++
		if mismatch {
			s.mismatches++
		}
	})
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactShiftClose, ID: body.ID, Status: status, Terminal: t.term.ID, Shift: shift, Seller: t.cashier.ID, Amount: expected, Counted: counted})
}

// basket builds a receipt's lines from the catalogue snapshot, skewed to
// popular items, priced as the catalogue says.
func (t *till) basket(snap *snapshot) (lines []lineJSON, kept []sold, total decimal.Decimal, weighed, packs int) {
	n := 1 + int(t.rng.ExpFloat64()*3)
	n = min(n, t.sim.cfg.MaxBasketLines)
	scale := snap.scale
	total = decimal.Zero
	// Produce goes into a fifth of the baskets and a multipack into a
	// tenth, on top of the skewed picks.
	var extra []int
	if len(snap.weighed) > 0 && t.rng.Float64() < 0.2 {
		extra = append(extra, snap.weighed[t.rng.IntN(len(snap.weighed))])
	}
	if len(snap.packs) > 0 && t.rng.Float64() < 0.1 {
		extra = append(extra, snap.packs[t.rng.IntN(len(snap.packs))])
	}
	n = max(n, len(extra))
	for len(lines) < n {
		var it sellable
		wantPack := false
		if len(extra) > 0 {
			it, extra = snap.items[extra[0]], extra[1:]
			wantPack = it.pack != ""
		} else {
			it = t.popular(snap)
		}
		price := it.price.StringFixed(scale)
		l := lineJSON{Price: price}
		var qty decimal.Decimal
		switch {
		case it.weighed:
			grams := 150 + t.rng.IntN(2350)
			qty = decimal.New(int64(grams), -3)
			if it.weighIn != "" && t.sim.cfg.WeighedLayout.WeightDecimals == 3 {
				if code, err := t.sim.layout.print(it.weighIn, grams); err == nil {
					l.Barcode = code // the weight is inside: no qty
				}
			}
			if l.Barcode == "" {
				l.SKU, l.Qty = it.sku, qty.String()
			}
			weighed++
		case it.marked:
			if it.ean == "" {
				continue
			}
			l.Barcode = "01" + it.ean + "21" + t.serial()
			qty = decimal.NewFromInt(1)
		case it.pack != "" && (wantPack || t.rng.Float64() < 0.25):
			packsN := 1 + t.rng.IntN(2)
			l.Barcode, l.Qty = scanForm(it.pack), fmt.Sprint(packsN)
			qty = it.factor.Mul(decimal.NewFromInt(int64(packsN)))
			packs++
		default:
			k := 1
			if r := t.rng.Float64(); r > 0.9 {
				k = 3
			} else if r > 0.7 {
				k = 2
			}
			qty = decimal.NewFromInt(int64(k))
			l.Qty = qty.String()
			if it.ean != "" && t.rng.Float64() < 0.8 {
				l.Barcode = scanForm(it.ean)
			} else {
				l.SKU = it.sku
			}
		}
		lineTotal := qty.Mul(it.price).Round(scale)
		total = total.Add(lineTotal)
		lines = append(lines, l)
		ret := lineJSON{SKU: it.sku, Qty: qty.String(), Price: price}
		if it.marked && len(l.Barcode) > 18 {
			ret.Serial = l.Barcode[18:]
		}
		kept = append(kept, sold{line: ret, item: it.id, qty: qty, total: lineTotal})
	}
	return lines, kept, total, weighed, packs
}

// popular picks an item of the snapshot, skewed to the best sellers.
func (t *till) popular(snap *snapshot) sellable {
	if t.zipf == nil || t.zipfN != len(snap.items) {
		t.zipf = rand.NewZipf(t.rng, t.sim.cfg.ZipfS, 1, uint64(len(snap.items)-1))
		t.zipfN = len(snap.items)
	}
	return snap.items[t.zipf.Uint64()]
}

// scanForm is how a scanner reads a stored GTIN-14: EAN-13 when it starts
// with a zero.
func scanForm(gtin14 string) string {
	if len(gtin14) == 14 && gtin14[0] == '0' {
		return gtin14[1:]
	}
	return gtin14
}

const serialChars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

// serial is a marked item's serial: 13 printable characters, a letter
// first so the code is never all digits.
func (t *till) serial() string {
	b := make([]byte, 13)
	for i := range b {
		b[i] = serialChars[t.rng.IntN(len(serialChars))]
	}
	b[0] = serialChars[t.rng.IntN(24)]
	return string(b)
}

// tender pays total: by card, or in cash rounded up to a note (or exact).
func (t *till) tender(total decimal.Decimal, scale int32) (pays []payJSON, cash decimal.Decimal, byCard bool) {
	if t.rng.Float64() < t.sim.cfg.CardRate {
		ref := fmt.Sprintf("SIM%010d", t.rng.Int64N(1e10))
		auth := fmt.Sprintf("%06d", t.rng.IntN(1e6))
		return []payJSON{{Method: "card", Amount: total.StringFixed(scale), Reference: ref, AuthCode: auth}}, decimal.Zero, true
	}
	paid := total
	if t.rng.Float64() < 0.7 {
		for _, note := range []int64{5, 10, 20, 50, 100, 200, 500} {
			n := decimal.NewFromInt(note)
			if n.GreaterThanOrEqual(total) {
				paid = n
				break
			}
		}
		if paid.LessThan(total) {
			paid = total.Ceil()
		}
	}
	return []payJSON{{Method: "cash", Amount: paid.StringFixed(scale)}}, total, false
}

// pay tenders total: points first when spend > 0 (worth their worth),
// the rest by tender. cash is what the drawer keeps.
func (t *till) pay(total decimal.Decimal, scale int32, spend int64, worth decimal.Decimal) (pays []payJSON, cash decimal.Decimal, byCard bool) {
	if spend == 0 {
		return t.tender(total, scale)
	}
	pays, cash, byCard = t.tender(total.Sub(worth), scale)
	return append([]payJSON{{Method: "points", Amount: worth.StringFixed(scale), Points: spend}}, pays...), cash, byCard
}

// receipt rings up one basket.
func (t *till) receipt(ctx context.Context) {
	snap := t.shop.cat.snapshot()
	lines, kept, total, weighed, packs := t.basket(snap)
	t.ringUp(ctx, snap, lines, kept, total, weighed, packs, nil)
}

// ringUp prices, pays and posts a receipt of the basket given: a random
// one, or the goods of reservation col, collected by the customer it was
// made for (with their card, if it named one). It returns the receipt's
// ID and whether the node acknowledged it.
func (t *till) ringUp(ctx context.Context, snap *snapshot, lines []lineJSON, kept []sold, total decimal.Decimal, weighed, packs int, col *heldReservation) (storeline.EventID, bool) {
	pays, cash, byCard := t.tender(total, snap.scale)
	body := receiptJSON{
		ID: storeline.NewEventID(), Terminal: t.term.ID, Shift: t.shift, Seller: t.cashier.ID,
		OccurredAt: t.now(), CatalogVersion: snap.version, Lines: lines, Payments: pays,
		Fiscal: &fiscalJSON{DocumentNumber: fmt.Sprintf("%d", t.rng.Int64N(1e9)), Sign: fmt.Sprintf("%010d", t.rng.Int64N(1e10))},
	}
	var card *cardAnswer
	switch cards := t.shop.cards; {
	case col != nil:
		body.Card = col.card
	case len(cards) > 0 && t.rng.Float64() < t.sim.cfg.LoyaltyRate:
		body.Card = cards[t.rng.IntN(len(cards))]
	}
	if body.Card != "" {
		// A till looks the card up when it is scanned; an unknown card is
		// still recorded on the receipt.
		card = t.lookUpCard(ctx, body.Card)
	}
	promo, local := 0, true
	if t.shop.nodePricing.Load() {
		if priced, n, ok := t.priceWithNode(ctx, &body, kept, snap.scale); ok {
			total, promo, local = priced, n, false
			body.Payments, cash, byCard = t.tender(total, snap.scale)
		}
	}
	// The customer pays part with points now and then, when the card
	// has some to spend here.
	spend, worth := int64(0), decimal.Zero
	if card != nil && t.rng.Float64() < t.sim.cfg.PointsRate {
		if spend, worth = card.spend(t.rng, total, snap.scale); spend > 0 {
			body.Payments, cash, byCard = t.pay(total, snap.scale, spend, worth)
		}
	}
	var a receiptAnswer
	status, err := t.fact(ctx, epReceipt, "/v1/receipts", body, false, &a)
	if spend > 0 && pointsRefused(err) {
		// The points were no longer there to take (another till spent
		// them, the shop handed them back, or it went offline): nothing
		// was stored, so the customer pays it all otherwise, on a new
		// receipt.
		body.ID = storeline.NewEventID()
		spend, worth = 0, decimal.Zero
		body.Payments, cash, byCard = t.tender(total, snap.scale)
		status, err = t.fact(ctx, epReceipt, "/v1/receipts", body, false, &a)
	}
	if err != nil {
		return body.ID, false
	}
	t.shiftReceipts++
	t.drawer = t.drawer.Add(cash)
	method := "cash"
	if byCard {
		method = "card"
	}
	for i := range kept {
		kept[i].payment = method
	}
	t.recent = append(t.recent, soldReceipt{id: body.ID, lines: kept, total: total, points: spend, worth: worth,
		currency: storeline.Currency(snap.currency), returned: decimal.Zero})
	if len(t.recent) > t.sim.cfg.MaxRecent {
		t.recent = t.recent[1:]
	}
	fl := make([]FactLine, len(kept))
	for i, k := range kept {
		fl[i] = FactLine{Item: k.item, Qty: k.qty}
	}
	t.shop.add(func(s *shopTally) {
		s.receipts++
		s.sales = s.sales.Add(total)
		s.lines += len(lines)
		s.weighed += weighed
		s.packs += packs
		s.discrepancies += len(a.Discrepancies)
		s.promoLines += promo
		if local {
			s.localPriced++
		}
		if body.Card != "" {
			s.loyalty++
		}
		if spend > 0 {
			s.pointsPays++
			s.pointsSpent += spend
			s.points = s.points.Add(worth)
		}
		if byCard {
			s.cardPays++
			s.card = s.card.Add(total.Sub(worth))
		} else {
			s.cash = s.cash.Add(total.Sub(worth))
		}
	})
	t.sim.receipts.Add(1)
	for now := time.Now().UnixNano(); ; {
		last := t.sim.lastSale.Load()
		if last >= now || t.sim.lastSale.CompareAndSwap(last, now) {
			break
		}
	}
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactReceipt, ID: body.ID, Status: status, Terminal: t.term.ID, Shift: t.shift,
		Seller: t.cashier.ID, Lines: fl, Amount: total, Points: spend, PointsPaid: worth, Drawer: cash, Discrepancies: len(a.Discrepancies)})
	return body.ID, true
}

// lookUpCard reads a scanned card (GET /v1/cards/{code}): nil when the
// node does not know it or does not answer.
func (t *till) lookUpCard(ctx context.Context, code string) *cardAnswer {
	req := request{endpoint: epCard, method: http.MethodGet, url: t.shop.url + "/v1/cards/" + url.PathEscape(code), headers: t.auth("")}
	var a cardAnswer
	if _, err := t.sim.client.do(ctx, t.rng, req, &a); err != nil {
		return nil
	}
	return &a
}

// priceWithNode prices the basket with the node's engine (price lists,
// the card's customer-group policy, promotions) as a till does before it
// takes payment, and puts each line's unit price and promotion discount on
// the receipt. It returns the receipt's total, or false to keep the
// catalogue's prices (a node without the endpoint stops being asked).
func (t *till) priceWithNode(ctx context.Context, body *receiptJSON, kept []sold, scale int32) (total decimal.Decimal, promo int, ok bool) {
	in := priceJSON{OccurredAt: body.OccurredAt, Card: body.Card, Lines: make([]lineJSON, len(body.Lines))}
	for i, l := range body.Lines {
		in.Lines[i] = lineJSON{SKU: l.SKU, Barcode: l.Barcode, Qty: l.Qty}
	}
	req, err := post(epPrice, t.shop.url+"/v1/baskets/price", in, t.auth(""))
	if err != nil {
		return decimal.Decimal{}, 0, false
	}
	var a pricedJSON
	_, err = t.sim.client.do(ctx, t.rng, req, &a)
	var r *refused
	if errors.As(err, &r) && r.status == http.StatusNotFound && strings.Contains(r.body, "no route") {
		t.shop.nodePricing.Store(false)
	}
	if err != nil || len(a.Lines) != len(body.Lines) {
		return decimal.Decimal{}, 0, false
	}
	total = decimal.Zero
	for i, l := range a.Lines {
		price, err1 := decimal.NewFromString(l.Price)
		disc, err2 := decimal.NewFromString(l.Discount)
		lt, err3 := decimal.NewFromString(l.Total)
		if err1 != nil || err2 != nil || err3 != nil || l.Item != kept[i].item {
			return decimal.Decimal{}, 0, false
		}
		body.Lines[i].Price = price.StringFixed(scale)
		body.Lines[i].Discount = ""
		if disc.IsPositive() {
			body.Lines[i].Discount = disc.StringFixed(scale)
		}
		kept[i].line.Price, kept[i].line.Discount, kept[i].total = body.Lines[i].Price, body.Lines[i].Discount, lt
		if disc.IsPositive() {
			promo++
		}
		total = total.Add(lt)
	}
	if !total.IsPositive() {
		return decimal.Decimal{}, 0, false
	}
	return total, promo, true
}

// returnItem takes back one line of a recent receipt, refunded the way it
// was paid, authorised by the manager's session.
func (t *till) returnItem(ctx context.Context) {
	if len(t.recent) == 0 {
		return
	}
	ri := t.rng.IntN(len(t.recent))
	rc := &t.recent[ri]
	li := t.rng.IntN(len(rc.lines))
	s := rc.lines[li]
	scale := t.shop.scale()
	orig := rc.id
	// Of a receipt paid partly with points, the node gives back the
	// points' share of the return as points; the rest is refunded in the
	// receipt's money tender.
	pointsBack, worthBack := int64(0), decimal.Zero
	if rc.points > 0 {
		pointsBack, worthBack = pricing.Restore(rc.currency, rc.points, rc.worth, rc.total, rc.returned, s.total, len(rc.lines) == 1)
	}
	money := s.total.Sub(worthBack)
	refunds := []payJSON{}
	if money.IsPositive() {
		refunds = append(refunds, payJSON{Method: s.payment, Amount: money.StringFixed(scale)})
	}
	body := returnJSON{
		ID: storeline.NewEventID(), Terminal: t.term.ID, Shift: t.shift, Seller: t.cashier.ID, OccurredAt: t.now(),
		Original: &orig, Reason: "customer changed their mind", Lines: []lineJSON{s.line}, Refunds: refunds,
	}
	status, err := t.fact(ctx, epReturn, "/v1/returns", body, true, nil)
	var r *refused
	if err != nil && !errors.As(err, &r) {
		// Unknown: the node may or may not hold it, so what it gives back
		// of the receipt's points next is unknown too: no more returns of
		// this receipt.
		t.recent = append(t.recent[:ri], t.recent[ri+1:]...)
		return
	}
	rc.lines = append(rc.lines[:li], rc.lines[li+1:]...)
	if err == nil {
		rc.returned = rc.returned.Add(s.total)
	}
	if len(rc.lines) == 0 {
		t.recent = append(t.recent[:ri], t.recent[ri+1:]...)
	}
	if err != nil {
		return
	}
	drawer := decimal.Zero
	if s.payment == "cash" {
		drawer = money.Neg()
		t.drawer = t.drawer.Add(drawer)
	}
	t.shop.add(func(sh *shopTally) {
		sh.returns++
		sh.refunds = sh.refunds.Add(s.total) // money and points given back
		if s.payment == "cash" {
			sh.cash = sh.cash.Sub(money)
		} else {
			sh.card = sh.card.Sub(money)
		}
		sh.points = sh.points.Sub(worthBack)
		sh.pointsSpent -= pointsBack
	})
	t.sim.returns.Add(1)
	t.sim.observe(Fact{Shop: t.shop.index, Kind: FactReturn, ID: body.ID, Status: status, Terminal: t.term.ID, Shift: t.shift,
		Seller: t.cashier.ID, Lines: []FactLine{{Item: s.item, Qty: s.qty}}, Amount: s.total, Points: pointsBack, PointsPaid: worthBack, Drawer: drawer})
}

// cashOp puts change money into the drawer, or (a manager) takes surplus
// out to the safe.
func (t *till) cashOp(ctx context.Context) {
	scale := t.shop.scale()
	out := t.manager != nil && t.drawer.GreaterThan(decimal.NewFromInt(300)) && t.rng.Float64() < 0.7
	body := cashJSON{ID: storeline.NewEventID(), Terminal: t.term.ID, Shift: t.shift, Seller: t.cashier.ID, OccurredAt: t.now()}
	amount := decimal.NewFromInt(20)
	kind, drawer := FactCashIn, amount
	body.Direction, body.Reason = "in", "change money"
	if out {
		amount = decimal.NewFromInt(200)
		kind, drawer = FactCashOut, amount.Neg()
		body.Direction, body.Reason = "out", "to the safe"
	}
	body.Amount = amount.StringFixed(scale)
	status, err := t.fact(ctx, epCash, "/v1/cash", body, out, nil)
	if err != nil {
		return
	}
	t.drawer = t.drawer.Add(drawer)
	t.shop.add(func(s *shopTally) { s.cashOps++ })
	t.sim.observe(Fact{Shop: t.shop.index, Kind: kind, ID: body.ID, Status: status, Terminal: t.term.ID, Shift: t.shift, Seller: t.cashier.ID, Amount: amount, Drawer: drawer})
}

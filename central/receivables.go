package central

// Settlements with buyers (взаиморасчёты с покупателями): the mirror of
// settlements.go's suppliers. Posting an outgoing invoice (a sale on
// account from a shop's stock, storeline.DocOutgoingInvoice) debits the
// buyer's receivable (receivable/<buyer> +total), a buyer return credits
// it; a buyer's payment credits it too, into a bank account.
//
// Invariants:
//
//  1. A buyer payment is one FSM entry (OpBuyerPayment, FSM level 5):
//     every check first (fsm.go invariant 3: a refused payment writes
//     nothing), then its record, its central-authored transfer
//     (receivable/<buyer> −amount, bank/<bank> +amount in the currency's
//     money asset; the event ID derived from the payment ID, so a
//     replayed entry is recognised) and its statement row. The same ID
//     with the same content answers the stored payment and moves nothing;
//     with other content it is a Conflict naming id. Its cancel
//     (OpBuyerPaymentCancel) is settlements.go invariant 5 with the signs
//     turned: the reversal at the booked values, its row dated the later
//     of paid_on and the cancel's day.
//  2. Every central-authored transfer that moves a receivable/<buyer>
//     balance (a document's post or cancel, a payment, any other) writes,
//     in its own entry, one statement row per (buyer, currency) it moves
//     (applyTransfer calls indexReceivables) and adds the row's amount to
//     that buyer's indexed total. Rows are written from level 5 on only:
//     below it the entry is applied by nodes of a version without this
//     index too, and every replica must leave the same state. Nothing
//     moved a receivable before level 5 (no op or document did), so no
//     backfill is needed: the balance of receivable/<buyer> equals the
//     indexed total, but for a transfer by hand before the raise, which
//     a statement shows as unindexed (as the payables statement does).
//  3. Rows are dated and keyed as the payables' (settlements.go invariant
//     3): a document's by its store's business date when it was posted or
//     cancelled, a payment's by paid_on; keyed by buyer, currency, date,
//     id, seq. An outgoing invoice's row carries its due_on, which the
//     receivables report ages by.
//  4. Documents of a buyer (outgoing invoice, buyer return) exist from
//     level 5 on: below it their creation is answered as a node of the
//     version before answers an unknown document type, and the buyer and
//     due date of any other document are dropped as that node drops
//     fields it does not know (refuseBuyerDocBelowLevel).
//  5. The receivables report (GET /v1/receivables) is a view: a buyer's
//     balance is the ledger's, as of the end of a business date the
//     ledger's less the rows dated later (the statement's opening of the
//     day after: recvOpening); its overdue part is found by settling the
//     oldest invoices first, so what is unpaid is the newest invoices'
//     (first in, first out) of those posted and not cancelled by then,
//     each part aged by its invoice's due_on.

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// The ops of settlements with buyers (FSM level 5: levels.go).
const (
	OpBuyerPayment       = "receivable.payment"
	OpBuyerPaymentCancel = "receivable.payment_cancel"
)

// levelReceivables is the level that introduced buyer documents,
// payments and the receivables index.
const levelReceivables = 5

// levelBuyerReturnBatches is the level from which a buyer return puts
// back into the shop's batches what its buyer's outgoing invoices took
// (backoffice_batches.go, returnBatches): below it a return's units come
// back unbatched and its post and cancel, and an outgoing invoice's,
// write what they wrote before.
const levelBuyerReturnBatches = 8

// Keys of the receivables state, all metadata of the replica.
const (
	rcPay   = "rc/pay/" // payment id → msgpack buyerPayment
	rcRow   = "rc/row/" // buyer \0 currency \0 date \0 id \0 seq8 → msgpack recvRow
	rcTotal = "rc/tot/" // buyer \0 currency → the sum of its rows' amounts (decimal string)
)

// The Transfer reasons of a buyer payment's event and of its reversal.
const (
	buyerPaymentReason       = "buyer.payment"
	buyerPaymentCancelReason = "buyer.payment.cancel"
)

// maxReceivablesRows bounds the rows one receivables report reads.
const maxReceivablesRows = 10 * maxStatementRows

func (n *Node) receivableRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/buyer_payments", true, n.postBuyerPayment)
	h("GET /v1/buyer_payments/{id}", false, n.getBuyerPayment)
	h("POST /v1/buyer_payments/{id}/cancel", true, n.postBuyerPaymentCancel)
	h("GET /v1/buyers/{id}/statement", false, n.getBuyerStatement)
	h("GET /v1/receivables", false, n.getReceivables)
}

// Buyer makes txBook a storeline.BuyerBook.
func (b *txBook) Buyer(id storeline.BuyerID) bool {
	return b.get(storeline.KindBuyer, string(id), nil)
}

// refuseBuyerDocBelowLevel answers, below level 5, as a node of the
// version before does (invariant 4): the buyer and due date dropped, a
// buyer's document an unknown type.
func refuseBuyerDocBelowLevel(tx *Tx, d *storeline.Document) error {
	if d.Buyer == "" && d.DueOn == "" && !storeline.IsBuyerDoc(d.Type) {
		return nil
	}
	lv, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil || lv >= levelReceivables {
		return err
	}
	d.Buyer, d.DueOn = "", ""
	if !storeline.IsBuyerDoc(d.Type) {
		return nil
	}
	if err := storeline.CheckID("id", d.ID); err != nil {
		return err
	}
	if err := storeline.CheckID("store", string(d.Store)); err != nil {
		return err
	}
	return storeline.Invalidf("type", "unknown document type %q", d.Type)
}

// checkBuyerDocLevel refuses a buyer's document, or a document naming a
// buyer, until the cluster runs level 5 (the FSM would refuse or drop it).
func (n *Node) checkBuyerDocLevel(d *storeline.Document) error {
	if d.Buyer == "" && d.DueOn == "" && !storeline.IsBuyerDoc(d.Type) {
		return nil
	}
	return n.checkLevelAt(levelReceivables, "a "+string(d.Type)+" document")
}

// buyerPayment is a buyer's payment as the FSM stores it.
type buyerPayment struct {
	ID        string             `msgpack:"i"`
	Buyer     storeline.BuyerID  `msgpack:"u"`
	Bank      storeline.BankID   `msgpack:"b"`
	Currency  storeline.Currency `msgpack:"c"`
	Amount    decimal.Decimal    `msgpack:"a"`
	PaidOn    storeline.Date     `msgpack:"d"`
	Reference string             `msgpack:"r,omitempty"`
	Note      string             `msgpack:"n,omitempty"`
	// Set by the entry that booked it.
	Event     storeline.EventID `msgpack:"e,omitempty"`
	Seq       uint64            `msgpack:"q,omitempty"`
	CreatedMs int64             `msgpack:"t,omitempty"`
	// Set by the entry that cancelled it; CancelEvent is zero while it
	// stands.
	CancelEvent  storeline.EventID `msgpack:"ce,omitempty"`
	CancelSeq    uint64            `msgpack:"cq,omitempty"`
	CancelledMs  int64             `msgpack:"ct,omitempty"`
	CancelledOn  storeline.Date    `msgpack:"cd,omitempty"`
	CancelReason string            `msgpack:"cw,omitempty"`
}

func (p *buyerPayment) cancelled() bool { return !p.CancelEvent.IsZero() }

// buyerPaymentIn is the body of POST /v1/buyer_payments.
type buyerPaymentIn struct {
	ID        string `json:"id"`
	Buyer     string `json:"buyer"`
	Bank      string `json:"bank"`
	Currency  string `json:"currency"`
	Amount    string `json:"amount"`
	PaidOn    string `json:"paid_on"`
	Reference string `json:"reference"`
	Note      string `json:"note"`
}

func (in *buyerPaymentIn) payment() (*buyerPayment, error) {
	p := &buyerPayment{ID: in.ID, Buyer: storeline.BuyerID(in.Buyer), Bank: storeline.BankID(in.Bank),
		Currency: storeline.Currency(in.Currency), PaidOn: storeline.Date(in.PaidOn), Reference: in.Reference, Note: in.Note}
	if in.Amount == "" {
		return nil, storeline.Invalidf("amount", "an amount is required (a decimal string)")
	}
	amt, err := decimal.NewFromString(in.Amount)
	if !plainDecimal.MatchString(in.Amount) || err != nil {
		return nil, errMalformed("amount", "%.40q: want a decimal in a string, as \"12.50\"", in.Amount)
	}
	p.Amount = amt
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// validate checks a payment and normalises its amount (the handler and
// the FSM both run it), as a supplier payment's is checked.
func (p *buyerPayment) validate() error {
	if err := storeline.CheckID("id", p.ID); err != nil {
		return err
	}
	if err := storeline.CheckID("buyer", string(p.Buyer)); err != nil {
		return err
	}
	if err := storeline.CheckID("bank", string(p.Bank)); err != nil {
		return err
	}
	if !p.Currency.Valid() {
		return storeline.Invalidf("currency", "%q is not an ISO 4217 code", p.Currency)
	}
	if !p.Amount.IsPositive() {
		return storeline.Invalidf("amount", "%s: a payment's amount is positive", p.Amount)
	}
	if p.Amount.Truncate(0).NumDigits() > maxPaymentDigits {
		return storeline.Invalidf("amount", "%s: at most %d integer digits", p.Amount, maxPaymentDigits)
	}
	amt, err := p.Currency.Amount("amount", p.Amount)
	if err != nil {
		return err
	}
	p.Amount = amt
	if _, err := storeline.ParseDate("paid_on", string(p.PaidOn)); err != nil {
		return err
	}
	if err := checkText("reference", p.Reference, maxPaymentReference, false); err != nil {
		return err
	}
	return checkText("note", p.Note, maxPaymentNote, true)
}

func (p *buyerPayment) sameContent(q *buyerPayment) bool {
	return p.ID == q.ID && p.Buyer == q.Buyer && p.Bank == q.Bank && p.Currency == q.Currency &&
		p.Amount.Equal(q.Amount) && p.PaidOn == q.PaidOn && p.Reference == q.Reference && p.Note == q.Note
}

// postings are a payment's: the buyer owes less, the bank holds more.
func (p *buyerPayment) postings() []storeline.Posting {
	a := storeline.MoneyAsset(p.Currency)
	return []storeline.Posting{
		{Account: storeline.ReceivableAccount(p.Buyer), Asset: a, Amount: p.Amount.Neg()},
		{Account: storeline.BankAccount(p.Bank), Asset: a, Amount: p.Amount},
	}
}

func (p *buyerPayment) reversal() []storeline.Posting {
	out := p.postings()
	for i := range out {
		out[i].Amount = out[i].Amount.Neg()
	}
	return out
}

func buyerPaymentEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/buyer-payment/" + id)
}

func buyerPaymentCancelEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/buyer-payment-cancel/" + id)
}

func getBuyerPayment(rt *ledger.ReplicaTxn, id string) (*buyerPayment, bool, error) {
	return getMetaRecord[buyerPayment](rt, rcPay+id, "buyer payment "+id)
}

func putBuyerPayment(rt *ledger.ReplicaTxn, p *buyerPayment) error {
	return putMetaRecord(rt, rcPay+p.ID, "buyer payment "+p.ID, p)
}

// buyerPaymentAnswer is the body of the buyer payment ops' results.
type buyerPaymentAnswer struct {
	Payment   buyerPayment `msgpack:"p"`
	Duplicate bool         `msgpack:"d,omitempty"`
}

// checkMaster refuses (Invalid naming field) an id the master data of
// kind lacks.
func checkMaster(tx *Tx, kind storeline.MasterKind, field, id string) error {
	found, err := tx.HasMaster(kind, id)
	if err == nil && !found {
		err = storeline.Invalidf(field, "unknown %s %q", kind, id)
	}
	return err
}

func applyBuyerPayment(tx *Tx, payload []byte) ([]byte, error) {
	var p buyerPayment
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable buyer payment: %v", err)
	}
	// What the entry sets is never the caller's.
	p.Event, p.Seq, p.CreatedMs = storeline.EventID{}, 0, 0
	p.CancelEvent, p.CancelSeq, p.CancelledMs, p.CancelledOn, p.CancelReason = storeline.EventID{}, 0, 0, "", ""
	if err := p.validate(); err != nil {
		return nil, err
	}
	old, ok, err := getBuyerPayment(tx.ReplicaTxn, p.ID)
	if err != nil {
		return nil, err
	}
	if ok {
		if !p.sameContent(old) {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("buyer payment %q was booked with other content", p.ID)}
		}
		return msgpack.Marshal(&buyerPaymentAnswer{Payment: *old, Duplicate: true})
	}
	if err := checkMaster(tx, storeline.KindBuyer, "buyer", string(p.Buyer)); err != nil {
		return nil, err
	}
	if err := checkMaster(tx, storeline.KindBank, "bank", string(p.Bank)); err != nil {
		return nil, err
	}
	p.Event = buyerPaymentEventID(p.ID)
	if err := checkTransferFree(tx, p.Event, "buyer payment "+strconv.Quote(p.ID)); err != nil {
		return nil, err
	}
	// Writes from here on. The record first: the transfer's statement
	// row reads its date and bank from it (indexReceivables).
	p.CreatedMs = tx.At.UnixMilli()
	if err := putBuyerPayment(tx.ReplicaTxn, &p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, p.Event, buyerPaymentReason, p.ID, p.postings())
	if err != nil {
		return nil, err
	}
	p.Seq = seq
	if err := putBuyerPayment(tx.ReplicaTxn, &p); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&buyerPaymentAnswer{Payment: p})
}

func applyBuyerPaymentCancel(tx *Tx, payload []byte) ([]byte, error) {
	var c paymentCancel
	if err := msgpack.Unmarshal(payload, &c); err != nil {
		return nil, storeline.Invalidf("", "undecodable buyer payment cancel: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	p, ok, err := getBuyerPayment(tx.ReplicaTxn, c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no buyer payment %q", c.ID)}
	}
	if p.cancelled() {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "status",
			Err: fmt.Errorf("buyer payment %q is cancelled already (at %s)", p.ID, time.UnixMilli(p.CancelledMs).UTC().Format(time.RFC3339))}
	}
	if p.Event.IsZero() || p.Seq == 0 {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("buyer payment %q is recorded without its transfer", p.ID)}
	}
	ev := buyerPaymentCancelEventID(p.ID)
	if err := checkTransferFree(tx, ev, "the cancel of buyer payment "+strconv.Quote(p.ID)); err != nil {
		return nil, err
	}
	rev := p.reversal()
	if err := storeline.CheckPostings(storeline.MergePostings(rev)); err != nil {
		return nil, &storeline.Error{Kind: storeline.Invalid, Field: "id", Err: fmt.Errorf("buyer payment %q cannot be reversed: %w", p.ID, err)}
	}
	day, err := c.cancelDay(tx.At, levelReceivables)
	if err != nil {
		return nil, err
	}
	// Writes from here on; the record first, as a payment's.
	p.CancelEvent, p.CancelledMs, p.CancelReason = ev, tx.At.UnixMilli(), c.Reason
	p.CancelledOn = max(p.PaidOn, day)
	if err := putBuyerPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, ev, buyerPaymentCancelReason, p.ID, rev)
	if err != nil {
		return nil, err
	}
	p.CancelSeq = seq
	if err := putBuyerPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&buyerPaymentAnswer{Payment: *p})
}

// recvRow is one movement of a buyer's receivable (rcRow). Its Owed is
// what the movement adds to what the buyer owes: the receivable posting.
type recvRow struct {
	settleRow `msgpack:",inline"`
	DueOn     storeline.Date `msgpack:"due,omitempty"` // an outgoing invoice's
}

func recvRowKey(b storeline.BuyerID, c storeline.Currency, r *settleRow) string {
	return rcRow + string(b) + "\x00" + string(c) + "\x00" + statementCursor(r)
}

func recvTotalKey(b storeline.BuyerID, c storeline.Currency) string {
	return rcTotal + string(b) + "\x00" + string(c)
}

// indexReceivables writes the statement rows of a central-authored
// transfer ev as applyTransfer applies it (invariant 2).
func indexReceivables(tx *Tx, ev *storeline.Event) error {
	var moved []storeline.Posting
	for _, p := range ev.Postings {
		b, ok := strings.CutPrefix(p.Account, "receivable/")
		c, money := p.Asset.Currency()
		if ok && money && c.Valid() && storeline.ValidID(b) && !p.Amount.IsZero() {
			moved = append(moved, p)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if lv, err := readClusterLevel(tx.ReplicaTxn); err != nil || lv < levelReceivables {
		return err
	}
	row := recvRow{settleRow: settleRow{Type: rowTransfer, ID: ev.ID.String(), Date: ev.BusinessDate, Event: ev.ID, Seq: ev.Seq}}
	tr, _ := ev.Body.(*storeline.Transfer)
	if tr == nil {
		tr = &storeline.Transfer{}
	}
	other := func() {
		row.Reason = tr.Reason
		if storeline.ValidID(tr.Ref) {
			row.ID = tr.Ref
		}
	}
	switch tr.Reason {
	case "document.post", "document.cancel":
		rec, ok, err := getDoc(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		if !ok {
			other()
			break
		}
		d := &rec.Doc
		cancel := tr.Reason == "document.cancel"
		switch {
		case d.Type == storeline.DocOutgoingInvoice && !cancel:
			row.Type, row.DueOn = rowInvoice, d.DueOn
		case d.Type == storeline.DocOutgoingInvoice:
			row.Type = rowInvoiceCancel
		case d.Type == storeline.DocBuyerReturn && !cancel:
			row.Type = rowReturn
		case d.Type == storeline.DocBuyerReturn:
			row.Type = rowReturnCancel
		default:
			row.Reason = tr.Reason
		}
		row.ID, row.Store, row.Number = d.ID, d.Store, d.Number
		b := &txBook{rt: tx.ReplicaTxn}
		if st, ok := b.Store(d.Store); ok {
			loc, err := st.Location()
			if err != nil {
				return fmt.Errorf("document %s: store %s: %w", d.ID, d.Store, err)
			}
			row.Date = storeline.DateOf(tx.At, loc)
		} else if b.err != nil {
			return b.err
		}
	case buyerPaymentReason, buyerPaymentCancelReason:
		p, ok, err := getBuyerPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		switch {
		case ok && tr.Reason == buyerPaymentReason && p.Event == ev.ID:
			row.Type, row.ID, row.Date, row.Bank, row.Reference = rowPayment, p.ID, p.PaidOn, p.Bank, p.Reference
		case ok && p.cancelled() && p.CancelEvent == ev.ID:
			row.Type, row.ID, row.Date, row.Bank, row.Reference = rowPaymentCancel, p.ID, p.CancelledOn, p.Bank, p.Reference
		default:
			other() // a transfer by hand that took the reason
		}
	default:
		other()
	}
	for _, p := range moved {
		b := storeline.BuyerID(strings.TrimPrefix(p.Account, "receivable/"))
		c, _ := p.Asset.Currency()
		r := row
		r.Owed = p.Amount
		enc, err := msgpack.Marshal(&r)
		if err != nil {
			return fmt.Errorf("receivable row of %s: %w", b, err)
		}
		if err := tx.SetMeta(recvRowKey(b, c, &r.settleRow), enc); err != nil {
			return err
		}
		tot, err := readDecimal(tx.ReplicaTxn, recvTotalKey(b, c))
		if err != nil {
			return err
		}
		if err := tx.SetMeta(recvTotalKey(b, c), []byte(tot.Add(r.Owed).String())); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) postBuyerPayment(w http.ResponseWriter, r *http.Request) error {
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in buyerPaymentIn
	if err := strictJSON(body, &in); err != nil {
		return err
	}
	p, err := in.payment()
	if err != nil {
		return err
	}
	a, duplicate, err := n.submitBuyerPayment(r, "central.buyer_payment", OpBuyerPayment, p)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, buyerPaymentJSON(&a.Payment))
	return nil
}

func (n *Node) submitBuyerPayment(r *http.Request, op, fsmOp string, payload any) (buyerPaymentAnswer, bool, error) {
	var a buyerPaymentAnswer
	key, err := idempotencyKey(r)
	if err != nil {
		return a, false, err
	}
	enc, err := msgpack.Marshal(payload)
	if err != nil {
		return a, false, storeline.E(op, storeline.Internal, err)
	}
	res, err := n.Submit(r.Context(), fsmOp, key, enc)
	if err != nil {
		return a, false, err
	}
	if err := res.Err(); err != nil {
		return a, false, err
	}
	if err := msgpack.Unmarshal(res.Body, &a); err != nil {
		return a, false, storeline.E(op, storeline.Internal, err)
	}
	return a, a.Duplicate || res.Duplicate, nil
}

func buyerPaymentJSON(p *buyerPayment) map[string]any {
	m := map[string]any{"id": p.ID, "buyer": p.Buyer, "bank": p.Bank, "currency": p.Currency,
		"amount": moneyString(p.Currency, p.Amount), "paid_on": p.PaidOn, "event": p.Event.String(),
		"position":  map[string]any{"epoch": 1, "seq": p.Seq},
		"booked_at": time.UnixMilli(p.CreatedMs).UTC(), "status": "booked"}
	if p.Reference != "" {
		m["reference"] = p.Reference
	}
	if p.Note != "" {
		m["note"] = p.Note
	}
	if p.cancelled() {
		m["status"], m["reason"], m["cancelled_on"] = "cancelled", p.CancelReason, p.CancelledOn
		m["cancelled_at"] = time.UnixMilli(p.CancelledMs).UTC()
		m["cancel_event"] = p.CancelEvent.String()
		m["cancel_position"] = map[string]any{"epoch": 1, "seq": p.CancelSeq}
	}
	return m
}

func (n *Node) postBuyerPaymentCancel(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in paymentCancelIn
	if err := strictJSON(body, &in); err != nil {
		return err
	}
	c := &paymentCancel{ID: id, Reason: in.Reason, On: in.CancelledOn}
	if err := c.validate(); err != nil {
		return err
	}
	if c.On != "" {
		if _, err := c.cancelDay(n.now(), levelReceivables); err != nil {
			return err // checked again, against the entry's time, by the FSM
		}
	}
	a, _, err := n.submitBuyerPayment(r, "central.buyer_payment_cancel", OpBuyerPaymentCancel, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, buyerPaymentJSON(&a.Payment))
	return nil
}

func (n *Node) getBuyerPayment(w http.ResponseWriter, r *http.Request) error {
	missing := func(id string) error {
		return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no buyer payment %q", id)}
	}
	return serveRecord(n, w, r, getBuyerPayment, missing, func(p *buyerPayment) any { return buyerPaymentJSON(p) })
}

// recvOpening answers what buyer owed in cur at the start of day from
// and what it owes now: the balance of its receivable now less the rows
// dated from on, the ledger's balance being the truth and the rows what
// moved it (invariant 2). Each of those rows is passed to visit in key
// order; an error from visit ends the scan (a bound on the rows read).
func recvOpening(rt *ledger.ReplicaTxn, buyer storeline.BuyerID, cur storeline.Currency, from storeline.Date,
	visit func(*recvRow) error) (opening, balance decimal.Decimal, err error) {
	if balance, err = readDecimal(rt, balKey(storeline.ReceivableAccount(buyer), storeline.MoneyAsset(cur))); err != nil {
		return decimal.Zero, decimal.Zero, err
	}
	fromOn := decimal.Zero
	err = rt.ScanMetaFrom(rcRow+string(buyer)+"\x00"+string(cur)+"\x00", string(from), func(k string, v []byte) (bool, error) {
		var row recvRow
		if err := msgpack.Unmarshal(v, &row); err != nil {
			return false, fmt.Errorf("receivable row %q: %w", k, err)
		}
		if err := visit(&row); err != nil {
			return false, err
		}
		fromOn = fromOn.Add(row.Owed)
		return true, nil
	})
	return balance.Sub(fromOn), balance, err
}

// getBuyerStatement answers a buyer's statement in one currency for
// business dates from to to (inclusive), as a supplier's is answered
// (getSupplierStatement) with the sign turned: amounts are what the
// buyer owes more (an invoice positive, a payment negative); opening is
// what the buyer owed at the start of from, closing at the end of to.
func (n *Node) getBuyerStatement(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := storeline.CheckID("id", id); err != nil {
		return err
	}
	q := r.URL.Query()
	cur := storeline.Currency(q.Get("currency"))
	if !cur.Valid() {
		return errMalformed("currency", "%q: want an ISO 4217 code", cur)
	}
	from, to, err := dateRange(r)
	if err != nil {
		return err
	}
	limit := maxStatementRows
	if q.Has("limit") {
		if limit, err = queryLimit(r); err != nil {
			return err
		}
	}
	after, err := parseStatementAfter(q.Get("after"))
	if err != nil {
		return err
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	buyer := storeline.BuyerID(id)
	var (
		rows                      []recvRow
		opening, balance, indexed decimal.Decimal
		inPeriod                  decimal.Decimal
		known                     bool
	)
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		if known, err = rt.HasMaster(storeline.KindBuyer, id); err != nil {
			return err
		}
		if indexed, err = readDecimal(rt, recvTotalKey(buyer, cur)); err != nil {
			return err
		}
		if !known && indexed.IsZero() {
			// A buyer removed from the master data keeps its history.
			if err := rt.ScanMeta(rcRow+id+"\x00", func(string, []byte) (bool, error) {
				known = true
				return false, nil
			}); err != nil {
				return err
			}
		}
		scanned := 0
		opening, balance, err = recvOpening(rt, buyer, cur, from, func(row *recvRow) error {
			if scanned++; scanned > maxStatementRows {
				return &storeline.Error{Kind: storeline.TooLarge, Field: "from",
					Err: fmt.Errorf("more than %d movements of %s from %s on: ask for a later period", maxStatementRows, id, from)}
			}
			if row.Date <= to {
				inPeriod = inPeriod.Add(row.Owed)
				rows = append(rows, *row)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	if !known && balance.IsZero() && indexed.IsZero() {
		return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("unknown buyer %q", id)}
	}
	show := func(d decimal.Decimal) string { return moneyString(cur, d) }
	sums := map[string]decimal.Decimal{}
	out := make([]map[string]any, 0, len(rows))
	running, next := opening, ""
	for i := range rows {
		row := &rows[i]
		running = running.Add(row.Owed)
		sums[row.Type] = sums[row.Type].Add(row.Owed)
		if next != "" || after != "" && statementCursor(&row.settleRow) <= after {
			continue // on another page
		}
		if len(out) == limit {
			last := &rows[i-1]
			next = fmt.Sprintf("%s/%s/%d", last.Date, last.ID, last.Seq)
			continue
		}
		m := map[string]any{"type": row.Type, "id": row.ID, "date": row.Date, "amount": show(row.Owed),
			"balance": show(running), "event": row.Event.String()}
		for k, v := range map[string]string{"store": string(row.Store), "number": row.Number, "bank": string(row.Bank),
			"reference": row.Reference, "reason": row.Reason, "due_on": string(row.DueOn)} {
			if v != "" {
				m[k] = v
			}
		}
		out = append(out, m)
	}
	totals := map[string]string{}
	for _, t := range rowTypes {
		totals[t] = show(sums[t])
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"buyer": id, "currency": cur, "from": from, "to": to,
		"opening": show(opening), "closing": show(opening.Add(inPeriod)),
		"unindexed": show(balance.Sub(indexed)),
		"rows":      out, "totals": totals, "next": next,
	})
	return nil
}

// agingBuckets name the days past due a receivable's overdue part is
// counted in (the upper bound inclusive; the last has none).
var agingBuckets = []struct {
	name string
	upTo int
}{{"0-30", 30}, {"31-60", 60}, {"61-90", 90}, {"90+", -1}}

// receivable is one buyer's balance in one currency, aged (invariant 5).
type receivable struct {
	buyer    storeline.BuyerID
	currency storeline.Currency
	balance  decimal.Decimal
	notDue   decimal.Decimal
	buckets  []decimal.Decimal // by agingBuckets
}

// openInvoice is an outgoing invoice's row as aging reads it.
type openInvoice struct {
	id     string
	due    storeline.Date
	amount decimal.Decimal
	seq    uint64 // of its post in central's stream: which is older
}

// age splits balance over invoices, newest first (what is left unpaid
// when the oldest are settled first), by days past due as of asOf; what
// no invoice accounts for (a credit, or a transfer by hand) is not due.
func age(balance decimal.Decimal, invoices []openInvoice, asOf time.Time) (notDue decimal.Decimal, buckets []decimal.Decimal) {
	buckets = make([]decimal.Decimal, len(agingBuckets))
	left := balance
	for i := len(invoices) - 1; i >= 0 && left.IsPositive(); i-- {
		part := decimal.Min(left, invoices[i].amount)
		left = left.Sub(part)
		due, err := time.Parse(time.DateOnly, string(invoices[i].due))
		if err != nil || !asOf.After(due) {
			notDue = notDue.Add(part)
			continue
		}
		days := int(asOf.Sub(due).Hours() / 24)
		for b, bk := range agingBuckets {
			if bk.upTo < 0 || days <= bk.upTo {
				buckets[b] = buckets[b].Add(part)
				break
			}
		}
	}
	return notDue.Add(left), buckets
}

// getReceivables answers every buyer's balance owed per currency (each
// buyer and currency with a movement since level 5), its overdue part,
// and that part by days past due, as of the end of as_of (invariant 5;
// without it: owed now, aged as of today in UTC), the invoices without a
// due date never overdue. ?buyer= and ?currency= narrow it.
func (n *Node) getReceivables(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	asOf := n.now().UTC().Truncate(24 * time.Hour)
	// until is the last business date whose movements count; "" (no
	// as_of) counts every movement, dated ahead of today in UTC (a shop
	// east of it) or not.
	var until storeline.Date
	if s := q.Get("as_of"); s != "" {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return errMalformed("as_of", "%.40q: want YYYY-MM-DD", s)
		}
		asOf, until = t, storeline.Date(s)
	}
	onlyBuyer, onlyCur := q.Get("buyer"), storeline.Currency(q.Get("currency"))
	if onlyBuyer != "" {
		if err := storeline.CheckID("buyer", onlyBuyer); err != nil {
			return err
		}
	}
	if onlyCur != "" && !onlyCur.Valid() {
		return errMalformed("currency", "%q: want an ISO 4217 code", onlyCur)
	}
	if err := n.readConsistency(r); err != nil {
		return err
	}
	var list []receivable
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		prefix := rcTotal
		if onlyBuyer != "" {
			prefix += onlyBuyer + "\x00"
		}
		var keys []string
		if err := rt.ScanMeta(prefix, func(k string, _ []byte) (bool, error) {
			keys = append(keys, strings.TrimPrefix(k, rcTotal))
			return true, nil
		}); err != nil {
			return err
		}
		scanned := 0
		count := func() error {
			if scanned++; scanned > maxReceivablesRows {
				return &storeline.Error{Kind: storeline.TooLarge, Field: "buyer",
					Err: fmt.Errorf("more than %d movements to age: ask for one buyer", maxReceivablesRows)}
			}
			return nil
		}
		for _, k := range keys {
			b, c, ok := strings.Cut(k, "\x00")
			if !ok || onlyCur != "" && storeline.Currency(c) != onlyCur {
				continue
			}
			rc := receivable{buyer: storeline.BuyerID(b), currency: storeline.Currency(c)}
			var err error
			if until == "" {
				rc.balance, err = readDecimal(rt, balKey(storeline.ReceivableAccount(rc.buyer), storeline.MoneyAsset(rc.currency)))
			} else {
				// What was owed at the end of as_of: the statement's
				// opening of the day after.
				next := storeline.Date(asOf.AddDate(0, 0, 1).Format(time.DateOnly))
				rc.balance, _, err = recvOpening(rt, rc.buyer, rc.currency, next, func(*recvRow) error { return count() })
			}
			if err != nil {
				return err
			}
			// The invoices open then: posted, and not cancelled, by the
			// end of as_of. Rows come by date, so the first dated later
			// ends the scan.
			var invoices []openInvoice
			cancelled := map[string]bool{}
			if err := rt.ScanMeta(rcRow+k+"\x00", func(key string, v []byte) (bool, error) {
				var row recvRow
				if err := msgpack.Unmarshal(v, &row); err != nil {
					return false, fmt.Errorf("receivable row %q: %w", key, err)
				}
				if until != "" && row.Date > until {
					return false, nil // counted by recvOpening
				}
				if err := count(); err != nil {
					return false, err
				}
				switch row.Type {
				case rowInvoice:
					invoices = append(invoices, openInvoice{id: row.ID, due: row.DueOn, amount: row.Owed, seq: row.Seq})
				case rowInvoiceCancel:
					cancelled[row.ID] = true
				}
				return true, nil
			}); err != nil {
				return err
			}
			invoices = slices.DeleteFunc(invoices, func(o openInvoice) bool { return cancelled[o.id] })
			// Rows come by date then ID; of a day's invoices the one
			// posted first is the older.
			slices.SortFunc(invoices, func(x, y openInvoice) int { return cmp.Compare(x.seq, y.seq) })
			rc.notDue, rc.buckets = age(rc.balance, invoices, asOf)
			list = append(list, rc)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].buyer != list[j].buyer {
			return list[i].buyer < list[j].buyer
		}
		return list[i].currency < list[j].currency
	})
	out := make([]map[string]any, 0, len(list))
	for _, rc := range list {
		show := func(d decimal.Decimal) string { return moneyString(rc.currency, d) }
		overdue := decimal.Zero
		aging := map[string]string{}
		for b, bk := range agingBuckets {
			overdue = overdue.Add(rc.buckets[b])
			aging[bk.name] = show(rc.buckets[b])
		}
		out = append(out, map[string]any{"buyer": rc.buyer, "currency": rc.currency, "balance": show(rc.balance),
			"not_due": show(rc.notDue), "overdue": show(overdue), "aging": aging})
	}
	writeJSON(w, http.StatusOK, map[string]any{"as_of": asOf.Format(time.DateOnly), "receivables": out})
	return nil
}

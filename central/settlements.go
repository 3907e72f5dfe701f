package central

// Settlements with suppliers (взаиморасчёты): payments to suppliers, and a
// supplier's statement. Posting an incoming invoice credits the supplier's
// payable (payable/<supplier> −total), a supplier return debits it; a
// payment debits it too, from a bank account (storeline.BankAccount).
//
// Invariants:
//
//  1. A payment is one FSM entry (OpSupplierPayment): every check first
//     (fsm.go invariant 3: a refused payment writes nothing), then its
//     record, its central-authored transfer (payable/<supplier> +amount,
//     bank/<bank> −amount in the currency's money asset, through
//     applyTransfer as a document's postings go; the event ID derived from
//     the payment ID, so a replayed entry is recognised) and its statement
//     row. The same ID with the same content answers the stored payment
//     and moves nothing; with other content it is a Conflict naming id.
//  2. Every central-authored transfer that moves a payable/<supplier>
//     balance (a document's post or cancel, a payment, any other) writes,
//     in its own entry, one statement row per (supplier, currency) it
//     moves (applyTransfer calls indexPayables) and adds the row's amount
//     to that supplier's indexed total (stTotal). So −balance of
//     payable/<supplier> = indexed total + unindexed, where unindexed is
//     what moved before this index existed (documents posted by an older
//     build, or while the cluster ran an FSM level below 2: nodes of an
//     older build apply those entries too and write no rows, so no replica
//     does): a statement counts it in its opening balance and shows it,
//     and its closing balance always equals the payable balance as of
//     its end. When the cluster's level is raised to 2 the index is
//     backfilled (invariant 4), so unindexed then drops to zero.
//  3. A row's date is a document's business date in its store's time
//     zone when it was posted or cancelled (as the excise journal dates
//     them), a payment's paid_on, any other transfer's event date. Rows
//     are keyed by supplier, currency, date, then id, so a statement reads
//     from its first date on: its opening balance is the balance now less
//     every row dated from then on.
//  4. The entry that raises the cluster's level to 2 (applyClusterLevel)
//     starts the backfill: every central-authored event up to the last
//     one applied before it (rpHQSeq) is indexed as indexPayables would
//     have indexed it when it was applied, a document's row dated by the
//     event's time (the time of the entry that posted it). Events after
//     the raise were indexed as they were applied, so none is indexed
//     twice. The backfill is state (stBackfill: next and last event),
//     read at most payablesBackfillChunk events an entry: the raise
//     entry reads the first chunk, and the leader proposes
//     OpPayablesBackfill for each next one (raiseLevel), so no entry
//     writes an unbounded number of rows, every replica indexes the same
//     events at the same index, and a snapshot carries where it stands.
//     Each row also adds to the indexed total, so a statement read while
//     it runs is exact and shows what is left as unindexed.
//  5. A payment is cancelled by one FSM entry (OpSupplierPaymentCancel,
//     FSM level 3: levels.go): every check first (the payment exists and
//     is not cancelled, the reason is bounded text, the reversing
//     transfer is not applied yet and its postings are valid), then the
//     payment's record marked cancelled (when, why, the date of its row),
//     and a central-authored transfer that reverses the payment's
//     postings at their booked values (payable/<supplier> −amount,
//     bank/<bank> +amount; its event ID derived from the payment ID), whose
//     statement row (payment_cancel) is dated the later of the payment's
//     paid_on and the cancel's date, so it never precedes what it
//     reverses and a period closed before it keeps its rows. A cancelled
//     payment stays cancelled: its id is spent (booked again with the same
//     content it answers the cancelled payment), a second cancel is a
//     Conflict naming status (a retry with the request's Idempotency-Key
//     gets the first answer, fsm.go invariant 4).

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// OpSupplierPayment books a payment to a supplier (invariant 1).
const OpSupplierPayment = "settlement.payment"

// OpSupplierPaymentCancel cancels a supplier payment (invariant 5).
const OpSupplierPaymentCancel = "settlement.payment_cancel"

// Keys of the settlement state, all metadata of the replica.
const (
	stPay      = "st/pay/"     // payment id → msgpack supplierPayment
	stRow      = "st/row/"     // supplier \0 currency \0 date \0 id \0 seq8 → msgpack settleRow
	stTotal    = "st/tot/"     // supplier \0 currency → the sum of its rows' Owed (decimal string)
	stBackfill = "st/backfill" // → msgpack payablesBackfill while the index is being backfilled (invariant 4)
)

// paymentReason is the Transfer reason of a payment's event,
// paymentCancelReason that of the event that reverses it.
const (
	paymentReason       = "supplier.payment"
	paymentCancelReason = "supplier.payment.cancel"
)

// Bounds of a payment's free text (in characters, as openapi.yaml's
// maxLength counts them) and amount.
const (
	maxPaymentReference = 128
	maxPaymentNote      = 1024
	maxCancelReason     = 1024
	maxPaymentDigits    = 15 // integer digits of an amount
)

// maxStatementRows bounds the rows one statement lists (its period) and
// the rows after it that it sums; a longer one asks for a shorter period.
const maxStatementRows = 10 * MaxFeedLimit

func (n *Node) settlementRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/supplier_payments", true, n.postSupplierPayment)
	h("GET /v1/supplier_payments/{id}", false, n.getSupplierPayment)
	h("POST /v1/supplier_payments/{id}/cancel", true, n.postSupplierPaymentCancel)
	h("GET /v1/suppliers/{id}/statement", false, n.getSupplierStatement)
}

// supplierPayment is a payment to a supplier as the FSM stores it.
type supplierPayment struct {
	ID        string               `msgpack:"i"`
	Supplier  storeline.SupplierID `msgpack:"s"`
	Bank      storeline.BankID     `msgpack:"b"`
	Currency  storeline.Currency   `msgpack:"c"`
	Amount    decimal.Decimal      `msgpack:"a"`
	PaidOn    storeline.Date       `msgpack:"d"`
	Reference string               `msgpack:"r,omitempty"`
	Note      string               `msgpack:"n,omitempty"`
	// Set by the entry that booked it.
	Event     storeline.EventID `msgpack:"e,omitempty"`
	Seq       uint64            `msgpack:"q,omitempty"`
	CreatedMs int64             `msgpack:"t,omitempty"`
	// Set by the entry that cancelled it (invariant 5); CancelEvent is
	// zero while it stands.
	CancelEvent  storeline.EventID `msgpack:"ce,omitempty"`
	CancelSeq    uint64            `msgpack:"cq,omitempty"`
	CancelledMs  int64             `msgpack:"ct,omitempty"`
	CancelledOn  storeline.Date    `msgpack:"cd,omitempty"`
	CancelReason string            `msgpack:"cw,omitempty"`
}

// cancelled reports whether p was cancelled.
func (p *supplierPayment) cancelled() bool { return !p.CancelEvent.IsZero() }

// paymentIn is the body of POST /v1/supplier_payments.
type paymentIn struct {
	ID        string `json:"id"`
	Supplier  string `json:"supplier"`
	Bank      string `json:"bank"`
	Currency  string `json:"currency"`
	Amount    string `json:"amount"`
	PaidOn    string `json:"paid_on"`
	Reference string `json:"reference"`
	Note      string `json:"note"`
}

// payment checks the body and returns the payment it asks for, its
// amount normalised to the currency's scale.
func (in *paymentIn) payment() (*supplierPayment, error) {
	p := &supplierPayment{ID: in.ID, Supplier: storeline.SupplierID(in.Supplier), Bank: storeline.BankID(in.Bank),
		Currency: storeline.Currency(in.Currency), PaidOn: storeline.Date(in.PaidOn), Reference: in.Reference, Note: in.Note}
	if in.Amount == "" {
		return nil, storeline.Invalidf("amount", "an amount is required (a decimal string)")
	}
	if !plainDecimal.MatchString(in.Amount) {
		return nil, errMalformed("amount", "%.40q: want a decimal in a string, as \"12.50\"", in.Amount)
	}
	amt, err := decimal.NewFromString(in.Amount)
	if err != nil {
		return nil, errMalformed("amount", "%.40q: want a decimal in a string, as \"12.50\"", in.Amount)
	}
	p.Amount = amt
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// validate checks a payment and normalises its amount (the handler and
// the FSM both run it).
func (p *supplierPayment) validate() error {
	if err := storeline.CheckID("id", p.ID); err != nil {
		return err
	}
	if err := storeline.CheckID("supplier", string(p.Supplier)); err != nil {
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

// checkText refuses text longer than max characters (openapi.yaml's
// maxLength: a bound in bytes refused a Cyrillic reference half as long),
// not UTF-8, or holding a control character (a line break only where
// lines are allowed).
func checkText(field, s string, max int, lines bool) error {
	if !utf8.ValidString(s) {
		return storeline.Invalidf(field, "not UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return storeline.Invalidf(field, "at most %d characters", max)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && !(lines && (r == '\n' || r == '\t')) }) >= 0 {
		return storeline.Invalidf(field, "holds a control character")
	}
	return nil
}

// sameContent reports whether p asks for what q booked.
func (p *supplierPayment) sameContent(q *supplierPayment) bool {
	return p.ID == q.ID && p.Supplier == q.Supplier && p.Bank == q.Bank && p.Currency == q.Currency &&
		p.Amount.Equal(q.Amount) && p.PaidOn == q.PaidOn && p.Reference == q.Reference && p.Note == q.Note
}

// postings are a payment's: the supplier's payable debited (the chain
// owes less), the bank's account credited.
func (p *supplierPayment) postings() []storeline.Posting {
	a := storeline.MoneyAsset(p.Currency)
	return []storeline.Posting{
		{Account: storeline.PayableAccount(p.Supplier), Asset: a, Amount: p.Amount},
		{Account: storeline.BankAccount(p.Bank), Asset: a, Amount: p.Amount.Neg()},
	}
}

// paymentEventID is the ID of the transfer that books payment id:
// derived as documents' are (docEventID), so every replica and replay
// names it alike.
func paymentEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/supplier-payment/" + id)
}

func getPayment(rt *ledger.ReplicaTxn, id string) (*supplierPayment, bool, error) {
	return getMetaRecord[supplierPayment](rt, stPay+id, "supplier payment "+id)
}

func putPayment(rt *ledger.ReplicaTxn, p *supplierPayment) error {
	return putMetaRecord(rt, stPay+p.ID, "supplier payment "+p.ID, p)
}

// paymentAnswer is the body of OpSupplierPayment's result.
type paymentAnswer struct {
	Payment   supplierPayment `msgpack:"p"`
	Duplicate bool            `msgpack:"d,omitempty"`
}

func applySupplierPayment(tx *Tx, payload []byte) ([]byte, error) {
	var p supplierPayment
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable payment: %v", err)
	}
	// What the entry sets is never the caller's (a node of level 2,
	// which knows no cancel fields, drops them too).
	p.Event, p.Seq, p.CreatedMs = storeline.EventID{}, 0, 0
	p.CancelEvent, p.CancelSeq, p.CancelledMs, p.CancelledOn, p.CancelReason = storeline.EventID{}, 0, 0, "", ""
	if err := p.validate(); err != nil {
		return nil, err
	}
	old, ok, err := getPayment(tx.ReplicaTxn, p.ID)
	if err != nil {
		return nil, err
	}
	if ok {
		if !p.sameContent(old) {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("payment %q was booked with other content", p.ID)}
		}
		return msgpack.Marshal(&paymentAnswer{Payment: *old, Duplicate: true})
	}
	if found, err := tx.HasMaster(storeline.KindSupplier, string(p.Supplier)); err != nil || !found {
		if err == nil {
			err = storeline.Invalidf("supplier", "unknown supplier %q", p.Supplier)
		}
		return nil, err
	}
	if found, err := tx.HasMaster(storeline.KindBank, string(p.Bank)); err != nil || !found {
		if err == nil {
			err = storeline.Invalidf("bank", "unknown bank %q", p.Bank)
		}
		return nil, err
	}
	p.Event = paymentEventID(p.ID)
	// applyTransfer skips an event it has applied: with no record of the
	// payment that cannot be, but it is refused here, before any write.
	if v, err := tx.Meta(rpHQID + string(p.Event[:])); err != nil || v != nil {
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("the transfer of payment %q (%s) is applied but the payment is not recorded", p.ID, p.Event)}
		}
		return nil, err
	}
	if at, err := tx.Meta(seenKey(storeline.Central, p.Event)); err != nil || at != nil {
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("the transfer of payment %q (%s) is applied but the payment is not recorded", p.ID, p.Event)}
		}
		return nil, err
	}
	// Writes from here on. The record first: the transfer's statement
	// row reads its date and bank from it (indexPayables).
	p.CreatedMs = tx.At.UnixMilli()
	if err := putPayment(tx.ReplicaTxn, &p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, p.Event, paymentReason, p.ID, p.postings())
	if err != nil {
		return nil, err
	}
	p.Seq = seq
	if err := putPayment(tx.ReplicaTxn, &p); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&paymentAnswer{Payment: p})
}

// applyPaymentTransfer applies the central-authored transfer id (reason,
// ref: the payment's ID) through applyTransfer, and returns its sequence
// in central's stream. Its caller checked that id is not applied yet.
func applyPaymentTransfer(tx *Tx, id storeline.EventID, reason, ref string, postings []storeline.Posting) (uint64, error) {
	tp := transferPayload{ID: id, Reason: reason, Ref: ref}
	for _, x := range postings {
		amt, err := x.Amount.MarshalBinary()
		if err != nil {
			return 0, err
		}
		tp.Postings = append(tp.Postings, replication.WirePosting{Account: x.Account, Asset: string(x.Asset), Amount: amt})
	}
	enc, err := msgpack.Marshal(&tp)
	if err != nil {
		return 0, err
	}
	body, err := applyTransfer(tx, enc)
	if err != nil {
		return 0, err
	}
	if body == nil {
		return 0, fmt.Errorf("payment %s: its transfer %s (%s) was applied before", ref, id, reason)
	}
	var pos replication.Position
	if err := msgpack.Unmarshal(body, &pos); err != nil {
		return 0, fmt.Errorf("payment %s: transfer position: %w", ref, err)
	}
	return pos.Seq, nil
}

// checkTransferFree refuses, as a Conflict naming id, a transfer id that
// central has applied already (applyTransfer would skip it).
func checkTransferFree(tx *Tx, id storeline.EventID, what string) error {
	v, err := tx.Meta(rpHQID + string(id[:]))
	if err == nil && v == nil {
		v, err = tx.Meta(seenKey(storeline.Central, id))
	}
	if err != nil || v == nil {
		return err
	}
	return &storeline.Error{Kind: storeline.Conflict, Field: "id",
		Err: fmt.Errorf("the transfer of %s (%s) is applied but the payment does not record it", what, id)}
}

// paymentCancelEventID is the ID of the transfer that reverses payment
// id (invariant 5), derived as paymentEventID is.
func paymentCancelEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/supplier-payment-cancel/" + id)
}

// paymentCancel is OpSupplierPaymentCancel's payload.
type paymentCancel struct {
	ID     string `msgpack:"i"`
	Reason string `msgpack:"w"`
	// On is the day the cancel is booked on, as the operator's calendar
	// has it (levelCancelDate; "": the entry's UTC day). Head office has
	// no time zone of its own: near midnight the UTC day is another
	// month's in Riga or in Vladivostok.
	On storeline.Date `msgpack:"on,omitempty"`
}

// levelCancelDate is the level from which a payment cancel may name its
// day (paymentCancel.On): nodes of the version before it do not know the
// field and book the entry's UTC day, so below it every replica does.
const levelCancelDate = 4

// cancelDay is the day a cancel applied at `at` is booked on: c.On when
// it is within a day of at's UTC date (every zone's calendar day at that
// moment is), else an error naming cancelled_on; at's UTC date when
// c.On is empty or the level is below levelCancelDate.
func (c *paymentCancel) cancelDay(at time.Time, level int) (storeline.Date, error) {
	utc := at.UTC()
	day := storeline.Date(utc.Format(time.DateOnly))
	if c.On == "" || level < levelCancelDate {
		return day, nil
	}
	on, err := time.Parse(time.DateOnly, string(c.On))
	if err != nil {
		return "", storeline.Invalidf("cancelled_on", "%q: want YYYY-MM-DD", c.On)
	}
	midnight := time.Date(utc.Year(), utc.Month(), utc.Day(), 0, 0, 0, 0, time.UTC)
	if d := on.Sub(midnight); d < -24*time.Hour || d > 24*time.Hour {
		return "", storeline.Invalidf("cancelled_on", "%s is not today anywhere (it is %s in UTC)", c.On, day)
	}
	return c.On, nil
}

// validate checks a cancel (the handler and the FSM both run it).
func (c *paymentCancel) validate() error {
	if err := storeline.CheckID("id", c.ID); err != nil {
		return err
	}
	if err := checkText("reason", c.Reason, maxCancelReason, true); err != nil {
		return err
	}
	if strings.TrimSpace(c.Reason) == "" {
		return storeline.Invalidf("reason", "a reason is required (why the payment is cancelled)")
	}
	if c.On != "" {
		if _, err := storeline.ParseDate("cancelled_on", string(c.On)); err != nil {
			return err
		}
	}
	return nil
}

// reversal returns the postings that undo p's at their booked values.
func (p *supplierPayment) reversal() []storeline.Posting {
	out := p.postings()
	for i := range out {
		out[i].Amount = out[i].Amount.Neg()
	}
	return out
}

func applySupplierPaymentCancel(tx *Tx, payload []byte) ([]byte, error) {
	var c paymentCancel
	if err := msgpack.Unmarshal(payload, &c); err != nil {
		return nil, storeline.Invalidf("", "undecodable payment cancel: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	p, ok, err := getPayment(tx.ReplicaTxn, c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no supplier payment %q", c.ID)}
	}
	if p.cancelled() {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "status",
			Err: fmt.Errorf("payment %q is cancelled already (at %s)", p.ID, time.UnixMilli(p.CancelledMs).UTC().Format(time.RFC3339))}
	}
	if p.Event.IsZero() || p.Seq == 0 {
		// Never so (a payment's record and transfer are one entry's):
		// refused, not reversed from a guess.
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("payment %q is recorded without its transfer", p.ID)}
	}
	ev := paymentCancelEventID(p.ID)
	if err := checkTransferFree(tx, ev, "the cancel of payment "+strconv.Quote(p.ID)); err != nil {
		return nil, err
	}
	rev := p.reversal()
	if err := storeline.CheckPostings(storeline.MergePostings(rev)); err != nil {
		return nil, &storeline.Error{Kind: storeline.Invalid, Field: "id", Err: fmt.Errorf("payment %q cannot be reversed: %w", p.ID, err)}
	}
	level, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil {
		return nil, err
	}
	day, err := c.cancelDay(tx.At, level)
	if err != nil {
		return nil, err
	}
	// Writes from here on. The record first: the transfer's statement
	// row reads its date from it (writePayableRows).
	p.CancelEvent, p.CancelledMs, p.CancelReason = ev, tx.At.UnixMilli(), c.Reason
	p.CancelledOn = max(p.PaidOn, day)
	if err := putPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, ev, paymentCancelReason, p.ID, rev)
	if err != nil {
		return nil, err
	}
	p.CancelSeq = seq
	if err := putPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&paymentAnswer{Payment: *p})
}

// settleRow is one movement of a supplier's payable (stRow).
type settleRow struct {
	Type      string            `msgpack:"k"` // rowInvoice … rowTransfer
	ID        string            `msgpack:"i"` // the document's or payment's ID (a transfer's event ID)
	Date      storeline.Date    `msgpack:"d"`
	Store     storeline.StoreID `msgpack:"s,omitempty"`
	Number    string            `msgpack:"n,omitempty"`
	Bank      storeline.BankID  `msgpack:"b,omitempty"`
	Reference string            `msgpack:"r,omitempty"`
	Reason    string            `msgpack:"w,omitempty"` // a transfer's reason
	// Owed is what the movement adds to what the chain owes the supplier:
	// the payable posting negated.
	Owed  decimal.Decimal   `msgpack:"o"`
	Event storeline.EventID `msgpack:"e"`
	Seq   uint64            `msgpack:"q"`
}

// The types of statement rows.
const (
	rowInvoice       = "invoice"
	rowInvoiceCancel = "invoice_cancel"
	rowReturn        = "return"
	rowReturnCancel  = "return_cancel"
	rowPayment       = "payment"
	rowPaymentCancel = "payment_cancel"
	rowTransfer      = "transfer"
)

var rowTypes = []string{rowInvoice, rowInvoiceCancel, rowReturn, rowReturnCancel, rowPayment, rowPaymentCancel, rowTransfer}

func rowKey(s storeline.SupplierID, c storeline.Currency, r *settleRow) string {
	return stRow + string(s) + "\x00" + string(c) + "\x00" + string(r.Date) + "\x00" + r.ID + "\x00" + string(ledger.PutU64(r.Seq))
}

func totalKey(s storeline.SupplierID, c storeline.Currency) string {
	return stTotal + string(s) + "\x00" + string(c)
}

// indexPayables writes the statement rows of a central-authored transfer
// ev as applyTransfer applies it (invariant 2). It only writes after
// reading: an error is a storage failure.
//
// It writes nothing while the cluster runs an FSM level below the one
// that introduced settlements (levels.go): the entry is then also applied
// by nodes of a version without this index, and every replica must leave
// the same state. What moves before the level is raised is indexed by
// the backfill the raise starts (invariant 4).
//
// Only ISO-shaped currencies are indexed: the currency is a key segment
// between \0 separators, and the statement reads ISO codes only.
func indexPayables(tx *Tx, ev *storeline.Event) error {
	moved := payableMoves(ev)
	if len(moved) == 0 {
		return nil
	}
	if lv, err := readClusterLevel(tx.ReplicaTxn); err != nil || lv < opLevel(OpSupplierPayment) {
		return err
	}
	return writePayableRows(tx, ev, moved, tx.At)
}

// payableMoves returns the postings of ev that a statement indexes.
func payableMoves(ev *storeline.Event) []storeline.Posting {
	var moved []storeline.Posting
	for _, p := range ev.Postings {
		s, ok := strings.CutPrefix(p.Account, "payable/")
		c, money := p.Asset.Currency()
		if ok && money && c.Valid() && storeline.ValidID(s) && !p.Amount.IsZero() {
			moved = append(moved, p)
		}
	}
	return moved
}

// writePayableRows writes the statement rows of ev's moves, at applied
// (the time of the entry that applied ev) for a document's row date.
func writePayableRows(tx *Tx, ev *storeline.Event, moved []storeline.Posting, applied time.Time) error {
	row := settleRow{Type: rowTransfer, ID: ev.ID.String(), Date: ev.BusinessDate, Event: ev.ID, Seq: ev.Seq}
	tr, _ := ev.Body.(*storeline.Transfer)
	if tr == nil {
		tr = &storeline.Transfer{}
	}
	switch tr.Reason {
	case "document.post", "document.cancel":
		rec, ok, err := getDoc(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		d := &rec.Doc
		cancel := tr.Reason == "document.cancel"
		switch {
		case d.Type == storeline.DocIncomingInvoice && !cancel:
			row.Type = rowInvoice
		case d.Type == storeline.DocIncomingInvoice:
			row.Type = rowInvoiceCancel
		case d.Type == storeline.DocSupplierReturn && !cancel:
			row.Type = rowReturn
		case d.Type == storeline.DocSupplierReturn:
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
			row.Date = storeline.DateOf(applied, loc)
		} else if b.err != nil {
			return b.err
		}
	case paymentReason:
		p, ok, err := getPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		if ok {
			row.Type, row.ID, row.Date, row.Bank, row.Reference = rowPayment, p.ID, p.PaidOn, p.Bank, p.Reference
		}
	case paymentCancelReason:
		p, ok, err := getPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		if ok && p.cancelled() && p.CancelEvent == ev.ID {
			row.Type, row.ID, row.Date, row.Bank, row.Reference = rowPaymentCancel, p.ID, p.CancelledOn, p.Bank, p.Reference
			break
		}
		// Not the cancel of a payment (a transfer by hand that took the
		// reason): as any other transfer.
		row.Reason = tr.Reason
		if storeline.ValidID(tr.Ref) {
			row.ID = tr.Ref
		}
	default:
		row.Reason = tr.Reason
		if storeline.ValidID(tr.Ref) {
			row.ID = tr.Ref
		}
	}
	for _, p := range moved {
		s := storeline.SupplierID(strings.TrimPrefix(p.Account, "payable/"))
		c, _ := p.Asset.Currency()
		r := row
		r.Owed = p.Amount.Neg()
		enc, err := msgpack.Marshal(&r)
		if err != nil {
			return fmt.Errorf("statement row of %s: %w", s, err)
		}
		if err := tx.SetMeta(rowKey(s, c, &r), enc); err != nil {
			return err
		}
		tot, err := readDecimal(tx.ReplicaTxn, totalKey(s, c))
		if err != nil {
			return err
		}
		if err := tx.SetMeta(totalKey(s, c), []byte(tot.Add(r.Owed).String())); err != nil {
			return err
		}
	}
	return nil
}

// OpPayablesBackfill indexes the next chunk of the events moved before
// the index existed (invariant 4).
const OpPayablesBackfill = "settlement.backfill"

// payablesBackfillChunk is how many central-authored events one entry
// of the backfill reads. Every replica must read the same: only tests
// change it, before they open nodes.
var payablesBackfillChunk atomic.Int64

func init() { payablesBackfillChunk.Store(2000) }

// payablesBackfill is the backfill's state: the next central event
// (epoch 1) to index and the last one to.
type payablesBackfill struct {
	Next uint64 `msgpack:"n"`
	Last uint64 `msgpack:"l"`
}

// backfillPayload asks for the chunk starting at Next: an entry that
// finds the backfill elsewhere (proposed twice) does nothing.
type backfillPayload struct {
	Next uint64 `msgpack:"n"`
}

// startPayablesBackfill starts the backfill in the entry that raises the
// cluster's level to 2, and reads its first chunk.
func startPayablesBackfill(tx *Tx) error {
	v, err := tx.Meta(rpHQSeq)
	if err != nil || len(v) != 8 {
		return err // no central-authored event yet: nothing to index
	}
	return backfillChunk(tx, &payablesBackfill{Next: 1, Last: ledger.U64(v)})
}

// backfillChunk indexes the events of one chunk and stores where the
// backfill stands (nothing once it is done).
func backfillChunk(tx *Tx, st *payablesBackfill) error {
	last := min(st.Last, st.Next+uint64(max(payablesBackfillChunk.Load(), 1))-1)
	for seq := st.Next; seq <= last; seq++ {
		v, err := tx.Meta(eventKey(storeline.Central, 1, seq))
		if err != nil {
			return err
		}
		if v == nil || !bytes.Contains(v, []byte("payable/")) {
			continue // cheap filter: no payable account
		}
		ev, err := decodeEvent(v)
		if err != nil {
			return fmt.Errorf("backfill of event %d: %w", seq, err)
		}
		if moved := payableMoves(&ev); len(moved) > 0 {
			if err := writePayableRows(tx, &ev, moved, ev.OccurredAt); err != nil {
				return err
			}
		}
	}
	st.Next = last + 1
	if st.Next > st.Last {
		return tx.SetMeta(stBackfill, nil)
	}
	return putMetaRecord(tx.ReplicaTxn, stBackfill, "payables backfill", st)
}

func applyPayablesBackfill(tx *Tx, payload []byte) ([]byte, error) {
	var p backfillPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable backfill: %v", err)
	}
	st, ok, err := getMetaRecord[payablesBackfill](tx.ReplicaTxn, stBackfill, "payables backfill")
	if err != nil || !ok || st.Next != p.Next {
		return nil, err // done, or this chunk was read by an earlier entry
	}
	return nil, backfillChunk(tx, st)
}

// backfillChunksPerCall bounds the backfill entries one call of
// backfillPayables proposes, so the leader's reconcile tick that runs it
// goes on with its other work; the next tick proposes the next ones.
const backfillChunksPerCall = 8

// backfillPayables proposes the backfill's next chunks while one is
// left (the leader, after a level raise; invariant 4).
func (n *Node) backfillPayables(ctx context.Context) error {
	for range backfillChunksPerCall {
		v, err := n.rep.Meta(stBackfill)
		if err != nil || v == nil {
			return err
		}
		var st payablesBackfill
		if err := msgpack.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("payables backfill: %w", err)
		}
		b, err := msgpack.Marshal(&backfillPayload{Next: st.Next})
		if err != nil {
			return err
		}
		res, err := n.Submit(ctx, OpPayablesBackfill, "", b)
		if err != nil {
			return err
		}
		if err := res.Err(); err != nil {
			return err
		}
		// Read the state the entry left (it may have been applied at the
		// leader only when this node forwarded it).
		if err := n.waitApplied(ctx, res.Index, "central.backfillPayables"); err != nil {
			return err
		}
	}
	return nil
}

// readDecimal reads a decimal string key (absent: zero).
func readDecimal(rt *ledger.ReplicaTxn, key string) (decimal.Decimal, error) {
	v, err := rt.Meta(key)
	if err != nil || v == nil {
		return decimal.Zero, err
	}
	d, err := decimal.NewFromString(string(v))
	if err != nil {
		return decimal.Zero, fmt.Errorf("%q: %w", key, err)
	}
	return d, nil
}

func (n *Node) postSupplierPayment(w http.ResponseWriter, r *http.Request) error {
	const op = "central.supplier_payment"
	body, err := n.readBody(w, r)
	if err != nil {
		return err
	}
	var in paymentIn
	if err := strictJSON(body, &in); err != nil {
		return err
	}
	p, err := in.payment()
	if err != nil {
		return err
	}
	a, duplicate, err := n.submitPayment(r, op, OpSupplierPayment, p)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, paymentJSON(&a.Payment))
	return nil
}

// submitPayment submits a payment op (fsmOp, its payload) under the
// request's Idempotency-Key and returns the payment the entry answered,
// and whether it was a retry (a duplicate entry or a payment booked
// before with the same content).
func (n *Node) submitPayment(r *http.Request, op, fsmOp string, payload any) (paymentAnswer, bool, error) {
	var a paymentAnswer
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

// moneyString writes an amount at the currency's scale ("9.30") where it
// is exact at it (every amount is, unless a transfer by hand moved
// sub-units: then as it is).
func moneyString(c storeline.Currency, d decimal.Decimal) string {
	if e, err := c.Amount("", d); err == nil {
		return e.StringFixed(c.Scale())
	}
	return d.String()
}

func paymentJSON(p *supplierPayment) map[string]any {
	m := map[string]any{"id": p.ID, "supplier": p.Supplier, "bank": p.Bank, "currency": p.Currency,
		"amount": moneyString(p.Currency, p.Amount), "paid_on": p.PaidOn, "event": p.Event.String(),
		"position":  map[string]any{"epoch": 1, "seq": p.Seq},
		"booked_at": time.UnixMilli(p.CreatedMs).UTC()}
	if p.Reference != "" {
		m["reference"] = p.Reference
	}
	if p.Note != "" {
		m["note"] = p.Note
	}
	m["status"] = "booked"
	if p.cancelled() {
		m["status"], m["reason"], m["cancelled_on"] = "cancelled", p.CancelReason, p.CancelledOn
		m["cancelled_at"] = time.UnixMilli(p.CancelledMs).UTC()
		m["cancel_event"] = p.CancelEvent.String()
		m["cancel_position"] = map[string]any{"epoch": 1, "seq": p.CancelSeq}
	}
	return m
}

// paymentCancelIn is the body of POST /v1/supplier_payments/{id}/cancel.
type paymentCancelIn struct {
	Reason string `json:"reason"`
	// CancelledOn is the day to book the cancel on, as the operator's
	// calendar has it (paymentCancel.On).
	CancelledOn storeline.Date `json:"cancelled_on"`
}

// postSupplierPaymentCancel cancels a payment (invariant 5): 200 with the
// cancelled payment.
func (n *Node) postSupplierPaymentCancel(w http.ResponseWriter, r *http.Request) error {
	const op = "central.supplier_payment_cancel"
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
		// Below its level every replica would book the UTC day: refused
		// rather than dropped unawares.
		if err := n.checkLevelAt(levelCancelDate, "a cancel's cancelled_on"); err != nil {
			return err
		}
		if _, err := c.cancelDay(n.now(), levelCancelDate); err != nil {
			return err // checked again, against the entry's time, by the FSM
		}
	}
	a, _, err := n.submitPayment(r, op, OpSupplierPaymentCancel, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paymentJSON(&a.Payment))
	return nil
}

func (n *Node) getSupplierPayment(w http.ResponseWriter, r *http.Request) error {
	noPayment := func(id string) error {
		return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no supplier payment %q", id)}
	}
	return serveRecord(n, w, r, getPayment, noPayment, func(p *supplierPayment) any { return paymentJSON(p) })
}

// statementCursor is the part of a statement row's key after its
// supplier and currency (date \0 id \0 seq8): rows are listed in its
// order, and a page's next names its last row as "date/id/seq".
func statementCursor(r *settleRow) string {
	return string(r.Date) + "\x00" + r.ID + "\x00" + string(ledger.PutU64(r.Seq))
}

// parseStatementAfter reads a statement page's after (the previous
// page's next) as a statementCursor; empty: from the first row.
func parseStatementAfter(after string) (string, error) {
	if after == "" {
		return "", nil
	}
	parts := strings.Split(after, "/")
	if len(parts) != 3 {
		return "", errMalformed("after", "%.80q: want the previous page's next (date/id/seq)", after)
	}
	if _, err := storeline.ParseDate("after", parts[0]); err != nil {
		return "", errMalformed("after", "%.80q: want the previous page's next (date/id/seq)", after)
	}
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || !storeline.ValidID(parts[1]) {
		return "", errMalformed("after", "%.80q: want the previous page's next (date/id/seq)", after)
	}
	return statementCursor(&settleRow{Date: storeline.Date(parts[0]), ID: parts[1], Seq: seq}), nil
}

// getSupplierStatement answers a supplier's settlement statement in one
// currency for business dates from to to (inclusive): what the chain owed
// at the start of from, every movement of the period in date then id
// order with the running balance, what it owed at the end of to, and the
// period's totals by type of row (positive: the chain owes more). The
// rows come a page at a time (limit, after: the previous page's next, as
// the other reports page); opening, closing and totals are the period's
// on every page.
func (n *Node) getSupplierStatement(w http.ResponseWriter, r *http.Request) error {
	sup := r.PathValue("id")
	if err := storeline.CheckID("id", sup); err != nil {
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
	// Without a limit, the whole period (as before statements paged:
	// storeline ctl statement reads one answer).
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
	supplier := storeline.SupplierID(sup)
	var (
		rows             []settleRow
		balance, indexed decimal.Decimal
		fromOn, inPeriod decimal.Decimal // sums of Owed: rows dated from on, rows of the period
		known            bool
	)
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		var err error
		if known, err = rt.HasMaster(storeline.KindSupplier, sup); err != nil {
			return err
		}
		if !known {
			// A supplier removed from the master data keeps its history:
			// known while it has a row in any currency.
			if err := rt.ScanMeta(stRow+sup+"\x00", func(string, []byte) (bool, error) {
				known = true
				return false, nil
			}); err != nil {
				return err
			}
		}
		if balance, err = readDecimal(rt, balKey(storeline.PayableAccount(supplier), storeline.MoneyAsset(cur))); err != nil {
			return err
		}
		if indexed, err = readDecimal(rt, totalKey(supplier, cur)); err != nil {
			return err
		}
		prefix := stRow + sup + "\x00" + string(cur) + "\x00"
		scanned := 0
		return rt.ScanMetaFrom(prefix, string(from), func(k string, v []byte) (bool, error) {
			if scanned++; scanned > maxStatementRows {
				return false, &storeline.Error{Kind: storeline.TooLarge, Field: "from",
					Err: fmt.Errorf("more than %d movements of %s from %s on: ask for a later period", maxStatementRows, sup, from)}
			}
			var row settleRow
			if err := msgpack.Unmarshal(v, &row); err != nil {
				return false, fmt.Errorf("statement row %q: %w", k, err)
			}
			fromOn = fromOn.Add(row.Owed)
			if row.Date <= to {
				inPeriod = inPeriod.Add(row.Owed)
				rows = append(rows, row)
			}
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	if !known && balance.IsZero() && indexed.IsZero() {
		return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("unknown supplier %q", sup)}
	}
	show := func(d decimal.Decimal) string { return moneyString(cur, d) }
	owedNow := balance.Neg()
	opening := owedNow.Sub(fromOn)
	sums := map[string]decimal.Decimal{}
	out := make([]map[string]any, 0, len(rows))
	running := opening
	next := ""
	for i := range rows {
		row := &rows[i]
		running = running.Add(row.Owed)
		sums[row.Type] = sums[row.Type].Add(row.Owed)
		if next != "" || after != "" && statementCursor(row) <= after {
			continue // on another page
		}
		if len(out) == limit {
			last := &rows[i-1] // the page's last row
			next = fmt.Sprintf("%s/%s/%d", last.Date, last.ID, last.Seq)
			continue
		}
		m := map[string]any{"type": row.Type, "id": row.ID, "date": row.Date, "amount": show(row.Owed),
			"balance": show(running), "event": row.Event.String()}
		for k, v := range map[string]string{"store": string(row.Store), "number": row.Number, "bank": string(row.Bank),
			"reference": row.Reference, "reason": row.Reason} {
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
		"supplier": sup, "currency": cur, "from": from, "to": to,
		"opening": show(opening), "closing": show(opening.Add(inPeriod)),
		"unindexed": show(owedNow.Sub(indexed)),
		"rows":      out, "totals": totals, "next": next,
	})
	return nil
}

package central

// The settlement core: what settlements with suppliers (settlements.go,
// payables) and with buyers (receivables.go) do alike, once, parametrised
// by a counterparty: a payment's record, its FSM entry and its cancel,
// the statement rows a transfer writes and their totals, the statement
// a page at a time, and the HTTP answers. What stays with each side is
// which transfer makes which row (the two differ while the cluster runs
// an FSM level below levelPayableRows, see indexPayables and
// indexReceivables), the payables backfill and the receivables report.
//
// Every byte the core writes (record, row, total, op payload, answer) is
// what each side wrote before the two shared it: a replica of either
// version applies an entry alike (review43_settle_golden_test.go pins it).

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// counterparty is what differs between settlements with suppliers and
// with buyers.
type counterparty struct {
	// kind is the master record a payment names; its name is the field
	// that names it in JSON, in errors and in a statement's answer.
	kind storeline.MasterKind
	// account is the prefix of the party's ledger account (payable/,
	// receivable/).
	account string
	// negate: a posting to the party's account counts, negated, toward
	// what is owed (the chain owes a supplier what its payable is
	// credited; a buyer owes what its receivable is debited).
	negate bool
	// noun names a payment in the FSM's messages, record a missing one:
	// the two sides worded them differently and clients read them.
	noun, record string
	// recordedNot is the Conflict's message (%q the payment's ID, %s the
	// event) when a payment's transfer is applied but no record is:
	// worded by each side its own way.
	recordedNot string
	// Key prefixes of the payment records, the statement rows and the
	// rows' totals.
	payKey, rowKey, totalKey string
	// rowNoun names a row in errors of storage.
	rowNoun string
	// eventName derives the ID of a payment's transfer and its reversal's.
	eventName string
	// The Transfer reasons of a payment's event and of its reversal.
	reason, cancelReason string
	// The FSM ops of a payment and its cancel, and the names their
	// handlers give an internal error.
	op, cancelOp, httpOp, httpCancelOp string
	// cancelDateGate is the level the handler asks of the cluster before
	// a cancel may name its day; 0 where the cancel op itself needs a
	// level above levelCancelDate (Submit refuses it below that).
	cancelDateGate int
	// readIn decodes the body of a payment's POST.
	readIn func(body []byte) (p *settlePayment, amount string, err error)
}

// owed turns a posting to the party's account into what it adds to what
// is owed (positive: more owed), and back: the sign flip is its own
// inverse.
func (cp *counterparty) owed(posting decimal.Decimal) decimal.Decimal {
	if cp.negate {
		return posting.Neg()
	}
	return posting
}

// partyAccount is the ledger account of party.
func (cp *counterparty) partyAccount(party string) string { return cp.account + party }

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

// settlePayment is a payment to a supplier or from a buyer as the FSM
// stores it. Exactly one of Supplier and Buyer is set: their tags are
// those each side's record had, so a record reads and writes as before.
type settlePayment struct {
	ID        string               `msgpack:"i"`
	Supplier  storeline.SupplierID `msgpack:"s,omitempty"`
	Buyer     storeline.BuyerID    `msgpack:"u,omitempty"`
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
	// Set by the entry that cancelled it (settlements.go invariant 5);
	// CancelEvent is zero while it stands.
	CancelEvent  storeline.EventID `msgpack:"ce,omitempty"`
	CancelSeq    uint64            `msgpack:"cq,omitempty"`
	CancelledMs  int64             `msgpack:"ct,omitempty"`
	CancelledOn  storeline.Date    `msgpack:"cd,omitempty"`
	CancelReason string            `msgpack:"cw,omitempty"`
}

// cancelled reports whether p was cancelled.
func (p *settlePayment) cancelled() bool { return !p.CancelEvent.IsZero() }

// party is the supplier or buyer p names.
func (cp *counterparty) party(p *settlePayment) string {
	if cp.kind == storeline.KindBuyer {
		return string(p.Buyer)
	}
	return string(p.Supplier)
}

// keepParty drops the other side's party from a decoded payload: each
// side's record had no field for it, so its entry ignored it.
func (cp *counterparty) keepParty(p *settlePayment) {
	if cp.kind == storeline.KindBuyer {
		p.Supplier = ""
	} else {
		p.Buyer = ""
	}
}

// parsePayment checks a POSTed payment, amount its amount as the body
// spelled it, and normalises the amount to the currency's scale.
func (cp *counterparty) parsePayment(p *settlePayment, amount string) error {
	if amount == "" {
		return storeline.Invalidf("amount", "an amount is required (a decimal string)")
	}
	amt, err := decimal.NewFromString(amount)
	if !plainDecimal.MatchString(amount) || err != nil {
		return errMalformed("amount", "%.40q: want a decimal in a string, as \"12.50\"", amount)
	}
	p.Amount = amt
	return cp.validate(p)
}

// validate checks a payment and normalises its amount (the handler and
// the FSM both run it).
func (cp *counterparty) validate(p *settlePayment) error {
	if err := storeline.CheckID("id", p.ID); err != nil {
		return err
	}
	if err := storeline.CheckID(string(cp.kind), cp.party(p)); err != nil {
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
func (p *settlePayment) sameContent(q *settlePayment) bool {
	return p.ID == q.ID && p.Supplier == q.Supplier && p.Buyer == q.Buyer && p.Bank == q.Bank && p.Currency == q.Currency &&
		p.Amount.Equal(q.Amount) && p.PaidOn == q.PaidOn && p.Reference == q.Reference && p.Note == q.Note
}

// postings are a payment's: the party's account moved so that amount
// less is owed, the bank's account the other way.
func (cp *counterparty) postings(p *settlePayment) []storeline.Posting {
	a := storeline.MoneyAsset(p.Currency)
	toParty := cp.owed(p.Amount.Neg())
	return []storeline.Posting{
		{Account: cp.partyAccount(cp.party(p)), Asset: a, Amount: toParty},
		{Account: storeline.BankAccount(p.Bank), Asset: a, Amount: toParty.Neg()},
	}
}

// reversal returns the postings that undo p's at their booked values.
func (cp *counterparty) reversal(p *settlePayment) []storeline.Posting {
	out := cp.postings(p)
	for i := range out {
		out[i].Amount = out[i].Amount.Neg()
	}
	return out
}

// paymentEventID is the ID of the transfer that books payment id:
// derived as documents' are (docEventID), so every replica and replay
// names it alike; cancelEventID that of its reversal.
func (cp *counterparty) paymentEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/" + cp.eventName + "/" + id)
}

func (cp *counterparty) cancelEventID(id string) storeline.EventID {
	return storeline.DerivedEventID("storeline/" + cp.eventName + "-cancel/" + id)
}

func (cp *counterparty) getPayment(rt *ledger.ReplicaTxn, id string) (*settlePayment, bool, error) {
	return getMetaRecord[settlePayment](rt, cp.payKey+id, cp.record+" "+id)
}

func (cp *counterparty) putPayment(rt *ledger.ReplicaTxn, p *settlePayment) error {
	return putMetaRecord(rt, cp.payKey+p.ID, cp.record+" "+p.ID, p)
}

// paymentAnswer is the body of the payment ops' results.
type paymentAnswer struct {
	Payment   settlePayment `msgpack:"p"`
	Duplicate bool          `msgpack:"d,omitempty"`
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

// applyPayment books a payment (settlements.go invariant 1).
func (cp *counterparty) applyPayment(tx *Tx, payload []byte) ([]byte, error) {
	var p settlePayment
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable %s: %v", cp.noun, err)
	}
	// What the entry sets is never the caller's (a node of level 2,
	// which knows no cancel fields, drops them too).
	p.Event, p.Seq, p.CreatedMs = storeline.EventID{}, 0, 0
	p.CancelEvent, p.CancelSeq, p.CancelledMs, p.CancelledOn, p.CancelReason = storeline.EventID{}, 0, 0, "", ""
	cp.keepParty(&p)
	if err := cp.validate(&p); err != nil {
		return nil, err
	}
	old, ok, err := cp.getPayment(tx.ReplicaTxn, p.ID)
	if err != nil {
		return nil, err
	}
	if ok {
		if !p.sameContent(old) {
			return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("%s %q was booked with other content", cp.noun, p.ID)}
		}
		return msgpack.Marshal(&paymentAnswer{Payment: *old, Duplicate: true})
	}
	if err := checkMaster(tx, cp.kind, string(cp.kind), cp.party(&p)); err != nil {
		return nil, err
	}
	if err := checkMaster(tx, storeline.KindBank, "bank", string(p.Bank)); err != nil {
		return nil, err
	}
	p.Event = cp.paymentEventID(p.ID)
	// applyTransfer skips an event it has applied: with no record of the
	// payment that cannot be, but it is refused here, before any write.
	if applied, err := transferApplied(tx, p.Event); err != nil || applied {
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id", Err: fmt.Errorf(cp.recordedNot, p.ID, p.Event)}
		}
		return nil, err
	}
	// Writes from here on. The record first: the transfer's statement
	// row reads its date and bank from it.
	p.CreatedMs = tx.At.UnixMilli()
	if err := cp.putPayment(tx.ReplicaTxn, &p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, p.Event, cp.reason, p.ID, cp.postings(&p))
	if err != nil {
		return nil, err
	}
	p.Seq = seq
	if err := cp.putPayment(tx.ReplicaTxn, &p); err != nil {
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

// transferApplied reports whether central has applied transfer id
// already (applyTransfer would skip it).
func transferApplied(tx *Tx, id storeline.EventID) (bool, error) {
	v, err := tx.Meta(rpHQID + string(id[:]))
	if err == nil && v == nil {
		v, err = tx.Meta(seenKey(storeline.Central, id))
	}
	return v != nil, err
}

// paymentCancel is the payload of a payment cancel op.
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

// applyPaymentCancel cancels a payment (settlements.go invariant 5).
func (cp *counterparty) applyPaymentCancel(tx *Tx, payload []byte) ([]byte, error) {
	var c paymentCancel
	if err := msgpack.Unmarshal(payload, &c); err != nil {
		return nil, storeline.Invalidf("", "undecodable %s cancel: %v", cp.noun, err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	p, ok, err := cp.getPayment(tx.ReplicaTxn, c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no %s %q", cp.record, c.ID)}
	}
	if p.cancelled() {
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "status",
			Err: fmt.Errorf("%s %q is cancelled already (at %s)", cp.noun, p.ID, time.UnixMilli(p.CancelledMs).UTC().Format(time.RFC3339))}
	}
	if p.Event.IsZero() || p.Seq == 0 {
		// Never so (a payment's record and transfer are one entry's):
		// refused, not reversed from a guess.
		return nil, &storeline.Error{Kind: storeline.Conflict, Field: "id",
			Err: fmt.Errorf("%s %q is recorded without its transfer", cp.noun, p.ID)}
	}
	ev := cp.cancelEventID(p.ID)
	if applied, err := transferApplied(tx, ev); err != nil || applied {
		if err == nil {
			err = &storeline.Error{Kind: storeline.Conflict, Field: "id",
				Err: fmt.Errorf("the transfer of the cancel of %s %s (%s) is applied but the payment does not record it", cp.noun, strconv.Quote(p.ID), ev)}
		}
		return nil, err
	}
	rev := cp.reversal(p)
	if err := storeline.CheckPostings(storeline.MergePostings(rev)); err != nil {
		return nil, &storeline.Error{Kind: storeline.Invalid, Field: "id", Err: fmt.Errorf("%s %q cannot be reversed: %w", cp.noun, p.ID, err)}
	}
	// The FSM applied this op because the cluster runs its level or
	// above, so a buyer payment's cancel always reads a level that takes
	// cancelled_on; a supplier payment's may not.
	level, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil {
		return nil, err
	}
	day, err := c.cancelDay(tx.At, level)
	if err != nil {
		return nil, err
	}
	// Writes from here on. The record first: the transfer's statement
	// row reads its date from it.
	p.CancelEvent, p.CancelledMs, p.CancelReason = ev, tx.At.UnixMilli(), c.Reason
	p.CancelledOn = max(p.PaidOn, day)
	if err := cp.putPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	seq, err := applyPaymentTransfer(tx, ev, cp.cancelReason, p.ID, rev)
	if err != nil {
		return nil, err
	}
	p.CancelSeq = seq
	if err := cp.putPayment(tx.ReplicaTxn, p); err != nil {
		return nil, err
	}
	return msgpack.Marshal(&paymentAnswer{Payment: *p})
}

// settleRow is one movement of a supplier's payable (stRow) or a buyer's
// receivable (rcRow).
type settleRow struct {
	Type      string            `msgpack:"k"` // rowInvoice … rowTransfer
	ID        string            `msgpack:"i"` // the document's or payment's ID (a transfer's event ID)
	Date      storeline.Date    `msgpack:"d"`
	Store     storeline.StoreID `msgpack:"s,omitempty"`
	Number    string            `msgpack:"n,omitempty"`
	Bank      storeline.BankID  `msgpack:"b,omitempty"`
	Reference string            `msgpack:"r,omitempty"`
	Reason    string            `msgpack:"w,omitempty"` // a transfer's reason
	// Owed is what the movement adds to what is owed (counterparty.owed
	// of its posting): the chain to the supplier, the buyer to the chain.
	Owed  decimal.Decimal   `msgpack:"o"`
	Event storeline.EventID `msgpack:"e"`
	Seq   uint64            `msgpack:"q"`
	// DueOn is an outgoing invoice's, which the receivables report ages
	// by; never set on a payable's row.
	DueOn storeline.Date `msgpack:"due,omitempty"`
}

// recvRow is a buyer's receivable row (rcRow): the name the readers of
// the receivables index know it by.
type recvRow = settleRow

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

// rowKeyOf is the key of row r of party in currency c.
func (cp *counterparty) rowKeyOf(party string, c storeline.Currency, r *settleRow) string {
	return cp.rowKey + party + "\x00" + string(c) + "\x00" + statementCursor(r)
}

// totalKeyOf is the key of the sum of the rows of party in currency c.
func (cp *counterparty) totalKeyOf(party string, c storeline.Currency) string {
	return cp.totalKey + party + "\x00" + string(c)
}

// moves returns the postings of ev that a statement indexes: only
// ISO-shaped currencies (the currency is a key segment between \0
// separators, and the statement reads ISO codes only) and valid IDs.
func (cp *counterparty) moves(ev *storeline.Event) []storeline.Posting {
	var moved []storeline.Posting
	for _, p := range ev.Postings {
		party, ok := strings.CutPrefix(p.Account, cp.account)
		c, money := p.Asset.Currency()
		if ok && money && c.Valid() && storeline.ValidID(party) && !p.Amount.IsZero() {
			moved = append(moved, p)
		}
	}
	return moved
}

// transferRow is the row of ev as any transfer's, and the transfer ev
// carries (an empty one when it carries none).
func transferRow(ev *storeline.Event) (settleRow, *storeline.Transfer) {
	tr, _ := ev.Body.(*storeline.Transfer)
	if tr == nil {
		tr = &storeline.Transfer{}
	}
	return settleRow{Type: rowTransfer, ID: ev.ID.String(), Date: ev.BusinessDate, Event: ev.ID, Seq: ev.Seq}, tr
}

// byHand names in row the reason and reference of tr, a transfer that
// is neither a document's nor a payment's.
func (row *settleRow) byHand(tr *storeline.Transfer) {
	row.Reason = tr.Reason
	if storeline.ValidID(tr.Ref) {
		row.ID = tr.Ref
	}
}

// fromPayment makes row payment p's, of type typ, dated date.
func (row *settleRow) fromPayment(typ string, p *settlePayment, date storeline.Date) {
	row.Type, row.ID, row.Date, row.Bank, row.Reference = typ, p.ID, date, p.Bank, p.Reference
}

// docOwnEvent reports whether ev is the transfer that the post or cancel
// (tr's reason) of the document tr names booked: its ID is derived
// (docEventID), so a transfer by hand that takes the reason and names
// the document is not, and must not make a second row of it.
func docOwnEvent(ev *storeline.Event, tr *storeline.Transfer) bool {
	action := "post"
	if tr.Reason == "document.cancel" {
		action = "cancel"
	}
	return ev.ID == docEventID(action, tr.Ref)
}

// docRow fills row from the document that tr ("document.post" or
// "document.cancel") names, an invoice or a return of the side's types
// (another type's row keeps the transfer's type and names its reason),
// dated by its store's calendar at applied. It returns the document, nil
// when there is none.
func docRow(tx *Tx, row *settleRow, tr *storeline.Transfer, invoice, ret storeline.DocType, applied time.Time) (*storeline.Document, error) {
	rec, ok, err := getDoc(tx.ReplicaTxn, tr.Ref)
	if err != nil || !ok {
		return nil, err
	}
	d := &rec.Doc
	cancel := tr.Reason == "document.cancel"
	switch {
	case d.Type == invoice && !cancel:
		row.Type = rowInvoice
	case d.Type == invoice:
		row.Type = rowInvoiceCancel
	case d.Type == ret && !cancel:
		row.Type = rowReturn
	case d.Type == ret:
		row.Type = rowReturnCancel
	default:
		row.Reason = tr.Reason
	}
	row.ID, row.Store, row.Number = d.ID, d.Store, d.Number
	b := &txBook{rt: tx.ReplicaTxn}
	if st, ok := b.Store(d.Store); ok {
		loc, err := st.Location()
		if err != nil {
			return nil, fmt.Errorf("document %s: store %s: %w", d.ID, d.Store, err)
		}
		row.Date = storeline.DateOf(applied, loc)
	} else if b.err != nil {
		return nil, b.err
	}
	return d, nil
}

// writeRows writes row once per move in moved, its Owed the move's, and
// adds it to the total of the move's party and currency.
func (cp *counterparty) writeRows(tx *Tx, row settleRow, moved []storeline.Posting) error {
	for _, p := range moved {
		party := strings.TrimPrefix(p.Account, cp.account)
		c, _ := p.Asset.Currency()
		r := row
		r.Owed = cp.owed(p.Amount)
		enc, err := msgpack.Marshal(&r)
		if err != nil {
			return fmt.Errorf("%s of %s: %w", cp.rowNoun, party, err)
		}
		if err := tx.SetMeta(cp.rowKeyOf(party, c, &r), enc); err != nil {
			return err
		}
		tot, err := readDecimal(tx.ReplicaTxn, cp.totalKeyOf(party, c))
		if err != nil {
			return err
		}
		if err := tx.SetMeta(cp.totalKeyOf(party, c), []byte(tot.Add(r.Owed).String())); err != nil {
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

// opening answers what was owed of party in cur at the start of day from
// and what is owed now: the ledger's balance (the truth) less the rows
// dated from on (what moved it). Each of those rows is passed to visit
// in key order; an error from visit ends the scan (a bound on the rows
// read).
func (cp *counterparty) opening(rt *ledger.ReplicaTxn, party string, cur storeline.Currency, from storeline.Date,
	visit func(*settleRow) error) (opening, owedNow decimal.Decimal, err error) {
	balance, err := readDecimal(rt, balKey(cp.partyAccount(party), storeline.MoneyAsset(cur)))
	if err != nil {
		return decimal.Zero, decimal.Zero, err
	}
	owedNow = cp.owed(balance)
	fromOn := decimal.Zero
	err = rt.ScanMetaFrom(cp.rowKey+party+"\x00"+string(cur)+"\x00", string(from), func(k string, v []byte) (bool, error) {
		var row settleRow
		if err := msgpack.Unmarshal(v, &row); err != nil {
			return false, fmt.Errorf("%s %q: %w", cp.rowNoun, k, err)
		}
		if err := visit(&row); err != nil {
			return false, err
		}
		fromOn = fromOn.Add(row.Owed)
		return true, nil
	})
	return owedNow.Sub(fromOn), owedNow, err
}

// postPayment books a payment: 201 with it, 200 for a retry.
func (n *Node) postPayment(cp *counterparty) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := n.readBody(w, r)
		if err != nil {
			return err
		}
		p, amount, err := cp.readIn(body)
		if err != nil {
			return err
		}
		if err := cp.parsePayment(p, amount); err != nil {
			return err
		}
		a, duplicate, err := n.submitPayment(r, cp.httpOp, cp.op, p)
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if duplicate {
			status = http.StatusOK
		}
		writeJSON(w, status, cp.paymentJSON(&a.Payment))
		return nil
	}
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

func (cp *counterparty) paymentJSON(p *settlePayment) map[string]any {
	m := map[string]any{"id": p.ID, string(cp.kind): cp.party(p), "bank": p.Bank, "currency": p.Currency,
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

// paymentCancelIn is the body of POST /v1/…_payments/{id}/cancel.
type paymentCancelIn struct {
	Reason string `json:"reason"`
	// CancelledOn is the day to book the cancel on, as the operator's
	// calendar has it (paymentCancel.On).
	CancelledOn storeline.Date `json:"cancelled_on"`
}

// postPaymentCancel cancels a payment (settlements.go invariant 5): 200
// with the cancelled payment.
func (n *Node) postPaymentCancel(cp *counterparty) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
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
			// Below its level every replica would book the UTC day:
			// refused rather than dropped unawares.
			if cp.cancelDateGate > 0 {
				if err := n.checkLevelAt(cp.cancelDateGate, "a cancel's cancelled_on"); err != nil {
					return err
				}
			}
			if _, err := c.cancelDay(n.now(), levelCancelDate); err != nil {
				return err // checked again, against the entry's time, by the FSM
			}
		}
		a, _, err := n.submitPayment(r, cp.httpCancelOp, cp.cancelOp, c)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, cp.paymentJSON(&a.Payment))
		return nil
	}
}

func (n *Node) getPayment(cp *counterparty) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		missing := func(id string) error {
			return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("no %s %q", cp.record, id)}
		}
		return serveRecord(n, w, r, cp.getPayment, missing, func(p *settlePayment) any { return cp.paymentJSON(p) })
	}
}

// statementCursor is the part of a statement row's key after its party
// and currency (date \0 id \0 seq8): rows are listed in its order, and a
// page's next names its last row as "date/id/seq".
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

// getStatement answers a party's settlement statement in one currency
// for business dates from to to (inclusive): what was owed at the start
// of from, every movement of the period in date then id order with the
// running balance, what was owed at the end of to, and the period's
// totals by type of row (positive: more owed; the chain to a supplier, a
// buyer to the chain). The rows come a page at a time (limit, after: the
// previous page's next, as the other reports page); opening, closing
// and totals are the period's on every page.
func (n *Node) getStatement(cp *counterparty) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
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
		var (
			rows                      []settleRow
			opening, owedNow, indexed decimal.Decimal
			inPeriod                  decimal.Decimal
			known                     bool
		)
		err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
			var err error
			if known, err = rt.HasMaster(cp.kind, id); err != nil {
				return err
			}
			if indexed, err = readDecimal(rt, cp.totalKeyOf(id, cur)); err != nil {
				return err
			}
			if !known && indexed.IsZero() {
				// A party removed from the master data keeps its
				// history: known while it has a row in any currency.
				if err := rt.ScanMeta(cp.rowKey+id+"\x00", func(string, []byte) (bool, error) {
					known = true
					return false, nil
				}); err != nil {
					return err
				}
			}
			scanned := 0
			opening, owedNow, err = cp.opening(rt, id, cur, from, func(row *settleRow) error {
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
		if !known && owedNow.IsZero() && indexed.IsZero() {
			return &storeline.Error{Kind: storeline.NotFound, Field: "id", Err: fmt.Errorf("unknown %s %q", cp.kind, id)}
		}
		show := func(d decimal.Decimal) string { return moneyString(cur, d) }
		sums := map[string]decimal.Decimal{}
		out := make([]map[string]any, 0, len(rows))
		running, next := opening, ""
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
			string(cp.kind): id, "currency": cur, "from": from, "to": to,
			"opening": show(opening), "closing": show(opening.Add(inPeriod)),
			"unindexed": show(owedNow.Sub(indexed)),
			"rows":      out, "totals": totals, "next": next,
		})
		return nil
	}
}

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
//     backfilled (invariant 4), so unindexed then drops to zero. From
//     FSM level 9 (levelPayableRows) a row is a payment's or a
//     document's only for the payment's or the document's own event, and
//     a transfer by hand (one that takes a payment's or a document's
//     reason, or names a document or payment not found) names its reason
//     and reference, as a buyer's (receivables.go); below it rows are
//     written as the version before writes them.
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
//
// The payments, their cancels, the rows' writing and the statement are
// the settlement core's (settlement_core.go), shared with settlements
// with buyers: payableSide is what makes them a supplier's.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// OpSupplierPayment books a payment to a supplier (invariant 1).
const OpSupplierPayment = "settlement.payment"

// OpSupplierPaymentCancel cancels a supplier payment (invariant 5).
const OpSupplierPaymentCancel = "settlement.payment_cancel"

// Keys of the settlement state, all metadata of the replica.
const (
	stPay      = "st/pay/"     // payment id → msgpack settlePayment
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

// payableSide makes the settlement core settle with suppliers.
var payableSide = counterparty{
	kind:           storeline.KindSupplier,
	account:        "payable/",
	negate:         true,
	noun:           "payment",
	record:         "supplier payment",
	recordedNot:    "the transfer of payment %q (%s) is applied but the payment is not recorded",
	payKey:         stPay,
	rowKey:         stRow,
	totalKey:       stTotal,
	rowNoun:        "statement row",
	eventName:      "supplier-payment",
	reason:         paymentReason,
	cancelReason:   paymentCancelReason,
	op:             OpSupplierPayment,
	cancelOp:       OpSupplierPaymentCancel,
	httpOp:         "central.supplier_payment",
	httpCancelOp:   "central.supplier_payment_cancel",
	cancelDateGate: levelCancelDate,
	readIn:         readSupplierPayment,
}

func (n *Node) settlementRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/supplier_payments", true, n.postPayment(&payableSide))
	h("GET /v1/supplier_payments/{id}", false, n.getPayment(&payableSide))
	h("POST /v1/supplier_payments/{id}/cancel", true, n.postPaymentCancel(&payableSide))
	h("GET /v1/suppliers/{id}/statement", false, n.getStatement(&payableSide))
}

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

func readSupplierPayment(body []byte) (*settlePayment, string, error) {
	var in paymentIn
	if err := strictJSON(body, &in); err != nil {
		return nil, "", err
	}
	return &settlePayment{ID: in.ID, Supplier: storeline.SupplierID(in.Supplier), Bank: storeline.BankID(in.Bank),
		Currency: storeline.Currency(in.Currency), PaidOn: storeline.Date(in.PaidOn), Reference: in.Reference, Note: in.Note}, in.Amount, nil
}

func applySupplierPayment(tx *Tx, payload []byte) ([]byte, error) {
	return payableSide.applyPayment(tx, payload)
}

func applySupplierPaymentCancel(tx *Tx, payload []byte) ([]byte, error) {
	return payableSide.applyPaymentCancel(tx, payload)
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
func indexPayables(tx *Tx, ev *storeline.Event) error {
	moved := payableSide.moves(ev)
	if len(moved) == 0 {
		return nil
	}
	lv, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil || lv < opLevel(OpSupplierPayment) {
		return err
	}
	return writePayableRows(tx, ev, moved, tx.At, lv)
}

// levelPayableRows is the level from which a transfer by hand is
// indexed as indexReceivables indexes one (writePayableRows), and from
// which neither side makes a document's row of a transfer by hand that
// takes a document's reason: below it the rows are those the nodes of
// the version before write.
const levelPayableRows = 9

// writePayableRows writes the statement rows of ev's moves, at applied
// (the time of the entry that applied ev) for a document's row date,
// while the cluster runs level.
//
// Below levelPayableRows, unlike indexReceivables, a transfer naming a
// document that is not found, or naming a supplier payment by reason and
// ref that is not found, makes a bare transfer row (no reason, the
// event's ID), and a transfer by hand with a payment's reason and the ID
// of a payment makes a second payment row of that payment (one with a
// document's reason and the ID of a document, a second row of that
// document, on both sides): nodes of the version before write them so,
// and a mixed cluster's replicas must agree. From that level on only the
// payment's or the document's own event makes its row, and any other
// transfer's row names its reason and reference, as indexReceivables's
// does.
func writePayableRows(tx *Tx, ev *storeline.Event, moved []storeline.Posting, applied time.Time, level int) error {
	asBuyers := level >= levelPayableRows
	row, tr := transferRow(ev)
	switch tr.Reason {
	case "document.post", "document.cancel":
		if asBuyers && !docOwnEvent(ev, tr) {
			row.byHand(tr) // a transfer by hand that took the reason
			break
		}
		d, err := docRow(tx, &row, tr, storeline.DocIncomingInvoice, storeline.DocSupplierReturn, applied)
		if err != nil {
			return err
		}
		if d == nil && asBuyers {
			row.byHand(tr)
		}
	case paymentReason:
		p, ok, err := payableSide.getPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		switch {
		case ok && (!asBuyers || p.Event == ev.ID):
			row.fromPayment(rowPayment, p, p.PaidOn)
		case asBuyers:
			row.byHand(tr) // a transfer by hand that took the reason
		}
	case paymentCancelReason:
		p, ok, err := payableSide.getPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		if ok && p.cancelled() && p.CancelEvent == ev.ID {
			row.fromPayment(rowPaymentCancel, p, p.CancelledOn)
			break
		}
		row.byHand(tr) // a transfer by hand that took the reason
	default:
		row.byHand(tr)
	}
	return payableSide.writeRows(tx, row, moved)
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
	// Rows are written as indexPayables writes them at the cluster's
	// level now (every replica reads the same).
	level, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil {
		return err
	}
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
		if moved := payableSide.moves(&ev); len(moved) > 0 {
			if err := writePayableRows(tx, &ev, moved, ev.OccurredAt, level); err != nil {
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

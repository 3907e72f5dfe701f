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
//     A transfer by hand that takes a document's reason and names a
//     buyer's document makes a row of that document below FSM level 9
//     (levelPayableRows), as nodes of the version before do; from it
//     only the document's own post or cancel does, and such a transfer
//     is a transfer row naming its reason and reference, so neither the
//     receivables report nor the margin report's wholesale counts the
//     document twice.
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
//     day after: counterparty.opening); its overdue part is found by
//     settling the oldest invoices first, so what is unpaid is the newest
//     invoices' (first in, first out) of those posted and not cancelled
//     by then, each part aged by its invoice's due_on.
//
// The payments, their cancels, the rows' writing and the statement are
// the settlement core's (settlement_core.go): receivableSide is what
// makes them a buyer's.

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"sort"
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
	rcPay   = "rc/pay/" // payment id → msgpack settlePayment
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

// receivableSide makes the settlement core settle with buyers. A cancel
// naming its day asks no level of its own: the op needs level 5.
var receivableSide = counterparty{
	kind:         storeline.KindBuyer,
	account:      "receivable/",
	noun:         "buyer payment",
	record:       "buyer payment",
	recordedNot:  "the transfer of buyer payment %q (%s) is applied but the payment does not record it",
	payKey:       rcPay,
	rowKey:       rcRow,
	totalKey:     rcTotal,
	rowNoun:      "receivable row",
	eventName:    "buyer-payment",
	reason:       buyerPaymentReason,
	cancelReason: buyerPaymentCancelReason,
	op:           OpBuyerPayment,
	cancelOp:     OpBuyerPaymentCancel,
	httpOp:       "central.buyer_payment",
	httpCancelOp: "central.buyer_payment_cancel",
	readIn:       readBuyerPayment,
}

func (n *Node) receivableRoutes(h func(string, bool, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /v1/buyer_payments", true, n.postPayment(&receivableSide))
	h("GET /v1/buyer_payments/{id}", false, n.getPayment(&receivableSide))
	h("POST /v1/buyer_payments/{id}/cancel", true, n.postPaymentCancel(&receivableSide))
	h("GET /v1/buyers/{id}/statement", false, n.getStatement(&receivableSide))
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

func readBuyerPayment(body []byte) (*settlePayment, string, error) {
	var in buyerPaymentIn
	if err := strictJSON(body, &in); err != nil {
		return nil, "", err
	}
	return &settlePayment{ID: in.ID, Buyer: storeline.BuyerID(in.Buyer), Bank: storeline.BankID(in.Bank),
		Currency: storeline.Currency(in.Currency), PaidOn: storeline.Date(in.PaidOn), Reference: in.Reference, Note: in.Note}, in.Amount, nil
}

func applyBuyerPayment(tx *Tx, payload []byte) ([]byte, error) {
	return receivableSide.applyPayment(tx, payload)
}

func applyBuyerPaymentCancel(tx *Tx, payload []byte) ([]byte, error) {
	return receivableSide.applyPaymentCancel(tx, payload)
}

// indexReceivables writes the statement rows of a central-authored
// transfer ev as applyTransfer applies it (invariant 2).
func indexReceivables(tx *Tx, ev *storeline.Event) error {
	moved := receivableSide.moves(ev)
	if len(moved) == 0 {
		return nil
	}
	lv, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil || lv < levelReceivables {
		return err
	}
	row, tr := transferRow(ev)
	switch tr.Reason {
	case "document.post", "document.cancel":
		if lv >= levelPayableRows && !docOwnEvent(ev, tr) {
			row.byHand(tr) // a transfer by hand that took the reason
			break
		}
		d, err := docRow(tx, &row, tr, storeline.DocOutgoingInvoice, storeline.DocBuyerReturn, tx.At)
		if err != nil {
			return err
		}
		if d == nil {
			row.byHand(tr)
		} else if row.Type == rowInvoice {
			row.DueOn = d.DueOn
		}
	case buyerPaymentReason, buyerPaymentCancelReason:
		p, ok, err := receivableSide.getPayment(tx.ReplicaTxn, tr.Ref)
		if err != nil {
			return err
		}
		switch {
		case ok && tr.Reason == buyerPaymentReason && p.Event == ev.ID:
			row.fromPayment(rowPayment, p, p.PaidOn)
		case ok && p.cancelled() && p.CancelEvent == ev.ID:
			row.fromPayment(rowPaymentCancel, p, p.CancelledOn)
		default:
			row.byHand(tr) // a transfer by hand that took the reason
		}
	default:
		row.byHand(tr)
	}
	return receivableSide.writeRows(tx, row, moved)
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
				rc.balance, _, err = receivableSide.opening(rt, string(rc.buyer), rc.currency, next, func(*recvRow) error { return count() })
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
					return false, nil // counted by opening
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

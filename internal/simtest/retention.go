package simtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
	"github.com/storeline/storeline/ledger"
	"github.com/storeline/storeline/replication"
)

// The journal's retention in the simulation. A shop prunes its journal
// (node.PruneJournalBefore) at a cutoff drawn among its own events' HLC
// times, so a run of seconds exercises what production does after 90
// days: central's acknowledged position must bound the prune, a pruned
// receipt's retry must be refused (409 naming id) and never counted
// twice, and a prune must leave the shop's balances as they were.
//
// The harness keeps a copy of every event a prune removed (shop.archive)
// so that its closing checks still see the shop's whole history: the
// HLC rising along it, the hand-backs the node authored, the points its
// journal paid. At the shop a pruned event counts once by its stub
// (ledger Event answering ErrPruned); at every central node it must be
// held exactly once, like any acknowledged event.

// Fault kinds of the retention.
const (
	FaultPrune        = "journal-prune"     // prune passes
	FaultRetryPruned  = "till-retry-pruned" // retries of a pruned receipt, refused as already recorded
	FaultRetryOld     = "till-retry-old"    // retries of an older receipt still held, answered as stored
	FaultPruneCutSale = "sold-cut-then-pruned"
	FaultReturnPruned = "return-of-pruned-receipt" // returns taken back without naming the pruned receipt
)

// sentReceipt is a receipt the till was answered 201 for, as it sent it:
// a till that did not learn the outcome sends the same bytes again.
type sentReceipt struct {
	id   storeline.EventID
	seq  uint64
	body []byte
}

// hlcTime is the time retention ages an event by (ledger.PruneJournal.Before).
func hlcTime(ev storeline.Event) time.Time {
	if ev.HLC == 0 {
		return ev.OccurredAt
	}
	return crdt.Timestamp(ev.HLC).Time()
}

// posAfter reports whether position p comes after q in an origin's
// journal.
func posAfter(p, q ledger.Position) bool {
	return p.Epoch > q.Epoch || p.Epoch == q.Epoch && p.Seq > q.Seq
}

// storedAck is the own position central acknowledged, as the shop's
// replication client stored it: what node.PruneJournalBefore reads.
func storedAck(l *ledger.Ledger) (ledger.Position, error) {
	v, ok, err := l.Meta(replication.AckKey)
	if err != nil || !ok {
		return ledger.Position{}, err
	}
	var p replication.Position
	if err := replication.Decode(v, &p); err != nil {
		return ledger.Position{}, fmt.Errorf("stored ack: %w", err)
	}
	return ledger.Position{Epoch: p.Epoch, Seq: p.Seq}, nil
}

// ownBalances is the shop's balances of its own accounts (kind/store/...),
// the ones only its own events move.
func ownBalances(sh *shop) (map[string]decimal.Decimal, error) {
	bs, err := sh.node.Ledger().Balances("")
	if err != nil {
		return nil, err
	}
	out := map[string]decimal.Decimal{}
	for _, b := range bs {
		if accountStore(b.Account) == sh.id {
			out[b.Account+" "+string(b.Asset)] = b.Amount
		}
	}
	return out, nil
}

// prune has shop i prune its journal while its till goes on selling. The
// cutoff is drawn among the HLC times of the events it holds: half the
// time the last one's (everything central acknowledged but the newest
// goes), else a random one's (a retention keeping the later part). It is
// never after the last event the harness read, so no event the node
// appends meanwhile (a hand-back) goes without the harness keeping its
// copy. Afterwards the till retries a pruned receipt and a kept one.
func (s *sim) prune(ctx context.Context, i int) error {
	sh := s.shops[i]
	l := sh.node.Ledger()
	var held []storeline.Event
	if err := scanJournal(sh, func(ev storeline.Event) { held = append(held, ev) }); err != nil {
		return fmt.Errorf("simtest: prune: journal of %s: %w", sh.id, err)
	}
	if len(held) == 0 {
		return nil
	}
	cutoff := hlcTime(held[len(held)-1])
	if s.rng.IntN(2) == 0 {
		cutoff = hlcTime(held[s.rng.IntN(len(held))])
	}
	before, err := ownBalances(sh)
	if err != nil {
		return fmt.Errorf("simtest: prune: balances of %s: %w", sh.id, err)
	}
	pos := l.Position()
	n, err := sh.node.PruneJournalBefore(ctx, cutoff)
	if err != nil {
		s.problem("%s: prune before %s: %v", sh.id, cutoff, err)
		return nil
	}
	s.res.Faults[FaultPrune]++
	if l.Position() == pos {
		// Nothing was appended meanwhile: the prune alone must have
		// left every balance as it was (ledger retention invariant 4).
		after, err := ownBalances(sh)
		if err != nil {
			return fmt.Errorf("simtest: prune: balances of %s: %w", sh.id, err)
		}
		if d := balanceDiff(before, after); d != "" {
			s.problem("%s: a prune of %d events changed its balances: %s", sh.id, n, d)
		}
	}
	through, err := l.PrunedThrough(sh.id)
	if err != nil {
		return fmt.Errorf("simtest: prune: %w", err)
	}
	ack, err := storedAck(l)
	if err != nil {
		return fmt.Errorf("simtest: prune: %s: %w", sh.id, err)
	}
	own := 0
	for _, ev := range held {
		p := ledger.Position{Epoch: ev.Epoch, Seq: ev.Seq}
		if posAfter(p, through) {
			continue
		}
		own++
		// What central has not acknowledged (the ack only rises, so one
		// read after the prune bounds the one it used) must stay.
		if posAfter(p, ack) {
			s.problem("%s: pruned %s (%s at %d/%d) beyond the position central acknowledged, %d/%d",
				sh.id, ev.ID, ev.Kind, ev.Epoch, ev.Seq, ack.Epoch, ack.Seq)
		}
		if !hlcTime(ev).Before(cutoff) {
			s.problem("%s: pruned %s of %s, not older than the cutoff %s", sh.id, ev.ID, hlcTime(ev), cutoff)
		}
		sh.archive = append(sh.archive, ev)
		s.pruned[ev.ID] = i
	}
	if own > n {
		s.problem("%s: a prune said it removed %d events, its journal lost %d", sh.id, n, own)
	}
	s.res.Pruned += own
	// The till retries a receipt it has no answer for: a pruned one, and
	// one the shop still holds.
	var old, kept []sentReceipt
	for _, r := range sh.sent {
		if _, ok := s.pruned[r.id]; ok {
			old = append(old, r)
		} else {
			kept = append(kept, r)
		}
	}
	if len(old) > 0 {
		s.retryReceipt(ctx, i, old[s.rng.IntN(len(old))])
	}
	if len(kept) > 0 {
		s.retryReceipt(ctx, i, kept[s.rng.IntN(len(kept))])
	}
	return nil
}

// pruneCutOff lets shop i's journal reach central (healing it if cut
// off), then cuts it off, sells twice (the receipts wait for central) and
// prunes at the second one's time: what central acknowledged goes, the
// first sale, older than the cutoff but never acknowledged, must stay.
// Every run plays it once.
func (s *sim) pruneCutOff(ctx context.Context, i int) error {
	sh := s.shops[i]
	if sh.cut {
		for _, p := range sh.proxies {
			p.Heal()
		}
		sh.cut = false
		s.res.Faults[FaultHeal]++
	}
	if err := s.sell(ctx, i); err != nil {
		return err
	}
	sh.node.Replication().Nudge()
	// Other faults (delays, severed links, held requests) may stand in
	// the way; a prune with less acknowledged is still a prune.
	_ = waitUntil(ctx, s.cfg.Converge, func() bool { return caughtUp(sh.node) })
	s.cut(i)
	if err := s.sell(ctx, i); err != nil {
		return err
	}
	// The second sale a millisecond of the shop's clock later, so the
	// first is older than the cutoff (unless the shop's HLC runs ahead
	// of its clock after a reset back: then both share one).
	first := sh.sent[len(sh.sent)-1]
	if ev, err := sh.node.Ledger().Event(sh.id, first.id); err == nil {
		_ = waitUntil(ctx, 50*time.Millisecond, func() bool { return sh.now().After(hlcTime(ev)) })
	}
	if err := s.sell(ctx, i); err != nil {
		return err
	}
	s.res.Faults[FaultPruneCutSale]++
	return s.prune(ctx, i)
}

// retryOld has shop i's till send an earlier receipt again, as a till
// that never learnt its outcome would.
func (s *sim) retryOld(ctx context.Context, i int) error {
	sh := s.shops[i]
	if len(sh.sent) == 0 {
		return s.sell(ctx, i)
	}
	s.retryReceipt(ctx, i, sh.sent[s.rng.IntN(len(sh.sent))])
	return nil
}

// retryReceipt sends r again on the cashier's session. A receipt the shop
// still holds is answered 200 as stored; a pruned one is refused with 409
// naming id, which the till takes as "already recorded" (its count, its
// drawer and its Z report stay as they are), and its stub stays: the sale
// is neither lost nor counted twice.
func (s *sim) retryReceipt(ctx context.Context, i int, r sentReceipt) {
	sh := s.shops[i]
	st, b, err := s.call(ctx, sh, tillCall{method: http.MethodPost, path: "/v1/receipts", session: sh.till.cashier, body: r.body})
	if err != nil {
		s.problem("%s: retry of receipt %s: %v", sh.id, r.id, err)
		return
	}
	if _, pruned := s.pruned[r.id]; pruned {
		var p struct {
			Field  string `json:"field"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		if st != http.StatusConflict || p.Field != "id" || !strings.Contains(p.Detail, "pruned") {
			s.problem("%s: a retry of pruned receipt %s was answered %d %s, want 409 naming id: already recorded, pruned", sh.id, r.id, st, b)
		}
		if _, err := sh.node.Ledger().Event(sh.id, r.id); !errors.Is(err, storeline.ErrPruned) {
			s.problem("%s: after a refused retry, pruned receipt %s reads %v, want its stub (ErrPruned)", sh.id, r.id, err)
		}
		s.res.Faults[FaultRetryPruned]++
		return
	}
	var again eventAnswer
	if st != http.StatusOK || json.Unmarshal(b, &again) != nil || again.ID != r.id || again.Seq != r.seq {
		s.problem("%s: a retry of receipt %s (seq %d) was not answered as the stored fact: %d %s", sh.id, r.id, r.seq, st, b)
	}
	s.res.Faults[FaultRetryOld]++
}

// returnUnnamed makes return r of a receipt the shop's retention pruned:
// the node must refuse it naming original (404, saying the receipt is
// older than the journal it keeps), and the till then takes the goods
// back without naming the receipt, as the answer tells it to.
func (s *sim) returnUnnamed(ctx context.Context, i int, r returnJSON) error {
	sh := s.shops[i]
	st, b, err := s.tryFact(ctx, i, "/v1/returns", true, r, nil)
	if err != nil {
		return err
	}
	var p struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(b, &p)
	if st != http.StatusNotFound || p.Field != "original" || !strings.Contains(p.Detail, "retention") {
		s.problem("%s: a return naming pruned receipt %s was answered %d %s, want 404 naming original (retention)", sh.id, *r.Original, st, b)
		if st == http.StatusCreated {
			return nil
		}
	}
	s.res.Faults[FaultReturnPruned]++
	r.ID, r.Original = storeline.NewEventID(), nil
	return s.fact(ctx, i, "/v1/returns", true, r, nil)
}

// checkPruned checks, on the converged chain, that every event a shop
// pruned is still its stub there and held exactly once by every central
// node (a rejected one by none).
func (s *sim) checkPruned() {
	if len(s.pruned) == 0 {
		return
	}
	for _, sl := range s.centrals {
		for i, sh := range s.shops {
			counts := map[storeline.EventID]int{}
			if err := sl.node.ScanEvents(sh.id, func(ev storeline.Event) bool {
				if at, ok := s.pruned[ev.ID]; ok && at == i {
					counts[ev.ID]++
				}
				return true
			}); err != nil {
				s.problem("%s: scan %s: %v", sl.node.ID(), sh.id, err)
				continue
			}
			bad := 0
			for id, at := range s.pruned {
				if at != i {
					continue
				}
				want := 1
				if _, ok := s.rejected[id]; ok {
					want = 0
				}
				if counts[id] != want {
					bad++
					if bad <= 3 {
						s.problem("%s holds %s's pruned event %s %d times, want %d", sl.node.ID(), sh.id, id, counts[id], want)
					}
				}
			}
			if bad > 3 {
				s.problem("%s: %d of %s's pruned events not held once", sl.node.ID(), bad, sh.id)
			}
		}
	}
}

// scanHistory calls fn for every own event of the shop, in journal
// order: the copies of those it pruned, then its journal.
func scanHistory(sh *shop, fn func(storeline.Event)) error {
	for _, ev := range sh.archive {
		fn(ev)
	}
	return scanJournal(sh, fn)
}

func balanceDiff(before, after map[string]decimal.Decimal) string {
	var out []string
	for k, v := range before {
		if !after[k].Equal(v) {
			out = append(out, fmt.Sprintf("%s %s -> %s", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok && !v.IsZero() {
			out = append(out, fmt.Sprintf("%s 0 -> %s", k, v))
		}
	}
	return strings.Join(out[:min(len(out), 3)], "; ")
}

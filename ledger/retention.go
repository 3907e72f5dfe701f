package ledger

// Retention: PruneJournal removes old events from the journal, a bounded
// batch per call, so a shop's disk stops growing with its history
// (DESIGN.md, "Scale and retention").
//
// Invariants:
//
//  1. A prune is one request through the committer, like SetMeta: its
//     resolve reads Badger (the applier drained first), writes one WAL
//     record (recPrune) naming every journal entry it removes, syncs the
//     frame and applies it in one Badger transaction with the batch's
//     LSN. A power loss leaves the whole batch or none of it, and replay
//     applies a synced one exactly once (commit.go, invariant 3).
//  2. Each origin's pruned entries are a prefix of its journal: the scan
//     starts after the origin's pruned-through position (tPruned) and
//     stops at the first entry it must keep. Everything at or below that
//     position is gone, so Journal answers ErrPruned there instead of
//     skipping silently, and the next call seeks straight past it.
//  3. A pruned event leaves a stub at its event key (storedEvent with
//     Pruned set: ID, origin, first position, HLC time, kind, no body and
//     no postings), so deduplication by (origin, ID) still holds: a later
//     Append of it is refused with ErrPruned, an ApplyRemote of it has no
//     effect, and neither is counted twice.
//  4. Balances are never touched. The postings of every pruned event are
//     added to its balance key's carry (tCarry) in the same transaction,
//     so a rebuild of the balances (vlog.go, invariant 4) sums the carry
//     and the events kept, to the same balances.
//  5. The business-date and returns index entries of a pruned event go
//     with it, and the latest business date of an own event pruned is
//     kept (PrunedDate; no later than the day after the ledger took
//     the event, see prunedDateOf), so a report can tell a day the shop
//     no longer holds from a day without sales; shift totals stay as they are (a rebuild from the journal
//     skips stubs, so it cannot restore what pruned events folded).
//  6. The read-back at Open (vlog.go, invariant 3) takes a pruned event's
//     stub as the last value of its key: an event pruned by a frame still
//     in the WAL is not written again as lost.
//  7. A pruned event's body becomes garbage in Badger's value log, which
//     only a value-log GC gives back: the call that ends a prune pass
//     (entries removed, More unset) runs it (reclaimValueLog). Badger's
//     GC moves a file's live values to the current file without syncing
//     them, then deletes the old file, unless an iterator is open; the
//     deletion waits for the last one to close. So the GC runs under an
//     iterator of its own, syncs Badger (vlog.go, invariant 1) and only
//     then closes it: no file goes before the values moved out of it are
//     durable. A failed sync poisons the ledger like a checkpoint's, and
//     the iterator stays open (the file stays) until Close.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
)

// ErrPruned is the cause of the error for an event the journal's retention
// removed: Append of its ID (Conflict: the ID was used and cannot be
// served again), Event of it and Journal at its position (NotFound). It
// is storeline.ErrPruned, for callers that may not import ledger.
var ErrPruned = storeline.ErrPruned

// Prune limits: journal entries one PruneJournal call removes.
const (
	DefaultPruneLimit = 1000
	MaxPruneLimit     = 10000
)

// kStubs counts the stubs pruned events left (retention invariant 3);
// kPrunedDate holds the latest business date of an own event pruned.
var (
	kStubs      = []byte("xstubs")
	kPrunedDate = []byte("xpdate")
)

// PruneJournal says which journal entries a PruneJournal call may remove.
type PruneJournal struct {
	// Before is the cutoff: entries whose event's HLC time is before it
	// may go. The HLC time, not OccurredAt nor the business date: the
	// ledger assigns it and it never goes backwards along an origin's
	// journal (nor across restarts), so the old entries are a prefix of
	// each origin's journal (invariant 2), whereas OccurredAt is the
	// till's word (an offline till's clock, a backdated document) and
	// the business date may be empty and is a day, not an order. An
	// event without an HLC time (none is assigned to some remote ones)
	// is aged by its OccurredAt.
	Before time.Time
	// Acked is the highest own position central acknowledged (the
	// replication client's "replication.ack"): own events at positions
	// after it are kept whatever their age, and stop the own journal's
	// prune. Positions order by (epoch, seq), so it covers every earlier
	// epoch and its own epoch up to its seq. Events of other origins
	// (ApplyRemote) go by age alone: central holds them.
	Acked Position
	// Limit is the most journal entries one call removes (0:
	// DefaultPruneLimit; at most MaxPruneLimit), so a backlog never makes
	// one huge transaction or holds the tills' appends behind it for
	// long. Call again while the result says More.
	Limit int
}

// PruneResult is what one PruneJournal call did.
type PruneResult struct {
	Pruned  int // events removed (each leaves a stub)
	Entries int // journal entries removed: Pruned plus second copies
	// Stubs is the number of stubs the ledger keeps after the call.
	Stubs uint64
	// OldestKept is the HLC time of the oldest first journal entry left,
	// over every origin; zero if the journal is empty. An own event kept
	// for want of an acknowledgement shows here as an old time.
	OldestKept time.Time
	// More is set when the limit stopped the call before the cutoff.
	More bool
}

type pruneReq struct {
	p   PruneJournal
	out PruneResult
}

// prunedEntry is one journal entry a recPrune removes. Stub, the
// encoded stub, is set where the event itself goes (its first
// position); a second copy's entry has none.
type prunedEntry struct {
	Epoch uint64   `msgpack:"e"`
	Seq   uint64   `msgpack:"s"`
	ID    [16]byte `msgpack:"i"`
	Stub  []byte   `msgpack:"x,omitempty"`
}

// PruneJournal removes, in one durable batch of at most p.Limit journal
// entries, the entries older than p.Before (own ones only at or below
// p.Acked), leaving a stub per event (invariant 3). It returns what it
// did; call it again while More is set.
func (l *Ledger) PruneJournal(ctx context.Context, p PruneJournal) (PruneResult, error) {
	const op = "ledger.PruneJournal"
	if p.Before.IsZero() {
		return PruneResult{}, storeline.E(op, storeline.Invalid, storeline.Invalidf("before", "a prune needs a cutoff time"))
	}
	if p.Limit <= 0 {
		p.Limit = DefaultPruneLimit
	}
	p.Limit = min(p.Limit, MaxPruneLimit)
	pr := &pruneReq{p: p}
	r := &request{kind: reqPrune, prune: pr, size: 64 * p.Limit}
	if err := l.submit(ctx, op, r).err; err != nil {
		return PruneResult{}, err
	}
	l.met.pruned(pr.out.Pruned)
	if pr.out.Entries > 0 && !pr.out.More {
		if err := l.reclaimValueLog(ctx); err != nil {
			// The prune itself is durable; the space comes back at the
			// next pass.
			l.log.Warn("ledger: value-log GC after a prune failed", "err", err)
		}
	}
	return pr.out, nil
}

// gcDiscardRatio is the share of a value-log file that must be garbage
// for the GC to rewrite it: Badger's advice, a lifetime write
// amplification of two.
const gcDiscardRatio = 0.5

// reclaimValueLog runs Badger's value-log GC until it finds no file worth
// rewriting, under invariant 7. It returns the number of files rewritten.
func (l *Ledger) reclaimValueLog(ctx context.Context) error {
	_, err := l.runValueLogGC(ctx)
	return err
}

func (l *Ledger) runValueLogGC(ctx context.Context) (int, error) {
	if err := l.poisoned(); err != nil {
		return 0, err
	}
	// Close waits for it (versions.go, invariant 4).
	if err := l.ver.enter(); err != nil {
		return 0, err
	}
	defer l.ver.leave()
	txn := l.ver.begin(false)
	pin := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tState}, PrefetchValues: false})
	rewritten := 0
	var gcErr error
	for ctx.Err() == nil {
		err := l.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break // nothing worth it, or another GC (or Close) runs
		}
		if err != nil {
			gcErr = fmt.Errorf("value-log GC: %w", err)
			break
		}
		rewritten++
	}
	if rewritten > 0 {
		if err := l.syncBadger(); err != nil {
			// The moved values may be lost: keep the old files (the pin
			// and its transaction stay open, deliberately, until the
			// process ends) and stop, as a checkpoint does (vlog.go,
			// invariant 2).
			l.poisonWith(nil, "value-log GC: sync Badger", err)
			return rewritten, errors.Join(gcErr, err)
		}
	}
	pin.Close() // the rewritten files go now
	l.ver.end(txn)
	return rewritten, gcErr
}

// PrunedThrough returns the last position of origin's journal that
// retention removed (zero if none): Journal from it or before answers
// ErrPruned.
func (l *Ledger) PrunedThrough(origin storeline.StoreID) (Position, error) {
	var p Position
	err := l.view(func(txn *badger.Txn) error {
		var err error
		p, err = prunedThrough(txn, origin)
		return err
	})
	return p, l.readErr("ledger.PrunedThrough", err)
}

// PrunedDate returns the latest business date of an own event retention
// removed ("" if none), taken no later than the day after the ledger took
// the event (prunedDateOf): EventsByDate may miss own events of that date
// and earlier, so a report over them would be short.
func (l *Ledger) PrunedDate() (storeline.Date, error) {
	var d storeline.Date
	err := l.view(func(txn *badger.Txn) error {
		v, err := getValue(txn, kPrunedDate)
		d = storeline.Date(v)
		return err
	})
	return d, l.readErr("ledger.PrunedDate", err)
}

func prunedThrough(txn *badger.Txn, origin storeline.StoreID) (Position, error) {
	v, err := getValue(txn, prunedKey(origin))
	if err != nil || v == nil {
		return Position{}, err
	}
	if len(v) != 16 {
		return Position{}, fmt.Errorf("ledger: pruned-through position of %s of %d bytes", origin, len(v))
	}
	return Position{binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])}, nil
}

// eventTime is the time retention ages an event by (PruneJournal.Before).
func eventTime(se *storedEvent) time.Time {
	if se.HLC == 0 {
		return se.Occurred
	}
	return crdt.Timestamp(se.HLC).Time()
}

// resolvePrune plans the prune in txn (invariant 2), one recPrune per
// origin it removes entries of, and applies them.
func (l *Ledger) resolvePrune(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	pr := r.prune
	pr.out = PruneResult{}
	left := pr.p.Limit
	budget := l.newPruneBudget()
	var recs []walRec
	var oldest time.Time
	keep := func(t time.Time) {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	err := func() error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tJournal}, PrefetchValues: false})
		defer it.Close()
		for it.Seek([]byte{tJournal}); it.Valid(); {
			k := it.Item().Key()
			origin, _, ok := bytes.Cut(k[1:], []byte{0})
			if !ok || len(k) != 1+len(origin)+1+16 {
				return fmt.Errorf("ledger: malformed journal key %q", k)
			}
			o := storeline.StoreID(origin)
			// Past this origin's keys: its prefix ends in a zero byte.
			next := append(append([]byte{tJournal}, origin...), 1)
			from, err := prunedThrough(txn, o)
			if err != nil {
				return err
			}
			rec := walRec{T: recPrune, Origin: string(o)}
			prefix := journalPrefix(o)
			for it.Seek(journalKey(o, Position{from.Epoch, from.Seq + 1})); it.ValidForPrefix(prefix); it.Next() {
				pos := journalPos(it.Item().Key())
				idb, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if len(idb) != 16 {
					return fmt.Errorf("ledger: journal entry of %d bytes at %s of %s", len(idb), pos, o)
				}
				se, err := getStored(txn, o, [16]byte(idb))
				if err != nil {
					return err
				}
				if se == nil {
					return fmt.Errorf("ledger: journal names missing event %x at %s of %s", idb, pos, o)
				}
				t := eventTime(se)
				if !t.Before(pr.p.Before) || o == l.o.Origin && pr.p.Acked.Less(pos) {
					keep(t)
					break
				}
				e := prunedEntry{Epoch: pos.Epoch, Seq: pos.Seq, ID: se.ID}
				whole := se.pos() == pos && !se.Pruned
				if whole {
					if e.Stub, err = msgpack.Marshal(stubOf(se)); err != nil {
						return err
					}
				}
				if left == 0 || !budget.take(o, pos, se, e.Stub, pr.out.Entries == 0) {
					keep(t)
					pr.out.More = true
					break
				}
				if whole {
					pr.out.Pruned++
				}
				rec.Pruned = append(rec.Pruned, e)
				rec.Epoch, rec.Seq = pos.Epoch, pos.Seq
				pr.out.Entries++
				left--
			}
			if len(rec.Pruned) > 0 {
				recs = append(recs, rec)
			}
			it.Seek(next)
		}
		return nil
	}()
	if err != nil {
		return result{}, err
	}
	for i := range recs {
		if err := l.apply(txn, &recs[i], nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, recs[i])
	}
	v, err := getValue(txn, kStubs)
	if err != nil {
		return result{}, err
	}
	if v != nil {
		pr.out.Stubs = getU64(v)
	}
	pr.out.OldestKept = oldest
	return result{}, nil
}

// pruneBudget keeps a prune's writes within half of what one Badger
// transaction takes (the rest is for the committer's state and slack in
// the estimate): a Limit that a small MemTableBytes cannot hold would
// otherwise be refused whole (TooLarge) at every call, and the journal
// never pruned.
type pruneBudget struct {
	count, size int64 // left
	carried     map[string]bool
}

func (l *Ledger) newPruneBudget() *pruneBudget {
	return &pruneBudget{count: l.db.MaxBatchCount() / 2, size: l.db.MaxBatchSize() / 2, carried: map[string]bool{}}
}

// take reserves what applyPrune writes for one journal entry (its stub,
// if not nil, stands for the whole event) and says whether it fits; the
// first entry of a call always does, so a prune never stalls.
func (b *pruneBudget) take(origin storeline.StoreID, pos Position, se *storedEvent, stub []byte, first bool) bool {
	// Badger's estimate of an entry: key, value (or its pointer), meta.
	const perEntry = 2 + 12
	count := int64(1)
	size := int64(len(journalKey(origin, pos)) + perEntry)
	var fresh []string
	if stub != nil {
		count += 3 // stub, date and returns index entries
		size += int64(len(eventKey(origin, se.ID))+len(stub)) + 2*int64(len(dateKey(storeline.Date(se.Date), pos))+perEntry+64)
		for _, p := range se.Postings {
			k := string(carryKey(p.Account, storeline.Asset(p.Asset)))
			if !b.carried[k] && !slices.Contains(fresh, k) {
				fresh = append(fresh, k)
				count++
				size += int64(len(k)) + 32 + perEntry
			}
		}
	}
	if !first && (count > b.count || size > b.size) {
		return false
	}
	b.count -= count
	b.size -= size
	for _, k := range fresh {
		b.carried[k] = true
	}
	return true
}

// stubOf is what stays of a pruned event (invariant 3).
func stubOf(se *storedEvent) *storedEvent {
	return &storedEvent{
		ID: se.ID, Origin: se.Origin, Epoch: se.Epoch, Seq: se.Seq, Schema: se.Schema,
		HLC: se.HLC, Occurred: se.Occurred, Date: se.Date, Kind: se.Kind, Pruned: true,
	}
}

// applyPrune applies a recPrune: it removes the named journal entries,
// replaces each event whose stub it carries by that stub along with its
// date and returns index entries, carries its postings (invariant 4) and
// records the origin's pruned-through position. Deterministic given the
// state in txn, as replay needs.
func (l *Ledger) applyPrune(txn *badger.Txn, rec *walRec) error {
	origin := storeline.StoreID(rec.Origin)
	carry := map[string]decimal.Decimal{}
	var order []string
	stubs := uint64(0)
	latest := ""
	for _, e := range rec.Pruned {
		if err := txn.Delete(journalKey(origin, Position{e.Epoch, e.Seq})); err != nil {
			return err
		}
		if e.Stub == nil {
			continue
		}
		se, err := getStored(txn, origin, e.ID)
		if err != nil {
			return err
		}
		if se == nil || se.Pruned {
			return fmt.Errorf("ledger: prune of event %s of %s, which is not stored whole", storeline.EventID(e.ID), origin)
		}
		if origin == l.o.Origin && se.Date != "" {
			if err := txn.Delete(dateKey(storeline.Date(se.Date), se.pos())); err != nil {
				return err
			}
			latest = max(latest, prunedDateOf(se))
		}
		if storeline.EventKind(se.Kind) == storeline.KindReturn {
			ret := new(storeline.Return)
			if msgpack.Unmarshal(se.Body, ret) == nil && ret.Original != nil {
				if err := txn.Delete(returnKey(*ret.Original, origin, e.ID)); err != nil {
					return err
				}
			}
		}
		for _, p := range se.Postings {
			k := string(carryKey(p.Account, storeline.Asset(p.Asset)))
			if _, ok := carry[k]; !ok {
				order = append(order, k)
			}
			carry[k] = carry[k].Add(p.Amount)
		}
		if err := txn.Set(eventKey(origin, e.ID), e.Stub); err != nil {
			return err
		}
		stubs++
	}
	for _, k := range order {
		if err := addBalanceTxn(plainTxn{txn}, []byte(k), carry[k]); err != nil {
			return err
		}
	}
	if stubs > 0 {
		v, err := getValue(txn, kStubs)
		if err != nil {
			return err
		}
		n := stubs
		if v != nil {
			n += getU64(v)
		}
		if err := txn.Set(kStubs, u64(n)); err != nil {
			return err
		}
	}
	if latest != "" {
		v, err := getValue(txn, kPrunedDate)
		if err != nil {
			return err
		}
		if latest > string(v) {
			if err := txn.Set(kPrunedDate, []byte(latest)); err != nil {
				return err
			}
		}
	}
	through := binary.BigEndian.AppendUint64(u64(rec.Epoch), rec.Seq)
	return txn.Set(prunedKey(origin), through)
}

// prunedDateOf is the business date a pruned own event leaves short: its
// own, but never later than the day after the ledger took it (its HLC
// time's UTC date, one day on for a zone ahead of UTC). A till whose
// clock ran years ahead dates a sale in a year to come (CheckEventTime
// takes any up to 2099), and PrunedDate at that date would have the
// tills' reports refuse every day until then; that one sale stays at
// head office.
func prunedDateOf(se *storedEvent) string {
	took := eventTime(se).UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	return min(se.Date, took)
}

// prunedError is the error for a read that reached a pruned event.
func prunedError(op string, origin storeline.StoreID, id storeline.EventID, pos Position) error {
	return storeline.E(op, storeline.NotFound, fmt.Errorf("event %s of %s at %s: %w", id, origin, pos, ErrPruned))
}

// pruned makes the read-back take the stubs rec wrote as the last values
// of their event keys (invariant 6): the event a frame before it stored is
// no longer checked, nor written again.
func (r *valueRepair) pruned(rec *walRec) {
	gone := map[string]bool{}
	for _, e := range rec.Pruned {
		if e.Stub == nil {
			continue
		}
		k := eventKey(storeline.StoreID(rec.Origin), e.ID)
		gone[string(k)] = true
		r.note(k, e.Stub)
	}
	kept := r.events[:0]
	for _, kv := range r.events {
		if !gone[string(kv[0])] {
			kept = append(kept, kv)
		}
	}
	clear(r.events[len(kept):])
	r.events = kept
}

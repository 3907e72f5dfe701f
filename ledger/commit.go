package ledger

// The commit pipeline: one committer goroutine in front of a preallocated,
// group-committed WAL, in front of Badger (SyncWrites off). It drains what
// is queued (no linger timer), resolves each request against Badger in one
// transaction (which sees its own writes, so later requests of a batch see
// earlier ones), writes the batch as one WAL frame, fdatasyncs it, commits
// the transaction with the applied LSN, and only then answers the waiters.
//
// Invariants:
//
//  1. One goroutine, the committer, writes. It alone assigns LSNs, own
//     sequence numbers, HLC times and master versions, writes the WAL and
//     writes Badger (Open's replay runs before it starts).
//  2. No request is answered before the WAL frame of its batch is written
//     and synced (Seams.Sync returned nil), applied to Badger and published.
//     Answers that need no write (a duplicate, an error) wait for the end of
//     their batch too, so no answer reflects state that is not durable.
//  3. LSNs are dense: the batch after LSN n is LSN n+1. Badger stores the
//     applied LSN in the same transaction as the batch's effects, so a batch
//     is applied exactly once: at commit, or at replay, never both.
//  4. A WAL frame holds resolved records (sequence numbers, HLC times,
//     postings, versions): replay applies them without the clock and
//     without deriving postings, and reproduces the committed state exactly.
//  5. A failed WAL write, sync or Badger apply poisons the ledger: the
//     batch's waiters and every later caller get Unavailable
//     (InsufficientStorage for a full disk), nothing of the batch is ever
//     acknowledged by this Ledger, and a sync is never retried (after a
//     failed fsync the data's fate is unknown: PostgreSQL's fsync lesson).
//     Reopening replays what the WAL holds and syncs Badger before serving,
//     so anything answered after the reopen is durable.
//  6. A batch that could not be written at all (no segment to roll to, e.g.
//     the disk is full) is refused whole and the in-memory counters are
//     restored; nothing was written, so nothing is poisoned.
//  7. The postings of one event sum to zero per asset (checked where they
//     are derived and in ApplyRemote). Balances change only by the postings
//     of an event applied for the first time by (origin, ID), so for every
//     asset the balances sum to zero.
//  8. Own sequence numbers are dense within an epoch: an own new event's
//     seq is the previous one plus one (asserted in apply).
//  9. Everything is bounded: a batch holds at most MaxBatchEvents requests
//     and about MaxBatchBytes of records, the queue QueueDepth requests.
// 10. WAL segments are dropped only when every frame in them is at or
//     below an LSN that Badger synced at an earlier checkpoint (one
//     checkpoint of lag: Badger's rotated memtables are synced only when
//     flushed).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
)

type reqKind uint8

const (
	reqAppend reqKind = iota + 1
	reqRemote
	reqMaster
	reqMeta
	reqPulled // a page pulled from central (pull.go)
)

type masterOp struct {
	kind storeline.MasterKind
	id   string
	data []byte // nil for a tombstone
	keys []string
}

type request struct {
	kind    reqKind
	ev      storeline.Event // as the caller gave it (append, remote)
	se      *storedEvent    // its storage form (append: position not yet set)
	ops     []masterOp
	metaKey string
	metaVal []byte
	pull    *pullReq // reqPulled
	size    int      // estimated record bytes, for MaxBatchBytes
	done    chan result
}

type result struct {
	ev      storeline.Event
	created bool
	version uint64
	err     error
}

// commitState is owned by the committer (and by Open before it starts).
type commitState struct {
	lsn       uint64 // last LSN written and applied
	epoch     uint64
	seq       uint64 // last own seq in epoch
	mver      uint64 // last master version
	hlc       uint64 // persisted HLC high-water mark
	sinceCkpt int64  // WAL bytes since the last checkpoint request
}

// submit queues r and waits for its answer.
//
// If ctx ends while r waits for its batch, the outcome is unknown: the
// request may or may not be committed. Retrying with the same event ID is
// safe, because appends are idempotent by (origin, ID).
func (l *Ledger) submit(ctx context.Context, op string, r *request) result {
	if err := l.available(op); err != nil {
		return result{err: err}
	}
	r.done = make(chan result, 1)
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return result{err: storeline.E(op, storeline.Unavailable, ctx.Err())}
	case <-l.quit:
		return result{err: storeline.Errorf(storeline.Unavailable, op, "ledger closed")}
	}
	select {
	case res := <-r.done:
		return res
	case <-ctx.Done():
		return result{err: storeline.E(op, storeline.Unavailable,
			fmt.Errorf("outcome unknown, retry with the same ID: %w", ctx.Err()))}
	case <-l.done:
		select {
		case res := <-r.done:
			return res
		default:
			return result{err: storeline.Errorf(storeline.Unavailable, op, "ledger closed")}
		}
	}
}

// commitLoop is the committer.
func (l *Ledger) commitLoop() {
	defer close(l.done)
	batch := make([]*request, 0, l.o.MaxBatchEvents)
	var carry *request
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			case <-l.quit:
				// Answer what is queued, then stop.
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
				default:
					return
				}
			}
		}
		size := batch[0].size
	fill:
		for len(batch) < l.o.MaxBatchEvents {
			select {
			case r := <-l.reqs:
				if size+r.size > l.o.MaxBatchBytes {
					carry = r
					break fill
				}
				batch = append(batch, r)
				size += r.size
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

func answer(batch []*request, res []result) {
	for i, r := range batch {
		r.done <- res[i]
	}
}

func answerAll(batch []*request, err error) {
	for _, r := range batch {
		r.done <- result{err: err}
	}
}

// poisonWith stops the pipeline for good and fails the batch.
func (l *Ledger) poisonWith(batch []*request, stage string, err error) {
	err = fmt.Errorf("%s: %w", stage, err)
	l.poison.CompareAndSwap(nil, &err)
	l.met.setPoisoned()
	l.log.Error("ledger poisoned; reopen it", "stage", stage, "err", err)
	answerAll(batch, storeline.E("ledger.commit", ioKind(err), err))
}

// commit makes one batch durable and answers it.
func (l *Ledger) commit(batch []*request) {
	start := time.Now()
	if p := l.poison.Load(); p != nil {
		answerAll(batch, storeline.E("ledger.commit", storeline.Unavailable, fmt.Errorf("ledger poisoned, reopen it: %w", *p)))
		return
	}
	saved := l.st
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	res := make([]result, len(batch))
	var wb walBatch
	events := 0
	for i, r := range batch {
		var err error
		res[i], err = l.resolve(txn, r, &wb)
		if err != nil {
			l.st = saved
			l.poisonWith(batch, "resolve", err)
			return
		}
		if res[i].created && (r.kind == reqAppend || r.kind == reqRemote) {
			events++
		}
	}
	if len(wb.Recs) == 0 {
		answer(batch, res)
		return
	}
	lsn := l.st.lsn + 1
	l.st.hlc = max(l.st.hlc, uint64(l.o.Clock.Last()))
	wb.HLC = l.st.hlc
	body, err := msgpack.Marshal(&wb)
	if err != nil {
		l.st = saved
		l.poisonWith(batch, "encode", err)
		return
	}
	frame := frameBytes(lsn, body)
	f, err := l.wal.write(frame, lsn, l.seams.Write)
	if err != nil {
		if errors.Is(err, errRoll) {
			l.st = saved
			l.log.Warn("ledger: batch refused, no WAL segment", "err", err)
			answerAll(batch, storeline.E("ledger.commit", ioKind(err), err))
			return
		}
		l.poisonWith(batch, "wal write", err)
		return
	}
	syncStart := time.Now()
	if !canaryAckBeforeSync {
		err = l.seams.Sync(f)
	}
	l.met.syncDone(time.Since(syncStart))
	if err != nil {
		l.poisonWith(batch, "wal sync", err)
		return
	}
	l.met.fsync(len(frame), events)
	if err := l.seams.Apply(lsn); err != nil {
		l.poisonWith(batch, "apply", err)
		return
	}
	l.st.lsn = lsn
	if err := l.putState(txn); err != nil {
		l.poisonWith(batch, "apply", err)
		return
	}
	if err := txn.Commit(); err != nil {
		l.poisonWith(batch, "apply", err)
		return
	}
	l.publish()
	l.seams.Publish(lsn, len(batch))
	answer(batch, res)
	l.met.commit(time.Since(start))
	l.st.sinceCkpt += int64(len(frame))
	if l.st.sinceCkpt >= l.o.CheckpointBytes {
		l.st.sinceCkpt = 0
		select {
		case l.ckpt <- struct{}{}:
		default:
		}
	}
}

// putState writes the committer's counters into txn.
func (l *Ledger) putState(txn *badger.Txn) error {
	for _, kv := range []struct {
		k []byte
		v uint64
	}{{kAppliedLSN, l.st.lsn}, {kHLC, l.st.hlc}, {kEpoch, l.st.epoch}, {kSeq, l.st.seq}, {kMasterVersion, l.st.mver}} {
		if err := txn.Set(kv.k, u64(kv.v)); err != nil {
			return err
		}
	}
	return nil
}

// publish makes the committed counters visible to readers.
func (l *Ledger) publish() {
	l.pos.Store(&Position{l.st.epoch, l.st.seq})
	l.masterVersion.Store(l.st.mver)
	l.appliedLSN.Store(l.st.lsn)
}

// resolve decides one request against the state in txn, appends its
// records to wb and applies them to txn. A returned error is fatal to the
// batch (Badger failed); a business error is in the result.
func (l *Ledger) resolve(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	switch r.kind {
	case reqAppend:
		return l.resolveAppend(txn, r, wb)
	case reqRemote:
		return l.resolveRemote(txn, r, wb)
	case reqMaster:
		return l.resolveMaster(txn, r, wb)
	case reqMeta:
		rec := walRec{T: recMeta, Key: r.metaKey, Val: r.metaVal}
		if err := l.apply(txn, &rec, nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, rec)
		return result{}, nil
	case reqPulled:
		return l.resolvePulled(txn, r, wb)
	}
	panic(fmt.Sprintf("ledger: request kind %d", r.kind))
}

func (l *Ledger) resolveAppend(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	const op = "ledger.Append"
	se := r.se
	old, err := getStored(txn, l.o.Origin, se.ID)
	if err != nil {
		return result{}, err
	}
	if old != nil && !canarySkipDedup {
		if old.Kind != se.Kind || !bytes.Equal(old.Body, se.Body) {
			return result{err: storeline.Errorf(storeline.Conflict, op,
				"event %s exists with another body", storeline.EventID(se.ID))}, nil
		}
		ev, err := fromStored(old)
		if err != nil {
			return result{}, err
		}
		return result{ev: ev}, nil
	}
	se.Epoch, se.Seq = l.st.epoch, l.st.seq+1
	se.HLC = uint64(l.o.Clock.Now())
	enc, err := msgpack.Marshal(se)
	if err != nil {
		return result{}, err
	}
	rec := walRec{T: recEvent, Ev: enc}
	if err := l.apply(txn, &rec, se); err != nil {
		return result{}, err
	}
	wb.Recs = append(wb.Recs, rec)
	ev := r.ev
	ev.Origin, ev.Epoch, ev.Seq, ev.HLC = l.o.Origin, se.Epoch, se.Seq, se.HLC
	ev.SchemaVersion = se.Schema
	ev.OccurredAt = se.Occurred
	ev.Postings = r.ev.Postings
	return result{ev: ev, created: true}, nil
}

func (l *Ledger) resolveRemote(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	const op = "ledger.ApplyRemote"
	se := r.se
	origin := storeline.StoreID(se.Origin)
	if origin == l.o.Origin && se.Epoch >= l.st.epoch {
		return result{err: storeline.Errorf(storeline.Invalid, op,
			"own event %s at epoch %d: only older epochs than the current %d arrive from elsewhere",
			storeline.EventID(se.ID), se.Epoch, l.st.epoch)}, nil
	}
	holder, err := getValue(txn, journalKey(origin, se.pos()))
	if err != nil {
		return result{}, err
	}
	old, err := getStored(txn, origin, se.ID)
	if err != nil {
		return result{}, err
	}
	if old != nil {
		if old.Kind != se.Kind || !bytes.Equal(old.Body, se.Body) || !samePostings(old.Postings, se.Postings) {
			return result{err: storeline.Errorf(storeline.Conflict, op,
				"event %s of %s exists with another body or postings", storeline.EventID(se.ID), origin)}, nil
		}
		if holder != nil {
			if !bytes.Equal(holder, se.ID[:]) {
				return result{err: storeline.Errorf(storeline.Conflict, op,
					"position %s of %s holds another event", se.pos(), origin)}, nil
			}
			return result{}, nil // this very copy is known
		}
		// A second copy at a new position: it keeps its place in the
		// stream and has no effect.
		rec := walRec{T: recCopy, Origin: se.Origin, ID: se.ID, Epoch: se.Epoch, Seq: se.Seq}
		if err := l.apply(txn, &rec, nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, rec)
		return result{}, nil
	}
	if holder != nil {
		return result{err: storeline.Errorf(storeline.Conflict, op,
			"position %s of %s holds another event", se.pos(), origin)}, nil
	}
	enc, err := msgpack.Marshal(se)
	if err != nil {
		return result{}, err
	}
	rec := walRec{T: recEvent, Ev: enc}
	if err := l.apply(txn, &rec, se); err != nil {
		return result{}, err
	}
	wb.Recs = append(wb.Recs, rec)
	return result{created: true}, nil
}

// apply writes one resolved record into txn. It is deterministic given the
// state in txn, so replay reproduces the committed effects; se is the
// decoded event of a recEvent when the caller has it.
func (l *Ledger) apply(txn *badger.Txn, rec *walRec, se *storedEvent) error {
	switch rec.T {
	case recEvent:
		if se == nil {
			var err error
			if se, err = decodeStored(rec.Ev); err != nil {
				return err
			}
		}
		return l.applyEvent(txn, rec.Ev, se)
	case recCopy:
		return txn.Set(journalKey(storeline.StoreID(rec.Origin), Position{rec.Epoch, rec.Seq}), rec.ID[:])
	case recMaster:
		return l.applyMaster(txn, rec)
	case recMeta:
		return txn.Set(metaKey(rec.Key), rec.Val)
	}
	return fmt.Errorf("ledger: unknown WAL record type %d", rec.T)
}

func (l *Ledger) applyEvent(txn *badger.Txn, enc []byte, se *storedEvent) error {
	origin := storeline.StoreID(se.Origin)
	id := storeline.EventID(se.ID)
	pos := se.pos()
	if origin == l.o.Origin && se.Epoch == l.st.epoch {
		if se.Seq != l.st.seq+1 {
			panic(fmt.Sprintf("ledger: own seq %d after %d in epoch %d: a gap or a repeat", se.Seq, l.st.seq, se.Epoch))
		}
		l.st.seq = se.Seq
	}
	l.st.hlc = max(l.st.hlc, se.HLC)
	if err := txn.Set(eventKey(origin, id), enc); err != nil {
		return err
	}
	if err := txn.Set(journalKey(origin, pos), id[:]); err != nil {
		return err
	}
	if origin == l.o.Origin && se.Date != "" {
		if err := txn.Set(dateKey(storeline.Date(se.Date), pos), id[:]); err != nil {
			return err
		}
	}
	if origin == l.o.Origin {
		if err := foldShift(txn, se); err != nil {
			return err
		}
	}
	if storeline.EventKind(se.Kind) == storeline.KindReturn {
		var ret storeline.Return
		if err := msgpack.Unmarshal(se.Body, &ret); err == nil && ret.Original != nil {
			if err := txn.Set(returnKey(*ret.Original, origin, id), nil); err != nil {
				return err
			}
		}
	}
	for _, p := range se.Postings {
		k := balanceKey(p.Account, storeline.Asset(p.Asset))
		cur, err := getDecimal(txn, k)
		if err != nil {
			return err
		}
		b, err := cur.Add(p.Amount).MarshalBinary()
		if err != nil {
			return err
		}
		if err := txn.Set(k, b); err != nil {
			return err
		}
	}
	return nil
}

// getValue returns a copy of the value at k, or nil if there is none.
func getValue(txn *badger.Txn, k []byte) ([]byte, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := it.ValueCopy(nil)
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, err
}

func getStored(txn *badger.Txn, origin storeline.StoreID, id [16]byte) (*storedEvent, error) {
	v, err := getValue(txn, eventKey(origin, id))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeStored(v)
}

func getDecimal(txn *badger.Txn, k []byte) (decimal.Decimal, error) {
	v, err := getValue(txn, k)
	if err != nil || v == nil {
		return decimal.Zero, err
	}
	var d decimal.Decimal
	if err := d.UnmarshalBinary(v); err != nil {
		return d, fmt.Errorf("ledger: balance %q: %w", k, err)
	}
	return d, nil
}

// checkpointLoop syncs Badger every CheckpointBytes of WAL and drops the
// segments that an earlier sync covers (invariant 10).
func (l *Ledger) checkpointLoop() {
	defer close(l.ckDone)
	var prev uint64 // LSN covered by the previous checkpoint's sync
	for {
		select {
		case <-l.quit:
			return
		case <-l.ckpt:
		}
		prev = l.checkpoint(prev)
	}
}

// checkpoint syncs Badger, drops the segments covered by the previous
// checkpoint's sync (prev) and returns the LSN this sync covers.
func (l *Ledger) checkpoint(prev uint64) uint64 {
	lsn := l.appliedLSN.Load()
	if err := l.db.Sync(); err != nil {
		l.log.Error("ledger: checkpoint sync failed", "err", err)
		return prev
	}
	n, err := l.wal.dropThrough(prev)
	if err != nil {
		l.log.Error("ledger: dropping WAL segments failed", "err", err)
	}
	l.log.Debug("ledger: checkpoint", "lsn", lsn, "dropped_through", prev, "segments_dropped", n)
	return lsn
}

// observeClock raises the clock to the persisted high-water mark.
func observeClock(c *crdt.Clock, hlc uint64) { c.Observe(crdt.Timestamp(hlc)) }

package ledger

// The commit pipeline: one committer (the holder of the commit token: a
// goroutine of its own, or a caller that found nobody committing) in
// front of a preallocated, group-committed WAL, in front of Badger
// (SyncWrites off), and one applier goroutine behind it. The committer
// drains what is queued (under load, waiting briefly for more: invariant
// 14), resolves each request against Badger in one transaction (which
// sees its own writes, so later requests of a batch see earlier ones),
// writes the batch as one WAL frame and fdatasyncs it. Batches of events
// only (Append, ApplyRemote: the hot path) are answered right there, once
// the frame is durable; the Badger commit and the publish of their
// positions follow, out of the callers' latency, and every read waits
// until they have caught up with what was answered (invariant 2). They
// are pipelined: while the applier commits batch N to Badger, the
// committer resolves batch N+1 and syncs its frame, reading the keys of
// batches not yet applied from an overlay (invariant 11). Neither waits
// for the other: the committer opens the next batch's transaction
// without waiting for the commit in flight (versions.go) and queues the
// batch for the applier without waiting for it to take it (up to
// applierQueue batches), which at one writer keeps the applier's late
// wakeups out of the next receipt's path. When the
// committer goroutine finds the applier idle and nothing queued, it
// applies the batch itself, after answering: there is nothing to
// overlap, and the handoff would only cost a wakeup.
// Other batches (master data, meta, pulled pages) wait for the applier to
// drain and are committed by the committer itself, as the code that
// resolves them reads Badger only.
//
// Invariants:
//
//  1. One goroutine at a time writes: the holder of the commit token
//     (Ledger.tok, capacity 1), the committer. That is the committer
//     goroutine, or a caller that found the token free and commits its
//     own request with whatever is queued (one writer: no handoff either
//     way). The holder alone assigns LSNs, own sequence numbers, HLC
//     times and master versions, writes the WAL and builds each batch's
//     Badger transaction; it commits the transaction itself or hands it
//     to the applier, which commits in LSN order (invariant 12); a caller
//     holding the token always hands its batches of events on. Taking
//     and returning the token orders the holders' accesses to the
//     committer's state. Open's replay runs before any of them starts;
//     Close's committer keeps the token once it stops.
//  2. No request is answered before the WAL frame of its batch is written
//     and synced (Seams.Sync returned nil). A batch of events (pipelined)
//     is answered right then, before its Badger apply: it is durable, and
//     replay applies it after a crash (invariants 3, 4). Before answering,
//     the committer raises ackedLSN to the batch's LSN, and every read of
//     the ledger (events, journal, balances, shift totals, dates, returns,
//     meta, epochs, Position, Backup) first waits in caughtUp until the
//     applied and published LSN reaches ackedLSN, so a read never misses
//     a write answered before it began. Reads of master data do not wait:
//     the batches answered before their apply hold events only, which
//     write no master data (viewMaster). Other batches
//     (master data, meta, pulled pages) are answered after their apply.
//     Answers that need no write (a duplicate, an error) rest only on
//     synced frames, which were answered (so reads wait for them) or
//     applied: they are answered at once.
//  3. LSNs are dense: the batch after LSN n is LSN n+1. Badger stores the
//     applied LSN in the same transaction as the batch's effects, so a batch
//     is applied exactly once: at commit, or at replay, never both.
//  4. A WAL frame holds resolved records (sequence numbers, HLC times,
//     postings, versions): replay applies them without the clock and
//     without deriving postings, and reproduces the committed state exactly.
//  5. A failed WAL write, sync or Badger apply poisons the ledger: the
//     batch's waiters (unless answered at sync, invariant 2) and every
//     later caller get Unavailable (InsufficientStorage for a full disk),
//     nothing of a batch whose write or sync failed is ever acknowledged
//     by this Ledger, and a sync is never retried (after a failed fsync
//     the data's fate is unknown: PostgreSQL's fsync lesson). A failed
//     apply of a batch already answered loses nothing: its frame is
//     synced, and reads that would need it fail instead of going stale.
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
// 11. A pipelined batch reads every key through its batch view: first the
//     batch's own writes, then the overlay (the latest value of each key
//     written by a batch whose frame is synced but whose Badger commit had
//     not returned when the batch's transaction was opened), then the
//     transaction's snapshot. The overlay drops a batch's keys only for a
//     transaction opened after that batch's commit returned, whose
//     snapshot therefore holds them; a batch's writes enter the overlay
//     only once its frame is synced, so a refused batch leaves none. The
//     balances a batch changes are summed in the view and written once
//     per key at the end of the batch (replay adds the same postings one
//     by one, to the same sums).
// 12. The applier commits batches in LSN order (one FIFO channel of
//     applierQueue jobs, one goroutine), so published positions and the
//     applied LSN only grow, and caughtUp's wait for one LSN covers every
//     earlier batch. Batches answered after their apply (not pipelined)
//     are applied only once the applier has drained, so their answers
//     follow every earlier apply.
// 13. The committer keeps the decoded balances and shift totals that
//     pipelined batches wrote (hotKeys), and a pipelined batch reads those
//     keys there first: a batch's values enter it only once its frame is
//     synced (so a refused batch leaves none), a batch folds a copy of the
//     shift totals it found there, and every batch that is not pipelined
//     (whose resolve writes past the batch view) empties it first. Every
//     write of a balance or shift total is made by the committer, so
//     what it holds is what Badger holds or will hold once the batches
//     handed to the applier are applied.
// 14. Group-commit wait: a batch of events smaller than the last one
//     waits for the queue to fill it up to that size, for no longer than
//     the last WAL sync took and at most Options.GroupCommitWait, then
//     goes as it is. One writer never waits (its batches are all of one),
//     a batch of anything but events never waits, and the wait only adds
//     requests to the batch, so every other invariant holds as before. It
//     trades at most one sync's time of latency for fewer syncs: writers
//     answered at one sync are still building their next request when
//     the committer is free again, and syncing them together keeps the
//     cores busy rather than idle during a sync of a few. A request the
//     committer goroutine takes off the queue while another goroutine
//     holds the token goes to that holder (handoff) as soon as it looks
//     for more, rather than waiting for the token: the committer
//     goroutine, parked on the queue first, receives before a waiting
//     holder does, and two writers made batches of one each waiting out
//     the wait.

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
	reqPrune  // PruneJournal (retention.go)
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
	pull    *pullReq  // reqPulled
	prune   *pruneReq // reqPrune
	size    int       // estimated record bytes, for MaxBatchBytes
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
	case <-l.tok:
		// Nobody is committing: commit r here, with whatever is queued,
		// and save the two goroutine handoffs (invariant 1).
		l.commitWith(r, true)
		l.tok <- struct{}{}
		return <-r.done
	default:
	}
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

// commitLoop is the committer goroutine: it commits what callers queue
// while another goroutine holds the commit token, and stops the pipeline
// on Close.
func (l *Ledger) commitLoop() {
	defer func() {
		if l.next != nil {
			l.ver.end(l.next)
			l.next = nil
		}
		close(l.applyCh)
		<-l.applierDone
		close(l.done)
	}()
	for {
		select {
		case r := <-l.reqs:
			// Parked on the queue first, this goroutine takes a request
			// before a holder waiting for its batch to fill does: hand it
			// to that holder rather than sit on it until the wait runs out
			// (invariant 14). Two tills alone made batches of one that way,
			// at half the rate of one till.
			select {
			case <-l.tok:
				l.commitWith(r, false)
				l.tok <- struct{}{}
			case l.handoff <- r:
			}
		case <-l.quit:
			// Wait out a caller committing on its own and keep the token,
			// so nobody commits after this; answer what is queued.
			<-l.tok
			for {
				select {
				case r := <-l.reqs:
					l.commitWith(r, false)
				default:
					l.commitWith(nil, false)
					return
				}
			}
		}
	}
}

// commitWith commits, as the holder of the commit token, the carried
// request, then first (if not nil), then what is queued, in as many
// batches as the bounds need (invariant 9), and returns with nothing
// carried. inCaller is set when the holder is the caller of first (no
// handoff at one writer): it leaves the Badger apply of its batches to
// the applier, out of its own latency.
func (l *Ledger) commitWith(first *request, inCaller bool) {
	for first != nil || l.carry != nil {
		// A fresh slice per batch: the applier may still be answering the
		// previous batch when a batch is refused or poisons the ledger
		// without passing through it, so a reused buffer would be
		// overwritten under it.
		batch := make([]*request, 0, 16)
		size := 0
		add := func(r *request) bool {
			if len(batch) > 0 && (len(batch) >= l.o.MaxBatchEvents || size+r.size > l.o.MaxBatchBytes) {
				return false
			}
			batch = append(batch, r)
			size += r.size
			return true
		}
		if l.carry != nil {
			add(l.carry)
			l.carry = nil
		}
		if first != nil {
			if !add(first) {
				l.carry = first
			}
			first = nil
		}
	fill:
		for l.carry == nil && len(batch) < l.o.MaxBatchEvents {
			select {
			case r := <-l.reqs:
				if !add(r) {
					l.carry = r
				}
			case r := <-l.handoff:
				if !add(r) {
					l.carry = r
				}
			default:
				break fill
			}
		}
		if l.carry == nil && len(batch) < min(l.lastBatch, l.o.MaxBatchEvents) && pipelined(batch) {
			l.waitForBatch(&batch, add)
		}
		if pipelined(batch) {
			l.lastBatch = len(batch)
		}
		l.inCaller = inCaller
		for todo := [][]*request{batch}; len(todo) > 0; {
			next := l.commit(todo[0])
			todo = append(next, todo[1:]...)
		}
	}
}

// waitForBatch adds what the queue brings to *batch until it is as large
// as the last batch of events, or for as long as the last WAL sync took,
// at most GroupCommitWait (invariant 14).
func (l *Ledger) waitForBatch(batch *[]*request, add func(*request) bool) {
	wait := min(l.lastSync, l.o.GroupCommitWait)
	if wait <= 0 {
		return
	}
	if l.linger == nil {
		l.linger = time.NewTimer(wait)
	} else {
		l.linger.Reset(wait)
	}
	defer l.linger.Stop()
	l.waits.Add(1)
	l.met.waited()
	for l.carry == nil && len(*batch) < l.lastBatch {
		select {
		case r := <-l.reqs:
			if !add(r) {
				l.carry = r
			}
		case r := <-l.handoff:
			if !add(r) {
				l.carry = r
			}
		case <-l.linger.C:
			return
		}
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
	l.wakeReaders()
	l.met.setPoisoned()
	l.log.Error("ledger poisoned; reopen it", "stage", stage, "err", err)
	answerAll(batch, storeline.E("ledger.commit", ioKind(err), err))
}

func (l *Ledger) poisoned() error {
	if p := l.poison.Load(); p != nil {
		return storeline.E("ledger.commit", storeline.Unavailable, fmt.Errorf("ledger poisoned, reopen it: %w", *p))
	}
	return nil
}

// applyJob is one batch handed from the committer to the applier. txn is
// nil for a batch that wrote nothing (its answers still wait for the
// batches before it).
type applyJob struct {
	txn    *badger.Txn
	batch  []*request
	res    []result
	st     commitState // the committer's counters after the batch
	frame  int
	events int
	start  time.Time
	ckpt   bool // request a checkpoint once applied
	// answered is set when the waiters were answered once the frame was
	// synced (a pipelined batch); the applier only applies it.
	answered bool
	// barrier, if not nil, is closed when every earlier job is done.
	barrier chan struct{}
}

// pipelined reports whether every request of batch is an event (Append or
// ApplyRemote), whose resolve reads through the batch view.
func pipelined(batch []*request) bool {
	for _, r := range batch {
		if r.kind != reqAppend && r.kind != reqRemote {
			return false
		}
	}
	return true
}

// commit makes one batch durable and hands it to the applier, or, for a
// batch that is not pipelined, waits for the applier to drain and applies
// it here. It returns the batches still to commit, in order: a batch that
// is not pipelined and writes more than one Badger transaction takes
// (ErrTxnTooBig: a pulled page or a PutMaster that passed its size
// estimate) is split before the request that overflowed it, and that
// request, alone in a batch, is refused whole (TooLarge) and nothing of it
// written, rather than poisoning the ledger.
func (l *Ledger) commit(batch []*request) (again [][]*request) {
	start := time.Now()
	l.installOwnIDs() // dedup.go
	if err := l.poisoned(); err != nil {
		answerAll(batch, err)
		return nil
	}
	pipe := pipelined(batch)
	var txn *badger.Txn
	if pipe && l.next != nil {
		txn = l.next
		l.ov.prune(l.nextApplied)
	} else {
		if l.next != nil {
			l.ver.end(l.next)
		}
		if l.inApplier.Load() > 0 {
			l.drainApplier()
		}
		l.ov.reset()
		txn = l.ver.begin(true)
	}
	l.next = nil
	if !pipe {
		// Its resolve writes balances and shift totals past the views.
		l.hot.reset()
	}
	// The batch's writes and balance sums reuse the previous batch's maps
	// and slice: the overlay and promote copied what they needed out of
	// them. A map grown past maxHotKeys is dropped, not cleared batch
	// after batch.
	if len(l.balIdx) > maxHotKeys || len(l.bvWrites) > maxHotKeys {
		l.balIdx, l.bvWrites = nil, nil
	}
	clear(l.balIdx)
	clear(l.bvWrites)
	bv := &batchView{txn: txn, ov: &l.ov, on: pipe, hot: &l.hot, writes: l.bvWrites, bal: l.balIdx, bals: l.balBuf[:0]}
	defer func() {
		if txn != nil {
			l.ver.end(txn)
		}
		l.bvWrites, bv.writes = bv.writes, nil
		l.balIdx = bv.bal
		clear(bv.bals) // drop the decimals they hold
		l.balBuf = bv.bals[:0]
	}()
	saved := l.st
	res := make([]result, len(batch))
	var wb walBatch
	events := 0
	for i, r := range batch {
		var err error
		if pipe {
			res[i], err = l.resolveEvent(bv, r, &wb)
		} else {
			res[i], err = l.resolve(txn, r, &wb)
		}
		if err != nil {
			l.st = saved
			if !pipe && errors.Is(err, badger.ErrTxnTooBig) {
				return l.splitTooBig(batch, i)
			}
			l.poisonWith(batch, "resolve", err)
			return nil
		}
		if res[i].created && (r.kind == reqAppend || r.kind == reqRemote) {
			events++
		}
	}
	if err := bv.flush(); err != nil {
		l.st = saved
		l.poisonWith(batch, "resolve", err)
		return
	}
	if len(wb.Recs) == 0 {
		// Nothing to write: what the answers rest on is durable and
		// already answered, so readers wait for it (invariant 2).
		answer(batch, res)
		return
	}
	lsn := l.st.lsn + 1
	l.st.hlc = max(l.st.hlc, uint64(l.o.Clock.Last()))
	wb.HLC = l.st.hlc
	// The counters go into the transaction before the frame is written:
	// a transaction they would overflow is refused like any other
	// (splitTooBig), never found too big once the frame is synced, when
	// replay would find it too big again at every Open.
	l.st.lsn = lsn
	if err := l.putState(txn); err != nil {
		l.st = saved
		if !pipe && errors.Is(err, badger.ErrTxnTooBig) {
			return l.splitTooBig(batch, len(batch)-1)
		}
		l.poisonWith(batch, "resolve", err)
		return nil
	}
	frame, err := l.codec.frame(lsn, &wb)
	if err != nil {
		l.st = saved
		l.poisonWith(batch, "encode", err)
		return
	}
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
	l.lastSync = time.Since(syncStart)
	l.met.syncDone(l.lastSync)
	if err != nil {
		l.poisonWith(batch, "wal sync", err)
		return
	}
	l.met.fsync(len(frame), events)
	if pipe {
		l.hot.promote(bv) // the frame is durable (invariant 13)
	}
	l.st.sinceCkpt += int64(len(frame))
	ckpt := l.st.sinceCkpt >= l.o.CheckpointBytes
	if ckpt {
		l.st.sinceCkpt = 0
	}
	job := applyJob{txn: txn, batch: batch, res: res, st: l.st, frame: len(frame), events: events, start: start, ckpt: ckpt}
	txn = nil // the job owns it now
	if pipe {
		// The frame is durable: answer now and apply behind the answer
		// (invariant 2). Readers wait for this LSN to be applied.
		l.ackedLSN.Store(lsn)
		answer(batch, res)
		l.met.commit(time.Since(start))
		job.answered = true
	}
	if !pipe || !l.inCaller && l.inApplier.Load() == 0 && len(l.reqs) == 0 {
		// Nothing to overlap with (the applier is idle and no request
		// waits) and no caller waits for this goroutine: apply here and
		// save the handoff.
		l.applyJob(job)
		return
	}
	// The frame is durable: its writes join the overlay (invariant 11).
	// The next batch's transaction is opened before this one is handed
	// on, so its snapshot may lack this batch, which the overlay holds.
	l.ov.merge(bv.writes, lsn)
	l.nextApplied = l.appliedLSN.Load()
	l.next = l.ver.begin(true)
	l.inApplier.Add(1)
	l.applyCh <- job
	return nil
}

// splitTooBig handles a batch (not pipelined) whose Badger transaction
// overflowed at request i; the caller restored the counters and discards
// the transaction, so nothing of the batch is written. The requests
// before i go again as a batch of their own (they fitted), then the rest;
// request i alone in its batch is refused whole.
func (l *Ledger) splitTooBig(batch []*request, i int) [][]*request {
	if i > 0 {
		return [][]*request{batch[:i:i], batch[i:]}
	}
	r := batch[0]
	r.done <- result{err: storeline.Errorf(storeline.TooLarge, "ledger.commit",
		"%s writes more than one Badger transaction takes (MemTableBytes): send fewer records", kindName(r.kind))}
	if len(batch) > 1 {
		return [][]*request{batch[1:]}
	}
	return nil
}

func kindName(k reqKind) string {
	switch k {
	case reqPulled:
		return "the pulled page"
	case reqMaster:
		return "the master-data change"
	}
	return "the request"
}

// drainApplier returns when the applier has finished every job handed to
// it.
func (l *Ledger) drainApplier() {
	b := make(chan struct{})
	l.applyCh <- applyJob{barrier: b}
	<-b
}

// applierLoop is the applier: it commits the committer's batches to
// Badger in order and publishes them (invariant 12).
func (l *Ledger) applierLoop() {
	defer close(l.applierDone)
	for job := range l.applyCh {
		if job.barrier != nil {
			close(job.barrier)
			continue
		}
		l.applyJob(job)
		l.inApplier.Add(-1)
	}
}

// applyJob commits one synced batch to Badger, publishes it and answers
// its waiters unless they were answered at the sync. A failure poisons
// the ledger (invariant 5): the batch was synced, so a reopen replays it;
// one not yet answered is never acknowledged here.
func (l *Ledger) applyJob(job applyJob) {
	if job.txn == nil {
		answer(job.batch, job.res)
		return
	}
	defer l.ver.end(job.txn)
	if err := l.poisoned(); err != nil {
		if !job.answered {
			answerAll(job.batch, err)
		}
		return
	}
	fail := func(err error) {
		// Badger may have written part of the batch, and a write error
		// may have cost pages the kernel reports only once: the next Open
		// reads back (vlog.go, invariant 2).
		if merr := l.distrustBadger(); merr != nil {
			err = errors.Join(err, fmt.Errorf("read-back marker: %w", merr))
		}
		if job.answered {
			// Durable and answered: a reopen replays it from the WAL.
			l.poisonWith(nil, "apply", err)
			return
		}
		l.poisonWith(job.batch, "apply", err)
	}
	if err := l.seams.Apply(job.st.lsn); err != nil {
		fail(err)
		return
	}
	if err := l.ver.commit(job.txn); err != nil {
		fail(err)
		return
	}
	l.publishState(&job.st)
	l.seams.Publish(job.st.lsn, len(job.batch))
	if !job.answered {
		answer(job.batch, job.res)
		l.met.commit(time.Since(job.start))
	}
	if job.ckpt {
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

// publish makes the committed counters visible to readers (Open).
func (l *Ledger) publish() { l.publishState(&l.st) }

// publishState makes the counters of an applied batch visible to readers.
func (l *Ledger) publishState(st *commitState) {
	l.pos.Store(&Position{st.epoch, st.seq})
	l.masterVersion.Store(st.mver)
	l.appliedLSN.Store(st.lsn)
	l.wakeReaders()
}

// caughtUp returns once every answered batch is applied to Badger and
// published, so a read sees every write answered before it started
// (invariant 2). It costs two atomic loads when the applier has caught
// up. A poisoned ledger that will never apply an answered batch makes
// the read Unavailable instead of stale: a reopen replays the batch.
func (l *Ledger) caughtUp() error {
	want := l.ackedLSN.Load()
	for l.appliedLSN.Load() < want {
		l.appliedMu.Lock()
		if l.appliedLSN.Load() >= want {
			l.appliedMu.Unlock()
			break
		}
		if err := l.poisoned(); err != nil {
			l.appliedMu.Unlock()
			return err
		}
		if l.appliedWake == nil {
			l.appliedWake = make(chan struct{})
		}
		ch := l.appliedWake
		l.appliedMu.Unlock()
		<-ch
	}
	return nil
}

// wakeReaders wakes the reads waiting in caughtUp, after the applied LSN
// or the poison changed.
func (l *Ledger) wakeReaders() {
	l.appliedMu.Lock()
	if l.appliedWake != nil {
		close(l.appliedWake)
		l.appliedWake = nil
	}
	l.appliedMu.Unlock()
}

// view runs fn in a read-only Badger transaction that sees every answered
// write.
func (l *Ledger) view(fn func(txn *badger.Txn) error) error {
	if err := l.caughtUp(); err != nil {
		return err
	}
	return l.ver.view(fn)
}

// resolve decides one request against the state in txn, appends its
// records to wb and applies them to txn. A returned error is fatal to the
// batch (Badger failed); a business error is in the result.
func (l *Ledger) resolve(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	switch r.kind {
	case reqAppend, reqRemote:
		return l.resolveEvent(plainTxn{txn}, r, wb)
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
	case reqPrune:
		return l.resolvePrune(txn, r, wb)
	}
	panic(fmt.Sprintf("ledger: request kind %d", r.kind))
}

// resolveEvent resolves an Append or ApplyRemote, reading and writing
// through rw (a batch view when the batch is pipelined).
func (l *Ledger) resolveEvent(rw kvRW, r *request, wb *walBatch) (result, error) {
	if r.kind == reqAppend {
		return l.resolveAppend(rw, r, wb)
	}
	return l.resolveRemoteRW(rw, r, wb)
}

func (l *Ledger) resolveAppend(txn kvRW, r *request, wb *walBatch) (result, error) {
	const op = "ledger.Append"
	se := r.se
	var old *storedEvent
	if l.ownIDs == nil || l.ownIDs.mayHave(se.ID) {
		var err error
		if old, err = getStoredRW(txn, l.o.Origin, se.ID); err != nil {
			return result{}, err
		}
	}
	if old != nil && old.Pruned && !canarySkipDedup {
		// Its body is gone, so a retry cannot be told from another use
		// of the ID; either way it must not count twice (retention.go).
		return result{err: storeline.E(op, storeline.Conflict, fmt.Errorf("event %s at %s: %w",
			storeline.EventID(se.ID), old.pos(), ErrPruned))}, nil
	}
	if old != nil && !canarySkipDedup {
		if old.Kind != se.Kind || !sameBody(se.Kind, old.Body, se.Body) {
			return result{err: storeline.Errorf(storeline.Conflict, op,
				"event %s exists with another body", storeline.EventID(se.ID))}, nil
		}
		ev, err := fromStored(old)
		if err != nil {
			return result{}, err
		}
		return result{ev: ev}, nil
	}
	if storeline.EventKind(se.Kind) == storeline.KindShiftClose {
		refusal, err := checkCloseOnce(txn, se)
		if err != nil {
			return result{}, err
		}
		if refusal != nil {
			return result{err: refusal}, nil
		}
	}
	se.Epoch, se.Seq = l.st.epoch, l.st.seq+1
	se.HLC = uint64(l.o.Clock.Now())
	enc, err := l.codec.event(se)
	if err != nil {
		return result{}, err
	}
	rec := walRec{T: recEvent, Ev: enc}
	if err := l.applyRW(txn, &rec, se); err != nil {
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

// resolveRemote resolves an ApplyRemote (or a pulled event) in txn.
func (l *Ledger) resolveRemote(txn *badger.Txn, r *request, wb *walBatch) (result, error) {
	return l.resolveRemoteRW(plainTxn{txn}, r, wb)
}

func (l *Ledger) resolveRemoteRW(txn kvRW, r *request, wb *walBatch) (result, error) {
	const op = "ledger.ApplyRemote"
	se := r.se
	origin := storeline.StoreID(se.Origin)
	// Deduplication comes first: the node's own event coming back at its
	// own position is known. Any other own event of the current epoch (or
	// a later one) would take a position only Append assigns.
	ownNow := func() result {
		return result{err: storeline.Errorf(storeline.Invalid, op,
			"own event %s at epoch %d: only older epochs than the current %d arrive from elsewhere",
			storeline.EventID(se.ID), se.Epoch, l.st.epoch)}
	}
	own := origin == l.o.Origin && se.Epoch >= l.st.epoch
	holder, err := txn.get(journalKey(origin, se.pos()))
	if err != nil {
		return result{}, err
	}
	old, err := getStoredRW(txn, origin, se.ID)
	if err != nil {
		return result{}, err
	}
	if old != nil && old.Pruned {
		// Known, pruned (retention.go): no effect, and no second copy
		// recorded in a journal that could no longer serve it.
		if old.Kind != se.Kind {
			return result{err: storeline.Errorf(storeline.Conflict, op,
				"event %s of %s exists (pruned) with another kind", storeline.EventID(se.ID), origin)}, nil
		}
		if own && old.pos() != se.pos() {
			return ownNow(), nil
		}
		return result{}, nil
	}
	if old != nil {
		if old.Kind != se.Kind || !sameBody(se.Kind, old.Body, se.Body) || !samePostings(old.Postings, se.Postings) {
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
		if own {
			return ownNow(), nil
		}
		// A second copy at a new position: it keeps its place in the
		// stream and has no effect.
		rec := walRec{T: recCopy, Origin: se.Origin, ID: se.ID, Epoch: se.Epoch, Seq: se.Seq}
		if err := l.applyRW(txn, &rec, nil); err != nil {
			return result{}, err
		}
		wb.Recs = append(wb.Recs, rec)
		return result{}, nil
	}
	if own {
		return ownNow(), nil
	}
	if holder != nil {
		return result{err: storeline.Errorf(storeline.Conflict, op,
			"position %s of %s holds another event", se.pos(), origin)}, nil
	}
	enc, err := l.codec.event(se)
	if err != nil {
		return result{}, err
	}
	rec := walRec{T: recEvent, Ev: enc}
	if err := l.applyRW(txn, &rec, se); err != nil {
		return result{}, err
	}
	wb.Recs = append(wb.Recs, rec)
	l.observeRemote(se)
	return result{created: true}, nil
}

// observeRemote merges the HLC time of an event received from elsewhere
// into the clock, as on receipt of a message, so the node's next own
// events order after it: a shop whose wall clock is behind head office's
// would otherwise stamp an edit made after seeing head office's earlier
// than it. A time too far ahead of the wall clock is not adopted
// (crdt.Clock.Update). The clock's decision reaches the stored state
// through the batch's HLC (commit), which replay restores: applyEvent
// does not raise the stored mark by remote times itself.
func (l *Ledger) observeRemote(se *storedEvent) {
	if se.HLC == 0 {
		return
	}
	if _, err := l.o.Clock.Update(crdt.Timestamp(se.HLC)); err != nil {
		l.log.Debug("ledger: remote HLC time not adopted", "origin", se.Origin, "id", storeline.EventID(se.ID), "err", err)
	}
}

// apply writes one resolved record into txn. It is deterministic given the
// state in txn, so replay reproduces the committed effects; se is the
// decoded event of a recEvent when the caller has it.
func (l *Ledger) apply(txn *badger.Txn, rec *walRec, se *storedEvent) error {
	switch rec.T {
	case recMaster:
		return l.applyMaster(txn, rec)
	case recMeta:
		return txn.Set(metaKey(rec.Key), rec.Val)
	case recMetaDel:
		return txn.Delete(metaKey(rec.Key))
	case recPrune:
		return l.applyPrune(txn, rec)
	}
	return l.applyRW(plainTxn{txn}, rec, se)
}

// applyRW writes an event record (recEvent, recCopy) through rw.
func (l *Ledger) applyRW(rw kvRW, rec *walRec, se *storedEvent) error {
	switch rec.T {
	case recEvent:
		if se == nil {
			var err error
			if se, err = decodeStored(rec.Ev); err != nil {
				return err
			}
		}
		return l.applyEvent(rw, rec.Ev, se)
	case recCopy:
		return rw.set(journalKey(storeline.StoreID(rec.Origin), Position{rec.Epoch, rec.Seq}), rec.ID[:])
	}
	return fmt.Errorf("ledger: unknown WAL record type %d", rec.T)
}

func (l *Ledger) applyEvent(txn kvRW, enc []byte, se *storedEvent) error {
	origin := storeline.StoreID(se.Origin)
	id := storeline.EventID(se.ID)
	pos := se.pos()
	if origin == l.o.Origin && se.Epoch == l.st.epoch {
		if se.Seq != l.st.seq+1 {
			panic(fmt.Sprintf("ledger: own seq %d after %d in epoch %d: a gap or a repeat", se.Seq, l.st.seq, se.Epoch))
		}
		l.st.seq = se.Seq
		// Only own times raise the stored mark here: a remote one went
		// through the clock's skew guard (observeRemote), and the
		// batch's HLC carries what the clock took.
		l.st.hlc = max(l.st.hlc, se.HLC)
	}
	if origin == l.o.Origin {
		l.noteOwnID(id) // before the key exists anywhere (dedup.go invariant 1)
	}
	if err := txn.set(eventKey(origin, id), enc); err != nil {
		return err
	}
	if err := txn.set(journalKey(origin, pos), id[:]); err != nil {
		return err
	}
	if origin == l.o.Origin && se.Date != "" {
		if err := txn.set(dateKey(storeline.Date(se.Date), pos), id[:]); err != nil {
			return err
		}
	}
	if origin == l.o.Origin {
		if err := foldShift(txn, se); err != nil {
			return err
		}
	}
	if storeline.EventKind(se.Kind) == storeline.KindReturn {
		ret, ok := se.body.(*storeline.Return)
		if !ok {
			ret = new(storeline.Return)
			if err := msgpack.Unmarshal(se.Body, ret); err != nil {
				ret = nil
			}
		}
		if ret != nil && ret.Original != nil {
			if err := txn.set(returnKey(*ret.Original, origin, id), nil); err != nil {
				return err
			}
		}
	}
	for _, p := range se.Postings {
		// One key buffer for all: addBalance keeps no reference to k.
		l.balKey = appendBalanceKey(l.balKey[:0], p.Account, storeline.Asset(p.Asset))
		if err := txn.addBalance(l.balKey, p.Amount); err != nil {
			return err
		}
	}
	return nil
}

// addBalanceTxn adds amt to the balance at k in txn.
func addBalanceTxn(txn kvRW, k []byte, amt decimal.Decimal) error {
	cur, err := getDecimal(txn, k)
	if err != nil {
		return err
	}
	b, err := cur.Add(amt).MarshalBinary()
	if err != nil {
		return err
	}
	return txn.set(bytes.Clone(k), b) // the caller reuses k; Badger keeps it
}

// kvRW reads and writes Badger keys for the event apply path: a plain
// transaction, or a pipelined batch's view (invariant 11).
type kvRW interface {
	// get returns the value at k (a copy, or a value nobody changes), or
	// nil if there is none.
	get(k []byte) ([]byte, error)
	set(k, v []byte) error
	// addBalance adds amt to the balance at k (a balanceKey). It keeps
	// no reference to k, which the caller reuses.
	addBalance(k []byte, amt decimal.Decimal) error
	// shiftTotals returns the totals of a shift for reading or folding;
	// putShiftTotals stores what was folded into them.
	shiftTotals(term storeline.TerminalID, shift storeline.ShiftID) (*storeline.ShiftTotals, error)
	putShiftTotals(t *storeline.ShiftTotals) error
}

type plainTxn struct{ txn *badger.Txn }

func (p plainTxn) get(k []byte) ([]byte, error)                   { return getValue(p.txn, k) }
func (p plainTxn) set(k, v []byte) error                          { return p.txn.Set(k, v) }
func (p plainTxn) addBalance(k []byte, amt decimal.Decimal) error { return addBalanceTxn(p, k, amt) }
func (p plainTxn) shiftTotals(term storeline.TerminalID, shift storeline.ShiftID) (*storeline.ShiftTotals, error) {
	return shiftTotalsTxn(p, term, shift)
}
func (p plainTxn) putShiftTotals(t *storeline.ShiftTotals) error { return putShift(p, t) }

// batchView is a batch's view of the keys: its own writes, the overlay of
// batches synced but maybe not in txn's snapshot, then the snapshot. When
// on is false it is the plain transaction.
type batchView struct {
	txn    *badger.Txn
	ov     *overlay
	on     bool
	writes map[string][]byte
	// bals holds the balances the batch changed, decoded, until flush
	// writes each once: the shop's cash, sales and VAT accounts change in
	// nearly every event of a batch. bal indexes it by key, so a posting
	// costs one map lookup; a DecimalSum adds on int64s, where
	// decimal.Add would allocate for every posting, to the same value and
	// exponent.
	bal  map[string]int
	bals []balSum
	// shifts holds the shift totals the batch read or folded, decoded,
	// until flush encodes and writes each changed one once: every receipt
	// of a till's batch folds into the same shift.
	shifts map[string]*batchShift
	// hot holds the decoded balances and shift totals of earlier synced
	// batches (invariant 13).
	hot *hotKeys
}

// hotKeys holds, across batches, the last value of the balances and
// shift totals that synced pipelined batches wrote, decoded: one writer's
// one-event batches would otherwise read and decode them from Badger
// every time. Committer-owned (invariant 13).
type hotKeys struct {
	bal   map[string]storeline.DecimalSum   // copied out, never added to in place
	shift map[string]*storeline.ShiftTotals // never folded in place
}

// maxHotKeys bounds hotKeys; past it, it starts again empty.
const maxHotKeys = 4096

// applierQueue is how many batches the committer may hand on before it
// waits for the applier. One writer's next receipt no longer waits for a
// wakeup of the applier on the other core (BENCHMARKS.md, "Badger in
// managed mode"); the queue's batches are what reads may wait for in
// caughtUp, at most MaxBatchBytes each.
const applierQueue = 4

func (h *hotKeys) reset() {
	clear(h.bal)
	clear(h.shift)
}

// promote records what the synced batch b wrote to balances and shift
// totals.
func (h *hotKeys) promote(b *batchView) {
	if len(h.bal)+len(b.bals) > maxHotKeys || len(h.shift)+len(b.shifts) > maxHotKeys {
		h.reset()
	}
	if h.bal == nil {
		h.bal = make(map[string]storeline.DecimalSum, 64)
		h.shift = make(map[string]*storeline.ShiftTotals, 16)
	}
	for _, e := range b.bals {
		h.bal[e.key] = e.sum
	}
	for k, s := range b.shifts {
		h.shift[k] = s.t // the batch is done with it
	}
}

// cloneShift copies t deep enough that folding the copy leaves t as it
// was (decimals are immutable values).
func cloneShift(t *storeline.ShiftTotals) *storeline.ShiftTotals {
	c := *t
	if t.Opening != nil {
		m := *t.Opening
		c.Opening = &m
	}
	if t.Close != nil {
		m := *t.Close
		c.Close = &m
	}
	c.Tenders = append([]storeline.TenderTotal(nil), t.Tenders...)
	return &c
}

type balSum struct {
	key string
	sum storeline.DecimalSum
}

type batchShift struct {
	t     *storeline.ShiftTotals
	dirty bool
}

func (b *batchView) shiftTotals(term storeline.TerminalID, shift storeline.ShiftID) (*storeline.ShiftTotals, error) {
	if !b.on {
		return shiftTotalsTxn(b, term, shift)
	}
	k := shiftKey(term, shift)
	if s, ok := b.shifts[string(k)]; ok {
		return s.t, nil
	}
	var t *storeline.ShiftTotals
	if h, ok := b.hot.shift[string(k)]; ok {
		t = cloneShift(h)
	} else {
		var err error
		if t, err = shiftTotalsTxn(b, term, shift); err != nil {
			return nil, err
		}
	}
	if b.shifts == nil {
		b.shifts = make(map[string]*batchShift, 8)
	}
	b.shifts[string(k)] = &batchShift{t: t}
	return t, nil
}

func (b *batchView) putShiftTotals(t *storeline.ShiftTotals) error {
	if !b.on {
		return putShift(b, t)
	}
	k := shiftKey(t.Terminal, t.Shift)
	s, ok := b.shifts[string(k)]
	if !ok || s.t != t {
		// Only totals from shiftTotals are folded; anything else is
		// written through.
		return putShift(b, t)
	}
	s.dirty = true
	return nil
}

func (b *batchView) addBalance(k []byte, amt decimal.Decimal) error {
	if !b.on {
		return addBalanceTxn(b, k, amt)
	}
	if i, ok := b.bal[string(k)]; ok {
		b.bals[i].sum.Add(amt)
		return nil
	}
	cur, ok := b.hot.bal[string(k)] // a copy
	if !ok {
		d, err := getDecimal(b, k)
		if err != nil {
			return err
		}
		cur = storeline.SumOf(d)
	}
	cur.Add(amt)
	if b.bal == nil {
		b.bal = make(map[string]int, 64)
	}
	key := string(k)
	b.bal[key] = len(b.bals)
	b.bals = append(b.bals, balSum{key, cur})
	return nil
}

// flush writes the balances the batch changed.
func (b *batchView) flush() error {
	for i := range b.bals {
		e := &b.bals[i]
		if err := b.set([]byte(e.key), e.sum.AppendBinary(make([]byte, 0, 16))); err != nil {
			return err
		}
	}
	for _, s := range b.shifts {
		if !s.dirty {
			continue
		}
		if err := putShift(b, s.t); err != nil {
			return err
		}
	}
	// bal and shifts stay for promote, once the frame is synced.
	return nil
}

func (b *batchView) get(k []byte) ([]byte, error) {
	if b.on {
		if v, ok := b.writes[string(k)]; ok {
			return v, nil
		}
		if v, ok := b.ov.m[string(k)]; ok {
			return v.val, nil
		}
	}
	return getValue(b.txn, k)
}

func (b *batchView) set(k, v []byte) error {
	if err := b.txn.Set(k, v); err != nil {
		return err
	}
	if b.on {
		if v == nil {
			v = []byte{} // present, empty: nil means absent
		}
		if b.writes == nil {
			b.writes = make(map[string][]byte, 64)
		}
		b.writes[string(k)] = v
	}
	return nil
}

// overlay holds the latest value of each key written by synced batches
// whose Badger commit may not be in the next transaction's snapshot.
// Only the committer touches it.
type overlay struct{ m map[string]ovVal }

type ovVal struct {
	val []byte
	lsn uint64
}

func (o *overlay) merge(w map[string][]byte, lsn uint64) {
	if o.m == nil {
		o.m = make(map[string]ovVal, 2*len(w))
	}
	for k, v := range w {
		o.m[k] = ovVal{v, lsn}
	}
}

// prune drops the keys last written by batches at or below applied.
func (o *overlay) prune(applied uint64) {
	for k, v := range o.m {
		if v.lsn <= applied {
			delete(o.m, k)
		}
	}
}

func (o *overlay) reset() { clear(o.m) }

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
	return getStoredRW(plainTxn{txn}, origin, id)
}

func getStoredRW(rw kvRW, origin storeline.StoreID, id [16]byte) (*storedEvent, error) {
	v, err := rw.get(eventKey(origin, id))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeStored(v)
}

func getDecimal(txn kvRW, k []byte) (decimal.Decimal, error) {
	v, err := txn.get(k)
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
	if l.poison.Load() != nil {
		return prev // a sync after a failed one proves nothing (vlog.go, invariant 2)
	}
	lsn := l.appliedLSN.Load()
	if err := l.syncBadger(); err != nil {
		// The kernel may have dropped the pages it failed to write and
		// reports that once: no later sync can be trusted (vlog.go,
		// invariant 2; syncBadger left the read-back marker).
		l.poisonWith(nil, "checkpoint: sync Badger", err)
		return prev
	}
	if err := l.markSynced(lsn); err != nil {
		l.log.Error("ledger: recording the checkpoint failed", "err", err)
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

package ledger

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// versions numbers the ledger's Badger commits and picks each read's
// snapshot: the ledger runs Badger in managed mode. Badger's own oracle
// makes a write transaction's start wait for every commit in flight, so
// the committer's next batch waited for the applier's commit of the last
// one, and at one writer the applier often runs late: it is a wakeup of
// the other core, which this VM takes 90 µs to deliver (BENCHMARKS.md,
// "Badger in managed mode"). The oracle also marks every transaction's
// start and end on two watermarks, each mark a channel send to a
// goroutine of its own. Here a commit takes its version under a mutex, a
// transaction opens at the last committed version read from an atomic,
// nobody waits and nobody is woken; the committer's overlay covers the
// batches a snapshot lacks (commit.go, invariant 11).
//
// Invariants:
//
//  1. Commits are made one at a time (mu), each at a version above every
//     earlier one; last is raised to it once the commit returned. A
//     transaction opened at last therefore sees every commit that
//     returned before it opened, as Badger's own oracle would give.
//  2. Badger may drop a key's older versions only at or below the discard
//     version (SetDiscardTs), keeping the newest one there. The discard
//     version never passes the snapshot of an open transaction (pinned)
//     nor last, so what a snapshot sees stays readable until it ends.
//  3. Every transaction from begin ends in end, once (Badger's Discard is
//     idempotent, and so is end), so pins do not leak and the discard
//     version keeps moving.
//  4. Badger is closed only after shut, which waits for every view,
//     update and backup in progress; one that starts after shut returns
//     badger.ErrDBClosed. A read racing the ledger's Close (a request the
//     node's drain gave up on) ends in an error, never in an iterator's
//     panic over a closed Badger. A reader counts itself before it
//     looks at closed, and shut sets closed before it looks at the count,
//     so one of the two sees the other; nested reads never wait.
//
// A Replica's Badger is not managed (managed is false): begin, end and
// commit then fall through to Badger's own transactions.
type versions struct {
	db      *badger.DB
	managed bool

	mu   sync.Mutex    // held across a commit (invariant 1)
	next uint64        // the version the next commit takes; under mu
	last atomic.Uint64 // the version of the last commit that returned

	pinMu sync.Mutex
	pins  map[*badger.Txn]uint64 // open transactions' snapshots
	at    map[uint64]int         // how many open transactions read at a version

	// Invariant 4.
	closed   atomic.Bool
	inUse    atomic.Int64
	idleMu   sync.Mutex
	idle     *sync.Cond // signalled when inUse drops to zero once closed
	shutWait func()     // tests: called when shut starts waiting
	// beforeView, if set (tests), is called as a view starts, before its
	// snapshot is taken: a test makes a write land between two reads.
	beforeView func()
}

// newVersions starts numbering after the newest version in db.
func newVersions(db *badger.DB, managed bool) *versions {
	v := &versions{db: db, managed: managed, pins: map[*badger.Txn]uint64{}, at: map[uint64]int{}}
	v.idle = sync.NewCond(&v.idleMu)
	if managed {
		v.reset()
	}
	return v
}

// reset continues after the newest version in db, after something wrote
// past the ledger (a restore's Load).
func (v *versions) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	mv := v.db.MaxVersion()
	v.next = mv + 1
	v.last.Store(mv)
}

// begin opens a transaction that sees every commit that returned before
// it; end must end it.
func (v *versions) begin(update bool) *badger.Txn {
	if !v.managed {
		return v.db.NewTransaction(update)
	}
	v.pinMu.Lock()
	ts := v.last.Load()
	txn := v.db.NewTransactionAt(ts, update)
	v.pins[txn] = ts
	v.at[ts]++
	v.pinMu.Unlock()
	return txn
}

// end discards txn (after its commit, or instead of one) and unpins its
// snapshot.
func (v *versions) end(txn *badger.Txn) {
	txn.Discard()
	if !v.managed {
		return
	}
	v.pinMu.Lock()
	if ts, ok := v.pins[txn]; ok {
		delete(v.pins, txn)
		if v.at[ts]--; v.at[ts] == 0 {
			delete(v.at, ts)
		}
	}
	v.pinMu.Unlock()
}

// commit commits txn at the next version. A failed commit's version is
// not reused.
func (v *versions) commit(txn *badger.Txn) error {
	if !v.managed {
		return txn.Commit()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ts := v.next
	v.next++
	if err := txn.CommitAt(ts, nil); err != nil {
		return err
	}
	v.last.Store(ts)
	v.discard()
	return nil
}

// enter counts a view, update or backup in, unless shut has run
// (invariant 4); leave counts it out.
func (v *versions) enter() error {
	v.inUse.Add(1)
	if v.closed.Load() || v.db.IsClosed() {
		v.leave()
		return badger.ErrDBClosed
	}
	return nil
}

func (v *versions) leave() {
	if v.inUse.Add(-1) == 0 && v.closed.Load() {
		v.idleMu.Lock()
		v.idle.Broadcast()
		v.idleMu.Unlock()
	}
}

// shut refuses new views, updates and backups and waits for those in
// progress, so Badger can be closed under none (invariant 4).
func (v *versions) shut() {
	v.closed.Store(true)
	if v.shutWait != nil && v.inUse.Load() > 0 {
		v.shutWait()
	}
	v.idleMu.Lock()
	defer v.idleMu.Unlock()
	for v.inUse.Load() > 0 {
		v.idle.Wait()
	}
}

// view runs fn in a read-only transaction. After shut it returns
// badger.ErrDBClosed, as Badger's own View does on a closed DB (readers
// answer Unavailable).
func (v *versions) view(fn func(txn *badger.Txn) error) error {
	if err := v.enter(); err != nil {
		return err
	}
	defer v.leave()
	if v.beforeView != nil {
		v.beforeView()
	}
	txn := v.begin(false)
	defer v.end(txn)
	return fn(txn)
}

// update runs fn in a transaction and commits it if fn returns nil.
func (v *versions) update(fn func(txn *badger.Txn) error) error {
	if err := v.enter(); err != nil {
		return err
	}
	defer v.leave()
	txn := v.begin(true)
	defer v.end(txn)
	if err := fn(txn); err != nil {
		return err
	}
	return v.commit(txn)
}

// writeBatch runs fn on a write batch and flushes it, as one version.
// Nothing else commits meanwhile.
func (v *versions) writeBatch(fn func(wb *badger.WriteBatch) error) error {
	if !v.managed {
		wb := v.db.NewWriteBatch()
		defer wb.Cancel()
		if err := fn(wb); err != nil {
			return err
		}
		return wb.Flush()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ts := v.next
	v.next++
	wb := v.db.NewWriteBatchAt(ts)
	defer wb.Cancel()
	if err := fn(wb); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	v.last.Store(ts)
	v.discard()
	return nil
}

// backup writes Badger's Backup stream of one snapshot to w.
func (v *versions) backup(w io.Writer) error {
	if err := v.enter(); err != nil {
		return err
	}
	defer v.leave()
	if !v.managed {
		_, err := v.db.Backup(w, 0)
		return err
	}
	txn := v.begin(false) // pins the stream's snapshot (invariant 2)
	defer v.end(txn)
	stream := v.db.NewStreamAt(txn.ReadTs())
	stream.LogPrefix = "ledger.Backup"
	_, err := stream.Backup(w, 0)
	return err
}

// discard lets Badger drop the versions no open transaction can read
// (invariant 2), after each commit: compactions apply it as they run.
func (v *versions) discard() {
	v.pinMu.Lock()
	ts := v.last.Load()
	for at := range v.at {
		ts = min(ts, at)
	}
	v.pinMu.Unlock()
	v.db.SetDiscardTs(ts)
}

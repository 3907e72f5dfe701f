package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/crdt"
)

// Limits on the options. Each option has a default (DefaultOptions) and a
// bound checked by Validate.
const (
	minSegmentBytes    = 64 << 10
	maxSegmentBytes    = 1 << 30
	maxBatchEventsCap  = 1 << 16
	minBatchBytes      = 4 << 10
	maxBatchBytesCap   = 64 << 20
	maxQueueDepthCap   = 1 << 20
	maxGroupCommitWait = 10 * time.Second
	minCheckpointBytes = 64 << 10
	// MaxEventBytes bounds one event's encoded size; a bigger one is
	// refused as TooLarge.
	MaxEventBytes = 1 << 20
)

// Options configure a Ledger. Build them with DefaultOptions and change what
// you need; Open calls Validate.
type Options struct {
	// Dir holds the ledger: Dir/wal (the write-ahead log) and Dir/badger.
	Dir string
	// Origin is this node's store id: Append authors events of this origin.
	// A data directory keeps the origin it was created with (or restored
	// from a backup of): Open refuses another (ErrOriginMismatch).
	Origin storeline.StoreID
	// Clock stamps appended events. Open raises it to the persisted
	// high-water mark so time never goes backwards across restarts; the
	// HLC time of each event applied from elsewhere (ApplyRemote, pulled
	// pages) is merged into it with Update, within its skew guard.
	Clock *crdt.Clock
	// WALSegmentBytes is the size of one preallocated, zero-filled WAL
	// segment. It must hold at least one full batch (MaxBatchBytes plus
	// framing).
	WALSegmentBytes int64
	// MaxBatchEvents bounds the requests committed by one fsync.
	MaxBatchEvents int
	// MaxBatchBytes bounds the encoded bytes of one batch (one WAL frame).
	MaxBatchBytes int
	// QueueDepth bounds the requests waiting for the committer; callers
	// beyond it wait (or give up with their context).
	QueueDepth int
	// GroupCommitWait is the longest the committer waits for the queue to
	// bring a batch of events up to the size of the previous one, and it
	// never waits longer than the previous WAL sync took (commit.go,
	// invariant 14). Under load, writers answered at one sync are still
	// building their next request when the committer is free again: a
	// short wait syncs them together. 0 never waits.
	GroupCommitWait time.Duration
	// CheckpointBytes is how much WAL is written between checkpoints
	// (Badger sync, then old segments dropped). It bounds replay at Open.
	CheckpointBytes int64
	// MemTableBytes is the size of Badger's memtable. It bounds a batch's
	// Badger transaction (about 15% of it), so it must be at least
	// 8 × MaxBatchBytes.
	MemTableBytes int64
	// ValueThreshold is the size from which a value is stored once in
	// Badger's value log and its LSM tree keeps a pointer (vlog.go): events
	// of about four lines and more, master records.
	ValueThreshold int64
	// Registerer receives the ledger's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Seams replace the I/O of the commit pipeline in tests; nil is the
	// real thing.
	Seams *Seams
	// Logger receives the ledger's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns options for a ledger in dir authoring events of
// origin, with a wall clock allowing 5 s of remote skew.
func DefaultOptions(dir string, origin storeline.StoreID) Options {
	return Options{
		Dir:             dir,
		Origin:          origin,
		Clock:           crdt.NewClock(time.Now, 5*time.Second),
		WALSegmentBytes: 32 << 20,
		MaxBatchEvents:  1024,
		MaxBatchBytes:   4 << 20,
		QueueDepth:      4096,
		GroupCommitWait: time.Millisecond,
		CheckpointBytes: 128 << 20,
		MemTableBytes:   64 << 20,
		ValueThreshold:  defaultValueThreshold,
	}
}

// Validate names every bad field.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, storeline.Invalidf(field, format, args...))
	}
	if o.Dir == "" {
		bad("Dir", "a ledger needs a directory")
	}
	if err := storeline.CheckID("Origin", string(o.Origin)); err != nil {
		errs = append(errs, err)
	}
	if o.Clock == nil {
		bad("Clock", "a ledger needs a clock")
	}
	if o.MaxBatchEvents < 1 || o.MaxBatchEvents > maxBatchEventsCap {
		bad("MaxBatchEvents", "%d out of [1, %d]", o.MaxBatchEvents, maxBatchEventsCap)
	}
	if o.MaxBatchBytes < minBatchBytes || o.MaxBatchBytes > maxBatchBytesCap {
		bad("MaxBatchBytes", "%d out of [%d, %d]", o.MaxBatchBytes, minBatchBytes, maxBatchBytesCap)
	}
	if o.WALSegmentBytes < minSegmentBytes || o.WALSegmentBytes > maxSegmentBytes {
		bad("WALSegmentBytes", "%d out of [%d, %d]", o.WALSegmentBytes, minSegmentBytes, maxSegmentBytes)
	} else if o.WALSegmentBytes < int64(o.MaxBatchBytes)+MaxEventBytes+frameOverhead+segHeaderBytes {
		bad("WALSegmentBytes", "%d cannot hold a full batch (MaxBatchBytes %d + MaxEventBytes %d + framing)",
			o.WALSegmentBytes, o.MaxBatchBytes, MaxEventBytes)
	}
	if o.QueueDepth < 1 || o.QueueDepth > maxQueueDepthCap {
		bad("QueueDepth", "%d out of [1, %d]", o.QueueDepth, maxQueueDepthCap)
	}
	if o.GroupCommitWait < 0 || o.GroupCommitWait > maxGroupCommitWait {
		bad("GroupCommitWait", "%v out of [0, %v]", o.GroupCommitWait, maxGroupCommitWait)
	}
	if o.CheckpointBytes < minCheckpointBytes {
		bad("CheckpointBytes", "%d below %d", o.CheckpointBytes, minCheckpointBytes)
	}
	if o.MemTableBytes < 8*int64(o.MaxBatchBytes) || o.MemTableBytes > 1<<30 {
		bad("MemTableBytes", "%d out of [8 × MaxBatchBytes, 1 GiB]", o.MemTableBytes)
	}
	if o.ValueThreshold < minValueThreshold || o.ValueThreshold > maxValueThreshold {
		bad("ValueThreshold", "%d out of [%d, %d]", o.ValueThreshold, minValueThreshold, maxValueThreshold)
	}
	if len(errs) > 0 {
		return storeline.E("ledger.Options.Validate", storeline.Invalid, errors.Join(errs...))
	}
	return nil
}

// Position is a place in an origin's journal: Seq is dense within Epoch.
type Position struct{ Epoch, Seq uint64 }

// Less orders positions by (Epoch, Seq).
func (p Position) Less(q Position) bool {
	return p.Epoch < q.Epoch || p.Epoch == q.Epoch && p.Seq < q.Seq
}

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Epoch, p.Seq) }

// Balance is the sum of the postings of one asset on one account.
type Balance struct {
	Account string
	Asset   storeline.Asset
	Amount  decimal.Decimal
}

// Ledger is a store node's journal, balances and master data. All methods
// are safe for concurrent use.
//
// Locks: the commit token (tok, held by the committer for its batches, and
// kept by the committer goroutine once Close stops it) is taken before
// the WAL's segment list lock (wal.mu); appliedMu is taken with no other
// lock held and guards only the wake-up channel of waiting reads.
type Ledger struct {
	o     Options
	log   *slog.Logger
	seams Seams
	db    *badger.DB
	ver   *versions // numbers db's commits, picks reads' snapshots
	wal   *wal
	met   *metrics
	reqs  chan *request
	// handoff carries a request the committer goroutine took off reqs
	// while another goroutine held the token, to that holder (commit.go,
	// invariant 14).
	handoff chan *request
	quit    chan struct{}
	done    chan struct{}
	ckpt    chan struct{}
	ckDone  chan struct{}

	closeOnce sync.Once
	closeErr  error

	// closing is set before the committer is stopped, so new requests fail
	// fast instead of queueing behind it.
	closing atomic.Bool
	// poison is the error that stopped the pipeline; once set, every
	// request fails with Unavailable and the ledger must be reopened.
	poison atomic.Pointer[error]

	// Published state: what acknowledged callers can rely on. Written by
	// the committer after a batch is applied.
	pos           atomic.Pointer[Position]
	masterVersion atomic.Uint64
	records       atomic.Pointer[recordCache] // master.go
	replica       bool                        // a Replica's reader: no record cache
	readBack      readBackStats               // what Open read back (vlog.go)
	readBackAsked bool                        // Open found the read-back marker (vlog.go)
	crashOnClose  bool                        // tests: Close leaves Badger as a crash would (no sync, no record of one)
	appliedLSN    atomic.Uint64
	// ackedLSN is the last LSN whose waiters were answered before its
	// apply (invariant 2): reads wait until appliedLSN reaches it.
	ackedLSN    atomic.Uint64
	appliedMu   sync.Mutex
	appliedWake chan struct{} // closed when appliedLSN or poison changes

	// tok is the commit token (capacity 1): the goroutine that took it is
	// the committer until it puts it back (invariant 1 of commit.go).
	tok chan struct{}
	// Committer-owned state (only the holder of tok and Open touch it);
	// see commit.go.
	st          commitState
	carry       *request      // taken from the queue, for the next batch
	lastBatch   int           // requests in the last batch of events
	lastSync    time.Duration // how long the last WAL sync took
	linger      *time.Timer   // the group-commit wait's (invariant 14)
	waits       atomic.Uint64 // batches whose committer waited for more
	hot         hotKeys       // decoded balances and shift totals (invariant 13)
	inCaller    bool          // the holder commits its own request
	codec       frameCodec
	ov          overlay           // keys of synced batches maybe not yet in Badger
	next        *badger.Txn       // the next pipelined batch's transaction
	nextApplied uint64            // applied LSN when next was opened
	balKey      []byte            // applyEvent's balance key buffer
	balIdx      map[string]int    // batchView.bal, reused batch after batch
	balBuf      []balSum          // batchView.bals, reused batch after batch
	bvWrites    map[string][]byte // batchView.writes, reused batch after batch
	ownIDs      *idFilter         // own event IDs before Append's dedup lookup (dedup.go)
	fillingIDs  bool              // a fill of ownIDs runs: new own IDs go to pendingIDs
	pendingIDs  []storeline.EventID
	filled      chan *idFilter // the fill's filter, once
	fillDone    chan struct{}  // closed when the fill has ended

	applyCh     chan applyJob // committer → applier (invariant 12 of commit.go)
	inApplier   atomic.Int64  // jobs handed to the applier and not yet done
	applierDone chan struct{}
}

// Open opens (or creates) the ledger in o.Dir, replays the WAL records
// Badger lacks, raises the clock to the persisted high-water mark and
// starts the committer. It refuses a directory holding another origin's
// ledger (ErrOriginMismatch); one written before the origin was persisted
// takes o.Origin.
func Open(o Options) (*Ledger, error) {
	const op = "ledger.Open"
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l := &Ledger{
		o:       o,
		log:     o.Logger,
		reqs:    make(chan *request, o.QueueDepth),
		handoff: make(chan *request),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		ckpt:    make(chan struct{}, 1),
		ckDone:  make(chan struct{}),

		tok:         make(chan struct{}, 1),
		applyCh:     make(chan applyJob, applierQueue),
		applierDone: make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.seams = o.Seams.withDefaults()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, storeline.E(op, ioKind(err), err)
	}
	// A failed sync of Badger left a marker: read the value log back from
	// the disk, not from pages a failed writeback left cached (vlog.go).
	var err error
	if l.readBackAsked, err = l.readBackMarked(); err != nil {
		return nil, storeline.E(op, ioKind(err), err)
	}
	if l.readBackAsked {
		if err := dropBadgerCache(l.badgerDir()); err != nil {
			return nil, storeline.E(op, ioKind(err), err)
		}
	}
	db, err := openBadger(l.badgerDir(), o.MemTableBytes, o.ValueThreshold, l.seams.ValueLogFileBytes)
	if err != nil {
		return nil, storeline.E(op, ioKind(err), fmt.Errorf("badger: %w", err))
	}
	l.db = db
	l.ver = newVersions(db, true)
	if err := l.recover(); err != nil {
		// Open's own writes to Badger (replay, repairs, rebuilds) may have
		// failed halfway: the next Open reads back whatever the boot. A
		// directory of another origin is refused before any.
		if !errors.Is(err, ErrOriginMismatch) {
			if merr := l.distrustBadger(); merr != nil {
				err = errors.Join(err, fmt.Errorf("read-back marker: %w", merr))
			}
		}
		_ = db.Close()
		if l.wal != nil {
			l.wal.close()
		}
		return nil, err
	}
	l.met = newMetrics(o.Registerer)
	l.startOwnIDs() // dedup.go
	l.tok <- struct{}{}
	go l.applierLoop()
	go l.commitLoop()
	go l.checkpointLoop()
	return l, nil
}

// Close stops the committer after the queued requests are answered, syncs
// and closes Badger and the WAL. It is safe to call more than once.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		close(l.quit)
		<-l.done
		<-l.ckDone
		<-l.fillDone // the fill reads Badger (dedup.go)
		var errs []error
		if l.poison.Load() == nil && !l.crashOnClose {
			// Values first, then the record that they are durable.
			err := l.syncBadger()
			if err == nil {
				err = l.markSynced(l.appliedLSN.Load())
			}
			if err == nil {
				err = l.db.Sync()
			}
			if err != nil {
				errs = append(errs, err) // a failed syncBadger left the read-back marker; kSynced did not move
			}
		}
		l.ver.shut() // reads still in progress finish first (versions.go, invariant 4)
		if err := l.db.Close(); err != nil {
			errs = append(errs, err)
		}
		l.wal.close()
		l.met.unregister()
		if len(errs) > 0 {
			l.closeErr = storeline.E("ledger.Close", storeline.Internal, errors.Join(errs...))
		}
	})
	return l.closeErr
}

// Position returns the position of the last event this node appended (its
// own origin) in the current epoch; Seq is 0 before the first.
// It waits for answered appends to be applied, so it is never behind a
// position an Append returned.
func (l *Ledger) Position() Position {
	_ = l.caughtUp() // poisoned: the last applied position is all there is
	return *l.pos.Load()
}

// Epoch returns the current epoch of this node's own journal.
func (l *Ledger) Epoch() uint64 { return l.Position().Epoch }

// Origin returns the node's own origin.
func (l *Ledger) Origin() storeline.StoreID { return l.o.Origin }

// Poisoned returns the error that stopped the commit pipeline, or nil.
func (l *Ledger) Poisoned() error {
	if p := l.poison.Load(); p != nil {
		return *p
	}
	return nil
}

// available returns an Unavailable error if the ledger is closed or
// poisoned.
func (l *Ledger) available(op string) error {
	if p := l.poison.Load(); p != nil {
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("ledger poisoned, reopen it: %w", *p))
	}
	if l.closing.Load() {
		return storeline.Errorf(storeline.Unavailable, op, "ledger closed")
	}
	return nil
}

// Compile-time check that the context import is used by the API files.
var _ = context.Background

// Package ledger is a store node's durable core: the journal of events with
// their postings, the balances they add up to, the master-data store, small
// metadata (replication cursors), idempotency by (origin, ID), group commit
// and online backup.
//
// Writes go through one committer goroutine (commit.go, whose invariants
// are listed at its top): it drains the queued requests (under load it
// waits, no longer than the last sync took, for a batch to fill up to the
// size of the one before), writes them as one
// frame to a preallocated, zero-filled write-ahead log and fdatasyncs it
// once. Appends and remote events are answered right after that sync; the
// batch is then applied to Badger (opened with SyncWrites off, in managed
// mode: versions.go numbers the commits and picks the reads' snapshots)
// in one transaction that also records the batch's LSN, and every read
// waits until the applied LSN covers what was answered, so no read misses
// an answered write (reads of master data need not: those batches hold no
// master data). Master data and other writes are answered after their
// apply. Open replays the WAL frames Badger lacks. Every CheckpointBytes
// of WAL, Badger is synced and the segments an earlier sync covers are
// removed. Events and other values of Options.ValueThreshold bytes or more
// are written once, to Badger's value log (vlog.go lists the invariants
// that keep them across a power loss: Open reads back what the frames
// still in the WAL stored and rewrites what was lost).
//
// Views over the events are written in the same transaction as the event
// that changes them, so replay rebuilds them with it: balances, the
// business-date and returns indexes, and the running totals of each
// (terminal, shift) that a shift close reads (shifts.go, which lists their
// invariants; Open rebuilds them from the journal for a database older
// than they are).
//
// Invariants any caller may rely on:
//
//   - Nothing is acknowledged before it is durable; a failed fsync poisons
//     the ledger (every later call fails with Unavailable) until it is
//     reopened.
//   - Events are deduplicated by (origin, ID), across epochs; a second copy
//     keeps its position in its origin's journal and has no effect (an
//     Append of a new ID is told apart by a filter of own IDs before any
//     lookup: dedup.go, which never answers "absent" for a stored one). An
//     event the journal's retention pruned (retention.go) leaves a stub
//     that keeps it deduplicated: an Append of its ID is refused
//     (ErrPruned), an ApplyRemote of it has no effect.
//   - Postings are derived once, by Append, and stored; ApplyRemote applies
//     stored postings and never derives them. Per asset, the postings of an
//     event and the balances of the ledger sum to zero.
//   - Own sequence numbers are dense within an epoch; epochs only grow; the
//     HLC high-water mark is persisted, so time never goes backwards across
//     restarts.
//   - Master versions are node-local and only grow.
//   - A data directory holds one origin's ledger: Open refuses it under
//     another Options.Origin (ErrOriginMismatch), and a restore keeps the
//     backup's origin.
//   - A backup is restored whole or not at all: Restore refuses a stream
//     that is truncated or damaged (ErrBadBackup) or of an earlier format,
//     and leaves the directory as it found it.
//
// Package ledger may import the module root (storeline), crdt, Badger,
// msgpack and prometheus only (DESIGN.md's import table); never posbridge,
// replication, node or central.
package ledger

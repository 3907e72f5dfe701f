// Package replication owns the wire protocol between a store node and the
// central cluster: the push of a shop's journal up, the pull of changes
// down, the HTTP handlers central serves them with, the client a node runs,
// and the ingest bookkeeping central's state machine runs on every pushed
// batch.
//
// Pieces:
//
//   - version.go: ProtocolVersion and its dated history. Both ends speak
//     version N and N-1 and refuse anything else with a clear error.
//   - wire.go: the msgpack wire types, apart from the domain types and
//     converted by named functions; decoding bounds every count before it
//     allocates.
//   - ingest.go: Ingest and IngestState, the pure, deterministic decision
//     for a pushed batch (apply, skip as a duplicate, or answer a gap) over
//     per-(store, epoch) high-water marks and an (origin, ID) set kept for
//     a retention period. Central's FSM calls Ingest inside its Badger
//     transaction through the IngestStore interface.
//   - server.go: Server, the push and pull HTTP handlers over a Backend
//     (central implements it), with per-shop tokens or mutual TLS.
//   - client.go: Client, the node's push and pull loops with failover
//     between central addresses, backoff with jitter and a ceiling, and
//     metrics, over a Local (the node's ledger, adapted by package node).
//
// Invariants:
//
//  1. A pushed batch is validated whole before anything is applied: a
//     malformed batch is 400, a batch naming another origin than the
//     caller is 403, and neither changes anything.
//  2. Central's answer carries the highest applied position of the batch's
//     epoch; the node persists it (ledger meta) and never moves its push
//     position below what central acknowledged, nor skips what it did not.
//  3. An event central rejected for a business reason still advances the
//     mark: it is never resent, and its rejection flows back down.
//  4. The node applies each pulled page and its new cursor in one ledger
//     transaction, compare-and-set on the old cursor, so a page is applied
//     at most once and resuming from the stored cursor is idempotent.
//     Records and events of kinds this build does not know are left out
//     of the page and their kinds remembered in the same transaction
//     (SkippedKindsKey); a later build that knows one pulls again from
//     cursor 0.
//  5. A resync never touches the node's unsent journal: push and pull are
//     independent loops. It ends with a sweep: master records of
//     SweptKinds that the snapshot did not rewrite (node-local versions at
//     or below the one before its first page) get tombstones, in bounded
//     pages, so a shop moved off a price list no longer holds its prices.
//  6. A batch or page refused as too large (413, an answer over
//     MaxResponseBytes, a page over the node's commit batch) is halved and
//     retried, down to one item; the size grows back after a run of
//     successes. A proxy's 413 on a pull (its request is a few bytes) and
//     a non-200 answer of any size are not: the client fails over.
//  7. A pull cursor belongs to central's incarnation, stored with it: an
//     answer of another incarnation (central restored from a backup) is
//     applied only as a resync from scratch. A pull answer whose marks
//     are below what central acknowledged, or of a new incarnation, makes
//     the push loop ask for central's marks even with nothing new to send,
//     and resend from them.
//
// The package imports the module root, crdt, msgpack and prometheus, and
// declares the interfaces it needs (Backend, IngestStore, Local); it never
// imports ledger, node or central.
package replication

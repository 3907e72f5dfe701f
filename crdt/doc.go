// Package crdt holds the pure replicated data types behind Storeline's
// convergence (DESIGN.md, "Convergence" and "Safety while offline"):
//
//   - Clock, a hybrid logical clock (Kulkarni et al., 2014) giving Timestamps
//     of 48-bit milliseconds and a 16-bit logical counter, and Stamp, a
//     Timestamp with its origin, the total order of last-writer-wins data;
//   - PNCounter, a per-origin counter of decimal amounts that may go negative
//     (stock);
//   - BoundedCounter, an escrow counter in integer units whose value never
//     goes below zero without coordination (loyalty points);
//   - LWWRegister and LWWMap, last-writer-wins data ordered by Stamp, with
//     tombstones and a purge horizon (data a shop may author offline);
//   - SerialCounts, per-serial, per-origin sale and return counts for marked
//     goods, whose net count above one is a serial sold twice.
//
// # Invariants
//
// Every type's Merge is commutative, associative and idempotent, so replicas
// that have seen the same updates hold the same state, in any order of
// arrival, with any duplication. Updates are shipped as deltas (a row, an
// entry, or a small state) carrying absolute values, not increments, so that
// applying one twice or late is harmless. Each origin writes only its own
// rows; the caller keeps that rule by calling the mutating methods only with
// its own origin, and a node restored from an old backup must take a new
// origin name.
//
// A BoundedCounter never holds an origin with negative rights, so its value
// is never below zero, at any replica, whatever the order, duplication or
// loss of deliveries.
//
// A Clock never goes backwards, even when its wall clock does, and never
// adopts a remote time further ahead of its wall clock than its maximum skew.
//
// Every type has a canonical msgpack encoding (sorted keys, minimal
// integers, normalised decimals, no zero cells), so equal values give equal
// bytes and checksums can compare replicas. See codec.go.
//
// # Boundaries
//
// The package is pure: no I/O, no goroutines, no global state; the wall clock
// is injected. It imports only the standard library, shopspring/decimal and
// vmihailenco/msgpack, and nothing of ours, so every other package may use
// it. A test enforces the import rule.
package crdt

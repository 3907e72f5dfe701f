// Package central is head office: a 3 or 5 node cluster agreeing through
// hashicorp/raft, whose FSM applies master-data changes (and, later, shops'
// batches and back-office documents) to a ledger in replicated mode over
// Badger; hashicorp/memberlist gossip for discovery and joining; and the
// head-office HTTP/JSON API (openapi.yaml) with a versioned change feed.
//
// Every change's version is (Raft index, position in the entry), packed
// into one ordered uint64 so the ledger's master store keys it. Any node
// serves any request: writes are forwarded to the leader after the caller
// is authenticated; reads are local, or linearizable on request. Every
// write carries an idempotency key whose outcome the FSM remembers, so a
// write whose outcome is unknown (leadership lost mid-apply) is safe to
// retry. See fsm.go for the FSM's invariants and ledger/replicated.go and
// ledger/raftlog.go for storage.
//
// Shops replicate over their own listener (Config.ReplicationAddr,
// package replication's handlers, per-shop tokens or mutual TLS):
// replication.go implements replication.Backend. A push is a Raft entry
// whose apply runs replication.Ingest in the entry's transaction (marks
// per store and epoch, the (origin, ID) seen set, central's copy of every
// shop's events and balances, rejections); a pull is served by any node
// from its local state, merging master changes and the store's own feed
// in version order, with a paged resync when the cursor is older than the
// history or the store's price lists changed. Per-shop metrics (label
// store) come from FSM state, so every node reports the same.
//
// Loyalty rights (loyalty.go): central holds the customers' points that
// shops hand back, and moves them to a shop by a central-authored transfer
// committed through Raft: a shop's reservation of a shortfall (keyed by
// its receipt ID, on the replication listener) or a pre-grant (head-office
// API). The check of central's rights and the transfer are one FSM
// transaction, so no two shops are ever given the same points.
//
// Package central may import the module root, crdt, pricing, ledger,
// replication, raft, memberlist, msgpack and prometheus (DESIGN.md's
// import table); never posbridge or node, and Badger only through ledger.
package central

// Command bench is Storeline's side-by-side benchmark against the systems a
// retail chain would otherwise use (issue 9): PostgreSQL and SQLite for the
// store's receipts, etcd and a raw hashicorp/raft cluster for central's
// ingest of shop events, and a 4 KiB append+fdatasync probe for the disk's
// own limit.
//
// It lives in a Go module of its own so that the product's go.mod gains no
// database drivers; `make bench-peers` at the repository root installs the
// peers, and this command starts them (throwaway data directories, loopback
// ports), runs every contender and stops each peer by its PID.
//
// Method (performance-anchors §4.4): every contender is opened once and held
// open; each (contender, concurrency) pair is a mode; every round runs each
// mode for one short slice (300 ms) in a fixed order, and the figures
// reported are the median of per-round rates and the median of per-round
// ratios against a peer at the same concurrency, with their range. Each
// concurrent client owns its connection. Durability is equal: every
// contender answers only after its commit is on disk (fdatasync, PostgreSQL
// synchronous_commit=on, SQLite synchronous=FULL in WAL mode, etcd's and
// Raft's fsynced logs), and the command prints the settings it checked.
//
// Adding a contender is one type that implements Contender (Open, Client,
// Close; optionally Syncer, Checker, Describer) and one case in bench's
// switch in main.go.
//
// # Central ingest
//
// Each central client is a shop pushing batches (-batch events, 100 by
// default) of its own receipt events, numbered densely within epoch 1 as a
// store node's journal numbers them, in replication's wire form
// (replication.WireEvent): the three central contenders take the same
// bytes per event (events.go). Storeline central (central.go) is three
// central.Open nodes with central.DefaultConfig, each shop pushing to the
// replication listener with its own token; etcd takes a batch as one Txn
// of puts; the raw Raft harness (raft.go) as one log entry applied by a
// no-op FSM, with central's Raft settings and log store, so the ratio
// between the two is what central adds (HTTP, decoding and checking the
// batch, forwarding from a follower, the FSM's ingest and its Badger
// transaction).
package main

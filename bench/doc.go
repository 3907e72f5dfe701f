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
// # The Storeline central contender (to be added)
//
// Its name is nameCentral, its Unit "event", its concurrencies
// -central-clients; the floors in report.go already name it (≥ 0.7× the
// raw Raft harness, aim 2× etcd, at 8 shops). It needs from package
// central:
//
//  1. An in-process 3-node cluster on loopback with data in a given
//     directory, waited on until it has 3 voters and a leader: what
//     central's own startCluster test helper does, exported (for example
//     central.StartLocal(dir, 3)), or Open three central.Config values
//     from central.DefaultConfig with Bootstrap on one and the others
//     joining through gossip.
//  2. One call that commits one shop's batch through the path a shop's
//     push takes and returns once the batch is committed and applied:
//     Client.Do sends shopEvents' next batch of that client's shop (dense
//     seqs within epoch 1), either in process (a Node method taking a
//     replication.PushRequest) or, better, over the replication listener
//     with msgpack bodies, one HTTP connection per client as the node
//     contender does.
//  3. For Check, each shop's applied mark (the highest seq central holds
//     for the shop's epoch), to compare with the events acknowledged.
//
// When it lands, encode the etcd and raw Raft batches with
// replication.EventToWire and replication.Encode too (newEncodedPool), so
// all three ingest exactly the wire bytes, and read raftConfig's values
// from central.DefaultConfig.
package main

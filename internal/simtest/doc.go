// Package simtest is the seeded whole-chain simulation: one seed fixes a
// schedule of till traffic, head-office price changes and faults (shops cut
// off from central, slow, severed and duplicated links through
// internal/faultproxy; shop nodes and central nodes stopped and reopened on
// the same directories and addresses) against a real 3-node central (Raft
// over loopback TCP, Badger on disk) and real shop nodes. Every run then
// heals everything, waits for convergence and checks the same promises:
// every acknowledged event exactly once at its shop and at every central
// node, conservation per asset at every replica, the shops' balances equal
// at every central node, and every head-office price at every shop.
//
// Raft, Badger and the replication loops run their own goroutines and
// timers, so a seed fixes the schedule, not the interleaving: a failing
// seed is rerun with `make sim SEED=...`.
//
// It is a test harness (internal/): production code never imports it.
package simtest

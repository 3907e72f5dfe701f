// Package chaostest runs a whole chain as real OS processes, a 3-node
// central cluster and two shops, and kills them with SIGKILL at random
// moments while tills post receipts through the shops' HTTP API: shop
// nodes, the central leader and central followers, each restarted on the
// same data directory and addresses. At the end it checks that every
// receipt a till was answered 2xx for is at its shop and at every central
// node exactly once, that the shops' balances equal central's, and that
// the central nodes agree with each other.
//
// TestChaosCutOffDay cuts two shops off from central (internal/faultproxy)
// for a long day of receipts with their clocks hours ahead and behind
// central's, one of them SIGKILLed and put right midway, and while they
// are cut off sends corrupted and truncated bodies to a shop's tills' API
// and to central's push; after healing it checks the same as TestChaos
// and that HLC times and business dates survive the trip.
//
// The processes are this test binary re-executed in a child role
// (internal/proctest, shared with internal/crashtest), so the children
// run the same code as `storeline central` and `storeline node` with the
// timers and replication settings a test needs; the parent is the tills
// and the checker. The kill
// schedule is seeded (-chaos.seed; the seed is printed); the timing of the
// load is the machine's. `make test` runs a few kills, `make chaos` the
// full size.
//
// It also holds the full-disk test: the tills' API over a ledger whose WAL
// file system answers ENOSPC.
package chaostest

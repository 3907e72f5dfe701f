// Package crashtest kills a store node with SIGKILL under load, again and
// again, and checks after every restart that nothing a till was told is
// saved was lost or counted twice, and that every asset's balances still
// sum to zero.
//
// The test re-executes its own binary as the node (the child, started
// through internal/proctest), so no separate build is needed; the parent
// is the load generator and the checker. `make test` runs a few kills; `make crash` runs many
// (-crash.kills). A failing run prints its seed; -crash.seed replays the
// same kill schedule (the timing of the load itself is the machine's).
package crashtest

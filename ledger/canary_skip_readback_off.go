//go:build !canary_skip_readback

package ledger

// canarySkipReadBack plants a bug for `make canaries` when built with the
// tag canary_skip_readback: Open reads nothing back from Badger's value log
// after a power loss (vlog.go). Off in every real build.
const canarySkipReadBack = false

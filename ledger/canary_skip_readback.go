//go:build canary_skip_readback

package ledger

// canarySkipReadBack is on: Open reads nothing back from Badger's value
// log after a power loss (vlog.go). `make canaries` builds with this tag
// and expects the suite to fail.
const canarySkipReadBack = true

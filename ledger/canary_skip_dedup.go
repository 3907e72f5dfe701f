//go:build canary_skip_dedup

package ledger

// canarySkipDedup is on: an append whose ID is known is stored again instead
// of answering the first copy. `make canaries` builds with this tag and
// expects the suite to fail.
const canarySkipDedup = true

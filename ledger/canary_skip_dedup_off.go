//go:build !canary_skip_dedup

package ledger

// canarySkipDedup plants a bug for `make canaries` when built with the tag
// canary_skip_dedup: an append whose ID is known is stored again instead of
// answering the first copy. Off in every real build.
const canarySkipDedup = false

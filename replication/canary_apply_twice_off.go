//go:build !canary_apply_twice

package replication

// canaryApplyTwice plants a bug for `make canaries` when built with the tag
// canary_apply_twice: events at or below the high-water mark are applied
// again (a resent batch counts twice). Off in every real build.
const canaryApplyTwice = false

//go:build canary_apply_twice

package replication

// canaryApplyTwice is on: events at or below the high-water mark are applied
// again (a resent batch counts twice). `make canaries` builds with this tag
// and expects the suite to fail.
const canaryApplyTwice = true

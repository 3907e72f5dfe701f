//go:build canary_drop_rejection

package replication

// canaryDropRejection is on: an event's business error is dropped, so no
// rejection flows back. `make canaries` builds with this tag and expects the
// suite to fail.
const canaryDropRejection = true

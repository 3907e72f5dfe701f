//go:build !canary_drop_rejection

package replication

// canaryDropRejection plants a bug for `make canaries` when built with the
// tag canary_drop_rejection: an event's business error is dropped, so no
// rejection flows back. Off in every real build.
const canaryDropRejection = false

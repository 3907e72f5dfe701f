//go:build !canary_ack_before_sync

package ledger

// canaryAckBeforeSync plants a bug for `make canaries` when built with the
// tag canary_ack_before_sync: a batch is acknowledged without its WAL fsync.
// Off in every real build.
const canaryAckBeforeSync = false

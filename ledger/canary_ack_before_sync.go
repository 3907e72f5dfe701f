//go:build canary_ack_before_sync

package ledger

// canaryAckBeforeSync is on: a batch is acknowledged without its WAL fsync.
// `make canaries` builds with this tag and expects the suite to fail.
const canaryAckBeforeSync = true

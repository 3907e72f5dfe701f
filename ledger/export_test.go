package ledger

// Bridges for the external tests.

// WALSegments returns how many WAL segments the ledger holds.
func (l *Ledger) WALSegments() int { return l.wal.segments() }

// AppliedLSN returns the LSN of the last batch applied to Badger.
func (l *Ledger) AppliedLSN() uint64 { return l.appliedLSN.Load() }

// Checkpoint asks the checkpointer to run now.
func (l *Ledger) Checkpoint() {
	select {
	case l.ckpt <- struct{}{}:
	default:
	}
}

// CheckpointNow runs two checkpoints synchronously, so every segment
// below the applied LSN is dropped.
func (l *Ledger) CheckpointNow() { l.checkpoint(l.checkpoint(0)) }

package ledger

import "context"

// RunValueLogGC runs the value-log GC a prune pass ends with
// (retention.go, invariant 7) and returns the files it rewrote.
func (l *Ledger) RunValueLogGC() (int, error) { return l.runValueLogGC(context.Background()) }

// FlattenBadger compacts Badger's tree into one level, so the discard
// statistics the value-log GC picks files by cover every pruned event.
func (l *Ledger) FlattenBadger() error { return l.db.Flatten(1) }

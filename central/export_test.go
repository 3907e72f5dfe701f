package central

import (
	"context"
	"testing"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// NewBadgerLogStore opens the Badger log store central gives Raft, for the
// raw-Raft benchmark harness.
func NewBadgerLogStore(tb testing.TB, dir string) logStore {
	tb.Helper()
	s, err := ledger.OpenLogStore(dir, ledger.LogStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return logStore{s}
}

// SubmitUnchecked commits records without the checks made before a request
// is submitted, as a request racing another through another central node
// would pass them: only the checks made when the entry applies stand.
func (n *Node) SubmitUnchecked(ctx context.Context, recs ...storeline.Record) error {
	fields := make([]string, len(recs))
	for i := range fields {
		fields[i] = "records[0]"
	}
	_, _, err := n.submitRecords(ctx, "unchecked-"+storeline.NewEventID().String(), recs, fields)
	return err
}

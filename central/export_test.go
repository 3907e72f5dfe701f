package central

import (
	"testing"

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

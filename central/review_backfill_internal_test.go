package central

import "testing"

// SetPayablesBackfillChunk has the payables backfill (settlements.go,
// invariant 4) read at most n events an entry until the test ends. Set it
// before the nodes open: every replica must read the same.
func SetPayablesBackfillChunk(t testing.TB, n int) {
	old := payablesBackfillChunk.Swap(int64(n))
	t.Cleanup(func() { payablesBackfillChunk.Store(old) })
}

// PayablesBackfilling reports whether this node's state holds a payables
// backfill still to finish.
func (n *Node) PayablesBackfilling() (bool, error) {
	v, err := n.rep.Meta(stBackfill)
	return v != nil, err
}

package central

import "testing"

// SetTurnoverScanBound makes a turnover page examine at most n events
// until t ends.
func SetTurnoverScanBound(t testing.TB, n int) {
	was := turnoverScanBound.Swap(int64(n))
	t.Cleanup(func() { turnoverScanBound.Store(was) })
}

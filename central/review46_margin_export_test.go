package central

import "testing"

// SetMarginScanBound lowers the events or keys a margin page examines
// for the rest of t, so a test reaches the bound with a few rows.
func SetMarginScanBound(t testing.TB, n int) {
	t.Helper()
	was := marginScanBound.Swap(int64(n))
	t.Cleanup(func() { marginScanBound.Store(was) })
}

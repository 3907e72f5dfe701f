package ledger

import (
	"sync/atomic"
	"testing"
)

// TestReview37FillTakesNoReadersHook: the background fill of own IDs
// runs beside whatever a test does once Open returns; versions'
// beforeView hook, which tests set then to put a write between a read's
// two views (review16Race), must see the reads the test makes only, not
// the fill's snapshot (under -race, the hook's read by the fill races
// with the test setting it).
func TestReview37FillTakesNoReadersHook(t *testing.T) {
	l, err := Open(DefaultOptions(t.TempDir(), "s1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var views atomic.Int32
	l.ver.beforeView = func() { views.Add(1) }
	<-l.fillDone
	l.ver.beforeView = nil
	if n := views.Load(); n != 0 {
		t.Fatalf("the hook saw %d views, want none: the test made no read", n)
	}
}

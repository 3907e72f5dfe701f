package replication

import (
	"testing"
	"time"
)

// TestReviewBackoffNeverOverflows: a long outage with a BackoffMin of a
// few seconds (valid: up to an hour) must keep waiting between the
// ceiling's half and the ceiling, never panic or go negative.
func TestReviewBackoffNeverOverflows(t *testing.T) {
	for _, bmin := range []time.Duration{5 * time.Second, time.Minute, time.Hour} {
		b := backoff{min: bmin, max: time.Hour}
		for i := 0; i < 100; i++ {
			var d time.Duration
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("min %v: next() #%d panicked: %v", bmin, i, r)
					}
				}()
				d = b.next()
			}()
			if d < bmin/2 || d > time.Hour {
				t.Fatalf("min %v: next() #%d = %v, want within [%v, %v]", bmin, i, d, bmin/2, time.Hour)
			}
		}
	}
}

// Package testwait is how the tests wait for a condition that nothing
// announces on a channel (a replica catching up, a listener answering, a
// metric appearing): one polling loop with a deadline, shared, instead of
// a sleep and a loop in every test package.
package testwait

import (
	"testing"
	"time"
)

// For polls cond until it holds, failing t if d passes first. The first
// polls come quickly (most conditions hold within a millisecond or two on
// loopback), later ones every 20 ms.
func For(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	pause := 500 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// Retry calls try until it reports done or d passes, pausing as For does
// between calls, and reports whether it was done: for a request whose
// answer may say "not now" (a 503 while central elects a leader), where the
// caller wants the last answer rather than a failed test.
func Retry(d time.Duration, try func() (done bool)) bool {
	deadline := time.Now().Add(d)
	pause := 500 * time.Microsecond
	for !try() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return true
}

package testwait

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestForWaitsForTheCondition: For returns once cond holds, having polled
// until then, and fails a test whose condition never holds.
func TestForWaitsForTheCondition(t *testing.T) {
	var polls atomic.Int64
	For(t, "the third poll", 10*time.Second, func() bool { return polls.Add(1) >= 3 })
	if n := polls.Load(); n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		For(ft, "never", 10*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("a condition that never held did not fail the test")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit() // as t.Fatalf ends the test's goroutine
}

// TestRetryStopsWhenDoneOrLate: Retry calls until try is done, and gives
// up (false) once its time has passed.
func TestRetryStopsWhenDoneOrLate(t *testing.T) {
	calls := 0
	if !Retry(10*time.Second, func() bool { calls++; return calls == 3 }) || calls != 3 {
		t.Fatalf("Retry = done after %d calls, want 3", calls)
	}
	start := time.Now()
	if Retry(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("Retry of a try never done = true")
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("Retry gave up before its time")
	}
}

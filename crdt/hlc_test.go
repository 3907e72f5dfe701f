package crdt_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/storeline/storeline/crdt"
)

// fakeWall is an injected wall clock that tests set by hand.
type fakeWall struct {
	mu sync.Mutex
	ms int64
}

func (w *fakeWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.UnixMilli(w.ms)
}

func (w *fakeWall) set(ms int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ms = ms
}

func ts(ms int64, l uint16) crdt.Timestamp { return crdt.MakeTimestamp(ms, l) }

const base = int64(1_795_000_000_000) // 2026-11-18, an ordinary wall time

func TestTimestampLayout(t *testing.T) {
	tests := []struct {
		millis  int64
		logical uint16
		want    crdt.Timestamp
		wantMs  int64
	}{
		{0, 0, 0, 0},
		{1, 0, 1 << 16, 1},
		{0, 7, 7, 0},
		{base, 3, crdt.Timestamp(uint64(base)<<16 | 3), base},
		{crdt.MaxMillis, crdt.MaxLogical, ^crdt.Timestamp(0), crdt.MaxMillis},
		{-5, 1, 1, 0}, // clamped up
		{crdt.MaxMillis + 9, 0, crdt.MakeTimestamp(crdt.MaxMillis, 0), crdt.MaxMillis}, // clamped down
	}
	for _, tt := range tests {
		got := crdt.MakeTimestamp(tt.millis, tt.logical)
		if got != tt.want {
			t.Errorf("MakeTimestamp(%d, %d) = %#x, want %#x", tt.millis, tt.logical, uint64(got), uint64(tt.want))
		}
		if got.Millis() != tt.wantMs || got.Logical() != tt.logical {
			t.Errorf("MakeTimestamp(%d, %d) = (%d, %d), want (%d, %d)",
				tt.millis, tt.logical, got.Millis(), got.Logical(), tt.wantMs, tt.logical)
		}
	}
	got := ts(base+123, 4)
	if s, want := got.String(), "2026-11-18T11:06:40.123Z+4"; s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	if tm, want := got.Time(), time.UnixMilli(base+123).UTC(); !tm.Equal(want) || tm.Location() != time.UTC {
		t.Errorf("Time() = %v, want %v", tm, want)
	}
}

// step is one call on a Clock in a scripted transcript.
type step struct {
	wall    int64          // the wall clock before the call, in ms
	op      string         // "now", "update", "observe"
	remote  crdt.Timestamp // for update and observe
	want    crdt.Timestamp // the result of now and update
	wantErr error
}

func TestClockTranscripts(t *testing.T) {
	const skew = 10 * time.Second
	tests := []struct {
		name          string
		steps         []step
		wantOverflows uint64
		wantClamped   uint64
	}{
		{
			name: "wall clock advancing resets the logical part",
			steps: []step{
				{wall: base, op: "now", want: ts(base, 0)},
				{wall: base, op: "now", want: ts(base, 1)},
				{wall: base + 1, op: "now", want: ts(base+1, 0)},
			},
		},
		{
			name: "wall clock jumps back: monotone on the logical part",
			steps: []step{
				{wall: base, op: "now", want: ts(base, 0)},
				{wall: base - 60_000, op: "now", want: ts(base, 1)},
				{wall: base - 60_000, op: "now", want: ts(base, 2)},
				{wall: base - 59_999, op: "update", remote: ts(base-59_999, 9), want: ts(base, 3)},
				{wall: base + 1, op: "now", want: ts(base+1, 0)},
			},
		},
		{
			name: "update adopts a remote ahead within skew",
			steps: []step{
				{wall: base, op: "now", want: ts(base, 0)},
				{wall: base, op: "update", remote: ts(base+5_000, 7), want: ts(base+5_000, 8)},
				{wall: base, op: "now", want: ts(base+5_000, 9)},
				{wall: base + 5_001, op: "now", want: ts(base+5_001, 0)},
			},
		},
		{
			name: "update with equal millis takes the larger logical plus one",
			steps: []step{
				{wall: base, op: "update", remote: ts(base, 4), want: ts(base, 5)},
				{wall: base, op: "update", remote: ts(base, 2), want: ts(base, 6)},
				{wall: base, op: "update", remote: ts(base-1, 60), want: ts(base, 7)},
			},
		},
		{
			name: "update behind the wall clock gives wall time",
			steps: []step{
				{wall: base, op: "update", remote: ts(base-100, 3), want: ts(base, 0)},
			},
		},
		{
			name: "remote exactly at the skew limit is adopted",
			steps: []step{
				{wall: base, op: "update", remote: ts(base+10_000, 0), want: ts(base+10_000, 1)},
			},
		},
		{
			name: "far-future remote is clamped, reported, not adopted",
			steps: []step{
				{wall: base, op: "now", want: ts(base, 0)},
				{wall: base, op: "update", remote: ts(base+10_001, 0), want: ts(base, 1), wantErr: crdt.ErrClockSkew},
				{wall: base, op: "update", remote: ts(base+86_400_000, 0), want: ts(base, 2), wantErr: crdt.ErrClockSkew},
				{wall: base, op: "now", want: ts(base, 3)},
			},
			wantClamped: 2,
		},
		{
			name: "logical overflow advances the milliseconds",
			steps: []step{
				{wall: base, op: "update", remote: ts(base, crdt.MaxLogical-1), want: ts(base, crdt.MaxLogical)},
				{wall: base, op: "now", want: ts(base+1, 0)},
				{wall: base, op: "now", want: ts(base+1, 1)},
				{wall: base + 1, op: "now", want: ts(base+1, 2)},
				{wall: base + 2, op: "now", want: ts(base+2, 0)},
			},
			wantOverflows: 1,
		},
		{
			name: "overflow on update with a remote at the logical limit",
			steps: []step{
				{wall: base, op: "update", remote: ts(base+1, crdt.MaxLogical), want: ts(base+2, 0)},
			},
			wantOverflows: 1,
		},
		{
			name: "observe raises without a skew check and without ticking",
			steps: []step{
				{wall: base, op: "observe", remote: ts(base+3_600_000, 5)},
				{wall: base, op: "now", want: ts(base+3_600_000, 6)},
				{wall: base, op: "observe", remote: ts(base, 0)},
				{wall: base, op: "now", want: ts(base+3_600_000, 7)},
			},
		},
		{
			name: "wall clock before 1970 is clamped to zero, and zero is never returned",
			steps: []step{
				{wall: -5_000, op: "now", want: ts(0, 1)},
				{wall: -5_000, op: "now", want: ts(0, 2)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fakeWall{}
			c := crdt.NewClock(w.now, skew)
			for i, s := range tt.steps {
				w.set(s.wall)
				var got crdt.Timestamp
				var err error
				switch s.op {
				case "now":
					got = c.Now()
				case "update":
					got, err = c.Update(s.remote)
				case "observe":
					c.Observe(s.remote)
					if c.Last() < s.remote {
						t.Fatalf("step %d: Last() = %s after Observe(%s)", i, c.Last(), s.remote)
					}
					continue
				}
				if !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
					t.Fatalf("step %d: %s(%s) error = %v, want %v", i, s.op, s.remote, err, s.wantErr)
				}
				if got != s.want {
					t.Fatalf("step %d: %s(%s) = %s, want %s", i, s.op, s.remote, got, s.want)
				}
				if c.Last() != got {
					t.Fatalf("step %d: Last() = %s, want %s", i, c.Last(), got)
				}
			}
			st := c.Stats()
			if st.Overflows != tt.wantOverflows || st.Clamped != tt.wantClamped {
				t.Errorf("Stats() = %+v, want {Overflows:%d Clamped:%d}", st, tt.wantOverflows, tt.wantClamped)
			}
		})
	}
}

func TestClockSkewErrorSaysBy(t *testing.T) {
	w := &fakeWall{ms: base}
	c := crdt.NewClock(w.now, time.Minute)
	_, err := c.Update(ts(base+3_600_000, 0))
	if !errors.Is(err, crdt.ErrClockSkew) {
		t.Fatalf("Update error = %v, want ErrClockSkew", err)
	}
	for _, want := range []string{"1h0m0s ahead", "max skew 1m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Update error = %q, want it to contain %q", err, want)
		}
	}
}

func TestStampTotalOrder(t *testing.T) {
	tests := []struct {
		a, b crdt.Stamp
		want int
	}{
		{crdt.Stamp{ts(1, 0), "b"}, crdt.Stamp{ts(2, 0), "a"}, -1},
		{crdt.Stamp{ts(1, 1), "a"}, crdt.Stamp{ts(1, 0), "z"}, 1},
		{crdt.Stamp{ts(1, 0), "a"}, crdt.Stamp{ts(1, 0), "b"}, -1},
		{crdt.Stamp{ts(1, 0), "shop-2"}, crdt.Stamp{ts(1, 0), "shop-10"}, 1}, // bytewise
		{crdt.Stamp{ts(1, 0), "a"}, crdt.Stamp{ts(1, 0), "a"}, 0},
		{crdt.Stamp{}, crdt.Stamp{ts(0, 0), "a"}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestStampOrderIsTotal(t *testing.T) {
	stamp := rapid.Custom(func(t *rapid.T) crdt.Stamp {
		return crdt.Stamp{
			Time:   ts(rapid.Int64Range(0, 3).Draw(t, "ms"), rapid.Uint16Range(0, 2).Draw(t, "l")),
			Origin: rapid.SampledFrom([]string{"", "a", "b", "central"}).Draw(t, "origin"),
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := stamp.Draw(t, "a"), stamp.Draw(t, "b"), stamp.Draw(t, "c")
		if (a.Compare(b) == 0) != (a == b) {
			t.Fatalf("%v.Compare(%v) = %d, but equal is %v", a, b, a.Compare(b), a == b)
		}
		if a.Compare(b) != -b.Compare(a) {
			t.Fatalf("Compare not antisymmetric on %v, %v", a, b)
		}
		if a.Compare(b) <= 0 && b.Compare(c) <= 0 && a.Compare(c) > 0 {
			t.Fatalf("Compare not transitive on %v <= %v <= %v", a, b, c)
		}
	})
}

// TestClockProperties drives a clock with a wall clock that wanders forwards
// and backwards and with random remote times, and checks the HLC invariants
// after every call: strictly increasing results, never behind the wall
// clock, and never further ahead of the highest wall time seen than the
// skew, apart from logical overflow.
func TestClockProperties(t *testing.T) {
	const skewMs = 1_000
	rapid.Check(t, func(t *rapid.T) {
		w := &fakeWall{ms: base}
		c := crdt.NewClock(w.now, skewMs*time.Millisecond)
		var last crdt.Timestamp
		maxWall := int64(base)
		for i := range rapid.IntRange(1, 200).Draw(t, "steps") {
			w.set(w.ms + rapid.Int64Range(-2_000, 2_000).Draw(t, "jump"))
			maxWall = max(maxWall, w.ms)
			var got crdt.Timestamp
			if rapid.Bool().Draw(t, "update") {
				remote := ts(w.ms+rapid.Int64Range(-3_000, 3_000).Draw(t, "offset"),
					rapid.Uint16Range(0, crdt.MaxLogical).Draw(t, "logical"))
				var err error
				got, err = c.Update(remote)
				tooFar := remote.Millis()-w.ms > skewMs
				if tooFar != errors.Is(err, crdt.ErrClockSkew) {
					t.Fatalf("step %d: Update(%s) at wall %d: error %v, far=%v", i, remote, w.ms, err, tooFar)
				}
				if !tooFar && got <= remote {
					t.Fatalf("step %d: Update(%s) = %s, want above the remote", i, remote, got)
				}
			} else {
				got = c.Now()
			}
			if got <= last {
				t.Fatalf("step %d: clock went from %s to %s", i, last, got)
			}
			if got.Millis() < w.ms {
				t.Fatalf("step %d: %s is behind the wall clock %d", i, got, w.ms)
			}
			bound := maxWall + skewMs + int64(c.Stats().Overflows) + 1
			if got.Millis() > bound {
				t.Fatalf("step %d: %s is ahead of max wall %d by more than skew", i, got, maxWall)
			}
			last = got
		}
	})
}

func TestClockConcurrent(t *testing.T) {
	w := &fakeWall{ms: base}
	c := crdt.NewClock(w.now, time.Second)
	const goroutines, each = 8, 500
	results := make([][]crdt.Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i%2 == 0 {
					results[g] = append(results[g], c.Now())
				} else {
					got, _ := c.Update(ts(base, uint16(i)))
					results[g] = append(results[g], got)
				}
			}
		})
	}
	wg.Wait()
	seen := map[crdt.Timestamp]bool{}
	for _, rs := range results {
		for i, r := range rs {
			if seen[r] {
				t.Fatalf("timestamp %s returned twice", r)
			}
			seen[r] = true
			if i > 0 && r <= rs[i-1] {
				t.Fatalf("one goroutine saw %s after %s", r, rs[i-1])
			}
		}
	}
}

func TestNewClockRejectsBadArguments(t *testing.T) {
	for name, f := range map[string]func(){
		"nil now":       func() { crdt.NewClock(nil, time.Second) },
		"negative skew": func() { crdt.NewClock(time.Now, -time.Second) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewClock did not panic")
				}
			}()
			f()
		})
	}
}

package crdt

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// The layout of a Timestamp: the high 48 bits are Unix milliseconds, the low
// 16 bits a logical counter. 2^48 ms reaches the year 10889, so the
// milliseconds never wrap in practice; MakeTimestamp clamps to the range all
// the same, so that a wild clock source cannot produce a wrapped value.
const (
	logicalBits = 16
	// MaxMillis is the largest wall-clock part a Timestamp can hold.
	MaxMillis = 1<<48 - 1
	// MaxLogical is the largest logical part; one more tick advances the
	// milliseconds (an overflow, counted in ClockStats).
	MaxLogical = 1<<logicalBits - 1
)

// Timestamp is an HLC time: 48-bit Unix milliseconds << 16 | 16-bit logical
// counter. Comparing two Timestamps as integers compares (millis, logical)
// lexicographically, which is the HLC order.
type Timestamp uint64

// MakeTimestamp packs millis and logical. Millis below zero give zero and
// millis above MaxMillis give MaxMillis.
func MakeTimestamp(millis int64, logical uint16) Timestamp {
	return Timestamp(uint64(clampMillis(millis))<<logicalBits | uint64(logical))
}

func clampMillis(ms int64) int64 {
	return min(max(ms, 0), MaxMillis)
}

// Millis is the wall-clock part in Unix milliseconds.
func (t Timestamp) Millis() int64 { return int64(t >> logicalBits) }

// Logical is the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t & MaxLogical) }

// Time is the wall-clock part, in UTC.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Millis()).UTC() }

// String formats t as an RFC 3339 UTC time with milliseconds, a plus sign and
// the logical counter, for example "2026-11-28T12:00:00.123Z+4".
func (t Timestamp) String() string {
	return t.Time().Format("2006-01-02T15:04:05.000Z07:00") + "+" + fmt.Sprint(t.Logical())
}

// Stamp is a Timestamp with its origin, the total order used by LWW: two
// writes from different origins never compare equal, so every replica picks
// the same winner.
type Stamp struct {
	Time   Timestamp
	Origin string
}

// Compare orders a and b by Time, then by Origin (bytewise). It returns -1, 0
// or +1.
func (a Stamp) Compare(b Stamp) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Origin, b.Origin)
}

// String formats the stamp as "time@origin".
func (a Stamp) String() string { return a.Time.String() + "@" + a.Origin }

// ErrClockSkew is returned (wrapped, with the values) by Clock.Update when a
// remote time is ahead of the local wall time by more than the clock's maximum
// skew. The remote time is not adopted.
var ErrClockSkew = errors.New("crdt: remote clock ahead by more than max skew")

// ClockStats counts the clock's exceptional events since it was made.
type ClockStats struct {
	// Overflows counts ticks whose logical part would have passed
	// MaxLogical and so advanced the milliseconds instead.
	Overflows uint64
	// Clamped counts remote times refused by Update for skew.
	Clamped uint64
}

// Clock is a hybrid logical clock (Kulkarni et al., 2014). Every Timestamp it
// returns is greater than every Timestamp it returned or observed before, even
// when the injected wall clock steps back. It is safe for concurrent use.
type Clock struct {
	now     func() time.Time
	maxSkew time.Duration

	mu    sync.Mutex
	last  Timestamp
	stats ClockStats
}

// NewClock returns a clock reading wall time from now. Update refuses remote
// times more than maxSkew ahead of now(); zero means a remote may not be ahead
// of the local wall clock at all. NewClock panics if now is nil or maxSkew is
// negative: both are programming errors.
func NewClock(now func() time.Time, maxSkew time.Duration) *Clock {
	if now == nil {
		panic("crdt: NewClock with nil now")
	}
	if maxSkew < 0 {
		panic(fmt.Sprintf("crdt: NewClock with negative maxSkew %v", maxSkew))
	}
	return &Clock{now: now, maxSkew: maxSkew}
}

// wall is the injected wall clock in Unix milliseconds, clamped to the
// Timestamp range.
func (c *Clock) wall() int64 { return clampMillis(c.now().UnixMilli()) }

// advance sets c.last to the next time after floor: the wall time if it is
// ahead of floor, else floor plus one logical tick. Because of the layout, a
// tick past MaxLogical carries into the milliseconds, which is the overflow
// rule; it is counted. c.mu must be held.
func (c *Clock) advance(floor Timestamp, wall int64) Timestamp {
	if floor.Millis() < wall {
		c.last = MakeTimestamp(wall, 0)
		return c.last
	}
	if floor.Logical() == MaxLogical {
		c.stats.Overflows++
	}
	if floor == MakeTimestamp(MaxMillis, MaxLogical) {
		// 2^48 ms is the year 10889: a clock here is broken beyond any
		// recovery that preserves monotonicity.
		panic(fmt.Sprintf("crdt: HLC exhausted at %d", uint64(floor)))
	}
	c.last = floor + 1
	return c.last
}

// Now returns a new local time, greater than any the clock has returned or
// observed. It never returns zero, so a zero Timestamp can mean "none". It
// panics only if the clock has reached the largest Timestamp, which a clock
// fed a sane wall time cannot do before the year 10889.
func (c *Clock) Now() Timestamp {
	wall := c.wall()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.advance(c.last, wall)
}

// Update merges a remote time, as on receipt of a message, and returns a new
// local time greater than both the clock's previous time and remote.
//
// If remote is more than maxSkew ahead of local wall time it is not adopted,
// so that one shop's bad clock cannot drag every clock into the future: the
// clock advances as Now() would (the result is then greater than the previous
// time but not than remote), the refusal is counted in Stats().Clamped, and
// the error wraps ErrClockSkew and says by how much. The returned Timestamp
// is a valid new time in both cases.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	wall := c.wall()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ahead := remote.Millis() - wall; ahead > c.maxSkew.Milliseconds() {
		c.stats.Clamped++
		ts := c.advance(c.last, wall)
		return ts, fmt.Errorf("crdt: HLC update: remote %s is %s ahead of local wall time %s, max skew %v: %w",
			remote, aheadString(ahead), MakeTimestamp(wall, 0).Time().Format(time.RFC3339Nano), c.maxSkew, ErrClockSkew)
	}
	return c.advance(max(c.last, remote), wall), nil
}

// aheadString formats ms milliseconds as a Duration, or as a count of
// milliseconds if it is too large for one (about 292 years), as a wild remote
// clock can be.
func aheadString(ms int64) string {
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return fmt.Sprintf("%dms", ms)
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// Observe raises the clock to at least t without a skew check. It is for
// reloading the persisted high-water mark at start; a time from another
// replica goes through Update.
func (c *Clock) Observe(t Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, t)
}

// Last returns the greatest time the clock has returned or observed, without
// advancing it. It is zero for a new clock.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Stats returns the clock's counters.
func (c *Clock) Stats() ClockStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

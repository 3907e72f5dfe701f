package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Contender is one system under test, held open for the whole run. The
// harness calls Open once with the largest concurrency any of its modes
// uses, then Client(i) for each concurrent client of a slice, and Close
// after the last round.
type Contender interface {
	// Name labels the contender's rows ("postgres", "storeline ledger")
	// and is what ratio columns refer to.
	Name() string
	// Unit is what Do commits: "receipt" (store contenders) or "event"
	// (central ingest contenders).
	Unit() string
	// Open prepares clients dedicated clients; each owns its connection.
	Open(ctx context.Context, clients int) error
	// Client returns client i, 0 ≤ i < clients. The harness uses a client
	// from one goroutine at a time.
	Client(i int) Client
	// Close releases everything Open made.
	Close() error
}

// Client is one simulated till or shop with its own connection.
type Client interface {
	// Do commits one unit of work durably (one receipt, or one batch of
	// shop events) and returns how many units it committed. It returns
	// only once the commit is on disk.
	Do(ctx context.Context) (units int, err error)
}

// Syncer is a contender that counts its own fsyncs, for units per fsync.
type Syncer interface {
	Syncs() (int64, error)
}

// Checker is a contender that can verify, after the run, that every unit
// it acknowledged is stored (row counts, stock balances, conservation).
type Checker interface {
	Check(ctx context.Context, acked int64) error
}

// Describer is a contender that reports its durability settings as read
// back from the running system (SHOW synchronous_commit, PRAGMA
// synchronous), so a run's output says what was compared.
type Describer interface {
	Describe(ctx context.Context) (string, error)
}

// mode is one contender at one concurrency.
type mode struct {
	con     Contender
	c       int
	rates   []float64 // units/s per counted round
	calls   []float64 // Do calls/s per counted round
	lat     []time.Duration
	units   int64 // all slices, warm-up included: what Check compares against
	counted int64 // units in counted rounds
	syncs   int64 // fsyncs in counted rounds, when con is a Syncer
	synced  bool
}

func (m *mode) name() string { return fmt.Sprintf("%s c=%d", m.con.Name(), m.c) }

// harness runs modes interleaved.
type harness struct {
	slice   time.Duration
	rounds  int
	warmup  int
	timeout time.Duration // bound on one Do
	modes   []*mode
	// progress, if set, is told after every round.
	progress func(round, of int)
}

// run executes warmup + rounds rounds; each round runs every mode for one
// slice, in order. The first error stops the run.
func (h *harness) run(ctx context.Context) error {
	for r := 0; r < h.warmup+h.rounds; r++ {
		for _, m := range h.modes {
			if err := h.runSlice(ctx, m, r >= h.warmup); err != nil {
				return fmt.Errorf("bench: %s, round %d: %w", m.name(), r+1, err)
			}
		}
		if h.progress != nil {
			h.progress(r+1, h.warmup+h.rounds)
		}
	}
	return nil
}

// runSlice runs m's c clients until the slice's deadline (each finishes the
// call it is in) and records the rate over the slice's real length.
func (h *harness) runSlice(ctx context.Context, m *mode, counted bool) error {
	var s0 int64
	syncer, isSyncer := m.con.(Syncer)
	if isSyncer && counted {
		n, err := syncer.Syncs()
		if err != nil {
			return err
		}
		s0 = n
	}
	var (
		units, calls atomic.Int64
		mu           sync.Mutex
		wg           sync.WaitGroup
		firstErr     error
	)
	start := time.Now()
	deadline := start.Add(h.slice)
	for i := range m.c {
		cl := m.con.Client(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 256)
			var err error
			for err == nil && time.Now().Before(deadline) {
				cctx, cancel := context.WithTimeout(ctx, h.timeout)
				t0 := time.Now()
				var n int
				n, err = cl.Do(cctx)
				d := time.Since(t0)
				cancel()
				if err == nil {
					lat = append(lat, d)
					units.Add(int64(n))
					calls.Add(1)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("client %d: %w", i, err)
			}
			if counted {
				m.lat = append(m.lat, lat...)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	m.units += units.Load()
	if firstErr != nil {
		return firstErr
	}
	if !counted {
		return nil
	}
	m.rates = append(m.rates, float64(units.Load())/el)
	m.calls = append(m.calls, float64(calls.Load())/el)
	m.counted += units.Load()
	if isSyncer {
		n, err := syncer.Syncs()
		if err != nil {
			return err
		}
		m.syncs += n - s0
		m.synced = true
	}
	return nil
}

// find returns the mode of the contender named name at concurrency c, or
// nil.
func (h *harness) find(name string, c int) *mode {
	for _, m := range h.modes {
		if m.con.Name() == name && m.c == c {
			return m
		}
	}
	return nil
}

// ratio is the median and range of per-round rate ratios num/den.
type ratio struct {
	med, min, max float64
	ok            bool
}

func ratioOf(num, den *mode) ratio {
	if num == nil || den == nil || len(num.rates) == 0 || len(num.rates) != len(den.rates) {
		return ratio{}
	}
	rs := make([]float64, 0, len(num.rates))
	for i := range num.rates {
		if den.rates[i] > 0 {
			rs = append(rs, num.rates[i]/den.rates[i])
		}
	}
	if len(rs) == 0 {
		return ratio{}
	}
	return ratio{med: median(rs), min: slices.Min(rs), max: slices.Max(rs), ok: true}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-quantile (0 ≤ p ≤ 1) of ds by nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p+0.5)]
}

// errNoRounds is returned when the harness is asked to report on nothing.
var errNoRounds = errors.New("bench: no counted rounds")

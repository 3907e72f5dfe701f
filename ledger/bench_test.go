package ledger_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/storeline/storeline/ledger"
)

var (
	benchOn       = flag.Bool("ledger.bench", false, "run the interleaved durable-append benchmark (TestBenchInterleaved)")
	benchSlice    = flag.Duration("ledger.bench.slice", 300*time.Millisecond, "length of one benchmark slice")
	benchRounds   = flag.Int("ledger.bench.rounds", 20, "rounds of the interleaved benchmark")
	benchHistory  = flag.Int("ledger.bench.history", 0, "receipts appended (64 writers) before the interleaved benchmark's rounds: a shop's ledger with history, whose Badger compacts")
	benchWriters  = flag.String("ledger.bench.writers", "1,8,64", "comma-separated writer counts of the interleaved benchmark (the floor's are 1, 8 and 64)")
	benchWait     = flag.Duration("ledger.bench.wait", ledger.DefaultOptions("", "").GroupCommitWait, "Options.GroupCommitWait of the interleaved benchmark's ledger")
	benchMemTable = flag.Int64("ledger.bench.memtable", ledger.DefaultOptions("", "").MemTableBytes, "Options.MemTableBytes of the benchmarks' ledgers")
)

// TestBenchInterleaved measures durable 5-line receipts/s at 1, 8 and 64
// concurrent writers against a 4 KiB append+fdatasync probe, interleaved
// in short slices, round robin (performance-anchors §4.4), and prints the
// median rate, the median of per-round ratios to the probe, p50/p99 ack
// latency and receipts per fsync. -ledger.bench.history N first appends N
// receipts, so the rounds run on a ledger with a shop's history behind it
// (a fresh one has nothing for Badger to compact).
//
//	go test -run TestBenchInterleaved -ledger.bench -v ./ledger/
func TestBenchInterleaved(t *testing.T) {
	if !*benchOn {
		t.Skip("needs -ledger.bench")
	}
	dir := t.TempDir()
	o := ledger.DefaultOptions(filepath.Join(dir, "ledger"), store)
	o.GroupCommitWait = *benchWait
	o.MemTableBytes = *benchMemTable
	var batches atomic.Int64
	// One WAL sync per batch, counted when it happens: appends are
	// answered at the sync, and a batch's apply may fall in the next slice.
	o.Seams = &ledger.Seams{Sync: func(f ledger.File) error {
		batches.Add(1)
		return f.Sync()
	}}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var next atomic.Uint64
	if *benchHistory > 0 {
		start := time.Now()
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					id := next.Add(1)
					if id > uint64(*benchHistory) {
						return
					}
					if _, _, err := l.Append(context.Background(), receiptEvent(eid(id), 5, int(id))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("history: %d receipts in %v\n", *benchHistory, time.Since(start).Round(time.Millisecond))
	}
	probe, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	blk := make([]byte, 4096)

	type mode struct {
		name  string
		c     int
		rates []float64
		lat   []time.Duration
		acks  int64
		syncs int64
		cpu   time.Duration // process CPU (user+sys) during the mode's slices
	}
	modes := []*mode{{name: "probe 4 KiB append+fdatasync", c: 1}}
	for _, w := range strings.Split(*benchWriters, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || c < 1 {
			t.Fatalf("-ledger.bench.writers: %q is not a writer count", w)
		}
		modes = append(modes, &mode{name: fmt.Sprintf("ledger c=%d", c), c: c})
	}
	run := func(m *mode) {
		deadline := time.Now().Add(*benchSlice)
		var n atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		b0 := batches.Load()
		cpu0 := processCPU(t)
		start := time.Now()
		for range m.c {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				for time.Now().Before(deadline) {
					t0 := time.Now()
					if m.name[0] == 'p' {
						if _, err := probe.Write(blk); err != nil {
							t.Error(err)
							return
						}
						if err := syscall.Fdatasync(int(probe.Fd())); err != nil {
							t.Error(err)
							return
						}
					} else {
						id := next.Add(1)
						if _, _, err := l.Append(context.Background(), receiptEvent(eid(id), 5, int(id))); err != nil {
							t.Error(err)
							return
						}
					}
					lat = append(lat, time.Since(t0))
					n.Add(1)
				}
				mu.Lock()
				m.lat = append(m.lat, lat...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		el := time.Since(start)
		m.rates = append(m.rates, float64(n.Load())/el.Seconds())
		m.acks += n.Load()
		m.syncs += batches.Load() - b0
		m.cpu += processCPU(t) - cpu0
	}
	for range *benchRounds {
		for _, m := range modes {
			run(m)
		}
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	probeRates := modes[0].rates
	fmt.Printf("| mode | median rate /s | median ratio to probe (min-max) | p50 | p99 | receipts per fsync | CPU per receipt |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range modes {
		ratios := make([]float64, len(m.rates))
		for i := range m.rates {
			ratios[i] = m.rates[i] / probeRates[i]
		}
		perSync := "1"
		if m.syncs > 0 {
			perSync = fmt.Sprintf("%.1f", float64(m.acks)/float64(m.syncs))
		}
		fmt.Printf("| %s | %.0f | %.2f (%.2f-%.2f) | %v | %v | %s | %v |\n", m.name, median(m.rates), median(ratios),
			slices.Min(ratios), slices.Max(ratios), pct(m.lat, 0.5).Round(10*time.Microsecond), pct(m.lat, 0.99).Round(10*time.Microsecond), perSync,
			(m.cpu / time.Duration(max(m.acks, 1))).Round(time.Microsecond))
	}
	if err := l.CheckConservation(); err != nil {
		t.Fatal(err)
	}
}

// processCPU returns the user and system CPU time this process has used:
// on a shared machine, CPU per receipt compares code paths better than
// rates, which other processes' load moves.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend is durable 5-line receipts through Append from 1 and 64
// concurrent writers sharing b.N, for CPU profiles of the commit path and
// the process CPU per receipt (TestBenchInterleaved gives the rates):
//
//	go test -run '^$' -bench Append -cpuprofile cpu.out ./ledger/
//
// The nosync variants replace the WAL's fdatasync with nothing: they time
// the software path of a durable append (handoffs, resolve, encode, the
// Badger apply where it is in the path) without the disk, which on a
// shared machine swings more than the code does. Not durable: never a
// figure for the floor.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		writers int
		nosync  bool
	}{{1, false}, {64, false}, {1, true}, {64, true}} {
		name := fmt.Sprintf("writers=%d", bc.writers)
		if bc.nosync {
			name += "/nosync"
		}
		writers := bc.writers
		b.Run(name, func(b *testing.B) {
			o := ledger.DefaultOptions(filepath.Join(b.TempDir(), "ledger"), store)
			o.MemTableBytes = *benchMemTable
			if bc.nosync {
				o.Seams = &ledger.Seams{Sync: func(ledger.File) error { return nil }}
			}
			l, err := ledger.Open(o)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var next atomic.Int64
			cpu0 := processCPU(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for id := next.Add(1); id <= int64(b.N); id = next.Add(1) {
						if _, _, err := l.Append(context.Background(), receiptEvent(eid(uint64(id)), 5, int(id))); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e3, "cpu-µs/receipt")
		})
	}
}

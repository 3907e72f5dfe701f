package simtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	simSeeds    = flag.Int("sim.seeds", 0, "TestSimMany: seeds to run (0: until -sim.budget ends)")
	simBudget   = flag.Duration("sim.budget", 0, "TestSimMany: time budget; 0 skips TestSimMany unless -sim.seeds or -sim.seed")
	simSeed     = flag.Uint64("sim.seed", 0, "TestSimMany: run this one seed only")
	simFirst    = flag.Uint64("sim.first", 1000, "TestSimMany: first seed of the run")
	simSteps    = flag.Int("sim.steps", 60, "TestSimMany: steps per seed")
	simParallel = flag.Int("sim.parallel", 1, "TestSimMany: seeds run at once (each its own chain)")
	simLogs     = flag.Bool("sim.logs", false, "print the nodes' logs")
)

// runSeed runs one seed in a directory of its own under root and returns
// its result and, if it failed, why (with the command that replays it).
func runSeed(root string, seed uint64, steps int, converge time.Duration) (Result, []string) {
	var log *slog.Logger
	if *simLogs {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	dir, err := os.MkdirTemp(root, fmt.Sprint(seed, "-"))
	if err != nil {
		return Result{Seed: seed}, []string{err.Error()}
	}
	defer os.RemoveAll(dir)
	res, err := Run(context.Background(), Config{Seed: seed, Dir: dir, Shops: 2, Steps: steps, Items: 8,
		Converge: converge, Logger: log})
	replay := fmt.Sprintf("reproduce: make sim SEED=%d SIM_FLAGS=-sim.steps=%d", seed, steps)
	if err != nil {
		return res, []string{fmt.Sprintf("%s\nharness: %v\n%s", res.Summary(), err, replay)}
	}
	if !res.OK() {
		return res, append(slices.Clone(res.Problems), res.Summary()+"\n"+replay)
	}
	return res, nil
}

// TestSimSeeds runs a fixed set of seeds briefly: the schedule and the
// closing checks every `make test` exercises.
func TestSimSeeds(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			// Convergence takes well under a second; 20 s keeps a
			// canary that stops it (drop_rejection) from stalling make test.
			res, fails := runSeed(t.TempDir(), seed, 30, 20*time.Second)
			for _, f := range fails {
				t.Error(f)
			}
			if len(fails) == 0 {
				t.Log(res.Summary())
			}
		})
	}
}

// TestSimMany is `make sim`: seeds from -sim.first on until -sim.seeds
// have run or -sim.budget ends (or the one -sim.seed), -sim.parallel at a
// time, with a line per seed and the totals.
func TestSimMany(t *testing.T) {
	if *simBudget == 0 && *simSeed == 0 && *simSeeds == 0 {
		t.Skip("make sim runs it (-sim.budget, -sim.seeds or -sim.seed)")
	}
	budget := *simBudget
	if budget == 0 {
		budget = 24 * time.Hour
	}
	deadline := time.Now().Add(budget)
	root := t.TempDir()
	type outcome struct {
		res   Result
		fails []string
	}
	var (
		mu   sync.Mutex
		next = *simFirst
		n    int
	)
	// claim hands out the next seed while the run has seeds and time left.
	claim := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case *simSeed != 0:
			if n > 0 {
				return 0, false
			}
			n++
			return *simSeed, true
		case *simSeeds > 0 && n >= *simSeeds, time.Now().After(deadline):
			return 0, false
		}
		n++
		next++
		return next - 1, true
	}
	results := make(chan outcome)
	var wg sync.WaitGroup
	for range max(1, *simParallel) {
		wg.Go(func() {
			for {
				seed, ok := claim()
				if !ok {
					return
				}
				res, fails := runSeed(root, seed, *simSteps, 60*time.Second)
				results <- outcome{res, fails}
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	start := time.Now()
	total := Result{Faults: map[string]int{}, Events: map[string]int{}, Spent: map[string]time.Duration{}}
	var conv []time.Duration
	var failed []uint64
	for o := range results {
		res := o.res
		t.Run(fmt.Sprint(res.Seed), func(t *testing.T) {
			for _, f := range o.fails {
				t.Error(f)
			}
			if len(o.fails) == 0 {
				t.Log(res.Summary())
			}
		})
		if len(o.fails) > 0 {
			failed = append(failed, res.Seed)
		} else {
			conv = append(conv, res.Converge)
		}
		total.Acked += res.Acked
		total.Checked += res.Checked
		total.Losses += res.Losses
		total.Dups += res.Dups
		total.ShiftsClosed += res.ShiftsClosed
		total.PointsEarned += res.PointsEarned
		total.PointsSpent += res.PointsSpent
		total.PointsSpentCut += res.PointsSpentCut
		total.PointsGranted += res.PointsGranted
		total.PointsNetted += res.PointsNetted
		total.PointsRefused += res.PointsRefused
		total.DoubleSales += res.DoubleSales
		total.Pruned += res.Pruned
		total.Setup += res.Setup
		total.Play += res.Play
		for k, v := range res.Faults {
			total.Faults[k] += v
		}
		for k, v := range res.Events {
			total.Events[k] += v
		}
		for k, v := range res.Spent {
			total.Spent[k] += v
		}
	}
	slices.Sort(conv)
	var p50, p99, pmax time.Duration
	if len(conv) > 0 {
		p50, p99, pmax = conv[len(conv)/2], conv[len(conv)*99/100], conv[len(conv)-1]
	}
	seeds := len(conv) + len(failed)
	t.Logf("TOTAL: %d seeds in %s (%d at a time, %d steps each): %d clean, %d failed %v",
		seeds, time.Since(start).Round(time.Second), max(1, *simParallel), *simSteps, len(conv), len(failed), failed)
	t.Logf("TOTAL: events acknowledged %d, checked %d (replica copies); losses %d, duplicates %d; Z reports checked %d; pruned from shops' journals %d",
		total.Acked, total.Checked, total.Losses, total.Dups, total.ShiftsClosed, total.Pruned)
	t.Logf("TOTAL: loyalty points earned %d, paid with %d (%d while cut off), %d payments refused, %d pre-granted, %d of debts netted by sweeps; double-sold serials recorded %d",
		total.PointsEarned, total.PointsSpent, total.PointsSpentCut, total.PointsRefused, total.PointsGranted, total.PointsNetted, total.DoubleSales)
	t.Logf("TOTAL: convergence after healing p50 %s p99 %s max %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond), pmax.Round(time.Millisecond))
	t.Logf("TOTAL: events %s", counts(total.Events))
	t.Logf("TOTAL: faults %s", counts(total.Faults))
	if seeds > 0 {
		spent := map[string]time.Duration{"setup": total.Setup / time.Duration(seeds), "schedule": total.Play / time.Duration(seeds)}
		for k, v := range total.Spent {
			spent["schedule/"+k] = v / time.Duration(seeds)
		}
		keys := make([]string, 0, len(spent))
		for k := range spent {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, spent[k].Round(time.Millisecond))
		}
		t.Logf("TOTAL: wall time per seed:%s", b.String())
	}
}

func counts[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(parts, " ")
}

package simtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"testing"
	"time"
)

var (
	simSeeds  = flag.Int("sim.seeds", 0, "TestSimMany: seeds to run (0: until -sim.budget ends)")
	simBudget = flag.Duration("sim.budget", 0, "TestSimMany: time budget; 0 skips TestSimMany")
	simSeed   = flag.Uint64("sim.seed", 0, "TestSimMany: run this one seed only")
	simFirst  = flag.Uint64("sim.first", 1000, "TestSimMany: first seed of the run")
	simSteps  = flag.Int("sim.steps", 120, "TestSimMany: steps per seed")
	simLogs   = flag.Bool("sim.logs", false, "print the nodes' logs")
)

// runSeed runs one seed; out receives the result even when it fails.
func runSeed(t *testing.T, seed uint64, steps int, out *Result) {
	t.Helper()
	var log *slog.Logger
	if *simLogs {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	res, err := Run(context.Background(), Config{Seed: seed, Dir: t.TempDir(), Shops: 2, Steps: steps, Items: 8,
		Converge: 60 * time.Second, Logger: log})
	*out = res
	if err != nil {
		t.Fatalf("%s\nharness: %v\nreproduce: make sim SEED=%d SIM_FLAGS=-sim.steps=%d", res.Summary(), err, seed, steps)
	}
	if !res.OK() {
		for _, p := range res.Problems {
			t.Error(p)
		}
		t.Fatalf("%s\nreproduce: make sim SEED=%d SIM_FLAGS=-sim.steps=%d", res.Summary(), seed, steps)
	}
	t.Log(res.Summary())
}

// TestSimSeeds runs a fixed set of seeds briefly: the schedule and the
// closing checks every `make test` exercises.
func TestSimSeeds(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { var res Result; runSeed(t, seed, 30, &res) })
	}
}

// TestSimMany is `make sim`: seeds from -sim.first on until -sim.seeds or
// -sim.budget, or the one -sim.seed, with per-seed lines and totals.
func TestSimMany(t *testing.T) {
	if *simBudget == 0 && *simSeed == 0 {
		t.Skip("make sim runs it (-sim.budget, -sim.seeds or -sim.seed)")
	}
	seeds := []uint64{*simSeed}
	if *simSeed == 0 {
		seeds = nil
	}
	deadline := time.Now().Add(*simBudget)
	total := Result{Faults: map[string]int{}}
	var conv []time.Duration
	var failed []uint64
	for i := 0; ; i++ {
		var seed uint64
		switch {
		case seeds != nil && i < len(seeds):
			seed = seeds[i]
		case seeds != nil:
		case (*simSeeds == 0 || i < *simSeeds) && time.Now().Before(deadline):
			seed = *simFirst + uint64(i)
		}
		if seed == 0 {
			break
		}
		var res Result
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) { runSeed(t, seed, *simSteps, &res) })
		if !ok {
			failed = append(failed, seed)
		}
		total.Acked += res.Acked
		total.Checked += res.Checked
		total.Losses += res.Losses
		total.Dups += res.Dups
		for k, v := range res.Faults {
			total.Faults[k] += v
		}
		if ok {
			conv = append(conv, res.Converge)
		}
	}
	slices.Sort(conv)
	var p50, pmax time.Duration
	if len(conv) > 0 {
		p50, pmax = conv[len(conv)/2], conv[len(conv)-1]
	}
	kinds := make([]string, 0, len(total.Faults))
	for k, v := range total.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	t.Logf("TOTAL: %d seeds clean, %d failed %v; events acknowledged %d, checked %d (replica copies); losses %d, duplicates %d; convergence after healing p50 %s max %s; faults %v",
		len(conv), len(failed), failed, total.Acked, total.Checked, total.Losses, total.Dups,
		p50.Round(time.Millisecond), pmax.Round(time.Millisecond), kinds)
}

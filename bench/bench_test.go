package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var peers = flag.Bool("bench.peers", false, "also run the PostgreSQL and etcd contenders (starts them; needs postgresql and etcd-server installed)")

func TestMedianPercentileRatio(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{4, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {nil, 0}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {0.5, 3}, {0.99, 5}, {1, 5}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", ds, tc.p, got, tc.want)
		}
	}
	// Ratios are taken round by round, then their median: a round where
	// both sides were slow counts like any other.
	num := &mode{rates: []float64{200, 20, 300}}
	den := &mode{rates: []float64{100, 5, 100}}
	if r := ratioOf(num, den); !r.ok || r.med != 3 || r.min != 2 || r.max != 4 {
		t.Errorf("ratioOf = %+v, want median 3, range 2–4", r)
	}
	if r := ratioOf(num, &mode{rates: []float64{1}}); r.ok {
		t.Errorf("ratioOf over rounds of different counts = %+v, want none", r)
	}
	if r := ratioOf(num, nil); r.ok {
		t.Errorf("ratioOf with no peer = %+v, want none", r)
	}
}

// runBench runs the command with a short schedule and returns its report.
func runBench(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	base := []string{"-rounds", "2", "-warmup", "0", "-slice", "60ms", "-clients", "1,4", "-central-clients", "1,2", "-batch", "10", "-dir", t.TempDir()}
	if code := run(context.Background(), append(base, args...), &out, &errb); code != 0 {
		t.Fatalf("bench %v = %d\nstdout:\n%s\nstderr:\n%s", args, code, out.String(), errb.String())
	}
	return out.String()
}

func checkReport(t *testing.T, rep string, names ...string) {
	t.Helper()
	for _, n := range names {
		if row := fmt.Sprintf("| %s c=1 |", n); !strings.Contains(rep, row) {
			t.Errorf("report lacks the row %q:\n%s", row, rep)
		}
		if n != nameProbe && !strings.Contains(rep, "- "+n+": ok (") {
			t.Errorf("report lacks a passed check for %s:\n%s", n, rep)
		}
	}
	if strings.Contains(rep, "FAILED") {
		t.Errorf("a check failed:\n%s", rep)
	}
}

// TestInProcess runs every contender that needs no server: the probe, the
// Storeline ledger and node, SQLite, the raw Raft harness and the 3-node
// Storeline central, end to end with their checks.
func TestInProcess(t *testing.T) {
	rep := runBench(t, "-contenders", "probe,ledger,node,sqlite,raft,central")
	checkReport(t, rep, nameProbe, nameLedger, nameNode, nameSQLite, nameRaft, nameCentral)
	for _, want := range []string{"| storeline ledger c=4 |", "| raw raft 3-node c=2 |", "| storeline central c=2 |", "journal_mode=wal, synchronous=FULL", "storeline ledger / sqlite, c=64"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}

// TestPeers starts PostgreSQL and a 3-member etcd as make bench-peers does.
func TestPeers(t *testing.T) {
	if !*peers {
		t.Skip("needs -bench.peers (and postgresql, etcd-server installed)")
	}
	rep := runBench(t, "-contenders", "probe,postgres,etcd")
	checkReport(t, rep, nameProbe, namePG, nameEtcd)
	if !strings.Contains(rep, "synchronous_commit=on") {
		t.Errorf("report does not show synchronous_commit=on:\n%s", rep)
	}
}

// TestChecksCatchLoss: a contender's check refuses a count of acknowledged
// units that is not what it stored.
func TestChecksCatchLoss(t *testing.T) {
	ctx := context.Background()
	w := newWorkload()
	for _, c := range []Contender{newLedgerContender(t.TempDir(), w), newSQLiteContender(t.TempDir(), w),
		newRaftContender(t.TempDir(), w, 1, false), newCentralContender(t.TempDir(), w, 1, true)} {
		t.Run(c.Name(), func(t *testing.T) {
			if err := c.Open(ctx, 1); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for range 3 {
				if _, err := c.Client(0).Do(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ck := c.(Checker)
			if err := ck.Check(ctx, 3); err != nil {
				t.Errorf("Check(3) after 3 receipts = %v", err)
			}
			if err := ck.Check(ctx, 4); err == nil {
				t.Errorf("Check(4) after 3 receipts = nil, want an error")
			}
		})
	}
}

func TestWorkloadReceipt(t *testing.T) {
	w := newWorkload()
	if len(w.items) != 199 {
		t.Errorf("workload sells %d items, want the sample chain's 199 piece items", len(w.items))
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		r := w.receipt(rng, "till-1")
		if len(r.Lines) != receiptLines || len(r.Payments) != 2 {
			t.Fatalf("receipt has %d lines, %d payments, want %d and 2", len(r.Lines), len(r.Payments), receiptLines)
		}
		for i := 1; i < len(r.Lines); i++ {
			if r.Lines[i-1].Item >= r.Lines[i].Item {
				t.Fatalf("lines not in strictly ascending item order: %s, %s", r.Lines[i-1].Item, r.Lines[i].Item)
			}
		}
		if paid := r.Payments[0].Amount.Add(r.Payments[1].Amount); !paid.Equal(r.Total) || !r.Change.IsZero() {
			t.Fatalf("payments %s, change %s, total %s: want exact payment", paid, r.Change, r.Total)
		}
	}
}

package ledger_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline/ledger"
)

// sample is what a test reads of one unlabelled metric.
type sample struct {
	found     bool
	histogram bool
	count     uint64  // a histogram's sample count
	sum       float64 // a histogram's sample sum
	buckets   int     // a histogram's buckets
	gauge     float64
}

// read gathers reg and returns the metric called name.
func read(t *testing.T, reg *prometheus.Registry, name string) sample {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		h := m.GetHistogram()
		return sample{found: true, histogram: h != nil, count: h.GetSampleCount(), sum: h.GetSampleSum(),
			buckets: len(h.GetBucket()), gauge: m.GetGauge().GetValue()}
	}
	return sample{}
}

// TestMetricsFsyncAndPoisoned checks the fsync-only latency histogram, the
// events per fsync, and the poisoned gauge, which a failed sync sets and a
// reopened ledger clears.
func TestMetricsFsyncAndPoisoned(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := testOptions(t.TempDir())
	o.Registerer = reg
	var fail atomic.Bool
	o.Seams = &ledger.Seams{Sync: func(f ledger.File) error {
		if fail.Load() {
			return errInjected
		}
		return f.Sync()
	}}
	l, err := ledger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, receiptEvent(eid(1), 1, 0))
	mustAppend(t, l, receiptEvent(eid(2), 1, 0))
	fsync := read(t, reg, "storeline_ledger_fsync_duration_seconds")
	if !fsync.histogram || fsync.count != 2 {
		t.Fatalf("storeline_ledger_fsync_duration_seconds = %+v, want a histogram of 2 syncs", fsync)
	}
	if fsync.buckets < 10 {
		t.Fatalf("fsync histogram has %d buckets, want explicit classic buckets", fsync.buckets)
	}
	if h := read(t, reg, "storeline_ledger_batch_events"); h.count != 2 || h.sum != 2 {
		t.Fatalf("storeline_ledger_batch_events count %d sum %v, want 2 fsyncs of 1 event", h.count, h.sum)
	}
	if g := read(t, reg, "storeline_ledger_poisoned"); !g.found || g.gauge != 0 {
		t.Fatalf("storeline_ledger_poisoned = %+v before any failure, want 0", g)
	}

	fail.Store(true)
	if _, _, err := l.Append(context.Background(), receiptEvent(eid(3), 1, 0)); err == nil {
		t.Fatal("Append with a failing sync succeeded")
	}
	if g := read(t, reg, "storeline_ledger_poisoned").gauge; g != 1 {
		t.Fatalf("storeline_ledger_poisoned = %v after a failed sync, want 1", g)
	}
	if c := read(t, reg, "storeline_ledger_fsync_duration_seconds").count; c != 3 {
		t.Fatalf("fsync histogram counted %d syncs, want 3 (the failed one too)", c)
	}
	if c := read(t, reg, "storeline_ledger_commit_duration_seconds").count; c != 2 {
		t.Fatalf("commit histogram counted %d commits, want the 2 that succeeded", c)
	}

	l.Close()
	fail.Store(false)
	o.Clock = testClock()
	l2 := open(t, o)
	if g := read(t, reg, "storeline_ledger_poisoned").gauge; g != 0 {
		t.Fatalf("storeline_ledger_poisoned = %v after a reopen, want 0", g)
	}
	mustAppend(t, l2, receiptEvent(eid(4), 1, 0))
}

package ledger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ledger's Prometheus metrics; a nil *metrics records
// nothing.
type metrics struct {
	reg       prometheus.Registerer
	commitDur prometheus.Histogram
	fsyncDur  prometheus.Histogram
	poisoned  prometheus.Gauge
	batch     prometheus.Histogram
	appended  prometheus.Counter
	fsyncs    prometheus.Counter
	walBytes  prometheus.Counter
	waits     prometheus.Counter
	prunedEv  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		reg: reg,
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "storeline_ledger_commit_duration_seconds",
			Help:    "Time from a batch leaving the queue to its waiters being answered.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		fsyncDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "storeline_ledger_fsync_duration_seconds",
			Help: "Time of one WAL fdatasync alone (failed ones too), apart from the rest of a commit.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}),
		poisoned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "storeline_ledger_poisoned",
			Help: "1 once a failed WAL write, sync or apply has poisoned the ledger (every write fails until it is reopened), else 0.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "storeline_ledger_batch_events",
			Help:    "Events made durable by one WAL fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_ledger_events_appended_total",
			Help: "Events newly stored (own and remote), excluding duplicates.",
		}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_ledger_fsyncs_total",
			Help: "WAL fsyncs (one per committed batch).",
		}),
		walBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_ledger_wal_bytes_total",
			Help: "Bytes written to the WAL, framing included.",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_ledger_group_commit_waits_total",
			Help: "Batches whose committer waited (at most GroupCommitWait, never longer than the previous sync) for the queue to bring them up to the previous batch's size.",
		}),
		prunedEv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "storeline_ledger_events_pruned_total",
			Help: "Events the journal's retention removed, each leaving a stub that keeps its ID deduplicated (PruneJournal).",
		}),
	}
	for _, c := range m.collectors() {
		reg.MustRegister(c)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.commitDur, m.fsyncDur, m.poisoned, m.batch, m.appended, m.fsyncs, m.walBytes, m.waits, m.prunedEv}
}

func (m *metrics) fsync(bytes, events int) {
	if m == nil {
		return
	}
	m.fsyncs.Inc()
	m.walBytes.Add(float64(bytes))
	m.batch.Observe(float64(events))
	m.appended.Add(float64(events))
}

// syncDone records one WAL sync's duration, successful or not.
func (m *metrics) syncDone(d time.Duration) {
	if m == nil {
		return
	}
	m.fsyncDur.Observe(d.Seconds())
}

// setPoisoned records that the pipeline stopped.
func (m *metrics) setPoisoned() {
	if m == nil {
		return
	}
	m.poisoned.Set(1)
}

func (m *metrics) commit(d time.Duration) {
	if m == nil {
		return
	}
	m.commitDur.Observe(d.Seconds())
}

// unregister lets a reopened ledger register on the same registry.
func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

// waited counts a batch whose committer waited for more requests.
func (m *metrics) waited() {
	if m == nil {
		return
	}
	m.waits.Inc()
}

// pruned counts events PruneJournal removed.
func (m *metrics) pruned(n int) {
	if m == nil || n == 0 {
		return
	}
	m.prunedEv.Add(float64(n))
}

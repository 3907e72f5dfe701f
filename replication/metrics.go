package replication

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a node's replication metrics.
type Metrics struct {
	Waiting        prometheus.Gauge
	OldestAge      prometheus.Gauge
	LastPush       prometheus.Gauge
	LastPull       prometheus.Gauge
	BytesUp        prometheus.Counter
	BytesDown      prometheus.Counter
	Rejections     prometheus.Counter
	RejectionsDown prometheus.Counter
	Resyncs        prometheus.Counter
	Gaps           prometheus.Counter
	WentBack       prometheus.Counter
	PushErrors     prometheus.Counter
	PullErrors     prometheus.Counter
	Shrunk         prometheus.Counter
	Swept          prometheus.Counter
	// SkippedUnknown counts pulled records (what="master") and events
	// (what="event") of kinds this build does not know: the rest of
	// their page applies, and a later build that knows the kind pulls
	// again from the start (SkippedKindsKey).
	SkippedUnknown *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (nil registers
// none).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "storeline_replication_" + name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "storeline_replication_" + name, Help: help})
	}
	m := &Metrics{
		Waiting:        g("events_waiting", "Own events central has not acknowledged."),
		OldestAge:      g("oldest_unacked_age_seconds", "Age of the oldest event central has not acknowledged (0 when none wait)."),
		LastPush:       g("last_push_timestamp_seconds", "Unix time of the last successful push."),
		LastPull:       g("last_pull_timestamp_seconds", "Unix time of the last successful pull."),
		BytesUp:        c("sent_bytes_total", "Request body bytes sent to central."),
		BytesDown:      c("received_bytes_total", "Answer body bytes received from central."),
		Rejections:     c("rejections_total", "Own events central rejected for a business reason (push answers)."),
		RejectionsDown: c("rejections_received_total", "Rejections received in pulled pages."),
		Resyncs:        c("resyncs_total", "Resyncs (snapshot pulls) started."),
		Gaps:           c("gaps_total", "Push answers naming a gap."),
		WentBack:       c("central_went_back_total", "Answers acknowledging less than central had acknowledged before."),
		PushErrors:     c("push_errors_total", "Failed pushes (transport or refusal)."),
		PullErrors:     c("pull_errors_total", "Failed pulls (transport, refusal or a bad page)."),
		Shrunk:         c("shrinks_total", "Push batches or pull pages halved after a refusal as too large."),
		Swept:          c("swept_records_total", "Master records removed after a resync because they no longer concern the shop."),
		SkippedUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storeline_replication_skipped_unknown_total",
			Help: "Pulled master records (what=master) and events (what=event) skipped as of a kind this build does not know."}, []string{"what"}),
	}
	// Both series exist from the start: a scrape shows 0, not nothing,
	// until the first record of an unknown kind comes down.
	m.SkippedUnknown.WithLabelValues("master")
	m.SkippedUnknown.WithLabelValues("event")
	if reg != nil {
		for _, col := range []prometheus.Collector{m.Waiting, m.OldestAge, m.LastPush, m.LastPull, m.BytesUp, m.BytesDown,
			m.Rejections, m.RejectionsDown, m.Resyncs, m.Gaps, m.WentBack, m.PushErrors, m.PullErrors, m.Shrunk, m.Swept,
			m.SkippedUnknown} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("replication: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

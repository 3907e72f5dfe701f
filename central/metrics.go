package central

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics is a prometheus.Collector over this node's own raft.Stats(),
// raft observers and gossip state, registered on the registry the config
// passes in. hashicorp/raft's go-metrics sink is process-global and would
// mix the nodes of one process, so it is not used (NoLegacyTelemetry).
type metrics struct {
	n                 *Node
	leaderChanges     atomic.Uint64
	heartbeatFailures atomic.Uint64

	state, term, lastLog, commit, applied, fsmPending, lastContact,
	fsmApplies, leaderCh, hbFail, members, voters, snapIndex *prometheus.Desc
}

func newMetrics(n *Node) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("storeline_central_"+name, help, labels, prometheus.Labels{"node": n.cfg.NodeID})
	}
	return &metrics{
		n:           n,
		state:       d("raft_state", "1 for the node's current Raft state.", "state"),
		term:        d("raft_term", "The node's current Raft term."),
		lastLog:     d("raft_last_log_index", "Index of the last entry in the node's Raft log."),
		commit:      d("raft_commit_index", "The node's Raft commit index."),
		applied:     d("raft_applied_index", "Index of the last entry applied to the FSM."),
		fsmPending:  d("raft_fsm_pending", "Entries committed but not yet applied."),
		lastContact: d("raft_last_contact_seconds", "Time since the leader was last heard from (0 on the leader)."),
		snapIndex:   d("raft_last_snapshot_index", "Index of the node's last snapshot."),
		fsmApplies:  d("fsm_applied_commands_total", "Commands the FSM applied (replays skipped excluded) since start."),
		leaderCh:    d("leader_changes_total", "Leader changes this node observed since start."),
		hbFail:      d("heartbeat_failures_total", "Failed heartbeats to followers this node observed as leader."),
		members:     d("gossip_members", "Members alive in this node's gossip view."),
		voters:      d("raft_voters", "Voters in the Raft configuration."),
	}
}

// observe registers raft observers that count leader changes and failed
// heartbeats.
func (m *metrics) observe(r *raft.Raft) {
	ch := make(chan raft.Observation, 64)
	r.RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation:
			return true
		}
		return false
	}))
	go func() {
		for {
			select {
			case o := <-ch:
				switch o.Data.(type) {
				case raft.LeaderObservation:
					m.leaderChanges.Add(1)
				case raft.FailedHeartbeatObservation:
					m.heartbeatFailures.Add(1)
				}
			case <-m.n.quit:
				return
			}
		}
	}()
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.state, m.term, m.lastLog, m.commit, m.applied, m.fsmPending, m.lastContact, m.snapIndex, m.fsmApplies, m.leaderCh, m.hbFail, m.members, m.voters} {
		ch <- d
	}
}

func stat(s map[string]string, k string) float64 {
	v, _ := strconv.ParseFloat(s[k], 64)
	return v
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	r := m.n.raft
	s := r.Stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	c := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	cur := r.State()
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if st == cur {
			v = 1
		}
		g(m.state, v, st.String())
	}
	g(m.term, stat(s, "term"))
	g(m.lastLog, stat(s, "last_log_index"))
	g(m.commit, stat(s, "commit_index"))
	g(m.applied, stat(s, "applied_index"))
	g(m.fsmPending, stat(s, "fsm_pending"))
	g(m.snapIndex, stat(s, "last_snapshot_index"))
	g(m.voters, stat(s, "num_peers")+1)
	contact := 0.0
	if cur != raft.Leader {
		if t := r.LastContact(); !t.IsZero() {
			contact = time.Since(t).Seconds()
		}
	}
	g(m.lastContact, contact)
	c(m.fsmApplies, float64(m.n.fsm.Applies()))
	c(m.leaderCh, float64(m.leaderChanges.Load()))
	c(m.hbFail, float64(m.heartbeatFailures.Load()))
	members := 0.0
	if m.n.ml != nil {
		members = float64(m.n.ml.NumMembers())
	}
	g(m.members, members)
}

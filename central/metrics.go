package central

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// metrics is a prometheus.Collector over this node's own raft.Stats(),
// raft observers and gossip state, registered on the registry the config
// passes in. hashicorp/raft's go-metrics sink is process-global and would
// mix the nodes of one process, so it is not used (NoLegacyTelemetry).
type metrics struct {
	n                 *Node
	started           time.Time // for last contact before any (Collect)
	leaderChanges     atomic.Uint64
	heartbeatFailures atomic.Uint64

	state, term, lastLog, commit, applied, fsmPending, lastContact,
	fsmApplies, fsmSplit, leaderCh, hbFail, members, voters, snapIndex, snapTime *prometheus.Desc

	// custClamped: registrations whose till clock ran too far ahead,
	// from FSM state (customers.go, invariant 3).
	custClamped *prometheus.Desc

	// commitDur: from a command's submit on the leader to its outcome
	// (committed and applied by the leader's FSM), for the commands that
	// succeed, including those whose caller gave up waiting (node.go).
	commitDur prometheus.Histogram

	// The back office's, from FSM state (backoffice_reports.go).
	boDocs, boRepricing, boBacklog, boExpiring, boExcise, boConflicts, boNegative *prometheus.Desc
}

// trackedFSM is the FSM as Raft is given it, noting how far it has
// applied: Raft's Stats say applied_index for what Raft handed to the FSM
// (before the FSM applied it) and fsm_pending for the batches queued (a
// batch holds many entries), so a slow FSM looked up to date.
type trackedFSM struct {
	*FSM
	busy atomic.Int32  // batches being applied
	done atomic.Uint64 // the last index of the last batch applied
	// snapshotted is when the node last stored a snapshot of the FSM
	// (Unix ms, 0 for never): its own, persisted, or at Open the
	// newest one on disk (snapshotTime).
	snapshotted atomic.Int64
}

// Snapshot notes when the snapshot is stored (Persist returns nil once
// the snapshot store's sink is closed, the snapshot whole on disk).
func (f *trackedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return trackedSnapshot{s, f}, nil
}

type trackedSnapshot struct {
	raft.FSMSnapshot
	f *trackedFSM
}

func (s trackedSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.FSMSnapshot.Persist(sink); err != nil {
		return err
	}
	s.f.snapshotted.Store(time.Now().UnixMilli())
	return nil
}

// snapshotTime returns when the newest of metas (newest first, as
// raft.FileSnapshotStore lists them) was taken, in Unix ms, 0 if there is
// none: the file store names a snapshot term-index-ms.
func snapshotTime(metas []*raft.SnapshotMeta) int64 {
	if len(metas) == 0 {
		return 0
	}
	id := metas[0].ID
	ms, err := strconv.ParseInt(id[strings.LastIndexByte(id, '-')+1:], 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return ms
}

var _ raft.BatchingFSM = (*trackedFSM)(nil)

func (f *trackedFSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *trackedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.busy.Add(1)
	defer f.busy.Add(-1)
	out := f.FSM.ApplyBatch(logs)
	if len(logs) > 0 {
		f.done.Store(logs[len(logs)-1].Index)
	}
	return out
}

// applied returns the index of the last entry the FSM applied and the
// entries committed and not yet applied, from Raft's stats s. With no
// batch queued or being applied, it is what Raft handed over (which
// counts the entries the FSM never sees: no-ops, barriers).
func (f *trackedFSM) applied(s map[string]string, rep interface{ AppliedIndex() uint64 }) (applied, pending uint64) {
	commit := uint64(stat(s, "commit_index"))
	applied = uint64(stat(s, "applied_index"))
	if stat(s, "fsm_pending") > 0 || f.busy.Load() > 0 {
		// After a snapshot restore the replica is ahead of done.
		applied = max(f.done.Load(), rep.AppliedIndex())
	}
	if commit > applied {
		pending = commit - applied
	}
	return applied, pending
}

func newMetrics(n *Node) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("storeline_central_"+name, help, labels, prometheus.Labels{"node": n.cfg.NodeID})
	}
	bo := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("storeline_backoffice_"+name, help, labels, prometheus.Labels{"node": n.cfg.NodeID})
	}
	return &metrics{
		n:           n,
		started:     time.Now(),
		state:       d("raft_state", "1 for the node's current Raft state.", "state"),
		term:        d("raft_term", "The node's current Raft term."),
		lastLog:     d("raft_last_log_index", "Index of the last entry in the node's Raft log."),
		commit:      d("raft_commit_index", "The node's Raft commit index."),
		applied:     d("raft_applied_index", "Index of the last entry applied to the FSM."),
		fsmPending:  d("raft_fsm_pending", "Entries committed but not yet applied."),
		lastContact: d("raft_last_contact_seconds", "Time since the leader was last heard from, or since the node started if it has not heard from one since (0 on the leader)."),
		snapIndex:   d("raft_last_snapshot_index", "Index of the node's last snapshot."),
		snapTime:    d("raft_last_snapshot_timestamp_seconds", "When the node last took a snapshot of its FSM (Unix time; at start, the newest snapshot on disk; a snapshot installed from the leader does not count), 0 if it has none."),
		fsmApplies:  d("fsm_applied_commands_total", "Commands the FSM applied (replays skipped excluded) since start."),
		fsmSplit:    d("fsm_split_transactions_total", "Runs of entries Badger refused as one transaction (too big), applied again entry by entry, since start."),
		leaderCh:    d("leader_changes_total", "Leaders this node saw elected since start: a leader known in a new term, another server or the same one again (an unknown leader in between is no change)."),
		hbFail:      d("heartbeat_failures_total", "Failed heartbeats to followers this node observed as leader."),
		members:     d("gossip_members", "Members alive in this node's gossip view."),
		voters:      d("raft_voters", "Voters in the Raft configuration."),
		custClamped: d("customer_registrations_clamped_total", "Customer registrations from tills whose clock ran more than 5m ahead of central's, stamped at central's time plus 5m instead (FSM state, the same on every node)."),

		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "storeline_central_raft_commit_duration_seconds",
			Help:        "Time from a command's submit on the leader to its outcome (committed and applied), for commands that succeeded.",
			ConstLabels: prometheus.Labels{"node": n.cfg.NodeID},
			Buckets:     prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),

		boDocs:      bo("documents", "Documents by status (draft, posted, cancelled) and type.", "status", "type"),
		boRepricing: bo("repricing_drafts", "Repricing documents drafted (by rules or by hand) and not yet posted or cancelled."),
		boBacklog:   bo("cost_backlog_events", "Events of a shop central applied after its last costed sale (not yet costed).", "store"),
		boExpiring:  bo("expiring_batches", "Batches with stock left expiring within 7 days (in the shop's time zone).", "store"),
		boExcise:    bo("excise_journal_entries_total", "Movements of excise goods in a shop's excise journal.", "store"),
		boConflicts: bo("serial_conflicts", "Serials of marked goods with more sales (and write-offs) than returns over every shop."),
		boNegative:  bo("negative_stock_positions", "Items whose stock at a shop (over its departments) is below zero in central's books.", "store"),
	}
}

// observe registers a raft observer that counts leader changes and
// failed heartbeats. It counts in the filter, which Raft calls on its own
// goroutine as it sets the leader, so the term read is the one the leader
// was found in (and no observation is dropped by a full channel).
func (m *metrics) observe(r *raft.Raft) {
	var (
		mu   sync.Mutex
		last raft.ServerID // the last leader counted, "" before the first
		term uint64        // the term it was counted in
	)
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		switch d := o.Data.(type) {
		case raft.LeaderObservation:
			// Raft also tells when the leader becomes unknown (a
			// heartbeat timeout, an election starting) and when it is
			// known again: a change is a leader in a new term (another
			// server, or the same one elected again), so one transfer
			// counts once and a leader that keeps losing and winning
			// leadership back counts each election.
			if d.LeaderID == "" {
				return false
			}
			t := r.CurrentTerm()
			mu.Lock()
			if d.LeaderID != last || t != term {
				last, term = d.LeaderID, t
				m.leaderChanges.Add(1)
			}
			mu.Unlock()
		case raft.FailedHeartbeatObservation:
			m.heartbeatFailures.Add(1)
		}
		return false
	}))
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.commitDur.Describe(ch)
	for _, d := range []*prometheus.Desc{m.state, m.term, m.lastLog, m.commit, m.applied, m.fsmPending, m.lastContact, m.snapIndex, m.snapTime, m.fsmApplies, m.fsmSplit, m.leaderCh, m.hbFail, m.members, m.voters, m.custClamped,
		m.boDocs, m.boRepricing, m.boBacklog, m.boExpiring, m.boExcise, m.boConflicts, m.boNegative} {
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
	applied, pending := m.n.tfsm.applied(s, m.n.rep)
	g(m.applied, float64(applied))
	g(m.fsmPending, float64(pending))
	g(m.snapIndex, stat(s, "last_snapshot_index"))
	g(m.snapTime, float64(m.n.tfsm.snapshotted.Load())/1000)
	m.commitDur.Collect(ch)
	// Not num_peers+1: Stats reports 0 peers on a node that is not a
	// voter itself (a non-voter would show 1 voter).
	voters := 0
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				voters++
			}
		}
	}
	g(m.voters, float64(voters))
	// A node that has not heard from a leader since it started (its
	// peers down, or it is cut off) is as long out of contact as it has
	// been up, not 0, which reads as in contact.
	contact := 0.0
	if cur != raft.Leader {
		t := r.LastContact()
		if t.IsZero() {
			t = m.started
		}
		contact = time.Since(t).Seconds()
	}
	g(m.lastContact, contact)
	c(m.fsmApplies, float64(m.n.fsm.Applies()))
	c(m.fsmSplit, float64(m.n.fsm.split.Load()))
	c(m.leaderCh, float64(m.leaderChanges.Load()))
	c(m.hbFail, float64(m.heartbeatFailures.Load()))
	members := 0.0
	if m.n.ml != nil {
		members = float64(m.n.ml.NumMembers())
	}
	g(m.members, members)
	// A read error leaves the series out of this scrape, not at 0.
	if v, err := m.n.rep.Meta(custClamped); err == nil {
		c(m.custClamped, float64(ledger.U64(v)))
	}
	m.collectBackOffice(ch)
}

// collectBackOffice reports the back office's figures; a read error
// leaves them out of this scrape (an absent series, not a wrong one).
func (m *metrics) collectBackOffice(ch chan<- prometheus.Metric) {
	s, err := m.n.backOfficeStats(time.Now())
	if err != nil {
		return
	}
	g := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), l...)
	}
	for _, st := range []storeline.DocStatus{storeline.DocDraft, storeline.DocPosted, storeline.DocCancelled} {
		for _, t := range boDocTypes {
			g(m.boDocs, s.Documents[[2]string{string(st), string(t)}], string(st), string(t))
		}
	}
	g(m.boRepricing, s.Documents[[2]string{string(storeline.DocDraft), string(storeline.DocRepricing)}])
	g(m.boConflicts, s.Conflicts)
	for store, v := range s.Backlog {
		g(m.boBacklog, v, string(store))
		g(m.boExpiring, s.Expiring[store], string(store))
		g(m.boNegative, s.Negative[store], string(store))
		ch <- prometheus.MustNewConstMetric(m.boExcise, prometheus.CounterValue, float64(s.Excise[store]), string(store))
	}
}

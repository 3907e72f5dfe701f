package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// nodeMeta is what a node tells the others through gossip: where its Raft
// transport and head-office API listen, the FSM level its binary applies
// (levels.go; absent from a node of a version before levels), and the
// cluster incarnation its replica holds (restore.go; "" for an empty one),
// kept current by reconcileLoop.
type nodeMeta struct {
	Raft  string `json:"r"`
	API   string `json:"a"`
	Level int    `json:"l,omitempty"`
	Inc   string `json:"i,omitempty"`
}

// gossip tracks the members memberlist reports and wakes the leader's
// reconciler when they change.
type gossip struct {
	self  nodeMeta
	wake  chan struct{}
	mu    sync.Mutex
	alive map[string]nodeMeta
	dead  map[string]time.Time // when a member was seen failed or gone
	held  map[string]int       // members not added for their FSM level, by the level they told
	alien map[string]string    // members not added for their incarnation, by the one they told
}

// heldBack records that member id, telling level, was not added to Raft
// for its level, and reports whether that is news.
func (g *gossip) heldBack(id string, level int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.held[id]; ok && l == level {
		return false
	}
	if g.held == nil {
		g.held = map[string]int{}
	}
	g.held[id] = level
	return true
}

// foreign records that member id, telling incarnation inc, was not added
// to Raft for it, and reports whether that is news.
func (g *gossip) foreign(id, inc string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i, ok := g.alien[id]; ok && i == inc {
		return false
	}
	if g.alien == nil {
		g.alien = map[string]string{}
	}
	g.alien[id] = inc
	return true
}

// setInc records the incarnation the node's replica now holds, and
// reports whether it changed (the meta must then be gossiped again).
func (g *gossip) setInc(inc string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.self.Inc == inc {
		return false
	}
	g.self.Inc = inc
	return true
}

func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	b, _ := json.Marshal(g.self)
	g.mu.Unlock()
	if len(b) > limit {
		return nil
	}
	return b
}
func (g *gossip) NotifyMsg([]byte)                           {}
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g *gossip) LocalState(join bool) []byte                { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool)     {}

func (g *gossip) set(nd *memberlist.Node, alive bool) {
	var m nodeMeta
	_ = json.Unmarshal(nd.Meta, &m)
	g.mu.Lock()
	if alive {
		g.alive[nd.Name] = m
		delete(g.dead, nd.Name)
	} else {
		delete(g.alive, nd.Name)
		g.dead[nd.Name] = time.Now()
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *gossip) NotifyJoin(nd *memberlist.Node)   { g.set(nd, true) }
func (g *gossip) NotifyLeave(nd *memberlist.Node)  { g.set(nd, false) }
func (g *gossip) NotifyUpdate(nd *memberlist.Node) { g.set(nd, true) }

// meta returns the gossip metadata of a live member.
func (g *gossip) meta(id string) (nodeMeta, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.alive[id]
	return m, ok
}

func (g *gossip) snapshot() (map[string]nodeMeta, map[string]time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := make(map[string]nodeMeta, len(g.alive))
	for k, v := range g.alive {
		a[k] = v
	}
	d := make(map[string]time.Time, len(g.dead))
	for k, v := range g.dead {
		d[k] = v
	}
	return a, d
}

// startGossip starts memberlist and joins the seeds. A member (a node
// with Raft state) whose seeds do not answer keeps trying them; a new
// node fails.
func (n *Node) startGossip(member bool) error {
	host, port, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	n.gos = &gossip{
		self:  nodeMeta{Raft: string(n.tr.LocalAddr()), API: n.apiAddr, Level: n.level(), Inc: n.Incarnation()},
		wake:  make(chan struct{}, 1),
		alive: map[string]nodeMeta{},
		dead:  map[string]time.Time{},
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	mc.BindAddr, mc.BindPort = host, p
	mc.AdvertisePort = 0
	mc.ProbeInterval = n.cfg.ProbeInterval
	mc.ProbeTimeout = n.cfg.ProbeTimeout
	mc.GossipInterval = n.cfg.GossipInterval
	mc.SuspicionMult = n.cfg.SuspicionMult
	mc.PushPullInterval = 10 * n.cfg.ProbeInterval
	mc.TCPTimeout = 4 * n.cfg.ProbeInterval
	mc.Delegate = n.gos
	mc.Events = n.gos
	mc.Logger = log.New(io.Discard, "", 0)
	if n.cfg.ClusterSecret != "" {
		key := sha256Sum(n.cfg.ClusterSecret)
		mc.SecretKey = key[:]
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return err
	}
	n.ml = ml
	ln := ml.LocalNode()
	n.gossipAddr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	if len(n.cfg.Seeds) > 0 {
		missing, err := n.joinSeeds(n.cfg.Seeds)
		if len(missing) == len(n.cfg.Seeds) {
			if !member {
				ml.Shutdown()
				return fmt.Errorf("join %v: %w", n.cfg.Seeds, err)
			}
			// A member of the cluster (it has Raft state) runs on its
			// Raft configuration: when the whole cluster starts at once,
			// its seeds are not up yet, and waiting for them here would
			// keep every node down.
			n.log.Warn("central: gossip: no seed answered; retrying them", "seeds", n.cfg.Seeds, "err", err)
		} else if len(missing) > 0 {
			n.log.Warn("central: gossip: seeds did not answer; retrying them", "seeds", missing, "err", err)
		}
		if len(missing) > 0 {
			n.wg.Add(1)
			go n.rejoinLoop(missing)
		}
	}
	return nil
}

// joinSeeds joins each seed in turn and returns those that did not
// answer, with their errors. A seed that answered is a member: the
// push/pull of a join merges both sides' views. It stops trying once the
// node is closing.
func (n *Node) joinSeeds(seeds []string) (missing []string, err error) {
	var errs []error
	for i, s := range seeds {
		if n.ctx.Err() != nil {
			return append(missing, seeds[i:]...), errors.Join(append(errs, n.ctx.Err())...)
		}
		if k, err := n.ml.Join([]string{s}); k == 0 {
			missing = append(missing, s)
			errs = append(errs, err)
		}
	}
	return missing, errors.Join(errs...)
}

// rejoinLoop tries the seeds that did not answer every probe interval
// until one answers, then every ten probe intervals until each has
// answered, so is a member: nodes started at once may first meet in
// parts (one and two, three and four), and however many members one part
// holds, a seed outside it may be the only way to the other. A seed gone
// for good keeps it trying, cheaply. Close does not wait out a Join in
// flight (to a hung host, up to the TCP timeout per seed).
func (n *Node) rejoinLoop(pending []string) {
	defer n.wg.Done()
	every := n.cfg.ProbeInterval
	for len(pending) > 0 {
		select {
		case <-n.quit:
			return
		case <-n.ctx.Done():
			return
		case <-time.After(every):
		}
		done := make(chan []string, 1)
		go func(seeds []string) {
			left, _ := n.joinSeeds(seeds)
			done <- left
		}(pending)
		var left []string
		select {
		case <-n.quit:
			return
		case <-n.ctx.Done():
			return
		case left = <-done:
		}
		if len(left) < len(pending) {
			every = 10 * n.cfg.ProbeInterval
		}
		pending = left
	}
	n.log.Info("central: gossip: every seed is a member", "seeds", n.cfg.Seeds)
}

// reconcileLoop runs on every node, gossips the node's incarnation when
// it changed, and acts on the leader: members gossip knows but Raft does
// not are added (as voters up to MaxVoters, as non-voters beyond) unless
// their data directory holds another incarnation, non-voters are promoted
// when a voter slot is free, and, if DeadNodeRemoveAfter is set, members
// dead that long are removed.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	leaderCh := make(chan raft.Observation, 4)
	obs := raft.NewObserver(leaderCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-n.quit:
			return
		case <-t.C:
		case <-n.gos.wake:
		case <-leaderCh:
		}
		if inc, err := n.rep.Meta(incarnationKey); err == nil && n.gos.setInc(string(inc)) {
			if err := n.ml.UpdateNode(n.cfg.ProbeTimeout); err != nil {
				n.log.Warn("central: gossip the incarnation", "err", err)
			}
		}
		if n.raft.State() == raft.Leader {
			if err := n.reconcile(); err != nil {
				n.log.Warn("central: reconcile", "err", err)
			}
			n.reconciles.Add(1)
		}
	}
}

func (n *Node) reconcile() error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	known := map[string]raft.Server{}
	voters := 0
	for _, s := range servers {
		known[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	alive, dead := n.gos.snapshot()
	timeout := n.cfg.ApplyTimeout
	level, err := n.ClusterLevel()
	if err != nil {
		return err
	}
	inc := n.Incarnation()
	for id, m := range alive {
		if m.Raft == "" {
			continue
		}
		if _, ok := known[id]; !ok && m.Inc != "" && inc != "" && m.Inc != inc {
			// Its data directory holds another history (another
			// cluster's, or this one's before a restore): the FSM skips
			// the entries its replica claims to have applied, so it
			// would serve and vote with a state that is not the
			// cluster's. It joins once its directory is emptied.
			if n.gos.foreign(id, m.Inc) {
				n.log.Error("central: member whose data directory is of another cluster incarnation not added; empty its data directory to join",
					"id", id, "incarnation", m.Inc, "cluster", inc)
			}
			continue
		}
		if _, ok := known[id]; !ok && level > 1 && m.Level < level {
			// It would answer ops of the cluster's level as unknown ones
			// (levels.go): it joins once it is upgraded. Said once per
			// member and level, not on every tick.
			if n.gos.heldBack(id, m.Level) {
				n.log.Warn("central: member below the cluster's FSM level not added", "id", id, "level", m.Level, "cluster", level)
			}
			continue
		}
		s, ok := known[id]
		switch {
		case !ok || string(s.Address) != m.Raft:
			if (ok && s.Suffrage == raft.Voter) || voters < n.cfg.MaxVoters {
				if !ok {
					voters++
				}
				if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.Raft), 0, timeout).Error(); err != nil {
					return fmt.Errorf("add voter %s: %w", id, err)
				}
			} else if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(m.Raft), 0, timeout).Error(); err != nil {
				return fmt.Errorf("add non-voter %s: %w", id, err)
			}
			n.log.Info("central: member added to raft", "id", id, "raft", m.Raft)
		case s.Suffrage == raft.Nonvoter && voters < n.cfg.MaxVoters:
			voters++
			if err := n.raft.AddVoter(s.ID, s.Address, 0, timeout).Error(); err != nil {
				return fmt.Errorf("promote %s: %w", id, err)
			}
		}
	}
	// The configuration as it is now, with the members just added.
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	var ids []string
	levels := map[string]int{}
	for _, s := range servers {
		ids = append(ids, string(s.ID))
	}
	for id, m := range alive {
		levels[id] = m.Level
	}
	ctx, cancel := n.loopContext(timeout)
	err = n.raiseLevel(ctx, ids, levels)
	cancel()
	if err != nil {
		n.log.Warn("central: raise FSM level", "err", err)
	}
	if n.cfg.DeadNodeRemoveAfter > 0 {
		for id, since := range dead {
			if _, ok := known[id]; ok && id != n.cfg.NodeID && time.Since(since) > n.cfg.DeadNodeRemoveAfter {
				if err := n.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
					return fmt.Errorf("remove %s: %w", id, err)
				}
				n.log.Warn("central: dead member removed from raft", "id", id, "dead_since", since)
			}
		}
	}
	return nil
}

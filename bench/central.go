package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/node"
	"github.com/storeline/storeline/replication"
)

// centralContender is Storeline's head office as a chain runs it: three
// central nodes in this process (central.Open with central.DefaultConfig,
// Raft over loopback TCP, Badger on disk for the Raft log and the state
// machine), the first bootstrapping and the others joining through
// gossip. Each client is a shop with its own bearer token and its own
// keep-alive connection, pushing its journal's batches to the replication
// listener (POST /v1/replication/push, msgpack) as a store node's
// replication client does; shop i pushes to node i mod 3, so two shops in
// three reach a follower, which forwards the batch to the leader. A push
// is answered once its Raft entry is committed (fsynced by a quorum) and
// applied: marks, seen set, the events and the balances their postings
// move.
type centralContender struct {
	dir   string
	w     *workload
	batch int
	// registered puts every shop in central's master data, as a chain
	// runs it: central then costs each push's sales in its entry
	// (central/backoffice_cogs.go). Unregistered shops' sales are only
	// queued for costing, a cheaper path no chain stays on.
	registered bool
	nodes      []*central.Node
	clients    []*centralClient
	retries    atomic.Int64
}

type centralClient struct {
	pool  *eventPool
	token string
	url   string
	node  int // index of the node the shop pushes to
	batch int
	hc    *http.Client
	// retries counts pushes sent again (no answer, or 503).
	retries *atomic.Int64
}

func newCentralContender(dir string, w *workload, batch int, registered bool) *centralContender {
	return &centralContender{dir: dir, w: w, batch: batch, registered: registered}
}

func (c *centralContender) Name() string { return nameCentral }
func (c *centralContender) Unit() string { return "event" }

func (c *centralContender) Open(ctx context.Context, clients int) error {
	tokens := map[string]storeline.StoreID{}
	for i := range clients {
		pool, err := newEventPool(c.w, shopID(i), uint64(i))
		if err != nil {
			return err
		}
		cl := &centralClient{pool: pool, token: node.NewToken(), node: i % 3, batch: c.batch, retries: &c.retries,
			hc: &http.Client{Transport: &http.Transport{
				MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: time.Minute,
			}}}
		tokens[cl.token] = pool.shop
		c.clients = append(c.clients, cl)
	}
	secret := node.NewToken()
	for i := range 3 {
		cfg := central.DefaultConfig(filepath.Join(c.dir, fmt.Sprintf("c%d", i+1)))
		cfg.NodeID = fmt.Sprintf("c%d", i+1)
		cfg.ClusterSecret = secret
		cfg.ReplicationTokens = tokens
		if i > 0 {
			cfg.Bootstrap = false
			cfg.Seeds = []string{c.nodes[0].GossipAddr()}
		}
		n, err := central.Open(cfg)
		if err != nil {
			return fmt.Errorf("bench: open central node %s: %w", cfg.NodeID, err)
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.waitVoters(ctx, 3); err != nil {
		return err
	}
	// Central refuses a receipt of an item it does not know (a
	// rejection, which applies no postings): load the chain's master
	// data first, as head office holds it.
	recs := c.w.chain.Records(nil)
	if c.registered {
		for _, cl := range c.clients {
			st := *c.w.chain.Store
			st.ID, st.Name = cl.pool.shop, "Bench shop "+string(cl.pool.shop)
			recs = append(recs, &st)
		}
	}
	if _, err := c.leader().PutRecords(ctx, "bench-master", recs...); err != nil {
		return fmt.Errorf("bench: central: load %d master records: %w", len(recs), err)
	}
	for _, cl := range c.clients {
		cl.url = c.nodes[cl.node].ReplicationURL() + "/v1/replication/push"
	}
	return nil
}

// waitVoters waits until the cluster has want voters and a leader: the
// first node bootstraps alone, and its leader adds the others as gossip
// finds them.
func (c *centralContender) waitVoters(ctx context.Context, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		leader, members, err := c.nodes[0].Cluster(ctx)
		voters := 0
		for _, m := range members {
			if m.Suffrage == "Voter" && m.Error == "" {
				voters++
			}
		}
		if err == nil && leader != "" && voters == want && c.leader() != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: central has %d of %d voters (leader %q) after 60 s: %v", voters, want, leader, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling the cluster's formation with a deadline
		}
	}
}

// leader returns the node that is leader now, or nil.
func (c *centralContender) leader() *central.Node {
	for _, n := range c.nodes {
		if n.IsLeader() {
			return n
		}
	}
	return nil
}

func (c *centralContender) Client(i int) Client { return c.clients[i] }

func (c *centralContender) Describe(context.Context) (string, error) {
	cfg := central.DefaultConfig("")
	leader := "none"
	if l := c.leader(); l != nil {
		leader = l.ID()
	}
	return fmt.Sprintf("3 central nodes in process (central.DefaultConfig: heartbeat %v, election %v, commit timeout %v, MaxAppendEntries %d; Raft log ledger.LogStore on Badger with SyncWrites, FSM state on Badger), leader %s at the end; "+
		"each shop pushes POST /v1/replication/push (msgpack, its own bearer token and connection) to node i mod 3, a follower forwarding to the leader; answered after the entry is committed and applied; batch %d events of about %d bytes; %s; %d pushes sent again (no answer or 503)",
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.CommitTimeout, cfg.MaxAppendEntries, leader, c.batch, c.clients[0].pool.eventBytes(), c.shops(), c.retries.Load()), nil
}

func (c *centralContender) shops() string {
	if c.registered {
		return "shops in the master data (sales costed in each push's entry)"
	}
	return "shops NOT in the master data (sales queued for costing, not costed)"
}

// Check makes each node's state current (Linearize), then checks on every
// node that each shop's mark is the last seq it pushed and that every
// event was applied once and accepted: the sum over shops is what the run
// acknowledged.
func (c *centralContender) Check(ctx context.Context, acked int64) error {
	var pushed int64
	for _, cl := range c.clients {
		pushed += int64(cl.pool.pushed())
	}
	if pushed != acked {
		return fmt.Errorf("central clients pushed %d events, %d were acknowledged", pushed, acked)
	}
	var errs []error
	for _, n := range c.nodes {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.Linearize(lctx)
		cancel()
		if err != nil {
			return fmt.Errorf("central node %s: linearize: %w", n.ID(), err)
		}
		var held int64
		for _, cl := range c.clients {
			marks, err := n.Marks(cl.pool.shop)
			if err != nil {
				return fmt.Errorf("central node %s: marks of %s: %w", n.ID(), cl.pool.shop, err)
			}
			var mark uint64
			for _, m := range marks {
				if m.Epoch == shopEpoch {
					mark = m.Seq
				}
			}
			st, err := n.ShopStats(cl.pool.shop)
			if err != nil {
				return fmt.Errorf("central node %s: stats of %s: %w", n.ID(), cl.pool.shop, err)
			}
			if mark != cl.pool.pushed() || st.Events != mark || st.Rejections != 0 || st.Duplicates != 0 {
				errs = append(errs, fmt.Errorf("central node %s, %s: mark %d, %d events applied (%d rejected, %d duplicates), %d pushed",
					n.ID(), cl.pool.shop, mark, st.Events, st.Rejections, st.Duplicates, cl.pool.pushed()))
			}
			held += int64(mark)
		}
		if held != acked {
			errs = append(errs, fmt.Errorf("central node %s holds %d events, %d were acknowledged", n.ID(), held, acked))
		}
	}
	return errors.Join(errs...)
}

func (c *centralContender) Close() error {
	for _, cl := range c.clients {
		cl.hc.CloseIdleConnections()
	}
	var errs []error
	for _, n := range slices.Backward(c.nodes) {
		if err := n.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close central node %s: %w", n.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// pushBody is replication.PushRequest with its events already encoded: the
// same msgpack on the wire, so the bytes sent are the bytes the other
// central contenders store.
type pushBody struct {
	V      uint16               `msgpack:"v"`
	Store  string               `msgpack:"st"`
	Epoch  uint64               `msgpack:"e"`
	Events []msgpack.RawMessage `msgpack:"ev"`
}

func (cl *centralClient) Do(ctx context.Context) (int, error) {
	first, evs, err := cl.pool.batch(cl.batch)
	if err != nil {
		return 0, err
	}
	body, err := replication.Encode(&pushBody{V: replication.ProtocolVersion, Store: string(cl.pool.shop), Epoch: shopEpoch, Events: evs})
	if err != nil {
		return 0, fmt.Errorf("central push of %s seq %d: encode: %w", cl.pool.shop, first, err)
	}
	want := replication.Position{Epoch: shopEpoch, Seq: first + uint64(len(evs)) - 1}
	// As a shop's replication client does, a push that got no answer or a
	// 503 (an election on the shared machine) is sent again: central
	// skips what it already applied and answers with the same mark.
	for attempt := 0; ; attempt++ {
		out, retry, err := cl.push(ctx, body)
		if retry && ctx.Err() == nil {
			cl.retries.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // backoff before a resend
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("central push of %s seq %d–%d to node %d (attempt %d): %w", cl.pool.shop, first, want.Seq, cl.node+1, attempt+1, err)
		}
		applied := out.Applied == len(evs) || attempt > 0 // a resend finds some or all applied
		if out.Gap != nil || out.Acked != want || !applied || len(out.Rejections) != 0 {
			return 0, fmt.Errorf("central push of %s seq %d–%d: acked %v (gap %v), %d applied, %d duplicates, %d rejections; want all %d applied",
				cl.pool.shop, first, want.Seq, out.Acked, out.Gap, out.Applied, out.Duplicates, len(out.Rejections), len(evs))
		}
		return len(evs), nil
	}
}

// push sends one push and decodes the answer; retry reports an outcome
// that resending may fix (no answer, 503).
func (cl *centralClient) push(ctx context.Context, body []byte) (out replication.PushResponse, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.url, bytes.NewReader(body))
	if err != nil {
		return out, false, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/msgpack")
	resp, err := cl.hc.Do(req)
	if err != nil {
		return out, true, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, true, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return out, resp.StatusCode == http.StatusServiceUnavailable, fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := replication.Decode(b, &out); err != nil {
		return out, false, fmt.Errorf("answer: %w", err)
	}
	return out, false, nil
}

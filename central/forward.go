package central

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/replication"
)

// Node-to-node calls go over the head-office listener under /internal/v1,
// authenticated by the cluster secret. A follower has already
// authenticated its caller before it forwards anything.
const secretHeader = "X-Storeline-Cluster-Secret"

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// internalBodyLimit bounds a node-to-node body: a command forwarded to
// the leader, or its answer. It is not the head-office API's MaxBodyBytes
// alone: a push entry a follower builds from a shop's batch (bounded by
// the replication listener's request limit, one event of which may fill
// an entry) may be larger, and the receiving node checked every request
// against its own limit before it built the command.
func (n *Node) internalBodyLimit() int64 {
	return 2 * max(n.cfg.MaxBodyBytes, replication.DefaultServerConfig().MaxRequestBytes)
}

// readInternal reads a node-to-node body of at most limit bytes; a
// longer one is TooLarge, never silently cut short.
func readInternal(op string, r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, storeline.Errorf(storeline.TooLarge, op, "body over %d bytes", limit)
	}
	return b, nil
}

func (n *Node) clusterAuth(r *http.Request) bool {
	if n.cfg.ClusterSecret == "" {
		return false
	}
	got, want := sha256Sum(r.Header.Get(secretHeader)), sha256Sum(n.cfg.ClusterSecret)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// leaderAPI returns the head-office API address of the current leader.
func (n *Node) leaderAPI(op string) (string, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", storeline.Errorf(storeline.Unavailable, op, "no leader known; nothing was applied, retry")
	}
	if string(id) == n.cfg.NodeID {
		return n.apiAddr, nil
	}
	m, ok := n.gos.meta(string(id))
	if !ok || m.API == "" {
		return "", storeline.Errorf(storeline.Unavailable, op, "leader %s has no known API address yet; nothing was applied, retry", id)
	}
	return m.API, nil
}

func (n *Node) internalCall(ctx context.Context, op, addr, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, storeline.E(op, storeline.Internal, err)
	}
	req.Header.Set(secretHeader, n.cfg.ClusterSecret)
	req.Header.Set("Content-Type", "application/msgpack")
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("outcome unknown, retrying with the same idempotency key is safe: %w", err))
	}
	defer resp.Body.Close()
	b, err := readInternal(op, resp.Body, n.internalBodyLimit())
	if err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("outcome unknown, retrying with the same idempotency key is safe: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		var p problem
		_ = json.Unmarshal(b, &p)
		kind := storeline.ParseKind(p.Kind)
		if kind == storeline.Internal {
			kind = storeline.Unavailable
		}
		return nil, &storeline.Error{Op: op, Kind: kind, Field: p.Field, Err: fmt.Errorf("leader at %s: %s", addr, p.Detail)}
	}
	return b, nil
}

func (n *Node) forwardSubmit(ctx context.Context, c *command) (*Result, error) {
	const op = "central.Submit"
	addr, err := n.leaderAPI(op)
	if err != nil {
		return nil, err
	}
	body, err := msgpack.Marshal(c)
	if err != nil {
		return nil, storeline.E(op, storeline.Internal, err)
	}
	b, err := n.internalCall(ctx, op, addr, "/internal/v1/submit", body)
	if err != nil {
		return nil, err
	}
	var res Result
	if err := msgpack.Unmarshal(b, &res); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("outcome unknown, undecodable answer: %w", err))
	}
	// A shop's push is answered with the leader's outcome at once: its
	// answer (acknowledged position, gap, marks, rejections) is the
	// leader's FSM result, committed; the shop's next push is decided on
	// the leader too, and a pull from this node that has not applied it
	// yet shows lower marks, which costs the shop one empty push answered
	// by the leader (replication.centralLost), never a resend. Waiting
	// here for a lagging follower (slow disk, catching up after a
	// restart) ran every push through it past the shop's RequestTimeout:
	// no acknowledgement of what the leader had committed.
	if c.Op == OpReplicationPush {
		return &res, nil
	}
	// Read your writes: a client's next read through this node sees what
	// it wrote through it.
	if err := n.waitApplied(ctx, res.Index, op); err != nil {
		return nil, storeline.E(op, storeline.Unavailable, fmt.Errorf("applied at index %d on the leader, not yet here: %w", res.Index, err))
	}
	return &res, nil
}

func (n *Node) forwardReadIndex(ctx context.Context) (uint64, error) {
	const op = "central.Linearize"
	addr, err := n.leaderAPI(op)
	if err != nil {
		return 0, err
	}
	b, err := n.internalCall(ctx, op, addr, "/internal/v1/readindex", nil)
	if err != nil {
		return 0, err
	}
	var idx uint64
	if err := msgpack.Unmarshal(b, &idx); err != nil {
		return 0, storeline.E(op, storeline.Unavailable, err)
	}
	return idx, nil
}

// NodeStatus is one node's view, as GET /v1/cluster shows it.
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	APIAddr      string `json:"api_addr,omitempty"`
	Suffrage     string `json:"suffrage"`
	Leader       bool   `json:"leader"`
	State        string `json:"state,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	Error        string `json:"error,omitempty"`
}

func (n *Node) localStatus() NodeStatus {
	return NodeStatus{
		ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), APIAddr: n.apiAddr,
		Leader: n.IsLeader(), State: n.raft.State().String(),
		AppliedIndex: n.rep.AppliedIndex(), CommitIndex: n.raft.CommitIndex(), Term: n.raft.CurrentTerm(),
	}
}

// Cluster returns every Raft member with its own view (state, applied
// index), asked of each node; a node that does not answer has Error set.
func (n *Node) Cluster(ctx context.Context) (leader string, members []NodeStatus, err error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", nil, storeline.E("central.Cluster", storeline.Unavailable, err)
	}
	_, lid := n.raft.LeaderWithID()
	for _, s := range f.Configuration().Servers {
		st := NodeStatus{ID: string(s.ID), RaftAddr: string(s.Address)}
		if string(s.ID) == n.cfg.NodeID {
			st = n.localStatus()
		} else if m, ok := n.gos.meta(string(s.ID)); ok && m.API != "" {
			b, err := n.internalCall(ctx, "central.Cluster", m.API, "/internal/v1/status", nil)
			if err == nil {
				err = json.Unmarshal(b, &st)
			}
			if err != nil {
				st.Error = err.Error()
			}
			st.APIAddr = m.API
		} else {
			st.Error = "not seen by gossip"
		}
		st.ID, st.RaftAddr = string(s.ID), string(s.Address)
		st.Suffrage = s.Suffrage.String()
		st.Leader = s.ID == lid
		members = append(members, st)
	}
	return string(lid), members, nil
}

// internalHandler serves /internal/v1/ to other nodes.
func (n *Node) internalHandler(w http.ResponseWriter, r *http.Request) {
	if !n.clusterAuth(r) {
		writeProblem(w, r, storeline.Errorf(storeline.Unauthorized, "central.internal", "cluster secret required"))
		return
	}
	if r.Method != http.MethodPost {
		writeProblem(w, r, storeline.Errorf(storeline.Invalid, "central.internal", "POST only"))
		return
	}
	switch r.URL.Path {
	case "/internal/v1/submit":
		b, err := readInternal("central.internal", r.Body, n.internalBodyLimit())
		if err != nil {
			if storeline.KindOf(err) != storeline.TooLarge {
				err = storeline.E("central.internal", storeline.Invalid, err)
			}
			n.problem(w, r, err)
			return
		}
		var c command
		if err := msgpack.Unmarshal(b, &c); err != nil {
			writeProblem(w, r, storeline.E("central.internal", storeline.Invalid, err))
			return
		}
		// The entry carries the leader's time, whatever the follower's
		// clock said (fsm.go invariant 5). Idempotency is by key and
		// payload, so a retry stamped anew is still recognised.
		c.AtMs = n.now().UnixMilli()
		res, err := n.submit(r.Context(), &c, false)
		if err != nil {
			n.problem(w, r, err)
			return
		}
		out, _ := msgpack.Marshal(res)
		w.Header().Set("Content-Type", "application/msgpack")
		w.Write(out)
	case "/internal/v1/readindex":
		if n.raft.State() != raft.Leader {
			writeProblem(w, r, storeline.Errorf(storeline.Unavailable, "central.readindex", "not the leader"))
			return
		}
		idx, err := n.barrier(r.Context())
		if err != nil {
			n.problem(w, r, err)
			return
		}
		out, _ := msgpack.Marshal(idx)
		w.Write(out)
	case "/internal/v1/status":
		json.NewEncoder(w).Encode(n.localStatus())
	default:
		writeProblem(w, r, storeline.Errorf(storeline.NotFound, "central.internal", "no %s", r.URL.Path))
	}
}

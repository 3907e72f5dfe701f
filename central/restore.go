package central

// Restoring the central cluster from a backup, and the cluster's
// incarnation.
//
// A central node's backup is a copy of its data directory taken while it
// is stopped. Restoring every node from such copies (disaster recovery)
// takes the cluster's history back in time: the Raft indexes, and so the
// master-data versions the shops' pull cursors are, are handed out again
// to other changes. A shop whose cursor is such a version would skip what
// was written at or below it since the restore, and nothing at central
// alone can tell a restored history from the one it copies.
//
// So the cluster has an incarnation: a random ID, set through Raft when
// the cluster first has a leader and replaced after a restore. Every pull
// answer carries it and every pull request carries the one the shop's
// cursor belongs to; a mismatch is answered with a resync from scratch
// (backend.pull). The restore itself is what says the history changed:
// RestoreBackup (or MarkRestored after copying by other means) leaves a
// marker in the data directory, and the node, once it is part of a working
// cluster, replaces the incarnation and removes the marker.
//
// Invariants:
//
//  1. The incarnation changes only by compare-and-set (OpIncarnation):
//     the marker names the incarnation its backup held, so when every
//     node of the cluster is restored from copies of one moment, the first
//     node to apply its change wins and the others' are no-ops; the shops
//     resync once.
//  2. A marker is removed only after its change was applied (or found
//     superseded); a crash before that submits it again under the same
//     idempotency key, which the FSM answers without applying twice.
//  3. A node restored alone among running peers catches up from the
//     leader and loses no history; marking it too makes the shops resync
//     once, needlessly but safely (a resync is applied idempotently).

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// OpIncarnation sets the cluster's incarnation if it is still the one
// the payload names.
const OpIncarnation = "cluster.incarnation"

// incarnationKey holds the incarnation in the replica's metadata.
const incarnationKey = "cluster/incarnation"

// RestoredMarker is the file in a node's data directory that says the
// directory was restored from a backup.
const RestoredMarker = "RESTORED"

type incarnationPayload struct {
	From string `msgpack:"f"`
	To   string `msgpack:"t"`
}

// incarnationOutcome is OpIncarnation's answer: the incarnation after the
// entry, and whether the entry set it.
type incarnationOutcome struct {
	Now     string `msgpack:"n"`
	Changed bool   `msgpack:"c,omitempty"`
}

func incarnationOps() []Op { return []Op{{OpIncarnation, applyIncarnation}} }

func applyIncarnation(tx *Tx, payload []byte) ([]byte, error) {
	var p incarnationPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable incarnation change: %v", err)
	}
	if p.To == "" || len(p.To) > 64 {
		return nil, storeline.Invalidf("t", "incarnation %q: want 1 to 64 characters", p.To)
	}
	cur, err := tx.Meta(incarnationKey)
	if err != nil {
		return nil, err
	}
	out := incarnationOutcome{Now: string(cur)}
	if string(cur) == p.From {
		if err := tx.SetMeta(incarnationKey, []byte(p.To)); err != nil {
			return nil, err
		}
		out = incarnationOutcome{Now: p.To, Changed: true}
	}
	return msgpack.Marshal(&out)
}

// incarnationOf reads the incarnation in a read transaction.
func incarnationOf(rt *ledger.ReplicaTxn) (string, error) {
	v, err := rt.Meta(incarnationKey)
	return string(v), err
}

// Incarnation returns the cluster's incarnation as this node has applied
// it ("" before the first leader set one).
func (n *Node) Incarnation() string {
	v, err := n.rep.Meta(incarnationKey)
	if err != nil {
		return ""
	}
	return string(v)
}

func newIncarnationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// restoreMark is the marker file's content.
type restoreMark struct {
	// From is the incarnation the restored state holds; To replaces it.
	From string `json:"from"`
	To   string `json:"to"`
}

// RestoreBackup restores a backup (a copy of a stopped node's data
// directory) into dataDir, which must be absent or empty, and marks it
// restored (MarkRestored). Restore every node of the cluster this way,
// then start them.
func RestoreBackup(backup, dataDir string) error {
	const op = "central.RestoreBackup"
	if des, err := os.ReadDir(dataDir); err == nil && len(des) > 0 {
		return storeline.Errorf(storeline.Conflict, op, "data directory %s is not empty; restore only into an empty one", dataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storeline.E(op, storeline.Unavailable, err)
	}
	if _, err := os.Stat(filepath.Join(backup, "fsm")); err != nil {
		return storeline.E(op, storeline.Invalid, fmt.Errorf("%s is not a central node's data directory: %w", backup, err))
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	if err := os.CopyFS(dataDir, os.DirFS(backup)); err != nil {
		return storeline.E(op, storeline.Unavailable, fmt.Errorf("copy %s: %w", backup, err))
	}
	if err := syncTree(dataDir); err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	return MarkRestored(dataDir)
}

// MarkRestored marks a stopped node's data directory as restored from a
// backup (copied back by other means than RestoreBackup): once the node
// is part of a working cluster it gives the cluster a new incarnation, so
// the shops resync. It reads the directory's state, so the node must be
// stopped.
func MarkRestored(dataDir string) error {
	const op = "central.MarkRestored"
	// Opening a replica creates one where there is none: check first.
	if _, err := os.Stat(filepath.Join(dataDir, "fsm")); err != nil {
		return storeline.E(op, storeline.Invalid, fmt.Errorf("%s is not a central node's data directory: %w", dataDir, err))
	}
	rep, err := ledger.OpenReplica(filepath.Join(dataDir, "fsm"), ledger.ReplicaOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	from, err := rep.Meta(incarnationKey)
	if cerr := rep.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	b, err := json.Marshal(restoreMark{From: string(from), To: newIncarnationID()})
	if err != nil {
		return storeline.E(op, storeline.Internal, err)
	}
	if err := writeFileSync(filepath.Join(dataDir, RestoredMarker), b); err != nil {
		return storeline.E(op, storeline.Unavailable, err)
	}
	return nil
}

// readRestoreMark returns the data directory's marker, nil if none.
func readRestoreMark(dataDir string) (*restoreMark, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, RestoredMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m restoreMark
	if err := json.Unmarshal(b, &m); err != nil || m.To == "" {
		return nil, fmt.Errorf("restore marker %s: bad content %q", filepath.Join(dataDir, RestoredMarker), b)
	}
	return &m, nil
}

// incarnationLoop gives the cluster its first incarnation (on the leader,
// if the state has none) and, if the data directory was marked restored,
// a new one; then it ends.
func (n *Node) incarnationLoop() {
	defer n.wg.Done()
	mark, err := readRestoreMark(n.cfg.DataDir)
	if err != nil {
		// Not guessed: a restore the shops do not hear of loses data
		// for them, so say it loudly and leave the file for an operator.
		n.log.Error("central: restore marker unreadable; the cluster's incarnation is not replaced", "err", err)
	}
	t := time.NewTicker(n.cfg.HeartbeatTimeout)
	defer t.Stop()
	for {
		if mark == nil && n.Incarnation() != "" {
			return
		}
		select {
		case <-n.quit:
			return
		case <-t.C:
		}
		switch {
		case mark != nil:
			if n.Leader() == "" {
				continue // not part of a working cluster yet
			}
			if err := n.setIncarnation(mark.From, mark.To, true); err != nil {
				n.log.Warn("central: replace the incarnation after a restore", "err", err)
				continue
			}
			if err := removeSync(filepath.Join(n.cfg.DataDir, RestoredMarker)); err != nil {
				n.log.Error("central: remove the restore marker", "err", err)
				continue // the change is applied; submitting it again is a no-op
			}
			n.log.Info("central: restored from a backup: new incarnation", "from", mark.From, "to", mark.To, "now", n.Incarnation())
			mark = nil
		case n.raft.State() == raft.Leader:
			if err := n.setIncarnation("", newIncarnationID(), false); err != nil {
				n.log.Warn("central: set the first incarnation", "err", err)
			}
		}
	}
}

// firstIncarnation gives a cluster just bootstrapped its incarnation
// before Open returns, so the entry is the cluster's first and never
// lands among a caller's first writes. The bootstrapping node is the only
// voter, so it elects itself; if that takes longer than ApplyTimeout,
// incarnationLoop sets it later.
func (n *Node) firstIncarnation() {
	for deadline := time.Now().Add(n.cfg.ApplyTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if n.raft.State() != raft.Leader {
			continue
		}
		// Not forwarded: gossip, which finds the leader, is not up yet.
		if err := n.setIncarnation("", newIncarnationID(), false); err != nil {
			n.log.Warn("central: set the first incarnation", "err", err)
			continue
		}
		return
	}
}

// setIncarnation submits the compare-and-set from → to (forwarded to the
// leader if mayForward).
func (n *Node) setIncarnation(from, to string, mayForward bool) error {
	p, err := msgpack.Marshal(&incarnationPayload{From: from, To: to})
	if err != nil {
		return err
	}
	ctx, cancel := n.loopContext(n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.submit(ctx, &command{Op: OpIncarnation, Key: "incarnation:" + to, AtMs: n.now().UnixMilli(), Payload: p}, mayForward)
	if err != nil {
		return err
	}
	return res.Err()
}

// writeFileSync writes a file through a temporary one, fsyncs it, renames
// it into place and fsyncs the directory.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func removeSync(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncTree fsyncs every file and directory under root, so a restored
// copy is durable before the node starts on it.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(path)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

package central

// FSM levels: what lets central's nodes be upgraded one at a time when a
// new version adds Raft operations. A node of the old version answers an
// op it does not know with an error and moves on, while a new node
// applies it, so an entry with a new op in a mixed cluster would leave
// the replicas different. Therefore:
//
//  1. Every op belongs to the FSM level that introduced it (opLevels; an
//     op not listed is of level 1, the ops every node had before levels
//     existed). A binary applies the ops up to its own level, FSMLevel,
//     and tells the others through gossip.
//  2. The cluster's level is state (clusterLevelKey, absent: 1), changed
//     only by OpClusterLevel, which raises it and never lowers it. The
//     leader proposes it when every server of the Raft configuration,
//     itself included, tells a higher level: a node that tells none (one
//     of a version before levels) holds the cluster where it is.
//  3. An op above the cluster's level is refused before it reaches the
//     log (Unavailable naming the levels: finish the upgrade), and if an
//     entry holding one is applied all the same (a leader that proposed it
//     just before losing the race with a configuration change), every
//     replica answers it exactly as a node that does not know the op
//     does, so old and new replicas stay equal.

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/ledger"
)

// FSMLevel is the highest FSM level this binary applies. A version that
// adds Raft ops raises it and lists the new ops in opLevels.
//
//	1  the ops of every node before levels existed
//	2  supplier payments and the payables index, backfilled by the raise
//	   (settlements.go); a pre-grant's id compared with what it granted
//	   (loyalty.go)
//	3  cancelling a supplier payment (settlements.go, invariant 5)
//	4  purchase orders, and the order an incoming invoice fulfils
//	   (orders.go); a payment cancel's own day (settlements.go,
//	   levelCancelDate)
//	5  settlements with buyers: outgoing invoices and buyer returns,
//	   buyer payments and their cancel, the receivables index
//	   (receivables.go; nothing moved a receivable before, so no backfill)
//	6  an item's internal EAN-13, allocated from a counter in the state
//	   (internal_barcodes.go)
//	7  saved report definitions (reports_saved.go)
//	8  a buyer return puts back into the shop's batches what its buyer's
//	   outgoing invoices took (backoffice_batches.go,
//	   levelBuyerReturnBatches)
//	9  a supplier's statement indexes a transfer by hand as a buyer's
//	   does: a payment's reason makes a payment row only for the
//	   payment's own event, and a missing payment or document is named
//	   with its reason (settlements.go, levelPayableRows); on both sides
//	   a document's reason makes that document's row only for its own
//	   post or cancel (settlement_core.go, docOwnEvent)
//	10 a buyer return may name the outgoing invoice it returns, no more
//	   than it sold less its other returns, its units back into that
//	   invoice's batches first (backoffice_batches.go, levelReturnInvoice)
const FSMLevel = 10

// opLevels gives the level of the ops introduced after level 1. Tests
// add theirs before they start nodes.
var opLevels = map[string]int{
	OpSupplierPayment:       2,
	OpPayablesBackfill:      2,
	OpSupplierPaymentCancel: 3,
	OpOrder:                 4,
	OpBuyerPayment:          5,
	OpBuyerPaymentCancel:    5,
	OpInternalBarcode:       6,
	OpReportPut:             levelSavedReports, // reports_saved.go
	OpReportDelete:          levelSavedReports,
}

// levelGrantCheck is the level from which a pre-grant's id is compared
// with what it granted (loyalty.go, invariant 4): below it the op answers
// as the nodes of a version before that do.
const levelGrantCheck = 2

// opLevel returns the FSM level that introduced op.
func opLevel(op string) int {
	if l, ok := opLevels[op]; ok {
		return l
	}
	return 1
}

// OpClusterLevel raises the cluster's FSM level (invariant 2).
const OpClusterLevel = "cluster.level"

const clusterLevelKey = "cluster/level" // → level8

type clusterLevelPayload struct {
	Level int `msgpack:"l"`
}

// levelOps are the ops of levels.go and those of levels above 2 (the
// settlement ops of level 2 but the backfill are registered with the
// back office's, backoffice.go).
func levelOps() []Op {
	return []Op{{OpClusterLevel, applyClusterLevel}, {OpPayablesBackfill, applyPayablesBackfill},
		{OpSupplierPaymentCancel, applySupplierPaymentCancel}, // settlements.go
		{OpOrder, applyOrder},                                                                // orders.go
		{OpBuyerPayment, applyBuyerPayment}, {OpBuyerPaymentCancel, applyBuyerPaymentCancel}, // receivables.go
		{OpInternalBarcode, applyInternalBarcode},                          // internal_barcodes.go
		{OpReportPut, applyReportPut}, {OpReportDelete, applyReportDelete}} // reports_saved.go
}

func applyClusterLevel(tx *Tx, payload []byte) ([]byte, error) {
	var p clusterLevelPayload
	if err := msgpack.Unmarshal(payload, &p); err != nil {
		return nil, storeline.Invalidf("", "undecodable level change: %v", err)
	}
	cur, err := readClusterLevel(tx.ReplicaTxn)
	if err != nil {
		return nil, err
	}
	if p.Level <= cur {
		return nil, nil // raised already: levels never go down
	}
	if err := tx.SetMeta(clusterLevelKey, ledger.PutU64(uint64(p.Level))); err != nil {
		return nil, err
	}
	if cur < opLevel(OpSupplierPayment) && p.Level >= opLevel(OpSupplierPayment) {
		// What moved payables before the index existed (settlements.go,
		// invariant 4): once only, when the cluster first reaches level 2
		// (from 1 to 2, or straight to a higher level), never on a later
		// raise.
		return nil, startPayablesBackfill(tx)
	}
	return nil, nil
}

// readClusterLevel returns the cluster's FSM level as rt has it.
func readClusterLevel(rt *ledger.ReplicaTxn) (int, error) {
	v, err := rt.Meta(clusterLevelKey)
	if err != nil || v == nil {
		return 1, err
	}
	return int(ledger.U64(v)), nil
}

// ClusterLevel returns the cluster's FSM level as this node has applied it.
func (n *Node) ClusterLevel() (int, error) {
	v, err := n.rep.Meta(clusterLevelKey)
	if err != nil || v == nil {
		return 1, err
	}
	return int(ledger.U64(v)), nil
}

// level is the FSM level this node tells the others: its binary's,
// unless a test set another (negative: none, as a node of a version
// before levels).
func (n *Node) level() int {
	switch {
	case n.cfg.fsmLevel < 0:
		return 0
	case n.cfg.fsmLevel > 0:
		return n.cfg.fsmLevel
	}
	return FSMLevel
}

// checkLevel refuses an op the cluster's level does not allow yet
// (invariant 3).
func (n *Node) checkLevel(op string) error {
	return n.checkLevelAt(opLevel(op), "op "+op)
}

// checkLevelAt refuses (Unavailable) what needs FSM level need while the
// cluster runs a lower one.
func (n *Node) checkLevelAt(need int, what string) error {
	if need <= 1 {
		return nil
	}
	cur, err := n.ClusterLevel()
	if err != nil {
		return storeline.E("central.Submit", storeline.Unavailable, err)
	}
	if need > cur {
		return storeline.Errorf(storeline.Unavailable, "central.Submit",
			"%s needs FSM level %d and the cluster runs level %d: upgrade every central node first", what, need, cur)
	}
	return nil
}

// raiseLevel proposes OpClusterLevel when every server of the Raft
// configuration tells a level above the cluster's (invariant 2), then
// goes on with the work a raise left to the leader (the payables
// backfill, settlements.go). levels holds what gossip told of the other
// servers; a server it lacks holds the cluster where it is.
func (n *Node) raiseLevel(ctx context.Context, servers []string, levels map[string]int) error {
	if err := n.proposeLevel(ctx, servers, levels); err != nil {
		return err
	}
	return n.backfillPayables(ctx)
}

func (n *Node) proposeLevel(ctx context.Context, servers []string, levels map[string]int) error {
	low := n.level()
	for _, id := range servers {
		if id == n.cfg.NodeID {
			continue
		}
		l, ok := levels[id]
		if !ok || l < 1 {
			return nil
		}
		low = min(low, l)
	}
	cur, err := n.ClusterLevel()
	if err != nil || low <= cur {
		return err
	}
	b, err := msgpack.Marshal(&clusterLevelPayload{Level: low})
	if err != nil {
		return err
	}
	res, err := n.submit(ctx, &command{Op: OpClusterLevel, Key: fmt.Sprintf("level/%d", low), AtMs: n.now().UnixMilli(), Payload: b}, false)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	n.log.Info("central: cluster FSM level raised", "from", cur, "to", low)
	return nil
}

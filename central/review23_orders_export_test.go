package central

import (
	"fmt"
	"testing"

	"github.com/storeline/storeline/ledger"
)

// SetOrderScanBound makes the order listings examine at most n index
// entries or records a page until t ends. Call it before any node
// starts: the nodes' goroutines read it unsynchronised.
func SetOrderScanBound(t testing.TB, n int) {
	was := orderScanBound
	orderScanBound = n
	t.Cleanup(func() { orderScanBound = was })
}

// OpUnindexOrders drops the purchase orders' store indexes and their
// mark, leaving the state a build before the index wrote.
const OpUnindexOrders = "test.unindex_orders"

func init() { opLevels[OpUnindexOrders] = opLevel(OpOrder) }

// UnindexOrdersOp is OpUnindexOrders for Open.
func UnindexOrdersOp() Op {
	return Op{OpUnindexOrders, func(tx *Tx, _ []byte) ([]byte, error) {
		keys, err := orderIndexState(tx.ReplicaTxn)
		if err != nil {
			return nil, err
		}
		for k := range keys {
			if err := tx.SetMeta(k, nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}}
}

// orderIndexState returns the store index keys and mark as stored.
func orderIndexState(rt *ledger.ReplicaTxn) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range []string{poByStore, poOpen, poIndexed} {
		if err := rt.ScanMeta(p, func(k string, v []byte) (bool, error) {
			out[k] = string(v)
			return true, nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OrderIndex returns this node's store index keys and mark, and those
// the orders' records make (invariant 7): equal unless an order write
// left its index behind.
func (n *Node) OrderIndex() (live, rebuilt map[string]string, err error) {
	err = n.rep.View(func(rt *ledger.ReplicaTxn) error {
		if live, err = orderIndexState(rt); err != nil {
			return err
		}
		rebuilt = map[string]string{poIndexed: "1"}
		return rt.ScanMeta(poOrder, func(k string, _ []byte) (bool, error) {
			o, _, err := getOrder(rt, k[len(poOrder):])
			if err != nil {
				return false, fmt.Errorf("order %s: %w", k, err)
			}
			status := o.status()
			rebuilt[storeOrderKey(poByStore, o.Store, o.ID)] = status
			if expectsGoods(status) {
				rebuilt[storeOrderKey(poOpen, o.Store, o.ID)] = status
			}
			return true, nil
		})
	})
	return live, rebuilt, err
}

// SetShopOrderLines bounds the order lines of a shop's page of orders to
// n until t ends. Call it before any node starts.
func SetShopOrderLines(t testing.TB, n int) {
	was := maxShopOrderLines
	maxShopOrderLines = n
	t.Cleanup(func() { maxShopOrderLines = was })
}

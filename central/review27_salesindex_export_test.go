package central

import "github.com/storeline/storeline/ledger"

// OpUnindexSales drops the sales date index and its low marks, leaving
// the state a build before the index wrote.
const OpUnindexSales = "test.unindex_sales"

// UnindexSalesOp is OpUnindexSales for Open.
func UnindexSalesOp() Op {
	return Op{OpUnindexSales, func(tx *Tx, _ []byte) ([]byte, error) {
		keys, err := salesIndexState(tx.ReplicaTxn)
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

// salesIndexState returns the sales date index's keys and low marks as
// stored.
func salesIndexState(rt *ledger.ReplicaTxn) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range []string{rpSaleDate, rpSaleLow} {
		if err := rt.ScanMeta(p, func(k string, v []byte) (bool, error) {
			out[k] = string(v)
			return true, nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SalesIndex returns this node's sales date index keys and low marks.
func (n *Node) SalesIndex() (map[string]string, error) {
	var out map[string]string
	err := n.rep.View(func(rt *ledger.ReplicaTxn) (err error) {
		out, err = salesIndexState(rt)
		return err
	})
	return out, err
}

// SalesIndexKey and SalesLowKey are the prefixes of the index's keys and low marks.
const SalesIndexKey, SalesLowKey = rpSaleDate, rpSaleLow

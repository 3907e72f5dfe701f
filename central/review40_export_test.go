package central

import (
	"github.com/storeline/storeline/ledger"
)

// Review40Meta returns this node's metadata under prefix, values as
// stored, so tests can compare replicas and see what an entry wrote.
func (n *Node) Review40Meta(prefix string) (map[string]string, error) {
	out := map[string]string{}
	err := n.rep.View(func(rt *ledger.ReplicaTxn) error {
		return rt.ScanMeta(prefix, func(k string, v []byte) (bool, error) {
			out[k] = string(v)
			return true, nil
		})
	})
	return out, err
}

package chain

import (
	"time"

	"github.com/storeline/storeline/ledger"

	"github.com/storeline/storeline"
	"github.com/storeline/storeline/central"
	"github.com/storeline/storeline/internal/sample"
)

// The replication link between shops and central: every central node
// serves the replication protocol on its own listener, and each shop
// reaches each node through a fault proxy (chain.go), with a bearer token
// central maps to its store. When linked is false, shops are provisioned
// through their own admin API instead and the demo says they are not
// linked (kept for bisecting a replication failure: flip it and the rest
// of the package follows).
const linked = true

// enableReplication configures a central node to serve the replication
// protocol to the shops holding tokens (token i is shop i's).
func enableReplication(cfg *central.Config, tokens []string) {
	cfg.ReplicationAddr = "127.0.0.1:0"
	cfg.ReplicationTokens = make(map[string]storeline.StoreID, len(tokens))
	for i, t := range tokens {
		cfg.ReplicationTokens[t] = sample.StoreName(i)
	}
	cfg.ReplicationMaxWait = 5 * time.Second
}

// replicationAddr is the host:port of a central node's replication
// listener.
func replicationAddr(n *central.Node) string { return n.ReplicationAddr() }

// pinReplicationAddr makes a restarted node bind the replication address
// it bound before, so the shops' proxies reach it again.
func pinReplicationAddr(cfg *central.Config, n *central.Node) {
	cfg.ReplicationAddr = n.ReplicationAddr()
}

// centralEvents calls fn for each event of origin that central node n
// holds, in order, until fn returns false.
func centralEvents(n *central.Node, origin storeline.StoreID, fn func(storeline.Event) bool) error {
	return n.ScanEvents(origin, fn)
}

// centralBalances returns central node n's non-zero balances of accounts
// with the prefix.
func centralBalances(n *central.Node, prefix string) ([]ledger.Balance, error) {
	bs, err := n.Balances(prefix)
	out := make([]ledger.Balance, len(bs))
	for i, b := range bs {
		out[i] = ledger.Balance{Account: b.Account, Asset: b.Asset, Amount: b.Amount}
	}
	return out, err
}

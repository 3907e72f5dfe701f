package central

// BreakLogStore closes the Badger under the node's Raft log store, as a
// failing disk would leave it: every later write to it fails.
func (n *Node) BreakLogStore() error { return n.logs.Close() }

// RaftStats returns the node's raft.Stats().
func (n *Node) RaftStats() map[string]string { return n.raft.Stats() }
